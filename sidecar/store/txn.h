#ifndef SC_TXN_H
#define SC_TXN_H

/*
 * The engine's transaction over a store backend (store.h). The engine makes one transaction per batch: it reads
 * through it (seeing its own writes), writes through it, marks save points (one per command, so a failed
 * command leaves nothing behind) and commits it as one change set. Between transactions the hot-instance cache
 * (cache.h) keeps what the transaction knew of recently used instances, so that the next dispatch or
 * completion of an instance reads memory instead of the backend. Engine thread only.
 *
 * What is known of an instance (its record, payloads, history, inbox) is always exactly the committed state
 * plus the transaction's pending changes; what is not known has no pending changes and is read from the
 * backend. Appending to an unknown history or inbox therefore reads it first.
 */

#include "store.h"

struct sc_txn;

/* Holds the instances of a few thousand orchestrations in flight, while 100,000 idle ones stay within the memory
 * target (docs/performance.md). */
#define SC_CACHE_DEFAULT_BUDGET ((size_t)16 << 20)

/* CONSTRUCTOR: a transaction layer over |st| with a cache of |cache_budget| bytes. */
struct sc_txn *sc_txn_new(struct sc_store *st, size_t cache_budget);
/* DESTRUCTOR: discards what is pending; the backend stays open. */
void sc_txn_free(struct sc_txn *t);
struct sc_store *sc_txn_store(struct sc_txn *t);
void sc_txn_set_cache_budget(struct sc_txn *t, size_t bytes);

/* Discards what is pending and starts afresh. */
void sc_txn_reset(struct sc_txn *t);
/* Changes pending. */
size_t sc_txn_size(struct sc_txn *t);
/* Applies what is pending as one change set (nothing to do when none is). On failure the pending changes are
 * discarded and what the cache learnt from them is forgotten. */
int sc_txn_commit(struct sc_txn *t, bool sync, struct sc_err *err);
/* A save point; sc_txn_rollback undoes everything since the latest one. */
void sc_txn_savepoint(struct sc_txn *t);
void sc_txn_rollback(struct sc_txn *t);
/* A fresh sequence number (inbox messages, timers, activities), persisted with the commit. */
uint64_t sc_txn_next_seq(struct sc_txn *t);
/* Something changed |iid| outside this transaction (another writer's message): forget what is cached of it. */
void sc_txn_forget(struct sc_txn *t, const char *iid);
/* Discards what is pending and deletes every record of the store (DeleteTaskHub); sequence numbers carry on. */
int sc_txn_wipe(struct sc_txn *t, struct sc_err *err);

/* Reads, as the transaction sees them; results allocated from |a| unless said otherwise. */
int sc_txn_get_instance(struct sc_txn *t, const char *iid, struct sc_arena *a, StoredInstance **out);
int sc_txn_get_payload(struct sc_txn *t, const char *iid, int kind, struct sc_arena *a, char **data, size_t *len);
/* The events are the cache's own: read them before the next call on the transaction. */
int sc_txn_history_load(struct sc_txn *t, const char *iid, struct sc_arena *a, HistoryEvent ***out, size_t *n);
int sc_txn_inbox_load(struct sc_txn *t, const char *iid, struct sc_arena *a, struct sc_inbox_msg **out, size_t *n);
/* How many messages wait in the inbox (at most |max_count| is reported) and all their bytes; costs no walk. */
int sc_txn_inbox_stats(struct sc_txn *t, const char *iid, size_t max_count, size_t *count, size_t *bytes);
/* Entity |id|'s record, or SC_ENOTFOUND. */
int sc_txn_get_entity(struct sc_txn *t, const char *id, struct sc_arena *a, StoredEntity **out);
int sc_txn_timer_get(struct sc_txn *t, int64_t due_us, uint64_t seq, struct sc_arena *a, StoredTimer **out);
int sc_txn_actq_get(struct sc_txn *t, uint64_t seq, struct sc_arena *a, StoredActivity **out);
int sc_txn_children(struct sc_txn *t, const char *parent, sc_child_fn fn, void *ctx);

/* Writes. */
/* Writes |rec| and moves its index entries from |old| (NULL when new). */
int sc_txn_put_instance(struct sc_txn *t, const char *iid, const StoredInstance *rec, const StoredInstance *old);
/* Deletes the record, payloads, history, inbox and index entries of |iid|. |inbox_empty|: the caller knows its
 * inbox is empty (as for a finished instance), so the backend need not look. */
int sc_txn_delete_instance(struct sc_txn *t, const char *iid, const StoredInstance *old, bool inbox_empty);
/* data == NULL deletes. */
int sc_txn_put_payload(struct sc_txn *t, const char *iid, int kind, const char *data, size_t len);
/* rec == NULL deletes the record (not its queue). */
int sc_txn_put_entity(struct sc_txn *t, const char *id, const StoredEntity *rec);
int sc_txn_history_append(struct sc_txn *t, const char *iid, uint32_t index, const HistoryEvent *ev);
/* Empties the history before it is replaced, and gives it a new generation. */
int sc_txn_history_clear(struct sc_txn *t, const char *iid);
int sc_txn_inbox_append(struct sc_txn *t, const char *iid, int band, uint64_t seq, const StoredMsg *m);
int sc_txn_inbox_delete(struct sc_txn *t, const char *iid, int band, uint64_t seq);
int sc_txn_inbox_clear(struct sc_txn *t, const char *iid);
int sc_txn_timer_put(struct sc_txn *t, int64_t due_us, uint64_t seq, const StoredTimer *tm);
int sc_txn_timer_delete(struct sc_txn *t, const char *iid, int64_t due_us, uint64_t seq);
int sc_txn_actq_put(struct sc_txn *t, uint64_t seq, const StoredActivity *a);
int sc_txn_actq_delete(struct sc_txn *t, const char *iid, uint64_t seq);

/* Between partitions (store.h): a Forward for |part|'s owner (|id|: a fresh sequence number); a Forward applied
 * by this transaction; the answer to a Forward another replica sent. */
void sc_txn_forward(struct sc_txn *t, int part, uint64_t id, const ProtobufCMessage *fwd);
void sc_txn_forward_done(struct sc_txn *t, int part, uint64_t id);
void sc_txn_reply(struct sc_txn *t, const char *replica, uint64_t id, const ProtobufCMessage *reply);

/* Partitions moved: nothing cached may be trusted (nothing may be pending). */
void sc_txn_forget_all(struct sc_txn *t);
/* A partition was taken: count on from above every sequence number its previous owner used. */
void sc_txn_renew_seq(struct sc_txn *t);

#endif
