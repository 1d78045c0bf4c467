/*
 * The command line of taskhubctl: the option and command tables (cli.c), what argv parses into (struct ctl,
 * parse.c), and the help generated from the tables.
 *
 * Layers, each calling only those below it: taskhubctl.c (main) -> parse.c -> cli.c (tables, help) -> cmd_*.c
 * (one file per command group) and completion.c -> report.c and render.c -> ctl_util.c. The command table holds
 * pointers to the cmd_* functions, and cli.c hands its tables to completion.c; nothing below cli.c reaches back
 * into it.
 */
#ifndef CTL_CLI_H
#define CTL_CLI_H

#include "ctl.h"

#define CTL_DEFAULT_ADDRESS "127.0.0.1:4001"
#define CTL_MAX_TAGS 64
#define CTL_MAX_POS 3

enum opt_id {
  /* global */
  O_ADDRESS,
  O_OUTPUT,
  O_JSON,
  O_TIMEOUT,
  O_HELP,
  O_TOOL_VERSION,
  O_TLS,
  O_TLS_CA,
  O_TLS_CERT,
  O_TLS_KEY,
  O_TLS_SERVER_NAME,
  O_TOKEN_FILE,
  /* commands */
  O_STATUS,
  O_PREFIX,
  O_CREATED_AFTER,
  O_CREATED_BEFORE,
  O_PAGE_SIZE,
  O_LIMIT,
  O_NAME,
  O_ALL,
  O_CONTINUATION,
  O_PAYLOADS,
  O_ID,
  O_INPUT,
  O_INPUT_FILE,
  O_START_AT,
  O_VERSION,
  O_TAG,
  O_WAIT,
  O_DATA,
  O_REASON,
  O_TERM_OUTPUT,
  O_TERM_REASON,
  O_RECURSIVE,
  O_PURGE_STATUS,
  O_PURGE_RECURSIVE,
  O_YES,
  O_NEW_ID,
  O_INTERVAL,
  O_FROM,
  O_TO,
  O_BATCH,
  /* entity commands */
  O_ENT_PREFIX,
  O_ENT_TRANSIENT,
  O_ENT_STATE,
  O_ENT_LIMIT,
  O_ENT_ALL,
  O_ENT_PAGE_SIZE,
  O_ENT_INPUT,
  O_ENT_AT,
  O_ENT_IN,
  O_ENT_REMOVE_EMPTY,
  O_ENT_RELEASE_LOCKS,
  O_END = -1
};

struct optdef {
  int id;
  const char *name;    /* "--address" */
  char short_name;     /* 'a', or 0 */
  const char *metavar; /* NULL: a flag */
  const char *help;
  /* What the value completes to in a shell: words separated by spaces, "@file", or NULL for nothing. */
  const char *values;
};

/* The parsed command line. */
struct ctl;
typedef int (*cmd_fn)(struct ctl *c);

struct command {
  /* One word, or "GROUP WORD" for the commands of a group ("entity list"): the parser takes the two words of the
   * command line as one name, and help, suggestions and completion treat GROUP as a command of its own. */
  const char *name;
  cmd_fn run;
  bool local;       /* runs without a connection to taskhubd (help, migrate) */
  const char *args; /* positional synopsis */
  int min_pos, max_pos;
  const int *opts;  /* allowed command options, O_END-terminated */
  const char *summary;
  const char *description;
  /* What the first argument completes to in a shell: words, "@ids" (instance ids from `list`), "@commands",
   * or NULL for nothing. */
  const char *pos_values;
};

struct ctl {
  /* global */
  const char *address;
  bool json;
  int timeout_ms; /* 0: not given */
  bool help;
  bool tool_version;
  /* connection security (flags, else TASKHUBCTL_* variables; see credentials.c) */
  bool tls;
  const char *tls_ca, *tls_cert, *tls_key, *tls_server_name, *token_file;
  const struct command *cmd;
  const char *group; /* "entity" once seen on the line, while its command word has not come yet */
  const char *pos[CTL_MAX_POS];
  int npos;
  char err[512]; /* the first usage error, reported once the whole line is parsed */
  /* command options */
  dt_status statuses[16];
  size_t n_statuses;
  const char *prefix;
  int64_t created_after, created_before; /* 0: not given */
  int page_size;
  int limit;        /* 0: not given */
  const char *name; /* list: only instances of this orchestration */
  bool all, payloads, wait, recursive, yes, new_id;
  const char *continuation;
  const char *id, *input, *input_file, *version, *data, *reason, *term_output;
  const char *term_reason; /* terminate --reason: becomes the output, as a JSON string */
  int64_t start_at;
  dt_tag tags[CTL_MAX_TAGS];
  size_t n_tags;
  int interval_ms;
  const char *from, *to;
  int batch;
  bool transient, state, remove_empty, release_locks; /* entity list, entity clean */
  int64_t signal_at;                                  /* entity signal --at / --in: 0 now */
  dt_client *client;
};

/* ------------------------------------------------------------------ tables (cli.c) */

const struct optdef *ctl_opt_by_id(int id);
/* Finds the option called |name| ("--x" or "-x") that may follow |cmd| (NULL: before any command): the
 * command's own first, then the global ones. */
const struct optdef *ctl_lookup_opt(const struct command *cmd, const char *name);
const struct command *ctl_find_command(const char *name);
/* Whether |word| names a group of commands ("entity"). */
bool ctl_is_group(const char *word);
/* Finds the command |word| of |group| ("entity", "list"). */
const struct command *ctl_find_group_command(const char *group, const char *word);
/* The command words of |group|, comma-separated, into |buf| ("list, show, signal, clean"). */
const char *ctl_group_words(const char *group, char *buf, size_t cap);
/* Prints the help of a group: its commands and how to get their help. */
void ctl_print_group_help(FILE *f, const char *group);
/* What the user probably meant by an unknown command (or option valid after |cmd|): the nearest name by edit
 * distance, else the only one |typo| is a prefix of; NULL when nothing is close. */
const char *ctl_suggest_command(const char *typo);
const char *ctl_suggest_option(const struct command *cmd, const char *typo);

/* ------------------------------------------------------------------ help (cli.c) */

void ctl_print_tool_help(FILE *f);
void ctl_print_command_help(FILE *f, const struct command *cmd);

/* ------------------------------------------------------------------ parsing (parse.c) */

/* Parses argv into |c| (zeroed by the caller, address preset); the first problem goes to c->err. */
void ctl_parse(struct ctl *c, int argc, char **argv);

#endif
