/*
 * Partition ownership with fencing. Each of the task hub's partitions (th_partition: owner, epoch, lease_until)
 * has one owner at a time, and only the owner's engine writes its instances.
 *
 *  - Sharing: every replica says it is alive in th_replica (with whether a worker is connected) on each lease
 *    round. The partitions are shared evenly among the live replicas with workers, or among all live replicas
 *    when none has one: a pod that only starts orchestrations owns nothing, so no work waits where it cannot
 *    run. A replica below its share takes free or expired partitions; one above it asks its engine to let the
 *    extra ones go (the engine stops using them, then calls release), so they move without waiting for a lease.
 *  - Taking: only partitions whose lease has expired, that nobody owns, or that this replica owned before a
 *    restart can be taken, and taking one raises its epoch, so no earlier owner can commit to it again.
 *  - Renewing: the lease thread moves lease_until of every owned partition each third of the lease, on a
 *    connection of its own, only where the epoch is still the one taken.
 *  - Fencing: every commit first calls th_fence_parts(owner, partitions, epochs) for the partitions it writes,
 *    in its own transaction, which locks those rows against a concurrent taking and fails (SQLSTATE TH001)
 *    unless each is still this replica's at its epoch. A replica that stalled past its lease and was replaced
 *    can never commit again: its commit is refused, counted, and taskhubd exits (restarted, it rejoins).
 *  - Handing over: a replica that stops gives every partition up, so the others take them at once.
 */
#include "pg.h"

#include "common/log.h"
#include "common/metrics.h"
#include "common/util.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

int sc_pg_part_of(const struct pgstore *s, const char *iid)
{
  return sc_part_of(iid, s->partitions);
}

static PGresult *exec_params(PGconn *c, const char *sql, int n, const char *const *v)
{
  return PQexecParams(c, sql, n, NULL, v, NULL, NULL, 0);
}

static int owned_count(struct pgstore *s)
{
  int n = 0;
  for (int p = 0; p < s->partitions; p++)
    n += atomic_load(&s->epoch[p]) != 0;
  return n;
}

static void publish_owned(struct pgstore *s)
{
  atomic_store_explicit(&sc_metrics.pg_partitions_owned, (uint64_t)owned_count(s), memory_order_relaxed);
}

/* Takes up to |want| partitions that are free, expired, or were this replica's before a restart; tells the
 * engine about each. Returns how many it took. */
static int take(struct pgstore *s, PGconn *c, int want)
{
  if (want <= 0)
    return 0;
  struct sc_pg_parts held;
  sc_pg_parts_owned(s, false, &held);
  char lim[16], lease[32];
  snprintf(lim, sizeof lim, "%d", want);
  snprintf(lease, sizeof lease, "%lld", (long long)s->lease_ms);
  const char *v[4] = {s->owner, lim, lease, held.parts};
  /* Ours from before a restart first (nobody else may take them before their lease ends anyway). */
  PGresult *r = exec_params(c,
                            "UPDATE th_partition p SET owner = $1, epoch = p.epoch + 1, "
                            "lease_until = now() + $3::bigint * interval '1 millisecond' "
                            "WHERE p.id IN (SELECT id FROM th_partition WHERE NOT (id = ANY($4::int[])) AND "
                            "(owner IS NULL OR owner = $1 OR lease_until IS NULL OR lease_until < now()) "
                            "ORDER BY owner = $1 DESC NULLS LAST, id LIMIT $2::int FOR UPDATE SKIP LOCKED) "
                            "RETURNING p.id, p.epoch",
                            4, v);
  int n = 0;
  if (PQresultStatus(r) == PGRES_TUPLES_OK) {
    for (int i = 0; i < PQntuples(r); i++) {
      int part = atoi(PQgetvalue(r, i, 0));
      if (part < 0 || part >= s->partitions || atomic_load(&s->epoch[part]))
        continue; /* already ours at an epoch we hold: cannot happen with SKIP LOCKED and our filter */
      atomic_store(&s->releasing[part], false);
      atomic_store(&s->epoch[part], strtoll(PQgetvalue(r, i, 1), NULL, 10));
      n++;
      if (s->ev)
        s->ev->gained(s->ev->ctx, part);
    }
  } else {
    SC_WARN("event=partitions_take_failed owner=%s error=%s", SC_Q(s->owner), SC_Q(PQresultErrorMessage(r)));
  }
  PQclear(r);
  if (n) {
    atomic_fetch_add(&s->owned_gen, 1);
    sc_pg_listen_poke(s);
    publish_owned(s);
    SC_INFO("event=partitions_taken owner=%s taken=%d owned=%d", SC_Q(s->owner), n, owned_count(s));
  }
  return n;
}

int sc_pg_take_all(struct pgstore *s, struct sc_err *err)
{
  for (int waited = 0;; waited++) {
    take(s, s->writer.c, s->partitions - owned_count(s));
    if (owned_count(s) == s->partitions)
      return SC_OK;
    if (PQstatus(s->writer.c) != CONNECTION_OK) {
      sc_err_set(err, SC_EIO, "PostgreSQL: taking the partitions failed: %s", PQerrorMessage(s->writer.c));
      return SC_EIO;
    }
    if (s->stop && s->stop()) {
      sc_err_set(err, SC_ECANCELLED, "stopped while waiting for the partitions");
      return SC_ECANCELLED;
    }
    if (waited % 10 == 0)
      SC_WARN("event=partitions_waiting owner=%s owned=%d partitions=%d", SC_Q(s->owner), owned_count(s),
              s->partitions);
    sleep(1);
  }
}

/* Renews every owned partition; one found taken by another replica means this one stalled past its lease. The
 * rows are locked in id order first (l), the order commits' fences lock them in (PS_FENCE_LOCK): in the
 * order of a hash join's scan, a renewal and a commit touching two partitions deadlocked. */
static void renew(struct pgstore *s, PGconn *c)
{
  struct sc_pg_parts held;
  sc_pg_parts_owned(s, false, &held);
  if (!held.n)
    return;
  char lease[32];
  snprintf(lease, sizeof lease, "%lld", (long long)s->lease_ms);
  const char *v[4] = {s->owner, held.parts, held.eps, lease};
  PGresult *r = exec_params(c,
                            "UPDATE th_partition p SET lease_until = now() + $4::bigint * interval '1 millisecond' "
                            "FROM (SELECT id FROM th_partition WHERE id = ANY($2::int[]) ORDER BY id "
                            "FOR NO KEY UPDATE) l, unnest($2::int[], $3::bigint[]) AS u(id, ep) "
                            "WHERE p.id = l.id AND p.id = u.id AND p.epoch = u.ep AND p.owner = $1 RETURNING p.id",
                            4, v);
  if (PQresultStatus(r) != PGRES_TUPLES_OK) {
    PQclear(r);
    return; /* PostgreSQL is away: commits wait for it too, and nobody can take over meanwhile */
  }
  bool renewed[SC_MAX_PARTITIONS] = {false};
  for (int i = 0; i < PQntuples(r); i++) {
    int part = atoi(PQgetvalue(r, i, 0));
    if (part >= 0 && part < s->partitions)
      renewed[part] = true;
  }
  PQclear(r);
  atomic_fetch_add_explicit(&sc_metrics.pg_lease_renewals, 1, memory_order_relaxed);
  for (int p = 0; p < s->partitions; p++) {
    /* A partition being released may have gone while this round ran: that is ours letting go, not a loss. */
    if (!atomic_load(&s->epoch[p]) || renewed[p] || atomic_load(&s->releasing[p]))
      continue;
    atomic_store(&s->fenced, true);
    atomic_fetch_add_explicit(&sc_metrics.pg_lease_losses, 1, memory_order_relaxed);
    SC_ERROR("event=partition_lost owner=%s partition=%d epoch=%lld", SC_Q(s->owner), p,
             (long long)atomic_load(&s->epoch[p]));
  }
}

/* This replica's share: the live replicas that should hold partitions, in id order, split them evenly. */
static int share(struct pgstore *s, PGconn *c)
{
  char lease[32], w[8];
  snprintf(lease, sizeof lease, "%lld", (long long)s->lease_ms);
  /* A worker reconnecting (SDKs do, every minute or on errors) must not send the partitions away and back: the
   * replica counts as having workers until it has had none for a whole lease. */
  int64_t idle = atomic_load(&s->idle_since_us);
  bool workers = atomic_load(&s->workers) || (idle && sc_mono_us() - idle < s->lease_ms * 1000);
  snprintf(w, sizeof w, "%s", workers ? "true" : "false");
  const char *v[2] = {s->owner, w};
  PGresult *r = exec_params(c,
                            "INSERT INTO th_replica (id, workers, seen) VALUES ($1, $2::boolean, now()) "
                            "ON CONFLICT (id) DO UPDATE SET workers = $2::boolean, seen = now()",
                            2, v);
  bool ok = PQresultStatus(r) == PGRES_COMMAND_OK;
  PQclear(r);
  if (!ok)
    return -1;
  const char *v2[1] = {lease};
  r = exec_params(c,
                  "WITH live AS (SELECT id, workers FROM th_replica "
                  "  WHERE seen > now() - $1::bigint * interval '1 millisecond'), "
                  "eligible AS (SELECT id FROM live WHERE workers OR NOT EXISTS (SELECT 1 FROM live WHERE workers)) "
                  "SELECT id FROM eligible ORDER BY id",
                  1, v2);
  if (PQresultStatus(r) != PGRES_TUPLES_OK) {
    PQclear(r);
    return -1;
  }
  int n = PQntuples(r), me = -1;
  for (int i = 0; i < n; i++)
    if (strcmp(PQgetvalue(r, i, 0), s->owner) == 0)
      me = i;
  PQclear(r);
  if (me < 0 || n == 0)
    return 0;
  return s->partitions / n + (me < s->partitions % n ? 1 : 0);
}

/* Over the share: ask the engine to let the highest-numbered extra partitions go. */
static void shed(struct pgstore *s, int target)
{
  int keep = 0;
  for (int p = 0; p < s->partitions; p++)
    if (atomic_load(&s->epoch[p]) && !atomic_load(&s->releasing[p]))
      keep++;
  for (int p = s->partitions - 1; p >= 0 && keep > target; p--) {
    if (!atomic_load(&s->epoch[p]) || atomic_load(&s->releasing[p]))
      continue;
    atomic_store(&s->releasing[p], true);
    keep--;
    SC_INFO("event=partition_shed owner=%s partition=%d share=%d", SC_Q(s->owner), p, target);
    if (s->ev)
      s->ev->release(s->ev->ctx, p);
  }
}

static void round_(struct pgstore *s, PGconn *c)
{
  renew(s, c);
  if (s->exclusive || atomic_load(&s->fenced))
    return;
  int target = share(s, c);
  if (target < 0)
    return;
  int held = 0;
  for (int p = 0; p < s->partitions; p++)
    if (atomic_load(&s->epoch[p]) && !atomic_load(&s->releasing[p]))
      held++;
  if (held < target)
    take(s, c, target - held);
  else if (held > target)
    shed(s, target);
}

static void *lease_main(void *arg)
{
  struct pgstore *s = arg;
  int64_t every_ms = s->lease_ms / 3 > 0 ? s->lease_ms / 3 : 1;
  /* Rebalancing looks often while the share is moving, so partitions move in a round or two, not a lease. */
  int64_t quick_ms = every_ms < 500 ? every_ms : 500;
  int quick = 6;
  while (!atomic_load(&s->stop_lease)) {
    if (!s->lease_conn || PQstatus(s->lease_conn) != CONNECTION_OK) {
      if (s->lease_conn)
        PQfinish(s->lease_conn);
      s->lease_conn = sc_pg_open(s->conninfo);
    }
    if (PQstatus(s->lease_conn) == CONNECTION_OK) {
      unsigned before = atomic_load(&s->owned_gen);
      round_(s, s->lease_conn);
      if (atomic_load(&s->owned_gen) != before)
        quick = 6;
    }
    int64_t wait_ms = quick > 0 ? (quick--, quick_ms) : every_ms;
    pthread_mutex_lock(&s->lease_mu);
    struct timespec until;
    clock_gettime(CLOCK_REALTIME, &until);
    until.tv_sec += (time_t)(wait_ms / 1000);
    until.tv_nsec += (long)(wait_ms % 1000) * 1000000L;
    if (until.tv_nsec >= 1000000000L) {
      until.tv_sec++;
      until.tv_nsec -= 1000000000L;
    }
    if (!atomic_load(&s->stop_lease))
      pthread_cond_timedwait(&s->lease_cv, &s->lease_mu, &until);
    pthread_mutex_unlock(&s->lease_mu);
  }
  return NULL;
}

/* Wakes the lease thread for a round now (a worker came or went: the shares change). */
static void poke(struct pgstore *s)
{
  if (!s->lease_running)
    return;
  pthread_mutex_lock(&s->lease_mu);
  pthread_cond_signal(&s->lease_cv);
  pthread_mutex_unlock(&s->lease_mu);
}

void sc_pg_set_workers(struct sc_store *st, bool any)
{
  struct pgstore *s = PG(st);
  atomic_store(&s->idle_since_us, any ? 0 : sc_mono_us());
  if (atomic_exchange(&s->workers, any) != any && any)
    poke(s); /* a share at once; giving it up waits for the next rounds (see share) */
}

void sc_pg_lease_start(struct pgstore *s)
{
  /* The first round before serving: a replica alone (or entitled to a share) takes it now, so the first calls
   * find their partitions owned rather than waiting in th_incoming for the thread's first round. */
  if (!s->exclusive) {
    s->lease_conn = sc_pg_open(s->conninfo);
    if (PQstatus(s->lease_conn) == CONNECTION_OK)
      round_(s, s->lease_conn);
  }
  atomic_store(&s->stop_lease, false); /* attached again after a detach */
  pthread_mutex_init(&s->lease_mu, NULL);
  pthread_cond_init(&s->lease_cv, NULL);
  if (pthread_create(&s->lease_thread, NULL, lease_main, s) != 0)
    sc_panic("cannot start the partition lease thread");
  s->lease_running = true;
}

/* Gives |part| up if it is still ours at the epoch held. Writer connection. */
static bool give_up(struct pgstore *s, int part)
{
  char id[16], ep[32];
  snprintf(id, sizeof id, "%d", part);
  snprintf(ep, sizeof ep, "%lld", (long long)atomic_load(&s->epoch[part]));
  const char *v[3] = {s->owner, id, ep};
  PGresult *r = exec_params(s->writer.c,
                            "UPDATE th_partition SET owner = NULL, lease_until = NULL "
                            "WHERE id = $2::int AND owner = $1 AND epoch = $3::bigint",
                            3, v);
  bool ok = PQresultStatus(r) == PGRES_COMMAND_OK;
  PQclear(r);
  return ok;
}

void sc_pg_release_part(struct sc_store *st, int part)
{
  struct pgstore *s = PG(st);
  if (part < 0 || part >= s->partitions || !atomic_load(&s->epoch[part]))
    return;
  atomic_store(&s->releasing[part], true);
  if (!atomic_load(&s->fenced) && s->writer.c && PQstatus(s->writer.c) == CONNECTION_OK)
    give_up(s, part); /* if this fails, the lease runs out instead */
  atomic_store(&s->epoch[part], 0);
  publish_owned(s);
  SC_INFO("event=partition_released owner=%s partition=%d", SC_Q(s->owner), part);
  poke(s);
}

void sc_pg_lease_stop(struct pgstore *s)
{
  if (s->lease_running) {
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
  }
  /* Hand everything over at once rather than make the others wait for the leases to run out. */
  int n = 0;
  if (!atomic_load(&s->fenced) && s->writer.c && PQstatus(s->writer.c) == CONNECTION_OK) {
    for (int p = 0; p < s->partitions; p++)
      if (atomic_load(&s->epoch[p]) && give_up(s, p))
        n++;
    const char *v[1] = {s->owner};
    PQclear(exec_params(s->writer.c, "DELETE FROM th_replica WHERE id = $1", 1, v));
  }
  for (int p = 0; p < s->partitions; p++)
    atomic_store(&s->epoch[p], 0);
  if (n)
    SC_INFO("event=partitions_released owner=%s partitions=%d", SC_Q(s->owner), n);
  publish_owned(s);
}
