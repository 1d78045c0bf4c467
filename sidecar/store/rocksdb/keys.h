#ifndef SC_KEYS_H
#define SC_KEYS_H

/*
 * RocksDB key layout (see docs/storage.md). Integers are big-endian and timestamps are microseconds with the
 * sign bit flipped, so byte order is numeric order. Instance ids never contain NUL or control bytes, so
 * `iid 0x00 suffix` keys are ordered and prefix-free.
 */

#include "store/store.h"

#include <stddef.h>
#include <stdint.h>

#define SC_SCHEMA_VERSION 1u

/* Longest key; query cursors are keys too. */
#define SC_KEY_MAX SC_CURSOR_MAX

enum sc_cf {
  SC_CF_META = 0, /* "default": schema version, sequence counter */
  SC_CF_INST,     /* iid -> StoredInstance */
  SC_CF_PAYLOAD,  /* iid 0 kind -> bytes */
  SC_CF_HIST,     /* iid 0 be32 index -> HistoryEvent */
  SC_CF_INBOX,    /* iid 0 band be64 seq -> StoredMsg */
  SC_CF_TIMER,    /* ts be64 seq -> StoredTimer */
  SC_CF_ACTQ,     /* be64 seq -> StoredActivity (issue 3) */
  SC_CF_IX_CREATED,   /* ts(created) iid -> status byte */
  SC_CF_IX_STATUS,    /* status ts(created) iid -> "" */
  SC_CF_IX_COMPLETED, /* ts(completed) iid -> status byte */
  SC_CF_IX_PARENT,    /* parent 0 child -> "" */
  SC_CF_ENTITY,       /* entity id -> StoredEntity (its queue is the inbox of that id) */
  SC_CF_COUNT
};

extern const char *const sc_cf_names[SC_CF_COUNT];

/* Also under `iid 0 kind` in the payload CF, but store-internal: be64 generation of the instance's history, set
 * from the sequence counter whenever the history is replaced (history_clear); absent until then. */
#define SC_PAYLOAD_HISTORY_GEN 4


struct sc_key {
  size_t len;
  unsigned char b[SC_KEY_MAX];
};

void sc_key_ts(unsigned char out[8], int64_t us);
int64_t sc_key_get_ts(const unsigned char in[8]);

void sc_key_inst(struct sc_key *k, const char *iid);
void sc_key_payload(struct sc_key *k, const char *iid, int kind);
void sc_key_hist(struct sc_key *k, const char *iid, uint32_t index);
void sc_key_inbox(struct sc_key *k, const char *iid, int band, uint64_t seq);
/* [iid 0x00, iid 0x01): every key of one instance in a per-instance CF. */
void sc_key_iid_lo(struct sc_key *k, const char *iid);
void sc_key_iid_hi(struct sc_key *k, const char *iid);
void sc_key_timer(struct sc_key *k, int64_t due_us, uint64_t seq);
void sc_key_ix_created(struct sc_key *k, int64_t created_us, const char *iid);
void sc_key_ix_status(struct sc_key *k, int status, int64_t created_us, const char *iid);
void sc_key_ix_completed(struct sc_key *k, int64_t completed_us, const char *iid);
void sc_key_ix_parent(struct sc_key *k, const char *parent, const char *child);
void sc_key_actq(struct sc_key *k, uint64_t seq);

#endif
