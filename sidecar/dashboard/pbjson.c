/*
 * Stored protobuf messages (history events, failure details) as JSON, walked through protobuf-c's descriptors so
 * that every event type, present and future, comes out without a line of its own here.
 */
#include "internal.h"

#include "common/log.h"
#include "common/util.h"

#include <ctype.h>
#include <stdlib.h>
#include <strings.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

static const char *const status_names[8] = {"RUNNING",  "COMPLETED",  "CONTINUED_AS_NEW", "FAILED",
                                            "CANCELED", "TERMINATED", "PENDING",          "SUSPENDED"};

const char *dash_status_name(int status)
{
  return status >= 0 && status < 8 ? status_names[status] : "UNKNOWN";
}

int dash_status_parse(const char *s, size_t n)
{
  static const char pre[] = "ORCHESTRATION_STATUS_";
  if (n > sizeof pre - 1 && strncasecmp(s, pre, sizeof pre - 1) == 0) {
    s += sizeof pre - 1;
    n -= sizeof pre - 1;
  }
  for (int i = 0; i < 8; i++)
    if (strlen(status_names[i]) == n && strncasecmp(s, status_names[i], n) == 0)
      return i;
  return -1;
}

struct json_object *dash_json_time(int64_t us)
{
  time_t secs = (time_t)(us >= 0 ? us / 1000000 : (us - 999999) / 1000000);
  int64_t frac = us - (int64_t)secs * 1000000;
  struct tm tm;
  gmtime_r(&secs, &tm);
  char buf[48];
  size_t n = strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%S", &tm);
  snprintf(buf + n, sizeof buf - n, ".%06lldZ", (long long)frac);
  return json_object_new_string(buf);
}

static bool is_named(const ProtobufCMessageDescriptor *d, const char *name)
{
  return strcmp(d->name, name) == 0;
}

static struct json_object *scalar(const ProtobufCFieldDescriptor *f, const void *p)
{
  switch (f->type) {
  case PROTOBUF_C_TYPE_INT32:
  case PROTOBUF_C_TYPE_SINT32:
  case PROTOBUF_C_TYPE_SFIXED32:
    return json_object_new_int(*(const int32_t *)p);
  case PROTOBUF_C_TYPE_UINT32:
  case PROTOBUF_C_TYPE_FIXED32:
    return json_object_new_int64(*(const uint32_t *)p);
  case PROTOBUF_C_TYPE_INT64:
  case PROTOBUF_C_TYPE_SINT64:
  case PROTOBUF_C_TYPE_SFIXED64:
    return json_object_new_int64(*(const int64_t *)p);
  case PROTOBUF_C_TYPE_UINT64:
  case PROTOBUF_C_TYPE_FIXED64:
    return json_object_new_uint64(*(const uint64_t *)p);
  case PROTOBUF_C_TYPE_FLOAT:
    return json_object_new_double(*(const float *)p);
  case PROTOBUF_C_TYPE_DOUBLE:
    return json_object_new_double(*(const double *)p);
  case PROTOBUF_C_TYPE_BOOL:
    return json_object_new_boolean(*(const protobuf_c_boolean *)p);
  case PROTOBUF_C_TYPE_ENUM: {
    const ProtobufCEnumValue *v =
        protobuf_c_enum_descriptor_get_value((const ProtobufCEnumDescriptor *)f->descriptor, *(const int *)p);
    return v ? json_object_new_string(v->name) : json_object_new_int(*(const int *)p);
  }
  case PROTOBUF_C_TYPE_STRING: {
    const char *s = *(char *const *)p;
    return json_object_new_string(s ? s : "");
  }
  case PROTOBUF_C_TYPE_BYTES: {
    const ProtobufCBinaryData *b = p;
    char *hex = malloc(b->len * 2 + 1);
    if (!hex)
      sc_panic("out of memory rendering bytes");
    sc_hex_encode(b->data, b->len, hex);
    struct json_object *o = json_object_new_string_len(hex, (int)(b->len * 2));
    free(hex);
    return o;
  }
  case PROTOBUF_C_TYPE_MESSAGE: {
    const ProtobufCMessage *m = *(ProtobufCMessage *const *)p;
    return m ? dash_json_message(m) : NULL;
  }
  }
  return NULL;
}

struct json_object *dash_json_message(const ProtobufCMessage *m)
{
  const ProtobufCMessageDescriptor *d = m->descriptor;
  if (is_named(d, "google.protobuf.Timestamp")) {
    const Google__Protobuf__Timestamp *t = (const void *)m;
    return dash_json_time(t->seconds * 1000000 + t->nanos / 1000);
  }
  if (strncmp(d->name, "google.protobuf.", 16) == 0 && strstr(d->name, "Value") && d->n_fields == 1)
    return scalar(&d->fields[0], (const char *)m + d->fields[0].offset);
  struct json_object *o = json_object_new_object();
  for (unsigned i = 0; i < d->n_fields; i++) {
    const ProtobufCFieldDescriptor *f = &d->fields[i];
    const char *base = (const char *)m;
    if (f->flags & PROTOBUF_C_FIELD_FLAG_ONEOF) {
      if (*(const uint32_t *)(base + f->quantifier_offset) != f->id)
        continue;
    } else if (f->label == PROTOBUF_C_LABEL_REPEATED) {
      size_t n = *(const size_t *)(base + f->quantifier_offset);
      if (!n)
        continue;
      struct json_object *a = json_object_new_array_ext((int)n);
      const char *arr = *(char *const *)(base + f->offset);
      size_t sz = f->type == PROTOBUF_C_TYPE_MESSAGE || f->type == PROTOBUF_C_TYPE_STRING ? sizeof(void *)
                  : f->type == PROTOBUF_C_TYPE_BYTES                                       ? sizeof(ProtobufCBinaryData)
                  : f->type == PROTOBUF_C_TYPE_INT64 || f->type == PROTOBUF_C_TYPE_UINT64 ||
                          f->type == PROTOBUF_C_TYPE_SINT64 || f->type == PROTOBUF_C_TYPE_FIXED64 ||
                          f->type == PROTOBUF_C_TYPE_SFIXED64 || f->type == PROTOBUF_C_TYPE_DOUBLE
                      ? 8
                  : f->type == PROTOBUF_C_TYPE_BOOL ? sizeof(protobuf_c_boolean)
                                                    : 4;
      /* map<string,string> entries come out as an object, as JSON mappings of protobuf do */
      bool map = f->type == PROTOBUF_C_TYPE_MESSAGE &&
                 ((const ProtobufCMessageDescriptor *)f->descriptor)->n_fields == 2 &&
                 strstr(((const ProtobufCMessageDescriptor *)f->descriptor)->name, "Entry");
      if (map) {
        json_object_put(a);
        a = json_object_new_object();
        for (size_t k = 0; k < n; k++) {
          const ProtobufCMessage *e = ((ProtobufCMessage *const *)(const void *)arr)[k];
          const ProtobufCFieldDescriptor *kf = &e->descriptor->fields[0], *vf = &e->descriptor->fields[1];
          const char *key = *(char *const *)((const char *)e + kf->offset);
          json_object_object_add(a, key ? key : "", scalar(vf, (const char *)e + vf->offset));
        }
      } else {
        for (size_t k = 0; k < n; k++)
          json_object_array_add(a, scalar(f, arr + k * sz));
      }
      json_object_object_add(o, f->name, a);
      continue;
    } else if (f->type == PROTOBUF_C_TYPE_MESSAGE || f->type == PROTOBUF_C_TYPE_STRING) {
      const void *p = *(void *const *)(base + f->offset);
      if (!p || (f->type == PROTOBUF_C_TYPE_STRING && !*(const char *)p))
        continue;
    } else if (f->label == PROTOBUF_C_LABEL_OPTIONAL && f->quantifier_offset &&
               !*(const protobuf_c_boolean *)(base + f->quantifier_offset)) {
      continue;
    } else if (f->label == PROTOBUF_C_LABEL_NONE) {
      /* proto3 scalars: left out at their default, as JSON mappings of protobuf do */
      const void *dflt = NULL;
      switch (f->type) {
      case PROTOBUF_C_TYPE_BOOL:
        dflt = *(const protobuf_c_boolean *)(base + f->offset) ? NULL : "";
        break;
      case PROTOBUF_C_TYPE_INT64: case PROTOBUF_C_TYPE_UINT64: case PROTOBUF_C_TYPE_SINT64:
      case PROTOBUF_C_TYPE_FIXED64: case PROTOBUF_C_TYPE_SFIXED64:
        dflt = *(const int64_t *)(base + f->offset) ? NULL : "";
        break;
      case PROTOBUF_C_TYPE_BYTES:
        dflt = ((const ProtobufCBinaryData *)(base + f->offset))->len ? NULL : "";
        break;
      case PROTOBUF_C_TYPE_DOUBLE:
        dflt = *(const double *)(base + f->offset) != 0 ? NULL : "";
        break;
      default:
        dflt = *(const int32_t *)(base + f->offset) ? NULL : "";
        break;
      }
      if (dflt)
        continue;
    }
    struct json_object *v = scalar(f, base + f->offset);
    if (v)
      json_object_object_add(o, f->name, v);
  }
  return o;
}
