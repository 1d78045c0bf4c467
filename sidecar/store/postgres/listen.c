/*
 * Messages between replicas, on a connection of their own that LISTENs on three channels:
 *   th_in       (payload: "{3,17}") a commit wrote commands into those partitions' incoming tables: read those
 *               this replica owns and hand them to the engine;
 *   th_reply    (payload: a replica's name) answers to commands this replica forwarded are waiting;
 *   th_changed  (payload: instance ids, one a line) those instances changed status: waiters here read them again.
 * Nothing waits on a notification alone: every few seconds a sweep reads the incoming and reply tables anyway,
 * which catches what a lost connection dropped, and after a reconnect every waiter looks again. Rows handed to
 * the engine are remembered until they are marked done, so a row goes to the engine once per ownership; the
 * engine ignores one it has applied already.
 */
#include "pg.h"

#include "common/log.h"
#include "common/map.h"
#include "common/metrics.h"
#include "common/util.h"

#include <errno.h>
#include <inttypes.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define SWEEP_EVERY_US 5000000
#define GC_EVERY_US 60000000

struct listener {
  struct pgstore *s;
  int wake[2]; /* a pipe: written to stop the thread */
  struct sc_map posted; /* "<id>" of rows handed to the engine and not yet seen done */
  unsigned owned_gen;
};

static struct listener L; /* one store per process */

static bool connect_listen(struct pgstore *s)
{
  if (s->listen_conn)
    PQfinish(s->listen_conn);
  s->listen_conn = sc_pg_open(s->conninfo);
  if (PQstatus(s->listen_conn) != CONNECTION_OK)
    return false;
  PGresult *r = PQexec(s->listen_conn, "LISTEN th_in; LISTEN th_reply; LISTEN th_changed");
  bool ok = PQresultStatus(r) == PGRES_COMMAND_OK;
  PQclear(r);
  return ok;
}

/* Hands the engine the incoming rows of owned partitions it has not been given yet; |sweep|: counts them as
 * found by the sweep (a notification was lost, or none was sent). */
static void fetch_incoming(struct listener *l, bool sweep)
{
  struct pgstore *s = l->s;
  struct sc_pg_parts owned;
  sc_pg_parts_owned(s, true, &owned);
  if (!owned.n) {
    sc_map_free(&l->posted);
    sc_map_init(&l->posted);
    return;
  }
  const char *v[1] = {owned.parts};
  PGresult *r = PQexecParams(s->listen_conn,
                             "SELECT part, id, body FROM th_incoming WHERE done IS NULL AND part = ANY($1::int[]) "
                             "ORDER BY id",
                             1, NULL, v, NULL, NULL, 1);
  if (PQresultStatus(r) != PGRES_TUPLES_OK) {
    SC_WARN("event=store_error op=incoming error=%s", SC_Q(PQresultErrorMessage(r)));
    PQclear(r);
    return;
  }
  struct sc_map still;
  sc_map_init(&still);
  for (int i = 0; i < PQntuples(r); i++) {
    int part = sc_pg_get_i32(r, i, 0);
    uint64_t id = (uint64_t)sc_pg_get_i64(r, i, 1);
    char key[24];
    snprintf(key, sizeof key, "%" PRIu64, id);
    sc_map_put(&still, key, (void *)1);
    if (sc_map_get(&l->posted, key))
      continue;
    if (sweep)
      atomic_fetch_add_explicit(&sc_metrics.pg_sweep_deliveries, 1, memory_order_relaxed);
    s->ev->incoming(s->ev->ctx, part, id, (const uint8_t *)PQgetvalue(r, i, 2), (size_t)PQgetlength(r, i, 2));
  }
  PQclear(r);
  /* What is no longer waiting was applied: forget it. */
  sc_map_free(&l->posted);
  l->posted = still;
}

static void fetch_replies(struct listener *l)
{
  struct pgstore *s = l->s;
  const char *v[1] = {s->owner};
  PGresult *r = PQexecParams(s->listen_conn, "DELETE FROM th_reply WHERE replica = $1 RETURNING id, body", 1, NULL,
                             v, NULL, NULL, 1);
  if (PQresultStatus(r) != PGRES_TUPLES_OK) {
    SC_WARN("event=store_error op=replies error=%s", SC_Q(PQresultErrorMessage(r)));
    PQclear(r);
    return;
  }
  for (int i = 0; i < PQntuples(r); i++)
    s->ev->reply(s->ev->ctx, (uint64_t)sc_pg_get_i64(r, i, 0), (const uint8_t *)PQgetvalue(r, i, 1),
                 (size_t)PQgetlength(r, i, 1));
  PQclear(r);
}

/* Applied commands are kept a while (a sender's commit sent again must not insert one anew); answers nobody
 * collected (their replica restarted) go too. */
static void collect_garbage(struct listener *l)
{
  PQclear(PQexec(l->s->listen_conn, "DELETE FROM th_incoming WHERE done < now() - interval '15 minutes'; "
                                    "DELETE FROM th_reply WHERE at < now() - interval '1 hour'"));
}

/* Whether this replica owns any of the partitions in |list| ("{3,17}"; anything else: any may be meant). */
static bool owns_any(struct pgstore *s, const char *list)
{
  if (list[0] != '{')
    return true;
  for (const char *p = list + 1; *p && *p != '}';) {
    char *end;
    long part = strtol(p, &end, 10);
    if (end == p)
      return true; /* not a list: look anyway */
    if (part >= 0 && part < s->partitions && atomic_load(&s->epoch[part]))
      return true;
    p = *end == ',' ? end + 1 : end;
  }
  return false;
}

static void *listen_main(void *arg)
{
  struct listener *l = arg;
  struct pgstore *s = l->s;
  bool connected = false, need_in = true, need_reply = true, sweep = false;
  int64_t next_sweep = 0, next_gc = sc_mono_us() + GC_EVERY_US;
  for (;;) {
    if (!connected) {
      connected = connect_listen(s);
      if (connected) {
        need_in = need_reply = true;
        if (s->ev)
          s->ev->changed(s->ev->ctx, NULL); /* notifications may have been lost meanwhile */
      }
    }
    unsigned gen = atomic_load(&s->owned_gen);
    if (gen != l->owned_gen) {
      /* Partitions taken: their rows go to the engine again, even ones given to it under an earlier ownership. */
      l->owned_gen = gen;
      sc_map_free(&l->posted);
      sc_map_init(&l->posted);
      need_in = true;
    }
    int64_t now = sc_mono_us();
    if (now >= next_sweep) {
      next_sweep = now + SWEEP_EVERY_US;
      need_in = need_reply = sweep = true;
    }
    if (connected && need_in)
      fetch_incoming(l, sweep);
    if (connected && need_reply)
      fetch_replies(l);
    if (connected && now >= next_gc) {
      next_gc = now + GC_EVERY_US;
      collect_garbage(l);
    }
    need_in = need_reply = sweep = false;
    struct pollfd fds[2] = {{l->wake[0], POLLIN, 0}, {connected ? PQsocket(s->listen_conn) : -1, POLLIN, 0}};
    int timeout = (int)((next_sweep - sc_mono_us()) / 1000);
    if (timeout < 0)
      timeout = 0;
    if (!connected && timeout > 1000)
      timeout = 1000;
    if (poll(fds, 2, timeout) < 0 && errno != EINTR)
      break;
    if (fds[0].revents) {
      char why = 0;
      if (read(l->wake[0], &why, 1) != 1 || why == 'x')
        break;
      continue; /* partitions taken: look for their rows at once */
    }
    if (!connected)
      continue;
    if (PQconsumeInput(s->listen_conn) != 1 || PQstatus(s->listen_conn) != CONNECTION_OK) {
      connected = false;
      continue;
    }
    PGnotify *n;
    while ((n = PQnotifies(s->listen_conn))) {
      if (strcmp(n->relname, "th_in") == 0)
        need_in = need_in || owns_any(s, n->extra);
      else if (strcmp(n->relname, "th_reply") == 0 && strcmp(n->extra, s->owner) == 0)
        need_reply = true;
      else if (strcmp(n->relname, "th_changed") == 0)
        s->ev->changed(s->ev->ctx, n->extra);
      PQfreemem(n);
    }
  }
  return NULL;
}

void sc_pg_listen_start(struct pgstore *s)
{
  L.s = s;
  sc_map_init(&L.posted);
  if (pipe(L.wake) != 0)
    sc_panic("cannot create the listener's pipe");
  if (pthread_create(&s->listen_thread, NULL, listen_main, &L) != 0)
    sc_panic("cannot start the listener thread");
  s->listen_running = true;
}

void sc_pg_listen_poke(struct pgstore *s)
{
  if (s->listen_running && write(L.wake[1], "g", 1) != 1)
    SC_WARN("event=listener_poke_failed");
}

void sc_pg_listen_stop(struct pgstore *s)
{
  if (!s->listen_running)
    return;
  if (write(L.wake[1], "x", 1) != 1)
    sc_panic("cannot stop the listener thread");
  pthread_join(s->listen_thread, NULL);
  s->listen_running = false;
  close(L.wake[0]);
  close(L.wake[1]);
  sc_map_free(&L.posted);
  if (s->listen_conn)
    PQfinish(s->listen_conn);
  s->listen_conn = NULL;
}
