#ifndef SC_MAP_H
#define SC_MAP_H

#include <stddef.h>

/*
 * A string-keyed hash map (chained, power-of-two buckets). Keys are copied; values are borrowed pointers.
 * Single-threaded: each map has one owner. Keys are hashed with SipHash under a per-process random key, so
 * clients cannot choose ids that collide.
 */
struct sc_map_entry;

struct sc_map {
  struct sc_map_entry **buckets;
  size_t nbuckets, count;
};

void sc_map_init(struct sc_map *m);
void sc_map_free(struct sc_map *m);
void *sc_map_get(const struct sc_map *m, const char *key);
/* Sets key to value (replacing any previous value, which is returned). */
void *sc_map_put(struct sc_map *m, const char *key, void *value);
/* Removes key and returns its value, or NULL. */
void *sc_map_remove(struct sc_map *m, const char *key);

/* Iteration: for (it = sc_map_first(m); it; it = sc_map_next(m, it)). Do not modify the map meanwhile. */
struct sc_map_entry *sc_map_first(const struct sc_map *m);
struct sc_map_entry *sc_map_next(const struct sc_map *m, struct sc_map_entry *e);
const char *sc_map_key(const struct sc_map_entry *e);
/* The most entries sharing one bucket: what a lookup may have to walk (tests of the keyed hash). */
size_t sc_map_longest_chain(const struct sc_map *m);
void *sc_map_value(const struct sc_map_entry *e);

#endif
