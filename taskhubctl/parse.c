/*
 * argv -> struct ctl in one pass over the whole command line: global options are accepted anywhere, a command's
 * own options win over global ones of the same name, and the first problem is kept for main to report once
 * the whole line is read (so that --help and --output json anywhere still apply).
 */
#include "cli.h"
#include "migrate.h"

#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

__attribute__((format(printf, 2, 3))) static void parse_error(struct ctl *c, const char *fmt, ...)
{
  if (c->err[0])
    return; /* the first error is the one reported */
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(c->err, sizeof c->err, fmt, ap);
  va_end(ap);
}

static bool parse_int(const char *s, long lo, long hi, int *out)
{
  if (!s || !*s)
    return false;
  char *end = NULL;
  errno = 0;
  long v = strtol(s, &end, 10);
  if (errno || *end || v < lo || v > hi)
    return false;
  *out = (int)v;
  return true;
}

static void add_status(struct ctl *c, const char *arg)
{
  const char *p = arg;
  while (*p) {
    size_t n = strcspn(p, ",");
    char one[32];
    if (n == 0 || n >= sizeof one) {
      parse_error(c, "--status: bad status list '%s'", arg);
      return;
    }
    memcpy(one, p, n);
    one[n] = '\0';
    dt_status s;
    if (!ctl_parse_status(one, &s)) {
      parse_error(c, "--status: unknown status '%s' (one of RUNNING, COMPLETED, CONTINUED_AS_NEW, FAILED, "
                     "CANCELED, TERMINATED, PENDING, SUSPENDED)",
                  one);
      return;
    }
    bool dup = false;
    for (size_t i = 0; i < c->n_statuses; i++)
      dup = dup || c->statuses[i] == s;
    if (!dup && c->n_statuses < sizeof c->statuses / sizeof c->statuses[0])
      c->statuses[c->n_statuses++] = s;
    p += n;
    if (*p == ',' && !*++p)
      parse_error(c, "--status: bad status list '%s'", arg);
  }
}

static void parse_time_opt(struct ctl *c, const char *opt, const char *arg, int64_t *out)
{
  if (!ctl_parse_time(arg, out) || *out <= 0)
    parse_error(c, "%s: '%s' is not an RFC 3339 time (e.g. 2024-05-01T12:00:00Z)", opt, arg);
}

/* A time filter: an RFC 3339 time, or an age ("90m", "1h30m", "2d") counted back from now. */
static void parse_since_opt(struct ctl *c, const char *opt, const char *arg, int64_t *out)
{
  int64_t age;
  if (ctl_parse_duration(arg, &age)) {
    *out = ctl_wall_ms() - age;
    if (*out <= 0)
      parse_error(c, "%s: '%s' reaches back before 1970", opt, arg);
    return;
  }
  if (!ctl_parse_time(arg, out) || *out <= 0)
    parse_error(c, "%s: '%s' is neither an RFC 3339 time (e.g. 2024-05-01T12:00:00Z) nor an age (e.g. 30m, 1h, "
                   "2d)",
                opt, arg);
}

static void need_json(struct ctl *c, const char *opt, const char *arg)
{
  if (!ctl_is_json(arg))
    parse_error(c, "%s: '%s' is not a JSON value (a string must be quoted: '\"%s\"')", opt, arg, arg);
}

static void apply(struct ctl *c, const struct optdef *o, char *arg)
{
  switch (o->id) {
  case O_ADDRESS:
    if (!*arg)
      parse_error(c, "--address: empty address");
    c->address = arg;
    break;
  case O_OUTPUT:
    if (strcmp(arg, "json") == 0)
      c->json = true;
    else if (strcmp(arg, "text") == 0)
      c->json = false;
    else
      parse_error(c, "--output: '%s' is not text or json", arg);
    break;
  case O_JSON: c->json = true; break;
  case O_TIMEOUT:
    if (!parse_int(arg, 1, INT_MAX, &c->timeout_ms))
      parse_error(c, "--timeout-ms: '%s' is not a positive number of milliseconds", arg);
    break;
  case O_TLS: c->tls = true; break;
  case O_TLS_CA: c->tls_ca = arg; break;
  case O_TLS_CERT: c->tls_cert = arg; break;
  case O_TLS_KEY: c->tls_key = arg; break;
  case O_TLS_SERVER_NAME: c->tls_server_name = arg; break;
  case O_TOKEN_FILE: c->token_file = arg; break;
  case O_HELP: c->help = true; break;
  case O_TOOL_VERSION:
    if (c->cmd)
      parse_error(c, "--version (of taskhubctl) goes before the command");
    c->tool_version = true;
    break;
  case O_STATUS:
  case O_PURGE_STATUS: add_status(c, arg); break;
  case O_PREFIX: c->prefix = arg; break;
  case O_CREATED_AFTER: parse_since_opt(c, o->name, arg, &c->created_after); break;
  case O_CREATED_BEFORE: parse_since_opt(c, o->name, arg, &c->created_before); break;
  case O_PAGE_SIZE:
    if (!parse_int(arg, 1, 100000, &c->page_size))
      parse_error(c, "--page-size: '%s' is not a number from 1 to 100000", arg);
    break;
  case O_LIMIT:
    if (!parse_int(arg, 1, INT_MAX, &c->limit))
      parse_error(c, "--limit: '%s' is not a positive number", arg);
    break;
  case O_NAME:
    if (!*arg)
      parse_error(c, "--name: empty name");
    c->name = arg;
    break;
  case O_ALL: c->all = true; break;
  case O_CONTINUATION: c->continuation = arg; break;
  case O_PAYLOADS: c->payloads = true; break;
  case O_ID:
    if (!*arg)
      parse_error(c, "--id: empty instance id");
    c->id = arg;
    break;
  case O_INPUT:
    need_json(c, o->name, arg);
    c->input = arg;
    break;
  case O_INPUT_FILE: c->input_file = arg; break;
  case O_START_AT: parse_time_opt(c, o->name, arg, &c->start_at); break;
  case O_VERSION: c->version = arg; break;
  case O_TAG: {
    char *eq = strchr(arg, '=');
    if (!eq || eq == arg) {
      parse_error(c, "--tag: '%s' is not KEY=VALUE", arg);
      break;
    }
    if (c->n_tags >= CTL_MAX_TAGS) {
      parse_error(c, "--tag: at most %d tags", CTL_MAX_TAGS);
      break;
    }
    *eq = '\0'; /* argv strings are ours to modify */
    c->tags[c->n_tags].key = arg;
    c->tags[c->n_tags].value = eq + 1;
    c->n_tags++;
    break;
  }
  case O_WAIT: c->wait = true; break;
  case O_DATA:
    need_json(c, o->name, arg);
    c->data = arg;
    break;
  case O_REASON: c->reason = arg; break;
  case O_TERM_OUTPUT:
    if (!ctl_is_json(arg))
      parse_error(c, "terminate --output: '%s' is not a JSON value (after the command name, --output is the "
                     "termination output; for JSON output use -o json or --json)",
                  arg);
    c->term_output = arg;
    break;
  case O_TERM_REASON: c->term_reason = arg; break;
  case O_RECURSIVE:
  case O_PURGE_RECURSIVE: c->recursive = true; break;
  case O_YES: c->yes = true; break;
  case O_NEW_ID: c->new_id = true; break;
  case O_INTERVAL:
    if (!parse_int(arg, 10, 3600000, &c->interval_ms))
      parse_error(c, "--interval-ms: '%s' is not a number from 10 to 3600000", arg);
    break;
  case O_ENT_PREFIX: c->prefix = arg; break;
  case O_ENT_TRANSIENT: c->transient = true; break;
  case O_ENT_STATE: c->state = true; break;
  case O_ENT_LIMIT:
    if (!parse_int(arg, 1, INT_MAX, &c->limit))
      parse_error(c, "--limit: '%s' is not a positive number", arg);
    break;
  case O_ENT_ALL: c->all = true; break;
  case O_ENT_PAGE_SIZE:
    if (!parse_int(arg, 1, 1000, &c->page_size))
      parse_error(c, "--page-size: '%s' is not a number from 1 to 1000", arg);
    break;
  case O_ENT_INPUT:
    need_json(c, o->name, arg);
    c->input = arg;
    break;
  case O_ENT_AT:
    if (c->signal_at)
      parse_error(c, "--at and --in exclude each other");
    parse_time_opt(c, o->name, arg, &c->signal_at);
    break;
  case O_ENT_IN: {
    int64_t d;
    if (c->signal_at)
      parse_error(c, "--at and --in exclude each other");
    if (!ctl_parse_duration(arg, &d) || d <= 0)
      parse_error(c, "--in: '%s' is not a duration (e.g. 30s, 5m, 1h30m)", arg);
    else
      c->signal_at = ctl_wall_ms() + d;
    break;
  }
  case O_ENT_REMOVE_EMPTY: c->remove_empty = true; break;
  case O_ENT_RELEASE_LOCKS: c->release_locks = true; break;
  case O_FROM: c->from = arg; break;
  case O_TO: c->to = arg; break;
  case O_BATCH:
    if (!parse_int(arg, 1, CTL_MIGRATE_MAX_BATCH, &c->batch))
      parse_error(c, "--batch: '%s' is not a number from 1 to %d", arg, CTL_MIGRATE_MAX_BATCH);
    break;
  default: break;
  }
}

void ctl_parse(struct ctl *c, int argc, char **argv)
{
  bool only_pos = false;
  for (int i = 1; i < argc; i++) {
    char *a = argv[i];
    if (!only_pos && strcmp(a, "--") == 0) {
      only_pos = true;
      continue;
    }
    if (!only_pos && a[0] == '-' && a[1]) {
      char name[64];
      char *val = NULL;
      char *eq = a[1] == '-' ? strchr(a, '=') : NULL;
      size_t n = eq ? (size_t)(eq - a) : strlen(a);
      if (n >= sizeof name) {
        parse_error(c, "unknown option %s", a);
        continue;
      }
      memcpy(name, a, n);
      name[n] = '\0';
      if (eq)
        val = eq + 1;
      const struct optdef *o = ctl_lookup_opt(c->cmd, name);
      if (!o) {
        const char *hint = name[1] == '-' ? ctl_suggest_option(c->cmd, name) : NULL;
        char dym[96] = "";
        if (hint)
          snprintf(dym, sizeof dym, " (did you mean '%s'?)", hint);
        if (c->cmd)
          parse_error(c, "unknown option %s for %s%s", name, c->cmd->name, dym);
        else
          parse_error(c, "unknown option %s%s", name, dym);
        continue;
      }
      if (o->metavar && !val) {
        if (i + 1 >= argc) {
          parse_error(c, "option %s needs a value (%s)", o->name, o->metavar);
          continue;
        }
        val = argv[++i];
      } else if (!o->metavar && val) {
        parse_error(c, "option %s takes no value", o->name);
        continue;
      }
      apply(c, o, val);
      continue;
    }
    if (!c->cmd && c->group) {
      /* The second word of a group's command ("entity list"). */
      c->cmd = ctl_find_group_command(c->group, a);
      if (!c->cmd) {
        char words[128];
        parse_error(c, "no such command: %s %s (%s has: %s)", c->group, a, c->group,
                    ctl_group_words(c->group, words, sizeof words));
        return;
      }
      c->group = NULL;
      continue;
    }
    if (!c->cmd && ctl_is_group(a)) {
      c->group = a;
      continue;
    }
    if (!c->cmd) {
      c->cmd = ctl_find_command(a);
      if (!c->cmd) {
        const char *hint = ctl_suggest_command(a);
        if (hint)
          parse_error(c, "no such command: %s (did you mean '%s'?)", a, hint);
        else
          parse_error(c, "no such command: %s", a);
        return;
      }
      continue;
    }
    if (c->npos >= c->cmd->max_pos) {
      parse_error(c, "unexpected argument '%s'", a);
      continue;
    }
    c->pos[c->npos++] = a;
  }
  if (c->group && !c->err[0]) {
    char words[128];
    parse_error(c, "%s needs a command: %s", c->group, ctl_group_words(c->group, words, sizeof words));
  }
  if (c->cmd && c->npos < c->cmd->min_pos)
    parse_error(c, "%s needs %s", c->cmd->name, c->cmd->args);
  if (c->input && c->input_file)
    parse_error(c, "--input and --input-file exclude each other");
  if (c->term_reason && c->term_output)
    parse_error(c, "terminate: --reason and --output exclude each other (the reason is recorded as the output)");
  if (c->limit && c->all)
    parse_error(c, "--limit and --all exclude each other");
  if (c->limit && (c->page_size || c->continuation))
    parse_error(c, "--limit does not apply to a page (--page-size, --continuation): pages come in the server's "
                   "order; use --all, or --limit without them");
}
