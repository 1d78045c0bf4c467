#include "common/heap.h"
#include "common/map.h"
#include "common/util.h"
#include "store/rocksdb/keys.h"
#include "test.h"

static int keycmp(const struct sc_key *a, const struct sc_key *b)
{
  size_t m = a->len < b->len ? a->len : b->len;
  int c = memcmp(a->b, b->b, m);
  return c ? c : (a->len < b->len ? -1 : a->len > b->len);
}

TEST_IMPL(keys_timestamps_sort_numerically)
{
  const int64_t v[] = {INT64_MIN + 1, -5000000, -1, 0, 1, 1700000000000000LL, INT64_MAX};
  for (size_t i = 0; i + 1 < sizeof v / sizeof v[0]; i++) {
    unsigned char a[8], b[8];
    sc_key_ts(a, v[i]);
    sc_key_ts(b, v[i + 1]);
    ASSERT_LT(memcmp(a, b, 8), 0);
    ASSERT_EQ(sc_key_get_ts(a), v[i]);
  }
  return 0;
}

TEST_IMPL(keys_instance_ranges_are_prefix_free)
{
  /* Every key of "ab" sorts inside [ab\0, ab\1) and no key of "abc" does. */
  struct sc_key lo, hi, k1, k2, other;
  sc_key_iid_lo(&lo, "ab");
  sc_key_iid_hi(&hi, "ab");
  sc_key_hist(&k1, "ab", 0);
  sc_key_hist(&k2, "ab", 0xffffffffu);
  sc_key_hist(&other, "abc", 0);
  ASSERT_LE(keycmp(&lo, &k1), 0);
  ASSERT_LT(keycmp(&k2, &hi), 0);
  ASSERT_GT(keycmp(&other, &hi), 0);
  /* History order is numeric order. */
  sc_key_hist(&k1, "ab", 9);
  sc_key_hist(&k2, "ab", 10);
  ASSERT_LT(keycmp(&k1, &k2), 0);
  return 0;
}

TEST_IMPL(keys_inbox_band_zero_first)
{
  struct sc_key start, normal;
  sc_key_inbox(&start, "x", SC_BAND_START, 1000);
  sc_key_inbox(&normal, "x", SC_BAND_NORMAL, 1);
  ASSERT_LT(keycmp(&start, &normal), 0);
  return 0;
}

TEST_IMPL(keys_status_index_groups_by_status_then_time)
{
  struct sc_key a, b, c;
  sc_key_ix_status(&a, 5, 200, "zzz");
  sc_key_ix_status(&b, 5, 300, "aaa");
  sc_key_ix_status(&c, 6, 100, "aaa");
  ASSERT_LT(keycmp(&a, &b), 0);
  ASSERT_LT(keycmp(&b, &c), 0);
  return 0;
}

TEST_IMPL(util_hex_roundtrip)
{
  unsigned char in[5] = {0, 1, 0xab, 0x7f, 0xff}, out[5];
  char hex[11];
  size_t n;
  sc_hex_encode(in, 5, hex);
  ASSERT_STR_EQ(hex, "0001ab7fff");
  ASSERT_OK(sc_hex_decode(hex, 10, out, &n));
  ASSERT_MEM_EQ(in, 5, out, n);
  ASSERT_EQ(sc_hex_decode("0g", 2, out, &n), -1);
  ASSERT_EQ(sc_hex_decode("abc", 3, out, &n), -1);
  char id1[33], id2[33];
  sc_random_hex32(id1);
  sc_random_hex32(id2);
  ASSERT_EQ(strlen(id1), 32);
  ASSERT(strcmp(id1, id2) != 0);
  return 0;
}

TEST_IMPL(heap_orders_by_due_then_seq)
{
  struct sc_heap h;
  sc_heap_init(&h);
  const int64_t due[] = {50, 10, 30, 10, 20, 50, 5};
  for (size_t i = 0; i < 7; i++)
    sc_heap_push(&h, (struct sc_heap_item){due[i], i, NULL});
  int64_t last = -1;
  uint64_t last_seq = 0;
  for (int i = 0; i < 7; i++) {
    struct sc_heap_item it = sc_heap_pop(&h);
    ASSERT_GE(it.due, last);
    if (it.due == last)
      ASSERT_GT(it.seq, last_seq);
    last = it.due;
    last_seq = it.seq;
  }
  ASSERT(sc_heap_top(&h) == NULL);
  sc_heap_free(&h);
  return 0;
}

TEST_IMPL(map_put_get_remove)
{
  struct sc_map m;
  sc_map_init(&m);
  char k[32];
  for (int i = 0; i < 1000; i++) {
    snprintf(k, sizeof k, "key-%d", i);
    ASSERT(sc_map_put(&m, k, (void *)(intptr_t)(i + 1)) == NULL);
  }
  ASSERT_EQ(m.count, 1000);
  ASSERT_EQ((intptr_t)sc_map_get(&m, "key-777"), 778);
  ASSERT_EQ((intptr_t)sc_map_remove(&m, "key-777"), 778);
  ASSERT(sc_map_get(&m, "key-777") == NULL);
  size_t n = 0;
  for (struct sc_map_entry *e = sc_map_first(&m); e; e = sc_map_next(&m, e))
    n++;
  ASSERT_EQ(n, 999);
  sc_map_free(&m);
  return 0;
}

/* Ids chosen so that FNV-1a (the map's hash before it was keyed) puts them all in one bucket of a 2048-bucket
 * table: a client sending such ids made every lookup walk all of them. Under the keyed hash they spread. */
static uint64_t fnv1a(const char *s)
{
  uint64_t h = 1469598103934665603ULL;
  for (; *s; s++)
    h = (h ^ (unsigned char)*s) * 1099511628211ULL;
  return h;
}

TEST_IMPL(map_crafted_collisions_spread)
{
  struct sc_map m;
  sc_map_init(&m);
  enum { N = 1500 };
  char k[32];
  size_t found = 0;
  for (unsigned long i = 0; found < N; i++) {
    snprintf(k, sizeof k, "order-%lu", i);
    if ((fnv1a(k) & 2047) != 0)
      continue;
    ASSERT(sc_map_put(&m, k, (void *)(intptr_t)1) == NULL);
    found++;
  }
  ASSERT_EQ(m.nbuckets, 2048);
  size_t longest = sc_map_longest_chain(&m);
  /* 1500 keys in 2048 buckets: a random hash leaves chains of a handful; FNV-1a would make one of 1500. */
  ASSERT_LT(longest, 16);
  sc_map_free(&m);
  return 0;
}
