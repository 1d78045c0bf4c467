/*
 * A change set becomes one PostgreSQL transaction, sent in pipeline mode: BEGIN, one prepared statement per
 * change, the sequence counter, COMMIT, then one sync, so the whole batch costs one round trip however many
 * changes it holds. Any statement failing aborts the transaction, and nothing of it is applied.
 */
#include "pg.h"

#include "common/log.h"
#include "common/metrics.h"
#include "common/util.h"

#include <string.h>
#include <unistd.h>

/* The partition of an instance: FNV-1a of its id modulo the partitions, fixed when the task hub was created, so
 * an instance never changes partition. */
static int32_t part_of(const struct pgstore *s, const char *iid)
{
  uint32_t h = 2166136261u;
  for (const unsigned char *p = (const unsigned char *)iid; *p; p++)
    h = (h ^ *p) * 16777619u;
  return s->partitions > 0 ? (int32_t)(h % (uint32_t)s->partitions) : 0;
}

static bool send(PGconn *c, enum sc_pg_stmt st, const struct sc_pgparams *p)
{
  char name[16];
  snprintf(name, sizeof name, "s%d", (int)st);
  return PQsendQueryPrepared(c, name, p->n, p->v, p->len, p->fmt, 1) == 1;
}

static bool send_change(const struct pgstore *s, PGconn *c, const struct sc_change *ch)
{
  struct sc_pgparams p = {0};
  switch (ch->kind) {
  case SC_CH_PUT_INSTANCE: {
    const StoredInstance *r = ch->rec;
    sc_pg_text(&p, ch->iid);
    sc_pg_i32(&p, part_of(s, ch->iid));
    sc_pg_i32(&p, r->status);
    sc_pg_i64(&p, r->created_us);
    if (sc_status_is_terminal(r->status))
      sc_pg_i64(&p, r->completed_us);
    else
      sc_pg_null(&p);
    if (r->parent_instance_id && r->parent_instance_id[0])
      sc_pg_text(&p, r->parent_instance_id);
    else
      sc_pg_null(&p);
    sc_pg_bytes(&p, ch->val, ch->len);
    return send(c, PS_PUT_INSTANCE, &p);
  }
  case SC_CH_DELETE_INSTANCE:
    sc_pg_text(&p, ch->iid);
    if (!send(c, PS_DELETE_INSTANCE, &p))
      return false;
    return !ch->old->has_children || send(c, PS_ORPHAN_CHILDREN, &p);
  case SC_CH_PUT_PAYLOAD:
    sc_pg_text(&p, ch->iid);
    sc_pg_i32(&p, ch->band);
    if (!ch->val)
      return send(c, PS_DELETE_PAYLOAD, &p);
    sc_pg_bytes(&p, ch->val, ch->len);
    return send(c, PS_PUT_PAYLOAD, &p);
  case SC_CH_HISTORY_APPEND:
    sc_pg_text(&p, ch->iid);
    sc_pg_i32(&p, (int32_t)ch->index);
    sc_pg_bytes(&p, ch->val, ch->len);
    return send(c, PS_HISTORY_APPEND, &p);
  case SC_CH_HISTORY_CLEAR: {
    unsigned char gen[8];
    sc_put_be64(gen, ch->seq);
    sc_pg_text(&p, ch->iid);
    sc_pg_bytes(&p, gen, sizeof gen);
    return send(c, PS_HISTORY_CLEAR, &p);
  }
  case SC_CH_INBOX_PUT:
    sc_pg_text(&p, ch->iid);
    sc_pg_i32(&p, ch->band);
    sc_pg_i64(&p, (int64_t)ch->seq);
    sc_pg_i32(&p, part_of(s, ch->iid));
    sc_pg_bytes(&p, ch->val, ch->len);
    return send(c, PS_INBOX_PUT, &p);
  case SC_CH_INBOX_DELETE:
    sc_pg_text(&p, ch->iid);
    sc_pg_i32(&p, ch->band);
    sc_pg_i64(&p, (int64_t)ch->seq);
    return send(c, PS_INBOX_DELETE, &p);
  case SC_CH_INBOX_CLEAR:
    sc_pg_text(&p, ch->iid);
    return send(c, PS_INBOX_CLEAR, &p);
  case SC_CH_TIMER_PUT:
    sc_pg_i64(&p, ch->due_us);
    sc_pg_i64(&p, (int64_t)ch->seq);
    sc_pg_bytes(&p, ch->val, ch->len);
    return send(c, PS_TIMER_PUT, &p);
  case SC_CH_TIMER_DELETE:
    sc_pg_i64(&p, ch->due_us);
    sc_pg_i64(&p, (int64_t)ch->seq);
    return send(c, PS_TIMER_DELETE, &p);
  case SC_CH_ACTQ_PUT:
    sc_pg_i64(&p, (int64_t)ch->seq);
    sc_pg_bytes(&p, ch->val, ch->len);
    return send(c, PS_ACTQ_PUT, &p);
  case SC_CH_ACTQ_DELETE:
    sc_pg_i64(&p, (int64_t)ch->seq);
    return send(c, PS_ACTQ_DELETE, &p);
  }
  return false;
}

/* Reads every result up to the sync; false if any statement failed (the first error goes to |err|); *fenced when
 * the fence refused the commit. */
static bool drain(PGconn *c, bool *fenced, struct sc_err *err)
{
  bool ok = true;
  for (;;) {
    PGresult *r = PQgetResult(c);
    if (!r) {
      if (PQstatus(c) == CONNECTION_BAD) {
        if (ok)
          sc_err_set(err, SC_EIO, "PostgreSQL: connection lost: %s", PQerrorMessage(c));
        return false;
      }
      continue; /* the end of one statement's results */
    }
    ExecStatusType st = PQresultStatus(r);
    if (st == PGRES_PIPELINE_SYNC) {
      PQclear(r);
      return ok;
    }
    const char *state = PQresultErrorField(r, PG_DIAG_SQLSTATE);
    if (state && strcmp(state, "TH001") == 0)
      *fenced = true;
    if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK && ok) {
      ok = false;
      sc_err_set(err, SC_EIO, "PostgreSQL: commit failed: %s",
                 st == PGRES_PIPELINE_ABORTED ? "pipeline aborted" : PQresultErrorMessage(r));
    }
    PQclear(r);
  }
}

static bool send_sql(PGconn *c, const char *sql)
{
  return PQsendQueryParams(c, sql, 0, NULL, NULL, NULL, NULL, 1) == 1;
}

/* One attempt: *lost is set when the connection broke (or was broken to begin with). */
static int attempt(struct pgstore *s, const struct sc_changes *chs, bool sync, bool *lost, struct sc_err *err)
{
  *lost = false;
  if (atomic_load(&s->fenced)) {
    sc_err_set(err, SC_ELOCKLOST, "fenced: another replica took this replica's partitions");
    return SC_ELOCKLOST;
  }
  PGconn *c = s->writer.c;
  if (!c || PQstatus(c) != CONNECTION_OK) {
    atomic_fetch_add_explicit(&sc_metrics.pg_reconnects, 1, memory_order_relaxed);
    if (sc_pg_connect(s, &s->writer, err) != SC_OK) {
      *lost = true;
      return SC_EIO;
    }
    c = s->writer.c;
  }
  if (PQenterPipelineMode(c) != 1) {
    sc_err_set(err, SC_EIO, "PostgreSQL: cannot enter pipeline mode: %s", PQerrorMessage(c));
    *lost = PQstatus(c) != CONNECTION_OK;
    return SC_EIO;
  }
  bool ok = send_sql(c, "BEGIN") && (sync || send_sql(c, "SET LOCAL synchronous_commit = off"));
  if (ok) {
    /* First, in the same transaction: are the partitions still ours? (owner.c) */
    struct sc_pgparams p = {0};
    sc_pg_text(&p, s->owner);
    sc_pg_i64(&p, atomic_load(&s->epoch));
    ok = send(c, PS_FENCE, &p);
  }
  for (size_t i = 0; ok && i < chs->n; i++)
    ok = send_change(s, c, &chs->v[i]);
  if (ok && chs->next_seq != s->next_seq) {
    struct sc_pgparams p = {0};
    sc_pg_i64(&p, (int64_t)chs->next_seq);
    ok = send(c, PS_SET_SEQ, &p);
  }
  ok = ok && send_sql(c, "COMMIT") && PQpipelineSync(c) == 1;
  if (!ok)
    sc_err_set(err, SC_EIO, "PostgreSQL: sending the commit failed: %s", PQerrorMessage(c));
  /* Whatever was sent is read back before the connection is used again. */
  bool fenced = false;
  bool applied = drain(c, &fenced, ok ? err : &(struct sc_err){0}) && ok;
  atomic_fetch_add_explicit(&sc_metrics.pg_commits, 1, memory_order_relaxed);
  if (!applied)
    atomic_fetch_add_explicit(&sc_metrics.pg_errors, 1, memory_order_relaxed);
  PQexitPipelineMode(c);
  *lost = PQstatus(c) != CONNECTION_OK;
  if (!applied && !*lost)
    PQclear(PQexec(c, "ROLLBACK")); /* an explicit transaction stays open, failed, after its pipeline's sync */
  if (fenced) {
    atomic_store(&s->fenced, true);
    sc_err_set(err, SC_ELOCKLOST, "fenced: another replica took this replica's partitions");
    return SC_ELOCKLOST;
  }
  return applied ? SC_OK : SC_EIO;
}

/*
 * A commit whose connection broke (PostgreSQL restarted, failed over, or the network dropped) is sent again once
 * a connection is back, for as long as STORE_RETRY_S: whether or not the first try committed, the second leaves
 * the same state, since every change sets a key to a value or deletes it (nothing adds to what is there) and no
 * other writer changed those keys meanwhile. Nothing is acknowledged until a try has committed. Other failures
 * (a statement refused) are not retried.
 */
#define STORE_RETRY_S 300

int sc_pg_apply(struct sc_store *st, const struct sc_changes *chs, bool sync, struct sc_err *err)
{
  struct pgstore *s = PG(st);
  bool lost;
  int rc = attempt(s, chs, sync, &lost, err);
  for (int waited = 0; rc != SC_OK && lost && waited < STORE_RETRY_S * 10; waited++) {
    if (waited % 50 == 0)
      SC_WARN("event=store_reconnecting error=%s", SC_Q(err->msg));
    usleep(100000);
    rc = attempt(s, chs, sync, &lost, err);
    if (rc == SC_OK)
      SC_INFO("event=store_reconnected op=commit");
  }
  if (rc == SC_ELOCKLOST) {
    /* Refused before anything of it was written: by the fence in the transaction, or without sending it once the
     * lease thread found the partitions taken. */
    atomic_fetch_add_explicit(&sc_metrics.pg_fenced_commits, 1, memory_order_relaxed);
    SC_ERROR("event=commit_fenced owner=%s epoch=%lld changes=%zu", SC_Q(s->owner), (long long)atomic_load(&s->epoch),
             chs->n);
    return rc;
  }
  if (rc != SC_OK) {
    SC_ERROR("event=store_error op=commit error=%s", SC_Q(err->msg));
    return SC_EIO;
  }
  s->next_seq = chs->next_seq;
  return SC_OK;
}
