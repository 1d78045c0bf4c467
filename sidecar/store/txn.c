/*
 * The transaction layer (txn.h). Every write becomes a change in an ordered list, with its values packed into
 * the transaction's arena, and is also applied to the cache entry of its instance where that part is known. A
 * read of a known part is served from the cache; a read of an unknown part loads the committed state from the
 * backend and replays the instance's pending changes on top (an entry lists them), so appending to a history or
 * an inbox never needs to read it first. A rollback drops the changes after the save point and forgets every
 * part those changes touched: the next read rebuilds it from the backend and what is still pending. Timers and
 * activities have no cache; the latest pending change of each is found through a map.
 */
#include "txn.h"

#include "cache.h"
#include "common/log.h"
#include "common/map.h"
#include "common/metrics.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct sc_txn {
  struct sc_store *st;
  struct sc_cache cache;
  struct sc_arena arena; /* the pending changes and their values */
  struct sc_change *ch;
  size_t nch, capch;
  size_t *marks; /* change counts at the open save points */
  size_t nmarks, capmarks;
  struct sc_cache_inst **touched; /* entries with pending changes */
  size_t ntouched, captouched;
  struct sc_map keyed; /* "t<due>:<seq>" / "a<seq>" -> 1 + index of the latest change of that timer or activity */
  uint64_t next_seq;
};

static void *xrealloc(void *p, size_t n)
{
  void *q = realloc(p, n);
  if (!q)
    sc_panic("out of memory in the transaction");
  return q;
}

struct sc_txn *sc_txn_new(struct sc_store *st, size_t cache_budget)
{
  struct sc_txn *t = calloc(1, sizeof *t);
  if (!t)
    sc_panic("out of memory");
  t->st = st;
  sc_cache_init(&t->cache, cache_budget);
  sc_arena_init(&t->arena);
  sc_map_init(&t->keyed);
  t->next_seq = st->ops->seq_start(st);
  return t;
}

struct sc_store *sc_txn_store(struct sc_txn *t)
{
  return t->st;
}

void sc_txn_set_cache_budget(struct sc_txn *t, size_t bytes)
{
  t->cache.budget = bytes;
}

/* Ends the transaction's pending state; |keep|: what the cache knows is now committed. */
static void finish(struct sc_txn *t, bool keep)
{
  for (size_t i = 0; i < t->ntouched; i++) {
    struct sc_cache_inst *e = t->touched[i];
    if (!keep)
      sc_cache_forget(&t->cache, e);
    e->npend = 0;
    e->finished = false;
  }
  t->ntouched = t->nch = t->nmarks = 0;
  sc_map_free(&t->keyed);
  sc_map_init(&t->keyed);
  sc_arena_reset(&t->arena);
  sc_cache_trim(&t->cache);
}

void sc_txn_free(struct sc_txn *t)
{
  if (!t)
    return;
  finish(t, false);
  sc_cache_free(&t->cache);
  sc_arena_free(&t->arena);
  sc_map_free(&t->keyed);
  free(t->ch);
  free(t->marks);
  free(t->touched);
  free(t);
}

void sc_txn_reset(struct sc_txn *t)
{
  finish(t, false);
}

size_t sc_txn_size(struct sc_txn *t)
{
  return t->nch;
}

uint64_t sc_txn_next_seq(struct sc_txn *t)
{
  return t->next_seq++;
}

void sc_txn_forget(struct sc_txn *t, const char *iid)
{
  struct sc_cache_inst *e = sc_cache_get(&t->cache, iid, false);
  if (e)
    sc_cache_forget(&t->cache, e);
}

int sc_txn_wipe(struct sc_txn *t, struct sc_err *err)
{
  finish(t, false);
  sc_cache_clear(&t->cache);
  return t->st->ops->wipe(t->st, t->next_seq, err);
}

/* ------------------------------------------------------------------ recording changes */

static void *pack(struct sc_txn *t, const ProtobufCMessage *m, size_t *len)
{
  *len = protobuf_c_message_get_packed_size(m);
  uint8_t *b = sc_arena_alloc(&t->arena, *len ? *len : 1);
  protobuf_c_message_pack(m, b);
  return b;
}

static void keyed_name(char *out, size_t cap, enum sc_change_kind kind, int64_t due, uint64_t seq)
{
  if (kind == SC_CH_TIMER_PUT || kind == SC_CH_TIMER_DELETE)
    snprintf(out, cap, "t%" PRId64 ":%" PRIu64, due, seq);
  else
    snprintf(out, cap, "a%" PRIu64, seq);
}

/* Appends a change (its strings and values already in the arena) and files it under its instance. */
/* Timers and activities: found through `keyed`, not cached. */
static bool is_keyed(enum sc_change_kind k)
{
  return k >= SC_CH_TIMER_PUT && k <= SC_CH_ACTQ_DELETE;
}

static struct sc_cache_inst *record(struct sc_txn *t, const struct sc_change *c)
{
  if (t->nch == t->capch) {
    t->capch = t->capch ? t->capch * 2 : 256;
    t->ch = xrealloc(t->ch, t->capch * sizeof *t->ch);
  }
  size_t index = t->nch++;
  t->ch[index] = *c;
  if (c->kind >= SC_CH_FORWARD)
    return NULL; /* rows between partitions: nothing to read back */
  if (is_keyed(c->kind)) {
    char k[64];
    keyed_name(k, sizeof k, c->kind, c->due_us, c->seq);
    sc_map_put(&t->keyed, k, (void *)(uintptr_t)(index + 1));
    return NULL;
  }
  struct sc_cache_inst *e = sc_cache_get(&t->cache, c->iid, true);
  if (e->npend == 0) {
    if (t->ntouched == t->captouched) {
      t->captouched = t->captouched ? t->captouched * 2 : 64;
      t->touched = xrealloc(t->touched, t->captouched * sizeof *t->touched);
    }
    t->touched[t->ntouched++] = e;
  }
  sc_cache_pend(&t->cache, e, index);
  return e;
}

static const char *copy_iid(struct sc_txn *t, const char *iid)
{
  return sc_arena_strdup(&t->arena, iid);
}

/* ------------------------------------------------------------------ rebuilding unknown parts */

/* The record after the pending changes: the last put or delete, or else the committed one. */
static int rebuild_rec(struct sc_txn *t, struct sc_cache_inst *e)
{
  for (size_t i = e->npend; i-- > 0;) {
    const struct sc_change *c = &t->ch[e->pend[i]];
    if (c->kind == SC_CH_PUT_INSTANCE) {
      sc_cache_set_rec(&t->cache, e, c->val, c->len);
      return SC_OK;
    }
    if (c->kind == SC_CH_DELETE_INSTANCE) {
      sc_cache_set_rec(&t->cache, e, NULL, 0);
      return SC_OK;
    }
  }
  struct sc_arena a;
  sc_arena_init(&a);
  struct sc_blob b;
  int rc = t->st->ops->get_instance(t->st, e->iid, &a, &b);
  if (rc == SC_OK)
    sc_cache_set_rec(&t->cache, e, b.b, b.len);
  else if (rc == SC_ENOTFOUND)
    sc_cache_set_rec(&t->cache, e, NULL, 0);
  sc_arena_free(&a);
  return rc == SC_ENOTFOUND ? SC_OK : rc;
}

/* The last pending change that replaced the whole history or inbox (clear, delete), or -1. */
static long last_reset(struct sc_txn *t, struct sc_cache_inst *e, enum sc_change_kind clear)
{
  for (size_t i = e->npend; i-- > 0;) {
    enum sc_change_kind k = t->ch[e->pend[i]].kind;
    if (k == clear || k == SC_CH_DELETE_INSTANCE)
      return (long)i;
  }
  return -1;
}

static int rebuild_hist(struct sc_txn *t, struct sc_cache_inst *e)
{
  struct sc_cache *h = &t->cache;
  long from = last_reset(t, e, SC_CH_HISTORY_CLEAR);
  sc_cache_set_hist_empty(h, e);
  if (from < 0) {
    struct sc_arena a;
    sc_arena_init(&a);
    struct sc_blob *evs;
    size_t n;
    int rc = t->st->ops->history_load(t->st, e->iid, &a, &evs, &n);
    for (size_t i = 0; rc == SC_OK && i < n; i++)
      if (!sc_cache_hist_put(h, e, (uint32_t)i, evs[i].b, evs[i].len))
        rc = SC_ECORRUPT;
    sc_arena_free(&a);
    if (rc != SC_OK) {
      sc_cache_forget_hist(h, e);
      return rc;
    }
  }
  for (size_t i = (size_t)(from + 1); i < e->npend; i++) {
    const struct sc_change *c = &t->ch[e->pend[i]];
    if (c->kind == SC_CH_HISTORY_APPEND && !sc_cache_hist_put(h, e, c->index, c->val, c->len)) {
      SC_ERROR("event=history_gap instance=%s index=%u", SC_Q(e->iid), c->index);
      return SC_ECORRUPT;
    }
  }
  return SC_OK;
}

static int rebuild_inbox(struct sc_txn *t, struct sc_cache_inst *e)
{
  struct sc_cache *h = &t->cache;
  long from = last_reset(t, e, SC_CH_INBOX_CLEAR);
  sc_cache_set_inbox_empty(h, e);
  if (from < 0) {
    struct sc_arena a;
    sc_arena_init(&a);
    struct sc_inbox_blob *m;
    size_t n;
    int rc = t->st->ops->inbox_load(t->st, e->iid, &a, &m, &n);
    for (size_t i = 0; rc == SC_OK && i < n; i++)
      sc_cache_inbox_put(h, e, m[i].band, m[i].seq, m[i].msg.b, m[i].msg.len);
    sc_arena_free(&a);
    if (rc != SC_OK) {
      sc_cache_forget_inbox(h, e);
      return rc;
    }
  }
  for (size_t i = (size_t)(from + 1); i < e->npend; i++) {
    const struct sc_change *c = &t->ch[e->pend[i]];
    if (c->kind == SC_CH_INBOX_PUT)
      sc_cache_inbox_put(h, e, c->band, c->seq, c->val, c->len);
    else if (c->kind == SC_CH_INBOX_DELETE)
      sc_cache_inbox_del(h, e, c->band, c->seq);
  }
  return SC_OK;
}

/* The entry with |part| known, loading and replaying when it is not; counts the cache hit or miss. */
enum part { PART_REC, PART_HIST, PART_INBOX };

static int known(struct sc_txn *t, const char *iid, enum part p, struct sc_cache_inst **out)
{
  struct sc_cache_inst *e = sc_cache_get(&t->cache, iid, true);
  bool k = p == PART_REC ? e->rec_known : p == PART_HIST ? e->hist_known : e->inbox_known;
  *out = e;
  if (k) {
    atomic_fetch_add_explicit(&sc_metrics.cache_hits, 1, memory_order_relaxed);
    return SC_OK;
  }
  atomic_fetch_add_explicit(&sc_metrics.cache_misses, 1, memory_order_relaxed);
  return p == PART_REC ? rebuild_rec(t, e) : p == PART_HIST ? rebuild_hist(t, e) : rebuild_inbox(t, e);
}

/* ------------------------------------------------------------------ save points, commit */

void sc_txn_savepoint(struct sc_txn *t)
{
  if (t->nmarks == t->capmarks) {
    t->capmarks = t->capmarks ? t->capmarks * 2 : 64;
    t->marks = xrealloc(t->marks, t->capmarks * sizeof *t->marks);
  }
  t->marks[t->nmarks++] = t->nch;
}

void sc_txn_rollback(struct sc_txn *t)
{
  size_t mark = t->nmarks ? t->marks[--t->nmarks] : 0;
  if (mark == t->nch)
    return; /* nothing was written since: what the cache loaded meanwhile is still true */
  bool keyed = false;
  for (size_t i = mark; i < t->nch; i++)
    keyed |= is_keyed(t->ch[i].kind);
  t->nch = mark;
  size_t kept = 0;
  for (size_t i = 0; i < t->ntouched; i++) {
    struct sc_cache_inst *e = t->touched[i];
    size_t n = e->npend;
    while (n > 0 && e->pend[n - 1] >= mark)
      n--;
    if (n != e->npend) {
      e->npend = n;
      sc_cache_forget(&t->cache, e); /* rebuilt from the backend and what is still pending when read */
      e->finished = false;
      for (size_t j = n; j-- > 0;) {
        const struct sc_change *c = &t->ch[e->pend[j]];
        if (c->kind == SC_CH_PUT_INSTANCE || c->kind == SC_CH_DELETE_INSTANCE) {
          e->finished = c->kind == SC_CH_PUT_INSTANCE && sc_status_is_terminal(c->rec->status);
          break;
        }
      }
    }
    if (n)
      t->touched[kept++] = e;
  }
  t->ntouched = kept;
  if (keyed) {
    sc_map_free(&t->keyed);
    sc_map_init(&t->keyed);
    for (size_t i = 0; i < t->nch; i++)
      if (is_keyed(t->ch[i].kind)) {
        char k[64];
        keyed_name(k, sizeof k, t->ch[i].kind, t->ch[i].due_us, t->ch[i].seq);
        sc_map_put(&t->keyed, k, (void *)(uintptr_t)(i + 1));
      }
  }
}

int sc_txn_commit(struct sc_txn *t, bool sync, struct sc_err *err)
{
  if (t->nch == 0) {
    finish(t, true);
    return SC_OK;
  }
  struct sc_changes cs = {t->ch, t->nch, t->next_seq};
  int rc = t->st->ops->apply(t->st, &cs, sync, err);
  if (rc == SC_OK) {
    /* A finished instance's history is not dispatched again (unless rewound): give the memory back. */
    for (size_t i = 0; i < t->ntouched; i++)
      if (t->touched[i]->finished)
        sc_cache_forget_hist(&t->cache, t->touched[i]);
  }
  finish(t, rc == SC_OK);
  return rc;
}

/* ------------------------------------------------------------------ reads */

int sc_txn_get_instance(struct sc_txn *t, const char *iid, struct sc_arena *a, StoredInstance **out)
{
  struct sc_cache_inst *e;
  int rc = known(t, iid, PART_REC, &e);
  if (rc != SC_OK)
    return rc;
  if (!e->rec)
    return SC_ENOTFOUND;
  struct sc_blob b = {e->rec, e->rec_len};
  return sc_store_unpack(&taskhubd__store__stored_instance__descriptor, &b, a, (void **)out);
}

int sc_txn_get_payload(struct sc_txn *t, const char *iid, int kind, struct sc_arena *a, char **data, size_t *len)
{
  struct sc_cache_inst *e = sc_cache_get(&t->cache, iid, false);
  for (size_t i = e ? e->npend : 0; i-- > 0;) {
    const struct sc_change *c = &t->ch[e->pend[i]];
    if (c->kind == SC_CH_DELETE_INSTANCE || (c->kind == SC_CH_PUT_PAYLOAD && c->band == kind && !c->val))
      return SC_ENOTFOUND;
    if (c->kind == SC_CH_PUT_PAYLOAD && c->band == kind) {
      *data = sc_arena_strndup(a, (const char *)c->val, c->len);
      *len = c->len;
      return SC_OK;
    }
  }
  return t->st->ops->get_payload(t->st, iid, kind, a, data, len);
}

int sc_txn_get_entity(struct sc_txn *t, const char *id, struct sc_arena *a, StoredEntity **out)
{
  struct sc_cache_inst *e = sc_cache_get(&t->cache, id, false);
  struct sc_blob b = {0};
  for (size_t i = e ? e->npend : 0; i-- > 0;) {
    const struct sc_change *c = &t->ch[e->pend[i]];
    if (c->kind == SC_CH_PUT_ENTITY) {
      if (!c->val)
        return SC_ENOTFOUND;
      b.b = sc_arena_alloc(a, c->len ? c->len : 1);
      memcpy(b.b, c->val, c->len);
      b.len = c->len;
      return sc_store_unpack(&taskhubd__store__stored_entity__descriptor, &b, a, (void **)out);
    }
  }
  int rc = t->st->ops->get_entity(t->st, id, a, &b);
  if (rc != SC_OK)
    return rc;
  return sc_store_unpack(&taskhubd__store__stored_entity__descriptor, &b, a, (void **)out);
}

int sc_txn_history_load(struct sc_txn *t, const char *iid, struct sc_arena *a, HistoryEvent ***out, size_t *n)
{
  struct sc_cache_inst *e;
  int rc = known(t, iid, PART_HIST, &e);
  if (rc != SC_OK)
    return rc;
  *out = sc_arena_alloc(a, (e->nev ? e->nev : 1) * sizeof **out);
  if (e->nev)
    memcpy(*out, e->ev, e->nev * sizeof **out);
  *n = e->nev;
  return SC_OK;
}

int sc_txn_inbox_load(struct sc_txn *t, const char *iid, struct sc_arena *a, struct sc_inbox_msg **out, size_t *n)
{
  struct sc_cache_inst *e;
  int rc = known(t, iid, PART_INBOX, &e);
  if (rc != SC_OK)
    return rc;
  struct sc_inbox_msg *msgs = sc_arena_alloc(a, (e->nmsg ? e->nmsg : 1) * sizeof *msgs);
  for (size_t i = 0; i < e->nmsg; i++) {
    msgs[i].band = e->msg[i].band;
    msgs[i].seq = e->msg[i].seq;
    struct sc_blob b = {e->msg[i].b, e->msg[i].len};
    if ((rc = sc_store_unpack(&taskhubd__store__stored_msg__descriptor, &b, a, (void **)&msgs[i].msg)) != SC_OK)
      return rc;
  }
  *out = msgs;
  *n = e->nmsg;
  return SC_OK;
}

int sc_txn_inbox_stats(struct sc_txn *t, const char *iid, size_t max_count, size_t *count, size_t *bytes)
{
  struct sc_cache_inst *e;
  int rc = known(t, iid, PART_INBOX, &e);
  *count = *bytes = 0;
  if (rc == SC_OK) { /* O(1): RaiseEvent asks on every call, so a flooded inbox must not cost a walk each time */
    *count = e->nmsg < max_count ? e->nmsg : max_count;
    *bytes = e->msg_len;
  }
  return rc;
}

/* The latest pending change of a timer or activity, or NULL. */
static const struct sc_change *keyed(struct sc_txn *t, enum sc_change_kind kind, int64_t due, uint64_t seq)
{
  char k[64];
  keyed_name(k, sizeof k, kind, due, seq);
  uintptr_t i = (uintptr_t)sc_map_get(&t->keyed, k);
  return i ? &t->ch[i - 1] : NULL;
}

int sc_txn_timer_get(struct sc_txn *t, int64_t due_us, uint64_t seq, struct sc_arena *a, StoredTimer **out)
{
  const struct sc_change *c = keyed(t, SC_CH_TIMER_PUT, due_us, seq);
  if (!c)
    return t->st->ops->timer_get(t->st, due_us, seq, a, out);
  if (c->kind == SC_CH_TIMER_DELETE)
    return SC_ENOTFOUND;
  struct sc_blob b = {(uint8_t *)c->val, c->len};
  return sc_store_unpack(&taskhubd__store__stored_timer__descriptor, &b, a, (void **)out);
}

int sc_txn_actq_get(struct sc_txn *t, uint64_t seq, struct sc_arena *a, StoredActivity **out)
{
  const struct sc_change *c = keyed(t, SC_CH_ACTQ_PUT, 0, seq);
  if (!c)
    return t->st->ops->actq_get(t->st, seq, a, out);
  if (c->kind == SC_CH_ACTQ_DELETE)
    return SC_ENOTFOUND;
  struct sc_blob b = {(uint8_t *)c->val, c->len};
  return sc_store_unpack(&taskhubd__store__stored_activity__descriptor, &b, a, (void **)out);
}

struct kids {
  char **v;
  size_t n, cap;
};

static int add_kid(const char *iid, void *ctx)
{
  struct kids *k = ctx;
  if (k->n == k->cap) {
    k->cap = k->cap ? k->cap * 2 : 16;
    k->v = xrealloc(k->v, k->cap * sizeof *k->v);
  }
  k->v[k->n] = strdup(iid);
  if (!k->v[k->n])
    sc_panic("out of memory");
  k->n++;
  return SC_OK;
}

/* Whether the transaction's view of |e|'s record names |parent|; *changed: the transaction wrote the record. */
static int child_of(struct sc_txn *t, struct sc_cache_inst *e, const char *parent, bool *changed, bool *is)
{
  *changed = false;
  for (size_t i = 0; i < e->npend && !*changed; i++) {
    enum sc_change_kind k = t->ch[e->pend[i]].kind;
    *changed = k == SC_CH_PUT_INSTANCE || k == SC_CH_DELETE_INSTANCE;
  }
  *is = false;
  if (!*changed)
    return SC_OK;
  struct sc_arena a;
  sc_arena_init(&a);
  StoredInstance *r;
  int rc = sc_txn_get_instance(t, e->iid, &a, &r);
  if (rc == SC_OK)
    *is = r->parent_instance_id && strcmp(r->parent_instance_id, parent) == 0;
  sc_arena_free(&a);
  return rc == SC_ENOTFOUND ? SC_OK : rc;
}

int sc_txn_children(struct sc_txn *t, const char *parent, sc_child_fn fn, void *ctx)
{
  /* The committed children, corrected by the records this transaction wrote; collected first, since |fn| may
   * write to the transaction. */
  struct kids k = {0};
  int rc = t->st->ops->children(t->st, parent, add_kid, &k);
  size_t committed = k.n;
  for (size_t i = 0; rc == SC_OK && i < t->ntouched; i++) {
    bool changed, is;
    rc = child_of(t, t->touched[i], parent, &changed, &is);
    if (rc != SC_OK || !changed)
      continue;
    size_t at = 0;
    while (at < committed && (!k.v[at] || strcmp(k.v[at], t->touched[i]->iid) != 0))
      at++;
    if (at < committed && !is) {
      free(k.v[at]); /* no longer its child */
      k.v[at] = NULL;
    } else if (at == committed && is) {
      add_kid(t->touched[i]->iid, &k);
    }
  }
  for (size_t i = 0; i < k.n; i++) {
    if (rc == SC_OK && k.v[i])
      rc = fn(k.v[i], ctx);
    free(k.v[i]);
  }
  free(k.v);
  return rc;
}

/* ------------------------------------------------------------------ writes */

int sc_txn_put_instance(struct sc_txn *t, const char *iid, const StoredInstance *rec, const StoredInstance *old)
{
  (void)old; /* the transaction knows the record it replaces better than the caller */
  struct sc_cache_inst *e;
  int rc = known(t, iid, PART_REC, &e);
  if (rc != SC_OK)
    return rc;
  struct sc_change c = {.kind = SC_CH_PUT_INSTANCE, .iid = copy_iid(t, iid)};
  if (e->rec) {
    struct sc_blob b = {e->rec, e->rec_len};
    if ((rc = sc_store_unpack(&taskhubd__store__stored_instance__descriptor, &b, &t->arena, (void **)&c.old)) !=
        SC_OK)
      return rc;
  }
  c.val = pack(t, &rec->base, &c.len);
  /* The backend reads the record's fields for its indexes: a copy of our own, as it is stored. */
  struct sc_blob b = {(uint8_t *)c.val, c.len};
  if ((rc = sc_store_unpack(&taskhubd__store__stored_instance__descriptor, &b, &t->arena, (void **)&c.rec)) != SC_OK)
    return rc;
  e = record(t, &c);
  sc_cache_set_rec(&t->cache, e, c.val, c.len);
  e->finished = sc_status_is_terminal(c.rec->status);
  return SC_OK;
}

/* The keys of a known inbox, for a backend that deletes them one by one rather than by range. */
static void inbox_keys(struct sc_txn *t, struct sc_cache_inst *e, struct sc_change *c)
{
  if (!e || !e->inbox_known)
    return;
  struct sc_inbox_key *k = sc_arena_alloc(&t->arena, (e->nmsg ? e->nmsg : 1) * sizeof *k);
  for (size_t i = 0; i < e->nmsg; i++)
    k[i] = (struct sc_inbox_key){e->msg[i].band, e->msg[i].seq};
  c->keys_known = true;
  c->keys = k;
  c->nkeys = e->nmsg;
}

int sc_txn_delete_instance(struct sc_txn *t, const char *iid, const StoredInstance *old, bool inbox_empty)
{
  (void)old;
  struct sc_cache_inst *e;
  int rc = known(t, iid, PART_REC, &e);
  if (rc != SC_OK)
    return rc;
  if (!e->rec)
    return SC_OK;
  struct sc_change c = {.kind = SC_CH_DELETE_INSTANCE, .iid = copy_iid(t, iid)};
  if (inbox_empty && !e->inbox_known) {
    /* The caller's word for it, unless this transaction gave it messages. */
    bool puts = false;
    for (size_t i = 0; i < e->npend && !puts; i++)
      puts = t->ch[e->pend[i]].kind == SC_CH_INBOX_PUT;
    c.keys_known = !puts;
  }
  inbox_keys(t, e, &c);
  struct sc_blob b = {e->rec, e->rec_len};
  if ((rc = sc_store_unpack(&taskhubd__store__stored_instance__descriptor, &b, &t->arena, (void **)&c.old)) != SC_OK)
    return rc;
  e = record(t, &c);
  e->finished = false;
  struct sc_cache *h = &t->cache;
  sc_cache_set_rec(h, e, NULL, 0);
  sc_cache_set_hist_empty(h, e);
  sc_cache_set_inbox_empty(h, e);
  return SC_OK;
}

int sc_txn_put_payload(struct sc_txn *t, const char *iid, int kind, const char *data, size_t len)
{
  struct sc_change c = {.kind = SC_CH_PUT_PAYLOAD, .iid = copy_iid(t, iid), .band = kind};
  if (data) {
    uint8_t *v = sc_arena_alloc(&t->arena, len + 1);
    memcpy(v, data, len);
    v[len] = 0;
    c.val = v;
    c.len = len;
  }
  record(t, &c);
  return SC_OK;
}

int sc_txn_put_entity(struct sc_txn *t, const char *id, const StoredEntity *rec)
{
  struct sc_change c = {.kind = SC_CH_PUT_ENTITY, .iid = copy_iid(t, id)};
  if (rec) {
    c.val = pack(t, &rec->base, &c.len);
    struct sc_blob b = {(uint8_t *)c.val, c.len};
    if (sc_store_unpack(&taskhubd__store__stored_entity__descriptor, &b, &t->arena, (void **)&c.ent) != SC_OK)
      sc_panic("packing an entity record");
  }
  record(t, &c);
  return SC_OK;
}

int sc_txn_history_append(struct sc_txn *t, const char *iid, uint32_t index, const HistoryEvent *ev)
{
  struct sc_change c = {.kind = SC_CH_HISTORY_APPEND, .iid = copy_iid(t, iid), .index = index};
  c.val = pack(t, &ev->base, &c.len);
  struct sc_cache_inst *e = record(t, &c);
  if (e->hist_known && !sc_cache_hist_put(&t->cache, e, index, c.val, c.len))
    SC_WARN("event=history_append_out_of_order instance=%s index=%u", SC_Q(iid), index);
  return SC_OK;
}

int sc_txn_history_clear(struct sc_txn *t, const char *iid)
{
  struct sc_cache_inst *e = sc_cache_get(&t->cache, iid, true);
  /* With the history known its keys are known too: the backend can delete them one by one. */
  struct sc_change c = {.kind = SC_CH_HISTORY_CLEAR, .iid = copy_iid(t, iid), .seq = sc_txn_next_seq(t),
                        .index = e->hist_known ? (uint32_t)e->nev : UINT32_MAX};
  e = record(t, &c);
  sc_cache_set_hist_empty(&t->cache, e);
  return SC_OK;
}

int sc_txn_inbox_append(struct sc_txn *t, const char *iid, int band, uint64_t seq, const StoredMsg *m)
{
  struct sc_change c = {.kind = SC_CH_INBOX_PUT, .iid = copy_iid(t, iid), .band = band, .seq = seq};
  c.val = pack(t, &m->base, &c.len);
  struct sc_cache_inst *e = record(t, &c);
  if (e->inbox_known)
    sc_cache_inbox_put(&t->cache, e, band, seq, c.val, c.len);
  return SC_OK;
}

int sc_txn_inbox_delete(struct sc_txn *t, const char *iid, int band, uint64_t seq)
{
  struct sc_change c = {.kind = SC_CH_INBOX_DELETE, .iid = copy_iid(t, iid), .band = band, .seq = seq};
  struct sc_cache_inst *e = record(t, &c);
  if (e->inbox_known)
    sc_cache_inbox_del(&t->cache, e, band, seq);
  return SC_OK;
}

int sc_txn_inbox_clear(struct sc_txn *t, const char *iid)
{
  struct sc_change c = {.kind = SC_CH_INBOX_CLEAR, .iid = copy_iid(t, iid)};
  inbox_keys(t, sc_cache_get(&t->cache, iid, false), &c);
  struct sc_cache_inst *e = record(t, &c);
  sc_cache_set_inbox_empty(&t->cache, e);
  return SC_OK;
}

int sc_txn_timer_put(struct sc_txn *t, int64_t due_us, uint64_t seq, const StoredTimer *tm)
{
  struct sc_change c = {.kind = SC_CH_TIMER_PUT, .iid = copy_iid(t, tm->instance_id), .due_us = due_us, .seq = seq};
  c.val = pack(t, &tm->base, &c.len);
  record(t, &c);
  return SC_OK;
}

int sc_txn_timer_delete(struct sc_txn *t, const char *iid, int64_t due_us, uint64_t seq)
{
  struct sc_change c = {.kind = SC_CH_TIMER_DELETE, .iid = copy_iid(t, iid), .due_us = due_us, .seq = seq};
  record(t, &c);
  return SC_OK;
}

int sc_txn_actq_put(struct sc_txn *t, uint64_t seq, const StoredActivity *act)
{
  const char *iid = act->request && act->request->orchestrationinstance
                        ? act->request->orchestrationinstance->instanceid
                        : "";
  struct sc_change c = {.kind = SC_CH_ACTQ_PUT, .iid = copy_iid(t, iid), .seq = seq};
  c.val = pack(t, &act->base, &c.len);
  record(t, &c);
  return SC_OK;
}

int sc_txn_actq_delete(struct sc_txn *t, const char *iid, uint64_t seq)
{
  struct sc_change c = {.kind = SC_CH_ACTQ_DELETE, .iid = copy_iid(t, iid), .seq = seq};
  record(t, &c);
  return SC_OK;
}

void sc_txn_forward(struct sc_txn *t, int part, uint64_t id, const ProtobufCMessage *fwd)
{
  struct sc_change c = {.kind = SC_CH_FORWARD, .band = part, .seq = id};
  c.val = pack(t, fwd, &c.len);
  record(t, &c);
}

void sc_txn_forward_done(struct sc_txn *t, int part, uint64_t id)
{
  struct sc_change c = {.kind = SC_CH_FORWARD_DONE, .band = part, .seq = id};
  record(t, &c);
}

void sc_txn_reply(struct sc_txn *t, const char *replica, uint64_t id, const ProtobufCMessage *reply)
{
  struct sc_change c = {.kind = SC_CH_REPLY, .iid = copy_iid(t, replica), .seq = id};
  c.val = pack(t, reply, &c.len);
  record(t, &c);
}

void sc_txn_forget_all(struct sc_txn *t)
{
  sc_cache_clear(&t->cache);
}

void sc_txn_renew_seq(struct sc_txn *t)
{
  uint64_t s = t->st->ops->seq_start(t->st);
  if (s > t->next_seq)
    t->next_seq = s;
}
