/*
 * Opening and closing the PostgreSQL backend, the wipe, and its operations table. Connections and statement
 * parameters are conn.c's; partitions owner.c's; notifications listen.c's.
 */
#include "pg.h"

#include "common/log.h"
#include "common/metrics.h"
#include "common/util.h"

#include <arpa/inet.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

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
  if (rc == SC_OK && !sc_pg_prepare(s->writer.c, err))
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
