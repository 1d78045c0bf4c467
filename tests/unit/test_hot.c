/*
 * The hot-instance cache must show exactly what the write transaction shows. These tests read every part of
 * an instance through the cache (txn reads) and through RocksDB itself (a committed read, or a reopened
 * store) after writes, rollbacks, discarded batches and clears.
 */
#include "common/pbutil.h"
#include "helpers.h"
#include "store/hot.h"
#include "test.h"

#include <string.h>

static StoredInstance *rec(struct sc_arena *a, int status, int64_t updated)
{
  StoredInstance *r = sc_arena_alloc(a, sizeof *r);
  taskhubd__store__stored_instance__init(r);
  r->name = (char *)"orch";
  r->status = status;
  r->created_us = 1;
  r->last_updated_us = updated;
  r->execution_id = (char *)"e1";
  return r;
}

static HistoryEvent *ev(struct sc_arena *a, int32_t id)
{
  return sc_pb_event(a, id, 1000 + id);
}

static StoredMsg *msg(struct sc_arena *a, int32_t id)
{
  StoredMsg *m = sc_arena_alloc(a, sizeof *m);
  taskhubd__store__stored_msg__init(m);
  m->event = ev(a, id);
  return m;
}

static void commit(struct sc_store *st)
{
  struct sc_err err;
  ASSERT_OK(st->ops->txn_commit(st, true, &err));
}

/* The history's event ids as "0,1,2", read through the transaction (cache) or committed state. */
static const char *hist_ids(struct sc_store *st, bool txn, const char *iid, struct sc_arena *a)
{
  HistoryEvent **h;
  size_t n;
  ASSERT_OK(st->ops->history_load(st, txn, iid, a, &h, &n));
  char *out = sc_arena_alloc(a, 16 * n + 1);
  out[0] = 0;
  for (size_t i = 0; i < n; i++)
    sprintf(out + strlen(out), "%s%d", i ? "," : "", h[i]->eventid);
  return out;
}

/* The inbox as "band:seq:id,…". */
static const char *inbox_ids(struct sc_store *st, bool txn, const char *iid, struct sc_arena *a)
{
  struct sc_inbox_msg *m;
  size_t n;
  ASSERT_OK(st->ops->inbox_load(st, txn, iid, a, &m, &n));
  char *out = sc_arena_alloc(a, 48 * n + 1);
  out[0] = 0;
  for (size_t i = 0; i < n; i++)
    sprintf(out + strlen(out), "%s%d:%llu:%d", i ? "," : "", m[i].band, (unsigned long long)m[i].seq,
            m[i].msg->event->eventid);
  return out;
}

static int64_t updated(struct sc_store *st, bool txn, const char *iid, struct sc_arena *a)
{
  StoredInstance *r;
  int rc = st->ops->get_instance(st, txn, iid, a, &r);
  return rc == SC_ENOTFOUND ? -1 : r->last_updated_us;
}

TEST_IMPL(hot_cache_follows_writes_and_commits)
{
  char *dir = th_tempdir();
  struct sc_store *st = th_open_store(dir);
  struct sc_arena a;
  sc_arena_init(&a);
  ASSERT_OK(st->ops->put_instance(st, "i", rec(&a, 0, 10), NULL));
  ASSERT_OK(st->ops->history_append(st, "i", 0, ev(&a, 0)));
  ASSERT_OK(st->ops->inbox_append(st, "i", SC_BAND_NORMAL, 7, msg(&a, 70)));
  commit(st);
  /* The first transaction reads fill the cache; later writes keep it exact. */
  ASSERT_STR_EQ(hist_ids(st, true, "i", &a), "0");
  ASSERT_STR_EQ(inbox_ids(st, true, "i", &a), "1:7:70");
  ASSERT_OK(st->ops->history_append(st, "i", 1, ev(&a, 1)));
  ASSERT_OK(st->ops->inbox_append(st, "i", SC_BAND_START, 9, msg(&a, 90))); /* band 0 sorts first */
  ASSERT_OK(st->ops->inbox_append(st, "i", SC_BAND_NORMAL, 8, msg(&a, 80)));
  ASSERT_OK(st->ops->inbox_delete(st, "i", SC_BAND_NORMAL, 7));
  ASSERT_OK(st->ops->put_instance(st, "i", rec(&a, 0, 20), rec(&a, 0, 10)));
  ASSERT_STR_EQ(hist_ids(st, true, "i", &a), "0,1");
  ASSERT_STR_EQ(inbox_ids(st, true, "i", &a), "0:9:90,1:8:80");
  ASSERT_EQ(updated(st, true, "i", &a), 20);
  ASSERT_EQ(updated(st, false, "i", &a), 10); /* not committed yet */
  commit(st);
  ASSERT_STR_EQ(hist_ids(st, false, "i", &a), "0,1");
  ASSERT_STR_EQ(inbox_ids(st, false, "i", &a), "0:9:90,1:8:80");
  ASSERT_EQ(updated(st, false, "i", &a), 20);
  /* Clears through the cache delete the right keys. */
  ASSERT_OK(st->ops->inbox_clear(st, "i"));
  ASSERT_OK(st->ops->history_clear(st, "i"));
  ASSERT_OK(st->ops->history_append(st, "i", 0, ev(&a, 5)));
  ASSERT_STR_EQ(hist_ids(st, true, "i", &a), "5");
  ASSERT_STR_EQ(inbox_ids(st, true, "i", &a), "");
  commit(st);
  sc_store_close(st);
  st = th_open_store(dir);
  ASSERT_STR_EQ(hist_ids(st, false, "i", &a), "5");
  ASSERT_STR_EQ(inbox_ids(st, false, "i", &a), "");
  sc_store_close(st);
  sc_arena_free(&a);
  th_rmdir(dir);
  return 0;
}

TEST_IMPL(hot_cache_forgets_rolled_back_and_discarded_writes)
{
  char *dir = th_tempdir();
  struct sc_store *st = th_open_store(dir);
  struct sc_arena a;
  sc_arena_init(&a);
  ASSERT_OK(st->ops->put_instance(st, "i", rec(&a, 0, 10), NULL));
  ASSERT_OK(st->ops->history_append(st, "i", 0, ev(&a, 0)));
  ASSERT_OK(st->ops->inbox_append(st, "i", SC_BAND_NORMAL, 1, msg(&a, 10)));
  commit(st);
  ASSERT_STR_EQ(hist_ids(st, true, "i", &a), "0");
  ASSERT_STR_EQ(inbox_ids(st, true, "i", &a), "1:1:10");

  /* A command that fails is rolled back to its save point: the cache must not keep what it wrote. */
  st->ops->txn_savepoint(st);
  ASSERT_OK(st->ops->put_instance(st, "i", rec(&a, 0, 99), rec(&a, 0, 10)));
  ASSERT_OK(st->ops->history_append(st, "i", 1, ev(&a, 1)));
  ASSERT_OK(st->ops->inbox_delete(st, "i", SC_BAND_NORMAL, 1));
  ASSERT_OK(st->ops->put_instance(st, "new", rec(&a, 0, 5), NULL));
  ASSERT_EQ(updated(st, true, "i", &a), 99);
  st->ops->txn_rollback(st);
  ASSERT_EQ(updated(st, true, "i", &a), 10);
  ASSERT_EQ(updated(st, true, "new", &a), -1);
  ASSERT_STR_EQ(hist_ids(st, true, "i", &a), "0");
  ASSERT_STR_EQ(inbox_ids(st, true, "i", &a), "1:1:10");

  /* An earlier command's writes survive a later command's rollback. */
  st->ops->txn_savepoint(st);
  ASSERT_OK(st->ops->history_append(st, "i", 1, ev(&a, 1)));
  st->ops->txn_savepoint(st);
  ASSERT_OK(st->ops->history_append(st, "i", 2, ev(&a, 2)));
  st->ops->txn_rollback(st);
  ASSERT_STR_EQ(hist_ids(st, true, "i", &a), "0,1");
  commit(st);
  ASSERT_STR_EQ(hist_ids(st, false, "i", &a), "0,1");

  /* A batch reset without a commit discards its writes, and the cache with them. */
  ASSERT_STR_EQ(hist_ids(st, true, "i", &a), "0,1");
  ASSERT_OK(st->ops->history_append(st, "i", 2, ev(&a, 2)));
  ASSERT_OK(st->ops->put_instance(st, "i", rec(&a, 0, 77), rec(&a, 0, 10)));
  st->ops->txn_reset(st);
  ASSERT_STR_EQ(hist_ids(st, true, "i", &a), "0,1");
  ASSERT_EQ(updated(st, true, "i", &a), 10);

  /* An append at an index the cache did not expect leaves the history to the store. */
  ASSERT_OK(st->ops->history_append(st, "i", 5, ev(&a, 5)));
  ASSERT_STR_EQ(hist_ids(st, true, "i", &a), "0,1,5");
  commit(st);
  ASSERT_STR_EQ(hist_ids(st, false, "i", &a), "0,1,5");

  /* Deleting the instance: every part reads as gone. */
  StoredInstance *old;
  ASSERT_OK(st->ops->get_instance(st, true, "i", &a, &old));
  ASSERT_OK(st->ops->delete_instance(st, "i", old));
  ASSERT_EQ(updated(st, true, "i", &a), -1);
  ASSERT_STR_EQ(inbox_ids(st, true, "i", &a), "");
  commit(st);
  ASSERT_EQ(updated(st, false, "i", &a), -1);
  sc_store_close(st);
  sc_arena_free(&a);
  th_rmdir(dir);
  return 0;
}

TEST_IMPL(hot_cache_stays_within_its_budget)
{
  struct sc_hot h;
  sc_hot_init(&h, 64 * 1024);
  char iid[32], payload[512];
  memset(payload, 'x', sizeof payload);
  for (int i = 0; i < 1000; i++) {
    snprintf(iid, sizeof iid, "inst-%d", i);
    struct sc_hot_inst *e = sc_hot_get(&h, iid, true);
    sc_hot_journal(&h, e);
    sc_hot_set_rec(&h, e, payload, sizeof payload);
    sc_hot_set_inbox_empty(&h, e);
    ASSERT(sc_hot_inbox_put(&h, e, 1, (uint64_t)i, payload, sizeof payload));
    if (i % 10 == 9)
      sc_hot_end(&h, true);
  }
  ASSERT_LE(h.bytes, h.budget);
  /* The most recently used are kept, the oldest went first. */
  ASSERT(sc_hot_get(&h, "inst-999", false) != NULL);
  ASSERT(sc_hot_get(&h, "inst-0", false) == NULL);
  /* A rollback of an entry made in the rolled-back segment leaves it all unknown. */
  sc_hot_savepoint(&h);
  struct sc_hot_inst *e = sc_hot_get(&h, "fresh", true);
  sc_hot_journal(&h, e);
  sc_hot_set_rec(&h, e, "r", 1);
  sc_hot_rollback(&h);
  ASSERT(!e->rec_known && !e->hist_known && !e->inbox_known);
  sc_hot_end(&h, true);
  sc_hot_clear(&h);
  ASSERT_EQ(h.bytes, 0);
  sc_hot_free(&h);
  return 0;
}
