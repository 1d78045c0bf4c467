/*
 * What one batch collects as it applies commands: the callers to answer after the commit, the instances whose
 * status changed (for waiters), the instances and activities to look at for dispatch, and the in-memory delays.
 * Plus the small containers the engine shares. Everything here runs on the engine thread.
 */
#include "internal.h"

#include "common/log.h"
#include "common/metrics.h"
#include "common/pbutil.h"
#include "common/util.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <stdarg.h>

void *grow_array(void *v, size_t *cap, size_t n, size_t elem)
{
  if (n < *cap)
    return v;
  size_t nc = *cap ? *cap * 2 : 64;
  void *p = realloc(v, nc * elem);
  if (!p)
    sc_panic("out of memory growing an array to %zu elements", nc);
  *cap = nc;
  return p;
}

void add_done(struct sc_engine *e, struct sc_cmd *c)
{
  e->done = grow_array(e->done, &e->capdone, e->ndone, sizeof *e->done);
  e->done[e->ndone++] = c;
}

void add_changed(struct sc_engine *e, const char *iid, int status, bool exists)
{
  e->chg = grow_array(e->chg, &e->capchg, e->nchg, sizeof *e->chg);
  e->chg[e->nchg++] = (struct changed){sc_arena_strdup(&e->ba, iid), status, exists};
  e->touched = grow_array(e->touched, &e->captouched, e->ntouched, sizeof *e->touched);
  e->touched[e->ntouched++] = (struct sc_engine_change){e->chg[e->nchg - 1].iid, status, exists};
}

void add_touched(struct sc_engine *e, const char *iid, int status)
{
  e->touched = grow_array(e->touched, &e->captouched, e->ntouched, sizeof *e->touched);
  e->touched[e->ntouched++] = (struct sc_engine_change){sc_arena_strdup(&e->ba, iid), status, true};
}

int fail(struct sc_cmd *c, int code, const char *fmt, ...)
{
  va_list ap;
  va_start(ap, fmt);
  c->err.code = code;
  vsnprintf(c->err.msg, sizeof c->err.msg, fmt, ap);
  va_end(ap);
  return DONE;
}

StoredInstance *copy_rec(struct sc_arena *a, const StoredInstance *r)
{
  StoredInstance *n = sc_arena_alloc(a, sizeof *n);
  *n = *r;
  return n;
}

void fifo_push(struct fifo *f, void *v)
{
  if (f->n == f->cap) {
    size_t cap = f->cap ? f->cap * 2 : 64;
    void **nv = malloc(cap * sizeof *nv);
    if (!nv)
      sc_panic("out of memory growing a queue");
    for (size_t i = 0; i < f->n; i++)
      nv[i] = f->v[(f->head + i) % f->cap];
    free(f->v);
    f->v = nv;
    f->head = 0;
    f->cap = cap;
  }
  f->v[(f->head + f->n) % f->cap] = v;
  f->n++;
}

void *fifo_pop(struct fifo *f)
{
  if (!f->n)
    return NULL;
  void *v = f->v[f->head];
  f->head = (f->head + 1) % f->cap;
  f->n--;
  return v;
}

void fifo_free(struct fifo *f)
{
  free(f->v);
  memset(f, 0, sizeof *f);
}

char *xstrdup(const char *s)
{
  char *p = strdup(s);
  if (!p)
    sc_panic("out of memory");
  return p;
}

void mark_dirty(struct sc_engine *e, const char *iid)
{
  e->dirty = grow_array(e->dirty, &e->capdirty, e->ndirty, sizeof *e->dirty);
  e->dirty[e->ndirty++] = sc_arena_strdup(&e->ba, iid);
}

void new_activity(struct sc_engine *e, uint64_t seq)
{
  e->new_acts = grow_array(e->new_acts, &e->capnew_acts, e->nnew_acts, sizeof *e->new_acts);
  e->new_acts[e->nnew_acts++] = seq;
}

void delay(struct sc_engine *e, int64_t due, enum delayed_kind kind,
                  const char *key, uint64_t seq)
{
  size_t kl = key ? strlen(key) : 0;
  struct delayed *d = malloc(sizeof *d + kl + 1);
  if (!d)
    sc_panic("out of memory");
  d->kind = kind;
  d->seq = seq;
  memcpy(d->key, key ? key : "", kl + 1);
  sc_heap_push(&e->delayed, (struct sc_heap_item){due, e->dseq++, d});
}

HistoryEvent *ev_new(struct sc_engine *e, int32_t id)
{
  return sc_pb_event(&e->ba, id, sc_now_us());
}

TaskFailureDetails *make_failure(struct sc_arena *a, const char *type, const char *msg)
{
  TaskFailureDetails *f = sc_arena_alloc(a, sizeof *f);
  task_failure_details__init(f);
  f->errortype = (char *)type;
  f->errormessage = sc_arena_strdup(a, msg);
  return f;
}

int enqueue_msg(struct sc_engine *e, const char *iid, int band, HistoryEvent *ev, const char *exec)
{
  struct sc_txn *tx = e->tx;
  StoredMsg m;
  taskhubd__store__stored_msg__init(&m);
  m.event = ev;
  if (exec)
    m.target_execution_id = (char *)exec;
  int rc = sc_txn_inbox_append(tx, iid, band, sc_txn_next_seq(tx), &m);
  if (rc == SC_OK)
    mark_dirty(e, iid);
  return rc;
}
