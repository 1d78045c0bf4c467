#ifndef SC_ENGINE_H
#define SC_ENGINE_H

/*
 * The engine: the single owner of mutable state. Transport threads decode and validate requests, then post
 * commands here; one engine thread applies everything queued to one store transaction, commits it (synced)
 * and only then calls each command's `done` callback. While a commit is in flight new commands queue up, so
 * concurrent callers share one fsync (group commit). The engine includes no gRPC header.
 */

#include "common/status.h"
#include "limits/limits.h"
#include "store/txn.h"

#include <stdbool.h>
#include <stdint.h>

struct sc_engine;
struct sc_waiter;

enum sc_cmd_kind {
  SC_CMD_START,
  SC_CMD_RAISE,
  SC_CMD_TERMINATE,
  SC_CMD_SUSPEND,
  SC_CMD_RESUME,
  SC_CMD_PURGE,
  SC_CMD_WAIT,
  SC_CMD_WAIT_CANCEL,
  SC_CMD_WIPE,
  SC_CMD_STREAM_OPEN,
  SC_CMD_STREAM_CLOSE,
  SC_CMD_COMPLETE_ORCH,
  SC_CMD_COMPLETE_ACT,
  SC_CMD_ABANDON,
  SC_CMD_REWIND,
  SC_CMD_RESTART,
  SC_CMD_RENEW,
  SC_CMD_SIGNAL_ENTITY,
  SC_CMD_COMPLETE_ENTITY,
  SC_CMD_CLEAN_ENTITIES,
  SC_CMD_EXPLAIN, /* why an instance has not moved, as the engine sees it now (reads, writes nothing) */
  /* Posted by the engine itself for what the store tells it (store.h, sc_store_events): */
  SC_CMD_GAIN,     /* a partition is this replica's now */
  SC_CMD_RELEASE,  /* a partition should go to another replica */
  SC_CMD_INCOMING, /* a forwarded command for an owned partition */
  SC_CMD_REPLY,    /* the answer to a command this replica forwarded */
  SC_CMD_CHANGED,  /* instances changed status on other replicas */
};

/*
 * How the engine hands a work item to a GetWorkItems stream: |buf| is a packed WorkItem allocated with
 * malloc, and ownership passes to the callee, which must only queue it (called on the engine thread).
 */
typedef void (*sc_stream_send_fn)(void *ctx, uint8_t *buf, size_t len);
/* Whether a stream may be given more work: true when fewer than |cap| bytes wait to be sent on it. When false,
 * the transport calls sc_engine_kick once they do. Called on the engine thread. */
typedef bool (*sc_stream_ready_fn)(void *ctx, size_t cap);

enum sc_abandon_kind { SC_ABANDON_ORCH, SC_ABANDON_ACT, SC_ABANDON_ENTITY };

struct sc_cmd;
typedef void (*sc_cmd_done_fn)(struct sc_cmd *cmd);

/*
 * A command. The poster owns its memory and everything its request points to, and must keep them alive
 * until `done` has been called (on the engine thread, after the commit that made the command durable).
 * `err.code` is SC_OK or the failure; the engine never touches the command after `done`.
 */
struct sc_cmd {
  enum sc_cmd_kind kind;
  sc_cmd_done_fn done;
  void *user;
  struct sc_err err;
  struct sc_cmd *next; /* engine queue link */
  size_t bytes;        /* the request's size, counted against --max-queued-bytes while queued */
  bool wrote;          /* engine-internal: its changes are in the batch's transaction */
  union {
    struct {
      const CreateInstanceRequest *req;
      char iid[SC_MAX_ID + 1]; /* out: the (possibly generated) instance id */
    } start;
    struct {
      const RaiseEventRequest *req;
    } raise;
    struct {
      const TerminateRequest *req;
    } terminate;
    struct {
      const char *iid;
      const Google__Protobuf__StringValue *reason;
    } suspend; /* SC_CMD_SUSPEND and SC_CMD_RESUME */
    struct {
      const PurgeInstancesRequest *req;
      int64_t deadline_us;      /* filter purges stop here with complete=false */
      int32_t deleted;          /* out */
      bool complete;            /* out */
      /* engine-internal progress of a filter purge */
      bool started;
      size_t cursor_len;
      unsigned char cursor[SC_CURSOR_MAX];
    } purge;
    struct {
      const char *iid;
      bool completion;    /* false: wait for start */
      int64_t deadline_us; /* 0: the engine's cap */
      bool exists;        /* out: false when the instance is unknown */
      struct sc_waiter *w; /* engine-internal */
    } wait;
    struct {
      struct sc_cmd *target; /* a SC_CMD_WAIT whose client went away */
    } cancel;
    struct {
      bool recreate; /* CreateTaskHub(recreateIfExists) rather than DeleteTaskHub */
    } wipe;
    struct {
      const GetWorkItemsRequest *req; /* kept alive by the poster until the stream is closed */
      sc_stream_send_fn send;
      sc_stream_ready_fn ready;     /* NULL: always ready */
      void *ctx;
      const char *peer; /* the worker's connection (gRPC's peer string), copied */
      uint64_t id; /* out: pass to SC_CMD_STREAM_CLOSE */
    } stream_open;
    struct {
      void *ctx; /* the ctx given at open */
    } stream_close;
    struct {
      const OrchestratorResponse *resp;
      const char *peer; /* the completing call's connection: a completion without a token must come from the
                         * connection whose stream received the work item */
    } complete_orch;
    struct {
      const ActivityResponse *resp;
      const char *peer; /* as for complete_orch */
    } complete_act;
    struct {
      const char *token;
      enum sc_abandon_kind kind;
    } abandon;
    struct {
      const RewindInstanceRequest *req;
    } rewind;
    struct {
      const RestartInstanceRequest *req;
      char iid[SC_MAX_ID + 1]; /* out: the restarted instance */
    } restart;
    struct {
      const char *iid; /* a worker fetched this instance's history for the work item it holds */
    } renew;
    struct {
      const SignalEntityRequest *req;
    } signal_entity;
    struct {
      const EntityBatchResult *res;
    } complete_entity;
    struct {
      const CleanEntityStorageRequest *req;
      int32_t removed, released; /* out */
      char next[SC_MAX_ID + 1];  /* out: where the next call goes on ("" when done) */
    } clean_entities;
    struct {
      const char *iid;
      bool exists;   /* out: false when the instance is unknown */
      char why[512]; /* out: "" when nothing holds it back that this replica can tell */
    } explain;
    struct {
      int part;
      uint64_t id;  /* SC_CMD_INCOMING: the row; SC_CMD_REPLY: the forward answered */
      uint8_t *body; /* owned by the command; SC_CMD_CHANGED: newline-separated ids, or NULL for all */
      size_t len;
    } store_event;
  } u;
};

struct sc_engine_config {
  int64_t wait_cap_us;
  int max_batch;
  bool allow_wipe;
  bool sync; /* false only in unit tests that measure nothing durable */
  int64_t orphan_grace_us;  /* how long a closed stream's work items wait for their completions */
  int64_t health_ping_us;   /* idle streams get a HealthPing this often */
  int default_max_items;    /* per-stream limit when a worker asks for 0 ("no limit"), and the most it may ask */
  size_t max_message;       /* largest work item a stream can take (--max-send-message) */
  size_t max_receive;       /* largest message a worker can send (--max-message) */
  size_t max_outbox;        /* a stream holding this much unsent gets no new work (0: no cap) */
  size_t max_inbox, max_inbox_bytes; /* RaiseEvent refused beyond these (0: no limit) */
  size_t max_queued, max_queued_bytes; /* client commands refused while this many wait to be applied (0: none) */
  int64_t orch_lease_us, act_lease_us; /* work items unanswered this long are handed out again (0: never) */
  struct sc_limits limits;  /* what worker actions and histories must pass, as client requests do */
  bool entity_v2;           /* entity batches as EntityRequest (history events) rather than EntityBatchRequest */
  size_t cache_budget;      /* bytes of recently used instances kept in memory (--cache-size; 0: none kept) */
  const char *replica;      /* this replica's name: where answers to its forwarded commands go */
  int64_t failed_commit_hold_us; /* after a commit fails no work goes out for this long (0: 1 s) */
};

struct sc_engine_stats {
  uint64_t commits, commands, batched_max;
  uint64_t orch_dispatched, act_dispatched, entity_dispatched, orch_completed, act_completed, entity_completed;
  uint64_t abandoned;
  uint64_t streams;
  uint64_t refused;       /* commands refused by --max-queued-commands / --max-queued-bytes */
  uint64_t queued;        /* gauge: commands waiting to be applied */
  /* gauges, as of the end of the last batch */
  uint64_t ready_orchestrations, queued_activities, timers, waiters, inflight_orchestrations, inflight_activities;
  uint64_t waiting_items; /* work no connected stream can take now */
  bool draining;
};

/* Recovers in-memory state (timers) from the store and starts the engine thread. */
int sc_engine_start(struct sc_store *st, const struct sc_engine_config *cfg,
                    struct sc_engine **out, struct sc_err *err);

/* Thread-safe. After sc_engine_stop has begun, commands complete with SC_EUNAVAIL. A client's command that adds
 * work (a start, an event, a termination, a new stream, ...) completes at once with SC_ETOOBIG, naming the limit,
 * while max_queued commands or max_queued_bytes of requests already wait to be applied: a flood of requests meets
 * refusals rather than a queue that grows with it. Completions, abandons and the engine's own commands are always
 * queued (they finish work rather than add it). */
void sc_engine_post(struct sc_engine *e, struct sc_cmd *cmd);
/* Thread-safe: runs a batch soon even with nothing posted (a stream can take work again). */
void sc_engine_kick(struct sc_engine *e);

/* Applies what is queued, commits, answers parked waiters with SC_EUNAVAIL and joins the thread. Later
 * posts complete at once with SC_EUNAVAIL, so transport threads may still post until they are joined. */
void sc_engine_stop(struct sc_engine *e);
/* Frees the engine; call after sc_engine_stop once nothing can post any more. */
void sc_engine_free(struct sc_engine *e);

void sc_engine_get_stats(struct sc_engine *e, struct sc_engine_stats *out);

/*
 * Live views (the dashboard's event stream) learn which instances a batch changed: their status, a new turn in
 * their history, an event raised to them. |fn| is called on the engine thread after the batch's commit, with
 * the instances in the order they changed (an instance may appear more than once); it must only copy what it
 * needs and return. exists=false: the instance was purged. Thread-safe; fn NULL stops the calls.
 */
struct sc_engine_change {
  const char *iid;
  int status;
  bool exists;
};
typedef void (*sc_engine_observer_fn)(void *ctx, const struct sc_engine_change *v, size_t n);
void sc_engine_observe(struct sc_engine *e, sc_engine_observer_fn fn, void *ctx);

/*
 * Drain: stop handing out work; completions of what is in flight are still applied. Thread-safe.
 * sc_engine_wait_drained blocks until nothing is in flight or |deadline_us| (wall clock) passes, and returns
 * the number of work items still in flight (their work stays queued durably and is redelivered later).
 */
void sc_engine_drain(struct sc_engine *e);
size_t sc_engine_wait_drained(struct sc_engine *e, int64_t deadline_us);

#endif
