/*
 * The partitions this replica's engine owns (see store.h). The store tells the engine, from its own threads,
 * which partitions it has taken and which it should let go; those and the messages between replicas arrive as
 * commands, so they take effect between two other commands:
 *  - taken (SC_CMD_GAIN): its timers, queued activities and instances with messages are loaded, and the
 *    transaction counts sequence numbers on from above its previous owner's;
 *  - let go (SC_CMD_RELEASE): from that command on, its instances are forwarded rather than touched; once the
 *    batch has committed (the store still fences it until then), its work items in flight are dropped (the new
 *    owner hands them out again), what the engine queued or cached of it is dropped, and the store gives it up.
 * Timers and waiting work of a partition let go are dropped lazily, where they are used (engine.c, dispatch.c).
 */
#include "internal.h"

#include "common/log.h"
#include "common/util.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define APPLIED_IN_RING 4096

/* Loads what a partition (or, with -1, the whole store) has waiting: timers, then work. */
static int recover_timer(const struct sc_timer_row *row, void *ctx)
{
  struct sc_engine *e = ctx;
  sc_heap_push(&e->theap, (struct sc_heap_item){row->due_us, row->seq, NULL});
  return SC_OK;
}

static int load(struct sc_engine *e, int part)
{
  int64_t t0 = sc_mono_us();
  size_t timers = e->theap.n, ready = e->ready.n, acts = e->actq.n;
  int rc = e->st->ops->timer_scan(e->st, part, recover_timer, e);
  if (rc == SC_OK)
    rc = work_recover(e, part);
  if (rc == SC_OK)
    SC_INFO("event=recovered partition=%d timers=%zu ready=%zu activities=%zu ms=%.1f", part, e->theap.n - timers,
            e->ready.n - ready, e->actq.n - acts, (double)(sc_mono_us() - t0) / 1000.0);
  return rc;
}

void parts_init(struct sc_engine *e)
{
  e->nparts = e->st->ops->partitions(e->st);
  if (e->nparts < 1)
    e->nparts = 1;
  e->owned = calloc((size_t)e->nparts, sizeof *e->owned);
  e->to_release = calloc((size_t)e->nparts, sizeof *e->to_release);
  e->applied_in_ring = calloc(APPLIED_IN_RING, sizeof *e->applied_in_ring);
  if (!e->owned || !e->to_release || !e->applied_in_ring)
    sc_panic("out of memory");
  sc_map_init(&e->pending);
  sc_map_init(&e->applied_in);
}

int parts_load_single(struct sc_engine *e)
{
  if (e->nparts != 1)
    return SC_OK;
  int rc = load(e, -1);
  if (rc == SC_OK)
    e->owned[0] = true;
  return rc;
}

void parts_attach(struct sc_engine *e)
{
  /* A store of one partition is never shared (RocksDB; PostgreSQL task hubs have 32): it is loaded already. */
  if (e->nparts > 1)
    e->st->ops->attach(e->st, &e->events);
}

void parts_detach(struct sc_engine *e)
{
  if (e->nparts > 1)
    e->st->ops->detach(e->st);
}

int parts_reload(struct sc_engine *e)
{
  if (e->nparts == 1)
    return load(e, -1);
  for (int p = 0; p < e->nparts; p++) {
    int rc = e->owned[p] ? load(e, p) : SC_OK;
    if (rc != SC_OK)
      return rc;
  }
  return SC_OK;
}

int apply_gain(struct sc_engine *e, struct sc_cmd *c)
{
  int part = c->u.store_event.part;
  if (part < 0 || part >= e->nparts || e->owned[part])
    return DONE;
  sc_txn_renew_seq(e->tx);
  int rc = load(e, part);
  if (rc != SC_OK)
    sc_panic("loading partition %d failed (status %d)", part, rc);
  e->owned[part] = true;
  return DONE;
}

int apply_release(struct sc_engine *e, struct sc_cmd *c)
{
  int part = c->u.store_event.part;
  if (part < 0 || part >= e->nparts)
    return DONE;
  if (!e->owned[part]) {
    e->st->ops->release(e->st, part);
    return DONE;
  }
  e->owned[part] = false;
  e->to_release[e->nto_release++] = part;
  return DONE;
}

static void drop_ready(struct sc_engine *e)
{
  for (size_t n = e->ready.n; n > 0; n--) {
    char *iid = fifo_pop(&e->ready);
    if (owns(e, iid)) {
      fifo_push(&e->ready, iid);
    } else {
      sc_map_remove(&e->queued, iid);
      free(iid);
    }
  }
}

static void drop_activities(struct sc_engine *e)
{
  for (size_t n = e->actq.n; n > 0; n--) {
    void *v = fifo_pop(&e->actq);
    StoredActivity *a;
    if (sc_txn_actq_get(e->tx, P2SEQ(v), &e->ba, &a) == SC_OK && a->request && a->request->orchestrationinstance &&
        owns(e, a->request->orchestrationinstance->instanceid))
      fifo_push(&e->actq, v);
  }
}

static void drop_leases(struct sc_engine *e)
{
  size_t n = 0, cap = e->leases.count;
  struct sc_lease **v = calloc(cap ? cap : 1, sizeof *v);
  if (!v)
    sc_panic("out of memory");
  for (struct sc_map_entry *it = sc_map_first(&e->leases); it; it = sc_map_next(&e->leases, it)) {
    struct sc_lease *l = sc_map_value(it);
    if (!owns(e, l->iid) && n < cap)
      v[n++] = l;
  }
  for (size_t i = 0; i < n; i++)
    lease_release(e, v[i]);
  free(v);
  if (n)
    SC_INFO("event=work_items_dropped count=%zu reason=partition_released", n);
}

void parts_release_marked(struct sc_engine *e)
{
  if (!e->nto_release)
    return;
  drop_leases(e);
  drop_ready(e);
  drop_activities(e);
  sc_txn_forget_all(e->tx);
  for (size_t i = 0; i < e->nto_release; i++)
    e->st->ops->release(e->st, e->to_release[i]);
  e->nto_release = 0;
}

bool incoming_seen(struct sc_engine *e, uint64_t id)
{
  char key[24];
  snprintf(key, sizeof key, "%" PRIu64, id);
  if (sc_map_get(&e->applied_in, key))
    return true;
  char **slot = &e->applied_in_ring[e->applied_in_pos];
  if (*slot) {
    sc_map_remove(&e->applied_in, *slot);
    free(*slot);
  }
  *slot = xstrdup(key);
  sc_map_put(&e->applied_in, key, (void *)1);
  e->applied_in_pos = (e->applied_in_pos + 1) % APPLIED_IN_RING;
  e->applied_in_new++;
  return false;
}

void incoming_committed(struct sc_engine *e)
{
  e->applied_in_new = 0;
}

void incoming_not_written(struct sc_engine *e)
{
  /* The newest entries of the ring, newest first (what they pushed out of it stays out). */
  size_t n = e->applied_in_new < APPLIED_IN_RING ? e->applied_in_new : APPLIED_IN_RING;
  for (size_t i = 0; i < n; i++) {
    e->applied_in_pos = (e->applied_in_pos + APPLIED_IN_RING - 1) % APPLIED_IN_RING;
    char **slot = &e->applied_in_ring[e->applied_in_pos];
    if (*slot) {
      sc_map_remove(&e->applied_in, *slot);
      free(*slot);
      *slot = NULL;
    }
  }
  e->applied_in_new = 0;
}

void parts_free(struct sc_engine *e)
{
  for (size_t i = 0; i < APPLIED_IN_RING && e->applied_in_ring; i++)
    free(e->applied_in_ring[i]);
  free(e->applied_in_ring);
  sc_map_free(&e->applied_in);
  free(e->owned);
  free(e->to_release);
}
