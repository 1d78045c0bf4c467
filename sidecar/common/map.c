#include "map.h"

#include "log.h"

#include <pthread.h>
#include <sodium.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

struct sc_map_entry {
  struct sc_map_entry *next;
  size_t hash;
  void *value;
  char key[];
};

/* Keys are instance ids, tokens and names that clients choose. With an unkeyed hash (this was FNV-1a) anyone can
 * compute ids that share a bucket and turn every lookup into a walk of one long chain; SipHash under a key drawn
 * at start-up leaves nothing to compute against. The key is the same for every map in the process, so a
 * map's buckets never depend on when it was made. */
static unsigned char hash_key[crypto_shorthash_KEYBYTES];
static pthread_once_t hash_once = PTHREAD_ONCE_INIT;

static void hash_key_init(void)
{
  if (sodium_init() < 0)
    sc_panic("libsodium failed to initialise (no source of randomness?)");
  crypto_shorthash_keygen(hash_key);
}

static size_t hash_str(const char *s)
{
  pthread_once(&hash_once, hash_key_init);
  unsigned char out[crypto_shorthash_BYTES];
  crypto_shorthash(out, (const unsigned char *)s, strlen(s), hash_key);
  uint64_t h;
  memcpy(&h, out, sizeof h);
  return (size_t)h;
}

void sc_map_init(struct sc_map *m)
{
  m->buckets = NULL;
  m->nbuckets = 0;
  m->count = 0;
}

void sc_map_free(struct sc_map *m)
{
  for (size_t i = 0; i < m->nbuckets; i++) {
    struct sc_map_entry *e = m->buckets[i];
    while (e) {
      struct sc_map_entry *n = e->next;
      free(e);
      e = n;
    }
  }
  free(m->buckets);
  sc_map_init(m);
}

static struct sc_map_entry **find(const struct sc_map *m, const char *key,
                                  size_t h)
{
  if (!m->nbuckets)
    return NULL;
  struct sc_map_entry **pp = &m->buckets[h & (m->nbuckets - 1)];
  for (; *pp; pp = &(*pp)->next)
    if ((*pp)->hash == h && strcmp((*pp)->key, key) == 0)
      return pp;
  return pp;
}

static void grow(struct sc_map *m)
{
  size_t nb = m->nbuckets ? m->nbuckets * 2 : 16;
  struct sc_map_entry **b = calloc(nb, sizeof *b);
  if (!b)
    sc_panic("out of memory growing a map to %zu buckets", nb);
  for (size_t i = 0; i < m->nbuckets; i++) {
    struct sc_map_entry *e = m->buckets[i];
    while (e) {
      struct sc_map_entry *n = e->next;
      e->next = b[e->hash & (nb - 1)];
      b[e->hash & (nb - 1)] = e;
      e = n;
    }
  }
  free(m->buckets);
  m->buckets = b;
  m->nbuckets = nb;
}

void *sc_map_get(const struct sc_map *m, const char *key)
{
  struct sc_map_entry **pp = find(m, key, hash_str(key));
  return pp && *pp ? (*pp)->value : NULL;
}

void *sc_map_put(struct sc_map *m, const char *key, void *value)
{
  size_t h = hash_str(key);
  struct sc_map_entry **pp = find(m, key, h);
  if (pp && *pp) {
    void *old = (*pp)->value;
    (*pp)->value = value;
    return old;
  }
  if (m->count + 1 > m->nbuckets * 3 / 4) {
    grow(m);
    pp = find(m, key, h);
  }
  size_t kl = strlen(key);
  struct sc_map_entry *e = malloc(sizeof *e + kl + 1);
  if (!e)
    sc_panic("out of memory adding a map entry");
  e->hash = h;
  e->value = value;
  memcpy(e->key, key, kl + 1);
  e->next = NULL;
  *pp = e;
  m->count++;
  return NULL;
}

void *sc_map_remove(struct sc_map *m, const char *key)
{
  struct sc_map_entry **pp = find(m, key, hash_str(key));
  if (!pp || !*pp)
    return NULL;
  struct sc_map_entry *e = *pp;
  void *v = e->value;
  *pp = e->next;
  free(e);
  m->count--;
  return v;
}

struct sc_map_entry *sc_map_first(const struct sc_map *m)
{
  for (size_t i = 0; i < m->nbuckets; i++)
    if (m->buckets[i])
      return m->buckets[i];
  return NULL;
}

struct sc_map_entry *sc_map_next(const struct sc_map *m, struct sc_map_entry *e)
{
  if (e->next)
    return e->next;
  for (size_t i = (e->hash & (m->nbuckets - 1)) + 1; i < m->nbuckets; i++)
    if (m->buckets[i])
      return m->buckets[i];
  return NULL;
}

const char *sc_map_key(const struct sc_map_entry *e)
{
  return e->key;
}

void *sc_map_value(const struct sc_map_entry *e)
{
  return e->value;
}

size_t sc_map_longest_chain(const struct sc_map *m)
{
  size_t longest = 0;
  for (size_t i = 0; i < m->nbuckets; i++) {
    size_t n = 0;
    for (const struct sc_map_entry *e = m->buckets[i]; e; e = e->next)
      n++;
    if (n > longest)
      longest = n;
  }
  return longest;
}
