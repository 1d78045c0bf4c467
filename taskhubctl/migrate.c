/*
 * taskhubctl migrate: a RocksDB task hub copied into PostgreSQL.
 *
 * Everything goes through the backends' own interface (sidecar/store/store.h): committed reads on the source and
 * change sets applied on the target, made of the same changes the engine makes (records, payloads, histories with
 * their generation, inboxes, timers, queued activities). The copy therefore holds what taskhubd itself would
 * have written, and nothing here depends on either store's layout.
 *
 * What keeps it safe:
 *  - The source is only read, and RocksDB's lock refuses it while a taskhubd has it open.
 *  - The target is opened exclusively (every partition taken), so no replica writes to it meanwhile, and it must
 *    hold nothing: a copy is never merged into a task hub in use. A copy that stopped half-way is refused the
 *    same way on the next run, with the hint to empty the database first, rather than merged with a second one.
 *  - Sequence numbers go on from the source's counter, so the target never hands out one the source used.
 *  - Afterwards every instance is read back from the target and compared with the source (the packed records
 *    byte for byte), as are the counts of everything copied; any difference fails the run.
 */
#include "migrate.h"

#include "ctl.h"

#include "common/arena.h"
#include "common/log.h"
#include "common/util.h"
#include "config.h"
#include "store/rocksdb/keys.h"
#include "store/store.h"

#include <rocksdb/c.h>

#include <errno.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* A change set holds --batch instances or about this many bytes, whichever comes first (an instance is never
 * split, so one large instance goes alone), so that neither side holds much more than one set in memory. */
#define SET_BYTES (16u << 20)
/* Timers and queued activities are small: this many per change set. */
#define QUEUE_SET 1000
/* PostgreSQL must be up: an operator runs this by hand and is better told at once than after a wait (taskhubd
 * waits because it may start beside its database). The partitions are waited for: a replica killed without
 * handing them over holds them until its lease runs out (15 s by default), so the wait covers that and more. */
#define CONNECT_WAIT_S 0
#define PARTITIONS_WAIT_S 45
#define LEASE_MS 15000
#define VERIFY_PAGE 1000

#define PARTIAL_HINT                                                                                             \
  "the target holds part of the copy: empty it (drop the database and create it again) before running migrate " \
  "again; the source is unchanged"

static volatile sig_atomic_t g_interrupted;
static int64_t g_give_up_us = INT64_MAX;

static void on_signal(int sig)
{
  (void)sig;
  g_interrupted = 1;
}

/* Asked by the PostgreSQL store while it waits for the server or for the partitions. */
static bool stop_waiting(void)
{
  return g_interrupted || sc_mono_us() > g_give_up_us;
}

struct mig {
  const struct ctl_migrate_opts *o;
  struct ctl_migrate_result *r;
  struct sc_store *src, *dst;
  uint64_t next_seq;
  /* The pending change set; what it points to lives in |a| (or in the current query page). */
  struct sc_change *v;
  size_t n, cap, bytes;
  struct sc_arena a;
  int ex; /* set by scan callbacks, which can only return a store status */
  int64_t t0_us, last_progress_us;
  struct counts {
    uint64_t instances, history_events, inbox_messages, payloads, timers, activities, entities;
  } seen; /* what the verification read back from the target */
};

__attribute__((format(printf, 3, 4))) static int fail(struct ctl_migrate_result *r, int code, const char *fmt, ...)
{
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(r->msg, sizeof r->msg, fmt, ap);
  va_end(ap);
  return code;
}

static int read_failed(struct mig *m, const char *what, const char *iid, int rc)
{
  return fail(m->r, CTL_EXIT_FAILED, "reading the source failed: %s of instance '%s': %s (details above)", what, iid,
              sc_status_name(rc));
}

static void progress(struct mig *m, const char *phase, bool always)
{
  if (!m->o->progress)
    return;
  int64_t now = sc_mono_us();
  if (!always && now - m->last_progress_us < 1000000)
    return;
  m->last_progress_us = now;
  const struct ctl_migrate_result *r = m->r;
  fprintf(stderr,
          "taskhubctl migrate: %s: %llu instances, %llu history events, %llu inbox messages, %llu timers, "
          "%llu activities (%.1f s)\n",
          phase, (unsigned long long)r->instances, (unsigned long long)r->history_events,
          (unsigned long long)r->inbox_messages, (unsigned long long)r->timers, (unsigned long long)r->activities,
          (double)(now - m->t0_us) / 1e6);
}

/* ------------------------------------------------------------------ opening */

/*
 * Checks |spec| exactly as taskhubd checks --store (sidecar/config.c: the rocksdb: prefix, the PostgreSQL URI or
 * conninfo syntax, no password inside it), by running taskhubd's own option parser on it. Its messages name
 * --store; they are shown under |flag|.
 */
static int parse_store(const char *flag, const char *spec, struct sc_config *cfg, struct ctl_migrate_result *r)
{
  if (!spec || !*spec)
    return fail(r, CTL_EXIT_USAGE, "migrate needs %s", flag);
  char *argv[] = {(char *)"taskhubctl", (char *)"--store", (char *)spec, NULL};
  char *text = NULL;
  size_t len = 0;
  FILE *f = open_memstream(&text, &len);
  if (!f)
    return fail(r, CTL_EXIT_FAILED, "out of memory");
  int rc = sc_config_parse(cfg, 3, argv, f, f);
  fclose(f);
  if (rc != 0) {
    const char *m = text ? text : "";
    if (strncmp(m, "taskhubd: ", 10) == 0)
      m += 10;
    int n = (int)strcspn(m, "\n");
    if (strncmp(m, "--store", 7) == 0)
      fail(r, CTL_EXIT_USAGE, "%s%.*s", flag, n - 7, m + 7);
    else
      fail(r, CTL_EXIT_USAGE, "%s: %.*s", flag, n, m);
  }
  free(text);
  return rc != 0 ? CTL_EXIT_USAGE : CTL_EXIT_OK;
}

/*
 * sc_store_open_rocksdb creates a store where there is none; a mistyped --from must not turn into an empty task
 * hub copied into PostgreSQL. So the directory must already hold a RocksDB database with taskhubd's instance
 * column family; listing the column families reads the database's manifest without opening it.
 */
static int check_source(const char *dir, struct ctl_migrate_result *r)
{
  struct stat st;
  if (stat(dir, &st) != 0)
    return fail(r, CTL_EXIT_USAGE, "--from: %s: %s", dir, strerror(errno));
  if (!S_ISDIR(st.st_mode))
    return fail(r, CTL_EXIT_USAGE, "--from: %s is not a directory", dir);
  rocksdb_options_t *opts = rocksdb_options_create();
  char *rerr = NULL;
  size_t n = 0;
  char **cfs = rocksdb_list_column_families(opts, dir, &n, &rerr);
  rocksdb_options_destroy(opts);
  bool hub = false;
  for (size_t i = 0; cfs && i < n; i++)
    hub = hub || strcmp(cfs[i], sc_cf_names[SC_CF_INST]) == 0;
  if (cfs)
    rocksdb_list_column_families_destroy(cfs, n);
  if (rerr) {
    rocksdb_free(rerr);
    return fail(r, CTL_EXIT_USAGE, "--from: %s is not a task hub (no RocksDB database in it)", dir);
  }
  if (!hub)
    return fail(r, CTL_EXIT_USAGE, "--from: %s holds a RocksDB database that is not a taskhubd task hub", dir);
  return CTL_EXIT_OK;
}

static int open_source(const char *dir, struct sc_store **out, struct ctl_migrate_result *r)
{
  struct sc_err err = {0};
  int rc = sc_store_open_rocksdb(dir, out, &err);
  if (rc == SC_OK)
    return CTL_EXIT_OK;
  /* RocksDB's lock file: only one process opens a database, and taskhubd keeps its own open while it runs. */
  if (strstr(err.msg, "/LOCK"))
    return fail(r, CTL_EXIT_STATE,
                "the source %s is in use: stop taskhubd first (migrate copies a stopped task hub) [%s]", dir,
                err.msg);
  return fail(r, CTL_EXIT_FAILED, "cannot open the source: %s", err.msg);
}

static int open_target(const char *conninfo, struct sc_store **out, struct ctl_migrate_result *r)
{
  char host[200] = "";
  if (gethostname(host, sizeof host - 1) != 0 || !host[0])
    snprintf(host, sizeof host, "localhost");
  char owner[256];
  snprintf(owner, sizeof owner, "taskhubctl-migrate@%s", host);
  struct sc_pg_options po = {.conninfo = conninfo,
                             .wait_s = CONNECT_WAIT_S,
                             .owner = owner,
                             .lease_ms = LEASE_MS,
                             .stop = stop_waiting,
                             .exclusive = true};
  /* Creating the tables (CREATE TABLE IF NOT EXISTS on a database that has them) makes PostgreSQL send notices,
   * which libpq prints on stderr; they would only puzzle whoever runs migrate. A client_min_messages of the
   * user's own, given after this one, still wins. */
  const char *user_opts = getenv("PGOPTIONS");
  char pgoptions[2048];
  snprintf(pgoptions, sizeof pgoptions, "-c client_min_messages=warning%s%s", user_opts ? " " : "",
           user_opts ? user_opts : "");
  setenv("PGOPTIONS", pgoptions, 1);
  g_give_up_us = sc_mono_us() + (int64_t)(CONNECT_WAIT_S + PARTITIONS_WAIT_S) * 1000000;
  struct sc_err err = {0};
  int rc = sc_store_open_postgres(&po, out, &err);
  g_give_up_us = INT64_MAX; /* from here on only an interrupt stops a wait */
  switch (rc) {
  case SC_OK: return CTL_EXIT_OK;
  case SC_ECANCELLED:
    if (g_interrupted)
      return fail(r, CTL_EXIT_FAILED, "interrupted while opening the target; nothing was copied");
    return fail(r, CTL_EXIT_STATE,
                "the target is in use: a taskhubd replica still holds its partitions after %d s (%s); stop every "
                "replica using this database, then run migrate again",
                PARTITIONS_WAIT_S, err.msg);
  case SC_EIO: return fail(r, CTL_EXIT_UNAVAIL, "cannot open the target: %s", err.msg);
  default: return fail(r, CTL_EXIT_FAILED, "cannot open the target: %s", err.msg);
  }
}

static int found_timer(const struct sc_timer_row *row, void *ctx)
{
  (void)row;
  *(bool *)ctx = true;
  return 1; /* enough: stops the scan */
}

static int found_seq(uint64_t seq, void *ctx)
{
  (void)seq;
  *(bool *)ctx = true;
  return 1;
}

static int check_target_empty(struct mig *m)
{
  static const char hint[] =
      "migrate copies into an empty task hub only. If an earlier migrate stopped half-way, drop the database and "
      "create it again, then run migrate again (the source is unchanged)";
  struct sc_arena a;
  sc_arena_init(&a);
  struct sc_query q = {.index = SC_Q_CREATED, .page_size = 1};
  struct sc_query_page page;
  struct sc_err err = {0};
  int rc = m->dst->ops->query(m->dst, &q, &a, &page, &err);
  int ex = CTL_EXIT_OK;
  if (rc != SC_OK)
    ex = fail(m->r, CTL_EXIT_FAILED, "reading the target failed: %s", err.msg);
  else if (page.n > 0)
    ex = fail(m->r, CTL_EXIT_STATE, "the target is not empty: it holds instances (such as '%s'). %s",
              page.rows[0].iid, hint);
  if (ex == CTL_EXIT_OK) {
    struct sc_entity_query eq = {.include_transient = true, .page_size = 1};
    struct sc_entity_page ep;
    if ((rc = m->dst->ops->query_entities(m->dst, &eq, &a, &ep, &err)) != SC_OK)
      ex = fail(m->r, CTL_EXIT_FAILED, "reading the target failed: %s", err.msg);
    else if (ep.n > 0)
      ex = fail(m->r, CTL_EXIT_STATE, "the target is not empty: it holds entities (such as '%s'). %s", ep.rows[0].id,
                hint);
  }
  sc_arena_free(&a);
  if (ex != CTL_EXIT_OK)
    return ex;
  bool timer = false, activity = false;
  rc = m->dst->ops->timer_scan(m->dst, -1, found_timer, &timer);
  if (rc < 0)
    return fail(m->r, CTL_EXIT_FAILED, "reading the target's timers failed: %s", sc_status_name(rc));
  rc = m->dst->ops->actq_scan(m->dst, -1, found_seq, &activity);
  if (rc < 0)
    return fail(m->r, CTL_EXIT_FAILED, "reading the target's activities failed: %s", sc_status_name(rc));
  if (timer || activity)
    return fail(m->r, CTL_EXIT_STATE, "the target is not empty: it holds %s. %s",
                timer ? "timers" : "queued activities", hint);
  return CTL_EXIT_OK;
}

/* ------------------------------------------------------------------ copying */

static struct sc_change *push(struct mig *m, enum sc_change_kind kind, const char *iid)
{
  if (m->n == m->cap) {
    size_t cap = m->cap ? 2 * m->cap : 1024;
    struct sc_change *v = realloc(m->v, cap * sizeof *v);
    if (!v)
      sc_panic("out of memory");
    m->v = v;
    m->cap = cap;
  }
  struct sc_change *c = &m->v[m->n++];
  memset(c, 0, sizeof *c);
  c->kind = kind;
  c->iid = iid;
  return c;
}

static struct sc_blob pack(struct sc_arena *a, const ProtobufCMessage *msg)
{
  size_t n = protobuf_c_message_get_packed_size(msg);
  uint8_t *b = sc_arena_alloc(a, n ? n : 1);
  protobuf_c_message_pack(msg, b);
  return (struct sc_blob){b, n};
}

/* Applies the pending change set, synced, carrying the sequence counter (|force|: even when it is empty). */
static int flush(struct mig *m, bool force)
{
  if (m->n == 0 && !force)
    return CTL_EXIT_OK;
  struct sc_changes cs = {m->v, m->n, m->next_seq};
  struct sc_err err = {0};
  int rc = m->dst->ops->apply(m->dst, &cs, true, &err);
  m->n = 0;
  m->bytes = 0;
  sc_arena_reset(&m->a);
  if (rc != SC_OK)
    return fail(m->r, CTL_EXIT_FAILED, "writing to the target failed: %s; " PARTIAL_HINT, err.msg);
  if (g_interrupted)
    return fail(m->r, CTL_EXIT_FAILED, "interrupted; " PARTIAL_HINT);
  progress(m, "copying", false);
  return CTL_EXIT_OK;
}

/* The messages waiting for |iid| (an instance's inbox, an entity's queue), put as they are. */
static int copy_inbox(struct mig *m, const char *iid, const char *what)
{
  struct sc_inbox_blob *msgs;
  size_t n;
  int rc = m->src->ops->inbox_load(m->src, iid, &m->a, &msgs, &n);
  if (rc != SC_OK)
    return read_failed(m, what, iid, rc);
  for (size_t i = 0; i < n; i++) {
    struct sc_change *c = push(m, SC_CH_INBOX_PUT, iid);
    c->band = msgs[i].band;
    c->seq = msgs[i].seq;
    c->val = msgs[i].msg.b;
    c->len = msgs[i].msg.len;
    m->bytes += msgs[i].msg.len;
  }
  m->r->inbox_messages += n;
  return CTL_EXIT_OK;
}

static int copy_instance(struct mig *m, const char *iid)
{
  struct sc_store *s = m->src;
  struct sc_arena *a = &m->a;
  struct sc_blob rec;
  int rc = s->ops->get_instance(s, iid, a, &rec);
  if (rc != SC_OK)
    return read_failed(m, "the record", iid, rc);
  StoredInstance *dec;
  if ((rc = sc_store_unpack(&taskhubd__store__stored_instance__descriptor, &rec, a, (void **)&dec)) != SC_OK)
    return read_failed(m, "the record", iid, rc);
  /* old = NULL: a new instance, so the target writes its index entries from the record. */
  struct sc_change *c = push(m, SC_CH_PUT_INSTANCE, iid);
  c->rec = dec;
  c->val = rec.b;
  c->len = rec.len;
  m->bytes += rec.len;

  for (int kind = SC_PAYLOAD_INPUT; kind <= SC_PAYLOAD_CUSTOM_STATUS; kind++) {
    char *data;
    size_t len;
    rc = s->ops->get_payload(s, iid, kind, a, &data, &len);
    if (rc == SC_ENOTFOUND)
      continue;
    if (rc != SC_OK)
      return read_failed(m, "a payload", iid, rc);
    c = push(m, SC_CH_PUT_PAYLOAD, iid);
    c->band = kind;
    c->val = (const uint8_t *)data;
    c->len = len;
    m->bytes += len;
    m->r->payloads++;
  }

  /* The history's generation (StreamInstanceHistory compares it to notice a replaced history) is not a payload
   * of the interface: only a history clear sets it. So a clear to that generation comes first, then the events. */
  struct sc_history_slice gen;
  if ((rc = s->ops->history_range(s, iid, 0, 0, 0, a, &gen)) != SC_OK)
    return read_failed(m, "the history generation", iid, rc);
  if (gen.generation) {
    c = push(m, SC_CH_HISTORY_CLEAR, iid);
    c->seq = gen.generation;
    c->index = 0; /* it held no events on the target */
  }
  struct sc_blob *ev;
  size_t n;
  if ((rc = s->ops->history_load(s, iid, a, &ev, &n)) != SC_OK)
    return read_failed(m, "the history", iid, rc);
  for (size_t i = 0; i < n; i++) {
    c = push(m, SC_CH_HISTORY_APPEND, iid);
    c->index = (uint32_t)i;
    c->val = ev[i].b;
    c->len = ev[i].len;
    m->bytes += ev[i].len;
  }
  m->r->history_events += n;

  int ex = copy_inbox(m, iid, "the inbox");
  if (ex == CTL_EXIT_OK)
    m->r->instances++;
  return ex;
}

/*
 * Calls |fn| for every instance of |s| (by creation time, then id), a page at a time; |page_done| after each
 * page. A query without filters examines only what it returns, so the page size alone bounds a page.
 */
static int each_instance(struct mig *m, struct sc_store *s, size_t page_size, int (*fn)(struct mig *, const char *),
                         int (*page_done)(struct mig *))
{
  unsigned char cursor[SC_CURSOR_MAX];
  size_t cursor_len = 0;
  bool first = true;
  struct sc_arena qa;
  sc_arena_init(&qa);
  int ex = CTL_EXIT_OK;
  for (;;) {
    struct sc_query q = {.index = SC_Q_CREATED,
                         .page_size = page_size,
                         .max_scan = SIZE_MAX,
                         .cursor = first ? NULL : cursor,
                         .cursor_len = cursor_len};
    struct sc_query_page page;
    struct sc_err err = {0};
    int rc = s->ops->query(s, &q, &qa, &page, &err);
    if (rc != SC_OK) {
      ex = fail(m->r, CTL_EXIT_FAILED, "listing the instances of the %s failed: %s",
                s == m->src ? "source" : "target", err.msg[0] ? err.msg : sc_status_name(rc));
      break;
    }
    for (size_t i = 0; ex == CTL_EXIT_OK && i < page.n; i++)
      ex = fn(m, page.rows[i].iid);
    if (ex == CTL_EXIT_OK && page_done)
      ex = page_done(m);
    if (ex != CTL_EXIT_OK || !page.next_cursor)
      break;
    if (page.next_cursor_len > sizeof cursor) {
      ex = fail(m->r, CTL_EXIT_FAILED, "a query cursor of %zu bytes: the store is corrupt", page.next_cursor_len);
      break;
    }
    memcpy(cursor, page.next_cursor, page.next_cursor_len);
    cursor_len = page.next_cursor_len;
    first = false;
    sc_arena_reset(&qa);
  }
  sc_arena_free(&qa);
  return ex;
}

static int copy_one(struct mig *m, const char *iid)
{
  int ex = copy_instance(m, iid);
  return ex == CTL_EXIT_OK && m->bytes >= SET_BYTES ? flush(m, false) : ex;
}

static int copy_page_done(struct mig *m)
{
  return flush(m, false);
}

static int copy_timer(const struct sc_timer_row *row, void *ctx)
{
  struct mig *m = ctx;
  /* The row lives only until this returns: everything the change set needs is copied into its arena. */
  struct sc_blob b = pack(&m->a, &row->timer->base);
  struct sc_change *c = push(m, SC_CH_TIMER_PUT, sc_arena_strdup(&m->a, row->timer->instance_id));
  c->due_us = row->due_us;
  c->seq = row->seq;
  c->val = b.b;
  c->len = b.len;
  m->bytes += b.len;
  m->r->timers++;
  if (m->n >= QUEUE_SET && (m->ex = flush(m, false)) != CTL_EXIT_OK)
    return SC_ECANCELLED;
  return SC_OK;
}

static const char *activity_iid(const StoredActivity *act)
{
  if (act->request && act->request->orchestrationinstance && act->request->orchestrationinstance->instanceid)
    return act->request->orchestrationinstance->instanceid;
  return "";
}

static int copy_activity(uint64_t seq, void *ctx)
{
  struct mig *m = ctx;
  StoredActivity *act;
  int rc = m->src->ops->actq_get(m->src, seq, &m->a, &act);
  if (rc != SC_OK) {
    m->ex = fail(m->r, CTL_EXIT_FAILED, "reading the source failed: queued activity %llu: %s",
                 (unsigned long long)seq, sc_status_name(rc));
    return rc;
  }
  struct sc_blob b = pack(&m->a, &act->base);
  struct sc_change *c = push(m, SC_CH_ACTQ_PUT, activity_iid(act));
  c->seq = seq;
  c->val = b.b;
  c->len = b.len;
  m->bytes += b.len;
  m->r->activities++;
  if (m->n >= QUEUE_SET && (m->ex = flush(m, false)) != CTL_EXIT_OK)
    return SC_ECANCELLED;
  return SC_OK;
}

/* Calls |fn| for every entity record of |s| (in id order), a page at a time, with |page_done| after each page. */
static int each_entity(struct mig *m, struct sc_store *s, size_t page_size, int (*fn)(struct mig *, const char *),
                       int (*page_done)(struct mig *))
{
  char after[SC_MAX_ID + 1] = "";
  struct sc_arena qa;
  sc_arena_init(&qa);
  int ex = CTL_EXIT_OK;
  for (;;) {
    struct sc_entity_query q = {.after = after[0] ? after : NULL, .include_transient = true,
                                .page_size = page_size, .max_scan = SIZE_MAX};
    struct sc_entity_page page;
    struct sc_err err = {0};
    int rc = s->ops->query_entities(s, &q, &qa, &page, &err);
    if (rc != SC_OK) {
      ex = fail(m->r, CTL_EXIT_FAILED, "listing the entities of the %s failed: %s",
                s == m->src ? "source" : "target", err.msg[0] ? err.msg : sc_status_name(rc));
      break;
    }
    for (size_t i = 0; ex == CTL_EXIT_OK && i < page.n; i++)
      ex = fn(m, page.rows[i].id);
    if (ex == CTL_EXIT_OK && page_done)
      ex = page_done(m);
    if (ex != CTL_EXIT_OK || !page.next_after)
      break;
    snprintf(after, sizeof after, "%s", page.next_after);
    sc_arena_reset(&qa);
  }
  sc_arena_free(&qa);
  return ex;
}

/* An entity: its record, and its queue (the inbox of its id). */
static int copy_entity(struct mig *m, const char *id)
{
  struct sc_store *s = m->src;
  struct sc_arena *a = &m->a;
  const char *iid = sc_arena_strdup(a, id);
  struct sc_blob rec;
  int rc = s->ops->get_entity(s, iid, a, &rec);
  if (rc != SC_OK)
    return read_failed(m, "the entity record", iid, rc);
  StoredEntity *dec;
  if ((rc = sc_store_unpack(&taskhubd__store__stored_entity__descriptor, &rec, a, (void **)&dec)) != SC_OK)
    return read_failed(m, "the entity record", iid, rc);
  struct sc_change *c = push(m, SC_CH_PUT_ENTITY, iid);
  c->ent = dec;
  c->val = rec.b;
  c->len = rec.len;
  m->bytes += rec.len;
  int ex = copy_inbox(m, iid, "the entity's queue");
  if (ex != CTL_EXIT_OK)
    return ex;
  m->r->entities++;
  return m->bytes >= SET_BYTES ? flush(m, false) : CTL_EXIT_OK;
}

static int copy_all(struct mig *m)
{
  int ex = each_instance(m, m->src, (size_t)m->o->batch, copy_one, copy_page_done);
  if (ex == CTL_EXIT_OK)
    ex = each_entity(m, m->src, (size_t)m->o->batch, copy_entity, copy_page_done);
  if (ex != CTL_EXIT_OK)
    return ex;
  m->ex = CTL_EXIT_OK;
  int rc = m->src->ops->timer_scan(m->src, -1, copy_timer, m);
  if (m->ex != CTL_EXIT_OK)
    return m->ex;
  if (rc != SC_OK)
    return fail(m->r, CTL_EXIT_FAILED, "reading the source's timers failed: %s", sc_status_name(rc));
  rc = m->src->ops->actq_scan(m->src, -1, copy_activity, m);
  if (m->ex != CTL_EXIT_OK)
    return m->ex;
  if (rc != SC_OK)
    return fail(m->r, CTL_EXIT_FAILED, "reading the source's activities failed: %s", sc_status_name(rc));
  /* The last set goes even when empty: it carries the sequence counter of a task hub with nothing in it. */
  return flush(m, true);
}

/* ------------------------------------------------------------------ verifying */

static bool blob_eq(const void *a, size_t alen, const void *b, size_t blen)
{
  return alen == blen && (alen == 0 || memcmp(a, b, alen) == 0);
}

static int count_target_instance(struct mig *m, const char *iid)
{
  (void)iid;
  m->seen.instances++;
  return CTL_EXIT_OK;
}

static int differs(struct mig *m, const char *iid, const char *what)
{
  return fail(m->r, CTL_EXIT_FAILED, "verification failed: instance '%s': %s differs between source and target",
              iid, what);
}

/* One source instance against the target: record, payloads, history generation and events, inbox. */
static int compare_instance(struct mig *m, const char *iid)
{
  struct sc_store *s = m->src, *d = m->dst;
  struct sc_arena *a = &m->a;
  sc_arena_reset(a);
  if (g_interrupted)
    return fail(m->r, CTL_EXIT_FAILED, "interrupted while verifying: the copy is complete but was not verified");
  struct sc_blob sr, dr;
  int rc = s->ops->get_instance(s, iid, a, &sr);
  if (rc != SC_OK)
    return read_failed(m, "the record", iid, rc);
  rc = d->ops->get_instance(d, iid, a, &dr);
  if (rc == SC_ENOTFOUND)
    return fail(m->r, CTL_EXIT_FAILED, "verification failed: instance '%s' is missing on the target", iid);
  if (rc != SC_OK || !blob_eq(sr.b, sr.len, dr.b, dr.len))
    return differs(m, iid, "the record");

  for (int kind = SC_PAYLOAD_INPUT; kind <= SC_PAYLOAD_CUSTOM_STATUS; kind++) {
    char *sp = NULL, *dp = NULL;
    size_t sl = 0, dl = 0;
    int src_rc = s->ops->get_payload(s, iid, kind, a, &sp, &sl);
    int dst_rc = d->ops->get_payload(d, iid, kind, a, &dp, &dl);
    if (src_rc != dst_rc || (src_rc == SC_OK && !blob_eq(sp, sl, dp, dl)))
      return differs(m, iid, kind == SC_PAYLOAD_INPUT ? "the input" : kind == SC_PAYLOAD_OUTPUT ? "the output"
                                                                                               : "the custom status");
    m->seen.payloads += dst_rc == SC_OK;
  }

  struct sc_history_slice sg, dg;
  if (s->ops->history_range(s, iid, 0, 0, 0, a, &sg) != SC_OK ||
      d->ops->history_range(d, iid, 0, 0, 0, a, &dg) != SC_OK || sg.generation != dg.generation)
    return differs(m, iid, "the history generation");

  struct sc_blob *se, *de;
  size_t sn, dn;
  if (s->ops->history_load(s, iid, a, &se, &sn) != SC_OK || d->ops->history_load(d, iid, a, &de, &dn) != SC_OK ||
      sn != dn)
    return differs(m, iid, "the history");
  for (size_t i = 0; i < sn; i++)
    if (!blob_eq(se[i].b, se[i].len, de[i].b, de[i].len))
      return differs(m, iid, "the history");
  m->seen.history_events += dn;

  struct sc_inbox_blob *si, *di;
  if (s->ops->inbox_load(s, iid, a, &si, &sn) != SC_OK || d->ops->inbox_load(d, iid, a, &di, &dn) != SC_OK ||
      sn != dn)
    return differs(m, iid, "the inbox");
  for (size_t i = 0; i < sn; i++)
    if (si[i].band != di[i].band || si[i].seq != di[i].seq ||
        !blob_eq(si[i].msg.b, si[i].msg.len, di[i].msg.b, di[i].msg.len))
      return differs(m, iid, "the inbox");
  m->seen.inbox_messages += dn;
  return CTL_EXIT_OK;
}

/* Timers are compared by key and by a hash of their encoding: the target's are listed first, then the source's
 * are matched against them in order (both scans go by due time, then sequence number). */
struct timer_key {
  int64_t due_us;
  uint64_t seq;
  uint64_t hash;
};

struct timer_list {
  struct timer_key *v;
  size_t n, cap, next;
  bool mismatch;
};

static uint64_t fnv1a(const uint8_t *b, size_t n)
{
  uint64_t h = 14695981039346656037ULL;
  for (size_t i = 0; i < n; i++)
    h = (h ^ b[i]) * 1099511628211ULL;
  return h;
}

static struct timer_key timer_key(const struct sc_timer_row *row)
{
  struct sc_arena a;
  sc_arena_init(&a);
  struct sc_blob b = pack(&a, &row->timer->base);
  struct timer_key k = {row->due_us, row->seq, fnv1a(b.b, b.len)};
  sc_arena_free(&a);
  return k;
}

static int list_timer(const struct sc_timer_row *row, void *ctx)
{
  struct timer_list *l = ctx;
  if (l->n == l->cap) {
    l->cap = l->cap ? 2 * l->cap : 256;
    l->v = realloc(l->v, l->cap * sizeof *l->v);
    if (!l->v)
      sc_panic("out of memory");
  }
  l->v[l->n++] = timer_key(row);
  return SC_OK;
}

static int match_timer(const struct sc_timer_row *row, void *ctx)
{
  struct timer_list *l = ctx;
  struct timer_key k = timer_key(row);
  if (l->next >= l->n || l->v[l->next].due_us != k.due_us || l->v[l->next].seq != k.seq ||
      l->v[l->next].hash != k.hash) {
    l->mismatch = true;
    return 1;
  }
  l->next++;
  return SC_OK;
}

struct seq_list {
  uint64_t *v;
  size_t n, cap;
};

static int list_seq(uint64_t seq, void *ctx)
{
  struct seq_list *l = ctx;
  if (l->n == l->cap) {
    l->cap = l->cap ? 2 * l->cap : 256;
    l->v = realloc(l->v, l->cap * sizeof *l->v);
    if (!l->v)
      sc_panic("out of memory");
  }
  l->v[l->n++] = seq;
  return SC_OK;
}

static int verify_queues(struct mig *m)
{
  struct timer_list tl = {0};
  int rc = m->dst->ops->timer_scan(m->dst, -1, list_timer, &tl);
  if (rc == SC_OK)
    rc = m->src->ops->timer_scan(m->src, -1, match_timer, &tl);
  m->seen.timers = tl.n;
  bool ok = rc == SC_OK && !tl.mismatch && tl.next == tl.n && tl.n == m->r->timers;
  free(tl.v);
  if (!ok)
    return fail(m->r, CTL_EXIT_FAILED,
                "verification failed: the timers differ between source and target (%llu copied, %llu on the target)",
                (unsigned long long)m->r->timers, (unsigned long long)m->seen.timers);

  struct seq_list src = {0}, dst = {0};
  rc = m->src->ops->actq_scan(m->src, -1, list_seq, &src);
  if (rc == SC_OK)
    rc = m->dst->ops->actq_scan(m->dst, -1, list_seq, &dst);
  m->seen.activities = dst.n;
  ok = rc == SC_OK && src.n == dst.n && dst.n == m->r->activities;
  for (size_t i = 0; ok && i < src.n; i++) {
    sc_arena_reset(&m->a);
    StoredActivity *sa, *da;
    ok = src.v[i] == dst.v[i] && m->src->ops->actq_get(m->src, src.v[i], &m->a, &sa) == SC_OK &&
         m->dst->ops->actq_get(m->dst, dst.v[i], &m->a, &da) == SC_OK;
    if (ok) {
      struct sc_blob sb = pack(&m->a, &sa->base), db = pack(&m->a, &da->base);
      ok = blob_eq(sb.b, sb.len, db.b, db.len);
    }
  }
  free(src.v);
  free(dst.v);
  if (!ok)
    return fail(m->r, CTL_EXIT_FAILED,
                "verification failed: the queued activities differ between source and target (%llu copied, %llu "
                "on the target)",
                (unsigned long long)m->r->activities, (unsigned long long)m->seen.activities);
  return CTL_EXIT_OK;
}

static int count_target_entity(struct mig *m, const char *id)
{
  (void)id;
  m->seen.entities++;
  return CTL_EXIT_OK;
}

/* One source entity against the target: record and queue, byte for byte. */
static int compare_entity(struct mig *m, const char *id)
{
  struct sc_store *s = m->src, *d = m->dst;
  struct sc_arena *a = &m->a;
  sc_arena_reset(a);
  struct sc_blob sr, dr;
  if (s->ops->get_entity(s, id, a, &sr) != SC_OK || d->ops->get_entity(d, id, a, &dr) != SC_OK ||
      !blob_eq(sr.b, sr.len, dr.b, dr.len))
    return differs(m, id, "the entity record");
  struct sc_inbox_blob *si, *di;
  size_t sn, dn;
  if (s->ops->inbox_load(s, id, a, &si, &sn) != SC_OK || d->ops->inbox_load(d, id, a, &di, &dn) != SC_OK ||
      sn != dn)
    return differs(m, id, "the entity's queue");
  for (size_t i = 0; i < sn; i++)
    if (si[i].band != di[i].band || si[i].seq != di[i].seq ||
        !blob_eq(si[i].msg.b, si[i].msg.len, di[i].msg.b, di[i].msg.len))
      return differs(m, id, "the entity's queue");
  m->seen.inbox_messages += dn;
  return CTL_EXIT_OK;
}

static int verify(struct mig *m)
{
  memset(&m->seen, 0, sizeof m->seen);
  int ex = each_instance(m, m->dst, VERIFY_PAGE, count_target_instance, NULL);
  if (ex != CTL_EXIT_OK)
    return ex;
  if (m->seen.instances != m->r->instances)
    return fail(m->r, CTL_EXIT_FAILED, "verification failed: the target holds %llu instances, %llu were copied",
                (unsigned long long)m->seen.instances, (unsigned long long)m->r->instances);
  m->seen.instances = 0;
  ex = each_instance(m, m->src, VERIFY_PAGE, compare_instance, NULL);
  if (ex == CTL_EXIT_OK)
    ex = each_entity(m, m->dst, VERIFY_PAGE, count_target_entity, NULL);
  if (ex != CTL_EXIT_OK)
    return ex;
  if (m->seen.entities != m->r->entities)
    return fail(m->r, CTL_EXIT_FAILED, "verification failed: the target holds %llu entities, %llu were copied",
                (unsigned long long)m->seen.entities, (unsigned long long)m->r->entities);
  if ((ex = each_entity(m, m->src, VERIFY_PAGE, compare_entity, NULL)) != CTL_EXIT_OK)
    return ex;
  const struct ctl_migrate_result *r = m->r;
  if (m->seen.history_events != r->history_events || m->seen.inbox_messages != r->inbox_messages ||
      m->seen.payloads != r->payloads)
    return fail(m->r, CTL_EXIT_FAILED,
                "verification failed: read back %llu history events, %llu inbox messages and %llu payloads; copied "
                "%llu, %llu and %llu",
                (unsigned long long)m->seen.history_events, (unsigned long long)m->seen.inbox_messages,
                (unsigned long long)m->seen.payloads, (unsigned long long)r->history_events,
                (unsigned long long)r->inbox_messages, (unsigned long long)r->payloads);
  return verify_queues(m);
}

/* ------------------------------------------------------------------ the command */

int ctl_migrate(const struct ctl_migrate_opts *o, struct ctl_migrate_result *r)
{
  memset(r, 0, sizeof *r);
  struct sc_config from, to;
  if (o->from && strncmp(o->from, "rocksdb:", 8) != 0)
    return fail(r, CTL_EXIT_USAGE, "--from must be rocksdb:DIR: migrate copies a RocksDB task hub into PostgreSQL");
  int ex = parse_store("--from", o->from, &from, r);
  if (ex != CTL_EXIT_OK)
    return ex;
  if ((ex = parse_store("--to", o->to, &to, r)) != CTL_EXIT_OK)
    return ex;
  if (!to.store_postgres)
    return fail(r, CTL_EXIT_USAGE, "--to must be a PostgreSQL URI or conninfo (postgresql://... or \"host=... "
                                   "dbname=...\")");
  if (o->batch < 1 || o->batch > CTL_MIGRATE_MAX_BATCH)
    return fail(r, CTL_EXIT_USAGE, "--batch must be from 1 to %d", CTL_MIGRATE_MAX_BATCH);
  if ((ex = check_source(from.data_dir, r)) != CTL_EXIT_OK)
    return ex;

  /* The stores log through the sidecar's logger; routine lines (partitions taken, schema created) are noise here,
   * warnings (still waiting for PostgreSQL or for the partitions) are not. */
  sc_log_level = SC_LOG_WARN;
  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  sa.sa_handler = on_signal;
  sigemptyset(&sa.sa_mask);
  sigaction(SIGINT, &sa, NULL);
  sigaction(SIGTERM, &sa, NULL);

  struct mig m = {.o = o, .r = r};
  sc_arena_init(&m.a);
  m.t0_us = m.last_progress_us = sc_mono_us();
  if ((ex = open_source(from.data_dir, &m.src, r)) != CTL_EXIT_OK)
    goto out;
  if ((ex = open_target(to.store, &m.dst, r)) != CTL_EXIT_OK)
    goto out;
  if ((ex = check_target_empty(&m)) != CTL_EXIT_OK)
    goto out;
  /* The target's counter too, in case it went further (a task hub wiped by DeleteTaskHub keeps its counter). */
  uint64_t src_seq = m.src->ops->seq_start(m.src), dst_seq = m.dst->ops->seq_start(m.dst);
  m.next_seq = src_seq > dst_seq ? src_seq : dst_seq;
  r->next_seq = m.next_seq;

  int64_t t = sc_mono_us();
  m.t0_us = t;
  if (o->progress)
    fprintf(stderr, "taskhubctl migrate: copying %s into PostgreSQL (sequence numbers from %llu)\n", o->from,
            (unsigned long long)m.next_seq);
  ex = copy_all(&m);
  r->copy_s = (double)(sc_mono_us() - t) / 1e6;
  if (ex != CTL_EXIT_OK)
    goto out;
  progress(&m, "copied", true);

  t = sc_mono_us();
  ex = verify(&m);
  r->verify_s = (double)(sc_mono_us() - t) / 1e6;
  if (ex == CTL_EXIT_OK && o->progress)
    fprintf(stderr,
            "taskhubctl migrate: verified: every instance read back from the target equals the source (%.1f s)\n",
            r->verify_s);
out:
  sc_store_close(m.dst); /* hands the partitions over at once */
  sc_store_close(m.src);
  sc_arena_free(&m.a);
  free(m.v);
  return ex;
}
