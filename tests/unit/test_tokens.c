#include "common/tokens.h"
#include "test.h"

#include <pthread.h>
#include <stdatomic.h>
#include <unistd.h>

static void write_file(const char *path, const char *text)
{
  FILE *f = fopen(path, "w");
  ASSERT(f != NULL);
  fputs(text, f);
  ASSERT_OK(fclose(f));
}

static char *temp_file(char *dir, size_t cap)
{
  snprintf(dir, cap, "/tmp/th-tokens-XXXXXX");
  ASSERT(mkdtemp(dir) != NULL);
  strncat(dir, "/tokens", cap - strlen(dir) - 1);
  return dir;
}

static void cleanup(char *path)
{
  unlink(path);
  *strrchr(path, '/') = 0;
  rmdir(path);
  sc_tokens_load(NULL, NULL, 0);
}

#define CHECK(s) sc_tokens_check((s), strlen(s))

TEST_IMPL(tokens_load_check_and_bearer)
{
  char path[64], err[256];
  temp_file(path, sizeof path);
  ASSERT(!sc_tokens_enabled());
  ASSERT(!CHECK("anything"));
  write_file(path, "# the app's tokens\n\n  alpha-0123456789  \r\n#beta-commented\n\tgamma_ABC\n");
  ASSERT_OK(sc_tokens_load(path, err, sizeof err));
  ASSERT(sc_tokens_enabled());
  ASSERT(CHECK("alpha-0123456789"));
  ASSERT(CHECK("gamma_ABC"));
  ASSERT(!CHECK("beta-commented"));
  ASSERT(!CHECK("#beta-commented"));
  ASSERT(!CHECK("alpha-012345678")); /* a prefix */
  ASSERT(!CHECK("alpha-0123456789x"));
  ASSERT(!CHECK(""));
  ASSERT(!sc_tokens_check(NULL, 0));
  /* Length-delimited: bytes past len are not part of the token. */
  ASSERT(sc_tokens_check("gamma_ABCdef", 9));

  ASSERT(sc_tokens_check_bearer("Bearer alpha-0123456789"));
  ASSERT(sc_tokens_check_bearer("bearer   gamma_ABC "));
  ASSERT(!sc_tokens_check_bearer("Bearer"));
  ASSERT(!sc_tokens_check_bearer("Bearer "));
  ASSERT(!sc_tokens_check_bearer("Bearergamma_ABC"));
  ASSERT(!sc_tokens_check_bearer("Basic gamma_ABC"));
  ASSERT(!sc_tokens_check_bearer("gamma_ABC"));
  ASSERT(!sc_tokens_check_bearer("Bearer wrong"));
  ASSERT(!sc_tokens_check_bearer(NULL));
  cleanup(path);
  ASSERT(!sc_tokens_enabled());
  ASSERT(!CHECK("gamma_ABC"));
  return 0;
}

TEST_IMPL(tokens_refuses_bad_files)
{
  char path[64], err[256];
  temp_file(path, sizeof path);
  ASSERT_EQ(sc_tokens_load(path, err, sizeof err), -1); /* missing */
  ASSERT_STR_CONTAINS(err, path);
  ASSERT_STR_CONTAINS(err, "No such file");
  write_file(path, "# only a comment\n\n");
  ASSERT_EQ(sc_tokens_load(path, err, sizeof err), -1);
  ASSERT_STR_CONTAINS(err, "no token");
  write_file(path, "good\ntwo words\n");
  ASSERT_EQ(sc_tokens_load(path, err, sizeof err), -1);
  ASSERT_STR_CONTAINS(err, "line 2");
  write_file(path, "ctl\x01x\n");
  ASSERT_EQ(sc_tokens_load(path, err, sizeof err), -1);
  ASSERT_STR_CONTAINS(err, "line 1");
  ASSERT(!sc_tokens_enabled());
  cleanup(path);
  return 0;
}

TEST_IMPL(tokens_reload_swaps_or_keeps_the_old_set)
{
  char path[64], err[256];
  ASSERT_OK(sc_tokens_reload(err, sizeof err)); /* no file configured: nothing to do */
  ASSERT(!sc_tokens_enabled());
  temp_file(path, sizeof path);
  write_file(path, "old-token\n");
  ASSERT_OK(sc_tokens_load(path, err, sizeof err));
  write_file(path, "new-token\nsecond-new\n");
  ASSERT_OK(sc_tokens_reload(err, sizeof err));
  ASSERT(!CHECK("old-token"));
  ASSERT(CHECK("new-token"));
  ASSERT(CHECK("second-new"));
  /* A broken file on reload keeps the set in force rather than locking everyone out (or letting everyone in). */
  write_file(path, "\n# emptied by mistake\n");
  ASSERT_EQ(sc_tokens_reload(err, sizeof err), -1);
  ASSERT_STR_CONTAINS(err, "no token");
  ASSERT(CHECK("new-token"));
  unlink(path);
  ASSERT_EQ(sc_tokens_reload(err, sizeof err), -1);
  ASSERT(sc_tokens_enabled());
  ASSERT(CHECK("second-new"));
  write_file(path, "third\n");
  cleanup(path);
  return 0;
}

static atomic_int g_stop;
static atomic_long g_seen_bad;

static void *checker(void *arg)
{
  (void)arg;
  while (!atomic_load(&g_stop)) {
    /* "stable" is in every version of the file, "never" in none. */
    if (!CHECK("stable") || CHECK("never"))
      atomic_fetch_add(&g_seen_bad, 1);
  }
  return NULL;
}

TEST_IMPL(tokens_checks_while_reloading)
{
  char path[64], err[256];
  temp_file(path, sizeof path);
  write_file(path, "stable\nv0\n");
  ASSERT_OK(sc_tokens_load(path, err, sizeof err));
  pthread_t t[3];
  for (int i = 0; i < 3; i++)
    ASSERT_OK(pthread_create(&t[i], NULL, checker, NULL));
  for (int i = 1; i <= 200; i++) {
    char text[64];
    snprintf(text, sizeof text, "v%d\nstable\n", i);
    write_file(path, text);
    ASSERT_OK(sc_tokens_reload(err, sizeof err));
    char v[16];
    snprintf(v, sizeof v, "v%d", i);
    ASSERT(CHECK(v));
  }
  atomic_store(&g_stop, 1);
  for (int i = 0; i < 3; i++)
    pthread_join(t[i], NULL);
  ASSERT_EQ(atomic_load(&g_seen_bad), 0);
  ASSERT(!CHECK("v199"));
  cleanup(path);
  return 0;
}
