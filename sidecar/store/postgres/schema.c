/*
 * The PostgreSQL tables and statements. Ids are `text COLLATE "C"`, so they sort byte by byte as in RocksDB and
 * query cursors mean the same in both stores. Records are the same protobuf bytes RocksDB keeps; the columns
 * beside them are what queries filter and order on. `part` is the instance's partition (a stable hash of its id),
 * for spreading partitions among replicas; one replica owns them all for now.
 */
#include "pg.h"

#include "common/log.h"

#include <stdlib.h>
#include <string.h>

const char *const sc_pg_sql[PS_COUNT] = {
    [PS_GET_INSTANCE] = "SELECT rec FROM th_instance WHERE iid = $1",
    [PS_GET_PAYLOAD] = "SELECT data FROM th_payload WHERE iid = $1 AND kind = $2",
    [PS_HISTORY_LOAD] = "SELECT idx, ev FROM th_history WHERE iid = $1 ORDER BY idx",
    /* One statement, so one snapshot: the record, the generation, then the events from $2 on. */
    [PS_HISTORY_RANGE] = "SELECT * FROM (SELECT 0 AS part, -1 AS idx, rec FROM th_instance WHERE iid = $1 "
                         "UNION ALL SELECT 1, -1, data FROM th_payload WHERE iid = $1 AND kind = 4 "
                         "UNION ALL (SELECT 2, idx, ev FROM th_history WHERE iid = $1 AND idx >= $2 "
                         "ORDER BY idx LIMIT $3)) u ORDER BY part, idx",
    [PS_INBOX_LOAD] = "SELECT band, seq, msg FROM th_inbox WHERE iid = $1 ORDER BY band, seq",
    [PS_TIMER_GET] = "SELECT timer FROM th_timer WHERE due_us = $1 AND seq = $2",
    [PS_ACTQ_GET] = "SELECT act FROM th_actq WHERE seq = $1",
    [PS_CHILDREN] = "SELECT iid FROM th_instance WHERE parent = $1 ORDER BY iid",
    /* Rows written before schema 3 have no partition: the scan decides by their instance id. */
    [PS_TIMER_SCAN] = "SELECT due_us, seq, timer, part FROM th_timer WHERE $1 < 0 OR part = $1 OR part IS NULL "
                      "ORDER BY due_us, seq",
    [PS_ACTQ_SCAN] = "SELECT seq, act, part FROM th_actq WHERE $1 < 0 OR part = $1 OR part IS NULL ORDER BY seq",
    [PS_INBOX_SCAN] = "SELECT DISTINCT iid FROM th_inbox WHERE $1 < 0 OR part = $1 ORDER BY iid",
    [PS_PUT_INSTANCE] = "INSERT INTO th_instance (iid, part, status, created_us, completed_us, parent, rec) "
                        "VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (iid) DO UPDATE SET "
                        "status = $3, created_us = $4, completed_us = $5, parent = $6, rec = $7",
    [PS_DELETE_INSTANCE] = "WITH p AS (DELETE FROM th_payload WHERE iid = $1), "
                           "h AS (DELETE FROM th_history WHERE iid = $1), "
                           "m AS (DELETE FROM th_inbox WHERE iid = $1) "
                           "DELETE FROM th_instance WHERE iid = $1",
    /* As RocksDB drops a deleted parent's index entries: a new instance with the same id has no children. */
    [PS_ORPHAN_CHILDREN] = "UPDATE th_instance SET parent = NULL WHERE parent = $1",
    [PS_PUT_PAYLOAD] = "INSERT INTO th_payload (iid, kind, data) VALUES ($1, $2, $3) "
                       "ON CONFLICT (iid, kind) DO UPDATE SET data = $3",
    [PS_DELETE_PAYLOAD] = "DELETE FROM th_payload WHERE iid = $1 AND kind = $2",
    [PS_HISTORY_APPEND] = "INSERT INTO th_history (iid, idx, ev) VALUES ($1, $2, $3) "
                          "ON CONFLICT (iid, idx) DO UPDATE SET ev = $3",
    [PS_HISTORY_CLEAR] = "WITH h AS (DELETE FROM th_history WHERE iid = $1) "
                         "INSERT INTO th_payload (iid, kind, data) VALUES ($1, 4, $2) "
                         "ON CONFLICT (iid, kind) DO UPDATE SET data = $2",
    [PS_INBOX_PUT] = "INSERT INTO th_inbox (iid, band, seq, part, msg) VALUES ($1, $2, $3, $4, $5) "
                     "ON CONFLICT (iid, band, seq) DO UPDATE SET msg = $5",
    [PS_INBOX_DELETE] = "DELETE FROM th_inbox WHERE iid = $1 AND band = $2 AND seq = $3",
    [PS_INBOX_CLEAR] = "DELETE FROM th_inbox WHERE iid = $1",
    [PS_TIMER_PUT] = "INSERT INTO th_timer (due_us, seq, timer, part) VALUES ($1, $2, $3, $4) "
                     "ON CONFLICT (due_us, seq) DO UPDATE SET timer = $3",
    [PS_TIMER_DELETE] = "DELETE FROM th_timer WHERE due_us = $1 AND seq = $2",
    [PS_ACTQ_PUT] = "INSERT INTO th_actq (seq, act, part) VALUES ($1, $2, $3) "
                    "ON CONFLICT (seq) DO UPDATE SET act = $2",
    [PS_ACTQ_DELETE] = "DELETE FROM th_actq WHERE seq = $1",
    [PS_SET_SEQ] = "UPDATE th_meta SET value = GREATEST(value, $1) WHERE key = 'seq'",
    [PS_FENCE] = "SELECT th_fence_parts($1, $2::int[], $3::bigint[])",
    /* Rows keep their id once applied (done), so a sender's commit sent again after a lost connection cannot
     * insert an applied one again; the listener deletes old done rows. */
    [PS_FORWARD] = "INSERT INTO th_incoming (id, part, body) VALUES ($1, $2, $3) ON CONFLICT (id) DO NOTHING",
    [PS_FORWARD_DONE] = "UPDATE th_incoming SET done = now() WHERE id = $1 AND part = $2",
    [PS_REPLY] = "INSERT INTO th_reply (replica, id, body) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING",
    [PS_NOTIFY] = "SELECT pg_notify($1, $2)",
    [PS_SEQ_BLOCK] = "SELECT nextval('th_seq_block')",
    [PS_GET_ENTITY] = "SELECT rec FROM th_entity WHERE id = $1",
    [PS_PUT_ENTITY] = "INSERT INTO th_entity (id, part, has_state, last_modified_us, rec) VALUES ($1, $2, $3, $4, $5) "
                      "ON CONFLICT (id) DO UPDATE SET has_state = $3, last_modified_us = $4, rec = $5",
    [PS_DELETE_ENTITY] = "DELETE FROM th_entity WHERE id = $1",
    /* Before PS_FENCE, in the same transaction: the partitions' rows locked in id order (the sort is below the
     * lock), the order the lease renewal locks them in too (owner.c). The fence function's own lock follows its
     * plan, which after ANALYZE scans the table in its physical order: against a renewal locking in id order that
     * was a deadlock. With the rows already held, the function waits for nothing. */
    [PS_FENCE_LOCK] = "SELECT 1 FROM th_partition WHERE id = ANY($1::int[]) ORDER BY id FOR SHARE",
};

/* Schema version 1. Each later version adds one entry to the migrations below; nothing is ever edited. */
static const char *const v1 =
    "CREATE TABLE th_instance (iid text COLLATE \"C\" PRIMARY KEY, part int NOT NULL, status int NOT NULL, "
    "  created_us bigint NOT NULL, completed_us bigint, parent text COLLATE \"C\", rec bytea NOT NULL);"
    "CREATE INDEX th_instance_created ON th_instance (created_us, iid);"
    "CREATE INDEX th_instance_status ON th_instance (status, created_us, iid);"
    "CREATE INDEX th_instance_completed ON th_instance (completed_us, iid) WHERE completed_us IS NOT NULL;"
    "CREATE INDEX th_instance_parent ON th_instance (parent, iid) WHERE parent IS NOT NULL;"
    "CREATE TABLE th_payload (iid text COLLATE \"C\", kind int, data bytea NOT NULL, PRIMARY KEY (iid, kind));"
    "CREATE TABLE th_history (iid text COLLATE \"C\", idx int, ev bytea NOT NULL, PRIMARY KEY (iid, idx));"
    "CREATE TABLE th_inbox (iid text COLLATE \"C\", band int, seq bigint, part int NOT NULL, msg bytea NOT NULL,"
    "  PRIMARY KEY (iid, band, seq));"
    "CREATE TABLE th_timer (due_us bigint, seq bigint, timer bytea NOT NULL, PRIMARY KEY (due_us, seq));"
    "CREATE TABLE th_actq (seq bigint PRIMARY KEY, act bytea NOT NULL);"
    "INSERT INTO th_meta (key, value) VALUES ('seq', 1);";

/* Schema version 2: partitions, their owners and the fence every commit passes (owner.c). */
static const char *const v2 =
    "CREATE TABLE th_partition (id int PRIMARY KEY, owner text, epoch bigint NOT NULL DEFAULT 0,"
    "  lease_until timestamptz);"
    "INSERT INTO th_partition (id) SELECT generate_series(0, 31);"
    "INSERT INTO th_meta (key, value) VALUES ('partitions', 32);"
    "CREATE FUNCTION th_fence(me text, ep bigint) RETURNS void LANGUAGE plpgsql AS $$ BEGIN"
    "  PERFORM 1 FROM th_partition FOR SHARE;"
    "  IF EXISTS (SELECT 1 FROM th_partition WHERE owner IS DISTINCT FROM me OR epoch <> ep) THEN"
    "    RAISE EXCEPTION 'fenced: the partitions are no longer owned by % at epoch %', me, ep"
    "      USING ERRCODE = 'TH001';"
    "  END IF;"
    "END $$;";

/* Schema version 3: partitions shared among replicas. Timers and activities know their partition; commands for
 * another replica's partition wait in th_incoming, answers in th_reply; replicas say they are alive (and whether
 * workers are connected) in th_replica; sequence numbers come in blocks of 2^40 from th_seq_block, so replicas
 * never collide and a partition's new owner counts on above its old owner; the fence checks only the
 * partitions a commit writes, each at its own epoch. */
static const char *const v3 =
    "ALTER TABLE th_timer ADD COLUMN part int;"
    "ALTER TABLE th_actq ADD COLUMN part int;"
    "CREATE INDEX th_timer_part ON th_timer (part);"
    "CREATE INDEX th_actq_part ON th_actq (part);"
    "CREATE INDEX th_inbox_part ON th_inbox (part, iid);"
    "CREATE TABLE th_incoming (id bigint PRIMARY KEY, part int NOT NULL, body bytea NOT NULL,"
    "  done timestamptz);"
    "CREATE INDEX th_incoming_waiting ON th_incoming (part, id) WHERE done IS NULL;"
    "CREATE TABLE th_reply (replica text NOT NULL, id bigint NOT NULL, at timestamptz NOT NULL DEFAULT now(),"
    "  body bytea NOT NULL, PRIMARY KEY (replica, id));"
    "CREATE TABLE th_replica (id text PRIMARY KEY, workers boolean NOT NULL, seen timestamptz NOT NULL);"
    "CREATE SEQUENCE th_seq_block;"
    "SELECT setval('th_seq_block', (SELECT value FROM th_meta WHERE key = 'seq') / 1099511627776 + 1);"
    "CREATE FUNCTION th_fence_parts(me text, parts int[], eps bigint[]) RETURNS void LANGUAGE plpgsql AS $$"
    "DECLARE n int; BEGIN"
    "  SELECT count(*) INTO n FROM (SELECT 1 FROM th_partition p JOIN unnest(parts, eps) AS u(id, ep)"
    "    ON p.id = u.id WHERE p.owner = me AND p.epoch = u.ep FOR SHARE OF p) x;"
    "  IF n <> cardinality(parts) THEN"
    "    RAISE EXCEPTION 'fenced: partitions % are no longer all owned by % at epochs %', parts, me, eps"
    "      USING ERRCODE = 'TH001';"
    "  END IF;"
    "END $$;";

/* Schema version 4: durable entities. A record per entity (its queue is th_inbox under the entity's id). */
static const char *const v4 =
    "CREATE TABLE th_entity (id text COLLATE \"C\" PRIMARY KEY, part int NOT NULL, has_state boolean NOT NULL,"
    "  last_modified_us bigint NOT NULL, rec bytea NOT NULL);";

static const char *const migrations[] = {v1, v2, v3, v4};
#define N_MIGRATIONS (sizeof migrations / sizeof *migrations)

/* Runs |sql|; its rows, or NULL after rolling back with the reason in |err|. */
static PGresult *run(PGconn *c, const char *sql, const char *what, struct sc_err *err)
{
  PGresult *r = PQexec(c, sql);
  ExecStatusType st = PQresultStatus(r);
  if (st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK)
    return r;
  sc_err_set(err, SC_EIO, "PostgreSQL: %s failed: %s", what, r ? PQresultErrorMessage(r) : PQerrorMessage(c));
  PQclear(r);
  PQclear(PQexec(c, "ROLLBACK"));
  return NULL;
}

/* Runs a statement whose rows are not needed. */
static bool exec(PGconn *c, const char *sql, const char *what, struct sc_err *err)
{
  PGresult *r = run(c, sql, what, err);
  PQclear(r);
  return r != NULL;
}

int sc_pg_migrate(PGconn *c, uint64_t *next_seq, int *partitions, struct sc_err *err)
{
  /* Replicas starting together: one migrates, the others wait on the lock and then find it done. */
  if (!exec(c, "BEGIN", "locking the schema", err) ||
      !exec(c, "SELECT pg_advisory_xact_lock(7306451270412591)", "locking the schema", err) ||
      !exec(c, "CREATE TABLE IF NOT EXISTS th_meta (key text PRIMARY KEY, value bigint NOT NULL)",
            "reading the schema version", err))
    return SC_EIO;
  PGresult *r = run(c, "SELECT value FROM th_meta WHERE key = 'schema'", "reading the schema version", err);
  if (!r)
    return SC_EIO;
  long version = PQntuples(r) ? strtol(PQgetvalue(r, 0, 0), NULL, 10) : 0;
  PQclear(r);
  if (version > (long)N_MIGRATIONS) {
    PQclear(PQexec(c, "ROLLBACK"));
    sc_err_set(err, SC_ESTATE,
               "the database holds taskhubd schema version %ld, newer than this taskhubd supports (%d); refusing "
               "to use it: run a newer taskhubd",
               version, (int)N_MIGRATIONS);
    return SC_ESTATE;
  }
  for (long v = version; v < (long)N_MIGRATIONS; v++) {
    SC_INFO("event=store_migrate from=%ld to=%ld", v, v + 1);
    if (!exec(c, migrations[v], "migrating the schema", err))
      return SC_EIO;
  }
  char sql[128];
  snprintf(sql, sizeof sql,
           "INSERT INTO th_meta (key, value) VALUES ('schema', %d) ON CONFLICT (key) DO UPDATE SET value = %d",
           (int)N_MIGRATIONS, (int)N_MIGRATIONS);
  if (!exec(c, sql, "recording the schema version", err) ||
      !(r = run(c, "SELECT value FROM th_meta WHERE key = 'seq'", "reading the sequence counter", err)))
    return SC_EIO;
  *next_seq = PQntuples(r) ? strtoull(PQgetvalue(r, 0, 0), NULL, 10) : 1;
  PQclear(r);
  if (!(r = run(c, "SELECT count(*) FROM th_partition", "reading the partitions", err)))
    return SC_EIO;
  *partitions = atoi(PQgetvalue(r, 0, 0));
  PQclear(r);
  return exec(c, "COMMIT", "committing the schema", err) ? SC_OK : SC_EIO;
}
