/* Helpers over any backend (store.h). */
#include "store.h"

#include "common/log.h"

int sc_store_unpack(const ProtobufCMessageDescriptor *d, const struct sc_blob *b, struct sc_arena *a, void **out)
{
  *out = protobuf_c_message_unpack(d, sc_arena_allocator(a), b->len, b->b);
  if (!*out) {
    SC_ERROR("event=store_corrupt type=%s bytes=%zu", d->name, b->len);
    return SC_ECORRUPT;
  }
  return SC_OK;
}

int sc_store_get_instance(struct sc_store *s, const char *iid, struct sc_arena *a, StoredInstance **out)
{
  struct sc_blob b;
  int rc = s->ops->get_instance(s, iid, a, &b);
  if (rc != SC_OK)
    return rc;
  return sc_store_unpack(&taskhubd__store__stored_instance__descriptor, &b, a, (void **)out);
}

int sc_store_history(struct sc_store *s, const char *iid, struct sc_arena *a, HistoryEvent ***out, size_t *n)
{
  struct sc_blob *b;
  int rc = s->ops->history_load(s, iid, a, &b, n);
  if (rc != SC_OK)
    return rc;
  *out = sc_arena_alloc(a, (*n ? *n : 1) * sizeof **out);
  for (size_t i = 0; rc == SC_OK && i < *n; i++)
    rc = sc_store_unpack(&history_event__descriptor, &b[i], a, (void **)&(*out)[i]);
  return rc;
}

int sc_store_inbox(struct sc_store *s, const char *iid, struct sc_arena *a, struct sc_inbox_msg **out, size_t *n)
{
  struct sc_inbox_blob *b;
  int rc = s->ops->inbox_load(s, iid, a, &b, n);
  if (rc != SC_OK)
    return rc;
  *out = sc_arena_alloc(a, (*n ? *n : 1) * sizeof **out);
  for (size_t i = 0; rc == SC_OK && i < *n; i++) {
    (*out)[i].band = b[i].band;
    (*out)[i].seq = b[i].seq;
    rc = sc_store_unpack(&taskhubd__store__stored_msg__descriptor, &b[i].msg, a, (void **)&(*out)[i].msg);
  }
  return rc;
}
