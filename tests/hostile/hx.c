#define _GNU_SOURCE
#include "hx.h"

#include "google/protobuf/empty.pb-c.h"

void hx_varint(hx_buf *p, uint64_t v)
{
  do {
    if (p->n + 1 > p->cap) {
      p->cap = p->cap ? p->cap * 2 : 256;
      p->b = realloc(p->b, p->cap);
      ASSERT(p->b != NULL);
    }
    uint8_t byte = v & 0x7f;
    v >>= 7;
    p->b[p->n++] = (uint8_t)(byte | (v ? 0x80 : 0));
  } while (v);
}

void hx_tag(hx_buf *p, unsigned field, unsigned wire_type)
{
  hx_varint(p, (uint64_t)field << 3 | wire_type);
}

void hx_bytes(hx_buf *p, unsigned field, const void *data, size_t len)
{
  hx_tag(p, field, 2);
  hx_varint(p, len);
  while (p->n + len > p->cap) {
    p->cap = p->cap ? p->cap * 2 : 256;
    p->b = realloc(p->b, p->cap);
    ASSERT(p->b != NULL);
  }
  if (len)
    memcpy(p->b + p->n, data, len);
  p->n += len;
}

void hx_str(hx_buf *p, unsigned field, const char *s)
{
  hx_bytes(p, field, s, strlen(s));
}

void hx_uint(hx_buf *p, unsigned field, uint64_t v)
{
  hx_tag(p, field, 0);
  hx_varint(p, v);
}

void hx_msg(hx_buf *p, unsigned field, const hx_buf *inner)
{
  hx_bytes(p, field, inner->b, inner->n);
}

void hx_free(hx_buf *p)
{
  free(p->b);
  memset(p, 0, sizeof *p);
}

grpc_status_code hx_send(th_client *c, const char *method, const hx_buf *p, char **details)
{
  return th_call_raw(c, method, p->b, p->n, IT_TIMEOUT_MS, NULL, NULL, details);
}

void hx_assert_alive(th_client *c)
{
  Google__Protobuf__Empty req = GOOGLE__PROTOBUF__EMPTY__INIT;
  char *d = NULL;
  grpc_status_code st = th_call_unary(c, IT_SVC "Hello", &req.base, &google__protobuf__empty__descriptor,
                                      IT_TIMEOUT_MS, NULL, &d);
  ASSERT_STATUS(st, GRPC_STATUS_OK, d);
  free(d);
}

char *hx_server_log(const th_server *s)
{
  char path[PATH_MAX + 32];
  snprintf(path, sizeof path, "%s/log-%d.txt", s->root, s->starts - 1);
  FILE *f = fopen(path, "rb");
  ASSERT(f != NULL);
  fseek(f, 0, SEEK_END);
  long n = ftell(f);
  fseek(f, 0, SEEK_SET);
  char *buf = malloc((size_t)n + 1);
  ASSERT(buf != NULL);
  ASSERT_EQ(fread(buf, 1, (size_t)n, f), (size_t)n);
  buf[n] = 0;
  fclose(f);
  return buf;
}
