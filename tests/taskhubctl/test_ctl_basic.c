/*
 * taskhubctl: help and man page, usage errors, exit codes for unreachable servers and unknown instances, start
 * with every option, and list with filters, paging and JSON output. No worker runs here: instances stay
 * PENDING unless the test terminates them.
 */
#include "ctl_harness.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

static const char *const commands[] = {"list",    "show",    "start", "raise",   "suspend",
                                       "resume",  "terminate", "purge", "rewind", "restart",
                                       "watch",   "migrate", "version", "completion", "help"};
#define N_COMMANDS (sizeof commands / sizeof commands[0])

static int need_bin(void)
{
  const char *b = getenv("TASKHUBCTL_BIN");
  return b && *b ? 0 : TEST_SKIP;
}

/* A port on 127.0.0.1 that nothing listens on (bound, then released). */
static int dead_port(void)
{
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  ASSERT(fd >= 0);
  struct sockaddr_in a;
  memset(&a, 0, sizeof a);
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ASSERT_OK(bind(fd, (struct sockaddr *)&a, sizeof a));
  socklen_t len = sizeof a;
  ASSERT_OK(getsockname(fd, (struct sockaddr *)&a, &len));
  close(fd);
  return ntohs(a.sin_port);
}

/* Instance ids of a list document, sorted into one comma-joined string (caller frees). */
static char *list_ids(json_object *doc)
{
  json_object *arr = jget(doc, "instances");
  ASSERT(arr && json_object_is_type(arr, json_type_array));
  size_t n = json_object_array_length(arr);
  ASSERT_EQ(jint(doc, "count"), (int64_t)n);
  const char **ids = calloc(n + 1, sizeof *ids);
  size_t cap = 1;
  for (size_t i = 0; i < n; i++) {
    ids[i] = jstr(json_object_array_get_idx(arr, i), "instanceId");
    ASSERT(ids[i] != NULL);
    cap += strlen(ids[i]) + 1;
  }
  for (size_t i = 0; i < n; i++)
    for (size_t j = i + 1; j < n; j++)
      if (strcmp(ids[j], ids[i]) < 0) {
        const char *t = ids[i];
        ids[i] = ids[j];
        ids[j] = t;
      }
  char *s = calloc(1, cap);
  for (size_t i = 0; i < n; i++) {
    if (i)
      strcat(s, ",");
    strcat(s, ids[i]);
  }
  free(ids);
  return s;
}

/* Runs `taskhubctl --json list ARGS...` and returns the sorted ids. */
#define LIST_IDS(h, ...) list_ids_run((h), (const char *const[]){"--json", "list", __VA_ARGS__, NULL})
static char *list_ids_run(hub *h, const char *const *args)
{
  ctl_res r = ctl_run(&(ctl_opts){.address = h->addr}, args);
  ASSERT_EXIT(r, 0);
  json_object *doc = ctl_doc(&r);
  char *ids = list_ids(doc);
  json_object_put(doc);
  ctl_res_free(&r);
  return ids;
}

static void terminate(hub *h, const char *iid, const char *output)
{
  ASSERT_OK(dt_client_terminate(h->c, iid, output, false));
  until_status(h, iid, DT_STATUS_TERMINATED, CTL_WAIT_MS);
}

/* ------------------------------------------------------------------ help */

TEST_IMPL(ctl_help)
{
  if (need_bin())
    return TEST_SKIP;
  ctl_res r = CTL(NULL, "--help");
  ASSERT_EXIT(r, 0);
  ASSERT_STR_CONTAINS(r.out, "Usage: taskhubctl");
  for (size_t i = 0; i < N_COMMANDS; i++) {
    char want[64];
    snprintf(want, sizeof want, "\n  %s ", commands[i]);
    ASSERT_STR_CONTAINS(r.out, want);
  }
  ASSERT_STR_CONTAINS(r.out, "Exit status:");
  static const char *const codes[] = {"  0  success", "  1  the operation failed", "  2  usage error",
                                      "  3  the instance was not found", "  4  the instance id is already taken",
                                      "  5  taskhubd is unavailable"};
  for (size_t i = 0; i < 6; i++)
    ASSERT_STR_CONTAINS(r.out, codes[i]);
  ASSERT_STR_CONTAINS(r.out, "--address");
  ASSERT_STR_CONTAINS(r.out, "TASKHUBD_ADDRESS");
  ASSERT_STR_CONTAINS(r.out, "--output");
  ASSERT_STR_CONTAINS(r.out, "--timeout-ms");

  ctl_res h = CTL(NULL, "-h");
  ASSERT_EXIT(h, 0);
  ASSERT_STR_EQ(h.out, r.out);
  ctl_res_free(&h);
  h = CTL(NULL, "help");
  ASSERT_EXIT(h, 0);
  ASSERT_STR_EQ(h.out, r.out);
  ctl_res_free(&h);
  ctl_res_free(&r);

  /* Every command: `help CMD` and `CMD --help` print the same page, with its usage, options and exit codes. */
  for (size_t i = 0; i < N_COMMANDS; i++) {
    ctl_res a = CTL(NULL, "help", commands[i]);
    ctl_res b = CTL(NULL, commands[i], "--help");
    ASSERT_EXIT(a, 0);
    ASSERT_EXIT(b, 0);
    ASSERT_STR_EQ(a.out, b.out);
    char usage[64];
    snprintf(usage, sizeof usage, "Usage: taskhubctl %s", commands[i]);
    ASSERT_STR_CONTAINS(a.out, usage);
    ASSERT_STR_CONTAINS(a.out, "Exit status:");
    ASSERT_STR_CONTAINS(a.out, "--address");
    ctl_res_free(&a);
    ctl_res_free(&b);
  }
  r = CTL(NULL, "help", "start");
  static const char *const start_opts[] = {"--id ID",       "--input JSON",      "--input-file FILE",
                                           "--start-at TIME", "--version VERSION", "--tag KEY=VALUE",
                                           "--wait"};
  for (size_t i = 0; i < sizeof start_opts / sizeof start_opts[0]; i++)
    ASSERT_STR_CONTAINS(r.out, start_opts[i]);
  ctl_res_free(&r);
  r = CTL(NULL, "help", "list");
  static const char *const list_opts[] = {"--status STATUS",   "--prefix PREFIX",  "--created-after TIME",
                                          "--created-before TIME", "--page-size N", "--all",
                                          "--continuation TOKEN",  "--payloads"};
  for (size_t i = 0; i < sizeof list_opts / sizeof list_opts[0]; i++)
    ASSERT_STR_CONTAINS(r.out, list_opts[i]);
  ctl_res_free(&r);
  /* --help wins over a usage error on the same line. */
  r = CTL(NULL, "show", "--help");
  ASSERT_EXIT(r, 0);
  ASSERT_STR_CONTAINS(r.out, "Usage: taskhubctl show ID");
  ctl_res_free(&r);

  r = CTL(NULL, "help", "nosuch");
  ASSERT_EXIT(r, 2);
  ASSERT_STR_CONTAINS(r.err, "no such command: nosuch");
  ctl_res_free(&r);
  r = CTL(NULL, "--version");
  ASSERT_EXIT(r, 0);
  ASSERT_STR_CONTAINS(r.out, "taskhubctl ");
  ctl_res_free(&r);
  /* No command: the usage on stderr, exit 2. */
  r = ctl_run(&(ctl_opts){0}, (const char *const[]){NULL});
  ASSERT_EXIT(r, 2);
  ASSERT_STR_CONTAINS(r.err, "Usage: taskhubctl");
  ASSERT_STR_EQ(r.out, "");
  ctl_res_free(&r);
  return 0;
}

/* The man page names every command, every option `help` lists, every exit code, and renders without warnings. */
TEST_IMPL(ctl_man_page)
{
  if (need_bin())
    return TEST_SKIP;
  const char *path = getenv("TASKHUBCTL_MAN");
  if (!path || !*path)
    return TEST_SKIP;
  FILE *f = fopen(path, "r");
  ASSERT(f != NULL);
  char *raw = NULL;
  size_t cap = 0;
  ssize_t n = getdelim(&raw, &cap, '\0', f);
  fclose(f);
  ASSERT_GT(n, 0);
  /* troff writes a literal hyphen as \- : read it back as '-'. */
  char *man = calloc(1, (size_t)n + 1);
  size_t k = 0;
  for (ssize_t i = 0; i < n; i++) {
    if (raw[i] == '\\' && raw[i + 1] == '-') {
      man[k++] = '-';
      i++;
    } else {
      man[k++] = raw[i];
    }
  }
  free(raw);
  ASSERT_STR_CONTAINS(man, ".TH TASKHUBCTL 1");
  ASSERT_STR_CONTAINS(man, ".SH EXIT STATUS");
  ASSERT_STR_CONTAINS(man, ".SH ENVIRONMENT");
  ASSERT_STR_CONTAINS(man, "TASKHUBD_ADDRESS");
  for (int code = 0; code <= 5; code++) {
    char want[16];
    snprintf(want, sizeof want, "\n.B %d\n", code);
    ASSERT_STR_CONTAINS(man, want);
  }
  for (size_t i = 0; i < N_COMMANDS; i++) {
    char want[64];
    snprintf(want, sizeof want, "\n.SS %s\n", commands[i]);
    if (!strstr(man, want))
      TEST_FAIL("man page has no section for %s (want \"%s\")", commands[i], want + 1);
    /* Every option the command's help lists ("  --name" or "  -x, --name" at the start of a line). */
    ctl_res r = CTL(NULL, "help", commands[i]);
    ASSERT_EXIT(r, 0);
    for (char *p = r.out; (p = strstr(p, "\n  -")) != NULL; p++) {
      char *o = strstr(p + 1, "--");
      char *nl = strchr(p + 1, '\n');
      if (!o || (nl && o > nl))
        continue;
      size_t len = strcspn(o, " \n");
      char opt[64];
      snprintf(opt, sizeof opt, "%.*s", (int)len, o);
      if (!strstr(man, opt))
        TEST_FAIL("man page does not mention %s (from `taskhubctl help %s`)", opt, commands[i]);
    }
    ctl_res_free(&r);
  }
  free(man);
  /* groff, where present, must not warn about the markup. */
  if (access("/usr/bin/groff", X_OK) == 0) {
    char cmd[1200], out[256];
    char tmpl[] = "/tmp/ctl-man-XXXXXX";
    int fd = mkstemp(tmpl);
    ASSERT(fd >= 0);
    close(fd);
    snprintf(cmd, sizeof cmd, "groff -man -ww -z '%s' 2>'%s'", path, tmpl);
    ASSERT_EQ(system(cmd), 0);
    f = fopen(tmpl, "r");
    ASSERT(f != NULL);
    size_t got = fread(out, 1, sizeof out - 1, f);
    out[got] = '\0';
    fclose(f);
    unlink(tmpl);
    if (got)
      TEST_FAIL("groff warns about %s:\n%s", path, out);
  }
  return 0;
}

/* ------------------------------------------------------------------ usage errors */

TEST_IMPL(ctl_usage_errors)
{
  hub h;
  int rc = hub_start(&h, false);
  if (rc)
    return rc;
  const char *const *const cases[] = {
      (const char *const[]){"show", NULL},
      (const char *const[]){"raise", "x", NULL},
      (const char *const[]){"show", "a", "b", NULL},
      (const char *const[]){"frobnicate", NULL},
      (const char *const[]){"list", "--bogus", NULL},
      (const char *const[]){"list", "--status", "BOGUS", NULL},
      (const char *const[]){"list", "--status", "RUNNING,", NULL},
      (const char *const[]){"list", "--created-after", "yesterday", NULL},
      (const char *const[]){"list", "--created-before", "2024-13-01T00:00:00Z", NULL},
      (const char *const[]){"list", "--created-before", "2024-02-30", NULL},
      (const char *const[]){"list", "--created-before", "2024-01-01T10:00:00", NULL},
      (const char *const[]){"list", "--page-size", "0", NULL},
      (const char *const[]){"list", "--page-size", "ten", NULL},
      (const char *const[]){"list", "--payloads=yes", NULL},
      (const char *const[]){"list", "--prefix", NULL},
      (const char *const[]){"--output", "yaml", "list", NULL},
      (const char *const[]){"list", "--timeout-ms", "-5", NULL},
      (const char *const[]){"start", NULL},
      (const char *const[]){"start", "hello", "--input", "notjson", NULL},
      (const char *const[]){"start", "hello", "--input", "{\"a\":1} x", NULL},
      (const char *const[]){"start", "hello", "--input", "\"x\"", "--input-file", "/dev/null", NULL},
      (const char *const[]){"start", "hello", "--input-file", "/nonexistent/input.json", NULL},
      (const char *const[]){"start", "hello", "--tag", "novalue", NULL},
      (const char *const[]){"start", "hello", "--tag", "=v", NULL},
      (const char *const[]){"start", "hello", "--start-at", "12:00", NULL},
      (const char *const[]){"start", "hello", "--wait=1", NULL},
      (const char *const[]){"raise", "x", "ev", "--data", "{bad", NULL},
      (const char *const[]){"suspend", "x", "--recursive", NULL},
      (const char *const[]){"purge", NULL},
      (const char *const[]){"purge", "x", "--status", "COMPLETED", NULL},
      (const char *const[]){"purge", "--status", "RUNNING", "--yes", NULL},
      (const char *const[]){"purge", "--status", "COMPLETED", "--recursive", "--yes", NULL},
      (const char *const[]){"watch", "x", "--interval-ms", "1", NULL},
      (const char *const[]){"list", "--version", NULL},
      (const char *const[]){"--address", "", "list", NULL},
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    ctl_res r = ctl_run(&(ctl_opts){.address = h.addr}, cases[i]);
    ASSERT_EXIT(r, 2);
    ASSERT_STR_CONTAINS(r.err, "taskhubctl: ");
    ASSERT_STR_CONTAINS(r.err, "Try 'taskhubctl ");
    ASSERT_STR_EQ(r.out, "");
    ctl_res_free(&r);
  }
  /* The --output after terminate is the termination output; a format there gets a hint. */
  ctl_res r = CTL(h.addr, "terminate", "x", "--output", "json");
  ASSERT_EXIT(r, 2);
  ASSERT_STR_CONTAINS(r.err, "-o json");
  ctl_res_free(&r);
  /* In JSON mode a usage error is still one JSON document, wherever --output json was given. */
  r = CTL(h.addr, "show", "--output", "json");
  ASSERT_EXIT(r, 2);
  json_object *doc = ctl_doc(&r);
  ASSERT_STR_EQ(jerror_code(doc), "USAGE");
  ASSERT_EQ(jint(jget(doc, "error"), "exitCode"), 2);
  ASSERT_STR_CONTAINS(jstr(jget(doc, "error"), "message"), "show needs ID");
  json_object_put(doc);
  ctl_res_free(&r);
  /* Nothing reached the server. */
  dt_query q = {0};
  dt_instance_page *p = NULL;
  ASSERT_OK(dt_client_query(h.c, &q, &p));
  ASSERT_EQ(p->n, 0);
  dt_instance_page_free(p);
  hub_stop(&h);
  return 0;
}

/* ------------------------------------------------------------------ unreachable, not found */

TEST_IMPL(ctl_unreachable)
{
  if (need_bin())
    return TEST_SKIP;
  char addr[64];
  snprintf(addr, sizeof addr, "127.0.0.1:%d", dead_port());
  const char *const *const cases[] = {
      (const char *const[]){"list", NULL},
      (const char *const[]){"show", "x", NULL},
      (const char *const[]){"start", "hello", NULL},
      (const char *const[]){"start", "hello", "--wait", NULL},
      (const char *const[]){"raise", "x", "ev", NULL},
      (const char *const[]){"suspend", "x", NULL},
      (const char *const[]){"resume", "x", NULL},
      (const char *const[]){"terminate", "x", NULL},
      (const char *const[]){"purge", "x", NULL},
      (const char *const[]){"purge", "--status", "COMPLETED", "--yes", NULL},
      (const char *const[]){"rewind", "x", NULL},
      (const char *const[]){"restart", "x", NULL},
      (const char *const[]){"watch", "x", NULL},
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    /* Through TASKHUBD_ADDRESS. */
    ctl_res r = ctl_run(&(ctl_opts){.address = addr}, cases[i]);
    ASSERT_EXIT(r, 5);
    ASSERT_STR_CONTAINS(r.err, "unavailable");
    ASSERT_STR_CONTAINS(r.err, addr);
    ctl_res_free(&r);
  }
  /* Through --address, in JSON mode: one error document. */
  ctl_res r = CTL(NULL, "--address", addr, "show", "x", "--json");
  ASSERT_EXIT(r, 5);
  json_object *doc = ctl_doc(&r);
  ASSERT_STR_EQ(jerror_code(doc), "UNAVAILABLE");
  ASSERT_EQ(jint(jget(doc, "error"), "exitCode"), 5);
  ASSERT_STR_EQ(jstr(jget(doc, "error"), "instanceId"), "x");
  json_object_put(doc);
  ctl_res_free(&r);
  return 0;
}

TEST_IMPL(ctl_not_found)
{
  hub h;
  int rc = hub_start(&h, false);
  if (rc)
    return rc;
  const char *const *const cases[] = {
      (const char *const[]){"show", "nope", NULL},
      (const char *const[]){"raise", "nope", "ev", NULL},
      (const char *const[]){"suspend", "nope", NULL},
      (const char *const[]){"resume", "nope", NULL},
      (const char *const[]){"terminate", "nope", NULL},
      (const char *const[]){"purge", "nope", NULL},
      (const char *const[]){"rewind", "nope", NULL},
      (const char *const[]){"restart", "nope", NULL},
      (const char *const[]){"restart", "nope", "--new-id", NULL},
      (const char *const[]){"watch", "nope", NULL},
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    ctl_res r = ctl_run(&(ctl_opts){.address = h.addr}, cases[i]);
    ASSERT_EXIT(r, 3);
    ASSERT_STR_CONTAINS(r.err, "instance 'nope' not found");
    ASSERT_STR_EQ(r.out, "");
    ctl_res_free(&r);
  }
  ctl_res r = CTL(h.addr, "-o", "json", "show", "nope");
  ASSERT_EXIT(r, 3);
  json_object *doc = ctl_doc(&r);
  ASSERT_STR_EQ(jerror_code(doc), "NOT_FOUND");
  ASSERT_EQ(jint(jget(doc, "error"), "exitCode"), 3);
  ASSERT_STR_EQ(jstr(jget(doc, "error"), "instanceId"), "nope");
  json_object_put(doc);
  ctl_res_free(&r);
  hub_stop(&h);
  return 0;
}

/* ------------------------------------------------------------------ start */

TEST_IMPL(ctl_start_options)
{
  hub h;
  int rc = hub_start(&h, false);
  if (rc)
    return rc;
  /* --address wins over TASKHUBD_ADDRESS (which points nowhere here). */
  char dead[64], at[48];
  snprintf(dead, sizeof dead, "127.0.0.1:%d", dead_port());
  int64_t start_at = wall_ms() + 3600 * 1000;
  start_at -= start_at % 1000 - 250; /* a whole second plus 250 ms: the fraction must survive */
  fmt_time(start_at, at, sizeof at);
  ctl_res r = CTL(dead, "start", "orchA", "--address", h.addr, "--id", "s1", "--input", "{\"k\":[1,2]}",
                  "--version", "2.1", "--tag", "team=ops", "--tag", "env=dev=x", "--start-at", at);
  ASSERT_EXIT(r, 0);
  ASSERT_STR_EQ(r.out, "s1\n");
  ctl_res_free(&r);
  dt_instance *in = get(&h, "s1");
  ASSERT(in != NULL);
  ASSERT_STR_EQ(in->name, "orchA");
  ASSERT_STR_EQ(in->version, "2.1");
  ASSERT_STR_EQ(in->input, "{\"k\":[1,2]}");
  ASSERT_EQ(in->status, DT_STATUS_PENDING);
  ASSERT_EQ(in->scheduled_start_ms, start_at);
  ASSERT_EQ(in->n_tags, 2);
  for (size_t i = 0; i < in->n_tags; i++) {
    if (strcmp(in->tags[i].key, "team") == 0)
      ASSERT_STR_EQ(in->tags[i].value, "ops");
    else if (strcmp(in->tags[i].key, "env") == 0)
      ASSERT_STR_EQ(in->tags[i].value, "dev=x"); /* split at the first '=' */
    else
      TEST_FAIL("unexpected tag %s", in->tags[i].key);
  }
  dt_instance_free(in);

  /* The same through show --json: the stable field names. */
  r = CTL(h.addr, "show", "s1", "--json");
  ASSERT_EXIT(r, 0);
  json_object *doc = ctl_doc(&r);
  ASSERT_STR_EQ(jstr(doc, "instanceId"), "s1");
  ASSERT_STR_EQ(jstr(doc, "name"), "orchA");
  ASSERT_STR_EQ(jstr(doc, "version"), "2.1");
  ASSERT_STR_EQ(jstr(doc, "status"), "PENDING");
  ASSERT_STR_EQ(jstr(doc, "input"), "{\"k\":[1,2]}");
  ASSERT_STR_EQ(jstr(doc, "scheduledStartAt"), at);
  ASSERT(is_rfc3339_ms(jstr(doc, "createdAt")));
  ASSERT(is_rfc3339_ms(jstr(doc, "lastUpdatedAt")));
  ASSERT(jget(doc, "completedAt") == NULL);
  ASSERT(jget(doc, "output") == NULL);
  ASSERT(jget(doc, "failure") == NULL);
  ASSERT_STR_EQ(jstr(jget(doc, "tags"), "team"), "ops");
  ASSERT_STR_EQ(jstr(jget(doc, "tags"), "env"), "dev=x");
  ASSERT(json_object_is_type(jget(doc, "history"), json_type_array));
  json_object_put(doc);
  ctl_res_free(&r);

  /* --input-file, trailing newline dropped; and - for stdin. */
  char path[] = "/tmp/ctl-input-XXXXXX";
  int fd = mkstemp(path);
  ASSERT(fd >= 0);
  static const char body[] = "{\"from\": \"file\"}\n";
  ASSERT_EQ(write(fd, body, sizeof body - 1), (ssize_t)(sizeof body - 1));
  close(fd);
  r = CTL(h.addr, "start", "orchA", "--id", "s2", "--input-file", path);
  unlink(path);
  ASSERT_EXIT(r, 0);
  ctl_res_free(&r);
  in = get(&h, "s2");
  ASSERT_STR_EQ(in->input, "{\"from\": \"file\"}");
  ASSERT_EQ(in->scheduled_start_ms, 0);
  dt_instance_free(in);
  r = ctl_run(&(ctl_opts){.address = h.addr, .stdin_text = "[1,2,3]\n"},
              (const char *const[]){"start", "orchA", "--id", "s3", "--input-file", "-", NULL});
  ASSERT_EXIT(r, 0);
  ctl_res_free(&r);
  in = get(&h, "s3");
  ASSERT_STR_EQ(in->input, "[1,2,3]");
  dt_instance_free(in);
  /* A file that is not JSON is a usage error. */
  r = ctl_run(&(ctl_opts){.address = h.addr, .stdin_text = "not json"},
              (const char *const[]){"start", "orchA", "--id", "s3b", "--input-file", "-", NULL});
  ASSERT_EXIT(r, 2);
  ctl_res_free(&r);
  ASSERT(!exists(&h, "s3b"));

  /* Without --id: a random 32-hex-digit id. */
  r = CTL(h.addr, "start", "orchA");
  ASSERT_EXIT(r, 0);
  ASSERT_EQ(strlen(r.out), 33);
  ASSERT_EQ(strspn(r.out, "0123456789abcdef"), 32);
  r.out[32] = '\0';
  in = get(&h, r.out);
  ASSERT(in != NULL);
  ASSERT(in->input == NULL);
  dt_instance_free(in);
  ctl_res_free(&r);

  /* JSON output. */
  r = CTL(h.addr, "--json", "start", "orchA", "--id", "s4");
  ASSERT_EXIT(r, 0);
  doc = ctl_doc(&r);
  ASSERT_STR_EQ(jstr(doc, "instanceId"), "s4");
  ASSERT_STR_EQ(jstr(doc, "operation"), "start");
  ASSERT_STR_EQ(jstr(doc, "name"), "orchA");
  json_object_put(doc);
  ctl_res_free(&r);

  /* A taken id: exit 4, in text and in JSON. */
  r = CTL(h.addr, "start", "orchA", "--id", "s1");
  ASSERT_EXIT(r, 4);
  ASSERT_STR_CONTAINS(r.err, "'s1' already exists");
  ctl_res_free(&r);
  r = CTL(h.addr, "start", "orchA", "--id", "s1", "-o", "json");
  ASSERT_EXIT(r, 4);
  doc = ctl_doc(&r);
  ASSERT_STR_EQ(jerror_code(doc), "ALREADY_EXISTS");
  json_object_put(doc);
  ctl_res_free(&r);
  hub_stop(&h);
  return 0;
}

/* ------------------------------------------------------------------ list */

TEST_IMPL(ctl_list_filters)
{
  hub h;
  int rc = hub_start(&h, false);
  if (rc)
    return rc;
  sched(&h, "alpha", "a-1", "\"in-a1\"");
  sched(&h, "alpha", "a-2", "\"in-a2\"");
  sleep_ms(50);
  int64_t mid = wall_ms();
  sleep_ms(50);
  sched(&h, "beta", "b-1", "{\"n\":1}");
  sched(&h, "beta", "b-2", "{\"n\":2}");
  sched(&h, "beta", "b-3", "{\"n\":3}");
  terminate(&h, "a-2", "\"stop-a2\"");
  terminate(&h, "b-3", NULL);
  char t_mid[48];
  fmt_time(mid, t_mid, sizeof t_mid);

  char *ids = LIST_IDS(&h, "--page-size", "100");
  ASSERT_STR_EQ(ids, "a-1,a-2,b-1,b-2,b-3");
  free(ids);
  ids = LIST_IDS(&h, "--prefix", "a-");
  ASSERT_STR_EQ(ids, "a-1,a-2");
  free(ids);
  ids = LIST_IDS(&h, "--status", "TERMINATED");
  ASSERT_STR_EQ(ids, "a-2,b-3");
  free(ids);
  ids = LIST_IDS(&h, "--status", "terminated", "--status", "Pending");
  ASSERT_STR_EQ(ids, "a-1,a-2,b-1,b-2,b-3");
  free(ids);
  ids = LIST_IDS(&h, "--status", "PENDING,COMPLETED");
  ASSERT_STR_EQ(ids, "a-1,b-1,b-2");
  free(ids);
  ids = LIST_IDS(&h, "--created-before", t_mid);
  ASSERT_STR_EQ(ids, "a-1,a-2");
  free(ids);
  ids = LIST_IDS(&h, "--created-after", t_mid);
  ASSERT_STR_EQ(ids, "b-1,b-2,b-3");
  free(ids);
  ids = LIST_IDS(&h, "--created-after", t_mid, "--status", "PENDING");
  ASSERT_STR_EQ(ids, "b-1,b-2");
  free(ids);
  ids = LIST_IDS(&h, "--created-after", "2000-01-01", "--created-before", t_mid, "--prefix", "a-", "--status",
                 "TERMINATED");
  ASSERT_STR_EQ(ids, "a-2");
  free(ids);
  ids = LIST_IDS(&h, "--prefix", "zzz");
  ASSERT_STR_EQ(ids, "");
  free(ids);

  /* JSON fields, without and with payloads. */
  ctl_res r = CTL(h.addr, "--json", "list", "--prefix", "a-");
  ASSERT_EXIT(r, 0);
  json_object *doc = ctl_doc(&r);
  ASSERT(jget(doc, "continuationToken") == NULL);
  json_object *arr = jget(doc, "instances");
  for (size_t i = 0; i < json_object_array_length(arr); i++) {
    json_object *o = json_object_array_get_idx(arr, i);
    ASSERT_STR_EQ(jstr(o, "name"), "alpha");
    ASSERT(is_rfc3339_ms(jstr(o, "createdAt")));
    ASSERT(is_rfc3339_ms(jstr(o, "lastUpdatedAt")));
    ASSERT(jget(o, "input") == NULL); /* no --payloads */
    ASSERT(json_object_is_type(jget(o, "tags"), json_type_object));
    if (strcmp(jstr(o, "instanceId"), "a-2") == 0) {
      ASSERT_STR_EQ(jstr(o, "status"), "TERMINATED");
      ASSERT(is_rfc3339_ms(jstr(o, "completedAt")));
    } else {
      ASSERT_STR_EQ(jstr(o, "status"), "PENDING");
      ASSERT(jget(o, "completedAt") == NULL);
    }
  }
  json_object_put(doc);
  ctl_res_free(&r);
  r = CTL(h.addr, "--json", "list", "--prefix", "a-", "--payloads");
  ASSERT_EXIT(r, 0);
  doc = ctl_doc(&r);
  arr = jget(doc, "instances");
  ASSERT_EQ(json_object_array_length(arr), 2);
  for (size_t i = 0; i < 2; i++) {
    json_object *o = json_object_array_get_idx(arr, i);
    if (strcmp(jstr(o, "instanceId"), "a-2") == 0) {
      ASSERT_STR_EQ(jstr(o, "input"), "\"in-a2\"");
      ASSERT_STR_EQ(jstr(o, "output"), "\"stop-a2\"");
    } else {
      ASSERT_STR_EQ(jstr(o, "input"), "\"in-a1\"");
      ASSERT(jget(o, "output") == NULL);
    }
  }
  json_object_put(doc);
  ctl_res_free(&r);

  /* Text: a header and one row per instance; payload lines with --payloads. */
  r = CTL(h.addr, "list", "--prefix", "a-");
  ASSERT_EXIT(r, 0);
  ASSERT_EQ(count_lines(r.out, "INSTANCE ID"), 1);
  char *l1 = line_with(r.out, "a-1 ");
  char *l2 = line_with(r.out, "a-2 ");
  ASSERT(l1 && l2);
  ASSERT_STR_CONTAINS(l1, "alpha");
  ASSERT_STR_CONTAINS(l1, "PENDING");
  ASSERT_STR_CONTAINS(l2, "TERMINATED");
  free(l1);
  free(l2);
  ASSERT(index_of(r.out, "input:") < 0);
  ctl_res_free(&r);
  r = CTL(h.addr, "list", "--prefix", "b-", "--payloads");
  ASSERT_EXIT(r, 0);
  ASSERT_EQ(count_lines(r.out, "input: {\"n\":"), 3);
  ctl_res_free(&r);
  r = CTL(h.addr, "list", "--prefix", "zzz");
  ASSERT_EXIT(r, 0);
  ASSERT_STR_EQ(r.out, "no instances\n");
  ctl_res_free(&r);
  hub_stop(&h);
  return 0;
}

TEST_IMPL(ctl_list_paging)
{
  hub h;
  int rc = hub_start(&h, false);
  if (rc)
    return rc;
  for (int i = 1; i <= 5; i++) {
    char id[16];
    snprintf(id, sizeof id, "pg-%d", i);
    sched(&h, "pager", id, NULL);
  }
  sched(&h, "pager", "other", NULL);

  /* Page by page through --continuation. */
  char *token = NULL, all[256] = "";
  int pages = 0, seen = 0;
  for (;;) {
    const char *args[10] = {"--json", "list", "--prefix", "pg-", "--page-size", "2", NULL};
    if (token) {
      args[6] = "--continuation";
      args[7] = token;
      args[8] = NULL;
    }
    ctl_res r = ctl_run(&(ctl_opts){.address = h.addr}, args);
    ASSERT_EXIT(r, 0);
    json_object *doc = ctl_doc(&r);
    json_object *arr = jget(doc, "instances");
    size_t n = json_object_array_length(arr);
    ASSERT_LE(n, 2);
    for (size_t i = 0; i < n; i++) {
      const char *id = jstr(json_object_array_get_idx(arr, i), "instanceId");
      char needle[32];
      snprintf(needle, sizeof needle, "[%s]", id);
      ASSERT(strstr(all, needle) == NULL); /* no instance twice */
      strcat(all, needle);
      seen++;
    }
    pages++;
    free(token);
    token = jstr(doc, "continuationToken") ? strdup(jstr(doc, "continuationToken")) : NULL;
    if (pages < 3)
      ASSERT(token != NULL);
    json_object_put(doc);
    ctl_res_free(&r);
    if (!token)
      break;
    ASSERT_LE(pages, 5);
  }
  ASSERT_EQ(seen, 5);
  ASSERT_EQ(pages, 3);

  /* --all follows the tokens. */
  char *ids = LIST_IDS(&h, "--prefix", "pg-", "--page-size", "2", "--all");
  ASSERT_STR_EQ(ids, "pg-1,pg-2,pg-3,pg-4,pg-5");
  free(ids);
  ctl_res r = CTL(h.addr, "--json", "list", "--prefix", "pg-", "--page-size", "2", "--all");
  json_object *doc = ctl_doc(&r);
  ASSERT(jget(doc, "continuationToken") == NULL);
  ASSERT_EQ(jint(doc, "count"), 5);
  json_object_put(doc);
  ctl_res_free(&r);

  /* Text: one page, then the token to go on with. */
  r = CTL(h.addr, "list", "--prefix", "pg-", "--page-size", "2");
  ASSERT_EXIT(r, 0);
  ASSERT_EQ(count_lines(r.out, " pager "), 2); /* rows (the token may hold an id, never the name) */
  char *more = line_with(r.out, "--continuation ");
  ASSERT(more != NULL);
  const char *tok = strstr(more, "--continuation ") + strlen("--continuation ");
  ASSERT_GT(strlen(tok), 0);
  ctl_res r2 = CTL(h.addr, "list", "--prefix", "pg-", "--page-size", "2", "--continuation", tok);
  ASSERT_EXIT(r2, 0);
  ASSERT_EQ(count_lines(r2.out, " pager "), 2);
  ctl_res_free(&r2);
  free(more);
  ctl_res_free(&r);
  r = CTL(h.addr, "list", "--prefix", "pg-", "--page-size", "2", "--all");
  ASSERT_EXIT(r, 0);
  ASSERT_EQ(count_lines(r.out, " pager "), 5);
  ASSERT(index_of(r.out, "--continuation") < 0);
  ctl_res_free(&r);
  hub_stop(&h);
  return 0;
}
