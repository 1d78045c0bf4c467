/*
 * taskhubctl migrate: copies a stopped RocksDB task hub into an empty PostgreSQL one, then reads the copy back and
 * compares it with the source. Kept apart from the gRPC commands because it needs no server: it opens both stores
 * directly through the sidecar's store backends (th_core).
 */
#ifndef CTL_MIGRATE_H
#define CTL_MIGRATE_H

#include <stdbool.h>
#include <stdint.h>

#define CTL_MIGRATE_DEFAULT_BATCH 200
#define CTL_MIGRATE_MAX_BATCH 10000

struct ctl_migrate_opts {
  const char *from; /* rocksdb:DIR */
  const char *to;   /* a PostgreSQL URI or conninfo, as taskhubd's --store takes it */
  int batch;        /* instances per change set */
  bool progress;    /* progress lines on stderr */
};

struct ctl_migrate_result {
  uint64_t instances, history_events, inbox_messages, payloads, timers, activities;
  uint64_t entities; /* entity records (their queued operations count as inbox messages) */
  uint64_t next_seq; /* the sequence counter the target starts from */
  double copy_s, verify_s;
  char msg[1024]; /* on failure: what went wrong and what to do */
};

/* Runs the migration; returns one of the CTL_EXIT_* codes of ctl.h (the reason in r->msg unless CTL_EXIT_OK). */
int ctl_migrate(const struct ctl_migrate_opts *o, struct ctl_migrate_result *r);

#endif
