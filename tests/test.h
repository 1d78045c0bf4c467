/*
 * A minimal test framework: TEST_IMPL(name) defines a test, the ASSERT_* macros print the failing expression
 * with its values and abort(), and run_tests.c runs one test (by name) or all of them in a list.
 * Each binary carries its own test_list (see unit/test_list.h); CTest runs one process per entry.
 */
#ifndef TH_TEST_H
#define TH_TEST_H

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define TEST_SKIP 77

#define TEST_IMPL(name) int test_##name(void); int test_##name(void)

#define TEST_FAIL(...)                                                        \
  do {                                                                        \
    fprintf(stderr, "%s:%d: ", __FILE__, __LINE__);                           \
    fprintf(stderr, __VA_ARGS__);                                             \
    fputc('\n', stderr);                                                      \
    fflush(stderr);                                                           \
    abort();                                                                  \
  } while (0)

#define ASSERT(expr)                                                          \
  do {                                                                        \
    if (!(expr))                                                              \
      TEST_FAIL("assertion failed: %s", #expr);                               \
  } while (0)

#define ASSERT_INT_OP(a, op, b)                                               \
  do {                                                                        \
    long long a_ = (long long)(a), b_ = (long long)(b);                       \
    if (!(a_ op b_))                                                          \
      TEST_FAIL("assertion failed: %s %s %s (%lld vs %lld)", #a, #op, #b, a_, \
                b_);                                                          \
  } while (0)

#define ASSERT_EQ(a, b) ASSERT_INT_OP(a, ==, b)
#define ASSERT_NE(a, b) ASSERT_INT_OP(a, !=, b)
#define ASSERT_LT(a, b) ASSERT_INT_OP(a, <, b)
#define ASSERT_LE(a, b) ASSERT_INT_OP(a, <=, b)
#define ASSERT_GT(a, b) ASSERT_INT_OP(a, >, b)
#define ASSERT_GE(a, b) ASSERT_INT_OP(a, >=, b)
#define ASSERT_OK(a) ASSERT_EQ(a, 0)

#define ASSERT_STR_EQ(a, b)                                                   \
  do {                                                                        \
    const char *a_ = (a), *b_ = (b);                                          \
    if (a_ == NULL || b_ == NULL || strcmp(a_, b_) != 0)                      \
      TEST_FAIL("assertion failed: %s == %s (\"%s\" vs \"%s\")", #a, #b,      \
                a_ ? a_ : "(null)", b_ ? b_ : "(null)");                      \
  } while (0)

#define ASSERT_STR_CONTAINS(hay, needle)                                      \
  do {                                                                        \
    const char *h_ = (hay), *n_ = (needle);                                   \
    if (h_ == NULL || strstr(h_, n_) == NULL)                                 \
      TEST_FAIL("assertion failed: \"%s\" contains \"%s\"",                   \
                h_ ? h_ : "(null)", n_);                                      \
  } while (0)

#define ASSERT_MEM_EQ(a, alen, b, blen)                                       \
  do {                                                                        \
    size_t al_ = (alen), bl_ = (blen);                                        \
    if (al_ != bl_ || memcmp((a), (b), al_) != 0)                             \
      TEST_FAIL("assertion failed: %s == %s (lengths %zu vs %zu)", #a, #b,    \
                al_, bl_);                                                    \
  } while (0)

struct test_entry {
  const char *name;
  int (*fn)(void);
};

/* Runs argv[1] (or every test with no argument); see run_tests.c. */
int test_main(int argc, char **argv, const struct test_entry *tests);

#endif
