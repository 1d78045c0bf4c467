/* taskhubd: argv -> config -> store -> engine -> server, then wait for SIGTERM/SIGINT. */
#include "common/log.h"
#include "common/tokens.h"
#include "config.h"
#include "common/util.h"
#include "engine/engine.h"
#include "dashboard/dashboard.h"
#include "ops/ops.h"
#include "server/server.h"
#include "server/tls.h"
#include "store/store.h"

#include <dlfcn.h>
#include <errno.h>
#include <malloc.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define SHUTDOWN_GRACE_MS 5000

static void announce_ready(int fd, int port)
{
  if (fd < 0)
    return;
  char buf[32];
  int n = snprintf(buf, sizeof buf, "%d\n", port);
  ssize_t w;
  do
    w = write(fd, buf, (size_t)n);
  while (w < 0 && errno == EINTR);
  if (w != n)
    SC_WARN("event=ready_fd_write_failed fd=%d errno=%d", fd, errno);
  close(fd);
}

/* gRPC's locks are abseil Mutexes. Debian builds abseil with its debug-mode deadlock detector on: every lock
 * acquisition then goes through a process-wide graph of lock order (GraphCycles), 2-3 % of our CPU in perf and
 * a global lock shared by all threads. Turn it off when the library offers the switch (a C++ function, so found
 * by its symbol; absent in other builds, where there is nothing to turn off). */
static void absl_deadlock_detection_off(void)
{
  void (*set_mode)(int) = NULL;
  void *sym = dlsym(RTLD_DEFAULT, "_ZN4absl7debian329SetMutexDeadlockDetectionModeENS0_15OnDeadlockCycleE");
  memcpy(&set_mode, &sym, sizeof sym);
  if (set_mode)
    set_mode(0); /* OnDeadlockCycle::kIgnore */
}

/* SIGTERM or SIGINT arrived (they are blocked, and taken by sigwait once serving): a standby waiting for the
 * partitions, or for PostgreSQL, stops waiting. */
static bool stop_requested(void)
{
  sigset_t p;
  return sigpending(&p) == 0 && (sigismember(&p, SIGTERM) || sigismember(&p, SIGINT));
}

/* SIGHUP: the token file and the TLS files are read again. Each that fails to load is reported and the one in
 * force stays, so a half-written file never locks clients out or lets them in. Open connections and their
 * streams are not touched; new calls see the new tokens, new connections the new certificates. */
static void reload_credentials(void)
{
  char terr[512];
  struct sc_err err = {0};
  bool tok_ok = sc_tokens_reload(terr, sizeof terr) == 0;
  if (!tok_ok)
    SC_ERROR("event=reload_failed what=auth_token_file error=%s", SC_Q(terr));
  bool tls_ok = sc_tls_reload(&err) == SC_OK;
  if (!tls_ok)
    SC_ERROR("event=reload_failed what=tls error=%s", SC_Q(err.msg));
  SC_INFO("event=credentials_reloaded tokens=%s tls=%s", !sc_tokens_enabled() ? "none" : tok_ok ? "reloaded" : "kept",
          !sc_tls_enabled() ? "none" : tls_ok ? "reloaded" : "kept");
}

/* How long taskhubd waits for PostgreSQL to accept connections at start before it gives up (and is restarted). */
#define STORE_WAIT_S 300

int main(int argc, char **argv)
{
  absl_deadlock_detection_off();
  /* Every work item allocates and frees on several threads; with glibc's defaults each thread's arena grows
   * and shrinks its heap with mprotect several times per orchestration, each a change to the mappings of a
   * multi-threaded process. Growing in 8 MiB steps and keeping up to 32 MiB free at the top removed nine in ten
   * of them (strace -c over 1,000 HelloCities5); untouched padding is not resident. */
  mallopt(M_TOP_PAD, 8 << 20);
  mallopt(M_TRIM_THRESHOLD, 32 << 20);
  struct sc_config cfg;
  int rc = sc_config_parse(&cfg, argc, argv, stdout, stderr);
  if (rc != 0)
    return rc > 0 ? 0 : 2;
  sc_log_level = cfg.log_level;
  sc_log_json = cfg.log_json;

  /* Signals are taken synchronously by sigwait below; every thread inherits the mask. */
  sigset_t sigs;
  sigemptyset(&sigs);
  sigaddset(&sigs, SIGTERM);
  sigaddset(&sigs, SIGINT);
  sigaddset(&sigs, SIGHUP);
  pthread_sigmask(SIG_BLOCK, &sigs, NULL);
  signal(SIGPIPE, SIG_IGN);

  struct sc_err err = {0};
  /* Before any port opens: the gRPC server and the ops port both check calls against these. */
  char terr[512];
  if (sc_tokens_load(cfg.auth_token_file[0] ? cfg.auth_token_file : NULL, terr, sizeof terr) != 0) {
    SC_ERROR("event=auth_token_file_failed error=%s", SC_Q(terr));
    return 1;
  }
  /* The ops port first: while the store is being opened (PostgreSQL may still be starting) /healthz answers and
   * /readyz says not ready. */
  struct sc_ops *ops = NULL;
  if (strcmp(cfg.ops_listen, "off") != 0 && cfg.ops_listen[0]) {
    int ops_port = 0;
    if (sc_ops_start(cfg.ops_listen, &ops, &ops_port, &err) != SC_OK) {
      SC_ERROR("event=ops_listen_failed listen=%s error=%s", SC_Q(cfg.ops_listen), SC_Q(err.msg));
      return 1;
    }
    SC_INFO("event=ops_listening listen=%s port=%d dashboard=%s", SC_Q(cfg.ops_listen), ops_port, cfg.dashboard);
    if (strcmp(cfg.dashboard, "off") != 0) {
      struct sc_dashboard_config dcfg = {
          .mode = strcmp(cfg.dashboard, "read-only") == 0 ? SC_DASHBOARD_READ_ONLY : SC_DASHBOARD_ON,
          .limits = sc_config_limits(&cfg),
          .purge_timeout_us = cfg.purge_timeout_s * 1000000,
          .counts = sc_ops_counts(ops)};
      sc_ops_set_dashboard(ops, sc_dashboard_new(&dcfg));
    }
    announce_ready(cfg.ops_ready_fd, ops_port);
  }
  /* The gRPC port next, before the store: a port in use fails now, not after recovering a large store. */
  struct sc_server *server = NULL;
  int port = 0;
  if (sc_server_bind(&cfg, &server, &port, &err) != SC_OK) {
    SC_ERROR("event=listen_failed listen=%s error=%s", SC_Q(cfg.listen), SC_Q(err.msg));
    sc_ops_stop(ops);
    return 1;
  }
  struct sc_store *store = NULL;
  struct sc_pg_options pgo = {.conninfo = cfg.store, .wait_s = STORE_WAIT_S, .owner = cfg.replica_id,
                              .lease_ms = cfg.partition_lease_s * 1000, .stop = stop_requested};
  int src = cfg.store_postgres ? sc_store_open_postgres(&pgo, &store, &err)
                               : sc_store_open_rocksdb(cfg.data_dir, &store, &err);
  if (src == SC_ECANCELLED) {
    SC_INFO("event=shutdown_done reason=%s", SC_Q(err.msg));
    sc_server_destroy(server, 0);
    sc_ops_stop(ops);
    return 0;
  }
  if (src != SC_OK) {
    SC_ERROR("event=store_open_failed store=%s error=%s", cfg.store_postgres ? "postgresql" : "rocksdb",
             SC_Q(err.msg));
    sc_server_destroy(server, 0);
    sc_ops_stop(ops);
    return 1;
  }
  if (cfg.hold_recovery_fd >= 0) {
    char b;
    while (read(cfg.hold_recovery_fd, &b, 1) < 0 && errno == EINTR)
      ;
    close(cfg.hold_recovery_fd);
  }
  struct sc_engine_config ecfg = {
      .wait_cap_us = cfg.wait_cap_s * 1000000,
      .max_batch = cfg.max_batch,
      .allow_wipe = cfg.allow_delete_taskhub,
      .sync = true,
      .orphan_grace_us = cfg.orphan_grace_s * 1000000,
      .health_ping_us = cfg.health_ping_s * 1000000,
      .default_max_items = cfg.max_work_items,
      .max_message = cfg.max_send_message,
      .max_receive = cfg.max_message,
      .max_outbox = cfg.max_outbox,
      .max_inbox = cfg.max_inbox,
      .max_inbox_bytes = cfg.max_inbox_bytes,
      .max_queued = cfg.max_queued,
      .max_queued_bytes = cfg.max_queued_bytes,
      .orch_lease_us = cfg.orch_lease_s * 1000000,
      .act_lease_us = cfg.act_lease_s * 1000000,
      .limits = sc_config_limits(&cfg),
      .cache_budget = cfg.cache_size,
      .entity_v2 = strcmp(cfg.entity_work_items, "v2") == 0,
      .replica = cfg.replica_id,
  };
  struct sc_engine *engine = NULL;
  if (sc_engine_start(store, &ecfg, &engine, &err) != SC_OK) {
    SC_ERROR("event=engine_start_failed error=%s", SC_Q(err.msg));
    sc_server_destroy(server, 0);
    sc_ops_stop(ops);
    sc_store_close(store);
    return 1;
  }
  sc_ops_attach(ops, engine, store);
  sc_server_start(server, store, engine);
  sc_ops_set_ready(ops, true);
  SC_INFO("event=serving listen=%s port=%d store=%s data_dir=%s group_commit=%s max_batch=%d", SC_Q(cfg.listen),
          port, cfg.store_postgres ? "postgresql" : "rocksdb", cfg.store_postgres ? "-" : SC_Q(cfg.data_dir), cfg.group_commit ? "on" : "off", cfg.max_batch);
  announce_ready(cfg.ready_fd, port);

  /* Waiting for a signal, the store is checked once a second: a data directory removed under a running taskhubd
   * (its writes would go to unlinked files) ends it with an error, not with warnings at the next shutdown. */
  int sig = 0;
  for (;;) {
    struct timespec second = {1, 0};
    sig = sigtimedwait(&sigs, NULL, &second);
    if (sig == SIGHUP) {
      reload_credentials();
      continue;
    }
    if (sig > 0)
      break;
    if (sc_store_check(store, &err) != SC_OK) {
      SC_ERROR("event=store_lost error=%s", SC_Q(err.msg));
      _exit(1); /* nothing can be committed: stopping cleanly would only fail its last commit */
    }
  }
  SC_INFO("event=shutdown_begin signal=%s", sig == SIGTERM ? "SIGTERM" : "SIGINT");
  /* Drain: no new work goes out; what workers hold may still complete (the gRPC port stays open for it).
   * Whatever is still out at the deadline stays queued durably and is handed out after the restart. */
  int64_t t0 = sc_mono_us();
  sc_engine_drain(engine);
  size_t left = sc_engine_wait_drained(engine, sc_now_us() + cfg.drain_grace_s * 1000000);
  SC_INFO("event=drained ms=%lld still_in_flight=%zu", (long long)(sc_mono_us() - t0) / 1000, left);
  sc_server_stop_accepting(server);
  sc_engine_stop(engine); /* commits what is queued; parked waits end with UNAVAILABLE */
  sc_server_destroy(server, SHUTDOWN_GRACE_MS);
  struct sc_engine_stats stats;
  sc_engine_get_stats(engine, &stats);
  /* The ops server reads the engine and the store for /readyz and /metrics: it stops before they go. */
  sc_ops_stop(ops);
  sc_engine_free(engine);
  sc_store_close(store);
  SC_INFO("event=shutdown_done commits=%llu commands=%llu", (unsigned long long)stats.commits,
          (unsigned long long)stats.commands);
  return 0;
}
