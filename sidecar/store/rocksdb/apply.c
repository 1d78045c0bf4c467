/*
 * A change set becomes one RocksDB WriteBatch, written with a synced WAL when asked: all or nothing, in the
 * order the changes were made (RocksDB gives each operation of a batch its own sequence number, so a range
 * deletion covers the puts before it and not those after it). Point deletions are used where the transaction
 * knows the keys, range deletions otherwise.
 */
#include "rocks.h"

#include "common/log.h"
#include "common/util.h"

#include <string.h>

static void put(struct rstore *r, int cf, const struct sc_key *k, const void *v, size_t n)
{
  rocksdb_writebatch_put_cf(r->wb, r->cf[cf], (const char *)k->b, k->len, v, n);
}

static void del(struct rstore *r, int cf, const struct sc_key *k)
{
  rocksdb_writebatch_delete_cf(r->wb, r->cf[cf], (const char *)k->b, k->len);
}

static void del_iid_range(struct rstore *r, int cf, const char *iid)
{
  struct sc_key lo, hi;
  sc_key_iid_lo(&lo, iid);
  sc_key_iid_hi(&hi, iid);
  rocksdb_writebatch_delete_range_cf(r->wb, r->cf[cf], (const char *)lo.b, lo.len, (const char *)hi.b, hi.len);
}

static void index_put(struct rstore *r, const char *iid, const StoredInstance *rec)
{
  struct sc_key k;
  unsigned char st = (unsigned char)rec->status;
  sc_key_ix_created(&k, rec->created_us, iid);
  put(r, SC_CF_IX_CREATED, &k, &st, 1);
  sc_key_ix_status(&k, rec->status, rec->created_us, iid);
  put(r, SC_CF_IX_STATUS, &k, "", 0);
  if (sc_status_is_terminal(rec->status)) {
    sc_key_ix_completed(&k, rec->completed_us, iid);
    put(r, SC_CF_IX_COMPLETED, &k, &st, 1);
  }
  if (rec->parent_instance_id && rec->parent_instance_id[0]) {
    sc_key_ix_parent(&k, rec->parent_instance_id, iid);
    put(r, SC_CF_IX_PARENT, &k, "", 0);
  }
}

static void index_del(struct rstore *r, const char *iid, const StoredInstance *old)
{
  struct sc_key k;
  sc_key_ix_created(&k, old->created_us, iid);
  del(r, SC_CF_IX_CREATED, &k);
  sc_key_ix_status(&k, old->status, old->created_us, iid);
  del(r, SC_CF_IX_STATUS, &k);
  if (sc_status_is_terminal(old->status)) {
    sc_key_ix_completed(&k, old->completed_us, iid);
    del(r, SC_CF_IX_COMPLETED, &k);
  }
  if (old->parent_instance_id && old->parent_instance_id[0]) {
    sc_key_ix_parent(&k, old->parent_instance_id, iid);
    del(r, SC_CF_IX_PARENT, &k);
  }
}

static bool index_same(const StoredInstance *a, const StoredInstance *b)
{
  return a->status == b->status && a->created_us == b->created_us && a->completed_us == b->completed_us &&
         strcmp(a->parent_instance_id, b->parent_instance_id) == 0;
}

static void inbox_clear(struct rstore *r, const struct sc_change *c)
{
  if (!c->keys_known) {
    del_iid_range(r, SC_CF_INBOX, c->iid);
    return;
  }
  struct sc_key k;
  for (size_t i = 0; i < c->nkeys; i++) {
    sc_key_inbox(&k, c->iid, c->keys[i].band, c->keys[i].seq);
    del(r, SC_CF_INBOX, &k);
  }
}

static void delete_instance(struct rstore *r, const struct sc_change *c)
{
  struct sc_key k;
  const StoredInstance *old = c->old;
  sc_key_inst(&k, c->iid);
  del(r, SC_CF_INST, &k);
  index_del(r, c->iid, old);
  /* Point deletions where the record says what exists: purge by filter deletes thousands of instances in one
   * batch, and every range deletion is a tombstone that later reads must step over. */
  for (int kind = SC_PAYLOAD_INPUT; kind <= SC_PAYLOAD_HISTORY_GEN; kind++) {
    sc_key_payload(&k, c->iid, kind);
    del(r, SC_CF_PAYLOAD, &k);
  }
  for (uint32_t i = 0; i < old->history_count; i++) {
    sc_key_hist(&k, c->iid, i);
    del(r, SC_CF_HIST, &k);
  }
  inbox_clear(r, c);
  if (old->has_children)
    del_iid_range(r, SC_CF_IX_PARENT, c->iid);
}

static void history_clear(struct rstore *r, const struct sc_change *c)
{
  struct sc_key k;
  /* A new generation, so that a reader streaming the old history in slices notices the replacement even when
   * the new one keeps the execution id (an SDK's rewind may). */
  unsigned char gen[8];
  sc_key_payload(&k, c->iid, SC_PAYLOAD_HISTORY_GEN);
  sc_put_be64(gen, c->seq);
  put(r, SC_CF_PAYLOAD, &k, gen, sizeof gen);
  if (c->index == UINT32_MAX) {
    del_iid_range(r, SC_CF_HIST, c->iid);
    return;
  }
  for (uint32_t i = 0; i < c->index; i++) {
    sc_key_hist(&k, c->iid, i);
    del(r, SC_CF_HIST, &k);
  }
}

static void add(struct rstore *r, const struct sc_change *c)
{
  struct sc_key k;
  switch (c->kind) {
  case SC_CH_PUT_INSTANCE:
    sc_key_inst(&k, c->iid);
    put(r, SC_CF_INST, &k, c->val, c->len);
    if (c->old && index_same(c->old, c->rec))
      break;
    if (c->old)
      index_del(r, c->iid, c->old);
    index_put(r, c->iid, c->rec);
    break;
  case SC_CH_DELETE_INSTANCE:
    delete_instance(r, c);
    break;
  case SC_CH_PUT_PAYLOAD:
    sc_key_payload(&k, c->iid, c->band);
    if (c->val)
      put(r, SC_CF_PAYLOAD, &k, c->val, c->len);
    else
      del(r, SC_CF_PAYLOAD, &k);
    break;
  case SC_CH_PUT_ENTITY:
    sc_key_inst(&k, c->iid);
    if (c->val)
      put(r, SC_CF_ENTITY, &k, c->val, c->len);
    else
      del(r, SC_CF_ENTITY, &k);
    break;
  case SC_CH_HISTORY_APPEND:
    sc_key_hist(&k, c->iid, c->index);
    put(r, SC_CF_HIST, &k, c->val, c->len);
    break;
  case SC_CH_HISTORY_CLEAR:
    history_clear(r, c);
    break;
  case SC_CH_INBOX_PUT:
    sc_key_inbox(&k, c->iid, c->band, c->seq);
    put(r, SC_CF_INBOX, &k, c->val, c->len);
    break;
  case SC_CH_INBOX_DELETE:
    sc_key_inbox(&k, c->iid, c->band, c->seq);
    del(r, SC_CF_INBOX, &k);
    break;
  case SC_CH_INBOX_CLEAR:
    inbox_clear(r, c);
    break;
  case SC_CH_TIMER_PUT:
    sc_key_timer(&k, c->due_us, c->seq);
    put(r, SC_CF_TIMER, &k, c->val, c->len);
    break;
  case SC_CH_TIMER_DELETE:
    sc_key_timer(&k, c->due_us, c->seq);
    del(r, SC_CF_TIMER, &k);
    break;
  case SC_CH_ACTQ_PUT:
    sc_key_actq(&k, c->seq);
    put(r, SC_CF_ACTQ, &k, c->val, c->len);
    break;
  case SC_CH_ACTQ_DELETE:
    sc_key_actq(&k, c->seq);
    del(r, SC_CF_ACTQ, &k);
    break;
  case SC_CH_FORWARD:
  case SC_CH_FORWARD_DONE:
  case SC_CH_REPLY:
    break; /* refused by sc_rocks_apply: one partition, nothing to forward */
  }
}

int sc_rocks_apply(struct sc_store *s, const struct sc_changes *ch, bool sync, struct sc_err *err)
{
  struct rstore *r = RS(s);
  for (size_t i = 0; i < ch->n; i++)
    if (ch->v[i].kind >= SC_CH_FORWARD) {
      sc_err_set(err, SC_EINVAL, "RocksDB store: a change between partitions, but it has only one");
      return SC_EINVAL;
    }
  /* A removed directory takes writes into unlinked files: refuse them rather than acknowledge what is lost. */
  if (sc_rocks_check_dir(r, err) != SC_OK)
    return SC_EIO;
  rocksdb_writebatch_clear(r->wb);
  for (size_t i = 0; i < ch->n; i++)
    add(r, &ch->v[i]);
  if (ch->next_seq != r->next_seq) {
    unsigned char b[8];
    sc_put_be64(b, ch->next_seq);
    rocksdb_writebatch_put_cf(r->wb, r->cf[SC_CF_META], "seq", 3, (const char *)b, 8);
  }
  char *rerr = NULL;
  rocksdb_write(r->db, sync ? r->wo_sync : r->wo_nosync, r->wb, &rerr);
  rocksdb_writebatch_clear(r->wb);
  bool failed = rerr != NULL;
  int rc = sc_rocks_status(rerr, err, "commit");
  if (failed) { /* RocksDB takes no more writes until reopened (reopen.c) */
    r->failed = true;
    r->fail_code = rc;
  }
  if (rc == SC_OK)
    r->next_seq = ch->next_seq;
  return rc;
}
