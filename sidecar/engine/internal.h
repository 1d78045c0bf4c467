#ifndef SC_ENGINE_INTERNAL_H
#define SC_ENGINE_INTERNAL_H

/*
 * Engine internals. Everything runs on the engine thread. The files, from the loop down (each uses only those
 * below it):
 *   engine.c     the loop: take commands, apply them in one transaction, commit, answer
 *   partitions.c partitions taken and let go: loading and dropping their work
 *   incoming.c   commands other replicas forwarded to this one's partitions
 *   commands.c   client commands (start, raise, suspend, terminate, purge, rewind, restart)
 *   waiters.c    parked WaitForInstance* calls
 *   complete.c   what workers send back (Complete*, Abandon*)
 *   turn.c       applying an orchestration turn's actions;  turncheck.c  whether they can be applied
 *   instance.c   changes to instances shared by commands and turns
 *   entities.c   durable entities: batches of operations, their completion, clean-up
 *   entity_queue.c  queueing entity operations, SignalEntity, orchestrations' entity messages, lock release
 *   dispatch.c   ready and activity queues, building work items
 *   streams.c    connected worker streams: limits, filters, sending
 *   lease.c      work items held by workers, by completion token
 *   forward.c    commands for instances of partitions another replica owns, and their answers
 *   batch.c      what the current batch collects (replies, changes, instances to look at), small containers
 */

#include "common/heap.h"
#include "common/map.h"
#include "engine.h"
#include "store/txn.h"

#include <pthread.h>
#include <stdatomic.h>

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
struct waitq;

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

/* What a work item is for. Orchestrations and entities are work on an id (its inbox); activities on a queued
 * activity. */
enum lease_kind { LEASE_ORCH, LEASE_ACT, LEASE_ENTITY };

/* The SC_WI_* metrics index of a lease kind. */
static inline int wi_kind(enum lease_kind k)
{
  return k == LEASE_ORCH ? 0 : k == LEASE_ACT ? 1 : 2;
}

/* One inbox message taken by an orchestration work item. `sent` is its index in the item's newEvents, or
 * -1 for a message that was consumed without being sent (stale, or a wake-up marker). */
struct msgkey {
  int band;
  int sent;
  uint64_t seq;
};

struct sc_stream;

/* A work item held by a worker (see the state machine in lease.c). */
struct sc_lease {
  char token[34];           /* 'o' or 'a' and 32 random hex digits */
  enum lease_kind kind;
  struct sc_stream *stream; /* NULL once orphaned */
  char *peer;               /* the connection of the stream it was handed to, kept after the stream ends */
  struct sc_lease *snext, *sprev; /* the stream's leases */
  struct sc_lease *wnext, *wprev; /* leases of the same work (at most one since a redelivery supersedes) */
  char *iid;
  char *exec;
  int64_t deadline_us;      /* it expires then (0: never) */
  /* orchestrations: the inbox messages the item carried, re-read from the inbox when it completes, so a
   * lease holds no copy of its events */
  int64_t started_us;       /* the timestamp of the item's OrchestratorStarted */
  size_t nsent;             /* newEvents sent, OrchestratorStarted included */
  struct msgkey *keys;
  size_t nkeys;
  uint8_t **partials;       /* isPartial chunks, packed */
  size_t *partial_lens, npartials, partial_bytes;
  /* entities: the keys above are the operations sent, in order */
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
  int max_orch, max_act, max_entity;
  int n_orch, n_act, n_entity;
  bool entity_asked; /* it set maxConcurrentEntityWorkItems, or its filters name entities */
  bool history_streaming;
  int64_t last_send_us;
  struct sc_lease *leases;
  char *peer; /* the worker's connection (gRPC's peer string) */
};

/* In-memory delays (the `delayed` heap): abandon backoff, lease expiry and orphan grace, health pings. */
enum delayed_kind { D_READY, D_ACT, D_EXPIRE, D_PING };

struct delayed {
  enum delayed_kind kind;
  uint64_t seq;
  char key[]; /* instance id or token */
};

struct sc_engine {
  struct sc_store *st;     /* committed state: start-up scans, queries, the wipe */
  struct sc_engine_config cfg;
  pthread_t th;
  pthread_mutex_t mu;
  pthread_cond_t cv;
  struct sc_cmd *qh, *qt; /* posted, not yet taken */
  size_t nq, qbytes;      /* how many, and their bytes */
  bool stopping, stopped;
  struct sc_engine_stats stats; /* under mu */

  /* Engine thread only from here on. */
  struct sc_txn *tx;      /* the batch's transaction and the hot-instance cache */
  struct sc_arena ba;     /* everything one batch allocates */
  struct sc_map waiters;  /* iid -> struct sc_waiter list */
  atomic_size_t parked;   /* waiters parked (read by the store's listener thread: changes elsewhere matter) */
  struct sc_heap wheap;   /* waiter deadlines */
  struct sc_heap theap;   /* durable timers: (due, seq) */
  uint64_t wseq;
  size_t waiters_answered;  /* answered waiters still in wheap */
  bool worked_since_trim;   /* a batch ran since the heap was last trimmed */
  int64_t last_trim_us;
  struct sc_cmd *conts;   /* filter purges to continue in the next batch */
  struct sc_cmd **done;
  size_t ndone, capdone;
  size_t ndone_committed;   /* done[0..ndone_committed) are covered by a commit that succeeded */
  int64_t dispatch_held_until_us; /* after a failed commit: no work goes out until then (0: none held) */
  int64_t timers_held_until_us;   /* after a timer failed to fire: none fires until then (0: none held) */
  struct changed *chg;
  size_t nchg, capchg;
  size_t nchg_committed;    /* chg[0..nchg_committed) are covered by a commit that succeeded */
  /* What live views are told after the commit (sc_engine_observe); observer and observer_ctx under mu. */
  struct sc_engine_change *touched;
  size_t ntouched, captouched, ntouched_committed; /* as nchg: only what a commit wrote is told */
  sc_engine_observer_fn observer;
  void *observer_ctx;

  /* Work items. */
  struct sc_stream **streams;
  size_t nstreams, capstreams, rr;
  uint64_t stream_seq;
  struct fifo ready;        /* instance ids that may have work */
  struct sc_map queued;     /* iid -> (void*)1 while in `ready` or waiting for a stream */
  struct sc_map waitqs;     /* work waiting for a stream able to take it, by what it wants (dispatch.c) */
  struct waitq *waitqs_list, *last_waitq;
  uint64_t served_gen;      /* slots_gen when the waiting work was last served */
  struct sc_map orch_leases; /* iid -> its active lease */
  struct sc_map leases;      /* token -> lease, orphans included */
  struct sc_map by_work;     /* "o<iid>" or "a<seq>" -> the leases of that work (a list) */
  uint64_t slots_gen;        /* bumped whenever a stream may take more work */
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

  /* Partitions (partitions.c, forward.c, incoming.c). */
  int nparts;                /* the task hub's partitions (1 for RocksDB) */
  bool *owned;               /* [nparts]: this replica's engine may write it */
  int *to_release;           /* let go of after this batch's commit */
  size_t nto_release;
  struct sc_store_events events;
  struct sc_map pending;     /* "<forward id>" -> client command waiting for its answer */
  uint64_t *fwd_new;         /* ids of pending's entries the next commit writes the forwards of */
  size_t nfwd_new, capfwd_new;
  struct sc_map applied_in;  /* "<id>" of incoming commands applied (a row may be handed over twice) */
  char **applied_in_ring;
  size_t applied_in_pos;
  size_t applied_in_new;     /* the ring's last entries that the next commit marks done */
};

/* Whether this replica owns |iid|'s partition: only then may the engine read it through the transaction or
 * write it; everything else goes through forward.c. */
static inline bool owns_part(const struct sc_engine *e, int part)
{
  return part >= 0 && part < e->nparts && e->owned[part];
}

static inline bool owns(const struct sc_engine *e, const char *iid)
{
  return owns_part(e, sc_part_of(iid, e->nparts));
}

/* batch.c */
/* Makes room for one more element in a growing array (doubling, at least 64); aborts when memory runs out. */
void *grow_array(void *v, size_t *cap, size_t n, size_t elem);
void add_done(struct sc_engine *e, struct sc_cmd *c);
void add_changed(struct sc_engine *e, const char *iid, int status, bool exists);
/* An instance changed without a status change (a turn, a raised event): for live views only. */
void add_touched(struct sc_engine *e, const char *iid, int status);
/* Sets the command's error; returns DONE. */
int fail(struct sc_cmd *c, int code, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
StoredInstance *copy_rec(struct sc_arena *a, const StoredInstance *r);
void fifo_push(struct fifo *f, void *v);
void *fifo_pop(struct fifo *f);
void fifo_free(struct fifo *f);
char *xstrdup(const char *s);
/* The instance may have work: dispatch looks at it after this batch's commands. */
void mark_dirty(struct sc_engine *e, const char *iid);
/* Appends |ev| to |iid|'s inbox (tagged with |exec| unless NULL) and marks the instance dirty. */
int enqueue_msg(struct sc_engine *e, const char *iid, int band, HistoryEvent *ev, const char *exec);
/* An activity was queued (or requeued) by this batch. */
void new_activity(struct sc_engine *e, uint64_t seq);
/* Something to do at |due| (see struct delayed). */
void delay(struct sc_engine *e, int64_t due, enum delayed_kind kind, const char *key, uint64_t seq);
/* A history event stamped now, allocated from the batch arena. */
HistoryEvent *ev_new(struct sc_engine *e, int32_t id);
TaskFailureDetails *make_failure(struct sc_arena *a, const char *type, const char *msg);

/* waiters.c */
int apply_wait(struct sc_engine *e, struct sc_cmd *c);
/* Instances changed on other replicas (SC_CMD_CHANGED): their waiters here read them again. */
int apply_changed(struct sc_engine *e, struct sc_cmd *c);
int apply_cancel(struct sc_engine *e, struct sc_cmd *c);
int apply_explain(struct sc_engine *e, struct sc_cmd *c);
/* Answers the waiters of instances whose status this batch changed. */
void wake_changed(struct sc_engine *e);
void expire_waiters(struct sc_engine *e, int64_t now);
void drop_all_waiters(struct sc_engine *e, int code, const char *msg);
void waiters_compact(struct sc_engine *e);
/* After a wipe: every waited-for instance is gone. */
void waiters_wipe(struct sc_engine *e);
void waiters_free(struct sc_engine *e);

/* lease.c: the state machine is described at the top of that file. */
void leases_init(struct sc_engine *e);
void leases_free(struct sc_engine *e);
/* A lease with a fresh token, not yet held; lease_free it if it is never attached. */
struct sc_lease *lease_new(struct sc_engine *e, enum lease_kind kind, const char *iid, const char *exec);
void lease_free(struct sc_lease *l);
/* The stream now holds it: it becomes the work's active lease and starts its expiry. */
void lease_attach(struct sc_engine *e, struct sc_lease *l, struct sc_stream *s);
/* Its completion was applied: it and every other lease of the same work end; the instance is looked at again. */
void lease_applied(struct sc_engine *e, struct sc_lease *l);
/* Ends it without requeueing anything (its completion was dropped); the instance is looked at again. */
void lease_release(struct sc_engine *e, struct sc_lease *l);
/* Ends it and queues its work again after a backoff (abandoned, expired, or its completion was refused). */
void lease_abandon(struct sc_engine *e, struct sc_lease *l, const char *why);
/* Its stream closed: the slot is freed and the work queued again; the token completes until the grace ends. */
void lease_orphan(struct sc_engine *e, struct sc_lease *l);
/* A sign of progress: the expiry starts again. */
void lease_renew(struct sc_engine *e, struct sc_lease *l);
/* A D_EXPIRE delay came due for |token|. */
void lease_expire(struct sc_engine *e, const char *token, int64_t now);
/* The instance was replaced or restarted: its leases are of no use any more. */
void leases_end_instance(struct sc_engine *e, const char *iid);
void leases_end_all(struct sc_engine *e);
void applied_add(struct sc_engine *e, const char *key);
/* Forgets every applied key: after a failed commit some of them were never written. */
void applied_forget_all(struct sc_engine *e);
bool applied_has(struct sc_engine *e, const char *key);
/* Forgets the abandon count of work that completed or went away. */
void backoff_forget(struct sc_engine *e, enum lease_kind kind, const char *iid, uint64_t act_seq);
bool work_is_leased(struct sc_engine *e, const char *iid);
/* A work item's completion was applied: counted by kind (metrics and stats). */
void count_completed(struct sc_engine *e, enum lease_kind kind);
/* By token, or without one by instance id (orchestrations) or "iid\x01taskId" (activities). */
struct sc_lease *find_lease(struct sc_engine *e, enum lease_kind kind, const char *token, const char *fallback);
int unknown_token(struct sc_engine *e, struct sc_cmd *c, const char *token, const char *what);
/* A completion without a token names only its work, which anyone may know: it counts only from the connection whose
 * stream received the work item (the SDKs that send no token, Go's and Java's, complete on that connection). */
bool tokenless_from_elsewhere(const struct sc_lease *l, const char *peer);

/* streams.c */
int apply_stream_open(struct sc_engine *e, struct sc_cmd *c);
int apply_stream_close(struct sc_engine *e, struct sc_cmd *c);
/* What a work item needs of a stream. */
struct want {
  enum lease_kind kind;
  const char *name, *version;
  bool needs_streaming; /* its history does not fit in the item: only HISTORY_STREAMING workers can take it */
};
/* Why pick_stream found nothing: streams whose filter accepts the item, and those of them that stream history. */
struct pick_why {
  int accepting, accepting_streaming;
};
/* Round-robin over streams with a free slot that read what they are sent and fit the item best (filters naming
 * it before no filters; see streams.c); NULL if none.
 * With |why|, every stream is examined to say why none was found. */
struct sc_stream *pick_stream(struct sc_engine *e, const struct want *w, struct pick_why *why);
/* Work that waits for a stream able to take it. */
struct waitq {
  char *key;
  struct want want;   /* name and version point into key's copy below */
  char *name, *version;
  struct fifo items;  /* instance ids (malloc'd) or activity seqs */
  struct waitq *next; /* e->waitqs_list */
};
/* Parks an item (an id, malloc'd, or an activity seq) until a stream can take what it wants; dispatch.c serves
 * the queues. */
void wait_for_stream(struct sc_engine *e, const struct want *want, void *item);
/* Whether some stream could take an item of this name now. */
bool any_capacity(struct sc_engine *e, enum lease_kind kind);
/* Whether any connected stream's filters would ever accept the item (busy or not). */
bool stream_fits_any(struct sc_engine *e, enum lease_kind kind, const char *name, const char *version);
/* |size| is the packed size when the caller knows it (0: compute it). */
void send_item(struct sc_engine *e, struct sc_stream *s, const WorkItem *wi, size_t size);
void ping(struct sc_engine *e, int64_t now);
/* Leases in flight: orchestrations and entities, activities. */
void work_inflight(struct sc_engine *e, size_t *orch, size_t *act);

/* dispatch.c */
/* READ_FAILED: the store could not be read (not the work's fault); dispatch_item looks at it again later. */
enum dispatch_result { DISPATCHED, DROPPED, WAITING, READ_FAILED };
void work_init(struct sc_engine *e);
void work_free(struct sc_engine *e);
/* Queues the work waiting in partition |part| (-1: the whole store). */
int work_recover(struct sc_engine *e, int part);
void work_wipe(struct sc_engine *e);
/* Queues what this batch made ready and hands out work, reading through the transaction. It may run before the
 * batch's commit, so the worker starts while the commit syncs: a work item is no acknowledgement — if the commit
 * never lands, the process has died with every lease, and the work is redone from what is durable. Clean-ups
 * it finds (stale messages, orphaned activities) join the transaction. */
void work_dispatch(struct sc_engine *e);
void work_timers(struct sc_engine *e, int64_t now);
/* Work items waiting for a stream able to take them. */
size_t work_waiting(struct sc_engine *e);
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
/* ExecutionTerminated{output, recurse}, stamped now. */
HistoryEvent *terminated_event(struct sc_engine *e, const Google__Protobuf__StringValue *output, bool recurse);
int terminate_pending(struct sc_engine *e, const char *iid, StoredInstance *old,
                      const Google__Protobuf__StringValue *output, bool recurse);
/* Fails an orchestration that cannot go on (its work cannot be delivered), with the reason in its failure. */
int fail_by_server(struct sc_engine *e, const char *iid, StoredInstance *old, const char *type, const char *msg);
/* Terminates |iid| on behalf of an orchestration (terminate action, recursive terminate). */
int terminate_other(struct sc_engine *e, const char *iid, const Google__Protobuf__StringValue *reason, bool recurse);
/* Terminates every child of |iid|, recursively. */
int terminate_children(struct sc_engine *e, const char *iid, const Google__Protobuf__StringValue *reason);
/* Queues |ev| for parent |piid| (execution |pexec|), here or through its partition's owner, unless the parent
 * is gone, finished or in another execution. */
int deliver_to_parent(struct sc_engine *e, const char *piid, const char *pexec, HistoryEvent *ev);
/* An orchestration's SendEvent: queues |raised| for |iid|, here or through its owner, unless it is gone or done. */
int deliver_event(struct sc_engine *e, const char *iid, HistoryEvent *raised);
/* Creates sub-orchestration c->instanceid for parent |p| (an owned partition's; a live one of that id fails the
 * parent's task instead). */
int create_child(struct sc_engine *e, const SubOrchestrationInstanceCreatedEvent *c, ParentInstanceInfo *p,
                 TraceContext *trace);
/* A rewound parent's unfinished child: rewinds it if it failed, creates it again if it was purged. */
int rewind_child(struct sc_engine *e, const SubOrchestrationInstanceCreatedEvent *ce, ParentInstanceInfo *pi);
ParentInstanceInfo *parent_info(struct sc_arena *a, const char *iid, const StoredInstance *p, int32_t task);
/* Tells a sub-orchestration's parent that it ended. */
int notify_parent(struct sc_engine *e, const StoredInstance *child, int status,
                  const Google__Protobuf__StringValue *result, TaskFailureDetails *failure);
int rewind_one(struct sc_engine *e, const char *iid, const Google__Protobuf__StringValue *reason,
               const char *parent_exec, int depth);
int rewind_children(struct sc_engine *e, const char *iid, const StoredInstance *parent, HistoryEvent **h, size_t n);

/* commands.c */
/* The instance a client command is for (generating a StartInstance's id when it has none), or NULL for commands
 * that are not about one instance (a purge by filter). */
const char *client_target(struct sc_cmd *c);
/* Applies a client command about one instance of an owned partition (local or forwarded). */
int apply_client(struct sc_engine *e, struct sc_cmd *c);
int apply_start(struct sc_engine *e, struct sc_cmd *c);
int apply_raise(struct sc_engine *e, struct sc_cmd *c);
int apply_suspend(struct sc_engine *e, struct sc_cmd *c, bool resume);
int apply_terminate(struct sc_engine *e, struct sc_cmd *c);
int apply_purge(struct sc_engine *e, struct sc_cmd *c);
/* Purges |iid| (of an owned partition) if it is finished, for a purge forwarded by its parent's replica. */
int purge_instance(struct sc_engine *e, const char *iid, bool recursive);
/* One chunk of a purge by filter; CONTINUED when more remain. */
int purge_filter_chunk(struct sc_engine *e, struct sc_cmd *c);
int apply_rewind(struct sc_engine *e, struct sc_cmd *c);
int apply_restart(struct sc_engine *e, struct sc_cmd *c);

/* turncheck.c */
struct turn_check {
  const struct sc_limits *lim;
  const char *iid;
  size_t history_count;  /* events in the history before this turn */
  size_t consumed;       /* the work item's events this turn appends */
  bool rewind_requested; /* the work item carried an ExecutionRewound */
};
/* Actions whose id becomes the eventId of a history event that later events point back at (tasks, timers,
 * sub-orchestrations, sent events). */
bool action_schedules(const OrchestratorAction *a);
/* NULL when the response can be applied; else why not (written to buf), with the failure's errorType. */
const char *check_turn(const struct turn_check *tc, const OrchestratorResponse *resp, OrchestratorAction **acts,
                       size_t n, const char **type, char *buf, size_t len);

/* turn.c */
/* Applies a worker's response to the lease's turn, or with |forced_msg| fails the orchestration with that reason
 * instead. *dropped: the instance ended, was replaced or purged meanwhile, and nothing was applied. */
int apply_turn(struct sc_engine *e, struct sc_lease *l, const OrchestratorResponse *resp,
               OrchestratorAction **actions, size_t nact, const char *forced_type, const char *forced_msg,
               bool *dropped);
/* Joins the actions of buffered partial chunks (deprecated isPartial) with the final chunk's. */
int gather_actions(struct sc_engine *e, struct sc_lease *l, const OrchestratorResponse *last,
                   OrchestratorAction ***out, size_t *n);

/* complete.c */
int apply_complete_orch(struct sc_engine *e, struct sc_cmd *c);
int apply_complete_act(struct sc_engine *e, struct sc_cmd *c);
int apply_abandon(struct sc_engine *e, struct sc_cmd *c);
/* The worker holding the instance's work item shows progress (it fetched the history). */
int apply_renew(struct sc_engine *e, struct sc_cmd *c);


/* entity_queue.c: below instance.c and turn.c, which call it */
/* "name" of "@name@key"; false when |id| is not an entity id. */
bool entity_name(const char *id, char *out, size_t cap);
/* Queues operation |op| for entity |id| (a transient record appears if it has none). Owned partition only. */
int entity_deliver(struct sc_engine *e, const char *id, HistoryEvent *op);
/* The same for any entity: at |at_us| when later than now (a timer), through its partition's owner if not ours. */
int entity_send(struct sc_engine *e, const char *id, HistoryEvent *op, int64_t at_us);
/* An operation another replica forwarded to an entity of an owned partition. */
int entity_forwarded(struct sc_engine *e, const char *id, HistoryEvent *op);
int apply_signal_entity(struct sc_engine *e, struct sc_cmd *c);
/* An orchestration's sendEntityMessage, recorded in its history as |ev| (parent fields set): sent to its entity. */
int entity_message(struct sc_engine *e, const HistoryEvent *ev);
/* Orchestration |iid| ended: every entity lock it asked for and did not release is released. */
int entity_release_locks(struct sc_engine *e, const char *iid);
/* A fresh random UUID for the requests taskhubd makes (a client's own keep theirs). */
char *entity_request_id(struct sc_arena *a);
/* A signal's or call's scheduledTime in microseconds (0 without one). */
int64_t entity_scheduled_us(const Google__Protobuf__Timestamp *t);

/* entities.c: batches and their completion, above dispatch's and the client commands' helpers */
/* A batch of the operations at the front of |id|'s queue to a stream that takes entity work; a dispatch_result. */
int dispatch_entity(struct sc_engine *e, const char *id);
int apply_complete_entity(struct sc_engine *e, struct sc_cmd *c);
int apply_clean_entities(struct sc_engine *e, struct sc_cmd *c);

/* forward.c */
/* Forwards a client command for an instance of a partition this replica does not own; PARKED until the answer
 * comes (SC_CMD_REPLY). */
int forward_client(struct sc_engine *e, struct sc_cmd *c, const char *iid);
/* Forwards an engine-made command (|f| is not a CLIENT one) to the owner of |f->instance_id|'s partition. */
void forward_send(struct sc_engine *e, Taskhubd__Store__Forward *f);
/* The answer to a forwarded client command came. */
int apply_reply(struct sc_engine *e, struct sc_cmd *c);
/* Forwarded commands still waiting are answered with |code| (taskhubd stops). */
void forwards_fail_all(struct sc_engine *e, int code, const char *msg);
/* After a commit: its forwards were written (committed) or not (failed: their commands are answered with |code|
 * and |msg|, since no replica will ever see them). */
void forwards_committed(struct sc_engine *e);
void forwards_not_written(struct sc_engine *e, int code, const char *msg);
void forward_free(struct sc_engine *e);

/* partitions.c */
void parts_init(struct sc_engine *e);
/* A store of one partition (RocksDB) is loaded at start, before the engine thread runs. */
int parts_load_single(struct sc_engine *e);
/* Whether incoming command |id| was applied already (a row may be handed over twice); records it if not. */
bool incoming_seen(struct sc_engine *e, uint64_t id);
/* After a commit: the incoming commands applied since the last one were marked done (committed), or were not
 * (failed): they count as not applied, so that their rows, handed over again, are applied then. */
void incoming_committed(struct sc_engine *e);
void incoming_not_written(struct sc_engine *e);
/* Starts listening to the store (after the engine thread started). */
void parts_attach(struct sc_engine *e);
/* The store stops calling the engine (its lease and listener threads end): at stop, before the engine goes. */
void parts_detach(struct sc_engine *e);
int apply_gain(struct sc_engine *e, struct sc_cmd *c);
int apply_release(struct sc_engine *e, struct sc_cmd *c);
/* A commit failed: the owned partitions' work is loaded again from the committed state (the caller emptied
 * the queues, leases and timers). */
int parts_reload(struct sc_engine *e);
/* After the commit: lets go of what apply_release marked. */
void parts_release_marked(struct sc_engine *e);
void parts_free(struct sc_engine *e);

/* incoming.c */
int apply_incoming(struct sc_engine *e, struct sc_cmd *c);

/* engine.c */
/* Commits the transaction now. On failure (commit_failed) the commands it held are failed and the work state
 * is rebuilt from what is committed; a commit the fence refused (another replica owns the partitions now) ends
 * the process. */
void commit(struct sc_engine *e);
void commit_failed(struct sc_engine *e, const struct sc_err *err);

#endif
