/* Entity records in th_entity (see store.h): paging through them by id, each with its queue's length. */
#include "pg.h"

#include "common/log.h"
#include "common/metrics.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int sc_pg_query_entities(struct sc_store *st, const struct sc_entity_query *q, struct sc_arena *a,
                         struct sc_entity_page *out, struct sc_err *err)
{
  memset(out, 0, sizeof *out);
  struct sc_pgparams p = {0};
  char sql[768];
  size_t o = (size_t)snprintf(sql, sizeof sql,
                              "SELECT e.id, e.rec, (SELECT count(*) FROM th_inbox m WHERE m.iid = e.id) "
                              "FROM th_entity e WHERE true");
  /* Prefix as a range on the primary key: [prefix, prefix's successor). */
  if (q->prefix && q->prefix[0]) {
    sc_pg_text(&p, q->prefix);
    o += (size_t)snprintf(sql + o, sizeof sql - o, " AND e.id >= $%d AND left(e.id, length($%d)) = $%d", p.n, p.n,
                          p.n);
  }
  if (q->after) {
    sc_pg_text(&p, q->after);
    o += (size_t)snprintf(sql + o, sizeof sql - o, " AND e.id > $%d", p.n);
  }
  if (!q->include_transient)
    o += (size_t)snprintf(sql + o, sizeof sql - o, " AND e.has_state");
  if (q->has_from) {
    sc_pg_i64(&p, q->from_us);
    o += (size_t)snprintf(sql + o, sizeof sql - o, " AND e.last_modified_us >= $%d", p.n);
  }
  if (q->has_to) {
    sc_pg_i64(&p, q->to_us);
    o += (size_t)snprintf(sql + o, sizeof sql - o, " AND e.last_modified_us < $%d", p.n);
  }
  snprintf(sql + o, sizeof sql - o, " ORDER BY e.id LIMIT %zu", q->page_size + 1);
  struct sc_pgconn *c = sc_pg_acquire(PG(st));
  PGresult *r = NULL;
  if (c) {
    r = PQexecParams(c->c, sql, p.n, NULL, p.v, p.len, p.fmt, 0);
    atomic_fetch_add_explicit(&sc_metrics.pg_reads, 1, memory_order_relaxed);
    sc_pg_release(PG(st), c);
  }
  if (!r || PQresultStatus(r) != PGRES_TUPLES_OK) {
    atomic_fetch_add_explicit(&sc_metrics.pg_errors, 1, memory_order_relaxed);
    SC_ERROR("event=store_error op=query_entities error=%s", SC_Q(r ? PQresultErrorMessage(r) : "no connection"));
    if (r)
      PQclear(r);
    sc_err_set(err, SC_EIO, "reading entities failed");
    return SC_EIO;
  }
  int rows = PQntuples(r);
  size_t n = (size_t)rows < q->page_size ? (size_t)rows : q->page_size;
  out->rows = sc_arena_alloc(a, (n ? n : 1) * sizeof *out->rows);
  for (size_t i = 0; i < n; i++) {
    struct sc_entity_row *row = &out->rows[i];
    row->id = sc_arena_strndup(a, PQgetvalue(r, (int)i, 0), (size_t)PQgetlength(r, (int)i, 0));
    /* Text results: bytea comes hex-encoded. */
    size_t len = 0;
    unsigned char *raw = PQunescapeBytea((const unsigned char *)PQgetvalue(r, (int)i, 1), &len);
    row->rec.b = sc_arena_alloc(a, len ? len : 1);
    if (raw) {
      memcpy(row->rec.b, raw, len);
      PQfreemem(raw);
    }
    row->rec.len = raw ? len : 0;
    row->backlog = (uint32_t)strtoul(PQgetvalue(r, (int)i, 2), NULL, 10);
    out->n = i + 1;
  }
  if ((size_t)rows > q->page_size && n)
    out->next_after = out->rows[n - 1].id;
  PQclear(r);
  return SC_OK;
}

int sc_pg_count_entities(struct sc_store *st, uint64_t *with_state, uint64_t *transient, uint64_t *queued,
                         struct sc_err *err)
{
  *with_state = *transient = *queued = 0;
  struct sc_pgconn *c = sc_pg_acquire(PG(st));
  PGresult *r = NULL;
  if (c) {
    /* Entity ids start with '@', which no instance id does: their queues are th_inbox rows in ['@', 'A'). */
    r = PQexec(c->c, "SELECT count(*) FILTER (WHERE has_state), count(*) FILTER (WHERE NOT has_state), "
                     "(SELECT count(*) FROM th_inbox WHERE iid >= '@' AND iid < 'A') FROM th_entity");
    atomic_fetch_add_explicit(&sc_metrics.pg_reads, 1, memory_order_relaxed);
    sc_pg_release(PG(st), c);
  }
  if (!r || PQresultStatus(r) != PGRES_TUPLES_OK || PQntuples(r) != 1) {
    atomic_fetch_add_explicit(&sc_metrics.pg_errors, 1, memory_order_relaxed);
    if (r)
      PQclear(r);
    sc_err_set(err, SC_EIO, "counting entities failed");
    return SC_EIO;
  }
  *with_state = strtoull(PQgetvalue(r, 0, 0), NULL, 10);
  *transient = strtoull(PQgetvalue(r, 0, 1), NULL, 10);
  *queued = strtoull(PQgetvalue(r, 0, 2), NULL, 10);
  PQclear(r);
  return SC_OK;
}
