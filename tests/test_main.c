/* Shared main() for every test binary: the including directory's test_list.h names its tests. */
#include "test.h"

#define TEST_ENTRY(n) int test_##n(void);
#include "test_list.h"
#undef TEST_ENTRY

#define TEST_ENTRY(n) {#n, test_##n},
static const struct test_entry tests[] = {
#include "test_list.h"
    {NULL, NULL}};
#undef TEST_ENTRY

int main(int argc, char **argv)
{
  return test_main(argc, argv, tests);
}
