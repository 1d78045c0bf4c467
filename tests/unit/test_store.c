#include "common/pbutil.h"
#include "helpers.h"
#include "store/rocksdb/keys.h"
#include "store/txn.h"
#include "test.h"

#include <dlfcn.h>
#include <rocksdb/c.h>
#include <sys/wait.h>
#include <unistd.h>

static StoredInstance *mkrec(struct sc_arena *a, const char *name, int status, int64_t created)
{
  StoredInstance *r = sc_arena_alloc(a, sizeof *r);
  taskhubd__store__stored_instance__init(r);
  r->name = (char *)name;
  r->status = status;
  r->created_us = created;
  r->last_updated_us = created;
  r->execution_id = (char *)"e1";
  if (sc_status_is_terminal(status))
    r->completed_us = created + 1000;
  return r;
}

static void put_commit(struct sc_txn *tx, const char *iid, StoredInstance *r)
{
  ASSERT_OK(sc_txn_put_instance(tx, iid, r, NULL));
  struct sc_err err;
  ASSERT_OK(sc_txn_commit(tx, true, &err));
}

TEST_IMPL(store_txn_reads_own_writes_and_persists)
{
  char *dir = th_tempdir();
  struct sc_store *st = th_open_store(dir);
  struct sc_txn *tx = sc_txn_new(st, SC_CACHE_DEFAULT_BUDGET);
  struct sc_arena a;
  sc_arena_init(&a);
  StoredInstance *got;
  ASSERT_OK(sc_txn_put_instance(tx, "i1", mkrec(&a, "orch", 6, 100), NULL));
  ASSERT_OK(sc_txn_put_payload(tx, "i1", SC_PAYLOAD_INPUT, "{\"x\":1}", 7));
  ASSERT_OK(sc_txn_get_instance(tx, "i1", &a, &got));
  ASSERT_STR_EQ(got->name, "orch");
  /* Not committed: other readers do not see it. */
  ASSERT_EQ(sc_store_get_instance(st, "i1", &a, &got), SC_ENOTFOUND);
  struct sc_err err;
  ASSERT_OK(sc_txn_commit(tx, true, &err));
  ASSERT_OK(sc_store_get_instance(st, "i1", &a, &got));
  sc_txn_free(tx);
  sc_store_close(st);

  st = th_open_store(dir);

  tx = sc_txn_new(st, SC_CACHE_DEFAULT_BUDGET);
  ASSERT_OK(sc_store_get_instance(st, "i1", &a, &got));
  ASSERT_EQ(got->status, 6);
  char *p;
  size_t n;
  ASSERT_OK(st->ops->get_payload(st, "i1", SC_PAYLOAD_INPUT, &a, &p, &n));
  ASSERT_STR_EQ(p, "{\"x\":1}");
  sc_txn_free(tx);
  sc_store_close(st);
  sc_arena_free(&a);
  th_rmdir(dir);
  return 0;
}

TEST_IMPL(store_rollback_discards_writes)
{
  char *dir = th_tempdir();
  struct sc_store *st = th_open_store(dir);
  struct sc_txn *tx = sc_txn_new(st, SC_CACHE_DEFAULT_BUDGET);
  struct sc_arena a;
  sc_arena_init(&a);
  sc_txn_savepoint(tx);
  ASSERT_OK(sc_txn_put_instance(tx, "gone", mkrec(&a, "o", 6, 1), NULL));
  sc_txn_rollback(tx);
  ASSERT_EQ(sc_txn_size(tx), 0);
  StoredInstance *got;
  ASSERT_EQ(sc_txn_get_instance(tx, "gone", &a, &got), SC_ENOTFOUND);
  sc_txn_free(tx);
  sc_store_close(st);
  sc_arena_free(&a);
  th_rmdir(dir);
  return 0;
}

/* Writes a schema version into an existing store behind its back. */
static void poke_schema(const char *dir, uint32_t version)
{
  rocksdb_options_t *o = rocksdb_options_create();
  char *err = NULL;
  size_t ncf;
  char **names = rocksdb_list_column_families(o, dir, &ncf, &err);
  ASSERT(err == NULL);
  const rocksdb_options_t *opts[32];
  rocksdb_column_family_handle_t *h[32];
  for (size_t i = 0; i < ncf; i++)
    opts[i] = o;
  rocksdb_t *db = rocksdb_open_column_families(o, dir, (int)ncf, (const char *const *)names, opts, h, &err);
  ASSERT(err == NULL);
  unsigned char b[4] = {(unsigned char)(version >> 24), (unsigned char)(version >> 16),
                        (unsigned char)(version >> 8), (unsigned char)version};
  rocksdb_writeoptions_t *wo = rocksdb_writeoptions_create();
  rocksdb_put(db, wo, "schema", 6, (const char *)b, 4, &err);
  ASSERT(err == NULL);
  rocksdb_writeoptions_destroy(wo);
  for (size_t i = 0; i < ncf; i++)
    rocksdb_column_family_handle_destroy(h[i]);
  rocksdb_close(db);
  rocksdb_list_column_families_destroy(names, ncf);
  rocksdb_options_destroy(o);
}

TEST_IMPL(store_refuses_newer_schema)
{
  char *dir = th_tempdir();
  sc_store_close(th_open_store(dir));
  poke_schema(dir, SC_SCHEMA_VERSION + 1);
  struct sc_store *st = NULL;
  struct sc_err err = {0};
  ASSERT_EQ(sc_store_open_rocksdb(dir, &st, &err), SC_ESTATE);
  ASSERT(st == NULL);
  ASSERT_STR_CONTAINS(err.msg, "newer than this taskhubd supports");
  th_rmdir(dir);
  return 0;
}

TEST_IMPL(store_query_pages_by_status_time_and_prefix)
{
  char *dir = th_tempdir();
  struct sc_store *st = th_open_store(dir);
  struct sc_txn *tx = sc_txn_new(st, SC_CACHE_DEFAULT_BUDGET);
  struct sc_arena a;
  sc_arena_init(&a);
  /* 30 instances: every third TERMINATED, the rest PENDING; created 1000 µs apart. */
  char iid[32];
  for (int i = 0; i < 30; i++) {
    snprintf(iid, sizeof iid, "%s-%02d", i < 20 ? "alpha" : "beta", i);
    put_commit(tx, iid, mkrec(&a, "o", i % 3 == 0 ? 5 : 6, 1000000 + i * 1000));
  }
  int terminated = 5, pending = 6;
  struct sc_query q = {.index = SC_Q_CREATED, .statuses = &pending, .n_statuses = 1, .page_size = 7};
  struct sc_query_page page;
  struct sc_err err;
  int seen = 0, pages = 0;
  unsigned char cur[SC_KEY_MAX];
  int64_t last_created = 0;
  do {
    ASSERT_OK(st->ops->query(st, &q, &a, &page, &err));
    pages++;
    for (size_t i = 0; i < page.n; i++) {
      ASSERT_EQ(page.rows[i].rec->status, 6);
      ASSERT_GT(page.rows[i].rec->created_us, last_created);
      last_created = page.rows[i].rec->created_us;
      seen++;
    }
    if (page.next_cursor) {
      memcpy(cur, page.next_cursor, page.next_cursor_len);
      q.cursor = cur;
      q.cursor_len = page.next_cursor_len;
    }
  } while (page.next_cursor);
  ASSERT_EQ(seen, 20);
  ASSERT_EQ(pages, 3); /* 7 + 7 + 6, and no empty trailing page */

  /* Two statuses merged, created range [1005000, 1015000). */
  int both[2] = {terminated, pending};
  struct sc_query r = {.index = SC_Q_CREATED, .statuses = both, .n_statuses = 2, .page_size = 100,
                       .has_from = true, .from_us = 1005000, .has_to = true, .to_us = 1015000};
  ASSERT_OK(st->ops->query(st, &r, &a, &page, &err));
  ASSERT_EQ(page.n, 10);
  ASSERT(page.next_cursor == NULL);
  ASSERT_STR_EQ(page.rows[0].iid, "alpha-05");

  /* Prefix, terminated only: beta-21, beta-24, beta-27. */
  struct sc_query p = {.index = SC_Q_CREATED, .statuses = &terminated, .n_statuses = 1, .prefix = "beta",
                       .page_size = 2};
  ASSERT_OK(st->ops->query(st, &p, &a, &page, &err));
  ASSERT_EQ(page.n, 2);
  ASSERT(page.next_cursor != NULL);
  memcpy(cur, page.next_cursor, page.next_cursor_len);
  p.cursor = cur;
  p.cursor_len = page.next_cursor_len;
  ASSERT_OK(st->ops->query(st, &p, &a, &page, &err));
  ASSERT_EQ(page.n, 1);
  ASSERT_STR_EQ(page.rows[0].iid, "beta-27");
  ASSERT(page.next_cursor == NULL);

  /* Completed-time index: only the 10 terminated ones. */
  struct sc_query l = {.index = SC_Q_COMPLETED, .page_size = 100};
  ASSERT_OK(st->ops->query(st, &l, &a, &page, &err));
  ASSERT_EQ(page.n, 10);

  /* Counted by status (what /metrics shows as taskhubd_instances). */
  uint64_t counts[8];
  ASSERT_OK(st->ops->count_by_status(st, counts, &err));
  for (int i = 0; i < 8; i++)
    ASSERT_EQ(counts[i], (uint64_t)(i == terminated ? 10 : i == pending ? 20 : 0));
  sc_txn_free(tx);
  sc_store_close(st);
  sc_arena_free(&a);
  th_rmdir(dir);
  return 0;
}

static int count_child(const char *child, void *ctx)
{
  ASSERT_STR_EQ(child, "kid");
  (*(int *)ctx)++;
  return SC_OK;
}

TEST_IMPL(store_delete_instance_removes_everything)
{
  char *dir = th_tempdir();
  struct sc_store *st = th_open_store(dir);
  struct sc_txn *tx = sc_txn_new(st, SC_CACHE_DEFAULT_BUDGET);
  struct sc_arena a;
  sc_arena_init(&a);
  /* Not finished, so that it may still have inbox messages; one history event, as its count says. */
  StoredInstance *r = mkrec(&a, "o", 6, 42);
  r->parent_instance_id = (char *)"parent";
  r->history_count = 1;
  ASSERT_OK(sc_txn_put_instance(tx, "kid", r, NULL));
  ASSERT_OK(sc_txn_put_payload(tx, "kid", SC_PAYLOAD_OUTPUT, "out", 3));
  HistoryEvent *ev = sc_pb_event(&a, -1, 42);
  ev->event_type_case = HISTORY_EVENT__EVENT_TYPE_ORCHESTRATOR_STARTED;
  OrchestratorStartedEvent os = ORCHESTRATOR_STARTED_EVENT__INIT;
  ev->orchestratorstarted = &os;
  ASSERT_OK(sc_txn_history_append(tx, "kid", 0, ev));
  StoredMsg m = TASKHUBD__STORE__STORED_MSG__INIT;
  m.event = ev;
  ASSERT_OK(sc_txn_inbox_append(tx, "kid", SC_BAND_NORMAL, 7, &m));
  struct sc_err err;
  ASSERT_OK(sc_txn_commit(tx, true, &err));

  int nchildren = 0;
  ASSERT_OK(st->ops->children(st, "parent", count_child, &nchildren));
  ASSERT_EQ(nchildren, 1);
  struct sc_query q = {.index = SC_Q_CREATED, .page_size = 10};
  struct sc_query_page page;
  ASSERT_OK(st->ops->query(st, &q, &a, &page, &err));
  ASSERT_EQ(page.n, 1);

  ASSERT_OK(sc_txn_delete_instance(tx, "kid", r, false));
  ASSERT_OK(sc_txn_commit(tx, true, &err));
  ASSERT_OK(st->ops->query(st, &q, &a, &page, &err));
  ASSERT_EQ(page.n, 0);
  HistoryEvent **h;
  size_t n;
  ASSERT_OK(sc_store_history(st, "kid", &a, &h, &n));
  ASSERT_EQ(n, 0);
  struct sc_inbox_msg *msgs;
  ASSERT_OK(sc_store_inbox(st, "kid", &a, &msgs, &n));
  ASSERT_EQ(n, 0);
  char *p;
  ASSERT_EQ(st->ops->get_payload(st, "kid", SC_PAYLOAD_OUTPUT, &a, &p, &n), SC_ENOTFOUND);
  nchildren = 0;
  ASSERT_OK(st->ops->children(st, "parent", count_child, &nchildren));
  ASSERT_EQ(nchildren, 0);
  sc_txn_free(tx);
  sc_store_close(st);
  sc_arena_free(&a);
  th_rmdir(dir);
  return 0;
}

static HistoryEvent *started_event(struct sc_arena *a, int32_t id, int64_t ts)
{
  HistoryEvent *ev = sc_pb_event(a, id, ts);
  ev->event_type_case = HISTORY_EVENT__EVENT_TYPE_ORCHESTRATOR_STARTED;
  OrchestratorStartedEvent *os = sc_arena_alloc(a, sizeof *os);
  orchestrator_started_event__init(os);
  ev->orchestratorstarted = os;
  return ev;
}

/* Keys in each column family of the closed store in |dir|, by opening it with RocksDB directly. */
static void count_keys(const char *dir, size_t counts[SC_CF_COUNT])
{
  rocksdb_options_t *o = rocksdb_options_create();
  char *err = NULL;
  const rocksdb_options_t *opts[SC_CF_COUNT];
  rocksdb_column_family_handle_t *h[SC_CF_COUNT];
  for (int i = 0; i < SC_CF_COUNT; i++)
    opts[i] = o;
  rocksdb_t *db = rocksdb_open_column_families(o, dir, SC_CF_COUNT, (const char *const *)sc_cf_names, opts, h, &err);
  ASSERT(err == NULL);
  rocksdb_readoptions_t *ro = rocksdb_readoptions_create();
  for (int i = 0; i < SC_CF_COUNT; i++) {
    counts[i] = 0;
    rocksdb_iterator_t *it = rocksdb_create_iterator_cf(db, ro, h[i]);
    for (rocksdb_iter_seek_to_first(it); rocksdb_iter_valid(it); rocksdb_iter_next(it))
      counts[i]++;
    rocksdb_iter_destroy(it);
    rocksdb_column_family_handle_destroy(h[i]);
  }
  rocksdb_readoptions_destroy(ro);
  rocksdb_close(db);
  rocksdb_options_destroy(o);
}

TEST_IMPL(store_wipe_empties_everything_and_keeps_the_sequence)
{
  char *dir = th_tempdir();
  struct sc_store *st = th_open_store(dir);
  struct sc_txn *tx = sc_txn_new(st, SC_CACHE_DEFAULT_BUDGET);
  struct sc_arena a;
  sc_arena_init(&a);
  struct sc_err err;
  /* Something in every column family. */
  StoredInstance *r = mkrec(&a, "o", 5, 42);
  r->parent_instance_id = (char *)"p";
  r->history_count = 1;
  ASSERT_OK(sc_txn_put_instance(tx, "w", r, NULL));
  ASSERT_OK(sc_txn_put_payload(tx, "w", SC_PAYLOAD_INPUT, "in", 2));
  HistoryEvent *ev = started_event(&a, -1, 42);
  ASSERT_OK(sc_txn_history_append(tx, "w", 0, ev));
  StoredMsg m = TASKHUBD__STORE__STORED_MSG__INIT;
  m.event = ev;
  uint64_t seq = 0;
  for (int i = 0; i < 100; i++)
    seq = sc_txn_next_seq(tx);
  ASSERT_OK(sc_txn_inbox_append(tx, "w", SC_BAND_NORMAL, seq, &m));
  StoredTimer t = TASKHUBD__STORE__STORED_TIMER__INIT;
  t.instance_id = (char *)"w";
  ASSERT_OK(sc_txn_timer_put(tx, 5000, sc_txn_next_seq(tx), &t));
  StoredActivity act = TASKHUBD__STORE__STORED_ACTIVITY__INIT;
  ASSERT_OK(sc_txn_actq_put(tx, sc_txn_next_seq(tx), &act));
  StoredEntity ent = TASKHUBD__STORE__STORED_ENTITY__INIT;
  ent.has_state = true;
  ent.state = (char *)"1";
  ASSERT_OK(sc_txn_put_entity(tx, "@counter@w", &ent));
  ASSERT_OK(sc_txn_commit(tx, true, &err));
  sc_txn_free(tx);
  sc_store_close(st);
  size_t counts[SC_CF_COUNT];
  count_keys(dir, counts);
  for (int i = 0; i < SC_CF_COUNT; i++)
    if (counts[i] == 0)
      TEST_FAIL("column family %s is empty before the wipe", sc_cf_names[i]);

  st = th_open_store(dir);

  tx = sc_txn_new(st, SC_CACHE_DEFAULT_BUDGET);
  /* A number taken by a transaction the wipe then discards, with the write it made. */
  uint64_t last = sc_txn_next_seq(tx);
  ASSERT_GT(last, seq);
  ASSERT_OK(sc_txn_put_instance(tx, "uncommitted", mkrec(&a, "o", 0, 1), NULL));
  ASSERT_OK(sc_txn_wipe(tx, &err));
  ASSERT_EQ(sc_txn_size(tx), 0);
  /* Numbers go on from where they were, in this process and after a restart. */
  ASSERT_GT(sc_txn_next_seq(tx), last);
  sc_txn_free(tx);
  sc_store_close(st);
  count_keys(dir, counts);
  ASSERT_EQ(counts[SC_CF_META], 2); /* schema and seq */
  for (int i = 1; i < SC_CF_COUNT; i++)
    if (counts[i] != 0)
      TEST_FAIL("column family %s holds %zu keys after the wipe", sc_cf_names[i], counts[i]);
  st = th_open_store(dir);
  tx = sc_txn_new(st, SC_CACHE_DEFAULT_BUDGET);
  ASSERT_GT(sc_txn_next_seq(tx), last);
  StoredInstance *got;
  ASSERT_EQ(sc_store_get_instance(st, "w", &a, &got), SC_ENOTFOUND);
  ASSERT_EQ(sc_store_get_instance(st, "uncommitted", &a, &got), SC_ENOTFOUND);
  sc_txn_free(tx);
  sc_store_close(st);
  sc_arena_free(&a);
  th_rmdir(dir);
  return 0;
}
/*
 * A process crash in the middle of a wipe. RocksDB calls fdatasync (or fsync) once per synced write; these
 * wrappers, which the dynamic linker prefers to libc's, end the process right after the n-th such call, as a
 * crash would, once armed. Unarmed, they only pass through.
 */
static int crash_after_syncs;

static void maybe_crash(void)
{
  if (crash_after_syncs > 0 && --crash_after_syncs == 0)
    _exit(99);
}

int fdatasync(int fd)
{
  int (*real)(int) = (int (*)(int))dlsym(RTLD_NEXT, "fdatasync");
  int rc = real(fd);
  maybe_crash();
  return rc;
}

int fsync(int fd)
{
  int (*real)(int) = (int (*)(int))dlsym(RTLD_NEXT, "fsync");
  int rc = real(fd);
  maybe_crash();
  return rc;
}

TEST_IMPL(store_wipe_is_atomic_across_a_crash)
{
  char *dir = th_tempdir();
  struct sc_store *st = th_open_store(dir);
  struct sc_txn *tx = sc_txn_new(st, SC_CACHE_DEFAULT_BUDGET);
  struct sc_arena a;
  sc_arena_init(&a);
  struct sc_err err;
  StoredInstance *r = mkrec(&a, "o", 0, 42);
  r->history_count = 1;
  ASSERT_OK(sc_txn_put_instance(tx, "c", r, NULL));
  HistoryEvent *ev = started_event(&a, -1, 42);
  ASSERT_OK(sc_txn_history_append(tx, "c", 0, ev));
  StoredMsg m = TASKHUBD__STORE__STORED_MSG__INIT;
  m.event = ev;
  uint64_t seq = 0;
  for (int i = 0; i < 50; i++)
    seq = sc_txn_next_seq(tx);
  ASSERT_OK(sc_txn_inbox_append(tx, "c", SC_BAND_NORMAL, seq, &m));
  StoredTimer t = TASKHUBD__STORE__STORED_TIMER__INIT;
  t.instance_id = (char *)"c";
  ASSERT_OK(sc_txn_timer_put(tx, 5000, sc_txn_next_seq(tx), &t));
  ASSERT_OK(sc_txn_commit(tx, true, &err));
  sc_txn_free(tx);
  sc_store_close(st);

  /* The wipe runs in a child that dies right after its first synced write. */
  fflush(NULL);
  pid_t pid = fork();
  ASSERT(pid >= 0);
  if (pid == 0) {
    st = th_open_store(dir);
    tx = sc_txn_new(st, SC_CACHE_DEFAULT_BUDGET);
    crash_after_syncs = 1;
    sc_txn_wipe(tx, &err);
    _exit(0); /* the wipe made no synced write at all */
  }
  int status = 0;
  ASSERT_EQ(waitpid(pid, &status, 0), pid);
  ASSERT(WIFEXITED(status));
  ASSERT_EQ(WEXITSTATUS(status), 99);

  /* Whatever one synced write holds, the store is either untouched or wiped, never in between: here wiped,
   * with no instance, inbox or timer left and the sequence counter where it was. */
  size_t counts[SC_CF_COUNT];
  count_keys(dir, counts);
  for (int i = 1; i < SC_CF_COUNT; i++)
    if (counts[i] != 0)
      TEST_FAIL("column family %s holds %zu keys after the crash", sc_cf_names[i], counts[i]);
  st = th_open_store(dir);
  tx = sc_txn_new(st, SC_CACHE_DEFAULT_BUDGET);
  ASSERT_GT(sc_txn_next_seq(tx), seq + 1);
  sc_txn_free(tx);
  sc_store_close(st);
  sc_arena_free(&a);
  th_rmdir(dir);
  return 0;
}

/* Pages through |q| to the end; checks that cursors only grow (only shrink, descending) and the last page alone has
 * none. Appends the ids returned to |ids| (one string, space-separated) and returns the number of pages. */
static int query_all(struct sc_store *st, struct sc_query *q, struct sc_arena *a, char *ids, size_t cap)
{
  struct sc_query_page page;
  struct sc_err err;
  unsigned char cur[SC_KEY_MAX], prev[SC_KEY_MAX];
  size_t prev_len = 0;
  int pages = 0;
  q->cursor = NULL;
  do {
    ASSERT_OK(st->ops->query(st, q, a, &page, &err));
    pages++;
    ASSERT_LE(page.n, q->page_size);
    for (size_t i = 0; i < page.n; i++) {
      ASSERT_LT(strlen(ids) + strlen(page.rows[i].iid) + 2, cap);
      strcat(ids, page.rows[i].iid);
      strcat(ids, " ");
    }
    if (page.next_cursor) {
      if (prev_len) {
        size_t m = prev_len < page.next_cursor_len ? prev_len : page.next_cursor_len;
        int c = memcmp(page.next_cursor, prev, m);
        if (c == 0)
          c = page.next_cursor_len > prev_len ? 1 : -1;
        ASSERT(q->descending ? c < 0 : c > 0);
      }
      memcpy(prev, page.next_cursor, page.next_cursor_len);
      prev_len = page.next_cursor_len;
      memcpy(cur, page.next_cursor, page.next_cursor_len);
      q->cursor = cur;
      q->cursor_len = page.next_cursor_len;
    }
  } while (page.next_cursor);
  q->cursor = NULL;
  return pages;
}

TEST_IMPL(store_query_scan_budget_ends_pages_early)
{
  char *dir = th_tempdir();
  struct sc_store *st = th_open_store(dir);
  struct sc_txn *tx = sc_txn_new(st, SC_CACHE_DEFAULT_BUDGET);
  struct sc_arena a;
  sc_arena_init(&a);
  /* 40 finished instances, created and completed in id order; only x-07 and x-31 FAILED, the rest TERMINATED. */
  char iid[32];
  for (int i = 0; i < 40; i++) {
    snprintf(iid, sizeof iid, "x-%02d", i);
    ASSERT_OK(sc_txn_put_instance(tx, iid, mkrec(&a, "o", i == 7 || i == 31 ? 3 : 5, 1000000 + i * 1000), NULL));
  }
  struct sc_err err;
  ASSERT_OK(sc_txn_commit(tx, true, &err));
  char ids[2048];
  int failed = 3, terminated = 5;

  /* ListInstanceIds(FAILED) with a budget of 4 entries: ten pages, most of them empty, and exactly the two. */
  struct sc_query l = {.index = SC_Q_COMPLETED, .statuses = &failed, .n_statuses = 1, .page_size = 100,
                       .max_scan = 4};
  ids[0] = 0;
  ASSERT_EQ(query_all(st, &l, &a, ids, sizeof ids), 10);
  ASSERT_STR_EQ(ids, "x-07 x-31 ");
  /* The first page stops after x-03, with nothing found. */
  struct sc_query_page page;
  ASSERT_OK(st->ops->query(st, &l, &a, &page, &err));
  ASSERT_EQ(page.n, 0);
  ASSERT(page.next_cursor != NULL);
  ASSERT_EQ(page.next_cursor_len, 8 + 4);
  ASSERT_MEM_EQ(page.next_cursor + 8, 4, "x-03", 4);
  /* A budget that runs out exactly on the last entry: no cursor, the page is the last. */
  l.max_scan = 40;
  ASSERT_OK(st->ops->query(st, &l, &a, &page, &err));
  ASSERT_EQ(page.n, 2);
  ASSERT(page.next_cursor == NULL);
  /* Without max_scan the default budget covers all 40. */
  l.max_scan = 0;
  ASSERT_OK(st->ops->query(st, &l, &a, &page, &err));
  ASSERT_EQ(page.n, 2);
  ASSERT(page.next_cursor == NULL);

  /* Budget and page size together: TERMINATED, 5 per page, 3 entries per page examined. */
  struct sc_query t = {.index = SC_Q_COMPLETED, .statuses = &terminated, .n_statuses = 1, .page_size = 5,
                       .max_scan = 3};
  ids[0] = 0;
  query_all(st, &t, &a, ids, sizeof ids);
  char want[2048] = "";
  for (int i = 0; i < 40; i++)
    if (i != 7 && i != 31) {
      snprintf(iid, sizeof iid, "x-%02d ", i);
      strcat(want, iid);
    }
  ASSERT_STR_EQ(ids, want);

  /* Prefix queries (id order over the records) are bounded the same way. */
  struct sc_query p = {.index = SC_Q_CREATED, .statuses = &failed, .n_statuses = 1, .prefix = "x-", .page_size = 10,
                       .max_scan = 6};
  ids[0] = 0;
  ASSERT_EQ(query_all(st, &p, &a, ids, sizeof ids), 7);
  ASSERT_STR_EQ(ids, "x-07 x-31 ");
  /* And merged status iterators with a created-time filter. */
  int both[2] = {failed, terminated};
  struct sc_query m = {.index = SC_Q_CREATED, .statuses = both, .n_statuses = 2, .page_size = 100, .max_scan = 2,
                       .has_from = true, .from_us = 1030000};
  ids[0] = 0;
  ASSERT_EQ(query_all(st, &m, &a, ids, sizeof ids), 5);
  ASSERT_STR_EQ(ids, "x-30 x-31 x-32 x-33 x-34 x-35 x-36 x-37 x-38 x-39 ");
  sc_txn_free(tx);
  sc_store_close(st);
  sc_arena_free(&a);
  th_rmdir(dir);
  return 0;
}

/* |ids| (space-separated, trailing space) with its words in reverse order. */
static void reverse_words(const char *ids, char *out, size_t cap)
{
  out[0] = 0;
  size_t n = strlen(ids);
  while (n > 0) {
    size_t end = n - 1; /* the space after the word */
    size_t start = end;
    while (start > 0 && ids[start - 1] != ' ')
      start--;
    ASSERT_LT(strlen(out) + (end - start) + 2, cap);
    strncat(out, ids + start, end - start);
    strcat(out, " ");
    n = start;
  }
}

/* Walking an index backwards returns exactly the forward walk reversed, for every shape of query (time indexes,
 * merged statuses, ranges, prefixes, completion time), page size and scan budget, ties in time broken by id. */
TEST_IMPL(store_query_descending_mirrors_ascending)
{
  char *dir = th_tempdir();
  struct sc_store *st = th_open_store(dir);
  struct sc_txn *tx = sc_txn_new(st, SC_CACHE_DEFAULT_BUDGET);
  struct sc_arena a;
  sc_arena_init(&a);
  /* 60 instances over three statuses; created times collide in pairs so the id decides between them. */
  static const int statuses[] = {1, 3, 5}; /* COMPLETED, FAILED, TERMINATED */
  char iid[32];
  for (int i = 0; i < 60; i++) {
    snprintf(iid, sizeof iid, "%s-%02d", i % 4 == 0 ? "k" : i % 4 == 1 ? "ka" : "m", 59 - i);
    ASSERT_OK(sc_txn_put_instance(tx, iid, mkrec(&a, "o", i % 7 == 0 ? 6 : statuses[i % 3], 1000000 + (i / 2) * 1000),
                                  NULL));
  }
  struct sc_err err;
  ASSERT_OK(sc_txn_commit(tx, true, &err));
  int one[1] = {3}, two[2] = {5, 6}, three[3] = {1, 3, 5};
  struct sc_query shapes[] = {
      {.index = SC_Q_CREATED},
      {.index = SC_Q_CREATED, .statuses = one, .n_statuses = 1},
      {.index = SC_Q_CREATED, .statuses = two, .n_statuses = 2},
      {.index = SC_Q_CREATED, .statuses = three, .n_statuses = 3, .has_from = true, .from_us = 1004000},
      {.index = SC_Q_CREATED, .has_to = true, .to_us = 1020000},
      {.index = SC_Q_CREATED, .statuses = two, .n_statuses = 2, .has_from = true, .from_us = 1003000, .has_to = true,
       .to_us = 1025000},
      {.index = SC_Q_CREATED, .prefix = "k"},
      {.index = SC_Q_CREATED, .prefix = "ka-", .statuses = three, .n_statuses = 3},
      {.index = SC_Q_CREATED, .prefix = "m-", .has_from = true, .from_us = 1010000},
      {.index = SC_Q_COMPLETED},
      {.index = SC_Q_COMPLETED, .statuses = one, .n_statuses = 1},
      {.index = SC_Q_COMPLETED, .has_from = true, .from_us = 1005000, .has_to = true, .to_us = 1021000},
  };
  static const size_t pages[] = {1, 3, 100};
  static const size_t budgets[] = {0, 2, 5};
  char fwd[4096], back[4096], want[4096];
  for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++) {
    for (size_t p = 0; p < 3; p++) {
      for (size_t b = 0; b < 3; b++) {
        struct sc_query q = shapes[s];
        q.page_size = pages[p];
        q.max_scan = budgets[b];
        fwd[0] = back[0] = 0;
        query_all(st, &q, &a, fwd, sizeof fwd);
        q.descending = true;
        query_all(st, &q, &a, back, sizeof back);
        reverse_words(fwd, want, sizeof want);
        if (strcmp(back, want) != 0)
          TEST_FAIL("shape %zu, page %zu, budget %zu: descending gave \"%s\", want \"%s\"", s, pages[p], budgets[b],
                    back, want);
        if (p == 2 && b == 0)
          ASSERT_GT(strlen(fwd), 0); /* every shape matches something */
      }
    }
  }
  /* Newest first: m-00 and m-01 were created last, at one time; between them the id decides, backwards too. */
  struct sc_query newest = {.index = SC_Q_CREATED, .page_size = 2, .descending = true};
  struct sc_query_page page;
  ASSERT_OK(st->ops->query(st, &newest, &a, &page, &err));
  ASSERT_EQ(page.n, 2);
  ASSERT_STR_EQ(page.rows[0].iid, "m-01");
  ASSERT_STR_EQ(page.rows[1].iid, "m-00");
  sc_txn_free(tx);
  sc_store_close(st);
  sc_arena_free(&a);
  th_rmdir(dir);
  return 0;
}

TEST_IMPL(store_history_range_reads_slices_and_generations)
{
  char *dir = th_tempdir();
  struct sc_store *st = th_open_store(dir);
  struct sc_txn *tx = sc_txn_new(st, SC_CACHE_DEFAULT_BUDGET);
  struct sc_arena a;
  sc_arena_init(&a);
  struct sc_err err;
  struct sc_history_slice sl;
  ASSERT_EQ(st->ops->history_range(st, "h", 0, 10, 1 << 20, &a, &sl), SC_ENOTFOUND);
  StoredInstance *r = mkrec(&a, "o", 0, 42);
  r->history_count = 10;
  ASSERT_OK(sc_txn_put_instance(tx, "h", r, NULL));
  for (uint32_t i = 0; i < 10; i++)
    ASSERT_OK(sc_txn_history_append(tx, "h", i, started_event(&a, (int32_t)i, 1000 + i)));
  /* Not committed yet: the reader sees nothing. */
  ASSERT_EQ(st->ops->history_range(st, "h", 0, 10, 1 << 20, &a, &sl), SC_ENOTFOUND);
  ASSERT_OK(sc_txn_commit(tx, true, &err));

  ASSERT_OK(st->ops->history_range(st, "h", 0, 4, 1 << 20, &a, &sl));
  ASSERT_EQ(sl.n, 4);
  ASSERT_EQ(sl.rec->history_count, 10);
  ASSERT_STR_EQ(sl.rec->execution_id, "e1");
  uint64_t gen0 = sl.generation;
  size_t one = sl.bytes / 4;
  for (size_t i = 0; i < sl.n; i++)
    ASSERT_EQ(sl.events[i]->eventid, (int32_t)i);
  /* From the middle; a byte budget of two and a half events gives two. */
  ASSERT_OK(st->ops->history_range(st, "h", 4, 10, one * 5 / 2, &a, &sl));
  ASSERT_EQ(sl.n, 2);
  ASSERT_EQ(sl.events[0]->eventid, 4);
  ASSERT_EQ(sl.events[1]->eventid, 5);
  /* A first event larger than the budget still comes, alone. */
  ASSERT_OK(st->ops->history_range(st, "h", 6, 10, 1, &a, &sl));
  ASSERT_EQ(sl.n, 1);
  /* The end: fewer than asked, then none. */
  ASSERT_OK(st->ops->history_range(st, "h", 8, 10, 1 << 20, &a, &sl));
  ASSERT_EQ(sl.n, 2);
  ASSERT_OK(st->ops->history_range(st, "h", 10, 10, 1 << 20, &a, &sl));
  ASSERT_EQ(sl.n, 0);

  /* Growing keeps the generation; replacing the history changes it, for good. */
  ASSERT_OK(sc_txn_history_append(tx, "h", 10, started_event(&a, 10, 2000)));
  ASSERT_OK(sc_txn_commit(tx, true, &err));
  ASSERT_OK(st->ops->history_range(st, "h", 10, 10, 1 << 20, &a, &sl));
  ASSERT_EQ(sl.n, 1);
  ASSERT_EQ(sl.generation, gen0);
  ASSERT_OK(sc_txn_history_clear(tx, "h"));
  ASSERT_OK(sc_txn_history_append(tx, "h", 0, started_event(&a, 77, 3000)));
  ASSERT_OK(sc_txn_commit(tx, true, &err));
  ASSERT_OK(st->ops->history_range(st, "h", 0, 10, 1 << 20, &a, &sl));
  ASSERT_EQ(sl.n, 1);
  ASSERT_EQ(sl.events[0]->eventid, 77);
  ASSERT_NE(sl.generation, gen0);
  uint64_t gen1 = sl.generation;
  ASSERT_OK(sc_txn_history_clear(tx, "h"));
  ASSERT_OK(sc_txn_commit(tx, true, &err));
  ASSERT_OK(st->ops->history_range(st, "h", 0, 10, 1 << 20, &a, &sl));
  ASSERT_EQ(sl.n, 0);
  ASSERT_NE(sl.generation, gen1);
  ASSERT_NE(sl.generation, gen0);
  /* Deleting the instance takes the generation with it. */
  ASSERT_OK(sc_txn_delete_instance(tx, "h", sl.rec, false));
  ASSERT_OK(sc_txn_commit(tx, true, &err));
  char *p;
  size_t n;
  ASSERT_EQ(st->ops->get_payload(st, "h", SC_PAYLOAD_HISTORY_GEN, &a, &p, &n), SC_ENOTFOUND);
  ASSERT_EQ(st->ops->history_range(st, "h", 0, 10, 1 << 20, &a, &sl), SC_ENOTFOUND);
  sc_txn_free(tx);
  sc_store_close(st);
  sc_arena_free(&a);
  th_rmdir(dir);
  return 0;
}
