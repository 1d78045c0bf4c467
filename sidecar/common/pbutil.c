#include "pbutil.h"

#include <stdint.h>
#include <string.h>

Google__Protobuf__Timestamp *sc_pb_ts(struct sc_arena *a, int64_t us)
{
  Google__Protobuf__Timestamp *t = sc_arena_alloc(a, sizeof *t);
  google__protobuf__timestamp__init(t);
  int64_t s = us / 1000000, rem = us % 1000000;
  if (rem < 0) {
    rem += 1000000;
    s--;
  }
  t->seconds = s;
  t->nanos = (int32_t)(rem * 1000);
  return t;
}

int64_t sc_pb_ts_us(const Google__Protobuf__Timestamp *t)
{
  /* Timestamps from the wire are range-checked (limits/wire.c); saturate anything else rather than overflow. */
  if (t->seconds > INT64_MAX / 1000000 - 1)
    return INT64_MAX;
  if (t->seconds < INT64_MIN / 1000000 + 1)
    return INT64_MIN;
  return t->seconds * 1000000 + t->nanos / 1000;
}

Google__Protobuf__StringValue *sc_pb_sv(struct sc_arena *a, const char *s)
{
  if (!s)
    return NULL;
  Google__Protobuf__StringValue *v = sc_arena_alloc(a, sizeof *v);
  google__protobuf__string_value__init(v);
  v->value = (char *)s;
  return v;
}

Google__Protobuf__StringValue *sc_pb_sv_copy(struct sc_arena *a,
                                             const Google__Protobuf__StringValue *v)
{
  return v ? sc_pb_sv(a, v->value) : NULL;
}

HistoryEvent *sc_pb_event(struct sc_arena *a, int32_t event_id, int64_t us)
{
  HistoryEvent *e = sc_arena_alloc(a, sizeof *e);
  history_event__init(e);
  e->eventid = event_id;
  e->timestamp = sc_pb_ts(a, us);
  return e;
}

const char *sc_pb_status_name(int status)
{
  switch (status) {
  case ORCHESTRATION_STATUS__ORCHESTRATION_STATUS_RUNNING: return "RUNNING";
  case ORCHESTRATION_STATUS__ORCHESTRATION_STATUS_COMPLETED: return "COMPLETED";
  case ORCHESTRATION_STATUS__ORCHESTRATION_STATUS_CONTINUED_AS_NEW: return "CONTINUED_AS_NEW";
  case ORCHESTRATION_STATUS__ORCHESTRATION_STATUS_FAILED: return "FAILED";
  case ORCHESTRATION_STATUS__ORCHESTRATION_STATUS_CANCELED: return "CANCELED";
  case ORCHESTRATION_STATUS__ORCHESTRATION_STATUS_TERMINATED: return "TERMINATED";
  case ORCHESTRATION_STATUS__ORCHESTRATION_STATUS_PENDING: return "PENDING";
  case ORCHESTRATION_STATUS__ORCHESTRATION_STATUS_SUSPENDED: return "SUSPENDED";
  }
  return "UNKNOWN";
}

struct kv_entry {
  ProtobufCMessage base;
  char *key;
  char *value;
};

void *sc_pb_copy_tags(struct sc_arena *a, const ProtobufCMessageDescriptor *d, size_t n, void *const *src)
{
  if (!n)
    return NULL;
  void **out = sc_arena_alloc(a, n * sizeof *out);
  for (size_t i = 0; i < n; i++) {
    struct kv_entry *e = sc_arena_alloc(a, d->sizeof_message);
    protobuf_c_message_init(d, e);
    e->key = ((struct kv_entry *)src[i])->key;
    e->value = ((struct kv_entry *)src[i])->value;
    out[i] = e;
  }
  return out;
}
