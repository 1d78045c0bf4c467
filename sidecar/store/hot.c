#include "hot.h"

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

void sc_hot_init(struct sc_hot *h, size_t budget)
{
  memset(h, 0, sizeof *h);
  sc_map_init(&h->map);
  h->budget = budget;
}

/* Parts charge their own counters too, so that forgetting one part subtracts exactly what it added. */
static void charge(struct sc_hot *h, struct sc_hot_inst *e, size_t add, size_t sub)
{
  e->bytes = e->bytes + add - sub;
  h->bytes = h->bytes + add - sub;
}

static void bury(struct sc_hot *h, HistoryEvent *ev)
{
  if (h->ngrave == h->cap_grave) {
    h->cap_grave = h->cap_grave ? h->cap_grave * 2 : 64;
    h->grave = xrealloc(h->grave, h->cap_grave * sizeof *h->grave);
  }
  h->grave[h->ngrave++] = ev;
}

void sc_hot_forget_rec(struct sc_hot *h, struct sc_hot_inst *e)
{
  charge(h, e, 0, e->rec ? e->rec_len + MALLOC_OVERHEAD : 0);
  free(e->rec);
  e->rec = NULL;
  e->rec_len = 0;
  e->rec_known = false;
}

void sc_hot_forget_hist(struct sc_hot *h, struct sc_hot_inst *e)
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

void sc_hot_forget_inbox(struct sc_hot *h, struct sc_hot_inst *e)
{
  for (size_t i = 0; i < e->nmsg; i++)
    free(e->msg[i].b);
  free(e->msg);
  e->msg = NULL;
  e->nmsg = e->cap_msg = 0;
  e->inbox_known = false;
  charge(h, e, 0, e->inbox_bytes);
  e->inbox_bytes = 0;
}

void sc_hot_forget(struct sc_hot *h, struct sc_hot_inst *e)
{
  sc_hot_forget_rec(h, e);
  sc_hot_forget_hist(h, e);
  sc_hot_forget_inbox(h, e);
}

static void unlink_lru(struct sc_hot *h, struct sc_hot_inst *e)
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

static void evict(struct sc_hot *h, struct sc_hot_inst *e)
{
  sc_hot_forget(h, e);
  unlink_lru(h, e);
  sc_map_remove(&h->map, e->iid);
  h->bytes -= e->bytes;
  free(e->iid);
  free(e);
}

static void free_grave(struct sc_hot *h)
{
  for (size_t i = 0; i < h->ngrave; i++)
    history_event__free_unpacked(h->grave[i], NULL);
  h->ngrave = 0;
}

void sc_hot_clear(struct sc_hot *h)
{
  while (h->head)
    evict(h, h->head);
  free_grave(h);
  h->njournal = h->nmarks = 0;
}

void sc_hot_free(struct sc_hot *h)
{
  sc_hot_clear(h);
  sc_map_free(&h->map);
  free(h->journal);
  free(h->marks);
  free(h->grave);
  memset(h, 0, sizeof *h);
}

struct sc_hot_inst *sc_hot_get(struct sc_hot *h, const char *iid, bool create)
{
  struct sc_hot_inst *e = sc_map_get(&h->map, iid);
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
  e->journal_gen = UINT64_MAX;
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

void sc_hot_journal(struct sc_hot *h, struct sc_hot_inst *e)
{
  if (e->journal_gen == h->gen)
    return;
  e->journal_gen = h->gen;
  if (h->njournal == h->cap_journal) {
    h->cap_journal = h->cap_journal ? h->cap_journal * 2 : 256;
    h->journal = xrealloc(h->journal, h->cap_journal * sizeof *h->journal);
  }
  h->journal[h->njournal++] = e;
}

void sc_hot_set_rec(struct sc_hot *h, struct sc_hot_inst *e, const void *rec, size_t len)
{
  sc_hot_forget_rec(h, e);
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

void sc_hot_set_hist_empty(struct sc_hot *h, struct sc_hot_inst *e)
{
  sc_hot_forget_hist(h, e);
  e->hist_known = true;
}

bool sc_hot_hist_append(struct sc_hot *h, struct sc_hot_inst *e, const void *ev, size_t len)
{
  size_t used = 0;
  ProtobufCAllocator counting = {count_alloc, count_free, &used};
  HistoryEvent *u = history_event__unpack(&counting, len, ev);
  if (!u) {
    sc_hot_forget_hist(h, e);
    return false;
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

void sc_hot_set_inbox_empty(struct sc_hot *h, struct sc_hot_inst *e)
{
  sc_hot_forget_inbox(h, e);
  e->inbox_known = true;
}

static int msg_cmp(int band, uint64_t seq, const struct sc_hot_msg *m)
{
  if (band != m->band)
    return band < m->band ? -1 : 1;
  return seq < m->seq ? -1 : seq > m->seq;
}

bool sc_hot_inbox_put(struct sc_hot *h, struct sc_hot_inst *e, int band, uint64_t seq, const void *m,
                      size_t len)
{
  /* Usually the newest message: search from the end. */
  size_t at = e->nmsg;
  while (at > 0 && msg_cmp(band, seq, &e->msg[at - 1]) < 0)
    at--;
  unsigned char *b = malloc(len ? len : 1);
  if (!b) {
    sc_hot_forget_inbox(h, e);
    return false;
  }
  memcpy(b, m, len);
  if (at > 0 && msg_cmp(band, seq, &e->msg[at - 1]) == 0) { /* a rewrite of the same key */
    e->inbox_bytes = e->inbox_bytes + MSG_CHARGE(len) - MSG_CHARGE(e->msg[at - 1].len);
    charge(h, e, MSG_CHARGE(len), MSG_CHARGE(e->msg[at - 1].len));
    free(e->msg[at - 1].b);
    e->msg[at - 1].b = b;
    e->msg[at - 1].len = len;
    return true;
  }
  size_t add = MSG_CHARGE(len);
  if (e->nmsg == e->cap_msg) {
    size_t old = e->cap_msg;
    e->cap_msg = e->cap_msg ? e->cap_msg * 2 : 8;
    e->msg = xrealloc(e->msg, e->cap_msg * sizeof *e->msg);
    add += (e->cap_msg - old) * sizeof *e->msg;
  }
  memmove(&e->msg[at + 1], &e->msg[at], (e->nmsg - at) * sizeof *e->msg);
  e->msg[at] = (struct sc_hot_msg){band, seq, b, len};
  e->nmsg++;
  e->inbox_bytes += add;
  charge(h, e, add, 0);
  return true;
}

void sc_hot_inbox_del(struct sc_hot *h, struct sc_hot_inst *e, int band, uint64_t seq)
{
  for (size_t i = 0; i < e->nmsg; i++) {
    if (msg_cmp(band, seq, &e->msg[i]) != 0)
      continue;
    e->inbox_bytes -= MSG_CHARGE(e->msg[i].len);
    charge(h, e, 0, MSG_CHARGE(e->msg[i].len));
    free(e->msg[i].b);
    memmove(&e->msg[i], &e->msg[i + 1], (e->nmsg - i - 1) * sizeof *e->msg);
    e->nmsg--;
    return;
  }
}

void sc_hot_savepoint(struct sc_hot *h)
{
  if (h->nmarks == h->cap_marks) {
    h->cap_marks = h->cap_marks ? h->cap_marks * 2 : 64;
    h->marks = xrealloc(h->marks, h->cap_marks * sizeof *h->marks);
  }
  h->marks[h->nmarks++] = h->njournal;
  h->gen++;
}

void sc_hot_rollback(struct sc_hot *h)
{
  size_t from = h->nmarks ? h->marks[--h->nmarks] : 0;
  for (size_t i = from; i < h->njournal; i++)
    sc_hot_forget(h, h->journal[i]);
  h->njournal = from;
  h->gen++; /* entries of the rolled-back segment journal again when changed next */
}

void sc_hot_end(struct sc_hot *h, bool committed)
{
  if (!committed)
    for (size_t i = 0; i < h->njournal; i++)
      sc_hot_forget(h, h->journal[i]);
  h->njournal = h->nmarks = 0;
  h->gen++;
  free_grave(h);
  while (h->bytes > h->budget && h->tail)
    evict(h, h->tail);
  atomic_store_explicit(&sc_metrics.cache_bytes, h->bytes, memory_order_relaxed);
}
