/* TLS for the gRPC port, reloadable (see tls.h). */
#include "server/tls.h"

#include "common/log.h"

#include <errno.h>
#include <openssl/bio.h>
#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define TLS_MAX_FILE (1u << 20)

/* The PEM texts in force and a generation counter; the fetcher hands gRPC a new config when the generation it
 * gave last is older. gRPC calls the fetcher from its own threads, SIGHUP swaps from the main thread. */
static struct {
  pthread_mutex_t mu;
  bool enabled;
  bool mutual;
  char cert_path[4096], key_path[4096], ca_path[4096];
  char *cert, *key, *ca;
  unsigned gen, given;
} g_tls = {.mu = PTHREAD_MUTEX_INITIALIZER};

bool sc_tls_enabled(void)
{
  pthread_mutex_lock(&g_tls.mu);
  bool on = g_tls.enabled;
  pthread_mutex_unlock(&g_tls.mu);
  return on;
}

static void wipe_free(char *s)
{
  if (s) {
    OPENSSL_cleanse(s, strlen(s));
    free(s);
  }
}

static char *read_pem(const char *flag, const char *path, struct sc_err *err)
{
  FILE *f = fopen(path, "rb");
  if (!f) {
    sc_err_set(err, SC_EINVAL, "%s %s: %s", flag, path, strerror(errno));
    return NULL;
  }
  char *buf = malloc(TLS_MAX_FILE + 1);
  size_t n = buf ? fread(buf, 1, TLS_MAX_FILE + 1, f) : 0;
  bool bad = ferror(f) != 0;
  fclose(f);
  if (!buf || bad || n > TLS_MAX_FILE || n == 0) {
    sc_err_set(err, SC_EINVAL, "%s %s: %s", flag, path,
               !buf ? "out of memory" : bad ? "read error" : n == 0 ? "empty file" : "larger than 1 MiB");
    if (buf) {
      OPENSSL_cleanse(buf, n < TLS_MAX_FILE + 1 ? n : TLS_MAX_FILE + 1);
      free(buf);
    }
    return NULL;
  }
  buf[n] = 0;
  return buf;
}

/* OpenSSL's reason for the last failure, for messages. */
static const char *ossl_reason(void)
{
  unsigned long e = ERR_peek_last_error();
  const char *r = e ? ERR_reason_error_string(e) : NULL;
  return r ? r : "no PEM data";
}

/* The certificate parses, the key parses and belongs to it, the CA file holds at least one certificate. */
static int check_pems(const char *cert, const char *key, const char *ca, struct sc_err *err)
{
  int rc = SC_OK;
  ERR_clear_error();
  BIO *b = BIO_new_mem_buf(cert, -1);
  X509 *x = b ? PEM_read_bio_X509(b, NULL, NULL, NULL) : NULL;
  BIO_free(b);
  if (!x) {
    sc_err_set(err, SC_EINVAL, "--tls-cert %s: not a PEM certificate (%s)", g_tls.cert_path, ossl_reason());
    return SC_EINVAL;
  }
  ERR_clear_error();
  b = BIO_new_mem_buf(key, -1);
  EVP_PKEY *k = b ? PEM_read_bio_PrivateKey(b, NULL, NULL, NULL) : NULL;
  BIO_free(b);
  if (!k) {
    sc_err_set(err, SC_EINVAL, "--tls-key %s: not a PEM private key without a passphrase (%s)", g_tls.key_path,
               ossl_reason());
    rc = SC_EINVAL;
  } else if (X509_check_private_key(x, k) != 1) {
    sc_err_set(err, SC_EINVAL, "--tls-key %s does not belong to the certificate in --tls-cert %s", g_tls.key_path,
               g_tls.cert_path);
    rc = SC_EINVAL;
  }
  EVP_PKEY_free(k);
  X509_free(x);
  if (rc == SC_OK && ca) {
    ERR_clear_error();
    b = BIO_new_mem_buf(ca, -1);
    X509 *c = b ? PEM_read_bio_X509(b, NULL, NULL, NULL) : NULL;
    BIO_free(b);
    if (!c) {
      sc_err_set(err, SC_EINVAL, "--tls-client-ca %s: no PEM certificate in it (%s)", g_tls.ca_path, ossl_reason());
      rc = SC_EINVAL;
    }
    X509_free(c);
  }
  ERR_clear_error();
  return rc;
}

/* Reads and checks the three files, then swaps them in under the lock. */
static int load(struct sc_err *err)
{
  char *cert = read_pem("--tls-cert", g_tls.cert_path, err);
  char *key = cert ? read_pem("--tls-key", g_tls.key_path, err) : NULL;
  char *ca = NULL;
  int rc = cert && key ? SC_OK : SC_EINVAL;
  if (rc == SC_OK && g_tls.mutual) {
    ca = read_pem("--tls-client-ca", g_tls.ca_path, err);
    rc = ca ? SC_OK : SC_EINVAL;
  }
  if (rc == SC_OK)
    rc = check_pems(cert, key, ca, err);
  if (rc != SC_OK) {
    wipe_free(cert);
    wipe_free(key);
    wipe_free(ca);
    return rc;
  }
  pthread_mutex_lock(&g_tls.mu);
  char *oc = g_tls.cert, *ok = g_tls.key, *oa = g_tls.ca;
  g_tls.cert = cert;
  g_tls.key = key;
  g_tls.ca = ca;
  g_tls.gen++;
  pthread_mutex_unlock(&g_tls.mu);
  wipe_free(oc);
  wipe_free(ok);
  wipe_free(oa);
  return SC_OK;
}

int sc_tls_init(const struct sc_config *cfg, struct sc_err *err)
{
  if (!cfg->tls_cert[0])
    return SC_OK;
  snprintf(g_tls.cert_path, sizeof g_tls.cert_path, "%s", cfg->tls_cert);
  snprintf(g_tls.key_path, sizeof g_tls.key_path, "%s", cfg->tls_key);
  snprintf(g_tls.ca_path, sizeof g_tls.ca_path, "%s", cfg->tls_client_ca);
  g_tls.mutual = cfg->tls_client_ca[0] != 0;
  int rc = load(err);
  if (rc == SC_OK) {
    pthread_mutex_lock(&g_tls.mu);
    g_tls.enabled = true;
    pthread_mutex_unlock(&g_tls.mu);
  }
  return rc;
}

int sc_tls_reload(struct sc_err *err)
{
  if (!sc_tls_enabled())
    return SC_OK;
  return load(err);
}

/* gRPC core, before each handshake: a new config when the files were (re)loaded since the last one it got.
 * It takes ownership of the config. */
static grpc_ssl_certificate_config_reload_status fetch(void *user, grpc_ssl_server_certificate_config **out)
{
  (void)user;
  grpc_ssl_certificate_config_reload_status st = GRPC_SSL_CERTIFICATE_CONFIG_RELOAD_UNCHANGED;
  pthread_mutex_lock(&g_tls.mu);
  if (g_tls.given != g_tls.gen) {
    grpc_ssl_pem_key_cert_pair pair = {g_tls.key, g_tls.cert};
    /* gRPC core asserts that a fetched config has root certificates even when it asks clients for none; without
     * mutual TLS they are never used, and our own certificate stands in. */
    *out = grpc_ssl_server_certificate_config_create(g_tls.mutual ? g_tls.ca : g_tls.cert, &pair, 1);
    st = *out ? GRPC_SSL_CERTIFICATE_CONFIG_RELOAD_NEW : GRPC_SSL_CERTIFICATE_CONFIG_RELOAD_FAIL;
    if (*out)
      g_tls.given = g_tls.gen;
  }
  pthread_mutex_unlock(&g_tls.mu);
  if (st == GRPC_SSL_CERTIFICATE_CONFIG_RELOAD_NEW)
    SC_INFO("event=tls_certificates_in_use mutual=%s", g_tls.mutual ? "yes" : "no");
  return st;
}

grpc_server_credentials *sc_tls_server_credentials(void)
{
  if (!sc_tls_enabled())
    return grpc_insecure_server_credentials_create();
  grpc_ssl_server_credentials_options *o = grpc_ssl_server_credentials_create_options_using_config_fetcher(
      g_tls.mutual ? GRPC_SSL_REQUEST_AND_REQUIRE_CLIENT_CERTIFICATE_AND_VERIFY
                   : GRPC_SSL_DONT_REQUEST_CLIENT_CERTIFICATE,
      fetch, NULL);
  /* Takes ownership of the options. */
  return grpc_ssl_server_credentials_create_with_options(o);
}
