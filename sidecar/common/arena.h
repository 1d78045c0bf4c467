#ifndef SC_ARENA_H
#define SC_ARENA_H

#include <protobuf-c/protobuf-c.h>
#include <stddef.h>

/*
 * A bump allocator: everything allocated for one RPC, one engine batch or one work item comes from an arena
 * and is released at once by sc_arena_reset/sc_arena_free. protobuf-c unpacks into it through
 * sc_arena_allocator(), so decoded messages need no free_unpacked.
 */
struct sc_arena_chunk;

struct sc_arena {
  struct sc_arena_chunk *head;
  size_t used_bytes; /* bytes handed out since the last reset */
  ProtobufCAllocator pb;
};

void sc_arena_init(struct sc_arena *a);
void *sc_arena_alloc(struct sc_arena *a, size_t n);
void *sc_arena_calloc(struct sc_arena *a, size_t n);
char *sc_arena_strdup(struct sc_arena *a, const char *s);
char *sc_arena_strndup(struct sc_arena *a, const char *s, size_t n);
char *sc_arena_printf(struct sc_arena *a, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
/* Frees every chunk but the first, which is kept for reuse. */
void sc_arena_reset(struct sc_arena *a);
void sc_arena_free(struct sc_arena *a);
ProtobufCAllocator *sc_arena_allocator(struct sc_arena *a);

#endif
