/* Parked WaitForInstanceStart/Completion calls, answered when the instance's status changes or their deadline
 * passes. */
#include "internal.h"

#include "common/log.h"
#include "common/metrics.h"
#include "common/pbutil.h"
#include "common/util.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* A parked WaitForInstance* call. It stays in the deadline heap until its deadline pops or the heap is compacted,
 * even when it was answered earlier (cmd == NULL then), so that no heap entry ever points at freed memory. */
struct sc_waiter {
  struct sc_cmd *cmd;
  struct sc_waiter *next;
  char *iid;
};

static bool wait_satisfied(bool completion, int status)
{
  return completion ? sc_status_is_terminal(status) : status != ST_PENDING;
}

static void waiter_unlink(struct sc_engine *e, struct sc_waiter *w)
{
  struct sc_waiter *head = sc_map_get(&e->waiters, w->iid);
  struct sc_waiter **pp = &head;
  while (*pp && *pp != w)
    pp = &(*pp)->next;
  if (*pp)
    *pp = w->next;
  if (head)
    sc_map_put(&e->waiters, w->iid, head);
  else
    sc_map_remove(&e->waiters, w->iid);
  free(w->iid);
  w->iid = NULL;
  w->next = NULL;
}

static void waiter_finish(struct sc_engine *e, struct sc_waiter *w, int code,
                          const char *msg)
{
  struct sc_cmd *c = w->cmd;
  if (!c)
    return;
  c->u.wait.w = NULL;
  w->cmd = NULL;
  c->err.code = code;
  size_t n = msg ? strlen(msg) : 0;
  if (n >= sizeof c->err.msg)
    n = sizeof c->err.msg - 1; /* long instance ids make long messages: keep the start */
  memcpy(c->err.msg, msg ? msg : "", n);
  c->err.msg[n] = 0;
  waiter_unlink(e, w);
  add_done(e, c);
  e->waiters_answered++;
  atomic_fetch_sub(&e->parked, 1);
}

static int still_waiting(const struct sc_heap_item *it, void *ctx)
{
  struct sc_waiter *w = it->data;
  (void)ctx;
  if (w->cmd)
    return 1;
  free(w);
  return 0;
}

/* Answered waiters leave the deadline heap lazily; once they are most of it, it is rebuilt without them, so
 * many short waits do not hold memory until the longest deadline. */
void waiters_compact(struct sc_engine *e)
{
  if (e->waiters_answered < 1024 || e->waiters_answered * 2 < e->wheap.n)
    return;
  sc_heap_filter(&e->wheap, still_waiting, NULL);
  e->waiters_answered = 0;
}

void wake_changed(struct sc_engine *e)
{
  for (size_t i = 0; i < e->nchg; i++) {
    struct changed *ch = &e->chg[i];
    struct sc_waiter *w = sc_map_get(&e->waiters, ch->iid);
    while (w) {
      struct sc_waiter *next = w->next;
      if (!ch->exists) {
        w->cmd->u.wait.exists = false;
        waiter_finish(e, w, SC_OK, NULL);
      } else if (wait_satisfied(w->cmd->u.wait.completion, ch->status)) {
        w->cmd->u.wait.exists = true;
        waiter_finish(e, w, SC_OK, NULL);
      }
      w = next;
    }
  }
  e->nchg = 0;
}

static int read_status(struct sc_engine *e, const char *iid, StoredInstance **rec);

/* Why a PENDING instance of this replica's partitions has not started, when the engine can tell (nobody connected
 * here can run it, or it is scheduled for later): written to |out| ("" otherwise). A user who started "chain" with
 * no worker for it learns that, not just that a wait timed out. Workers connected to other replicas are not known
 * here, so other partitions get no reason. */
static void explain_pending(struct sc_engine *e, const char *iid, const StoredInstance *rec, char *out, size_t cap)
{
  out[0] = 0;
  if (!owns(e, iid) || rec->status != ST_PENDING)
    return;
  if (rec->scheduled_start_us > sc_now_us()) {
    snprintf(out, cap, "it is PENDING, scheduled to start later");
    return;
  }
  const char *version = rec->has_version ? rec->version : "";
  if (stream_fits_any(e, LEASE_ORCH, rec->name, version))
    return;
  snprintf(out, cap, "it is PENDING and no connected worker accepts orchestration '%s'%s%s%s (%zu %s connected)",
           rec->name, version[0] ? " version '" : "", version, version[0] ? "'" : "", e->nstreams,
           e->nstreams == 1 ? "worker" : "workers");
}

/* A wait that ran out says why, when the engine can tell. */
static void explain_timeout(struct sc_engine *e, const char *iid, char *msg, size_t cap)
{
  StoredInstance *rec = NULL;
  char why[512];
  if (read_status(e, iid, &rec) != SC_OK || !rec)
    return;
  explain_pending(e, iid, rec, why, sizeof why);
  size_t n = strlen(msg);
  if (why[0] && n + 3 < cap)
    snprintf(msg + n, cap - n, ": %.*s", (int)(cap - n - 3), why);
}

void expire_waiters(struct sc_engine *e, int64_t now)
{
  const struct sc_heap_item *top;
  while ((top = sc_heap_top(&e->wheap)) && top->due <= now) {
    struct sc_waiter *w = sc_heap_pop(&e->wheap).data;
    if (w->cmd) {
      char msg[sizeof ((struct sc_err *)0)->msg];
      snprintf(msg, sizeof msg, "timed out waiting for instance %s", w->iid);
      explain_timeout(e, w->iid, msg, sizeof msg);
      waiter_finish(e, w, SC_ETIMEOUT, msg);
    }
    e->waiters_answered--; /* answered now or before: it leaves the heap */
    free(w);
  }
}

/* An instance of another replica's partition is read as committed (it is not this engine's to cache), and its
 * changes come as SC_CMD_CHANGED. */
static int read_status(struct sc_engine *e, const char *iid, StoredInstance **rec)
{
  if (owns(e, iid))
    return sc_txn_get_instance(e->tx, iid, &e->ba, rec);
  return sc_store_get_instance(e->st, iid, &e->ba, rec);
}

static void recheck(struct sc_engine *e, const char *iid)
{
  if (!sc_map_get(&e->waiters, iid) || owns(e, iid))
    return; /* owned ones are answered by the batches that change them */
  StoredInstance *rec;
  int rc = read_status(e, iid, &rec);
  if (rc == SC_OK)
    add_changed(e, iid, rec->status, true);
  else if (rc == SC_ENOTFOUND)
    add_changed(e, iid, 0, false);
}

int apply_changed(struct sc_engine *e, struct sc_cmd *c)
{
  char *iids = (char *)c->u.store_event.body;
  if (!iids) {
    for (struct sc_map_entry *it = sc_map_first(&e->waiters); it; it = sc_map_next(&e->waiters, it))
      recheck(e, sc_map_key(it));
    return DONE;
  }
  for (char *save = NULL, *iid = strtok_r(iids, "\n", &save); iid; iid = strtok_r(NULL, "\n", &save))
    recheck(e, iid);
  return DONE;
}

int apply_wait(struct sc_engine *e, struct sc_cmd *c)
{
  /* Counted before the read: a change committed elsewhere after it is then sure to be passed on (partitions.c). */
  atomic_fetch_add(&e->parked, 1);
  StoredInstance *rec;
  int rc = read_status(e, c->u.wait.iid, &rec);
  if (rc != SC_OK || wait_satisfied(c->u.wait.completion, rec->status))
    atomic_fetch_sub(&e->parked, 1);
  if (rc == SC_ENOTFOUND) {
    c->u.wait.exists = false;
    return DONE;
  }
  if (rc != SC_OK)
    return fail(c, rc, "reading instance %s failed", c->u.wait.iid);
  c->u.wait.exists = true;
  if (wait_satisfied(c->u.wait.completion, rec->status))
    return DONE;
  struct sc_waiter *w = calloc(1, sizeof *w);
  if (!w || !(w->iid = strdup(c->u.wait.iid)))
    sc_panic("out of memory parking a waiter");
  w->cmd = c;
  w->next = sc_map_get(&e->waiters, w->iid);
  sc_map_put(&e->waiters, w->iid, w);
  c->u.wait.w = w;
  int64_t now = sc_now_us();
  int64_t due = now + e->cfg.wait_cap_us;
  /* A little before the client's deadline (a twentieth of the wait, at most 250 ms), so that our answer, which
   * may say why (explain_timeout), reaches it before its own timer turns the call into a bare DEADLINE_EXCEEDED,
   * on a busy node too. */
  int64_t dl = c->u.wait.deadline_us;
  if (dl) {
    int64_t margin = (dl - now) / 20 < 250000 ? (dl - now) / 20 : 250000;
    if (dl - (margin > 0 ? margin : 0) < due)
      due = dl - (margin > 0 ? margin : 0);
  }
  sc_heap_push(&e->wheap, (struct sc_heap_item){due, e->wseq++, w});
  return PARKED;
}

int apply_explain(struct sc_engine *e, struct sc_cmd *c)
{
  StoredInstance *rec;
  int rc = read_status(e, c->u.explain.iid, &rec);
  c->u.explain.why[0] = 0;
  c->u.explain.exists = rc == SC_OK;
  if (rc == SC_ENOTFOUND)
    return DONE;
  if (rc != SC_OK)
    return fail(c, rc, "reading instance %s failed", c->u.explain.iid);
  explain_pending(e, c->u.explain.iid, rec, c->u.explain.why, sizeof c->u.explain.why);
  return DONE;
}

int apply_cancel(struct sc_engine *e, struct sc_cmd *c)
{
  struct sc_cmd *t = c->u.cancel.target;
  if (t->u.wait.w)
    waiter_finish(e, t->u.wait.w, SC_ECANCELLED, "the client cancelled the call");
  return DONE;
}

void drop_all_waiters(struct sc_engine *e, int code, const char *msg)
{
  struct sc_map_entry *it;
  while ((it = sc_map_first(&e->waiters))) {
    struct sc_waiter *w = sc_map_value(it);
    waiter_finish(e, w, code, msg);
  }
}

void waiters_wipe(struct sc_engine *e)
{
  struct sc_map_entry *it;
  while ((it = sc_map_first(&e->waiters))) {
    struct sc_waiter *w = sc_map_value(it);
    w->cmd->u.wait.exists = false;
    waiter_finish(e, w, SC_OK, NULL);
  }
}

void waiters_free(struct sc_engine *e)
{
  /* Waiters answered early stay in the deadline heap until they pop; free them now. */
  while (sc_heap_top(&e->wheap)) {
    struct sc_waiter *w = sc_heap_pop(&e->wheap).data;
    free(w->iid);
    free(w);
  }
  sc_heap_free(&e->wheap);
  sc_map_free(&e->waiters);
}
