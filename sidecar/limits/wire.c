/*
 * The check before unpacking. protobuf-c trusts its input in ways a server cannot:
 *  - it unpacks, packs and frees nested messages recursively, so 10,000 levels of innerFailure (34 KB on the
 *    wire) overflow the stack;
 *  - it copies strings into NUL-terminated C strings, so a NUL inside one silently truncates it (an instance id
 *    "a\0b" would become "a");
 *  - it accepts any bytes in `string` fields, which the published SDKs then fail to decode ("String field had
 *    bad UTF-8"), so text that is not UTF-8 must never be stored and handed back;
 *  - it accepts any Timestamp or Duration, whose conversion to microseconds would then overflow.
 * This walks the encoding with the message descriptors and refuses all of these, naming the field. Anything
 * it cannot follow is malformed: protobuf-c would refuse it too.
 */
#include "limits.h"

#include "common/utf8.h"

#include "google/protobuf/duration.pb-c.h"
#include "google/protobuf/timestamp.pb-c.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

/* The ranges protobuf defines: Timestamps from 0001-01-01 to 9999-12-31, Durations of at most 10,000 years. */
#define TS_MIN_SECONDS (-62135596800LL)
#define TS_MAX_SECONDS 253402300799LL
#define DUR_MAX_SECONDS 315576000000LL

struct walk {
  char path[240];
  size_t plen;
  bool truncated;
  char *err;
  size_t errlen;
};

static int varint(const uint8_t **p, const uint8_t *end, uint64_t *out)
{
  uint64_t v = 0;
  for (int shift = 0; shift < 70 && *p < end; shift += 7) {
    uint8_t b = *(*p)++;
    if (shift == 63 && b > 1)
      return -1; /* more than 64 bits */
    v |= (uint64_t)(b & 0x7f) << shift;
    if (!(b & 0x80)) {
      *out = v;
      return 0;
    }
  }
  return -1;
}

static int fail(struct walk *w, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static int fail(struct walk *w, const char *fmt, ...)
{
  char what[160];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(what, sizeof what, fmt, ap);
  va_end(ap);
  snprintf(w->err, w->errlen, "%s%s: %s", w->plen ? w->path : "(message)", w->truncated ? "..." : "", what);
  return -1;
}

/* Appends ".name" or ".name[i]" to the path; returns the old length to restore. */
static size_t push(struct walk *w, const char *name, long index)
{
  size_t old = w->plen;
  char seg[96];
  int n = index >= 0 ? snprintf(seg, sizeof seg, "%s%s[%ld]", old ? "." : "", name, index)
                     : snprintf(seg, sizeof seg, "%s%s", old ? "." : "", name);
  if (n < 0 || w->plen + (size_t)n >= sizeof w->path) {
    w->truncated = true;
    return old;
  }
  memcpy(w->path + w->plen, seg, (size_t)n + 1);
  w->plen += (size_t)n;
  return old;
}

static void pop(struct walk *w, size_t old)
{
  w->plen = old;
  w->path[old] = 0;
}

/* seconds (1) and nanos (2) of a Timestamp or Duration. */
static int seconds_nanos(const uint8_t *p, size_t len, int64_t *s, int64_t *ns)
{
  const uint8_t *end = p + len;
  *s = *ns = 0;
  while (p < end) {
    uint64_t key, v;
    if (varint(&p, end, &key) < 0)
      return -1;
    if ((key & 7) != 0) {
      /* Unknown fields of other wire types are legal but carry nothing for us: skip them. */
      uint64_t n;
      switch (key & 7) {
      case 1: if ((size_t)(end - p) < 8) return -1; p += 8; continue;
      case 5: if ((size_t)(end - p) < 4) return -1; p += 4; continue;
      case 2:
        if (varint(&p, end, &n) < 0 || n > (uint64_t)(end - p))
          return -1;
        p += n;
        continue;
      default: return -1;
      }
    }
    if (varint(&p, end, &v) < 0)
      return -1;
    if ((key >> 3) == 1)
      *s = (int64_t)v;
    else if ((key >> 3) == 2)
      *ns = (int64_t)(int32_t)(uint32_t)v;
  }
  return 0;
}

static int check_time(struct walk *w, const ProtobufCMessageDescriptor *d, const uint8_t *p, size_t len)
{
  int64_t s, ns;
  if (seconds_nanos(p, len, &s, &ns) < 0)
    return fail(w, "not a valid protobuf encoding");
  if (d == &google__protobuf__timestamp__descriptor) {
    if (s < TS_MIN_SECONDS || s > TS_MAX_SECONDS)
      return fail(w, "seconds %lld is outside the Timestamp range (years 1 to 9999)", (long long)s);
    if (ns < 0 || ns > 999999999)
      return fail(w, "nanos %lld is outside 0 to 999999999", (long long)ns);
  } else {
    if (s < -DUR_MAX_SECONDS || s > DUR_MAX_SECONDS)
      return fail(w, "seconds %lld is outside the Duration range (10,000 years either way)", (long long)s);
    if (ns < -999999999 || ns > 999999999 || (s > 0 && ns < 0) || (s < 0 && ns > 0))
      return fail(w, "nanos %lld does not fit seconds %lld", (long long)ns, (long long)s);
  }
  return 0;
}

static int walk(struct walk *w, const ProtobufCMessageDescriptor *d, const uint8_t *p, size_t len, int depth)
{
  if (depth > SC_MAX_NESTING)
    return fail(w, "nested more than %d messages deep", SC_MAX_NESTING);
  if (d == &google__protobuf__timestamp__descriptor || d == &google__protobuf__duration__descriptor)
    return check_time(w, d, p, len);
  const uint8_t *end = p + len;
  unsigned seen[64] = {0}; /* occurrences per field, for the index of repeated fields in messages */
  while (p < end) {
    uint64_t key, n;
    if (varint(&p, end, &key) < 0 || (key >> 3) == 0 || (key >> 3) > 0x1fffffff)
      return fail(w, "not a valid protobuf encoding");
    unsigned wt = key & 7;
    const ProtobufCFieldDescriptor *f = protobuf_c_message_descriptor_get_field(d, (unsigned)(key >> 3));
    bool lenfield = f && (f->type == PROTOBUF_C_TYPE_STRING || f->type == PROTOBUF_C_TYPE_MESSAGE ||
                          f->type == PROTOBUF_C_TYPE_BYTES);
    if (lenfield && wt != 2) {
      size_t old = push(w, f->name, -1);
      fail(w, "wire type %u where a length-delimited field was expected", wt);
      pop(w, old);
      return -1;
    }
    switch (wt) {
    case 0:
      if (varint(&p, end, &n) < 0)
        return fail(w, "not a valid protobuf encoding");
      break;
    case 1:
      if ((size_t)(end - p) < 8)
        return fail(w, "not a valid protobuf encoding");
      p += 8;
      break;
    case 5:
      if ((size_t)(end - p) < 4)
        return fail(w, "not a valid protobuf encoding");
      p += 4;
      break;
    case 2: {
      if (varint(&p, end, &n) < 0 || n > (uint64_t)(end - p))
        return fail(w, "not a valid protobuf encoding");
      if (f && (f->type == PROTOBUF_C_TYPE_STRING || f->type == PROTOBUF_C_TYPE_MESSAGE)) {
        size_t fi = (size_t)(f - d->fields);
        long index = f->label == PROTOBUF_C_LABEL_REPEATED ? (long)(fi < 64 ? seen[fi]++ : 0) : -1;
        size_t old = push(w, f->name, index);
        int rc = 0;
        if (f->type == PROTOBUF_C_TYPE_STRING) {
          size_t bad;
          if (memchr(p, 0, (size_t)n))
            rc = fail(w, "contains a NUL byte");
          else if ((bad = sc_utf8_invalid_at(p, (size_t)n)) != 0)
            rc = fail(w, "is not valid UTF-8 (byte %zu)", bad - 1);
        } else {
          rc = walk(w, f->descriptor, p, (size_t)n, depth + 1);
        }
        pop(w, old);
        if (rc)
          return rc;
      }
      p += n;
      break;
    }
    default:
      return fail(w, "not a valid protobuf encoding (wire type %u)", wt);
    }
  }
  return 0;
}

int sc_wire_check(const ProtobufCMessageDescriptor *d, const uint8_t *p, size_t len, char *err, size_t errlen)
{
  struct walk w = {.err = err, .errlen = errlen};
  w.path[0] = 0;
  return walk(&w, d, p, len, 0);
}
