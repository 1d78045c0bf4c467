/*
 * Connections to PostgreSQL and the binary parameter helpers every file of the backend uses. Each connection
 * prepares every statement when it connects; a connection found broken is reset once, and its statements prepared
 * again, before a statement is given up on.
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

bool sc_pg_prepare(PGconn *c, struct sc_err *err)
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
  return sc_pg_prepare(c->c, err) ? SC_OK : SC_EIO;
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
    if (PQstatus(c->c) != CONNECTION_OK || !sc_pg_prepare(c->c, &err))
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

