/*
 * A check before unpacking: protobuf-c copies string fields into NUL-terminated C strings, so a NUL byte
 * inside a string would silently truncate it (an instance id "a\0b" would become "a"). This walks the wire
 * encoding with the message descriptors and rejects such strings, naming the field. Decoding proper is
 * left to protobuf-c; anything this walk cannot follow is left for protobuf-c to reject.
 */
#include <protobuf-c/protobuf-c.h>
#include <stdio.h>
#include <string.h>

int sc_pb_check_strings(const ProtobufCMessageDescriptor *d, const uint8_t *p,
                        size_t len, char *err, size_t errlen, int depth);

static int varint(const uint8_t **p, const uint8_t *end, uint64_t *out)
{
  uint64_t v = 0;
  for (int shift = 0; shift < 64 && *p < end; shift += 7) {
    uint8_t b = *(*p)++;
    v |= (uint64_t)(b & 0x7f) << shift;
    if (!(b & 0x80)) {
      *out = v;
      return 0;
    }
  }
  return -1;
}

int sc_pb_check_strings(const ProtobufCMessageDescriptor *d, const uint8_t *p,
                        size_t len, char *err, size_t errlen, int depth)
{
  const uint8_t *end = p + len;
  if (depth > 32)
    return 0;
  while (p < end) {
    uint64_t key, n;
    if (varint(&p, end, &key) < 0)
      return 0;
    unsigned wt = key & 7;
    uint32_t fn = (uint32_t)(key >> 3);
    const ProtobufCFieldDescriptor *f = protobuf_c_message_descriptor_get_field(d, fn);
    switch (wt) {
    case 0:
      if (varint(&p, end, &n) < 0)
        return 0;
      break;
    case 1:
      if ((size_t)(end - p) < 8)
        return 0;
      p += 8;
      break;
    case 5:
      if ((size_t)(end - p) < 4)
        return 0;
      p += 4;
      break;
    case 2:
      if (varint(&p, end, &n) < 0 || n > (uint64_t)(end - p))
        return 0;
      if (f && f->type == PROTOBUF_C_TYPE_STRING && memchr(p, 0, (size_t)n)) {
        snprintf(err, errlen, "%s: contains a NUL byte", f->name);
        return -1;
      }
      if (f && f->type == PROTOBUF_C_TYPE_MESSAGE) {
        char inner[256];
        if (sc_pb_check_strings(f->descriptor, p, (size_t)n, inner, sizeof inner, depth + 1) != 0) {
          snprintf(err, errlen, "%s.%s", f->name, inner);
          return -1;
        }
      }
      p += n;
      break;
    default:
      return 0;
    }
  }
  return 0;
}
