/* Committed reads of the PostgreSQL backend, each one statement (one snapshot) on a pooled connection. */
#include "pg.h"

#include "common/log.h"
#include "common/util.h"

#include <string.h>

/* A copy of a binary value in |a|, NUL-terminated (payloads are handed out as strings). */
static uint8_t *copy(struct sc_arena *a, const PGresult *r, int row, int col, size_t *len)
{
  *len = (size_t)PQgetlength(r, row, col);
  return (uint8_t *)sc_arena_strndup(a, PQgetvalue(r, row, col), *len);
}

/* Runs |st| on a pooled connection; *out is NULL on failure (SC_EIO returned). */
static int query(struct sc_store *s, enum sc_pg_stmt st, const struct sc_pgparams *p, const char *what,
                 PGresult **out)
{
  struct sc_pgconn *c = sc_pg_acquire(PG(s));
  *out = c ? sc_pg_exec(c, st, p, what) : NULL;
  if (c)
    sc_pg_release(PG(s), c);
  return *out ? SC_OK : SC_EIO;
}

/* One row, one bytea column: *b and *len, or SC_ENOTFOUND. */
static int get_one(struct sc_store *s, enum sc_pg_stmt st, const struct sc_pgparams *p, const char *what,
                   struct sc_arena *a, struct sc_blob *out)
{
  PGresult *r;
  int rc = query(s, st, p, what, &r);
  if (rc != SC_OK)
    return rc;
  if (PQntuples(r) == 0) {
    PQclear(r);
    return SC_ENOTFOUND;
  }
  out->b = copy(a, r, 0, 0, &out->len);
  PQclear(r);
  return SC_OK;
}

int sc_pg_get_instance(struct sc_store *s, const char *iid, struct sc_arena *a, struct sc_blob *out)
{
  struct sc_pgparams p = {0};
  sc_pg_text(&p, iid);
  return get_one(s, PS_GET_INSTANCE, &p, "get_instance", a, out);
}

int sc_pg_get_payload(struct sc_store *s, const char *iid, int kind, struct sc_arena *a, char **data, size_t *len)
{
  struct sc_pgparams p = {0};
  sc_pg_text(&p, iid);
  sc_pg_i32(&p, kind);
  struct sc_blob b;
  int rc = get_one(s, PS_GET_PAYLOAD, &p, "get_payload", a, &b);
  if (rc == SC_OK) {
    *data = (char *)b.b;
    *len = b.len;
  }
  return rc;
}

int sc_pg_history_load(struct sc_store *s, const char *iid, struct sc_arena *a, struct sc_blob **out, size_t *n)
{
  struct sc_pgparams p = {0};
  sc_pg_text(&p, iid);
  PGresult *r;
  int rc = query(s, PS_HISTORY_LOAD, &p, "history_load", &r);
  if (rc != SC_OK)
    return rc;
  int rows = PQntuples(r);
  struct sc_blob *evs = sc_arena_alloc(a, (size_t)(rows ? rows : 1) * sizeof *evs);
  for (int i = 0; i < rows; i++) {
    if (sc_pg_get_i32(r, i, 0) != i) {
      SC_ERROR("event=store_corrupt what=history_gap instance=%s index=%d", SC_Q(iid), i);
      PQclear(r);
      return SC_ECORRUPT;
    }
    evs[i].b = copy(a, r, i, 1, &evs[i].len);
  }
  PQclear(r);
  *out = evs;
  *n = (size_t)rows;
  return SC_OK;
}

int sc_pg_history_range(struct sc_store *s, const char *iid, uint32_t from, size_t max_events, size_t max_bytes,
                        struct sc_arena *a, struct sc_history_slice *out)
{
  memset(out, 0, sizeof *out);
  struct sc_pgparams p = {0};
  sc_pg_text(&p, iid);
  sc_pg_i32(&p, (int32_t)from);
  sc_pg_i64(&p, (int64_t)max_events);
  PGresult *r;
  int rc = query(s, PS_HISTORY_RANGE, &p, "history_range", &r);
  if (rc != SC_OK)
    return rc;
  int rows = PQntuples(r);
  out->events = sc_arena_alloc(a, (max_events ? max_events : 1) * sizeof *out->events);
  for (int i = 0; rc == SC_OK && i < rows; i++) {
    int part = sc_pg_get_i32(r, i, 0);
    size_t vl = (size_t)PQgetlength(r, i, 2);
    struct sc_blob b = {(uint8_t *)PQgetvalue(r, i, 2), vl};
    if (part == 0) {
      rc = sc_store_unpack(&taskhubd__store__stored_instance__descriptor, &b, a, (void **)&out->rec);
    } else if (part == 1) {
      if (vl == 8)
        out->generation = sc_get_be64(b.b);
      else
        rc = SC_ECORRUPT;
    } else if (out->rec) {
      if ((uint32_t)sc_pg_get_i32(r, i, 1) != from + out->n) {
        rc = SC_ECORRUPT; /* event i lives at index i, with no gaps */
        break;
      }
      if (out->n > 0 && out->bytes + vl > max_bytes)
        break;
      rc = sc_store_unpack(&history_event__descriptor, &b, a, (void **)&out->events[out->n]);
      if (rc == SC_OK) {
        out->n++;
        out->bytes += vl;
      }
    }
  }
  PQclear(r);
  if (rc == SC_OK && !out->rec)
    rc = SC_ENOTFOUND;
  return rc;
}

int sc_pg_inbox_load(struct sc_store *s, const char *iid, struct sc_arena *a, struct sc_inbox_blob **out, size_t *n)
{
  struct sc_pgparams p = {0};
  sc_pg_text(&p, iid);
  PGresult *r;
  int rc = query(s, PS_INBOX_LOAD, &p, "inbox_load", &r);
  if (rc != SC_OK)
    return rc;
  int rows = PQntuples(r);
  struct sc_inbox_blob *m = sc_arena_alloc(a, (size_t)(rows ? rows : 1) * sizeof *m);
  for (int i = 0; i < rows; i++) {
    m[i].band = sc_pg_get_i32(r, i, 0);
    m[i].seq = (uint64_t)sc_pg_get_i64(r, i, 1);
    m[i].msg.b = copy(a, r, i, 2, &m[i].msg.len);
  }
  PQclear(r);
  *out = m;
  *n = (size_t)rows;
  return SC_OK;
}

static int get_msg(struct sc_store *s, enum sc_pg_stmt st, const struct sc_pgparams *p, const char *what,
                   const ProtobufCMessageDescriptor *d, struct sc_arena *a, void **out)
{
  struct sc_blob b;
  int rc = get_one(s, st, p, what, a, &b);
  return rc == SC_OK ? sc_store_unpack(d, &b, a, out) : rc;
}

int sc_pg_timer_get(struct sc_store *s, int64_t due_us, uint64_t seq, struct sc_arena *a, StoredTimer **out)
{
  struct sc_pgparams p = {0};
  sc_pg_i64(&p, due_us);
  sc_pg_i64(&p, (int64_t)seq);
  return get_msg(s, PS_TIMER_GET, &p, "timer_get", &taskhubd__store__stored_timer__descriptor, a, (void **)out);
}

int sc_pg_actq_get(struct sc_store *s, uint64_t seq, struct sc_arena *a, StoredActivity **out)
{
  struct sc_pgparams p = {0};
  sc_pg_i64(&p, (int64_t)seq);
  return get_msg(s, PS_ACTQ_GET, &p, "actq_get", &taskhubd__store__stored_activity__descriptor, a, (void **)out);
}

/* Calls |fn| with column 0 of every row, as a string. */
static int each_text(struct sc_store *s, enum sc_pg_stmt st, const struct sc_pgparams *p, const char *what,
                     sc_child_fn fn, void *ctx)
{
  PGresult *r;
  int rc = query(s, st, p, what, &r);
  char iid[SC_MAX_ID + 1];
  for (int i = 0; rc == SC_OK && i < PQntuples(r); i++) {
    int len = PQgetlength(r, i, 0);
    if (len > SC_MAX_ID) {
      rc = SC_ECORRUPT;
      break;
    }
    memcpy(iid, PQgetvalue(r, i, 0), (size_t)len);
    iid[len] = 0;
    rc = fn(iid, ctx);
  }
  if (r)
    PQclear(r);
  return rc;
}

int sc_pg_children(struct sc_store *s, const char *parent, sc_child_fn fn, void *ctx)
{
  struct sc_pgparams p = {0};
  sc_pg_text(&p, parent);
  return each_text(s, PS_CHILDREN, &p, "children", fn, ctx);
}

int sc_pg_inbox_scan_instances(struct sc_store *s, int part, sc_child_fn fn, void *ctx)
{
  struct sc_pgparams p = {0};
  sc_pg_i32(&p, part);
  return each_text(s, PS_INBOX_SCAN, &p, "inbox_scan", fn, ctx);
}

/* A row written before partitions were recorded (NULL part) belongs to |part| when its instance does. */
static bool in_part(struct sc_store *s, int part, const PGresult *r, int row, int col, const char *iid)
{
  return part < 0 || !PQgetisnull(r, row, col) || sc_pg_part_of(PG(s), iid) == part;
}

int sc_pg_timer_scan(struct sc_store *s, int part, sc_timer_fn fn, void *ctx)
{
  PGresult *r;
  struct sc_pgparams p = {0};
  sc_pg_i32(&p, part);
  int rc = query(s, PS_TIMER_SCAN, &p, "timer_scan", &r);
  struct sc_arena a;
  sc_arena_init(&a);
  for (int i = 0; rc == SC_OK && i < PQntuples(r); i++) {
    struct sc_timer_row row = {sc_pg_get_i64(r, i, 0), (uint64_t)sc_pg_get_i64(r, i, 1), NULL};
    struct sc_blob b = {(uint8_t *)PQgetvalue(r, i, 2), (size_t)PQgetlength(r, i, 2)};
    rc = sc_store_unpack(&taskhubd__store__stored_timer__descriptor, &b, &a, (void **)&row.timer);
    if (rc == SC_OK && in_part(s, part, r, i, 3, row.timer->instance_id))
      rc = fn(&row, ctx);
    sc_arena_reset(&a);
  }
  sc_arena_free(&a);
  if (r)
    PQclear(r);
  return rc;
}

int sc_pg_actq_scan(struct sc_store *s, int part, sc_seq_fn fn, void *ctx)
{
  PGresult *r;
  struct sc_pgparams p = {0};
  sc_pg_i32(&p, part);
  int rc = query(s, PS_ACTQ_SCAN, &p, "actq_scan", &r);
  struct sc_arena a;
  sc_arena_init(&a);
  for (int i = 0; rc == SC_OK && i < PQntuples(r); i++) {
    bool mine = true;
    if (part >= 0 && PQgetisnull(r, i, 2)) {
      StoredActivity *act;
      struct sc_blob b = {(uint8_t *)PQgetvalue(r, i, 1), (size_t)PQgetlength(r, i, 1)};
      rc = sc_store_unpack(&taskhubd__store__stored_activity__descriptor, &b, &a, (void **)&act);
      mine = rc == SC_OK && act->request && act->request->orchestrationinstance &&
             in_part(s, part, r, i, 2, act->request->orchestrationinstance->instanceid);
    }
    if (rc == SC_OK && mine)
      rc = fn((uint64_t)sc_pg_get_i64(r, i, 0), ctx);
    sc_arena_reset(&a);
  }
  sc_arena_free(&a);
  if (r)
    PQclear(r);
  return rc;
}

int sc_pg_get_entity(struct sc_store *s, const char *id, struct sc_arena *a, struct sc_blob *out)
{
  struct sc_pgparams p = {0};
  sc_pg_text(&p, id);
  return get_one(s, PS_GET_ENTITY, &p, "get_entity", a, out);
}
