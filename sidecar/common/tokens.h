#ifndef SC_TOKENS_H
#define SC_TOKENS_H

#include <stdbool.h>
#include <stddef.h>

/*
 * The bearer tokens of `--auth-token-file FILE` (TASKHUBD_AUTH_TOKEN_FILE): one token per line, leading and
 * trailing blanks dropped, blank lines and lines starting with `#` ignored. Shared by the gRPC server, the ops port
 * and the dashboard; process-wide and thread-safe: any thread may check while SIGHUP swaps the set.
 *
 * Only SHA-256 digests of the tokens are kept, and a presented token is hashed and compared with every one of them
 * with CRYPTO_memcmp and without stopping at a match, so neither the time taken nor the result says which token,
 * how long a token, or how much of one matched.
 */

/* At start: reads |path| (NULL: no tokens, nothing is enabled). A file that cannot be read, holds no token, or
 * holds a token with a control character or a blank inside is refused. Returns 0, or -1 with a message in err. */
int sc_tokens_load(const char *path, char *err, size_t errcap);

/* On SIGHUP: reads the file given to sc_tokens_load again and swaps the set in; on error the old set stays and
 * -1 + err is returned. With no file configured, does nothing and returns 0. */
int sc_tokens_reload(char *err, size_t errcap);

/* A token file is configured (so callers must demand a token). */
bool sc_tokens_enabled(void);

/* |token| (|len| bytes, not necessarily NUL-terminated) is one of the tokens; false when none is configured. */
bool sc_tokens_check(const char *token, size_t len);

/* An `authorization` header value "Bearer <token>" (scheme case-insensitive, blanks around the token ignored)
 * carrying one of the tokens; NULL, another scheme, or no token → false. */
bool sc_tokens_check_bearer(const char *authorization_header);

#endif
