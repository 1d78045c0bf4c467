/*
 * The tables of taskhubctl's options and commands, and the help generated from them (`taskhubctl --help`,
 * `taskhubctl help COMMAND`). taskhubctl.1 is the reference; keep the two in step.
 */
#include "cli.h"
#include "commands.h"
#include "completion.h"
#include "report.h"

#include <string.h>

static const struct optdef global_opts[] = {
    {O_ADDRESS, "--address", 'a', "HOST:PORT",
     "taskhubd's gRPC address, or unix:PATH (env TASKHUBD_ADDRESS; default " CTL_DEFAULT_ADDRESS ")", NULL},
    {O_OUTPUT, "--output", 'o', "text|json",
     "output format (default text); json prints exactly one JSON document, errors included", "text json"},
    {O_JSON, "--json", 0, NULL, "the same as --output json", NULL},
    {O_TIMEOUT, "--timeout-ms", 0, "MS",
     "deadline of each call (default 30000), and the longest start --wait and watch wait (default: no limit)", NULL},
    {O_TLS, "--tls", 0, NULL, "connect with TLS, trusting the system's CAs or --tls-ca (env TASKHUBCTL_TLS=1)", NULL},
    {O_TLS_CA, "--tls-ca", 0, "FILE",
     "PEM CA(s) that issued taskhubd's certificate; implies --tls (env TASKHUBCTL_TLS_CA)", "@file"},
    {O_TLS_CERT, "--tls-cert", 0, "FILE",
     "PEM client certificate, for a taskhubd with --tls-client-ca; implies --tls (env TASKHUBCTL_TLS_CERT)", "@file"},
    {O_TLS_KEY, "--tls-key", 0, "FILE", "the PEM private key of --tls-cert (env TASKHUBCTL_TLS_KEY)", "@file"},
    {O_TLS_SERVER_NAME, "--tls-server-name", 0, "NAME",
     "the name taskhubd's certificate must carry, when not the address's host (env TASKHUBCTL_TLS_SERVER_NAME)",
     NULL},
    {O_TOKEN_FILE, "--token-file", 0, "FILE",
     "send the first token of FILE as \"authorization: Bearer\" (env TASKHUBCTL_TOKEN_FILE; or the token itself in "
     "TASKHUBD_AUTH_TOKEN)", "@file"},
    {O_HELP, "--help", 'h', NULL, "show help: for the tool, or for the command it follows", NULL},
    {O_TOOL_VERSION, "--version", 0, NULL, "print the version of taskhubctl (before a command only)", NULL},
    {O_END, NULL, 0, NULL, NULL, NULL},
};

static const struct optdef cmd_opts[] = {
    {O_STATUS, "--status", 0, "STATUS",
     "only instances with this status (repeatable, or comma-separated): RUNNING, COMPLETED, CONTINUED_AS_NEW, "
     "FAILED, CANCELED, TERMINATED, PENDING, SUSPENDED",
     "RUNNING COMPLETED CONTINUED_AS_NEW FAILED CANCELED TERMINATED PENDING SUSPENDED"},
    {O_PREFIX, "--prefix", 0, "PREFIX", "only instances whose id starts with PREFIX", NULL},
    {O_CREATED_AFTER, "--created-after", 0, "TIME",
     "only instances created at or after TIME: RFC 3339, or an age such as 30m, 1h, 2d (that long ago)", NULL},
    {O_CREATED_BEFORE, "--created-before", 0, "TIME",
     "only instances created before TIME: RFC 3339, or an age such as 30m, 1h, 2d (that long ago)", NULL},
    {O_NAME, "--name", 0, "NAME", "only instances of the orchestration NAME (exact match)", NULL},
    {O_LIMIT, "--limit", 0, "N", "print the N newest (default 100)", NULL},
    {O_ALL, "--all", 0, NULL, "print every instance that matches, newest first", NULL},
    {O_PAGE_SIZE, "--page-size", 0, "N",
     "print one page of at most N, in the server's order (oldest first; by id with --prefix), and the token "
     "for the next; with --all, the size of the pages read", NULL},
    {O_CONTINUATION, "--continuation", 0, "TOKEN", "print the page a previous list printed the token of", NULL},
    {O_PAYLOADS, "--payloads", 0, NULL, "include inputs, outputs and custom status in full", NULL},
    {O_ID, "--id", 0, "ID", "the instance id (default: a random 32-hex-digit id)", NULL},
    {O_INPUT, "--input", 0, "JSON", "the orchestration input, a JSON value (e.g. '{\"n\":1}' or '\"text\"')", NULL},
    {O_INPUT_FILE, "--input-file", 0, "FILE", "read the input (JSON) from FILE; - reads stdin", "@file"},
    {O_START_AT, "--start-at", 0, "TIME", "do not start before TIME (RFC 3339): a scheduled start", NULL},
    {O_VERSION, "--version", 0, "VERSION", "the orchestration version", NULL},
    {O_TAG, "--tag", 0, "KEY=VALUE", "a tag on the instance (repeatable)", NULL},
    {O_WAIT, "--wait", 0, NULL,
     "wait for the instance to finish and print its final state (bounded by --timeout-ms)", NULL},
    {O_DATA, "--data", 0, "JSON", "the event data, a JSON value", NULL},
    {O_REASON, "--reason", 0, "TEXT", "a reason, recorded in the instance history", NULL},
    {O_TERM_OUTPUT, "--output", 0, "JSON",
     "the output recorded for the terminated instance, a JSON value (use -o json for JSON output here)", NULL},
    {O_TERM_REASON, "--reason", 0, "TEXT",
     "why: recorded as the instance's output, a JSON string (the protocol has no other place for it; "
     "Durable Functions does the same); not with --output", NULL},
    {O_RECURSIVE, "--recursive", 0, NULL, "terminate its sub-orchestrations too", NULL},
    {O_PURGE_STATUS, "--status", 0, "STATUS",
     "only instances with this finished status (repeatable, or comma-separated): COMPLETED, FAILED, "
     "TERMINATED, CANCELED (default: all four)", "COMPLETED FAILED TERMINATED CANCELED"},
    {O_PURGE_RECURSIVE, "--recursive", 0, NULL, "with ID: purge its finished sub-orchestrations too", NULL},
    {O_YES, "--yes", 'y', NULL, "purge without asking for confirmation", NULL},
    {O_NEW_ID, "--new-id", 0, NULL, "start the copy under a new random id (default: the same id)", NULL},
    {O_INTERVAL, "--interval-ms", 0, "MS", "how often to poll the history (default 500)", NULL},
    {O_FROM, "--from", 0, "rocksdb:DIR",
     "the RocksDB task hub to copy (taskhubd's --data-dir); taskhubd must be stopped", NULL},
    {O_TO, "--to", 0, "STORE",
     "the PostgreSQL task hub to copy into, as taskhubd's --store takes it: postgresql://USER@HOST/DB or "
     "\"host=... dbname=...\"; the password comes from PGPASSWORD or a PGPASSFILE, never from here", NULL},
    {O_BATCH, "--batch", 0, "N", "instances per change set written to the target (default 200, at most 10000)", NULL},
    {O_ENT_PREFIX, "--prefix", 0, "PREFIX",
     "only entities whose id starts with PREFIX; @NAME@ for the entities of one name (the name part is "
     "lowercased)", NULL},
    {O_ENT_TRANSIENT, "--transient", 0, NULL,
     "also entities without state: signalled, their operations not run yet (no worker took them)", NULL},
    {O_ENT_STATE, "--state", 0, NULL, "include each entity's state in full", NULL},
    {O_ENT_LIMIT, "--limit", 0, "N", "print the first N in id order (default 100)", NULL},
    {O_ENT_ALL, "--all", 0, NULL, "print every entity that matches", NULL},
    {O_ENT_PAGE_SIZE, "--page-size", 0, "N",
     "print one page of at most N and the token for the next; with --all, the size of the pages read", NULL},
    {O_ENT_INPUT, "--input", 0, "JSON", "the operation's input, a JSON value (e.g. '5' or '\"text\"')", NULL},
    {O_ENT_AT, "--at", 0, "TIME", "deliver the signal at TIME (RFC 3339): a scheduled signal", NULL},
    {O_ENT_IN, "--in", 0, "DURATION", "deliver the signal after DURATION (30s, 5m, 1h30m): a scheduled signal",
     NULL},
    {O_ENT_REMOVE_EMPTY, "--remove-empty", 0, NULL,
     "remove records of entities with no state, no lock and nothing queued", NULL},
    {O_ENT_RELEASE_LOCKS, "--release-orphaned-locks", 0, NULL,
     "release locks held for orchestrations that have finished or no longer exist", NULL},
    {O_END, NULL, 0, NULL, NULL, NULL},
};

const struct optdef *ctl_opt_by_id(int id)
{
  for (const struct optdef *o = cmd_opts; o->name; o++)
    if (o->id == id)
      return o;
  for (const struct optdef *o = global_opts; o->name; o++)
    if (o->id == id)
      return o;
  return NULL;
}

/* ------------------------------------------------------------------ commands */

static const int list_opts[] = {O_STATUS, O_PREFIX,    O_NAME,         O_CREATED_AFTER, O_CREATED_BEFORE,
                                O_LIMIT,  O_ALL,       O_PAGE_SIZE,    O_CONTINUATION,  O_PAYLOADS,
                                O_END};
static const int show_opts[] = {O_PAYLOADS, O_END};
static const int start_opts[] = {O_ID, O_INPUT, O_INPUT_FILE, O_START_AT, O_VERSION, O_TAG, O_WAIT, O_END};
static const int raise_opts[] = {O_DATA, O_END};
static const int reason_opts[] = {O_REASON, O_END};
static const int terminate_opts[] = {O_TERM_REASON, O_TERM_OUTPUT, O_RECURSIVE, O_END};
static const int purge_opts[] = {O_PURGE_STATUS,    O_PREFIX, O_CREATED_AFTER, O_CREATED_BEFORE,
                                 O_PURGE_RECURSIVE, O_YES,    O_END};
static const int restart_opts[] = {O_NEW_ID, O_END};
static const int watch_opts[] = {O_INTERVAL, O_PAYLOADS, O_END};
static const int migrate_opts[] = {O_FROM, O_TO, O_BATCH, O_END};
static const int no_opts[] = {O_END};
static const int entity_list_opts[] = {O_ENT_PREFIX,    O_ENT_TRANSIENT, O_ENT_STATE, O_ENT_LIMIT,
                                       O_ENT_ALL,       O_ENT_PAGE_SIZE, O_CONTINUATION, O_END};
static const int entity_show_opts[] = {O_END};
static const int entity_signal_opts[] = {O_ENT_INPUT, O_ENT_AT, O_ENT_IN, O_END};
static const int entity_clean_opts[] = {O_ENT_REMOVE_EMPTY, O_ENT_RELEASE_LOCKS, O_END};

static const struct command commands[] = {
    {"list", cmd_list, false, "", 0, 0, list_opts, "List instances, newest first, with filters",
     "Lists orchestration instances, newest first by creation time: the 100 newest that match (--limit), or "
     "all of them (--all), saying whether older ones were left out (JSON: more; how many with --prefix, which "
     "reads every match: omitted). Filters combine (AND); "
     "--status may be repeated (OR). To page through them as the server orders them (oldest first, by id "
     "with --prefix), give --page-size: one page is printed, and when more exist the token for --continuation "
     "(JSON: continuationToken). --name is applied by taskhubctl, so such a page may hold fewer.", NULL},
    {"show", cmd_show, false, "ID", 1, 1, show_opts, "Show an instance's state and its history as a timeline",
     "Prints the instance's state and the history of its current execution, one line per event: the time "
     "since the first event, the event id, the type, then the name, instance, task id, timer time, status, "
     "payload excerpt and failure the event carries; then what waits in its inbox and is not in the history yet "
     "(its start, raised events, requested suspends or terminations), and for a PENDING instance why it has not "
     "started when taskhubd can tell (no connected worker accepts it). Payloads are cut to 60 bytes unless "
     "--payloads is given; JSON output (pending, pendingReason) always holds them in full.", "@ids"},
    {"start", cmd_start, false, "NAME", 1, 1, start_opts, "Start a new orchestration instance",
     "Schedules a new instance of the orchestration NAME and prints its id. With --wait, waits for it to "
     "finish and prints its final state; the exit status is then 0 for COMPLETED and 1 for FAILED, "
     "TERMINATED or CANCELED (5 when --timeout-ms passes first). An id that is taken gives exit status 4.", NULL},
    {"raise", cmd_raise, false, "ID EVENT", 2, 2, raise_opts, "Send an external event to an instance",
     "Raises the external event EVENT on instance ID, with --data as its payload. Exit status 4 when the "
     "instance has already finished (it would drop the event).", "@ids"},
    {"suspend", cmd_suspend, false, "ID", 1, 1, reason_opts, "Suspend a running instance",
     "Suspends instance ID: it stops making progress (events are kept) until resumed. Exit status 4 when "
     "the instance has already finished.", "@ids"},
    {"resume", cmd_resume, false, "ID", 1, 1, reason_opts, "Resume a suspended instance",
     "Resumes a suspended instance ID. Exit status 4 when the instance has already finished.", "@ids"},
    {"terminate", cmd_terminate, false, "ID", 1, 1, terminate_opts, "Terminate an instance",
     "Terminates instance ID (and, with --recursive, its sub-orchestrations), recording --output, or the "
     "--reason as a JSON string, as its output. Exit status 4 when the instance has already finished. Note "
     "that after the command name --output is the termination output; give the output format as -o json, "
     "--json, or --output before the command.", "@ids"},
    {"purge", cmd_purge, false, "[ID]", 0, 1, purge_opts, "Delete finished instances, by id or by filter",
     "With ID, deletes that finished instance and its history (with --recursive, its finished "
     "sub-orchestrations too); exit status 3 when it does not exist, 4 when it has not finished. With a "
     "filter (--status, --prefix, --created-after, --created-before; at least one), deletes every finished "
     "instance that matches, after printing how many match and asking for confirmation on the terminal (y/N). "
     "Without a terminal on stdin, a filter purge is refused (exit status 2) unless --yes is given; "
     "answering no exits with 1. Nothing is deleted in either case.", "@ids"},
    {"rewind", cmd_rewind, false, "ID", 1, 1, reason_opts, "Retry what failed in a FAILED instance",
     "Rewinds a FAILED instance: the failed activities and sub-orchestrations run again, the rest of the "
     "history is kept. Exit status 4 when the instance is not FAILED.", "@ids"},
    {"restart", cmd_restart, false, "ID", 1, 1, restart_opts, "Start a finished instance again",
     "Starts instance ID again with its original name, input and version, in place or (--new-id) under a "
     "new id, and prints the id of the new run.", "@ids"},
    {"watch", cmd_watch, false, "ID", 1, 1, watch_opts, "Follow an instance live until it finishes",
     "Follows instance ID: prints status and custom-status changes and new history events as they happen, "
     "until it finishes. Exits 0 when it COMPLETED, 1 when it ended FAILED, TERMINATED or CANCELED, 5 when "
     "--timeout-ms passes first. With --output json nothing is printed until the end, then one document: "
     "the final state with its history (as show prints it).", "@ids"},
    {"entity list", cmd_entity_list, false, "", 0, 0, entity_list_opts, "List durable entities, in id order",
     "Lists durable entities in id order: the first 100 that match (--limit), or all of them (--all), saying "
     "whether more were left out (JSON: more). By default only entities with state are listed; --transient "
     "adds those without (signalled, their operations not run yet). --page-size prints one page and, when "
     "more exist, the token for --continuation (JSON: continuationToken). Columns: id, whether it has state "
     "(state, or transient), operations queued, the orchestration holding its lock, last modified.", NULL},
    {"entity show", cmd_entity_show, false, "ID", 1, 1, entity_show_opts, "Show an entity's metadata and state",
     "Prints entity ID (@name@key; the name is case-insensitive): whether it has state, when it was last "
     "modified, how many operations are queued, which orchestration holds its lock, and its state in full. "
     "Exit status 3 when taskhubd has no record of it; a transient entity (signalled, nothing run yet) is "
     "shown, without state.", "@entities"},
    {"entity signal", cmd_entity_signal, false, "ID OPERATION", 2, 2, entity_signal_opts,
     "Send an operation to an entity (one way)",
     "Queues OPERATION, with --input as its input, for entity ID (@name@key), durably before returning; it "
     "runs when a worker serving entities of that name takes it. With --at or --in the signal is scheduled: "
     "it is queued at that time.", "@entities"},
    {"entity clean", cmd_entity_clean, false, "", 0, 0, entity_clean_opts,
     "Remove empty entities and release orphaned locks",
     "Cleans entity storage page by page until done: removes the records of entities with no state, no lock "
     "and nothing queued (--remove-empty), and releases locks held for orchestrations that have finished or "
     "no longer exist (--release-orphaned-locks). Without either option, does both. Prints the counts.", NULL},
    {"migrate", cmd_migrate, true, "", 0, 0, migrate_opts, "Copy a stopped RocksDB task hub into PostgreSQL",
     "Copies every instance (record, input, output, custom status, history, pending messages), timer and queued "
     "activity of the RocksDB task hub --from into the PostgreSQL database --to, then reads everything back "
     "from PostgreSQL and compares it with the source; prints a summary. Needs no server: stop taskhubd "
     "first (the source is refused while taskhubd has it open), and start the PostgreSQL replicas with --store "
     "once migrate has succeeded. The source is only read. The target must hold no task hub data (exit status "
     "4 otherwise): a migrate that stopped half-way is not resumed; drop the database, create it again and run "
     "migrate again. Exit status 1 when copying or the comparison fails, 5 when PostgreSQL cannot be reached. "
     "Progress goes to stderr.", NULL},
    {"version", cmd_version, false, "", 0, 0, no_opts, "Print the versions of taskhubctl and taskhubd",
     "Prints the version of taskhubctl and of the server (asked of taskhubd's own service, "
     "taskhubd.admin.Admin): its version, gRPC library, store and partitions. A server that is not taskhubd is "
     "printed as unknown with the reason; an unreachable one too, with exit status 5. JSON: client, server "
     "(version, grpc, store, replicaId, partitions; null when unknown), serverUnknownReason.", NULL},
    {"completion", cmd_completion, true, "SHELL", 1, 1, no_opts, "Print a shell completion script (bash or zsh)",
     "Prints the completion script for SHELL, bash or zsh, generated from the tables taskhubctl parses its "
     "command line with: commands, options, option values (statuses, output formats, files) and instance ids "
     "(the newest 100 from the server, as list prints them). Load it into the running shell with 'source "
     "<(taskhubctl completion bash)', or install it where the shell looks: a file in "
     "/etc/bash_completion.d, or a file named _taskhubctl in a directory of zsh's $fpath.",
     "bash zsh"},
    {"help", cmd_help, true, "[COMMAND]", 0, 2, no_opts, "Show help for taskhubctl or a command",
     "Prints the help of COMMAND (two words for a group's command: help entity list), or of taskhubctl.",
     "@commands"},
};
#define N_COMMANDS (sizeof commands / sizeof commands[0])

static bool cmd_allows(const struct command *cmd, int id)
{
  for (const int *p = cmd ? cmd->opts : no_opts; *p != O_END; p++)
    if (*p == id)
      return true;
  return false;
}

const struct optdef *ctl_lookup_opt(const struct command *cmd, const char *name)
{
  bool is_short = name[0] == '-' && name[1] && name[1] != '-' && !name[2];
  for (int pass = 0; pass < 2; pass++) {
    for (const struct optdef *o = pass == 0 ? cmd_opts : global_opts; o->name; o++) {
      if (pass == 0 && !cmd_allows(cmd, o->id))
        continue;
      if (is_short ? o->short_name == name[1] : strcmp(o->name, name) == 0)
        return o;
    }
  }
  return NULL;
}

const struct command *ctl_find_command(const char *name)
{
  for (size_t i = 0; i < N_COMMANDS; i++)
    if (strcmp(commands[i].name, name) == 0)
      return &commands[i];
  return NULL;
}

/* The group of |cmd|'s name ("entity" of "entity list"), of length *n; false for a command of no group. */
static bool group_of(const struct command *cmd, size_t *n)
{
  const char *sp = strchr(cmd->name, ' ');
  if (!sp)
    return false;
  *n = (size_t)(sp - cmd->name);
  return true;
}

bool ctl_is_group(const char *word)
{
  size_t n;
  for (size_t i = 0; i < N_COMMANDS; i++)
    if (group_of(&commands[i], &n) && strlen(word) == n && strncmp(commands[i].name, word, n) == 0)
      return true;
  return false;
}

const struct command *ctl_find_group_command(const char *group, const char *word)
{
  size_t n;
  for (size_t i = 0; i < N_COMMANDS; i++)
    if (group_of(&commands[i], &n) && strlen(group) == n && strncmp(commands[i].name, group, n) == 0 &&
        strcmp(commands[i].name + n + 1, word) == 0)
      return &commands[i];
  return NULL;
}

const char *ctl_group_words(const char *group, char *buf, size_t cap)
{
  size_t n, used = 0;
  buf[0] = '\0';
  for (size_t i = 0; i < N_COMMANDS && used < cap; i++)
    if (group_of(&commands[i], &n) && strlen(group) == n && strncmp(commands[i].name, group, n) == 0)
      used += (size_t)snprintf(buf + used, cap - used, "%s%s", used ? ", " : "", commands[i].name + n + 1);
  return buf;
}

void ctl_print_group_help(FILE *f, const char *group)
{
  size_t n;
  fprintf(f, "Usage: taskhubctl %s COMMAND [ARGUMENTS] [OPTIONS]\n\nCommands:\n", group);
  for (size_t i = 0; i < N_COMMANDS; i++)
    if (group_of(&commands[i], &n) && strlen(group) == n && strncmp(commands[i].name, group, n) == 0)
      fprintf(f, "  %-14s %s\n", commands[i].name, commands[i].summary);
  fprintf(f, "\nRun 'taskhubctl help %s COMMAND' or 'taskhubctl %s COMMAND --help' for a command's options; see "
             "also taskhubctl(1).\n",
          group, group);
}

/* Keeps |name| as the suggestion when it is nearer to |typo| than the best so far, or when |typo| is a prefix
 * of it and of nothing else seen. */
struct suggestion {
  const char *best;
  size_t dist;
  const char *prefix_of;
  int n_prefix;
};

static void consider(struct suggestion *s, const char *typo, const char *name)
{
  size_t d = ctl_edit_distance(typo, name);
  if (d < s->dist) {
    s->dist = d;
    s->best = name;
  }
  size_t n = strlen(typo);
  if (n >= 2 && strncmp(typo, name, n) == 0 && (!s->prefix_of || strcmp(s->prefix_of, name) != 0)) {
    s->prefix_of = name;
    s->n_prefix++;
  }
}

/* Two edits for a long word, one for a short one: further than that, a suggestion is a guess. */
static const char *suggested(const struct suggestion *s, const char *typo)
{
  size_t n = strlen(typo);
  if (s->best && s->dist <= (n > 4 ? 2u : 1u) && s->dist < n)
    return s->best;
  return s->n_prefix == 1 ? s->prefix_of : NULL;
}

const char *ctl_suggest_command(const char *typo)
{
  struct suggestion s = {.dist = SIZE_MAX};
  /* A group's commands are typed as two words: the first is what a typo of one word is near. consider() keeps
   * pointers to the names, so the words live as long as the process. */
  static char words[N_COMMANDS][32];
  for (size_t i = 0; i < N_COMMANDS; i++) {
    char *word = words[i];
    size_t n = strcspn(commands[i].name, " ");
    snprintf(word, sizeof words[i], "%.*s", (int)n, commands[i].name);
    if (i > 0 && strncmp(commands[i - 1].name, word, n) == 0 && commands[i - 1].name[n] == ' ')
      continue; /* the group's word once, so that a prefix of it counts once */
    consider(&s, typo, word);
  }
  return suggested(&s, typo);
}

const char *ctl_suggest_option(const struct command *cmd, const char *typo)
{
  struct suggestion s = {.dist = SIZE_MAX};
  for (const int *id = cmd ? cmd->opts : no_opts; *id != O_END; id++)
    consider(&s, typo, ctl_opt_by_id(*id)->name);
  for (const struct optdef *g = global_opts; g->name; g++)
    consider(&s, typo, g->name);
  return suggested(&s, typo);
}

static const char exit_codes_text[] =
    "Exit status:\n"
    "  0  success (for start --wait and watch: the instance COMPLETED)\n"
    "  1  the operation failed, or the instance ended FAILED, TERMINATED or CANCELED\n"
    "  2  usage error, or the server rejected the request as invalid\n"
    "  3  the instance was not found\n"
    "  4  the instance id is already taken, or the instance is in the wrong state for this (migrate: the\n"
    "     source or target is in use, or the target is not empty)\n"
    "  5  taskhubd is unavailable (unreachable, shutting down), or a call or wait timed out (migrate:\n"
    "     PostgreSQL is unreachable)\n";

/* Prints |text| wrapped at 100 columns, starting at column |col|; continuation lines start at |indent|. */
static void print_wrapped(FILE *f, const char *text, int col, int indent)
{
  bool at_start = true;
  for (const char *p = text; *p;) {
    while (*p == ' ')
      p++;
    size_t w = strcspn(p, " ");
    if (w == 0)
      break;
    if (!at_start && col + 1 + (int)w > 100) {
      fprintf(f, "\n%*s", indent, "");
      col = indent;
      at_start = true;
    }
    if (!at_start) {
      fputc(' ', f);
      col++;
    }
    fwrite(p, 1, w, f);
    col += (int)w;
    at_start = false;
    p += w;
  }
  fputc('\n', f);
}

static void print_opt(FILE *f, const struct optdef *o)
{
  char left[64];
  if (o->short_name && !o->name)
    snprintf(left, sizeof left, "-%c%s%s", o->short_name, o->metavar ? " " : "", o->metavar ? o->metavar : "");
  else if (o->short_name)
    snprintf(left, sizeof left, "-%c, %s%s%s", o->short_name, o->name, o->metavar ? " " : "",
             o->metavar ? o->metavar : "");
  else
    snprintf(left, sizeof left, "%s%s%s", o->name, o->metavar ? " " : "", o->metavar ? o->metavar : "");
  fprintf(f, "  %-26s", left);
  if ((int)strlen(left) > 26)
    fprintf(f, "\n%*s", 28, "");
  print_wrapped(f, o->help, 28, 28);
}

/* The global options; for a command, those its own options do not shadow, and not the tool's --version. */
static void print_global_opts(FILE *f, const struct command *cmd)
{
  fputs("Global options (accepted anywhere on the command line):\n", f);
  for (const struct optdef *o = global_opts; o->name; o++) {
    bool shadowed = false;
    for (const int *id = cmd ? cmd->opts : no_opts; *id != O_END; id++)
      shadowed = shadowed || strcmp(ctl_opt_by_id(*id)->name, o->name) == 0;
    if (cmd && o->id == O_TOOL_VERSION)
      continue;
    if (!shadowed) {
      print_opt(f, o);
    } else if (o->short_name) {
      /* Only the short form still works after this command's name. */
      struct optdef short_only = *o;
      short_only.name = NULL;
      print_opt(f, &short_only);
    }
  }
}

void ctl_print_tool_help(FILE *f)
{
  fputs("Usage: taskhubctl [GLOBAL OPTIONS] COMMAND [ARGUMENTS] [OPTIONS]\n\n"
        "A command-line client for taskhubd: list, inspect and operate Durable Task orchestration instances.\n\n"
        "Commands:\n",
        f);
  for (size_t i = 0; i < N_COMMANDS; i++)
    fprintf(f, "  %-14s %s\n", commands[i].name, commands[i].summary);
  fputc('\n', f);
  print_global_opts(f, NULL);
  fputs("\nTimes (TIME) are RFC 3339, e.g. 2024-05-01T12:00:00Z or 2024-05-01T14:00:00.5+02:00; a date alone\n"
        "means midnight UTC. Payloads (JSON) must be one JSON value: a string is '\"text\"'.\n\n",
        f);
  fputs(exit_codes_text, f);
  fputs("\nRun 'taskhubctl help COMMAND' or 'taskhubctl COMMAND --help' for a command's options; see also\n"
        "taskhubctl(1).\n",
        f);
}

void ctl_print_command_help(FILE *f, const struct command *cmd)
{
  fprintf(f, "Usage: taskhubctl %s%s%s [OPTIONS]\n\n", cmd->name, cmd->args[0] ? " " : "", cmd->args);
  fprintf(f, "%s.\n\n", cmd->summary);
  print_wrapped(f, cmd->description, 0, 0);
  if (cmd->opts[0] != O_END) {
    fputs("\nOptions:\n", f);
    for (const int *id = cmd->opts; *id != O_END; id++)
      print_opt(f, ctl_opt_by_id(*id));
  }
  fputc('\n', f);
  print_global_opts(f, cmd);
  fputc('\n', f);
  fputs(exit_codes_text, f);
}

int cmd_help(struct ctl *c)
{
  if (c->npos == 0) {
    ctl_print_tool_help(stdout);
    return CTL_EXIT_OK;
  }
  if (ctl_is_group(c->pos[0])) {
    if (c->npos == 1) {
      ctl_print_group_help(stdout, c->pos[0]);
      return CTL_EXIT_OK;
    }
    const struct command *sub = ctl_find_group_command(c->pos[0], c->pos[1]);
    if (!sub) {
      char words[128];
      c->cmd = NULL;
      return ctl_usage_error(c, "no such command: %s %s (%s has: %s)", c->pos[0], c->pos[1], c->pos[0],
                             ctl_group_words(c->pos[0], words, sizeof words));
    }
    ctl_print_command_help(stdout, sub);
    return CTL_EXIT_OK;
  }
  if (c->npos > 1) {
    c->cmd = NULL;
    return ctl_usage_error(c, "help takes one command, not '%s %s'", c->pos[0], c->pos[1]);
  }
  const struct command *cmd = ctl_find_command(c->pos[0]);
  if (!cmd) {
    c->cmd = NULL;
    const char *hint = ctl_suggest_command(c->pos[0]);
    if (hint)
      return ctl_usage_error(c, "no such command: %s (did you mean '%s'?)", c->pos[0], hint);
    return ctl_usage_error(c, "no such command: %s", c->pos[0]);
  }
  ctl_print_command_help(stdout, cmd);
  return CTL_EXIT_OK;
}

int cmd_completion(struct ctl *c)
{
  const struct ctl_tables t = {commands, N_COMMANDS, global_opts, cmd_opts};
  if (!ctl_write_completion(stdout, c->pos[0], &t))
    return ctl_usage_error(c, "completion: no script for '%s' (there are: bash, zsh)", c->pos[0]);
  return CTL_EXIT_OK;
}
