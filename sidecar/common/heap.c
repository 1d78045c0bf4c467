#include "heap.h"

#include "log.h"

#include <stdlib.h>

static int less(const struct sc_heap_item *a, const struct sc_heap_item *b)
{
  return a->due < b->due || (a->due == b->due && a->seq < b->seq);
}

void sc_heap_init(struct sc_heap *h)
{
  h->v = NULL;
  h->n = h->cap = 0;
}

void sc_heap_free(struct sc_heap *h)
{
  free(h->v);
  sc_heap_init(h);
}

void sc_heap_push(struct sc_heap *h, struct sc_heap_item it)
{
  if (h->n == h->cap) {
    size_t cap = h->cap ? h->cap * 2 : 64;
    struct sc_heap_item *v = realloc(h->v, cap * sizeof *v);
    if (!v)
      sc_panic("out of memory growing a heap to %zu items", cap);
    h->v = v;
    h->cap = cap;
  }
  size_t i = h->n++;
  while (i > 0) {
    size_t p = (i - 1) / 2;
    if (!less(&it, &h->v[p]))
      break;
    h->v[i] = h->v[p];
    i = p;
  }
  h->v[i] = it;
}

const struct sc_heap_item *sc_heap_top(const struct sc_heap *h)
{
  return h->n ? &h->v[0] : NULL;
}


static void sift_down(struct sc_heap *h, size_t i)
{
  struct sc_heap_item it = h->v[i];
  for (;;) {
    size_t l = 2 * i + 1, r = l + 1, m = i;
    const struct sc_heap_item *mv = &it;
    if (l < h->n && less(&h->v[l], mv)) {
      m = l;
      mv = &h->v[l];
    }
    if (r < h->n && less(&h->v[r], mv))
      m = r;
    if (m == i)
      break;
    h->v[i] = h->v[m];
    i = m;
  }
  h->v[i] = it;
}

struct sc_heap_item sc_heap_pop(struct sc_heap *h)
{
  SC_ASSERT(h->n > 0);
  struct sc_heap_item top = h->v[0];
  h->v[0] = h->v[--h->n];
  if (h->n)
    sift_down(h, 0);
  return top;
}

void sc_heap_filter(struct sc_heap *h, int (*keep)(const struct sc_heap_item *it, void *ctx), void *ctx)
{
  size_t n = 0;
  for (size_t i = 0; i < h->n; i++)
    if (keep(&h->v[i], ctx))
      h->v[n++] = h->v[i];
  h->n = n;
  for (size_t i = n / 2; i-- > 0;)
    sift_down(h, i);
}
