#include "arena.h"

#include "log.h"

#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct sc_arena_chunk {
  struct sc_arena_chunk *next;
  size_t cap, off;
  max_align_t data[];
};

#define FIRST_CHUNK 4096

static void *xmalloc(size_t n)
{
  void *p = malloc(n);
  if (!p)
    sc_panic("out of memory allocating %zu bytes", n);
  return p;
}

static void *pb_alloc(void *data, size_t n)
{
  return sc_arena_alloc(data, n);
}

static void pb_free(void *data, void *p)
{
  (void)data;
  (void)p;
}

void sc_arena_init(struct sc_arena *a)
{
  a->head = NULL;
  a->used_bytes = 0;
  a->pb.alloc = pb_alloc;
  a->pb.free = pb_free;
  a->pb.allocator_data = a;
}

void *sc_arena_alloc(struct sc_arena *a, size_t n)
{
  const size_t align = sizeof(max_align_t);
  n = (n + align - 1) & ~(align - 1);
  if (n == 0)
    n = align;
  struct sc_arena_chunk *c = a->head;
  if (!c || c->cap - c->off < n) {
    size_t cap = c ? c->cap * 2 : FIRST_CHUNK;
    if (cap > (size_t)1 << 20)
      cap = (size_t)1 << 20;
    if (cap < n)
      cap = n;
    c = xmalloc(sizeof *c + cap);
    c->cap = cap;
    c->off = 0;
    c->next = a->head;
    a->head = c;
  }
  void *p = (char *)c->data + c->off;
  c->off += n;
  a->used_bytes += n;
  return p;
}

void *sc_arena_calloc(struct sc_arena *a, size_t n)
{
  void *p = sc_arena_alloc(a, n);
  memset(p, 0, n);
  return p;
}

char *sc_arena_strndup(struct sc_arena *a, const char *s, size_t n)
{
  char *p = sc_arena_alloc(a, n + 1);
  memcpy(p, s, n);
  p[n] = 0;
  return p;
}

char *sc_arena_strdup(struct sc_arena *a, const char *s)
{
  return sc_arena_strndup(a, s, strlen(s));
}

char *sc_arena_printf(struct sc_arena *a, const char *fmt, ...)
{
  va_list ap;
  va_start(ap, fmt);
  int n = vsnprintf(NULL, 0, fmt, ap);
  va_end(ap);
  if (n < 0)
    n = 0;
  char *p = sc_arena_alloc(a, (size_t)n + 1);
  va_start(ap, fmt);
  vsnprintf(p, (size_t)n + 1, fmt, ap);
  va_end(ap);
  return p;
}

void sc_arena_reset(struct sc_arena *a)
{
  struct sc_arena_chunk *c = a->head;
  if (!c)
    return;
  /* Keep the oldest (smallest) chunk: resets on hot paths then allocate nothing. */
  while (c->next) {
    struct sc_arena_chunk *n = c->next;
    free(c);
    c = n;
  }
  c->off = 0;
  a->head = c;
  a->used_bytes = 0;
}

void sc_arena_free(struct sc_arena *a)
{
  struct sc_arena_chunk *c = a->head;
  while (c) {
    struct sc_arena_chunk *n = c->next;
    free(c);
    c = n;
  }
  a->head = NULL;
  a->used_bytes = 0;
}

ProtobufCAllocator *sc_arena_allocator(struct sc_arena *a)
{
  return &a->pb;
}
