#ifndef SC_ENGINE_INTERNAL_H
#define SC_ENGINE_INTERNAL_H

/*
 * Engine internals. Everything runs on the engine thread. The files, from the loop down (each uses only those
 * below it):
 *   engine.c     the loop: take commands, apply them in one transaction, commit, answer
 *   commands.c   client commands (start, raise, suspend, terminate, purge, rewind, restart)
 *   waiters.c    parked WaitForInstance* calls
 *   complete.c   what workers send back (Complete*, Abandon*)
 *   turn.c       applying an orchestration turn's actions;  turncheck.c  whether they can be applied
 *   instance.c   changes to instances shared by commands and turns
 *   dispatch.c   ready and activity queues, building work items
 *   streams.c    connected worker streams: limits, filters, sending
 *   lease.c      work items held by workers, by completion token
 *   batch.c      what the current batch collects (replies, changes, instances to look at), small containers
 */

#include "common/heap.h"
#include "common/map.h"
#include "engine.h"

#include <pthread.h>

#define ST_PENDING ORCHESTRATION_STATUS__ORCHESTRATION_STATUS_PENDING
#define ST_RUNNING ORCHESTRATION_STATUS__ORCHESTRATION_STATUS_RUNNING
#define ST_SUSPENDED ORCHESTRATION_STATUS__ORCHESTRATION_STATUS_SUSPENDED
#define ST_TERMINATED ORCHESTRATION_STATUS__ORCHESTRATION_STATUS_TERMINATED
#define ST_COMPLETED ORCHESTRATION_STATUS__ORCHESTRATION_STATUS_COMPLETED
#define ST_FAILED ORCHESTRATION_STATUS__ORCHESTRATION_STATUS_FAILED
#define ST_CONTINUED ORCHESTRATION_STATUS__ORCHESTRATION_STATUS_CONTINUED_AS_NEW
#define ST_CANCELED ORCHESTRATION_STATUS__ORCHESTRATION_STATUS_CANCELED

/* Recursive terminate, purge and rewind follow sub-orchestrations this deep at most. */
#define MAX_RECURSION 64

enum apply_result { DONE, PARKED, CONTINUED };

struct sc_waiter;

struct changed {
  const char *iid;
  int status;
  bool exists;
};

/* A FIFO of strings (instance ids) or sequence numbers, as a growable ring. */
struct fifo {
  void **v;
  size_t head, n, cap;
};

/* Seq values travel through fifos as pointers; 0 is never a sequence number. */
#define SEQ2P(s) ((void *)(uintptr_t)(s))
#define P2SEQ(p) ((uint64_t)(uintptr_t)(p))

enum lease_kind { LEASE_ORCH, LEASE_ACT };

/* One inbox message taken by an orchestration work item. `sent` is its index in the item's newEvents, or
 * -1 for a message that was consumed without being sent (stale, or a wake-up marker). */
struct msgkey {
  int band;
  int sent;
  uint64_t seq;
};

struct sc_stream;

struct sc_lease {
  char token[48];
  enum lease_kind kind;
  struct sc_stream *stream; /* NULL once orphaned */
  struct sc_lease *snext, *sprev;
  char *iid;
  char *exec;
  struct sc_arena arena;
  /* orchestrations */
  HistoryEvent **events;
  size_t nevents;
  struct msgkey *keys;
  size_t nkeys;
  uint8_t **partials; /* isPartial chunks, packed */
  size_t *partial_lens, npartials;
  /* activities */
  uint64_t act_seq;
  int32_t task_id;
  char *task_key;
};

struct sc_stream {
  uint64_t id;
  const GetWorkItemsRequest *req;
  sc_stream_send_fn send;
  sc_stream_ready_fn ready;
  void *ctx;
  int max_orch, max_act;
  int n_orch, n_act;
  bool history_streaming;
  int64_t last_send_us;
  struct sc_lease *leases;
};

/* In-memory delays (the `delayed` heap): abandon backoff, orphan grace, health pings. */
enum delayed_kind { D_READY, D_ACT, D_ORPHAN, D_PING };

struct delayed {
  enum delayed_kind kind;
  uint64_t seq;
  char key[]; /* instance id or token */
};

struct sc_engine {
  struct sc_store *st;
  struct sc_engine_config cfg;
  pthread_t th;
  pthread_mutex_t mu;
  pthread_cond_t cv;
  struct sc_cmd *qh, *qt; /* posted, not yet taken */
  bool stopping, stopped;
  struct sc_engine_stats stats; /* under mu */

  /* Engine thread only from here on. */
  struct sc_arena ba;     /* everything one batch allocates */
  struct sc_map waiters;  /* iid -> struct sc_waiter list */
  struct sc_heap wheap;   /* waiter deadlines */
  struct sc_heap theap;   /* durable timers: (due, seq) */
  uint64_t wseq;
  struct sc_cmd *conts;   /* filter purges to continue in the next batch */
  struct sc_cmd **done;
  size_t ndone, capdone;
  struct changed *chg;
  size_t nchg, capchg;

  /* Work items. */
  char boot[9];             /* tokens carry it, so a token from before a restart is never reused */
  uint64_t token_seq;
  struct sc_stream **streams;
  size_t nstreams, capstreams, rr;
  uint64_t stream_seq;
  bool new_stream;          /* a stream opened in this batch */
  struct fifo ready;        /* instance ids that may have work */
  struct sc_map queued;     /* iid -> (void*)1 while in `ready` */
  struct fifo unmatched;    /* ready ids no connected stream's filter accepts */
  struct fifo unmatched_act; /* activity seqs no connected stream accepts */
  struct sc_map orch_leases; /* iid -> lease */
  struct sc_map leases;      /* token -> lease */
  struct sc_map act_by_task; /* "iid\x01taskId" -> lease, for clients that send no token */
  struct sc_map backoff;     /* iid or "a<seq>" -> abandon count */
  struct fifo actq;          /* queued activity sequence numbers */
  struct sc_heap delayed;    /* in-memory delays: abandon backoff, orphan grace, pings */
  uint64_t dseq;
  char **applied;            /* ring of recently applied tokens */
  size_t applied_pos, applied_cap;
  struct sc_map applied_set;
  char **dirty;              /* instances given work by this batch, examined after the commit */
  size_t ndirty, capdirty;
  bool draining;             /* under mu: hand out no new work */
  bool kick;                 /* under mu: run a batch even with nothing queued */
  bool drain_now;            /* engine thread's copy of `draining` for this batch */
  pthread_cond_t drained;    /* signalled when a drain finds nothing in flight */
  uint64_t *new_acts;        /* activities queued by this batch */
  size_t nnew_acts, capnew_acts;
};

/* batch.c */
/* Makes room for one more element in a growing array (doubling, at least 64); aborts when memory runs out. */
void *grow_array(void *v, size_t *cap, size_t n, size_t elem);
void add_done(struct sc_engine *e, struct sc_cmd *c);
void add_changed(struct sc_engine *e, const char *iid, int status, bool exists);
/* Sets the command's error; returns DONE. */
int fail(struct sc_cmd *c, int code, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
StoredInstance *copy_rec(struct sc_arena *a, const StoredInstance *r);
void fifo_push(struct fifo *f, void *v);
void *fifo_pop(struct fifo *f);
void fifo_free(struct fifo *f);
char *xstrdup(const char *s);
/* The instance may have work: dispatch looks at it after this batch's commands. */
void mark_dirty(struct sc_engine *e, const char *iid);
/* An activity was queued (or requeued) by this batch. */
void new_activity(struct sc_engine *e, uint64_t seq);
/* Something to do at |due| (see struct delayed). */
void delay(struct sc_engine *e, int64_t due, enum delayed_kind kind, const char *key, uint64_t seq);
/* A history event stamped now, allocated from the batch arena. */
HistoryEvent *ev_new(struct sc_engine *e, int32_t id);
TaskFailureDetails *make_failure(struct sc_arena *a, const char *type, const char *msg);

/* waiters.c */
int apply_wait(struct sc_engine *e, struct sc_cmd *c);
int apply_cancel(struct sc_engine *e, struct sc_cmd *c);
/* Answers the waiters of instances whose status this batch changed. */
void wake_changed(struct sc_engine *e);
void expire_waiters(struct sc_engine *e, int64_t now);
void drop_all_waiters(struct sc_engine *e, int code, const char *msg);
/* After a wipe: every waited-for instance is gone. */
void waiters_wipe(struct sc_engine *e);
void waiters_free(struct sc_engine *e);

/* lease.c */
void leases_init(struct sc_engine *e);
void leases_free(struct sc_engine *e);
struct sc_lease *lease_new(struct sc_engine *e, enum lease_kind kind, struct sc_stream *s, const char *iid,
                           const char *exec);
void lease_free(struct sc_lease *l);
void lease_attach(struct sc_engine *e, struct sc_lease *l);
void lease_detach_stream(struct sc_lease *l);
/* Ends a lease: after a completion (`applied`: its token answers OK from now on) or an abandon. */
void lease_release(struct sc_engine *e, struct sc_lease *l, bool applied);
/* Returns a lease's work to the queue (abandon, or a stream that stayed away past its grace). */
void lease_abandon(struct sc_engine *e, struct sc_lease *l, const char *why);
bool work_is_leased(struct sc_engine *e, const char *iid);
struct sc_lease *find_lease(struct sc_engine *e, enum lease_kind kind, const char *token, const char *fallback);
int unknown_token(struct sc_engine *e, struct sc_cmd *c, const char *token, const char *what);

/* streams.c */
int apply_stream_open(struct sc_engine *e, struct sc_cmd *c);
int apply_stream_close(struct sc_engine *e, struct sc_cmd *c);
/* Round-robin over streams with a free slot whose filter accepts the item. */
struct sc_stream *pick_stream(struct sc_engine *e, enum lease_kind kind, const char *name, const char *version);
bool any_capacity(struct sc_engine *e, enum lease_kind kind);
/* |size| is the packed size when the caller knows it (0: compute it). */
void send_item(struct sc_engine *e, struct sc_stream *s, const WorkItem *wi, size_t size);
void ping(struct sc_engine *e, int64_t now);
/* Leases in flight, by kind. */
void work_inflight(struct sc_engine *e, size_t *orch, size_t *act);

/* dispatch.c */
void work_init(struct sc_engine *e);
void work_free(struct sc_engine *e);
int work_recover(struct sc_engine *e);
void work_wipe(struct sc_engine *e);
/* Queues what this batch made ready and hands out work, reading through the transaction. It may run before the
 * batch's commit, so the worker starts while the commit syncs: a work item is no acknowledgement — if the commit
 * never lands, the process has died with every lease, and the work is redone from what is durable. Clean-ups
 * it finds (stale messages, orphaned activities) join the transaction. */
void work_dispatch(struct sc_engine *e);
void work_timers(struct sc_engine *e, int64_t now);
int64_t work_next_wakeup(struct sc_engine *e);

/* instance.c */
/* Creates a new instance (StartInstance, sub-orchestrations, restart). */
struct new_instance {
  const char *iid, *name, *exec;
  const Google__Protobuf__StringValue *version, *input;
  int64_t scheduled_us;
  const Google__Protobuf__Timestamp *scheduled_ts;
  TraceContext *trace;
  size_t n_tags;
  void *const *tags; /* map entries of any map<string,string> message */
  ParentInstanceInfo *parent;
};
int create_instance(struct sc_engine *e, const struct new_instance *ni);
char *new_exec_id(struct sc_arena *a);
/* Appends |ev| to |iid|'s inbox (tagged with |exec| unless NULL) and marks the instance dirty. */
int enqueue_msg(struct sc_engine *e, const char *iid, int band, HistoryEvent *ev, const char *exec);
int terminate_pending(struct sc_engine *e, const char *iid, StoredInstance *old,
                      const Google__Protobuf__StringValue *output, bool recurse);
/* Terminates |iid| on behalf of an orchestration (terminate action, recursive terminate). */
int terminate_other(struct sc_engine *e, const char *iid, const Google__Protobuf__StringValue *reason, bool recurse);
/* Terminates every child of |iid|, recursively. */
int terminate_children(struct sc_engine *e, const char *iid, const Google__Protobuf__StringValue *reason);
/* Tells a sub-orchestration's parent that it ended. */
int notify_parent(struct sc_engine *e, const StoredInstance *child, int status,
                  const Google__Protobuf__StringValue *result, TaskFailureDetails *failure);
int rewind_one(struct sc_engine *e, const char *iid, const Google__Protobuf__StringValue *reason,
               const char *parent_exec, int depth);
int rewind_children(struct sc_engine *e, const char *iid, const StoredInstance *parent, HistoryEvent **h, size_t n);

/* commands.c */
int apply_start(struct sc_engine *e, struct sc_cmd *c);
int apply_raise(struct sc_engine *e, struct sc_cmd *c);
int apply_suspend(struct sc_engine *e, struct sc_cmd *c, bool resume);
int apply_terminate(struct sc_engine *e, struct sc_cmd *c);
int apply_purge(struct sc_engine *e, struct sc_cmd *c);
/* One chunk of a purge by filter; CONTINUED when more remain. */
int purge_filter_chunk(struct sc_engine *e, struct sc_cmd *c);
int apply_rewind(struct sc_engine *e, struct sc_cmd *c);
int apply_restart(struct sc_engine *e, struct sc_cmd *c);

/* turncheck.c */
/* NULL when the actions can be applied, else why not (written to buf). */
const char *invalid_action(const OrchestratorAction *a, char *buf, size_t len);

/* turn.c */
int apply_turn(struct sc_engine *e, struct sc_lease *l, const OrchestratorResponse *resp,
               OrchestratorAction **actions, size_t nact);
/* Joins the actions of buffered partial chunks (deprecated isPartial) with the final chunk's. */
int gather_actions(struct sc_engine *e, struct sc_lease *l, const OrchestratorResponse *last,
                   OrchestratorAction ***out, size_t *n);

/* complete.c */
int apply_complete_orch(struct sc_engine *e, struct sc_cmd *c);
int apply_complete_act(struct sc_engine *e, struct sc_cmd *c);
int apply_abandon(struct sc_engine *e, struct sc_cmd *c);

/* engine.c */
/* Commits the transaction now (panics on failure: nothing was acknowledged, a restart recovers). */
void commit(struct sc_engine *e);

#endif
