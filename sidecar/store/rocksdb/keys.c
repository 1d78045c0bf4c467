#include "keys.h"

#include "common/log.h"
#include "common/util.h"

#include <string.h>

const char *const sc_cf_names[SC_CF_COUNT] = {
    "default", "inst", "payload", "hist", "inbox", "timer", "actq",
    "ix_created", "ix_status", "ix_completed", "ix_parent", "entity"};

/* Timestamps in keys are encoded as in query cursors, which index keys double as. */
void sc_key_ts(unsigned char out[8], int64_t us)
{
  sc_cursor_put_time(out, us);
}

int64_t sc_key_get_ts(const unsigned char in[8])
{
  return sc_cursor_get_time(in);
}

static void add(struct sc_key *k, const void *p, size_t n)
{
  SC_ASSERT(k->len + n <= sizeof k->b);
  memcpy(k->b + k->len, p, n);
  k->len += n;
}

static void add_byte(struct sc_key *k, unsigned char c)
{
  add(k, &c, 1);
}

static void add_id(struct sc_key *k, const char *id)
{
  size_t n = strlen(id);
  SC_ASSERT(n <= SC_MAX_ID);
  add(k, id, n);
}

static void add_ts(struct sc_key *k, int64_t us)
{
  unsigned char b[8];
  sc_key_ts(b, us);
  add(k, b, 8);
}

static void add_be64(struct sc_key *k, uint64_t v)
{
  unsigned char b[8];
  sc_put_be64(b, v);
  add(k, b, 8);
}

void sc_key_inst(struct sc_key *k, const char *iid)
{
  k->len = 0;
  add_id(k, iid);
}

void sc_key_payload(struct sc_key *k, const char *iid, int kind)
{
  k->len = 0;
  add_id(k, iid);
  add_byte(k, 0);
  add_byte(k, (unsigned char)kind);
}

void sc_key_hist(struct sc_key *k, const char *iid, uint32_t index)
{
  unsigned char b[4];
  k->len = 0;
  add_id(k, iid);
  add_byte(k, 0);
  sc_put_be32(b, index);
  add(k, b, 4);
}

void sc_key_inbox(struct sc_key *k, const char *iid, int band, uint64_t seq)
{
  k->len = 0;
  add_id(k, iid);
  add_byte(k, 0);
  add_byte(k, (unsigned char)band);
  add_be64(k, seq);
}

void sc_key_iid_lo(struct sc_key *k, const char *iid)
{
  k->len = 0;
  add_id(k, iid);
  add_byte(k, 0);
}

void sc_key_iid_hi(struct sc_key *k, const char *iid)
{
  k->len = 0;
  add_id(k, iid);
  add_byte(k, 1);
}

void sc_key_timer(struct sc_key *k, int64_t due_us, uint64_t seq)
{
  k->len = 0;
  add_ts(k, due_us);
  add_be64(k, seq);
}

void sc_key_ix_created(struct sc_key *k, int64_t created_us, const char *iid)
{
  k->len = 0;
  add_ts(k, created_us);
  add_id(k, iid);
}

void sc_key_ix_status(struct sc_key *k, int status, int64_t created_us,
                      const char *iid)
{
  k->len = 0;
  add_byte(k, (unsigned char)status);
  add_ts(k, created_us);
  add_id(k, iid);
}

void sc_key_ix_completed(struct sc_key *k, int64_t completed_us,
                         const char *iid)
{
  k->len = 0;
  add_ts(k, completed_us);
  add_id(k, iid);
}

void sc_key_ix_parent(struct sc_key *k, const char *parent, const char *child)
{
  k->len = 0;
  add_id(k, parent);
  add_byte(k, 0);
  add_id(k, child);
}

void sc_key_actq(struct sc_key *k, uint64_t seq)
{
  k->len = 0;
  add_be64(k, seq);
}
