#ifndef SC_HEAP_H
#define SC_HEAP_H

#include <stddef.h>
#include <stdint.h>

/*
 * A binary min-heap ordered by (due, seq): equal due times pop in insertion order, so timers that share a
 * due time fire in the order they were created.
 */
struct sc_heap_item {
  int64_t due;
  uint64_t seq;
  void *data;
};

struct sc_heap {
  struct sc_heap_item *v;
  size_t n, cap;
};

void sc_heap_init(struct sc_heap *h);
void sc_heap_free(struct sc_heap *h);
void sc_heap_push(struct sc_heap *h, struct sc_heap_item it);
/* The earliest item, or NULL when empty. */
const struct sc_heap_item *sc_heap_top(const struct sc_heap *h);
struct sc_heap_item sc_heap_pop(struct sc_heap *h);
/* Keeps only the items |keep| returns true for (it may free the others' data), then restores the order. */
void sc_heap_filter(struct sc_heap *h, int (*keep)(const struct sc_heap_item *it, void *ctx), void *ctx);

#endif
