#ifndef SC_SERVER_TLS_H
#define SC_SERVER_TLS_H

#include "common/status.h"
#include "config.h"

#include <grpc/grpc_security.h>

/*
 * The gRPC port's transport credentials: TLS from --tls-cert/--tls-key, mutual TLS with --tls-client-ca, or
 * plaintext. The files are read and checked with OpenSSL (the key matches the certificate, the CA file holds
 * certificates) so a mistake is named at start or at SIGHUP, not by a failed handshake later. gRPC core asks a
 * config fetcher for the certificates before each handshake: a reload only swaps what the next handshake gets,
 * and connections already up, with their streams, keep theirs.
 */

/* Reads the configured files; with no --tls-cert, does nothing. Returns SC_OK or SC_EINVAL naming the file. */
int sc_tls_init(const struct sc_config *cfg, struct sc_err *err);

/* Credentials for grpc_server_add_http2_port: TLS (with the fetcher) after sc_tls_init with a certificate,
 * otherwise insecure. The caller releases them. */
grpc_server_credentials *sc_tls_server_credentials(void);

/* On SIGHUP: reads the files again; on success the next handshakes use them, on error (SC_EINVAL with the
 * reason) the ones in force stay. Without TLS, returns SC_OK at once. */
int sc_tls_reload(struct sc_err *err);

/* TLS is configured. */
bool sc_tls_enabled(void);

#endif
