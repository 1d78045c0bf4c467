/*
 * The transaction layer must show exactly the committed state plus its own pending writes, whether a part of an
 * instance is in its cache or rebuilt from the backend. These tests read every part of an instance through the
 * transaction and through the backend itself (a committed read, or a reopened store) after writes, rollbacks,
 * discarded batches and clears, once with the default cache and once with none.
 */
#include "common/pbutil.h"
#include "helpers.h"
#include "store/cache.h"
#include "store/txn.h"
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

static void commit(struct sc_txn *tx)
{
  struct sc_err err;
  ASSERT_OK(sc_txn_commit(tx, true, &err));
}

/* The history's event ids as "0,1,2", read through the transaction or from committed state. */
static const char *hist_ids(struct sc_txn *tx, bool txn, const char *iid, struct sc_arena *a)
{
  HistoryEvent **h;
  size_t n;
  if (txn)
    ASSERT_OK(sc_txn_history_load(tx, iid, a, &h, &n));
  else
    ASSERT_OK(sc_store_history(sc_txn_store(tx), iid, a, &h, &n));
  char *out = sc_arena_alloc(a, 16 * n + 1);
  out[0] = 0;
  for (size_t i = 0; i < n; i++)
    sprintf(out + strlen(out), "%s%d", i ? "," : "", h[i]->eventid);
  return out;
}

/* The inbox as "band:seq:id,…". */
static const char *inbox_ids(struct sc_txn *tx, bool txn, const char *iid, struct sc_arena *a)
{
  struct sc_inbox_msg *m;
  size_t n;
  if (txn)
    ASSERT_OK(sc_txn_inbox_load(tx, iid, a, &m, &n));
  else
    ASSERT_OK(sc_store_inbox(sc_txn_store(tx), iid, a, &m, &n));
  char *out = sc_arena_alloc(a, 48 * n + 1);
  out[0] = 0;
  for (size_t i = 0; i < n; i++)
    sprintf(out + strlen(out), "%s%d:%llu:%d", i ? "," : "", m[i].band, (unsigned long long)m[i].seq,
            m[i].msg->event->eventid);
  return out;
}

static int64_t updated(struct sc_txn *tx, bool txn, const char *iid, struct sc_arena *a)
{
  StoredInstance *r;
  int rc = txn ? sc_txn_get_instance(tx, iid, a, &r) : sc_store_get_instance(sc_txn_store(tx), iid, a, &r);
  return rc == SC_ENOTFOUND ? -1 : r->last_updated_us;
}

/* Commits instance "i" with one event and one inbox message (band 1, |seq|, event id |id|). */
static void seed(struct sc_txn *tx, struct sc_arena *a, uint64_t seq, int32_t id)
{
  ASSERT_OK(sc_txn_put_instance(tx, "i", rec(a, 0, 10), NULL));
  ASSERT_OK(sc_txn_history_append(tx, "i", 0, ev(a, 0)));
  ASSERT_OK(sc_txn_inbox_append(tx, "i", SC_BAND_NORMAL, seq, msg(a, id)));
  commit(tx);
}

static int follows_writes_and_commits(size_t budget)
{
  char *dir = th_tempdir();
  struct sc_store *st = th_open_store(dir);
  struct sc_txn *tx = sc_txn_new(st, budget);
  struct sc_arena a;
  sc_arena_init(&a);
  seed(tx, &a, 7, 70);
  /* The first transaction reads fill the cache; later writes keep it exact. */
  ASSERT_STR_EQ(hist_ids(tx, true, "i", &a), "0");
  ASSERT_STR_EQ(inbox_ids(tx, true, "i", &a), "1:7:70");
  ASSERT_OK(sc_txn_history_append(tx, "i", 1, ev(&a, 1)));
  ASSERT_OK(sc_txn_inbox_append(tx, "i", SC_BAND_START, 9, msg(&a, 90))); /* band 0 sorts first */
  ASSERT_OK(sc_txn_inbox_append(tx, "i", SC_BAND_NORMAL, 8, msg(&a, 80)));
  ASSERT_OK(sc_txn_inbox_delete(tx, "i", SC_BAND_NORMAL, 7));
  ASSERT_OK(sc_txn_put_instance(tx, "i", rec(&a, 0, 20), rec(&a, 0, 10)));
  ASSERT_STR_EQ(hist_ids(tx, true, "i", &a), "0,1");
  ASSERT_STR_EQ(inbox_ids(tx, true, "i", &a), "0:9:90,1:8:80");
  ASSERT_EQ(updated(tx, true, "i", &a), 20);
  ASSERT_EQ(updated(tx, false, "i", &a), 10); /* not committed yet */
  commit(tx);
  ASSERT_STR_EQ(hist_ids(tx, false, "i", &a), "0,1");
  ASSERT_STR_EQ(inbox_ids(tx, false, "i", &a), "0:9:90,1:8:80");
  ASSERT_EQ(updated(tx, false, "i", &a), 20);
  /* Clears through the cache delete the right keys. */
  ASSERT_OK(sc_txn_inbox_clear(tx, "i"));
  ASSERT_OK(sc_txn_history_clear(tx, "i"));
  ASSERT_OK(sc_txn_history_append(tx, "i", 0, ev(&a, 5)));
  ASSERT_STR_EQ(hist_ids(tx, true, "i", &a), "5");
  ASSERT_STR_EQ(inbox_ids(tx, true, "i", &a), "");
  commit(tx);
  sc_txn_free(tx);
  sc_store_close(st);
  st = th_open_store(dir);
  tx = sc_txn_new(st, budget);
  ASSERT_STR_EQ(hist_ids(tx, false, "i", &a), "5");
  ASSERT_STR_EQ(inbox_ids(tx, false, "i", &a), "");
  sc_txn_free(tx);
  sc_store_close(st);
  sc_arena_free(&a);
  th_rmdir(dir);
  return 0;
}

static int forgets_rolled_back_and_discarded_writes(size_t budget)
{
  char *dir = th_tempdir();
  struct sc_store *st = th_open_store(dir);
  struct sc_txn *tx = sc_txn_new(st, budget);
  struct sc_arena a;
  sc_arena_init(&a);
  seed(tx, &a, 1, 10);
  ASSERT_STR_EQ(hist_ids(tx, true, "i", &a), "0");
  ASSERT_STR_EQ(inbox_ids(tx, true, "i", &a), "1:1:10");

  /* A command that fails is rolled back to its save point: the cache must not keep what it wrote. */
  sc_txn_savepoint(tx);
  ASSERT_OK(sc_txn_put_instance(tx, "i", rec(&a, 0, 99), rec(&a, 0, 10)));
  ASSERT_OK(sc_txn_history_append(tx, "i", 1, ev(&a, 1)));
  ASSERT_OK(sc_txn_inbox_delete(tx, "i", SC_BAND_NORMAL, 1));
  ASSERT_OK(sc_txn_put_instance(tx, "new", rec(&a, 0, 5), NULL));
  ASSERT_EQ(updated(tx, true, "i", &a), 99);
  sc_txn_rollback(tx);
  ASSERT_EQ(updated(tx, true, "i", &a), 10);
  ASSERT_EQ(updated(tx, true, "new", &a), -1);
  ASSERT_STR_EQ(hist_ids(tx, true, "i", &a), "0");
  ASSERT_STR_EQ(inbox_ids(tx, true, "i", &a), "1:1:10");

  /* An earlier command's writes survive a later command's rollback. */
  sc_txn_savepoint(tx);
  ASSERT_OK(sc_txn_history_append(tx, "i", 1, ev(&a, 1)));
  sc_txn_savepoint(tx);
  ASSERT_OK(sc_txn_history_append(tx, "i", 2, ev(&a, 2)));
  sc_txn_rollback(tx);
  ASSERT_STR_EQ(hist_ids(tx, true, "i", &a), "0,1");
  commit(tx);
  ASSERT_STR_EQ(hist_ids(tx, false, "i", &a), "0,1");

  /* A batch reset without a commit discards its writes, and the cache with them. */
  ASSERT_STR_EQ(hist_ids(tx, true, "i", &a), "0,1");
  ASSERT_OK(sc_txn_history_append(tx, "i", 2, ev(&a, 2)));
  ASSERT_OK(sc_txn_put_instance(tx, "i", rec(&a, 0, 77), rec(&a, 0, 10)));
  sc_txn_reset(tx);
  ASSERT_STR_EQ(hist_ids(tx, true, "i", &a), "0,1");
  ASSERT_EQ(updated(tx, true, "i", &a), 10);

  /* Appending to a history and an inbox the transaction has not read, then reading them. */
  sc_txn_forget(tx, "i");
  ASSERT_OK(sc_txn_history_append(tx, "i", 2, ev(&a, 2)));
  ASSERT_OK(sc_txn_inbox_append(tx, "i", SC_BAND_NORMAL, 3, msg(&a, 30)));
  ASSERT_STR_EQ(hist_ids(tx, true, "i", &a), "0,1,2");
  ASSERT_STR_EQ(inbox_ids(tx, true, "i", &a), "1:1:10,1:3:30");
  commit(tx);
  ASSERT_STR_EQ(hist_ids(tx, false, "i", &a), "0,1,2");

  /* Clearing a history the transaction does not know, then appending: only the new events remain. */
  sc_txn_forget(tx, "i");
  ASSERT_OK(sc_txn_history_clear(tx, "i"));
  ASSERT_OK(sc_txn_history_append(tx, "i", 0, ev(&a, 9)));
  ASSERT_STR_EQ(hist_ids(tx, true, "i", &a), "9");
  /* The record counts its events, as the engine keeps it: a backend may rely on it to delete them. */
  StoredInstance *counted = rec(&a, 0, 11);
  counted->history_count = 1;
  ASSERT_OK(sc_txn_put_instance(tx, "i", counted, NULL));
  commit(tx);
  ASSERT_STR_EQ(hist_ids(tx, false, "i", &a), "9");

  /* Deleting the instance: every part reads as gone. */
  StoredInstance *old;
  ASSERT_OK(sc_txn_get_instance(tx, "i", &a, &old));
  ASSERT_OK(sc_txn_delete_instance(tx, "i", old, false));
  ASSERT_EQ(updated(tx, true, "i", &a), -1);
  ASSERT_STR_EQ(inbox_ids(tx, true, "i", &a), "");
  commit(tx);
  ASSERT_EQ(updated(tx, false, "i", &a), -1);
  ASSERT_STR_EQ(inbox_ids(tx, false, "i", &a), "");
  ASSERT_STR_EQ(hist_ids(tx, false, "i", &a), "");
  sc_txn_free(tx);
  sc_store_close(st);
  sc_arena_free(&a);
  th_rmdir(dir);
  return 0;
}

TEST_IMPL(txn_follows_writes_and_commits)
{
  return follows_writes_and_commits(SC_CACHE_DEFAULT_BUDGET) || follows_writes_and_commits(0);
}

TEST_IMPL(txn_forgets_rolled_back_and_discarded_writes)
{
  return forgets_rolled_back_and_discarded_writes(SC_CACHE_DEFAULT_BUDGET) ||
         forgets_rolled_back_and_discarded_writes(0);
}

TEST_IMPL(cache_stays_within_its_budget)
{
  struct sc_cache h;
  sc_cache_init(&h, 64 * 1024);
  char iid[32], payload[512];
  memset(payload, 'x', sizeof payload);
  for (int i = 0; i < 1000; i++) {
    snprintf(iid, sizeof iid, "inst-%d", i);
    struct sc_cache_inst *e = sc_cache_get(&h, iid, true);
    sc_cache_set_rec(&h, e, payload, sizeof payload);
    sc_cache_set_inbox_empty(&h, e);
    sc_cache_inbox_put(&h, e, 1, (uint64_t)i, payload, sizeof payload);
    if (i % 10 == 9)
      sc_cache_trim(&h);
  }
  ASSERT_LE(h.bytes, h.budget);
  /* The most recently used are kept, the oldest went first. */
  ASSERT(sc_cache_get(&h, "inst-999", false) != NULL);
  ASSERT(sc_cache_get(&h, "inst-0", false) == NULL);
  /* Entries with pending changes stay, whatever the budget. */
  struct sc_cache_inst *e = sc_cache_get(&h, "pending", true);
  sc_cache_set_rec(&h, e, payload, sizeof payload);
  sc_cache_pend(&h, e, 0);
  h.budget = 0;
  sc_cache_trim(&h);
  ASSERT(sc_cache_get(&h, "pending", false) == e);
  ASSERT(sc_cache_get(&h, "inst-999", false) == NULL);
  e->npend = 0;
  sc_cache_clear(&h);
  ASSERT_EQ(h.bytes, 0);
  sc_cache_free(&h);
  return 0;
}
