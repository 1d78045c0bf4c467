#ifndef SC_ENGINE_INTERNAL_H
#define SC_ENGINE_INTERNAL_H

/* Engine internals shared by engine.c (commands, the loop) and work.c (streams, leases, dispatch). */

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

enum apply_result { DONE, PARKED, CONTINUED };

struct sc_waiter;
struct sc_stream;
struct sc_lease;

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

  /* Work items (work.c). */
  char boot[9];             /* tokens carry it, so a token from before a restart is never reused */
  uint64_t token_seq;
  struct sc_stream **streams;
  size_t nstreams, capstreams, rr;
  uint64_t stream_seq;
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

/* engine.c */
/* Makes room for one more element in a growing array (doubling, at least 64); aborts when memory runs out. */
void *grow_array(void *v, size_t *cap, size_t n, size_t elem);
void add_done(struct sc_engine *e, struct sc_cmd *c);
void add_changed(struct sc_engine *e, const char *iid, int status, bool exists);
int fail(struct sc_cmd *c, int code, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
void *copy_tags(struct sc_arena *a, const ProtobufCMessageDescriptor *d, size_t n, void *const *src);
StoredInstance *copy_rec(struct sc_arena *a, const StoredInstance *r);
/* Appends |ev| to |iid|'s inbox (tagged with |exec| unless NULL) and marks the instance dirty. */
int enqueue_msg(struct sc_engine *e, const char *iid, int band, HistoryEvent *ev, const char *exec);
int terminate_pending(struct sc_engine *e, const char *iid, StoredInstance *old,
                      const Google__Protobuf__StringValue *output, bool recurse);
/* Tells a sub-orchestration's parent that it ended. */
int notify_parent(struct sc_engine *e, const StoredInstance *child, int status,
                  const Google__Protobuf__StringValue *result, TaskFailureDetails *failure);
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
/* Commits the transaction now (panics on failure: nothing was acknowledged, a restart recovers). */
void commit(struct sc_engine *e);

/* work.c */
void work_init(struct sc_engine *e);
void work_free(struct sc_engine *e);
int work_recover(struct sc_engine *e);
void mark_dirty(struct sc_engine *e, const char *iid);
/* Queues what this batch made ready and hands out work, reading through the transaction. It may run before the
 * batch's commit, so the worker starts while the commit syncs: a work item is no acknowledgement — if the commit
 * never lands, the process has died with every lease, and the work is redone from what is durable. Clean-ups
 * it finds (stale messages, orphaned activities) join the transaction. */
void work_dispatch(struct sc_engine *e);
void work_timers(struct sc_engine *e, int64_t now);
int64_t work_next_wakeup(struct sc_engine *e);
/* Leases in flight, by kind. */
void work_inflight(struct sc_engine *e, size_t *orch, size_t *act);
bool work_is_leased(struct sc_engine *e, const char *iid);
void work_wipe(struct sc_engine *e);
int apply_stream_open(struct sc_engine *e, struct sc_cmd *c);
int apply_stream_close(struct sc_engine *e, struct sc_cmd *c);
int apply_complete_orch(struct sc_engine *e, struct sc_cmd *c);
int apply_complete_act(struct sc_engine *e, struct sc_cmd *c);
int apply_abandon(struct sc_engine *e, struct sc_cmd *c);
int apply_rewind(struct sc_engine *e, struct sc_cmd *c);
int apply_restart(struct sc_engine *e, struct sc_cmd *c);

void fifo_push(struct fifo *f, void *v);
void *fifo_pop(struct fifo *f);
void fifo_free(struct fifo *f);

#endif
