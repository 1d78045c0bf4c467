#ifndef SC_CACHE_H
#define SC_CACHE_H

/*
 * The hot-instance cache of the transaction layer (txn.c): the record, history and inbox of recently used
 * instances as the transaction sees them, so that the engine's next dispatch or completion of an instance reads
 * memory instead of the backend. Each part of an entry is either known (exactly the committed state plus the
 * transaction's pending changes) or unknown. An entry also lists the transaction's pending changes of its
 * instance, so that an unknown part can be rebuilt from the backend and those changes. Entries are evicted
 * least recently used first, only between transactions, once the cache holds more than its byte budget.
 * Engine thread only.
 */

#include "common/map.h"
#include "orchestrator_service.pb-c.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct sc_cache_msg {
  int band;
  uint64_t seq;
  unsigned char *b; /* packed StoredMsg */
  size_t len;
};

struct sc_cache_inst {
  char *iid;
  bool rec_known, hist_known, inbox_known;
  bool finished;      /* the pending changes give it a terminal record (set by the transaction layer) */
  unsigned char *rec; /* packed StoredInstance; NULL when known absent */
  size_t rec_len;
  HistoryEvent **ev;  /* unpacked, owned; event i is stored under history index i */
  size_t nev, cap_ev;
  struct sc_cache_msg *msg; /* in key order: band, then seq */
  size_t nmsg, cap_msg;
  size_t msg_len;     /* the sum of msg[].len: what --max-inbox-bytes counts, kept so checking it costs nothing */
  size_t *pend;       /* the transaction's pending changes of this instance, as indexes into its change list */
  size_t npend, cap_pend;
  size_t bytes;       /* charged against the budget: what was allocated for it */
  size_t hist_bytes, inbox_bytes;
  struct sc_cache_inst *prev, *next; /* most recently used first */
};

struct sc_cache {
  struct sc_map map;
  struct sc_cache_inst *head, *tail;
  size_t bytes, budget;
  HistoryEvent **grave; /* events dropped in this transaction; a caller may still hold them */
  size_t ngrave, cap_grave;
};

void sc_cache_init(struct sc_cache *h, size_t budget);
void sc_cache_free(struct sc_cache *h);
/* Drops every entry. */
void sc_cache_clear(struct sc_cache *h);

/* The entry of |iid| (made most recently used), or NULL; |create| makes an empty, all-unknown one. */
struct sc_cache_inst *sc_cache_get(struct sc_cache *h, const char *iid, bool create);

/* The parts of an entry; each copies what it is given. */
void sc_cache_set_rec(struct sc_cache *h, struct sc_cache_inst *e, const void *rec, size_t len);
void sc_cache_forget_rec(struct sc_cache *h, struct sc_cache_inst *e);
/* Known and empty. */
void sc_cache_set_hist_empty(struct sc_cache *h, struct sc_cache_inst *e);
/* Sets (index < nev) or appends (index == nev) the packed event; false (and the history unknown) when it
 * cannot: a gap, or an event that does not decode. */
bool sc_cache_hist_put(struct sc_cache *h, struct sc_cache_inst *e, uint32_t index, const void *ev, size_t len);
void sc_cache_forget_hist(struct sc_cache *h, struct sc_cache_inst *e);
void sc_cache_set_inbox_empty(struct sc_cache *h, struct sc_cache_inst *e);
/* Inserts in key order, or replaces the message with the same key. */
void sc_cache_inbox_put(struct sc_cache *h, struct sc_cache_inst *e, int band, uint64_t seq, const void *m,
                        size_t len);
void sc_cache_inbox_del(struct sc_cache *h, struct sc_cache_inst *e, int band, uint64_t seq);
void sc_cache_forget_inbox(struct sc_cache *h, struct sc_cache_inst *e);
/* Everything about the instance unknown. */
void sc_cache_forget(struct sc_cache *h, struct sc_cache_inst *e);

/* Remembers that change |index| of the transaction concerns this entry. */
void sc_cache_pend(struct sc_cache *h, struct sc_cache_inst *e, size_t index);

/* Between transactions: frees what was dropped and evicts entries until the cache is within its budget (entries
 * with pending changes stay). */
void sc_cache_trim(struct sc_cache *h);

#endif
