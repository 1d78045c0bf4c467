#ifndef SC_HOT_H
#define SC_HOT_H

/*
 * The hot-instance cache: what the write transaction sees of recently used instances (record, history,
 * inbox), kept by the store so that the engine's next dispatch or completion of an instance reads memory
 * instead of seeking RocksDB's write batch and memtables. Engine thread only, like the transaction.
 *
 * Each part of an entry is either known (exactly the transaction's view) or unknown (read the store). Every
 * change to an entry is journaled; rolling back to a save point makes what changed since unknown again, so
 * the cache never shows a rolled-back write. Entries are evicted least recently used first, only between
 * transactions, once the cache holds more than its byte budget.
 */

#include "common/map.h"
#include "orchestrator_service.pb-c.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct sc_hot_msg {
  int band;
  uint64_t seq;
  unsigned char *b; /* packed StoredMsg */
  size_t len;
};

struct sc_hot_inst {
  char *iid;
  bool rec_known, hist_known, inbox_known;
  unsigned char *rec; /* packed StoredInstance; NULL when known absent */
  size_t rec_len;
  HistoryEvent **ev;  /* unpacked, owned; event i is stored under history index i */
  size_t nev, cap_ev;
  struct sc_hot_msg *msg; /* in key order: band, then seq */
  size_t nmsg, cap_msg;
  size_t bytes;         /* charged against the budget: what was allocated for it */
  size_t hist_bytes, inbox_bytes;
  uint64_t journal_gen; /* the save-point segment that last journaled this entry */
  struct sc_hot_inst *prev, *next; /* most recently used first */
};

struct sc_hot {
  struct sc_map map;
  struct sc_hot_inst *head, *tail;
  size_t bytes, budget;
  struct sc_hot_inst **journal; /* entries changed in this transaction, per save-point segment */
  size_t njournal, cap_journal;
  size_t *marks; /* journal length at each open save point */
  size_t nmarks, cap_marks;
  uint64_t gen;
  HistoryEvent **grave; /* events dropped in this transaction; a caller may still hold them */
  size_t ngrave, cap_grave;
};

void sc_hot_init(struct sc_hot *h, size_t budget);
void sc_hot_free(struct sc_hot *h);
/* Drops every entry (the store was wiped). */
void sc_hot_clear(struct sc_hot *h);

/* The entry of |iid| (made most recently used), or NULL; |create| makes an empty, all-unknown one. */
struct sc_hot_inst *sc_hot_get(struct sc_hot *h, const char *iid, bool create);
/* Call before changing an entry's contents, so a rollback can forget the change. */
void sc_hot_journal(struct sc_hot *h, struct sc_hot_inst *e);

/* The parts of an entry; each copies what it is given. */
void sc_hot_set_rec(struct sc_hot *h, struct sc_hot_inst *e, const void *rec, size_t len);
void sc_hot_forget_rec(struct sc_hot *h, struct sc_hot_inst *e);
/* Known and empty. */
void sc_hot_set_hist_empty(struct sc_hot *h, struct sc_hot_inst *e);
/* Appends the packed event as history index e->nev; false (and the history unknown) when it cannot. */
bool sc_hot_hist_append(struct sc_hot *h, struct sc_hot_inst *e, const void *ev, size_t len);
void sc_hot_forget_hist(struct sc_hot *h, struct sc_hot_inst *e);
void sc_hot_set_inbox_empty(struct sc_hot *h, struct sc_hot_inst *e);
/* Inserts in key order; false (and the inbox unknown) when out of memory. */
bool sc_hot_inbox_put(struct sc_hot *h, struct sc_hot_inst *e, int band, uint64_t seq, const void *m,
                      size_t len);
void sc_hot_inbox_del(struct sc_hot *h, struct sc_hot_inst *e, int band, uint64_t seq);
void sc_hot_forget_inbox(struct sc_hot *h, struct sc_hot_inst *e);
/* Everything about the instance unknown. */
void sc_hot_forget(struct sc_hot *h, struct sc_hot_inst *e);

/* The transaction's life: a save point, a rollback to the latest one, and its end (committed or
 * discarded), when dropped events are freed and the budget is enforced. */
void sc_hot_savepoint(struct sc_hot *h);
void sc_hot_rollback(struct sc_hot *h);
void sc_hot_end(struct sc_hot *h, bool committed);

#endif
