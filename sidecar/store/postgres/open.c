/*
 * Connecting to PostgreSQL, the connections, the binary parameter helpers, the wipe, and opening the backend.
 * Each connection prepares every statement when it connects; a connection found broken is reset once, and its
 * statements prepared again, before a statement is given up on.
 */
#include "pg.h"

#include "common/log.h"
#include "common/metrics.h"
#include "common/util.h"

#include <arpa/inet.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

void sc_pg_text(struct sc_pgparams *p, const char *s)
{
  sc_pg_bytes(p, s, strlen(s));
}

void sc_pg_bytes(struct sc_pgparams *p, const void *b, size_t n)
{
  SC_ASSERT(p->n < SC_PG_MAX_PARAMS);
  p->v[p->n] = n ? (const char *)b : "";
  p->len[p->n] = (int)n;
  p->fmt[p->n] = 1;
  p->n++;
}

void sc_pg_i64(struct sc_pgparams *p, int64_t v)
{
  SC_ASSERT(p->n < SC_PG_MAX_PARAMS);
  sc_put_be64(p->num[p->n], (uint64_t)v);
  p->v[p->n] = (const char *)p->num[p->n];
  p->len[p->n] = 8;
  p->fmt[p->n] = 1;
  p->n++;
}

void sc_pg_i32(struct sc_pgparams *p, int32_t v)
{
  SC_ASSERT(p->n < SC_PG_MAX_PARAMS);
  sc_put_be32(p->num[p->n], (uint32_t)v);
  p->v[p->n] = (const char *)p->num[p->n];
  p->len[p->n] = 4;
  p->fmt[p->n] = 1;
  p->n++;
}

void sc_pg_bool(struct sc_pgparams *p, bool v)
{
  SC_ASSERT(p->n < SC_PG_MAX_PARAMS);
  p->num[p->n][0] = v ? 1 : 0; /* binary bool: one byte */
  p->v[p->n] = (const char *)p->num[p->n];
  p->len[p->n] = 1;
  p->fmt[p->n] = 1;
  p->n++;
}

void sc_pg_null(struct sc_pgparams *p)
{
  SC_ASSERT(p->n < SC_PG_MAX_PARAMS);
  p->v[p->n] = NULL;
  p->len[p->n] = 0;
  p->fmt[p->n] = 1;
  p->n++;
}

void sc_pg_parts_init(struct sc_pg_parts *l)
{
  l->n = 0;
  l->a = l->b = 1;
  strcpy(l->parts, "{}");
  strcpy(l->eps, "{}");
}

void sc_pg_parts_add(struct sc_pg_parts *l, int part, int64_t epoch)
{
  const char *sep = l->n++ ? "," : "";
  l->a += (size_t)snprintf(l->parts + l->a, sizeof l->parts - l->a, "%s%d}", sep, part) - 1;
  l->b += (size_t)snprintf(l->eps + l->b, sizeof l->eps - l->b, "%s%lld}", sep, (long long)epoch) - 1;
}

void sc_pg_parts_owned(struct pgstore *s, bool settled, struct sc_pg_parts *l)
{
  sc_pg_parts_init(l);
  for (int p = 0; p < s->partitions; p++) {
    int64_t ep = atomic_load(&s->epoch[p]);
    if (ep && !(settled && atomic_load(&s->releasing[p])))
      sc_pg_parts_add(l, p, ep);
  }
}

int64_t sc_pg_get_i64(const PGresult *r, int row, int col)
{
  return PQgetlength(r, row, col) == 8 ? (int64_t)sc_get_be64((const unsigned char *)PQgetvalue(r, row, col)) : 0;
}

int32_t sc_pg_get_i32(const PGresult *r, int row, int col)
{
  return PQgetlength(r, row, col) == 4 ? (int32_t)sc_get_be32((const unsigned char *)PQgetvalue(r, row, col)) : 0;
}

/* Server notices ("relation already exists, skipping") go to the log as debug lines, not raw to stderr. */
static void notice(void *arg, const char *msg)
{
  (void)arg;
  SC_DEBUG("event=postgres_notice message=%s", SC_Q(msg));
}

PGconn *sc_pg_open(const char *conninfo)
{
  PGconn *c = PQconnectdb(conninfo);
  if (c)
    PQsetNoticeProcessor(c, notice, NULL);
  return c;
}

static bool prepare(PGconn *c, struct sc_err *err)
{
  char name[16];
  for (int i = 0; i < PS_COUNT; i++) {
    snprintf(name, sizeof name, "s%d", i);
    PGresult *r = PQprepare(c, name, sc_pg_sql[i], 0, NULL);
    bool ok = PQresultStatus(r) == PGRES_COMMAND_OK;
    if (!ok)
      sc_err_set(err, SC_EIO, "PostgreSQL: preparing statement %d failed: %s", i, PQresultErrorMessage(r));
    PQclear(r);
    if (!ok)
      return false;
  }
  return true;
}

int sc_pg_connect(struct pgstore *s, struct sc_pgconn *c, struct sc_err *err)
{
  if (c->c)
    PQfinish(c->c);
  c->c = sc_pg_open(s->conninfo);
  if (PQstatus(c->c) != CONNECTION_OK) {
    sc_err_set(err, SC_EIO, "cannot connect to PostgreSQL: %s", PQerrorMessage(c->c));
    PQfinish(c->c);
    c->c = NULL;
    return SC_EIO;
  }
  return prepare(c->c, err) ? SC_OK : SC_EIO;
}

PGresult *sc_pg_exec(struct sc_pgconn *c, enum sc_pg_stmt st, const struct sc_pgparams *p, const char *what)
{
  char name[16];
  snprintf(name, sizeof name, "s%d", (int)st);
  for (int attempt = 0; attempt < 2; attempt++) {
    if (!c->c)
      return NULL;
    PGresult *r = PQexecPrepared(c->c, name, p ? p->n : 0, p ? p->v : NULL, p ? p->len : NULL,
                                 p ? p->fmt : NULL, 1);
    atomic_fetch_add_explicit(&sc_metrics.pg_reads, 1, memory_order_relaxed);
    ExecStatusType rs = PQresultStatus(r);
    if (rs == PGRES_TUPLES_OK || rs == PGRES_COMMAND_OK)
      return r;
    atomic_fetch_add_explicit(&sc_metrics.pg_errors, 1, memory_order_relaxed);
    SC_ERROR("event=store_error op=%s error=%s", what, SC_Q(PQresultErrorMessage(r)));
    PQclear(r);
    if (PQstatus(c->c) != CONNECTION_BAD || attempt > 0)
      return NULL;
    /* The server went away (restart, failover): reconnect once and try again. */
    atomic_fetch_add_explicit(&sc_metrics.pg_reconnects, 1, memory_order_relaxed);
    PQreset(c->c);
    struct sc_err err = {0};
    if (PQstatus(c->c) != CONNECTION_OK || !prepare(c->c, &err))
      return NULL;
  }
  return NULL;
}

struct sc_pgconn *sc_pg_acquire(struct pgstore *s)
{
  pthread_mutex_lock(&s->mu);
  for (;;) {
    for (int i = 0; i < SC_PG_POOL; i++) {
      struct sc_pgconn *c = &s->pool[i];
      if (c->busy)
        continue;
      c->busy = true;
      pthread_mutex_unlock(&s->mu);
      if (!c->c) {
        struct sc_err err = {0};
        if (sc_pg_connect(s, c, &err) != SC_OK) {
          SC_ERROR("event=store_error op=connect error=%s", SC_Q(err.msg));
          sc_pg_release(s, c);
          return NULL;
        }
      }
      return c;
    }
    pthread_cond_wait(&s->cv, &s->mu);
  }
}

void sc_pg_release(struct pgstore *s, struct sc_pgconn *c)
{
  pthread_mutex_lock(&s->mu);
  c->busy = false;
  pthread_cond_signal(&s->cv);
  pthread_mutex_unlock(&s->mu);
}

static void detach(struct sc_store *st);

static void pclose_(struct sc_store *st)
{
  struct pgstore *s = PG(st);
  detach(st);
  if (s->writer.c)
    PQfinish(s->writer.c);
  for (int i = 0; i < SC_PG_POOL; i++)
    if (s->pool[i].c)
      PQfinish(s->pool[i].c);
  pthread_mutex_destroy(&s->mu);
  pthread_cond_destroy(&s->cv);
  free(s->conninfo);
  free(s);
}

/* Blocks of 2^40 from a sequence: each later than every block handed out before, so numbers from a fresh block
 * are above everything any replica used, and replicas never collide. */
static uint64_t seq_start(struct sc_store *st)
{
  struct pgstore *s = PG(st);
  for (int tries = 0;; tries++) {
    PGresult *r = sc_pg_exec(&s->writer, PS_SEQ_BLOCK, NULL, "seq_block");
    if (r && PQntuples(r) == 1) {
      uint64_t block = (uint64_t)sc_pg_get_i64(r, 0, 0);
      PQclear(r);
      uint64_t start = block << 40;
      return start > s->next_seq ? start : s->next_seq;
    }
    if (r)
      PQclear(r);
    if (tries % 50 == 0)
      SC_WARN("event=store_reconnecting op=seq_block");
    /* Nothing can be written without it; PostgreSQL is away (the commits would wait as long). */
    usleep(100000);
    if (!s->writer.c || PQstatus(s->writer.c) != CONNECTION_OK) {
      struct sc_err err = {0};
      sc_pg_connect(s, &s->writer, &err);
    }
  }
}

static int partitions(struct sc_store *st)
{
  return PG(st)->partitions;
}

static void attach(struct sc_store *st, const struct sc_store_events *ev)
{
  struct pgstore *s = PG(st);
  s->ev = ev;
  if (s->exclusive) {
    for (int p = 0; p < s->partitions; p++)
      ev->gained(ev->ctx, p);
    return;
  }
  sc_pg_listen_start(s);
  sc_pg_lease_start(s);
}

static void detach(struct sc_store *st)
{
  struct pgstore *s = PG(st);
  sc_pg_listen_stop(s);
  sc_pg_lease_stop(s);
  s->ev = NULL;
}

int sc_pg_wipe(struct sc_store *st, uint64_t next_seq, struct sc_err *err)
{
  struct pgstore *s = PG(st);
  if (next_seq > s->next_seq)
    s->next_seq = next_seq;
  char sql[256];
  snprintf(sql, sizeof sql,
           "BEGIN; TRUNCATE th_instance, th_payload, th_history, th_inbox, th_timer, th_actq, th_incoming, th_reply, "
           "th_entity; "
           "UPDATE th_meta SET value = %llu WHERE key = 'seq'; COMMIT",
           (unsigned long long)s->next_seq);
  PGresult *r = PQexec(s->writer.c, sql);
  bool ok = PQresultStatus(r) == PGRES_COMMAND_OK;
  if (!ok) {
    sc_err_set(err, SC_EIO, "PostgreSQL: wipe failed: %s", PQresultErrorMessage(r));
    PQclear(PQexec(s->writer.c, "ROLLBACK"));
  }
  PQclear(r);
  return ok ? SC_OK : SC_EIO;
}

static int64_t property(struct sc_store *st, const char *name)
{
  (void)st;
  (void)name;
  return -1;
}

static const struct sc_store_ops pg_ops = {
    .close = pclose_,
    .get_instance = sc_pg_get_instance,
    .get_payload = sc_pg_get_payload,
    .history_load = sc_pg_history_load,
    .history_range = sc_pg_history_range,
    .inbox_load = sc_pg_inbox_load,
    .timer_get = sc_pg_timer_get,
    .actq_get = sc_pg_actq_get,
    .children = sc_pg_children,
    .timer_scan = sc_pg_timer_scan,
    .actq_scan = sc_pg_actq_scan,
    .inbox_scan_instances = sc_pg_inbox_scan_instances,
    .query = sc_pg_query,
    .count_by_status = sc_pg_count_by_status,
    .get_entity = sc_pg_get_entity,
    .count_entities = sc_pg_count_entities,
    .query_entities = sc_pg_query_entities,
    .seq_start = seq_start,
    .apply = sc_pg_apply,
    .wipe = sc_pg_wipe,
    .partitions = partitions,
    .attach = attach,
    .detach = detach,
    .release = sc_pg_release_part,
    .set_workers = sc_pg_set_workers,
    .property = property,
};

int sc_store_open_postgres(const struct sc_pg_options *o, struct sc_store **out, struct sc_err *err)
{
  const char *conninfo = o->conninfo;
  int wait_s = o->wait_s;
  struct pgstore *s = calloc(1, sizeof *s);
  if (!s)
    sc_panic("out of memory opening the store");
  s->base.ops = &pg_ops;
  s->conninfo = strdup(conninfo);
  snprintf(s->owner, sizeof s->owner, "%s", o->owner);
  s->lease_ms = o->lease_ms;
  s->stop = o->stop;
  s->exclusive = o->exclusive;
  pthread_mutex_init(&s->mu, NULL);
  pthread_cond_init(&s->cv, NULL);
  /* PostgreSQL may come up after us (a pod starting beside its database): wait, and say so. */
  int rc = SC_EIO;
  for (int waited = 0;; waited++) {
    s->writer.c = sc_pg_open(conninfo);
    if (PQstatus(s->writer.c) == CONNECTION_OK) {
      rc = SC_OK;
      break;
    }
    sc_err_set(err, SC_EIO, "cannot connect to PostgreSQL: %s", PQerrorMessage(s->writer.c));
    PQfinish(s->writer.c);
    s->writer.c = NULL;
    if (waited >= wait_s)
      break;
    if (s->stop && s->stop()) {
      sc_err_set(err, SC_ECANCELLED, "stopped while waiting for PostgreSQL");
      rc = SC_ECANCELLED;
      break;
    }
    if (waited % 10 == 0)
      SC_WARN("event=store_waiting error=%s", SC_Q(err->msg));
    sleep(1);
  }
  if (rc == SC_OK)
    rc = sc_pg_migrate(s->writer.c, &s->next_seq, &s->partitions, err);
  if (rc == SC_OK && !prepare(s->writer.c, err))
    rc = SC_EIO;
  if (rc == SC_OK && s->partitions > SC_MAX_PARTITIONS) {
    sc_err_set(err, SC_ESTATE, "the task hub has %d partitions; this taskhubd supports at most %d", s->partitions,
               SC_MAX_PARTITIONS);
    rc = SC_ESTATE;
  }
  /* A tool holds every partition before it writes; a replica takes its share once the engine listens. */
  if (rc == SC_OK && s->exclusive && (rc = sc_pg_take_all(s, err)) == SC_OK)
    sc_pg_lease_start(s);
  if (rc != SC_OK) {
    pclose_(&s->base);
    return rc;
  }
  *out = &s->base;
  return SC_OK;
}
