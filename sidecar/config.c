#include "config.h"

#include <libpq-fe.h>

#include "common/log.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#ifndef TASKHUBD_VERSION
#define TASKHUBD_VERSION "0.0.0"
#endif

enum opt_kind { OPT_STR, OPT_SIZE, OPT_INT, OPT_BOOL, OPT_FLAG, OPT_LEVEL, OPT_LOGFMT };

struct opt {
  const char *flag;
  const char *env;
  enum opt_kind kind;
  size_t offset;
  size_t len; /* for OPT_STR buffers */
  const char *arg;
  const char *help;
};

#define F(field) offsetof(struct sc_config, field)

static const struct opt opts[] = {
    {"--listen", "TASKHUBD_LISTEN", OPT_STR, F(listen), sizeof(((struct sc_config *)0)->listen),
     "HOST:PORT", "gRPC address; port 0 picks a free port; unix:PATH also works (default 127.0.0.1:4001)"},
    {"--data-dir", "TASKHUBD_DATA_DIR", OPT_STR, F(data_dir), sizeof(((struct sc_config *)0)->data_dir),
     "DIR", "RocksDB directory, created if missing (default ./taskhubd-data)"},
    {"--store", "TASKHUBD_STORE", OPT_STR, F(store), sizeof(((struct sc_config *)0)->store), "STORE",
     "rocksdb:DIR (the default, in --data-dir), or a PostgreSQL URI (postgresql://...) or conninfo "
     "(\"host=... dbname=...\"; replicas on one database share its partitions); its password comes from PGPASSWORD or PGPASSFILE, "
     "never from here"},
    {"--replica-id", "TASKHUBD_REPLICA_ID", OPT_STR, F(replica_id), sizeof(((struct sc_config *)0)->replica_id),
     "NAME", "with PostgreSQL: this replica's name, unique among the replicas of one task hub (default: the host "
     "name, which is the pod name in Kubernetes)"},
    {"--partition-lease", "TASKHUBD_PARTITION_LEASE", OPT_INT, F(partition_lease_s), 0, "SECONDS",
     "with PostgreSQL: a replica that stops renewing its partitions (killed, stalled, cut off) loses them to "
     "another after this long (default 15)"},
    {"--log-level", "TASKHUBD_LOG_LEVEL", OPT_LEVEL, F(log_level), 0, "LEVEL",
     "debug, info, warn or error (default info)"},
    {"--log-format", "TASKHUBD_LOG_FORMAT", OPT_LOGFMT, F(log_json), 0, "logfmt|json",
     "one line per event on stderr, as logfmt or as JSON objects (default logfmt)"},
    {"--ops-listen", "TASKHUBD_OPS_LISTEN", OPT_STR, F(ops_listen), sizeof(((struct sc_config *)0)->ops_listen),
     "HOST:PORT", "HTTP port for /healthz, /readyz, /metrics and POST /admin/drain; \"off\" disables it "
     "(default 127.0.0.1:9464)"},
    {"--drain-grace", "TASKHUBD_DRAIN_GRACE", OPT_INT, F(drain_grace_s), 0, "SECONDS",
     "on SIGTERM, stop handing out work and wait this long for work items in flight (default 30)"},
    {"--max-message", "TASKHUBD_MAX_MESSAGE", OPT_SIZE, F(max_message), 0, "BYTES",
     "largest gRPC message taskhubd receives (default 16M)"},
    {"--max-send-message", "TASKHUBD_MAX_SEND_MESSAGE", OPT_SIZE, F(max_send_message), 0, "BYTES",
     "largest message taskhubd sends: work items, replies, history chunks; the SDKs receive 4 MiB by default, "
     "raise theirs with this (default 4M)"},
    {"--max-payload", "TASKHUBD_MAX_PAYLOAD", OPT_SIZE, F(max_payload), 0, "BYTES",
     "largest input, output, event, result, custom status, failure or tag set; five of them must fit in "
     "--max-send-message (default 512K)"},
    {"--max-inbox", "TASKHUBD_MAX_INBOX", OPT_SIZE, F(max_inbox), 0, "N",
     "messages waiting for one instance before RaiseEvent is refused (default 10000)"},
    {"--max-inbox-bytes", "TASKHUBD_MAX_INBOX_BYTES", OPT_SIZE, F(max_inbox_bytes), 0, "BYTES",
     "bytes waiting for one instance before RaiseEvent is refused (default 64M)"},
    {"--max-history", "TASKHUBD_MAX_HISTORY", OPT_SIZE, F(max_history), 0, "N",
     "events in one execution's history; an orchestration that grows past it fails (default 100000)"},
    {"--max-id-length", "TASKHUBD_MAX_ID_LENGTH", OPT_SIZE, F(max_id_length), 0, "N",
     "longest instance id in bytes, at most 1024 (default 256)"},
    {"--max-name-length", "TASKHUBD_MAX_NAME_LENGTH", OPT_SIZE, F(max_name_length), 0, "N",
     "longest orchestration, activity or event name in bytes (default 256)"},
    {"--wait-cap", "TASKHUBD_WAIT_CAP", OPT_INT, F(wait_cap_s), 0, "SECONDS",
     "longest WaitForInstance* call without a client deadline (default 600)"},
    {"--purge-timeout", "TASKHUBD_PURGE_TIMEOUT", OPT_INT, F(purge_timeout_s), 0, "SECONDS",
     "time budget of a purge by filter without its own timeout (default 30)"},
    {"--orphan-grace", "TASKHUBD_ORPHAN_GRACE", OPT_INT, F(orphan_grace_s), 0, "SECONDS",
     "a disconnected worker's work items go to the next worker at once; until then, for at most this long, "
     "their old tokens still complete them (default 30)"},
    {"--health-ping", "TASKHUBD_HEALTH_PING", OPT_INT, F(health_ping_s), 0, "SECONDS",
     "send a HealthPing on work-item streams idle this long (default 20)"},
    {"--max-work-items", "TASKHUBD_MAX_WORK_ITEMS", OPT_INT, F(max_work_items), 0, "N",
     "work items of each kind in flight per worker: the limit of a worker that sets none, and the most a worker "
     "may ask for (default 1000)"},
    {"--max-outbox", "TASKHUBD_MAX_OUTBOX", OPT_SIZE, F(max_outbox), 0, "BYTES",
     "a worker's stream with this much not yet sent gets no new work until it reads (default 1M)"},
    {"--max-outbox-total", "TASKHUBD_MAX_OUTBOX_TOTAL", OPT_SIZE, F(max_outbox_total), 0, "BYTES",
     "all workers' streams together with this much not yet sent: only a stream with nothing waiting gets new work "
     "(a worker that reads goes on); 0: no limit (default 256M)"},
    {"--stream-stall", "TASKHUBD_STREAM_STALL", OPT_INT, F(stream_stall_s), 0, "SECONDS",
     "a work-item stream held back with work unsent (it holds --max-outbox, or all streams --max-outbox-total) "
     "that sends nothing for this long is ended with RESOURCE_EXHAUSTED and its work goes to other workers; 0: "
     "never (default 60)"},
    {"--max-queued-commands", "TASKHUBD_MAX_QUEUED_COMMANDS", OPT_SIZE, F(max_queued), 0, "N",
     "client requests waiting for the engine (starts, events, terminations, ...), and reads waiting for a reader "
     "thread, before more are refused with RESOURCE_EXHAUSTED; 0: no limit (default 10000)"},
    {"--max-queued-bytes", "TASKHUBD_MAX_QUEUED_BYTES", OPT_SIZE, F(max_queued_bytes), 0, "BYTES",
     "the same for their request bytes; 0: no limit (default 256M)"},
    {"--orchestration-lease", "TASKHUBD_ORCHESTRATION_LEASE", OPT_INT, F(orch_lease_s), 0, "SECONDS",
     "an orchestration work item not completed or abandoned by then goes to another worker; 0: never "
     "(default 300)"},
    {"--activity-lease", "TASKHUBD_ACTIVITY_LEASE", OPT_INT, F(act_lease_s), 0, "SECONDS",
     "the same for activity work items: longer than your longest activity; 0: never (default 3600)"},
    {"--keepalive", "TASKHUBD_KEEPALIVE", OPT_INT, F(keepalive_s), 0, "SECONDS",
     "ping idle connections this often and close those that do not answer, so a vanished worker's work "
     "items go to others (default 30)"},
    {"--allow-delete-taskhub", "TASKHUBD_ALLOW_DELETE_TASKHUB", OPT_FLAG, F(allow_delete_taskhub), 0, NULL,
     "let DeleteTaskHub and CreateTaskHub(recreateIfExists) wipe all data"},
    {"--group-commit", "TASKHUBD_GROUP_COMMIT", OPT_BOOL, F(group_commit), 0, "on|off",
     "fold concurrent commands into one synced commit (default on)"},
    {"--max-batch", "TASKHUBD_MAX_BATCH", OPT_INT, F(max_batch), 0, "N",
     "most commands folded into one commit (default 1024)"},
    {"--cache-size", "TASKHUBD_CACHE_SIZE", OPT_SIZE, F(cache_size), 0, "BYTES",
     "memory for recently used instances' records, histories and inboxes (default 16M; 0: none kept)"},
    {"--entity-work-items", "TASKHUBD_ENTITY_WORK_ITEMS", OPT_STR, F(entity_work_items),
     sizeof(((struct sc_config *)0)->entity_work_items), "v1|v2",
     "how entity batches are encoded: v1 EntityBatchRequest (every SDK with entities reads it), v2 EntityRequest "
     "with the operations as history events (default v1)"},
    {"--dashboard", "TASKHUBD_DASHBOARD", OPT_STR, F(dashboard), sizeof(((struct sc_config *)0)->dashboard),
     "on|read-only|off",
     "the web dashboard on the ops port (http://OPS-ADDRESS/): on, read-only (no actions), or off (default on)"},
    {"--tls-cert", "TASKHUBD_TLS_CERT", OPT_STR, F(tls_cert), sizeof(((struct sc_config *)0)->tls_cert), "FILE",
     "serve gRPC over TLS with this PEM certificate (chain); needs --tls-key; reloaded on SIGHUP"},
    {"--tls-key", "TASKHUBD_TLS_KEY", OPT_STR, F(tls_key), sizeof(((struct sc_config *)0)->tls_key), "FILE",
     "the PEM private key of --tls-cert; reloaded on SIGHUP"},
    {"--tls-client-ca", "TASKHUBD_TLS_CLIENT_CA", OPT_STR, F(tls_client_ca),
     sizeof(((struct sc_config *)0)->tls_client_ca), "FILE",
     "mutual TLS: refuse clients without a certificate issued by one of these PEM CAs; reloaded on SIGHUP"},
    {"--auth-token-file", "TASKHUBD_AUTH_TOKEN_FILE", OPT_STR, F(auth_token_file),
     sizeof(((struct sc_config *)0)->auth_token_file), "FILE",
     "require \"authorization: Bearer <token>\" on every call but grpc.health.v1, with a token from FILE (one per "
     "line, # comments); reloaded on SIGHUP"},
    {"--allow-insecure", "TASKHUBD_ALLOW_INSECURE", OPT_FLAG, F(allow_insecure), 0, NULL,
     "listen on a non-loopback address without TLS and without --auth-token-file (refused otherwise)"},
    {"--ready-fd", NULL, OPT_INT, F(ready_fd), 0, "FD",
     "once serving, write the bound port and a newline to FD, then close it"},
    {"--ops-ready-fd", NULL, OPT_INT, F(ops_ready_fd), 0, "FD",
     "once the ops port listens (before recovery), write its port and a newline to FD"},
    {"--hold-recovery-fd", NULL, OPT_INT, F(hold_recovery_fd), 0, "FD",
     "testing aid: wait for a byte on FD before recovering state"},
};

void sc_config_usage(FILE *out)
{
  fprintf(out,
          "Usage: taskhubd [OPTIONS]\n"
          "Durable Task sidecar: serves TaskHubSidecarService over gRPC, state in RocksDB.\n\n"
          "Options (each also read from the environment variable shown; flags win):\n");
  for (size_t i = 0; i < sizeof opts / sizeof opts[0]; i++) {
    const struct opt *o = &opts[i];
    char left[64];
    snprintf(left, sizeof left, "%s%s%s", o->flag, o->arg ? " " : "", o->arg ? o->arg : "");
    fprintf(out, "  %-30s %s", left, o->help);
    if (o->env)
      fprintf(out, " [%s]", o->env);
    fputc('\n', out);
  }
  fprintf(out, "  %-30s %s\n  %-30s %s\n", "--help", "print this help and exit",
          "--version", "print the version and exit");
  fprintf(out, "\nSIGTERM or SIGINT stops taskhubd cleanly: it stops accepting calls, finishes and\n"
               "commits what is in flight, and closes the store. SIGHUP reloads the TLS files and the token\n"
               "file (open streams stay); a file that fails to load leaves the old one in force.\n");
}

struct sc_limits sc_config_limits(const struct sc_config *c)
{
  return (struct sc_limits){
      .max_id = c->max_id_length,
      .max_name = c->max_name_length,
      .max_payload = c->max_payload,
      .max_history = c->max_history,
  };
}

int sc_parse_size(const char *s, size_t *out)
{
  errno = 0;
  char *end = NULL;
  unsigned long long v = strtoull(s, &end, 10);
  if (errno || end == s || s[0] == '-')
    return -1;
  unsigned long long mul = 1;
  if (*end == 'K' || *end == 'k')
    mul = 1ULL << 10;
  else if (*end == 'M' || *end == 'm')
    mul = 1ULL << 20;
  else if (*end == 'G' || *end == 'g')
    mul = 1ULL << 30;
  if (mul != 1) {
    end++;
    if (*end == 'i' || *end == 'B')
      end++;
    if (*end == 'B')
      end++;
  }
  if (*end)
    return -1;
  if (v > SIZE_MAX / mul)
    return -1;
  *out = (size_t)(v * mul);
  return 0;
}

static int set(struct sc_config *c, const struct opt *o, const char *val,
               const char *from, FILE *err)
{
  char *p = (char *)c + o->offset;
  switch (o->kind) {
  case OPT_STR:
    if (strlen(val) >= o->len) {
      fprintf(err, "taskhubd: %s: value too long (at most %zu bytes)\n", from, o->len - 1);
      return -1;
    }
    strcpy(p, val);
    return 0;
  case OPT_SIZE: {
    size_t v;
    /* Zero is a size only for the cache, where it means keep nothing, and for the limits where it means none. */
    bool zero_ok = o->offset == F(cache_size) || o->offset == F(max_outbox_total) || o->offset == F(max_queued) ||
                   o->offset == F(max_queued_bytes);
    if (sc_parse_size(val, &v) < 0 || (v == 0 && !zero_ok)) {
      fprintf(err, "taskhubd: %s: expected a positive size like 4096, 64K or 16M, got \"%s\"\n", from, val);
      return -1;
    }
    *(size_t *)p = v;
    return 0;
  }
  case OPT_INT: {
    char *end;
    errno = 0;
    long long v = strtoll(val, &end, 10);
    if (errno || end == val || *end || v < 0) {
      fprintf(err, "taskhubd: %s: expected a non-negative integer, got \"%s\"\n", from, val);
      return -1;
    }
    if (o->offset == F(ready_fd) || o->offset == F(max_batch) || o->offset == F(max_work_items) ||
        o->offset == F(ops_ready_fd) || o->offset == F(hold_recovery_fd)) {
      if (v > 1 << 30) {
        fprintf(err, "taskhubd: %s: value too large\n", from);
        return -1;
      }
      *(int *)p = (int)v;
    } else {
      *(int64_t *)p = v;
    }
    return 0;
  }
  case OPT_BOOL:
  case OPT_FLAG:
    if (!strcmp(val, "on") || !strcmp(val, "1") || !strcmp(val, "true") || !strcmp(val, "yes"))
      *(bool *)p = true;
    else if (!strcmp(val, "off") || !strcmp(val, "0") || !strcmp(val, "false") || !strcmp(val, "no"))
      *(bool *)p = false;
    else {
      fprintf(err, "taskhubd: %s: expected on or off, got \"%s\"\n", from, val);
      return -1;
    }
    return 0;
  case OPT_LOGFMT:
    if (strcmp(val, "json") == 0)
      *(bool *)p = true;
    else if (strcmp(val, "logfmt") == 0)
      *(bool *)p = false;
    else {
      fprintf(err, "taskhubd: %s: expected logfmt or json, got \"%s\"\n", from, val);
      return -1;
    }
    return 0;
  case OPT_LEVEL: {
    int l = sc_log_parse_level(val);
    if (l < 0) {
      fprintf(err, "taskhubd: %s: expected debug, info, warn or error, got \"%s\"\n", from, val);
      return -1;
    }
    *(int *)p = l;
    return 0;
  }
  }
  return -1;
}

/* HOST:PORT ([V6]:PORT for IPv6) with a port of 0-65535, or unix:PATH. gRPC core would take "127.0.0.1" alone as
 * port 443 (the https default of its URI parser): a typo that serves somewhere nobody looks. */
static int check_address(const char *flag, const char *v, bool unix_ok, FILE *err)
{
  if (!strncmp(v, "unix:", 5)) {
    if (!unix_ok) {
      fprintf(err, "taskhubd: %s: unix sockets are not supported here, expected HOST:PORT, got \"%s\"\n", flag, v);
      return -1;
    }
    if (!v[5]) {
      fprintf(err, "taskhubd: %s: unix: needs a path (unix:/run/taskhubd.sock)\n", flag);
      return -1;
    }
    return 0;
  }
  const char *colon = strrchr(v, ':');
  const char *close = strrchr(v, ']');
  bool v6 = v[0] == '[';
  bool ok = colon && colon != v && colon[1] && (!v6 || (close && close + 1 == colon)) &&
            (v6 || strchr(v, ':') == colon);
  char *end = NULL;
  long port = ok ? strtol(colon + 1, &end, 10) : -1;
  if (!ok || *end || port < 0 || port > 65535) {
    fprintf(err, "taskhubd: %s: expected HOST:PORT (%s; port 0 picks a free one)%s, got \"%s\"\n", flag,
            unix_ok ? "127.0.0.1:4001, [::1]:4001" : "127.0.0.1:9464", unix_ok ? " or unix:PATH" : "", v);
    return -1;
  }
  return 0;
}

int sc_config_parse(struct sc_config *c, int argc, char **argv, FILE *out,
                    FILE *err)
{
  memset(c, 0, sizeof *c);
  strcpy(c->listen, "127.0.0.1:4001");
  strcpy(c->data_dir, "taskhubd-data");
  c->ready_fd = -1;
  c->log_level = SC_LOG_INFO;
  c->max_message = 16u << 20;
  c->max_send_message = 4u << 20;
  c->max_payload = 512u << 10;
  c->max_inbox = 10000;
  c->max_inbox_bytes = 64u << 20;
  c->max_history = 100000;
  c->max_outbox = 1u << 20;
  c->max_outbox_total = 256u << 20;
  c->stream_stall_s = 60;
  c->max_queued = 10000;
  c->max_queued_bytes = 256u << 20;
  c->keepalive_s = 30;
  c->orch_lease_s = 300;
  c->act_lease_s = 3600;
  c->max_id_length = 256;
  c->max_name_length = 256;
  c->wait_cap_s = 600;
  c->group_commit = true;
  c->max_batch = 1024;
  c->purge_timeout_s = 30;
  c->orphan_grace_s = 30;
  c->health_ping_s = 20;
  c->max_work_items = 1000;
  strcpy(c->ops_listen, "127.0.0.1:9464");
  c->ops_ready_fd = -1;
  c->drain_grace_s = 30;
  c->hold_recovery_fd = -1;
  c->cache_size = 16u << 20;
  strcpy(c->entity_work_items, "v1");
  strcpy(c->dashboard, "on");
  c->partition_lease_s = 15;
  if (gethostname(c->replica_id, sizeof c->replica_id - 1) != 0 || !c->replica_id[0])
    strcpy(c->replica_id, "taskhubd");

  for (size_t i = 0; i < sizeof opts / sizeof opts[0]; i++) {
    const char *v = opts[i].env ? getenv(opts[i].env) : NULL;
    if (v && *v && set(c, &opts[i], v, opts[i].env, err) < 0)
      return -1;
  }
  for (int a = 1; a < argc; a++) {
    const char *arg = argv[a];
    if (!strcmp(arg, "--help") || !strcmp(arg, "-h")) {
      sc_config_usage(out);
      return 1;
    }
    if (!strcmp(arg, "--version")) {
      fprintf(out, "taskhubd %s\n", TASKHUBD_VERSION);
      return 1;
    }
    const struct opt *o = NULL;
    const char *val = NULL;
    for (size_t i = 0; i < sizeof opts / sizeof opts[0]; i++) {
      size_t fl = strlen(opts[i].flag);
      if (!strncmp(arg, opts[i].flag, fl) && (arg[fl] == 0 || arg[fl] == '=')) {
        o = &opts[i];
        if (arg[fl] == '=')
          val = arg + fl + 1;
        break;
      }
    }
    if (!o) {
      fprintf(err, "taskhubd: unknown option \"%s\" (see --help)\n", arg);
      return -1;
    }
    if (!val) {
      if (o->kind == OPT_FLAG) {
        val = "on";
      } else if (a + 1 < argc) {
        val = argv[++a];
      } else {
        fprintf(err, "taskhubd: %s needs a value (see --help)\n", o->flag);
        return -1;
      }
    }
    if (set(c, o, val, o->flag, err) < 0)
      return -1;
  }
  if (!strncmp(c->store, "rocksdb:", 8)) {
    if (!c->store[8]) {
      fprintf(err, "taskhubd: --store rocksdb:DIR needs a directory\n");
      return -1;
    }
    memmove(c->data_dir, c->store + 8, strlen(c->store + 8) + 1);
  } else if (c->store[0]) {
    char *perr = NULL;
    PQconninfoOption *o = PQconninfoParse(c->store, &perr);
    if (!o) {
      fprintf(err, "taskhubd: --store: not rocksdb:DIR nor a PostgreSQL URI or conninfo: %s", perr ? perr : "\n");
      PQfreemem(perr);
      return -1;
    }
    bool has_password = false;
    for (PQconninfoOption *i = o; i->keyword; i++)
      has_password |= !strcmp(i->keyword, "password") && i->val && i->val[0];
    PQconninfoFree(o);
    if (has_password) {
      fprintf(err, "taskhubd: --store must not hold the password (it would show in the process list): put it in "
                   "PGPASSWORD or a PGPASSFILE\n");
      return -1;
    }
    c->store_postgres = true;
  }
  if (check_address("--listen", c->listen, true, err) < 0 ||
      (strcmp(c->ops_listen, "off") != 0 && c->ops_listen[0] &&
       check_address("--ops-listen", c->ops_listen, false, err) < 0))
    return -1;
  if (strcmp(c->dashboard, "on") != 0 && strcmp(c->dashboard, "read-only") != 0 && strcmp(c->dashboard, "off") != 0) {
    fprintf(err, "taskhubd: --dashboard: expected on, read-only or off, got \"%s\"\n", c->dashboard);
    return -1;
  }
  if (strcmp(c->entity_work_items, "v1") != 0 && strcmp(c->entity_work_items, "v2") != 0) {
    fprintf(err, "taskhubd: --entity-work-items: expected v1 or v2, got \"%s\"\n", c->entity_work_items);
    return -1;
  }
  if (c->partition_lease_s < 1) {
    fprintf(err, "taskhubd: --partition-lease must be at least 1 second\n");
    return -1;
  }
  if (!c->replica_id[0]) {
    fprintf(err, "taskhubd: --replica-id must not be empty\n");
    return -1;
  }
  if (c->wait_cap_s == 0) {
    fprintf(err, "taskhubd: --wait-cap must be at least 1 second\n");
    return -1;
  }
  if (c->max_id_length > 1024) {
    fprintf(err, "taskhubd: --max-id-length cannot exceed 1024\n");
    return -1;
  }
  if (c->health_ping_s == 0 || c->max_work_items == 0) {
    fprintf(err, "taskhubd: --health-ping and --max-work-items must be at least 1\n");
    return -1;
  }
  if (!c->tls_cert[0] != !c->tls_key[0]) {
    fprintf(err, "taskhubd: --tls-cert and --tls-key go together (a certificate and its private key)\n");
    return -1;
  }
  if (c->tls_client_ca[0] && !c->tls_cert[0]) {
    fprintf(err, "taskhubd: --tls-client-ca needs --tls-cert and --tls-key (mutual TLS is TLS first)\n");
    return -1;
  }
  if (c->max_batch < 1)
    c->max_batch = 1;
  if (!c->group_commit)
    c->max_batch = 1;
  if (c->max_payload > c->max_message) {
    fprintf(err, "taskhubd: --max-payload (%zu) cannot exceed --max-message (%zu)\n", c->max_payload,
            c->max_message);
    return -1;
  }
  /* An instance's state (input, output, custom status, failure, tags) must fit in one reply, and its start in
   * one work item, or what was accepted could never be read back or run. */
  if (c->max_payload > (c->max_send_message - (c->max_send_message < (64u << 10) ? 0 : 64u << 10)) / 5) {
    fprintf(err,
            "taskhubd: --max-payload (%zu) is too large for --max-send-message (%zu): an instance's input, "
            "output, custom status, failure and tags must fit in one reply; raise --max-send-message to at "
            "least %zu (and the SDKs' receive limit with it)\n",
            c->max_payload, c->max_send_message, c->max_payload * 5 + (64u << 10));
    return -1;
  }
  if (c->keepalive_s == 0) {
    fprintf(err, "taskhubd: --keepalive must be at least 1 second\n");
    return -1;
  }
  return 0;
}
