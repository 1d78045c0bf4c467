#include "config.h"
#include "test.h"

static int parse(struct sc_config *c, int argc, const char **argv)
{
  FILE *out = fopen("/dev/null", "w"), *err = fopen("/dev/null", "w");
  int rc = sc_config_parse(c, argc, (char **)argv, out, err);
  fclose(out);
  fclose(err);
  return rc;
}

TEST_IMPL(config_defaults)
{
  unsetenv("TASKHUBD_LISTEN");
  unsetenv("TASKHUBD_DATA_DIR");
  struct sc_config c;
  const char *argv[] = {"taskhubd"};
  ASSERT_OK(parse(&c, 1, argv));
  ASSERT_STR_EQ(c.listen, "127.0.0.1:4001");
  ASSERT_EQ(c.max_message, 16u << 20);
  /* What is accepted fits what a default SDK receives: five payloads in 4 MiB. */
  ASSERT_EQ(c.max_send_message, 4u << 20);
  ASSERT_EQ(c.max_payload, 512u << 10);
  ASSERT(c.group_commit);
  ASSERT_EQ(c.ready_fd, -1);
  ASSERT_EQ(c.cache_size, 16u << 20);
  return 0;
}

TEST_IMPL(config_env_then_flags)
{
  setenv("TASKHUBD_LISTEN", "127.0.0.1:5000", 1);
  setenv("TASKHUBD_MAX_PAYLOAD", "64K", 1);
  setenv("TASKHUBD_CACHE_SIZE", "0", 1);
  struct sc_config c;
  const char *argv[] = {"taskhubd", "--listen=127.0.0.1:6000", "--data-dir", "/tmp/x", "--group-commit", "off"};
  ASSERT_OK(parse(&c, 6, argv));
  ASSERT_STR_EQ(c.listen, "127.0.0.1:6000"); /* the flag wins over the environment */
  ASSERT_STR_EQ(c.data_dir, "/tmp/x");
  ASSERT_EQ(c.max_payload, 64 * 1024);
  ASSERT(!c.group_commit);
  ASSERT_EQ(c.max_batch, 1);
  ASSERT_EQ(c.cache_size, 0);
  unsetenv("TASKHUBD_LISTEN");
  unsetenv("TASKHUBD_MAX_PAYLOAD");
  unsetenv("TASKHUBD_CACHE_SIZE");
  return 0;
}

/* --store: rocksdb:DIR is the data directory; anything else is PostgreSQL, whose password never comes from here. */
TEST_IMPL(config_store)
{
  struct sc_config c;
  const char *a1[] = {"taskhubd", "--store", "rocksdb:/var/lib/th"};
  ASSERT_EQ(parse(&c, 3, a1), 0);
  ASSERT(!c.store_postgres);
  ASSERT_STR_EQ(c.data_dir, "/var/lib/th");
  const char *a2[] = {"taskhubd", "--store", "postgresql://th@db:5432/hub?sslmode=require"};
  ASSERT_EQ(parse(&c, 3, a2), 0);
  ASSERT(c.store_postgres);
  const char *a3[] = {"taskhubd", "--store", "host=db dbname=hub user=th"};
  ASSERT_EQ(parse(&c, 3, a3), 0);
  ASSERT(c.store_postgres);
  const char *a4[] = {"taskhubd", "--store", "postgresql://th:secret@db/hub"};
  ASSERT_EQ(parse(&c, 3, a4), -1);
  const char *a5[] = {"taskhubd", "--store", "host=db password=secret"};
  ASSERT_EQ(parse(&c, 3, a5), -1);
  const char *a6[] = {"taskhubd", "--store", "host=db nonsense"};
  ASSERT_EQ(parse(&c, 3, a6), -1);
  const char *a7[] = {"taskhubd", "--store", "rocksdb:"};
  ASSERT_EQ(parse(&c, 3, a7), -1);
  return 0;
}

TEST_IMPL(config_rejects_bad_values)
{
  struct sc_config c;
  const char *a1[] = {"taskhubd", "--max-payload", "lots"};
  ASSERT_EQ(parse(&c, 3, a1), -1);
  const char *a2[] = {"taskhubd", "--no-such-flag"};
  ASSERT_EQ(parse(&c, 2, a2), -1);
  const char *a3[] = {"taskhubd", "--listen"};
  ASSERT_EQ(parse(&c, 2, a3), -1);
  const char *a4[] = {"taskhubd", "--max-payload", "32M", "--max-message", "16M"};
  ASSERT_EQ(parse(&c, 5, a4), -1);
  /* A payload limit whose instance state could not be read back by a client with the send limit. */
  const char *a6[] = {"taskhubd", "--max-payload", "4M"};
  ASSERT_EQ(parse(&c, 3, a6), -1);
  const char *a7[] = {"taskhubd", "--max-payload", "4M", "--max-send-message", "21M", "--max-message", "32M"};
  ASSERT_EQ(parse(&c, 7, a7), 0);
  const char *a5[] = {"taskhubd", "--help"};
  ASSERT_EQ(parse(&c, 2, a5), 1);
  size_t v;
  ASSERT_OK(sc_parse_size("1G", &v));
  ASSERT_EQ(v, 1u << 30);
  ASSERT_EQ(sc_parse_size("-1", &v), -1);
  return 0;
}

TEST_IMPL(config_tls_and_tokens)
{
  struct sc_config c;
  setenv("TASKHUBD_TLS_CERT", "/etc/th/cert.pem", 1);
  setenv("TASKHUBD_TLS_KEY", "/etc/th/key.pem", 1);
  setenv("TASKHUBD_AUTH_TOKEN_FILE", "/etc/th/tokens", 1);
  setenv("TASKHUBD_ALLOW_INSECURE", "1", 1);
  const char *env_only[] = {"taskhubd"};
  ASSERT_OK(parse(&c, 1, env_only));
  ASSERT_STR_EQ(c.tls_cert, "/etc/th/cert.pem");
  ASSERT_STR_EQ(c.tls_key, "/etc/th/key.pem");
  ASSERT_STR_EQ(c.auth_token_file, "/etc/th/tokens");
  ASSERT_STR_EQ(c.tls_client_ca, "");
  ASSERT(c.allow_insecure);
  const char *flags[] = {"taskhubd", "--tls-client-ca", "/ca.pem", "--auth-token-file=/t2", "--allow-insecure=off"};
  ASSERT_OK(parse(&c, 5, flags));
  ASSERT_STR_EQ(c.tls_client_ca, "/ca.pem");
  ASSERT_STR_EQ(c.auth_token_file, "/t2");
  ASSERT(!c.allow_insecure);
  unsetenv("TASKHUBD_TLS_KEY");
  ASSERT_EQ(parse(&c, 1, env_only), -1); /* a certificate without its key */
  unsetenv("TASKHUBD_TLS_CERT");
  const char *ca_only[] = {"taskhubd", "--tls-client-ca", "/ca.pem"};
  ASSERT_EQ(parse(&c, 3, ca_only), -1); /* mutual TLS needs TLS */
  unsetenv("TASKHUBD_AUTH_TOKEN_FILE");
  unsetenv("TASKHUBD_ALLOW_INSECURE");
  ASSERT_OK(parse(&c, 1, env_only));
  ASSERT(!c.tls_cert[0] && !c.auth_token_file[0] && !c.allow_insecure);
  return 0;
}
