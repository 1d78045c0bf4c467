#include "test.h"

#include <sys/wait.h>
#include <unistd.h>

/* Runs a single test in its own process, so a crash in one cannot hide another. */
static int run_one(const struct test_entry *t)
{
  fflush(stdout);
  pid_t pid = fork();
  if (pid < 0)
    return -1;
  if (pid == 0)
    _exit(t->fn());
  int st = 0;
  if (waitpid(pid, &st, 0) < 0)
    return -1;
  if (WIFEXITED(st))
    return WEXITSTATUS(st);
  return 128 + (WIFSIGNALED(st) ? WTERMSIG(st) : 0);
}

int test_main(int argc, char **argv, const struct test_entry *tests)
{
  if (argc > 1) {
    for (const struct test_entry *t = tests; t->name; t++)
      if (strcmp(t->name, argv[1]) == 0)
        return t->fn();
    fprintf(stderr, "no such test: %s\n", argv[1]);
    return 2;
  }
  int passed = 0, failed = 0, skipped = 0, n = 0;
  for (const struct test_entry *t = tests; t->name; t++) {
    int rc = run_one(t);
    n++;
    if (rc == 0) {
      passed++;
      printf("ok %d - %s\n", n, t->name);
    } else if (rc == TEST_SKIP) {
      skipped++;
      printf("ok %d - %s # SKIP\n", n, t->name);
    } else {
      failed++;
      printf("not ok %d - %s (exit %d)\n", n, t->name, rc);
    }
  }
  printf("%d passed, %d failed, %d skipped\n", passed, failed, skipped);
  return failed ? 1 : 0;
}
