/*
 * Partition ownership with fencing. The task hub's partitions (th_partition: owner, epoch, lease_until) have one
 * owner at a time, and only the owner's engine writes. For now a replica takes every partition or none, so one
 * replica writes and any other waits as a standby; spreading partitions among replicas comes next.
 *
 *  - Taking: only partitions whose lease has expired (or that nobody owns, or that this replica owned before a
 *    restart) can be taken, and taking them raises their epoch above every epoch used before.
 *  - Renewing: a thread of its own moves lease_until on every third of the lease, on a connection of its own;
 *    it renews only while the epoch is still the one it took.
 *  - Fencing: every commit first calls th_fence(owner, epoch) in its own transaction, which locks the partition
 *    rows against a concurrent taking and fails (SQLSTATE TH001) unless they are still this replica's at this
 *    epoch. A replica that stalled past its lease (a stop signal, a long pause, a partition from the network)
 *    and was replaced can therefore never commit again: its commit is refused, counted, and taskhubd exits.
 *  - Handing over: a replica that stops gives its partitions up, so a standby takes them at once.
 */
#include "pg.h"

#include "common/log.h"
#include "common/metrics.h"
#include "common/util.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static PGresult *exec_params(PGconn *c, const char *sql, const char *owner, int64_t num)
{
  char n[32];
  snprintf(n, sizeof n, "%lld", (long long)num);
  const char *v[2] = {owner, n};
  return PQexecParams(c, sql, 2, NULL, v, NULL, NULL, 0);
}

/* One try at taking every partition; true with *epoch set when this replica owns them all now. */
static bool try_take(PGconn *c, const char *owner, int64_t lease_ms, int64_t *epoch, char *holder, size_t cap)
{
  PGresult *r = PQexec(c, "BEGIN; LOCK TABLE th_partition IN EXCLUSIVE MODE");
  bool ok = PQresultStatus(r) == PGRES_COMMAND_OK;
  PQclear(r);
  if (!ok)
    return false;
  const char *v[1] = {owner};
  r = PQexecParams(c,
                   "SELECT owner, GREATEST(0, CEIL(EXTRACT(EPOCH FROM lease_until - now())))::bigint "
                   "FROM th_partition WHERE owner IS NOT NULL AND owner <> $1 AND lease_until > now() LIMIT 1",
                   1, NULL, v, NULL, NULL, 0);
  bool free_ = PQresultStatus(r) == PGRES_TUPLES_OK && PQntuples(r) == 0;
  if (PQresultStatus(r) == PGRES_TUPLES_OK && PQntuples(r) == 1)
    snprintf(holder, cap, "%s (lease ends in %s s)", PQgetvalue(r, 0, 0), PQgetvalue(r, 0, 1));
  PQclear(r);
  if (!free_) {
    PQclear(PQexec(c, "ROLLBACK"));
    return false;
  }
  r = exec_params(c,
                  "UPDATE th_partition SET owner = $1, epoch = (SELECT max(epoch) + 1 FROM th_partition), "
                  "lease_until = now() + $2::bigint * interval '1 millisecond' RETURNING epoch",
                  owner, lease_ms);
  ok = PQresultStatus(r) == PGRES_TUPLES_OK && PQntuples(r) > 0;
  if (ok)
    *epoch = strtoll(PQgetvalue(r, 0, 0), NULL, 10);
  PQclear(r);
  r = PQexec(c, ok ? "COMMIT" : "ROLLBACK");
  ok = ok && PQresultStatus(r) == PGRES_COMMAND_OK;
  PQclear(r);
  return ok;
}

int sc_pg_take_partitions(struct pgstore *s, struct sc_err *err)
{
  char holder[300] = "";
  for (int waited = 0;; waited++) {
    int64_t epoch;
    if (try_take(s->writer.c, s->owner, s->lease_ms, &epoch, holder, sizeof holder)) {
      atomic_store(&s->epoch, epoch);
      atomic_store_explicit(&sc_metrics.pg_partitions_owned, (uint64_t)s->partitions, memory_order_relaxed);
      SC_INFO("event=partitions_taken owner=%s epoch=%lld partitions=%d", SC_Q(s->owner), (long long)epoch,
              s->partitions);
      return SC_OK;
    }
    if (PQstatus(s->writer.c) != CONNECTION_OK) {
      sc_err_set(err, SC_EIO, "PostgreSQL: taking the partitions failed: %s", PQerrorMessage(s->writer.c));
      return SC_EIO;
    }
    if (s->stop && s->stop()) {
      sc_err_set(err, SC_ECANCELLED, "stopped while waiting for the partitions");
      return SC_ECANCELLED;
    }
    if (waited % 10 == 0)
      SC_WARN("event=partitions_waiting owner=%s held_by=%s", SC_Q(s->owner), SC_Q(holder));
    sleep(1);
  }
}

static void *renew_main(void *arg)
{
  struct pgstore *s = arg;
  int64_t every_ms = s->lease_ms / 3 > 0 ? s->lease_ms / 3 : 1;
  while (!atomic_load(&s->stop_lease)) {
    struct timespec ts = {(time_t)(every_ms / 1000), (long)(every_ms % 1000) * 1000000L};
    pthread_mutex_lock(&s->lease_mu);
    struct timespec until;
    clock_gettime(CLOCK_REALTIME, &until);
    until.tv_sec += ts.tv_sec;
    until.tv_nsec += ts.tv_nsec;
    if (until.tv_nsec >= 1000000000L) {
      until.tv_sec++;
      until.tv_nsec -= 1000000000L;
    }
    if (!atomic_load(&s->stop_lease))
      pthread_cond_timedwait(&s->lease_cv, &s->lease_mu, &until);
    pthread_mutex_unlock(&s->lease_mu);
    if (atomic_load(&s->stop_lease) || atomic_load(&s->fenced))
      break;
    if (!s->lease_conn || PQstatus(s->lease_conn) != CONNECTION_OK) {
      if (s->lease_conn)
        PQfinish(s->lease_conn);
      s->lease_conn = PQconnectdb(s->conninfo);
      if (PQstatus(s->lease_conn) != CONNECTION_OK)
        continue; /* PostgreSQL is down: the commits wait for it too; nobody can take over meanwhile */
    }
    char sql[256];
    snprintf(sql, sizeof sql,
             "UPDATE th_partition SET lease_until = now() + %lld * interval '1 millisecond' "
             "WHERE owner = $1 AND epoch = $2::bigint",
             (long long)s->lease_ms);
    PGresult *r = exec_params(s->lease_conn, sql, s->owner, atomic_load(&s->epoch));
    if (PQresultStatus(r) == PGRES_COMMAND_OK) {
      int n = atoi(PQcmdTuples(r));
      if (n == s->partitions) {
        atomic_fetch_add_explicit(&sc_metrics.pg_lease_renewals, 1, memory_order_relaxed);
      } else {
        /* Taken over: this replica stalled past its lease. Its next commit is refused by the fence. */
        atomic_store(&s->fenced, true);
        atomic_fetch_add_explicit(&sc_metrics.pg_lease_losses, 1, memory_order_relaxed);
        atomic_store_explicit(&sc_metrics.pg_partitions_owned, 0, memory_order_relaxed);
        SC_ERROR("event=partitions_lost owner=%s epoch=%lld still_owned=%d", SC_Q(s->owner),
                 (long long)atomic_load(&s->epoch), n);
      }
    }
    PQclear(r);
  }
  return NULL;
}

void sc_pg_lease_start(struct pgstore *s)
{
  pthread_mutex_init(&s->lease_mu, NULL);
  pthread_cond_init(&s->lease_cv, NULL);
  if (pthread_create(&s->lease_thread, NULL, renew_main, s) != 0)
    sc_panic("cannot start the partition lease thread");
  s->lease_running = true;
}

void sc_pg_lease_stop(struct pgstore *s)
{
  if (!s->lease_running)
    return;
  pthread_mutex_lock(&s->lease_mu);
  atomic_store(&s->stop_lease, true);
  pthread_cond_signal(&s->lease_cv);
  pthread_mutex_unlock(&s->lease_mu);
  pthread_join(s->lease_thread, NULL);
  s->lease_running = false;
  if (s->lease_conn)
    PQfinish(s->lease_conn);
  s->lease_conn = NULL;
  pthread_mutex_destroy(&s->lease_mu);
  pthread_cond_destroy(&s->lease_cv);
  /* Hand the partitions over at once rather than make a standby wait for the lease to run out. */
  if (!atomic_load(&s->fenced) && s->writer.c && PQstatus(s->writer.c) == CONNECTION_OK) {
    PGresult *r = exec_params(s->writer.c,
                              "UPDATE th_partition SET owner = NULL, lease_until = NULL "
                              "WHERE owner = $1 AND epoch = $2::bigint",
                              s->owner, atomic_load(&s->epoch));
    if (PQresultStatus(r) == PGRES_COMMAND_OK)
      SC_INFO("event=partitions_released owner=%s partitions=%s", SC_Q(s->owner), PQcmdTuples(r));
    PQclear(r);
  }
  atomic_store_explicit(&sc_metrics.pg_partitions_owned, 0, memory_order_relaxed);
}
