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

static int32_t part_of(const struct pgstore *s, const char *iid)
{
  return sc_pg_part_of(s, iid);
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
  case SC_CH_PUT_ENTITY:
    sc_pg_text(&p, ch->iid);
    if (!ch->val)
      return send(c, PS_DELETE_ENTITY, &p);
    sc_pg_i32(&p, part_of(s, ch->iid));
    sc_pg_bool(&p, ch->ent->has_state);
    sc_pg_i64(&p, ch->ent->last_modified_us);
    sc_pg_bytes(&p, ch->val, ch->len);
    return send(c, PS_PUT_ENTITY, &p);
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
    sc_pg_i32(&p, part_of(s, ch->iid));
    return send(c, PS_TIMER_PUT, &p);
  case SC_CH_TIMER_DELETE:
    sc_pg_i64(&p, ch->due_us);
    sc_pg_i64(&p, (int64_t)ch->seq);
    return send(c, PS_TIMER_DELETE, &p);
  case SC_CH_ACTQ_PUT:
    sc_pg_i64(&p, (int64_t)ch->seq);
    sc_pg_bytes(&p, ch->val, ch->len);
    sc_pg_i32(&p, part_of(s, ch->iid));
    return send(c, PS_ACTQ_PUT, &p);
  case SC_CH_ACTQ_DELETE:
    sc_pg_i64(&p, (int64_t)ch->seq);
    return send(c, PS_ACTQ_DELETE, &p);
  case SC_CH_FORWARD:
    sc_pg_i64(&p, (int64_t)ch->seq);
    sc_pg_i32(&p, ch->band);
    sc_pg_bytes(&p, ch->val, ch->len);
    return send(c, PS_FORWARD, &p);
  case SC_CH_FORWARD_DONE:
    sc_pg_i64(&p, (int64_t)ch->seq);
    sc_pg_i32(&p, ch->band);
    return send(c, PS_FORWARD_DONE, &p);
  case SC_CH_REPLY:
    sc_pg_text(&p, ch->iid);
    sc_pg_i64(&p, (int64_t)ch->seq);
    sc_pg_bytes(&p, ch->val, ch->len);
    return send(c, PS_REPLY, &p);
  }
  return false;
}

/* Reads every result up to the sync; false if any statement failed (the first error goes to |err|, its SQLSTATE
 * to |state|); *fenced when the fence refused the commit. */
static bool drain(PGconn *c, bool *fenced, struct sc_err *err, char state[6])
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
    const char *code = PQresultErrorField(r, PG_DIAG_SQLSTATE);
    if (code && strcmp(code, "TH001") == 0)
      *fenced = true;
    if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK && ok) {
      ok = false;
      /* The statements after the failed one report only that the pipeline was aborted: the first says why. */
      snprintf(state, 6, "%s", code ? code : "");
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

/* The partition a change writes, or -1 for rows any replica may write (forwards, replies). */
static int change_part(const struct pgstore *s, const struct sc_change *ch)
{
  switch (ch->kind) {
  case SC_CH_FORWARD:
  case SC_CH_REPLY:
    return -1;
  case SC_CH_FORWARD_DONE:
    return ch->band;
  default:
    return part_of(s, ch->iid);
  }
}

/*
 * The fence's arguments: the partitions the change set writes and the epochs at which they are ours, as array
 * literals. A change set writing a partition this replica does not hold is refused here (the engine let it go
 * or never had it): it must not reach PostgreSQL.
 */
static bool fence_args(struct pgstore *s, const struct sc_changes *chs, struct sc_pg_parts *l, struct sc_err *err)
{
  bool touched[SC_MAX_PARTITIONS] = {false};
  for (size_t i = 0; i < chs->n; i++) {
    int p = change_part(s, &chs->v[i]);
    if (p >= 0 && p < s->partitions)
      touched[p] = true;
  }
  sc_pg_parts_init(l);
  for (int p = 0; p < s->partitions; p++) {
    if (!touched[p])
      continue;
    int64_t ep = atomic_load(&s->epoch[p]);
    if (!ep) {
      sc_err_set(err, SC_ELOCKLOST, "fenced: the commit writes partition %d, which this replica does not own", p);
      return false;
    }
    sc_pg_parts_add(l, p, ep);
  }
  return true;
}

static bool send_notify(PGconn *c, const char *channel, const char *payload, size_t len)
{
  struct sc_pgparams p = {0};
  sc_pg_text(&p, channel);
  sc_pg_bytes(&p, payload, len);
  return send(c, PS_NOTIFY, &p);
}

/*
 * Tells the other replicas what this change set did for them: commands waiting in a partition's incoming table
 * (its owner reads them), answers (their replica reads them), and instances whose status changed (waiters there
 * read them again). Notifications go out only when the transaction commits; ones lost in a reconnect are
 * caught by the listeners' sweep.
 */
static bool send_notifications(struct pgstore *s, PGconn *c, const struct sc_changes *chs)
{
  bool forward[SC_MAX_PARTITIONS] = {false};
  char buf[7900];
  size_t n = 0;
  for (size_t i = 0; i < chs->n; i++) {
    const struct sc_change *ch = &chs->v[i];
    if (ch->kind == SC_CH_FORWARD && ch->band >= 0 && ch->band < SC_MAX_PARTITIONS)
      forward[ch->band] = true;
    else if (ch->kind == SC_CH_REPLY && !send_notify(c, "th_reply", ch->iid, strlen(ch->iid)))
      return false;
    /* What a parked WaitForInstanceStart/Completion can be waiting for: leaving PENDING, reaching an end, or
     * going away. (A new instance has no waiters: a wait for an unknown instance is answered at once.) */
    bool changed = (ch->kind == SC_CH_PUT_INSTANCE && ch->old && ch->old->status != ch->rec->status &&
                    (ch->old->status == ORCHESTRATION_STATUS__ORCHESTRATION_STATUS_PENDING ||
                     (sc_status_is_terminal(ch->rec->status) && !sc_status_is_terminal(ch->old->status)))) ||
                   ch->kind == SC_CH_DELETE_INSTANCE;
    if (!changed || s->exclusive)
      continue;
    size_t len = strlen(ch->iid);
    if (n + len + 1 > sizeof buf) {
      if (!send_notify(c, "th_changed", buf, n))
        return false;
      n = 0;
    }
    if (len + 1 <= sizeof buf) {
      memcpy(buf + n, ch->iid, len);
      buf[n + len] = '\n';
      n += len + 1;
    }
  }
  if (n && !send_notify(c, "th_changed", buf, n - 1))
    return false;
  /* The partitions written to, so only their owners' listeners go and read. */
  struct sc_pg_parts to;
  sc_pg_parts_init(&to);
  for (int p = 0; p < s->partitions; p++)
    if (forward[p])
      sc_pg_parts_add(&to, p, 0);
  return !to.n || send_notify(c, "th_in", to.parts, to.a + 1);
}

/* One attempt: *lost is set when the connection broke (or was broken to begin with); |state| gets the SQLSTATE of
 * the statement that failed ("" when none did or none was reported). */
static int attempt(struct pgstore *s, const struct sc_changes *chs, bool sync, bool *lost, char state[6],
                   struct sc_err *err)
{
  *lost = false;
  state[0] = 0;
  if (atomic_load(&s->fenced)) {
    sc_err_set(err, SC_ELOCKLOST, "fenced: another replica took this replica's partitions");
    return SC_ELOCKLOST;
  }
  struct sc_pg_parts fence;
  if (!fence_args(s, chs, &fence, err))
    return SC_ELOCKLOST;
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
  if (ok && fence.n) {
    /* First, in the same transaction: are the partitions it writes still ours? (owner.c) Their rows are locked
     * in id order before the check locks them in whatever order its plan reads them, as the lease renewal does:
     * two orders were a deadlock (PS_FENCE_LOCK). */
    struct sc_pgparams lk = {0};
    sc_pg_text(&lk, fence.parts);
    lk.fmt[0] = 0; /* an array literal */
    struct sc_pgparams p = {0};
    sc_pg_text(&p, s->owner);
    sc_pg_text(&p, fence.parts);
    sc_pg_text(&p, fence.eps);
    p.fmt[1] = p.fmt[2] = 0; /* array literals */
    ok = send(c, PS_FENCE_LOCK, &lk) && send(c, PS_FENCE, &p);
  }
  for (size_t i = 0; ok && i < chs->n; i++)
    ok = send_change(s, c, &chs->v[i]);
  ok = ok && send_notifications(s, c, chs);
  if (ok && s->exclusive && chs->next_seq != s->next_seq) {
    struct sc_pgparams p = {0};
    sc_pg_i64(&p, (int64_t)chs->next_seq);
    ok = send(c, PS_SET_SEQ, &p);
  }
  ok = ok && send_sql(c, "COMMIT") && PQpipelineSync(c) == 1;
  if (!ok)
    sc_err_set(err, SC_EIO, "PostgreSQL: sending the commit failed: %s", PQerrorMessage(c));
  /* Whatever was sent is read back before the connection is used again. */
  bool fenced = false;
  bool applied = drain(c, &fenced, ok ? err : &(struct sc_err){0}, state) && ok;
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
  if (!applied && state[0] == '5' && state[1] == '3') {
    /* Class 53, insufficient resources: 53100 disk full, 53200 out of memory, 53300 too many connections. */
    static const char prefix[] = "PostgreSQL: commit failed: ";
    char why[sizeof err->msg];
    snprintf(why, sizeof why, "%s", err->msg + (strncmp(err->msg, prefix, sizeof prefix - 1) ? 0 : sizeof prefix - 1));
    why[strcspn(why, "\n")] = 0; /* PostgreSQL's hint ("Check free disk space.") is on a line of its own */
    sc_err_set(err, SC_ENOSPACE, "PostgreSQL refused the commit for lack of %s (SQLSTATE %s): %s",
               strcmp(state, "53100") == 0 ? "disk space" : strcmp(state, "53200") == 0 ? "memory" : "resources",
               state, why);
    return SC_ENOSPACE;
  }
  return applied ? SC_OK : SC_EIO;
}

/* Serialization failures and deadlocks: PostgreSQL rolled the whole transaction back, and the same transaction
 * sent again normally goes through (the other side of the conflict has moved on). */
static bool transient(const char *state)
{
  return strcmp(state, "40001") == 0 || strcmp(state, "40P01") == 0;
}

/* 10, 20, 40, 80 ms... each shortened at random to between half and all of it, so that two replicas that
 * deadlocked do not meet again in step. Writer thread only. */
static void backoff(int attempt)
{
  static uint64_t x;
  if (!x)
    x = (uint64_t)sc_mono_us() | 1;
  x ^= x << 13, x ^= x >> 7, x ^= x << 17;
  int64_t full = (int64_t)10000 << (attempt < 6 ? attempt : 6);
  usleep((useconds_t)(full / 2 + (int64_t)(x % (uint64_t)(full / 2 + 1))));
}

/*
 * A commit whose connection broke (PostgreSQL restarted, failed over, or the network dropped) is sent again once
 * a connection is back, for as long as STORE_RETRY_S; one PostgreSQL rolled back as a deadlock victim or a
 * serialization failure is sent again up to CONFLICT_RETRIES times. Whether or not an earlier try committed, the
 * next leaves the same state, since every change sets a key to a value or deletes it (nothing adds to what is
 * there) and no other writer changed those keys meanwhile. Nothing is acknowledged until a try has committed.
 * Every try passes the fence again, so none goes through once the partitions are another replica's. Other
 * failures (a statement refused, PostgreSQL out of disk space) are not retried here: the engine fails the
 * batch's commands and the next batch tries again.
 */
#define STORE_RETRY_S 300
#define CONFLICT_RETRIES 5

int sc_pg_apply(struct sc_store *st, const struct sc_changes *chs, bool sync, struct sc_err *err)
{
  struct pgstore *s = PG(st);
  bool lost;
  char state[6];
  int rc = attempt(s, chs, sync, &lost, state, err);
  for (int waited = 0, conflicts = 0; rc != SC_OK && rc != SC_ELOCKLOST;) {
    if (lost && waited < STORE_RETRY_S * 10) {
      if (waited++ % 50 == 0)
        SC_WARN("event=store_reconnecting error=%s", SC_Q(err->msg));
      usleep(100000);
    } else if (!lost && transient(state) && conflicts < CONFLICT_RETRIES) {
      atomic_fetch_add_explicit(&sc_metrics.pg_commit_retries, 1, memory_order_relaxed);
      SC_WARN("event=store_commit_retry sqlstate=%s attempt=%d changes=%zu error=%s", state, conflicts + 1, chs->n,
              SC_Q(err->msg));
      backoff(conflicts++);
    } else {
      break;
    }
    bool was_lost = lost;
    rc = attempt(s, chs, sync, &lost, state, err);
    if (rc == SC_OK && was_lost)
      SC_INFO("event=store_reconnected op=commit");
  }
  if (rc == SC_ELOCKLOST) {
    /* Refused before anything of it was written: by the fence in the transaction, or without sending it once the
     * lease thread found the partitions taken. */
    atomic_fetch_add_explicit(&sc_metrics.pg_fenced_commits, 1, memory_order_relaxed);
    SC_ERROR("event=commit_fenced owner=%s changes=%zu error=%s", SC_Q(s->owner), chs->n, SC_Q(err->msg));
    return rc;
  }
  if (rc != SC_OK) {
    /* Commands from other replicas that the change set would have marked done are still waiting, but the
     * listener handed them over already: it hands every waiting one over again when it next wakes (a
     * notification, or the sweep within 5 s), not at once, so that a PostgreSQL still refusing commits is not
     * sent the same one in a loop; the engine, which forgets what the failed commit applied, applies them then. */
    atomic_fetch_add(&s->owned_gen, 1);
    SC_ERROR("event=store_error op=commit sqlstate=%s error=%s", state[0] ? state : "none", SC_Q(err->msg));
    return rc == SC_ENOSPACE ? SC_ENOSPACE : SC_EIO;
  }
  s->next_seq = chs->next_seq;
  return SC_OK;
}
