#include "ops.h"

#include "counts.h"
#include "guard.h"

#include "common/log.h"
#include "common/metrics.h"
#include "common/util.h"
#include "dashboard/dashboard.h"

#include <arpa/inet.h>
#include <errno.h>
#include <sys/socket.h>
#include <grpc/grpc.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#ifndef TASKHUBD_VERSION
#define TASKHUBD_VERSION "0.0.0"
#endif

struct sc_ops {
  struct MHD_Daemon *d;
  _Atomic(struct sc_engine *) engine;
  _Atomic(struct sc_store *) store;
  atomic_bool ready;
  int64_t start_us;
  /* Instances and entities, counted on their own thread (counts.h): a scrape renders the last count and never
   * waits for the store. Shared with the dashboard. */
  struct sc_counts *counts;
  /* NULL: --dashboard off. Set by the main thread after the port opens (its first requests may come before),
   * read by the ops thread. */
  _Atomic(struct sc_dashboard *) dash;
};

/* ------------------------------------------------------------------ rendering */

struct buf {
  char *p;
  size_t n, cap;
};

static void put(struct buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void put(struct buf *b, const char *fmt, ...)
{
  for (;;) {
    va_list ap;
    va_start(ap, fmt);
    int w = vsnprintf(b->p ? b->p + b->n : NULL, b->p ? b->cap - b->n : 0, fmt, ap);
    va_end(ap);
    if (w < 0)
      return;
    if (b->p && (size_t)w < b->cap - b->n) {
      b->n += (size_t)w;
      return;
    }
    size_t cap = b->cap ? b->cap * 2 : 16384;
    while (cap < b->n + (size_t)w + 1)
      cap *= 2;
    char *np = realloc(b->p, cap);
    if (!np)
      sc_panic("out of memory rendering metrics");
    b->p = np;
    b->cap = cap;
  }
}

static void help(struct buf *b, const char *name, const char *type, const char *text)
{
  put(b, "# HELP %s %s\n# TYPE %s %s\n", name, text, name, type);
}

/* A metric of one series without labels. */
static void single(struct buf *b, const char *name, const char *type, const char *text, atomic_uint_fast64_t *v)
{
  help(b, name, type, text);
  put(b, "%s %llu\n", name, (unsigned long long)atomic_load_explicit(v, memory_order_relaxed));
}

static void hist(struct buf *b, const char *name, const char *labels, const struct sc_hist *h, const double *bounds,
                 size_t nb)
{
  uint64_t cum = 0;
  const char *sep = labels[0] ? "," : "";
  for (size_t i = 0; i < nb; i++) {
    cum += atomic_load_explicit(&h->le[i], memory_order_relaxed);
    put(b, "%s_bucket{%s%sle=\"%g\"} %llu\n", name, labels, sep, bounds[i], (unsigned long long)cum);
  }
  cum += atomic_load_explicit(&h->le[nb], memory_order_relaxed);
  put(b, "%s_bucket{%s%sle=\"+Inf\"} %llu\n", name, labels, sep, (unsigned long long)cum);
  put(b, "%s_sum%s%s%s %.6f\n", name, labels[0] ? "{" : "", labels, labels[0] ? "}" : "",
      (double)atomic_load_explicit(&h->sum_micros, memory_order_relaxed) / 1e6);
  put(b, "%s_count%s%s%s %llu\n", name, labels[0] ? "{" : "", labels, labels[0] ? "}" : "",
      (unsigned long long)atomic_load_explicit(&h->count, memory_order_relaxed));
}

static const char *const grpc_code_names[SC_GRPC_CODES] = {
    "OK", "CANCELLED", "UNKNOWN", "INVALID_ARGUMENT", "DEADLINE_EXCEEDED", "NOT_FOUND", "ALREADY_EXISTS",
    "PERMISSION_DENIED", "RESOURCE_EXHAUSTED", "FAILED_PRECONDITION", "ABORTED", "OUT_OF_RANGE",
    "UNIMPLEMENTED", "INTERNAL", "UNAVAILABLE", "DATA_LOSS", "UNAUTHENTICATED"};

static const char *const status_names[8] = {"RUNNING", "COMPLETED", "CONTINUED_AS_NEW", "FAILED",
                                            "CANCELED", "TERMINATED", "PENDING", "SUSPENDED"};

static const char *const kind_names[SC_WI_KINDS] = {"orchestration", "activity", "entity"};

static void process_metrics(struct buf *b, struct sc_ops *o)
{
  struct rusage ru;
  getrusage(RUSAGE_SELF, &ru);
  double cpu = (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6 + (double)ru.ru_stime.tv_sec +
               (double)ru.ru_stime.tv_usec / 1e6;
  help(b, "process_cpu_seconds_total", "counter", "User and system CPU time spent in seconds.");
  put(b, "process_cpu_seconds_total %.3f\n", cpu);
  long pages = 0;
  FILE *f = fopen("/proc/self/statm", "r");
  if (f) {
    long size;
    if (fscanf(f, "%ld %ld", &size, &pages) != 2)
      pages = 0;
    fclose(f);
  }
  help(b, "process_resident_memory_bytes", "gauge", "Resident memory size in bytes.");
  put(b, "process_resident_memory_bytes %ld\n", pages * sysconf(_SC_PAGESIZE));
  help(b, "process_start_time_seconds", "gauge", "Start time of the process since unix epoch in seconds.");
  put(b, "process_start_time_seconds %.3f\n", (double)o->start_us / 1e6);
}

char *sc_ops_render_metrics(struct sc_ops *o)
{
  struct buf b = {0};
  struct sc_metrics *m = &sc_metrics;
  size_t n_methods = atomic_load_explicit(&m->n_methods, memory_order_acquire);

  help(&b, "taskhubd_up", "gauge", "1 once the store is open and recovery is done.");
  put(&b, "taskhubd_up %d\n", atomic_load(&o->ready) ? 1 : 0);

  help(&b, "taskhubd_grpc_requests_total", "counter", "gRPC calls handled, by method and status code.");
  for (size_t i = 0; i < n_methods; i++)
    for (int c = 0; c < SC_GRPC_CODES; c++) {
      uint64_t v = atomic_load_explicit(&m->rpc[i][c], memory_order_relaxed);
      if (v)
        put(&b, "taskhubd_grpc_requests_total{method=\"%s\",code=\"%s\"} %llu\n", m->method_names[i],
            grpc_code_names[c], (unsigned long long)v);
    }
  help(&b, "taskhubd_grpc_request_duration_seconds", "histogram",
       "Time from a call's arrival to its status, by method (streams: their whole life).");
  for (size_t i = 0; i < n_methods; i++) {
    if (!atomic_load_explicit(&m->rpc_latency[i].count, memory_order_relaxed))
      continue;
    char labels[96];
    snprintf(labels, sizeof labels, "method=\"%s\"", m->method_names[i]);
    hist(&b, "taskhubd_grpc_request_duration_seconds", labels, &m->rpc_latency[i], sc_latency_bounds,
         SC_LATENCY_BUCKETS);
  }

  help(&b, "taskhubd_work_items_dispatched_total", "counter", "Work items sent to workers, by kind.");
  for (int k = 0; k < SC_WI_KINDS; k++)
    put(&b, "taskhubd_work_items_dispatched_total{kind=\"%s\"} %llu\n", kind_names[k],
        (unsigned long long)atomic_load(&m->dispatched[k]));
  help(&b, "taskhubd_work_items_completed_total", "counter", "Work items completed by workers, by kind.");
  for (int k = 0; k < SC_WI_KINDS; k++)
    put(&b, "taskhubd_work_items_completed_total{kind=\"%s\"} %llu\n", kind_names[k],
        (unsigned long long)atomic_load(&m->completed[k]));
  help(&b, "taskhubd_work_items_abandoned_total", "counter",
       "Work items returned to the queue (abandoned, or their worker went away), by kind.");
  for (int k = 0; k < SC_WI_KINDS; k++)
    put(&b, "taskhubd_work_items_abandoned_total{kind=\"%s\"} %llu\n", kind_names[k],
        (unsigned long long)atomic_load(&m->abandoned[k]));

  help(&b, "taskhubd_orchestrations_started_total", "counter", "Orchestration instances created.");
  put(&b, "taskhubd_orchestrations_started_total %llu\n", (unsigned long long)atomic_load(&m->started));
  help(&b, "taskhubd_orchestrations_completed_total", "counter", "Orchestrations that finished, by status.");
  for (int s = 0; s < 8; s++)
    if (s == 1 || s == 3 || s == 4 || s == 5)
      put(&b, "taskhubd_orchestrations_completed_total{status=\"%s\"} %llu\n", status_names[s],
          (unsigned long long)atomic_load(&m->finished[s]));

  help(&b, "taskhubd_commit_batch_size", "histogram", "Commands folded into one synced commit.");
  hist(&b, "taskhubd_commit_batch_size", "", &m->commit_batch, sc_batch_bounds, SC_BATCH_BUCKETS);
  help(&b, "taskhubd_commit_duration_seconds", "histogram", "Time to write one synced commit.");
  hist(&b, "taskhubd_commit_duration_seconds", "", &m->commit_latency, sc_latency_bounds, SC_LATENCY_BUCKETS);
  single(&b, "taskhubd_commit_failures_total", "counter",
         "Commits the store could not write (a full disk, an I/O error): their calls failed, nothing of them was "
         "written.", &m->commit_failures);
  help(&b, "taskhubd_cache_lookups_total", "counter",
       "Engine reads of an instance's record, history or inbox, by whether the hot-instance cache served them.");
  put(&b, "taskhubd_cache_lookups_total{result=\"hit\"} %llu\n",
      (unsigned long long)atomic_load_explicit(&m->cache_hits, memory_order_relaxed));
  put(&b, "taskhubd_cache_lookups_total{result=\"miss\"} %llu\n",
      (unsigned long long)atomic_load_explicit(&m->cache_misses, memory_order_relaxed));
  help(&b, "taskhubd_cache_bytes", "gauge", "Memory held by the hot-instance cache (budget: --cache-size).");
  put(&b, "taskhubd_cache_bytes %llu\n", (unsigned long long)atomic_load_explicit(&m->cache_bytes, memory_order_relaxed));
  help(&b, "taskhubd_postgres_round_trips_total", "counter",
       "Round trips to PostgreSQL: reads (one statement each) and commits (one pipelined transaction each).");
  put(&b, "taskhubd_postgres_round_trips_total{kind=\"read\"} %llu\n",
      (unsigned long long)atomic_load_explicit(&m->pg_reads, memory_order_relaxed));
  put(&b, "taskhubd_postgres_round_trips_total{kind=\"commit\"} %llu\n",
      (unsigned long long)atomic_load_explicit(&m->pg_commits, memory_order_relaxed));
  single(&b, "taskhubd_postgres_errors_total", "counter", "PostgreSQL statements or commits that failed.",
         &m->pg_errors);
  single(&b, "taskhubd_postgres_reconnects_total", "counter",
         "PostgreSQL connections found broken and opened again.", &m->pg_reconnects);
  single(&b, "taskhubd_partitions_owned", "gauge", "Task hub partitions this replica owns (PostgreSQL store).",
         &m->pg_partitions_owned);
  single(&b, "taskhubd_partition_lease_renewals_total", "counter", "Partition leases renewed.",
         &m->pg_lease_renewals);
  single(&b, "taskhubd_partition_lease_losses_total", "counter",
         "Partition leases found taken by another replica (this one stalled past its lease).", &m->pg_lease_losses);
  single(&b, "taskhubd_fenced_commits_total", "counter",
         "Commits refused because another replica owns the partitions now (nothing of them was written).",
         &m->pg_fenced_commits);
  single(&b, "taskhubd_pg_commit_retries_total", "counter",
         "PostgreSQL commits sent again because PostgreSQL rolled them back as a deadlock victim (40P01) or a "
         "serialization failure (40001).", &m->pg_commit_retries);
  single(&b, "taskhubd_forwarded_total", "counter",
         "Commands for instances of another replica's partitions, written to that partition's incoming table.",
         &m->forwarded);
  single(&b, "taskhubd_forwards_applied_total", "counter",
         "Commands from other replicas applied to this replica's partitions.", &m->forwards_applied);
  single(&b, "taskhubd_inbox_sweep_deliveries_total", "counter",
         "Forwarded commands found by the periodic sweep rather than by a notification (lost in a reconnect).",
         &m->pg_sweep_deliveries);
  help(&b, "taskhubd_stream_buffered_bytes", "gauge",
       "Work items and history chunks waiting to be sent to clients that have not read them yet.");
  put(&b, "taskhubd_stream_buffered_bytes %lld\n",
      (long long)atomic_load_explicit(&m->stream_bytes, memory_order_relaxed));

  struct sc_engine *e = atomic_load(&o->engine);
  if (e) {
    struct sc_engine_stats s;
    sc_engine_get_stats(e, &s);
    help(&b, "taskhubd_commits_total", "counter", "Synced commits written.");
    put(&b, "taskhubd_commits_total %llu\n", (unsigned long long)s.commits);
    help(&b, "taskhubd_queued_commands", "gauge", "Requests waiting for the engine to apply them.");
    put(&b, "taskhubd_queued_commands %llu\n", (unsigned long long)s.queued);
    help(&b, "taskhubd_refused_commands_total", "counter",
         "Requests refused with RESOURCE_EXHAUSTED by --max-queued-commands or --max-queued-bytes.");
    put(&b, "taskhubd_refused_commands_total %llu\n", (unsigned long long)s.refused);
    help(&b, "taskhubd_workers_connected", "gauge", "Open GetWorkItems streams.");
    put(&b, "taskhubd_workers_connected %llu\n", (unsigned long long)s.streams);
    help(&b, "taskhubd_work_items_in_flight", "gauge", "Work items held by workers, by kind.");
    put(&b, "taskhubd_work_items_in_flight{kind=\"orchestration\"} %llu\n",
        (unsigned long long)s.inflight_orchestrations);
    put(&b, "taskhubd_work_items_in_flight{kind=\"activity\"} %llu\n", (unsigned long long)s.inflight_activities);
    help(&b, "taskhubd_ready_queue_depth", "gauge", "Work waiting for a worker, by kind.");
    put(&b, "taskhubd_ready_queue_depth{kind=\"orchestration\"} %llu\n", (unsigned long long)s.ready_orchestrations);
    put(&b, "taskhubd_ready_queue_depth{kind=\"activity\"} %llu\n", (unsigned long long)s.queued_activities);
    help(&b, "taskhubd_waiting_for_worker", "gauge",
         "Work items no connected worker can take now (filters, limits, unread streams).");
    put(&b, "taskhubd_waiting_for_worker %llu\n", (unsigned long long)s.waiting_items);
    help(&b, "taskhubd_timer_queue_depth", "gauge", "Durable timers and scheduled starts not yet due.");
    put(&b, "taskhubd_timer_queue_depth %llu\n", (unsigned long long)s.timers);
    help(&b, "taskhubd_waiting_clients", "gauge", "WaitForInstance* calls parked.");
    put(&b, "taskhubd_waiting_clients %llu\n", (unsigned long long)s.waiters);
    help(&b, "taskhubd_draining", "gauge", "1 while draining before exit.");
    put(&b, "taskhubd_draining %d\n", s.draining ? 1 : 0);
  }
  struct sc_store *st = atomic_load(&o->store);
  if (st) {
    int64_t sst = st->ops->property(st, "rocksdb.total-sst-files-size");
    int64_t mem = st->ops->property(st, "rocksdb.cur-size-all-mem-tables");
    int64_t pend = st->ops->property(st, "rocksdb.compaction-pending");
    int64_t keys = st->ops->property(st, "rocksdb.estimate-num-keys");
    help(&b, "taskhubd_store_size_bytes", "gauge", "RocksDB size: SST files plus memtables.");
    put(&b, "taskhubd_store_size_bytes %lld\n", (long long)((sst > 0 ? sst : 0) + (mem > 0 ? mem : 0)));
    help(&b, "taskhubd_store_compaction_pending", "gauge", "Column families with a compaction pending.");
    put(&b, "taskhubd_store_compaction_pending %lld\n", (long long)(pend > 0 ? pend : 0));
    help(&b, "taskhubd_store_keys_estimate", "gauge", "Estimated number of keys in the store.");
    put(&b, "taskhubd_store_keys_estimate %lld\n", (long long)(keys > 0 ? keys : 0));
  }
  struct sc_counts_totals t;
  if (st) {
    sc_counts_get(o->counts, SC_COUNT_TOTALS, &t);
    if (t.have_entities) {
      help(&b, "taskhubd_entities", "gauge",
           "Durable entities: with state, and transient (signalled, no state yet), counted like taskhubd_instances.");
      put(&b, "taskhubd_entities{kind=\"with_state\"} %llu\n", (unsigned long long)t.entities_with_state);
      put(&b, "taskhubd_entities{kind=\"transient\"} %llu\n", (unsigned long long)t.entities_transient);
      help(&b, "taskhubd_entity_operations_queued", "gauge",
           "Operations, lock requests and unlocks waiting in entity queues.");
      put(&b, "taskhubd_entity_operations_queued %llu\n", (unsigned long long)t.entity_ops_queued);
    }
    if (t.have) {
      help(&b, "taskhubd_instances", "gauge", "Instances in the task hub, by status (all replicas' partitions).");
      for (int i = 0; i < 8; i++)
        put(&b, "taskhubd_instances{status=\"%s\"} %llu\n", status_names[i], (unsigned long long)t.by_status[i]);
      help(&b, "taskhubd_instances_count_age_seconds", "gauge",
           "Seconds since the count behind taskhubd_instances and taskhubd_entities finished (counted on a thread "
           "of its own, again once older than ten times what it cost).");
      put(&b, "taskhubd_instances_count_age_seconds %.3f\n", (double)t.age_us / 1e6);
      help(&b, "taskhubd_instances_count_duration_seconds", "gauge",
           "How long that count took (the store's scans of instances by status and of entities).");
      put(&b, "taskhubd_instances_count_duration_seconds %.3f\n", (double)t.cost_us / 1e6);
    }
  }
  help(&b, "taskhubd_build_info", "gauge", "The running build: always 1, the versions are labels.");
  put(&b, "taskhubd_build_info{version=\"%s\",grpc=\"%s\"} 1\n", TASKHUBD_VERSION, grpc_version_string());
  process_metrics(&b, o);
  return b.p;
}

/* ------------------------------------------------------------------ HTTP */

static enum MHD_Result respond(struct MHD_Connection *conn, unsigned code, const char *type, char *body,
                               enum MHD_ResponseMemoryMode mode)
{
  struct MHD_Response *r = MHD_create_response_from_buffer(strlen(body), body, mode);
  MHD_add_response_header(r, "Content-Type", type);
  enum MHD_Result ret = MHD_queue_response(conn, code, r);
  MHD_destroy_response(r);
  return ret;
}

/* A refusal by the guard (guard.h): the reason as the body; a 401 says which scheme it wants. */
static enum MHD_Result refuse(struct MHD_Connection *conn, unsigned code, const char *why)
{
  char body[300];
  snprintf(body, sizeof body, "%s\n", why);
  struct MHD_Response *r = MHD_create_response_from_buffer(strlen(body), body, MHD_RESPMEM_MUST_COPY);
  MHD_add_response_header(r, "Content-Type", "text/plain; charset=utf-8");
  if (code == 401)
    MHD_add_response_header(r, MHD_HTTP_HEADER_WWW_AUTHENTICATE, "Bearer realm=\"taskhubd\"");
  enum MHD_Result ret = MHD_queue_response(conn, code, r);
  MHD_destroy_response(r);
  return ret;
}

/* libmicrohttpd's own complaints (bad requests and the like) go through our log, one line each. */
static void mhd_log(void *cls, const char *fmt, va_list ap) __attribute__((format(printf, 2, 0)));

static void mhd_log(void *cls, const char *fmt, va_list ap)
{
  (void)cls;
  char msg[512];
  vsnprintf(msg, sizeof msg, fmt, ap);
  size_t n = strlen(msg);
  while (n && (msg[n - 1] == '\n' || msg[n - 1] == '\r'))
    msg[--n] = 0;
  SC_WARN("event=ops_http_error error=%s", SC_Q(msg));
}

static enum MHD_Result handle(void *cls, struct MHD_Connection *conn, const char *url, const char *method,
                              const char *version, const char *upload, size_t *upload_size, void **state)
{
  struct sc_ops *o = cls;
  (void)version;
  struct sc_dashboard *dash = atomic_load(&o->dash);
  if (dash && *state != (void *)1 && sc_dashboard_serves(url))
    return sc_dashboard_handle(dash, conn, url, method, upload, upload_size, state);
  if (!*state) {
    /* First call for this request: headers only. The body (if any) comes next. */
    *state = (void *)1;
    return MHD_YES;
  }
  if (*upload_size) {
    *upload_size = 0; /* no endpoint reads a body: take it and answer once it is all in */
    return MHD_YES;
  }
  static const char text[] = "text/plain; charset=utf-8";
  if (strcmp(method, "GET") == 0 && strcmp(url, "/healthz") == 0)
    return respond(conn, 200, text, (char *)"ok\n", MHD_RESPMEM_PERSISTENT);
  if (strcmp(method, "GET") == 0 && strcmp(url, "/readyz") == 0) {
    struct sc_engine *e = atomic_load(&o->engine);
    bool draining = false;
    if (e) {
      struct sc_engine_stats s;
      sc_engine_get_stats(e, &s);
      draining = s.draining;
    }
    if (atomic_load(&o->ready) && !draining)
      return respond(conn, 200, text, (char *)"ready\n", MHD_RESPMEM_PERSISTENT);
    return respond(conn, 503, text, (char *)(draining ? "draining\n" : "recovering\n"), MHD_RESPMEM_PERSISTENT);
  }
  if (strcmp(method, "GET") == 0 && strcmp(url, "/metrics") == 0) {
    char *page = sc_ops_render_metrics(o);
    return respond(conn, 200, "text/plain; version=0.0.4; charset=utf-8", page, MHD_RESPMEM_MUST_FREE);
  }
  if (strcmp(method, "POST") == 0 && strcmp(url, "/admin/drain") == 0) {
    char why[256];
    unsigned refused = sc_ops_guard(conn, why, sizeof why);
    if (refused) {
      SC_WARN("event=drain_refused via=ops status=%u reason=%s", refused, SC_Q(why));
      return refuse(conn, refused, why);
    }
    SC_INFO("event=drain_requested via=ops");
    kill(getpid(), SIGTERM); /* the same path as a signal: drain, then exit */
    return respond(conn, 202, text, (char *)"draining\n", MHD_RESPMEM_PERSISTENT);
  }
  return respond(conn, 404, text, (char *)"not found\n", MHD_RESPMEM_PERSISTENT);
}

/* Requests the dashboard took hold state of their own. */
static void completed(void *cls, struct MHD_Connection *conn, void **state, enum MHD_RequestTerminationCode toe)
{
  (void)cls;
  (void)conn;
  (void)toe;
  if (*state && *state != (void *)1)
    sc_dashboard_request_done(*state);
  *state = NULL;
}

/* Connections the ops port takes: OPS_MAX_CONNECTIONS, or a quarter of the descriptors the process may open when
 * that is less (the gRPC port and the store need theirs; a flood of HTTP connections must not starve them). */
#define OPS_MAX_CONNECTIONS 1024u
#define OPS_PER_IP 128u
#define OPS_IDLE_S 10u

static unsigned ops_connection_limit(void)
{
  struct rlimit rl;
  unsigned limit = OPS_MAX_CONNECTIONS;
  if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY && rl.rlim_cur / 4 < limit)
    limit = rl.rlim_cur / 4 > 16 ? (unsigned)(rl.rlim_cur / 4) : 16;
  return limit;
}

int sc_ops_start(const char *addr, struct sc_ops **out, int *port, struct sc_err *err)
{
  char host[256];
  const char *colon = strrchr(addr, ':');
  if (!colon || (size_t)(colon - addr) >= sizeof host) {
    sc_err_set(err, SC_EINVAL, "--ops-addr: expected HOST:PORT, got \"%s\"", addr);
    return SC_EINVAL;
  }
  memcpy(host, addr, (size_t)(colon - addr));
  host[colon - addr] = 0;
  struct sockaddr_in sa;
  memset(&sa, 0, sizeof sa);
  sa.sin_family = AF_INET;
  sa.sin_port = htons((uint16_t)atoi(colon + 1));
  if (inet_pton(AF_INET, strcmp(host, "localhost") == 0 ? "127.0.0.1" : host, &sa.sin_addr) != 1) {
    sc_err_set(err, SC_EINVAL, "--ops-addr: \"%s\" is not an IPv4 address", host);
    return SC_EINVAL;
  }
  /* The socket is ours, so a failure names its cause (libmicrohttpd only logs it, with the port it was given). */
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  int one = 1;
  if (fd < 0 || setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) != 0 ||
      bind(fd, (struct sockaddr *)&sa, sizeof sa) != 0 || listen(fd, 256) != 0) {
    sc_err_set(err, SC_EUNAVAIL, "cannot listen on %s for the ops port: %s", addr, strerror(errno));
    if (fd >= 0)
      close(fd);
    return SC_EUNAVAIL;
  }
  struct sc_ops *o = calloc(1, sizeof *o);
  if (!o)
    sc_panic("out of memory starting the ops server");
  o->start_us = sc_now_us();
  o->counts = sc_counts_new();
  /* The logger first: libmicrohttpd applies options in order and warns about messages it might log before.
   * Slow clients: 64 connections trickling a header byte every few seconds used to hold every connection the
   * port allowed (64), so kubelet's probes failed and the container was restarted. epoll (no FD_SETSIZE cap)
   * lets it take many more (ops_connection_limit), each idle one is closed after OPS_IDLE_S, and one address
   * holds at most OPS_PER_IP, so it takes many addresses to fill the port again (docs/operations.md).
   * Suspend/resume: the dashboard's event streams and actions wait without holding the ops thread. */
  unsigned limit = ops_connection_limit();
  o->d = MHD_start_daemon(MHD_USE_AUTO_INTERNAL_THREAD | MHD_USE_ERROR_LOG | MHD_ALLOW_SUSPEND_RESUME, 0, NULL,
                          NULL, handle, o, MHD_OPTION_EXTERNAL_LOGGER, mhd_log, NULL,
                          MHD_OPTION_NOTIFY_COMPLETED, completed, NULL, MHD_OPTION_LISTEN_SOCKET, fd,
                          MHD_OPTION_CONNECTION_LIMIT, limit, MHD_OPTION_PER_IP_CONNECTION_LIMIT,
                          limit < OPS_PER_IP ? limit : OPS_PER_IP, MHD_OPTION_CONNECTION_TIMEOUT, OPS_IDLE_S,
                          MHD_OPTION_END);
  if (!o->d) {
    sc_counts_free(o->counts);
    free(o);
    close(fd);
    sc_err_set(err, SC_EUNAVAIL, "cannot start the ops server on %s", addr);
    return SC_EUNAVAIL;
  }
  socklen_t sl = sizeof sa;
  *port = getsockname(fd, (struct sockaddr *)&sa, &sl) == 0 ? ntohs(sa.sin_port) : 0;
  *out = o;
  return SC_OK;
}

void sc_ops_attach(struct sc_ops *o, struct sc_engine *e, struct sc_store *st)
{
  if (!o)
    return;
  atomic_store(&o->engine, e);
  atomic_store(&o->store, st);
  if (st)
    sc_counts_attach(o->counts, st);
  struct sc_dashboard *dash = atomic_load(&o->dash);
  if (dash)
    sc_dashboard_attach(dash, e, st);
}

struct sc_counts *sc_ops_counts(struct sc_ops *o)
{
  return o ? o->counts : NULL;
}

void sc_ops_set_dashboard(struct sc_ops *o, struct sc_dashboard *d)
{
  if (o)
    atomic_store(&o->dash, d);
  else
    sc_dashboard_free(d);
}

void sc_ops_set_ready(struct sc_ops *o, bool ready)
{
  if (o)
    atomic_store(&o->ready, ready);
}

void sc_ops_stop(struct sc_ops *o)
{
  if (!o)
    return;
  struct sc_dashboard *dash = atomic_load(&o->dash);
  sc_dashboard_shutdown(dash);
  MHD_stop_daemon(o->d);
  sc_counts_stop(o->counts); /* before the store closes: the caller closes it after this */
  sc_dashboard_free(dash);
  sc_counts_free(o->counts);
  free(o);
}
