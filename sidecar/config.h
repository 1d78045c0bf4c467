#ifndef SC_CONFIG_H
#define SC_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "limits/limits.h"

struct sc_config {
  char listen[256];
  char data_dir[4096];
  char store[4096];          /* --store as given: "" or rocksdb:DIR (RocksDB in data_dir), else PostgreSQL */
  bool store_postgres;       /* store holds a PostgreSQL URI or conninfo */
  char replica_id[256];      /* this replica's name in the partition table (PostgreSQL) */
  int64_t partition_lease_s; /* a stalled replica's partitions move to another after this */
  int ready_fd;              /* -1: none */
  int log_level;
  size_t max_message;        /* largest message received */
  size_t max_send_message;   /* largest message sent: what a default SDK can receive */
  size_t max_payload;        /* any single input/output/event payload */
  size_t max_inbox;          /* messages waiting for one instance before RaiseEvent is refused */
  size_t max_inbox_bytes;    /* and their bytes */
  size_t max_history;        /* events in one execution's history */
  size_t max_outbox;         /* a worker stream holding this much unsent is given no new work */
  size_t max_outbox_total;   /* all streams together; 0: no limit */
  int64_t stream_stall_s;    /* a stream full to --max-outbox that sends nothing this long is ended; 0: never */
  size_t max_queued;         /* client commands waiting for the engine before new ones are refused; 0: no limit */
  size_t max_queued_bytes;   /* and their request bytes */
  int64_t keepalive_s;       /* HTTP/2 ping interval on idle connections */
  int64_t orch_lease_s;      /* an orchestration work item not answered by then is handed out again */
  int64_t act_lease_s;       /* the same for activities */
  size_t max_id_length;
  size_t max_name_length;
  int64_t wait_cap_s;        /* cap for WaitForInstance* without a deadline */
  bool allow_delete_taskhub;
  bool group_commit;
  int max_batch;             /* commands folded into one commit */
  int64_t purge_timeout_s;   /* default time budget of a purge-by-filter call */
  int64_t orphan_grace_s;    /* a closed stream's work items wait this long for their completions */
  int64_t health_ping_s;     /* idle work-item streams get a HealthPing this often */
  int max_work_items;        /* per-stream limit when a worker asks for 0 */
  char ops_listen[256];      /* HTTP ops port, or "off" */
  int ops_ready_fd;          /* -1: none */
  bool log_json;
  int64_t drain_grace_s;     /* how long SIGTERM waits for in-flight work items */
  int hold_recovery_fd;      /* testing aid: recovery waits for a byte on this fd */
  size_t cache_size;         /* the store's hot-instance cache budget */
  char entity_work_items[8]; /* "v1" (EntityBatchRequest) or "v2" (EntityRequest with history events) */
  char tls_cert[4096];       /* PEM certificate chain of the gRPC port; "" = plaintext (see docs/security.md) */
  char tls_key[4096];        /* its private key */
  char tls_client_ca[4096];  /* PEM CAs a client certificate must chain to (mutual TLS); "" = none asked */
  char auth_token_file[4096]; /* bearer tokens, one per line (common/tokens.h); "" = none */
  bool allow_insecure;       /* serve a non-loopback address with neither TLS nor tokens */
};

/* Fills defaults, then environment twins, then argv. Returns 0 to run, 1 when --help/--version was printed
 * (exit 0), or -1 after printing an error to err (exit 2). */
int sc_config_parse(struct sc_config *c, int argc, char **argv, FILE *out,
                    FILE *err);

void sc_config_usage(FILE *out);

/* The limits layer's view of the configuration. */
struct sc_limits sc_config_limits(const struct sc_config *c);

/* Parses "123", "64K", "16M", "1G" (powers of 1024); returns 0 or -1. */
int sc_parse_size(const char *s, size_t *out);

#endif
