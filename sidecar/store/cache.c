#include "cache.h"

#include "common/log.h"
#include "common/metrics.h"

#include <stdlib.h>
#include <string.h>

/* What one malloc costs beyond what was asked for (glibc's chunk header and rounding, roughly). */
#define MALLOC_OVERHEAD 16
#define MSG_CHARGE(len) ((len) + MALLOC_OVERHEAD)

/* Unpacking an event makes several small allocations: the charge is their real sum. */
static void *count_alloc(void *data, size_t size)
{
  *(size_t *)data += size + MALLOC_OVERHEAD;
  return malloc(size);
}

static void count_free(void *data, void *p)
{
  (void)data;
  free(p);
}

static void *xrealloc(void *p, size_t n)
{
  void *q = realloc(p, n);
  if (!q)
    sc_panic("out of memory in the instance cache");
  return q;
}

void sc_cache_init(struct sc_cache *h, size_t budget)
{
  memset(h, 0, sizeof *h);
  sc_map_init(&h->map);
  h->budget = budget;
}

/* Parts charge their own counters too, so that forgetting one part subtracts exactly what it added. */
static void charge(struct sc_cache *h, struct sc_cache_inst *e, size_t add, size_t sub)
{
  e->bytes = e->bytes + add - sub;
  h->bytes = h->bytes + add - sub;
}

static void bury(struct sc_cache *h, HistoryEvent *ev)
{
  if (h->ngrave == h->cap_grave) {
    h->cap_grave = h->cap_grave ? h->cap_grave * 2 : 64;
    h->grave = xrealloc(h->grave, h->cap_grave * sizeof *h->grave);
  }
  h->grave[h->ngrave++] = ev;
}

void sc_cache_forget_rec(struct sc_cache *h, struct sc_cache_inst *e)
{
  charge(h, e, 0, e->rec ? e->rec_len + MALLOC_OVERHEAD : 0);
  free(e->rec);
  e->rec = NULL;
  e->rec_len = 0;
  e->rec_known = false;
}

void sc_cache_forget_hist(struct sc_cache *h, struct sc_cache_inst *e)
{
  for (size_t i = 0; i < e->nev; i++)
    bury(h, e->ev[i]);
  free(e->ev);
  e->ev = NULL;
  e->nev = e->cap_ev = 0;
  e->hist_known = false;
  charge(h, e, 0, e->hist_bytes);
  e->hist_bytes = 0;
}

void sc_cache_forget_inbox(struct sc_cache *h, struct sc_cache_inst *e)
{
  for (size_t i = 0; i < e->nmsg; i++)
    free(e->msg[i].b);
  free(e->msg);
  e->msg = NULL;
  e->nmsg = e->cap_msg = 0;
  e->msg_len = 0;
  e->inbox_known = false;
  charge(h, e, 0, e->inbox_bytes);
  e->inbox_bytes = 0;
}

void sc_cache_forget(struct sc_cache *h, struct sc_cache_inst *e)
{
  sc_cache_forget_rec(h, e);
  sc_cache_forget_hist(h, e);
  sc_cache_forget_inbox(h, e);
}

static void unlink_lru(struct sc_cache *h, struct sc_cache_inst *e)
{
  if (e->prev)
    e->prev->next = e->next;
  else
    h->head = e->next;
  if (e->next)
    e->next->prev = e->prev;
  else
    h->tail = e->prev;
  e->prev = e->next = NULL;
}

static void evict(struct sc_cache *h, struct sc_cache_inst *e)
{
  sc_cache_forget(h, e);
  unlink_lru(h, e);
  sc_map_remove(&h->map, e->iid);
  h->bytes -= e->bytes;
  free(e->pend);
  free(e->iid);
  free(e);
}

static void free_grave(struct sc_cache *h)
{
  for (size_t i = 0; i < h->ngrave; i++)
    history_event__free_unpacked(h->grave[i], NULL);
  h->ngrave = 0;
}

void sc_cache_clear(struct sc_cache *h)
{
  while (h->head)
    evict(h, h->head);
  free_grave(h);
}

void sc_cache_free(struct sc_cache *h)
{
  sc_cache_clear(h);
  sc_map_free(&h->map);
  free(h->grave);
  memset(h, 0, sizeof *h);
}

struct sc_cache_inst *sc_cache_get(struct sc_cache *h, const char *iid, bool create)
{
  struct sc_cache_inst *e = sc_map_get(&h->map, iid);
  if (e) {
    if (h->head != e) {
      unlink_lru(h, e);
      e->next = h->head;
      if (h->head)
        h->head->prev = e;
      h->head = e;
      if (!h->tail)
        h->tail = e;
    }
    return e;
  }
  if (!create)
    return NULL;
  e = calloc(1, sizeof *e);
  if (!e || !(e->iid = strdup(iid)))
    sc_panic("out of memory in the instance cache");
  e->next = h->head;
  if (h->head)
    h->head->prev = e;
  h->head = e;
  if (!h->tail)
    h->tail = e;
  sc_map_put(&h->map, e->iid, e);
  charge(h, e, sizeof *e + strlen(iid) + 1 + 2 * MALLOC_OVERHEAD + 48 /* its map entry */, 0);
  return e;
}


void sc_cache_set_rec(struct sc_cache *h, struct sc_cache_inst *e, const void *rec, size_t len)
{
  sc_cache_forget_rec(h, e);
  if (rec) {
    e->rec = malloc(len ? len : 1);
    if (!e->rec)
      sc_panic("out of memory in the instance cache");
    memcpy(e->rec, rec, len);
    e->rec_len = len;
    charge(h, e, len + MALLOC_OVERHEAD, 0);
  }
  e->rec_known = true;
}

void sc_cache_set_hist_empty(struct sc_cache *h, struct sc_cache_inst *e)
{
  sc_cache_forget_hist(h, e);
  e->hist_known = true;
}

bool sc_cache_hist_put(struct sc_cache *h, struct sc_cache_inst *e, uint32_t index, const void *ev, size_t len)
{
  if (index > e->nev) {
    sc_cache_forget_hist(h, e);
    return false;
  }
  size_t used = 0;
  ProtobufCAllocator counting = {count_alloc, count_free, &used};
  HistoryEvent *u = history_event__unpack(&counting, len, ev);
  if (!u) {
    sc_cache_forget_hist(h, e);
    return false;
  }
  if (index < e->nev) { /* a rewrite: the old event may still be read by a caller until the transaction ends */
    bury(h, e->ev[index]);
    e->ev[index] = u;
    e->hist_bytes += used;
    charge(h, e, used, 0);
    return true;
  }
  if (e->nev == e->cap_ev) {
    size_t old = e->cap_ev;
    e->cap_ev = e->cap_ev ? e->cap_ev * 2 : 16;
    e->ev = xrealloc(e->ev, e->cap_ev * sizeof *e->ev);
    used += (e->cap_ev - old) * sizeof *e->ev;
  }
  e->ev[e->nev++] = u;
  e->hist_bytes += used;
  charge(h, e, used, 0);
  return true;
}

void sc_cache_set_inbox_empty(struct sc_cache *h, struct sc_cache_inst *e)
{
  sc_cache_forget_inbox(h, e);
  e->inbox_known = true;
}

static int msg_cmp(int band, uint64_t seq, const struct sc_cache_msg *m)
{
  if (band != m->band)
    return band < m->band ? -1 : 1;
  return seq < m->seq ? -1 : seq > m->seq;
}

void sc_cache_inbox_put(struct sc_cache *h, struct sc_cache_inst *e, int band, uint64_t seq, const void *m,
                        size_t len)
{
  /* Usually the newest message: search from the end. */
  size_t at = e->nmsg;
  while (at > 0 && msg_cmp(band, seq, &e->msg[at - 1]) < 0)
    at--;
  unsigned char *b = malloc(len ? len : 1);
  if (!b)
    sc_panic("out of memory in the instance cache");
  memcpy(b, m, len);
  if (at > 0 && msg_cmp(band, seq, &e->msg[at - 1]) == 0) { /* a rewrite of the same key */
    e->inbox_bytes = e->inbox_bytes + MSG_CHARGE(len) - MSG_CHARGE(e->msg[at - 1].len);
    e->msg_len = e->msg_len + len - e->msg[at - 1].len;
    charge(h, e, MSG_CHARGE(len), MSG_CHARGE(e->msg[at - 1].len));
    free(e->msg[at - 1].b);
    e->msg[at - 1].b = b;
    e->msg[at - 1].len = len;
    return;
  }
  size_t add = MSG_CHARGE(len);
  if (e->nmsg == e->cap_msg) {
    size_t old = e->cap_msg;
    e->cap_msg = e->cap_msg ? e->cap_msg * 2 : 8;
    e->msg = xrealloc(e->msg, e->cap_msg * sizeof *e->msg);
    add += (e->cap_msg - old) * sizeof *e->msg;
  }
  memmove(&e->msg[at + 1], &e->msg[at], (e->nmsg - at) * sizeof *e->msg);
  e->msg[at] = (struct sc_cache_msg){band, seq, b, len};
  e->nmsg++;
  e->msg_len += len;
  e->inbox_bytes += add;
  charge(h, e, add, 0);
}

void sc_cache_inbox_del(struct sc_cache *h, struct sc_cache_inst *e, int band, uint64_t seq)
{
  for (size_t i = 0; i < e->nmsg; i++) {
    if (msg_cmp(band, seq, &e->msg[i]) != 0)
      continue;
    e->inbox_bytes -= MSG_CHARGE(e->msg[i].len);
    e->msg_len -= e->msg[i].len;
    charge(h, e, 0, MSG_CHARGE(e->msg[i].len));
    free(e->msg[i].b);
    memmove(&e->msg[i], &e->msg[i + 1], (e->nmsg - i - 1) * sizeof *e->msg);
    e->nmsg--;
    return;
  }
}

void sc_cache_pend(struct sc_cache *h, struct sc_cache_inst *e, size_t index)
{
  if (e->npend == e->cap_pend) {
    size_t old = e->cap_pend;
    e->cap_pend = e->cap_pend ? e->cap_pend * 2 : 8;
    e->pend = xrealloc(e->pend, e->cap_pend * sizeof *e->pend);
    charge(h, e, (e->cap_pend - old) * sizeof *e->pend, 0);
  }
  e->pend[e->npend++] = index;
}

void sc_cache_trim(struct sc_cache *h)
{
  free_grave(h);
  struct sc_cache_inst *e = h->tail;
  while (h->bytes > h->budget && e) {
    struct sc_cache_inst *prev = e->prev;
    if (!e->npend)
      evict(h, e);
    e = prev;
  }
  atomic_store_explicit(&sc_metrics.cache_bytes, h->bytes, memory_order_relaxed);
}
