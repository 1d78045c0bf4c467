#include "internal.h"

#include "common/log.h"
#include "common/metrics.h"
#include "common/pbutil.h"
#include "common/util.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <errno.h>
#include <time.h>

/* Batches of at most this many commands dispatch before their commit (see run_batch). */
#define EARLY_DISPATCH_MAX 4
#define TIMERS_PER_BATCH 2000
#define TRIM_EVERY_US 5000000
/* A due timer whose firing failed (a store read) is tried again after this long. */
#define TIMER_RETRY_US 1000000
/* After a failed commit no work goes out for this long. */
#define DISPATCH_HOLD_US 1000000

/* A due timer could not be read or delivered (the store failed): what its firing wrote so far is rolled back,
 * it goes back on the heap, and no timer fires for a second, rather than the process ending. */
static void timer_retry(struct sc_engine *e, struct sc_heap_item it, int rc, int64_t now, const char *what)
{
  sc_txn_rollback(e->tx);
  sc_heap_push(&e->theap, it);
  e->timers_held_until_us = now + TIMER_RETRY_US;
  SC_WARN("event=timer_failed step=%s status=%s retry_ms=%d", what, sc_status_name(rc), TIMER_RETRY_US / 1000);
}

static void fire_timers(struct sc_engine *e, int64_t now)
{
  struct sc_txn *tx = e->tx;
  const struct sc_heap_item *top;
  if (e->timers_held_until_us > now)
    return;
  e->timers_held_until_us = 0;
  /* After downtime many timers are due at once: a few thousand per batch, so commits stay small and other
   * commands go on; the next batch starts at once while more are due. */
  int budget = TIMERS_PER_BATCH;
  while (budget-- > 0 && (top = sc_heap_top(&e->theap)) && top->due <= now) {
    struct sc_heap_item it = sc_heap_pop(&e->theap);
    StoredTimer *t;
    sc_txn_savepoint(tx);
    int rc = sc_txn_timer_get(tx, it.due, it.seq, &e->ba, &t);
    if (rc == SC_ENOTFOUND)
      continue;
    if (rc != SC_OK) {
      timer_retry(e, it, rc, now, "read");
      return;
    }
    if (!owns(e, t->instance_id))
      continue; /* its partition went to another replica, which loaded it */
    sc_txn_timer_delete(tx, t->instance_id, it.due, it.seq);
    if (sc_is_entity_id(t->instance_id)) { /* a scheduled signal: entities have no executions to outlive */
      if (t->msg && t->msg->event && (rc = entity_deliver(e, t->instance_id, t->msg->event)) != SC_OK) {
        timer_retry(e, it, rc, now, "signal");
        return;
      }
      continue;
    }
    StoredInstance *rec;
    rc = sc_txn_get_instance(tx, t->instance_id, &e->ba, &rec);
    if (rc != SC_OK && rc != SC_ENOTFOUND) {
      timer_retry(e, it, rc, now, "instance");
      return;
    }
    bool live = rc == SC_OK && !sc_status_is_terminal(rec->status) &&
                (!t->execution_id[0] || strcmp(t->execution_id, rec->execution_id) == 0);
    if (!live) {
      SC_DEBUG("event=timer_dropped instance=%s", SC_Q(t->instance_id));
      continue;
    }
    if (t->kind == TASKHUBD__STORE__STORED_TIMER__KIND__ORCH_MSG && t->msg) {
      if (t->msg->event)
        t->msg->event->timestamp = sc_pb_ts(&e->ba, now); /* TimerFired is stamped when it fires */
      rc = sc_txn_inbox_append(tx, t->instance_id, (int)t->band, sc_txn_next_seq(tx), t->msg);
      if (rc != SC_OK) {
        timer_retry(e, it, rc, now, "deliver");
        return;
      }
    }
    /* A due scheduled start has nothing to deliver: its ExecutionStarted already waits in the inbox. */
    mark_dirty(e, t->instance_id);
    SC_DEBUG("event=timer_fired instance=%s kind=%d", SC_Q(t->instance_id), t->kind);
  }
}

static int apply(struct sc_engine *e, struct sc_cmd *c)
{
  switch (c->kind) {
  case SC_CMD_START:
  case SC_CMD_RAISE:
  case SC_CMD_TERMINATE:
  case SC_CMD_SUSPEND:
  case SC_CMD_RESUME:
  case SC_CMD_PURGE:
  case SC_CMD_REWIND:
  case SC_CMD_RESTART:
  case SC_CMD_SIGNAL_ENTITY: {
    /* About one instance: applied here when its partition is this replica's, else by its owner. */
    const char *iid = client_target(c);
    if (iid && !owns(e, iid))
      return forward_client(e, c, iid);
    return apply_client(e, c);
  }
  case SC_CMD_WAIT:
    return apply_wait(e, c);
  case SC_CMD_WAIT_CANCEL:
    return apply_cancel(e, c);
  case SC_CMD_EXPLAIN:
    return apply_explain(e, c);
  case SC_CMD_STREAM_OPEN:
    return apply_stream_open(e, c);
  case SC_CMD_STREAM_CLOSE:
    return apply_stream_close(e, c);
  case SC_CMD_COMPLETE_ORCH:
    return apply_complete_orch(e, c);
  case SC_CMD_COMPLETE_ACT:
    return apply_complete_act(e, c);
  case SC_CMD_ABANDON:
    return apply_abandon(e, c);
  case SC_CMD_RENEW:
    return apply_renew(e, c);
  case SC_CMD_COMPLETE_ENTITY:
    return apply_complete_entity(e, c);
  case SC_CMD_CLEAN_ENTITIES:
    return apply_clean_entities(e, c);
  case SC_CMD_GAIN:
    return apply_gain(e, c);
  case SC_CMD_RELEASE:
    return apply_release(e, c);
  case SC_CMD_INCOMING:
    return apply_incoming(e, c);
  case SC_CMD_REPLY:
    return apply_reply(e, c);
  case SC_CMD_CHANGED:
    return apply_changed(e, c);
  case SC_CMD_WIPE:
    break; /* handled by run_batch */
  }
  return fail(c, SC_EINVAL, "unknown command %d", (int)c->kind);
}

void commit(struct sc_engine *e)
{
  struct sc_err err = {0};
  size_t n = sc_txn_size(e->tx);
  if (n == 0)
    return;
  int64_t t0 = sc_mono_us();
  int rc = sc_txn_commit(e->tx, e->cfg.sync, &err);
  sc_hist_observe(&sc_metrics.commit_latency, sc_latency_bounds, SC_LATENCY_BUCKETS,
                  (double)(sc_mono_us() - t0) / 1e6);
  if (rc == SC_ELOCKLOST) {
    /* Another replica owns the partitions now (this one stalled past its lease): nothing of this batch was
     * written or acknowledged, and nothing more may be. Leave at once; restarted, it waits as a standby. */
    SC_ERROR("event=fenced_exit error=%s", SC_Q(err.msg));
    _exit(3);
  }
  if (rc != SC_OK) {
    commit_failed(e, &err);
    return;
  }
  e->ndone_committed = e->ndone;
  e->nchg_committed = e->nchg;
  e->ntouched_committed = e->ntouched;
  forwards_committed(e);
  incoming_committed(e);
  pthread_mutex_lock(&e->mu);
  e->stats.commits++;
  pthread_mutex_unlock(&e->mu);
}

/* The batch's changes were not written (the disk is full, an I/O error): nothing of them was acknowledged.
 * The commands that changed something, or read what the batch changed, are answered with the store's error;
 * what the engine holds in memory about work (queues, leases handed out, timers) may describe those changes,
 * so it is rebuilt from the committed state, as after a restart. The store resumes writes by itself.
 * Between replicas: commands forwarded in the batch never reached their owner, so they are answered here too;
 * commands other replicas forwarded here and the batch applied are still waiting in their table, and are
 * applied again when the store hands them over again. */
void commit_failed(struct sc_engine *e, const struct sc_err *err)
{
  int code = err->code == SC_ENOSPACE ? SC_ENOSPACE : SC_EUNAVAIL;
  size_t failed = 0;
  for (size_t i = e->ndone_committed; i < e->ndone; i++) {
    struct sc_cmd *c = e->done[i];
    if (c->err.code == SC_OK && (c->wrote || c->kind == SC_CMD_WAIT || c->kind == SC_CMD_EXPLAIN)) {
      fail(c, code, "not applied, nothing of it was written: %s", err->msg);
      failed++;
    }
  }
  size_t forwarded = e->ndone;
  forwards_not_written(e, code, err->msg);
  failed += e->ndone - forwarded;
  incoming_not_written(e);
  e->ndone_committed = e->ndone;
  while (e->conts) { /* purges by filter: what earlier batches purged stays purged */
    struct sc_cmd *c = e->conts;
    e->conts = c->next;
    fail(c, code, "purge stopped (what it purged before stays purged): %s", err->msg);
    add_done(e, c);
    e->ndone_committed = e->ndone;
    failed++;
  }
  SC_ERROR("event=commit_failed commands_failed=%zu error=%s", failed, SC_Q(err->msg));
  atomic_fetch_add_explicit(&sc_metrics.commit_failures, 1, memory_order_relaxed);
  e->nchg = e->nchg_committed; /* what this commit would have changed did not change: no waiter is woken for it */
  e->ntouched = e->ntouched_committed;
  e->ndirty = 0;
  e->nnew_acts = 0;
  sc_txn_forget_all(e->tx);
  sc_heap_free(&e->theap);
  work_wipe(e);
  applied_forget_all(e);
  /* Work handed out now would most likely fail to complete too: give the store a moment. */
  e->dispatch_held_until_us =
      sc_now_us() + (e->cfg.failed_commit_hold_us > 0 ? e->cfg.failed_commit_hold_us : DISPATCH_HOLD_US);
  int rc = parts_reload(e);
  if (rc != SC_OK)
    sc_panic("reloading the committed state after a failed commit failed (status %d)", rc);
}

static void run_wipe(struct sc_engine *e, struct sc_cmd *c)
{
  if (!e->cfg.allow_wipe) {
    fail(c, SC_ESTATE,
         "deleting the task hub's data is disabled; start taskhubd with --allow-delete-taskhub to allow it");
    return;
  }
  for (int p = 0; p < e->nparts; p++)
    if (!e->owned[p]) {
      fail(c, SC_ESTATE, "deleting the task hub's data needs one replica owning all of it; this one owns only "
                         "some of its partitions: stop the other replicas first");
      return;
    }
  commit(e); /* what came before the wipe in this batch */
  struct sc_err err = {0};
  if (sc_txn_wipe(e->tx, &err) != SC_OK) {
    fail(c, err.code == SC_ENOSPACE ? SC_ENOSPACE : SC_EUNAVAIL, "deleting the task hub's data failed: %s; "
         "nothing was deleted", err.msg);
    return;
  }
  sc_heap_free(&e->theap);
  work_wipe(e);
  waiters_wipe(e);
  SC_WARN("event=taskhub_wiped recreate=%d", c->u.wipe.recreate);
}

/* What becomes of an applied command: answered after the commit, parked, or (a purge by filter) continued in the
 * next batch. The last batch before a stop has no next batch: it answers the purge as incomplete. */
static void settle(struct sc_engine *e, struct sc_cmd *c, int r, bool stopping)
{
  if (c->err.code != SC_OK)
    sc_txn_rollback(e->tx); /* a failed command leaves nothing behind */
  if (r == CONTINUED && c->err.code == SC_OK && !stopping) {
    c->next = e->conts;
    e->conts = c;
    return;
  }
  if (r == CONTINUED)
    c->u.purge.complete = false;
  if (r != PARKED)
    add_done(e, c);
}

/* After the commit: live views learn what this batch changed (sc_engine_observe). */
static void tell_observer(struct sc_engine *e)
{
  if (!e->ntouched)
    return;
  pthread_mutex_lock(&e->mu);
  sc_engine_observer_fn fn = e->observer;
  void *ctx = e->observer_ctx;
  pthread_mutex_unlock(&e->mu);
  if (fn)
    fn(ctx, e->touched, e->ntouched);
  e->ntouched = 0;
}

void sc_engine_observe(struct sc_engine *e, sc_engine_observer_fn fn, void *ctx)
{
  pthread_mutex_lock(&e->mu);
  e->observer = fn;
  e->observer_ctx = ctx;
  pthread_mutex_unlock(&e->mu);
}

static void run_batch(struct sc_engine *e, struct sc_cmd *cmds, bool stopping)
{
  struct sc_txn *tx = e->tx;
  sc_txn_reset(tx);
  e->ndone_committed = e->nchg_committed = e->ntouched_committed = 0;
  size_t n = 0;
  struct sc_cmd *conts = e->conts;
  e->conts = NULL;
  /* Continuations first: they were accepted earlier. */
  while (conts) {
    struct sc_cmd *c = conts;
    conts = c->next;
    sc_txn_savepoint(tx);
    c->wrote = true;
    settle(e, c, purge_filter_chunk(e, c), stopping);
  }
  while (cmds) {
    struct sc_cmd *c = cmds;
    cmds = c->next;
    c->next = NULL;
    n++;
    if (c->kind == SC_CMD_WIPE) {
      c->wrote = true;
      run_wipe(e, c);
      add_done(e, c);
      continue;
    }
    sc_txn_savepoint(tx);
    size_t before = sc_txn_size(tx);
    settle(e, c, apply(e, c), stopping);
    c->wrote = sc_txn_size(tx) > before;
  }
  int64_t now = sc_now_us();
  fire_timers(e, now);
  work_timers(e, now);
  /* A small batch means a quiet engine where latency counts: hand out work while the commit syncs. Under load
   * dispatching after the commit lets more completions gather into the next batch, which is cheaper. */
  if (e->dispatch_held_until_us && now >= e->dispatch_held_until_us)
    e->dispatch_held_until_us = 0;
  bool held = e->dispatch_held_until_us != 0;
  bool early = n <= EARLY_DISPATCH_MAX && !held;
  if (early)
    work_dispatch(e);
  commit(e);
  if (!early && !held) {
    work_dispatch(e);
    commit(e); /* clean-ups dispatch found, if any */
  }
  parts_release_marked(e); /* everything written to them is committed */
  /* Counted before any reply goes out, so a caller that saw its reply sees its command counted. */
  if (n)
    sc_hist_observe(&sc_metrics.commit_batch, sc_batch_bounds, SC_BATCH_BUCKETS, (double)n);
  pthread_mutex_lock(&e->mu);
  e->stats.commands += n;
  if (n > e->stats.batched_max)
    e->stats.batched_max = n;
  pthread_mutex_unlock(&e->mu);
  wake_changed(e);
  tell_observer(e);
  expire_waiters(e, now);
  waiters_compact(e);
  if (stopping) {
    drop_all_waiters(e, SC_EUNAVAIL, "taskhubd is shutting down");
    forwards_fail_all(e, SC_EUNAVAIL, "taskhubd is shutting down before the instance's replica answered");
  }
  /* Replies go out only now: everything they report is durable. */
  for (size_t i = 0; i < e->ndone; i++)
    e->done[i]->done(e->done[i]);
  e->ndone = e->ndone_committed = 0;
  /* Gauges as of now, after this batch's work went out. */
  size_t in_orch, in_act;
  work_inflight(e, &in_orch, &in_act);
  pthread_mutex_lock(&e->mu);
  e->stats.ready_orchestrations = e->ready.n;
  e->stats.queued_activities = e->actq.n;
  e->stats.waiting_items = work_waiting(e);
  e->stats.timers = e->theap.n;
  e->stats.waiters = e->waiters.count;
  e->stats.inflight_orchestrations = in_orch;
  e->stats.inflight_activities = in_act;
  e->stats.draining = e->draining;
  if (e->draining && in_orch + in_act == 0)
    pthread_cond_broadcast(&e->drained);
  pthread_mutex_unlock(&e->mu);
  sc_arena_reset(&e->ba);
}

static int64_t next_wakeup(struct sc_engine *e)
{
  int64_t t = INT64_MAX;
  const struct sc_heap_item *a = sc_heap_top(&e->theap), *b = sc_heap_top(&e->wheap);
  if (a)
    t = a->due > e->timers_held_until_us ? a->due : e->timers_held_until_us;
  if (b && b->due < t)
    t = b->due;
  if (e->dispatch_held_until_us && e->dispatch_held_until_us < t)
    t = e->dispatch_held_until_us;
  int64_t w = work_next_wakeup(e);
  return w < t ? w : t;
}

static void *engine_main(void *arg)
{
  struct sc_engine *e = arg;
  for (;;) {
    pthread_mutex_lock(&e->mu);
    for (;;) {
      if (e->qh || e->stopping || e->conts || e->kick)
        break;
      /* Idle after work: hand back what payloads flowing through left free in glibc's heaps (300 MB of
       * 100 KB inputs left 360 MB resident without this, 60 MB with it), at most every few seconds. */
      if (e->worked_since_trim && sc_mono_us() - e->last_trim_us > TRIM_EVERY_US) {
        e->worked_since_trim = false;
        pthread_mutex_unlock(&e->mu);
        sc_trim_heap();
        e->last_trim_us = sc_mono_us();
        pthread_mutex_lock(&e->mu);
        continue;
      }
      int64_t wake = next_wakeup(e);
      int64_t delta = wake == INT64_MAX ? INT64_MAX : wake - sc_now_us();
      if (delta <= 0)
        break;
      if (e->worked_since_trim) {
        int64_t until_trim = e->last_trim_us + TRIM_EVERY_US - sc_mono_us();
        if (until_trim < delta)
          delta = until_trim > 0 ? until_trim : 1;
      }
      if (delta == INT64_MAX) {
        pthread_cond_wait(&e->cv, &e->mu);
        continue;
      }
      struct timespec ts;
      clock_gettime(CLOCK_MONOTONIC, &ts);
      int64_t ns = ts.tv_nsec + (delta % 1000000) * 1000;
      ts.tv_sec += delta / 1000000 + ns / 1000000000;
      ts.tv_nsec = ns % 1000000000;
      pthread_cond_timedwait(&e->cv, &e->mu, &ts);
    }
    struct sc_cmd *head = e->qh, *tail = NULL;
    int taken = 0;
    for (struct sc_cmd *c = e->qh; c && taken < e->cfg.max_batch; c = c->next) {
      tail = c;
      taken++;
      e->qbytes -= c->bytes;
    }
    e->nq -= (size_t)taken;
    if (tail) {
      e->qh = tail->next;
      if (!e->qh)
        e->qt = NULL;
      tail->next = NULL;
    } else {
      head = NULL;
    }
    bool stopping = e->stopping && !e->qh;
    if (e->kick)
      e->slots_gen++; /* a stream may take work again: serve what waits */
    e->kick = false;
    e->drain_now = e->draining;
    pthread_mutex_unlock(&e->mu);
    run_batch(e, head, stopping);
    e->worked_since_trim = true;
    if (stopping)
      break;
  }
  return NULL;
}

/* ------------------------------------------------------------------ what the store tells the engine */

/* The store's threads report partitions and messages between replicas (store.h, sc_store_events); each becomes a
 * command, applied between two others (partitions.c, incoming.c, forward.c, waiters.c). */
static void free_event(struct sc_cmd *c)
{
  free(c->u.store_event.body);
  free(c);
}

/* The body is copied with a NUL after it, so a list of ids can be read as a string. */
static void post_event(struct sc_engine *e, enum sc_cmd_kind kind, int part, uint64_t id, const void *body,
                       size_t len)
{
  struct sc_cmd *c = calloc(1, sizeof *c);
  if (!c)
    sc_panic("out of memory");
  c->kind = kind;
  c->done = free_event;
  c->u.store_event.part = part;
  c->u.store_event.id = id;
  if (body) {
    c->u.store_event.body = malloc(len + 1);
    if (!c->u.store_event.body)
      sc_panic("out of memory");
    memcpy(c->u.store_event.body, body, len);
    c->u.store_event.body[len] = 0;
    c->u.store_event.len = len;
  }
  sc_engine_post(e, c);
}

static void on_gained(void *ctx, int part)
{
  post_event(ctx, SC_CMD_GAIN, part, 0, NULL, 0);
}

static void on_release(void *ctx, int part)
{
  post_event(ctx, SC_CMD_RELEASE, part, 0, NULL, 0);
}

static void on_incoming(void *ctx, int part, uint64_t id, const uint8_t *body, size_t len)
{
  post_event(ctx, SC_CMD_INCOMING, part, id, body, len);
}

static void on_reply(void *ctx, uint64_t id, const uint8_t *body, size_t len)
{
  post_event(ctx, SC_CMD_REPLY, -1, id, body, len);
}

static void on_changed(void *ctx, const char *iids)
{
  struct sc_engine *e = ctx;
  if (atomic_load(&e->parked) == 0)
    return; /* nobody here waits: every other replica's status changes would wake the engine for nothing */
  post_event(e, SC_CMD_CHANGED, -1, 0, iids, iids ? strlen(iids) : 0);
}

int sc_engine_start(struct sc_store *st, const struct sc_engine_config *cfg,
                    struct sc_engine **out, struct sc_err *err)
{
  struct sc_engine *e = calloc(1, sizeof *e);
  if (!e)
    sc_panic("out of memory starting the engine");
  e->st = st;
  e->cfg = *cfg;
  e->tx = sc_txn_new(st, cfg->cache_budget);
  if (e->cfg.max_batch < 1)
    e->cfg.max_batch = 1;
  sc_arena_init(&e->ba);
  sc_map_init(&e->waiters);
  sc_heap_init(&e->wheap);
  sc_heap_init(&e->theap);
  work_init(e);
  parts_init(e);
  e->events = (struct sc_store_events){e, on_gained, on_release, on_incoming, on_reply, on_changed};
  int rc = parts_load_single(e);
  if (rc != SC_OK) {
    sc_err_set(err, rc, "recovering timers and queued work from the store failed");
    work_free(e);
    parts_free(e);
    sc_heap_free(&e->theap);
    sc_txn_free(e->tx);
    free(e);
    return rc;
  }
  pthread_mutex_init(&e->mu, NULL);
  pthread_condattr_t ca;
  pthread_condattr_init(&ca);
  pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
  pthread_cond_init(&e->cv, &ca);
  pthread_cond_init(&e->drained, &ca);
  pthread_condattr_destroy(&ca);
  if (pthread_create(&e->th, NULL, engine_main, e) != 0)
    sc_panic("cannot start the engine thread");
  /* Partitions come as commands from now on: each is loaded before anything after it uses it. */
  parts_attach(e);
  *out = e;
  return SC_OK;
}

/* Commands a client sends to add work; everything else finishes work or comes from taskhubd itself. */
static bool adds_work(enum sc_cmd_kind k)
{
  switch (k) {
  case SC_CMD_START: case SC_CMD_RAISE: case SC_CMD_TERMINATE: case SC_CMD_SUSPEND: case SC_CMD_RESUME:
  case SC_CMD_PURGE: case SC_CMD_WAIT: case SC_CMD_WIPE: case SC_CMD_STREAM_OPEN: case SC_CMD_REWIND:
  case SC_CMD_RESTART: case SC_CMD_SIGNAL_ENTITY: case SC_CMD_CLEAN_ENTITIES: case SC_CMD_EXPLAIN:
    return true;
  default:
    return false;
  }
}

void sc_engine_post(struct sc_engine *e, struct sc_cmd *cmd)
{
  cmd->next = NULL;
  cmd->err.code = SC_OK;
  cmd->err.msg[0] = 0;
  pthread_mutex_lock(&e->mu);
  if (e->stopped) {
    pthread_mutex_unlock(&e->mu);
    sc_err_set(&cmd->err, SC_EUNAVAIL, "taskhubd is shutting down");
    cmd->done(cmd);
    return;
  }
  if (adds_work(cmd->kind)) {
    size_t nq = e->nq, qbytes = e->qbytes;
    bool full_n = e->cfg.max_queued && nq >= e->cfg.max_queued;
    bool full_b = e->cfg.max_queued_bytes && qbytes + cmd->bytes > e->cfg.max_queued_bytes;
    if (full_n || full_b) {
      e->stats.refused++;
      pthread_mutex_unlock(&e->mu);
      if (full_n)
        sc_err_set(&cmd->err, SC_ETOOBIG, "taskhubd is overloaded: %zu requests already wait to be applied, the "
                   "limit (--max-queued-commands); retry later", nq);
      else
        sc_err_set(&cmd->err, SC_ETOOBIG, "taskhubd is overloaded: %zu bytes of requests already wait to be "
                   "applied; %zu more would pass the %zu-byte limit (--max-queued-bytes); retry later", qbytes,
                   cmd->bytes, e->cfg.max_queued_bytes);
      cmd->done(cmd);
      return;
    }
  }
  e->nq++;
  e->qbytes += cmd->bytes;
  if (e->qt)
    e->qt->next = cmd;
  else
    e->qh = cmd;
  e->qt = cmd;
  pthread_cond_signal(&e->cv);
  pthread_mutex_unlock(&e->mu);
}

void sc_engine_kick(struct sc_engine *e)
{
  pthread_mutex_lock(&e->mu);
  e->kick = true;
  pthread_cond_signal(&e->cv);
  pthread_mutex_unlock(&e->mu);
}

void sc_engine_stop(struct sc_engine *e)
{
  if (!e)
    return;
  pthread_mutex_lock(&e->mu);
  e->stopping = true;
  pthread_cond_signal(&e->cv);
  pthread_mutex_unlock(&e->mu);
  pthread_join(e->th, NULL);
  parts_detach(e); /* its threads post to this engine, which may be freed next */
  pthread_mutex_lock(&e->mu);
  e->stopped = true;
  struct sc_cmd *late = e->qh;
  e->qh = e->qt = NULL;
  pthread_mutex_unlock(&e->mu);
  while (late) { /* posted between the last batch and `stopped` */
    struct sc_cmd *n = late->next;
    sc_err_set(&late->err, SC_EUNAVAIL, "taskhubd is shutting down");
    late->done(late);
    late = n;
  }
}

void sc_engine_free(struct sc_engine *e)
{
  if (!e)
    return;
  waiters_free(e);
  sc_heap_free(&e->theap);
  work_free(e);
  parts_free(e);
  forward_free(e);
  sc_arena_free(&e->ba);
  sc_txn_free(e->tx);
  free(e->done);
  free(e->chg);
  free(e->touched);
  pthread_mutex_destroy(&e->mu);
  pthread_cond_destroy(&e->cv);
  pthread_cond_destroy(&e->drained);
  free(e);
}

void sc_engine_get_stats(struct sc_engine *e, struct sc_engine_stats *out)
{
  pthread_mutex_lock(&e->mu);
  *out = e->stats;
  out->queued = e->nq;
  pthread_mutex_unlock(&e->mu);
}

void sc_engine_drain(struct sc_engine *e)
{
  pthread_mutex_lock(&e->mu);
  e->draining = true;
  e->kick = true;
  pthread_cond_signal(&e->cv); /* a batch refreshes the in-flight counts */
  pthread_mutex_unlock(&e->mu);
}

size_t sc_engine_wait_drained(struct sc_engine *e, int64_t deadline_us)
{
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  int64_t left = deadline_us - sc_now_us();
  if (left < 0)
    left = 0;
  int64_t ns = ts.tv_nsec + (left % 1000000) * 1000;
  ts.tv_sec += left / 1000000 + ns / 1000000000;
  ts.tv_nsec = ns % 1000000000;
  pthread_mutex_lock(&e->mu);
  /* The engine thread refreshes the counts after every batch and signals when they reach zero. */
  e->kick = true;
  pthread_cond_signal(&e->cv);
  while (e->stats.inflight_orchestrations + e->stats.inflight_activities > 0 || !e->stats.draining)
    if (pthread_cond_timedwait(&e->drained, &e->mu, &ts) != 0)
      break;
  size_t left_items = e->stats.inflight_orchestrations + e->stats.inflight_activities;
  pthread_mutex_unlock(&e->mu);
  return left_items;
}
