#ifndef SC_QUERY_TOKEN_H
#define SC_QUERY_TOKEN_H

/*
 * Continuation tokens of instance queries as clients see them (QueryInstances' continuationToken, the
 * dashboard's `next`): "t" + 16 hex digits of the index time + the instance id (index order), or "p" + the
 * instance id (prefix queries, id order). Both grow strictly from page to page, so a token never repeats and is
 * never "0". One format for every reader, so a token from one is understood by the others.
 */

#include "common/arena.h"

#include <stdbool.h>
#include <stddef.h>

/* A store cursor (store.h, sc_query) as a token, allocated from |a|. */
char *sc_query_token_encode(struct sc_arena *a, bool prefix_mode, const unsigned char *cur, size_t n);
/* A token back into a store cursor of at most SC_CURSOR_MAX bytes at |out|; false with *why set when it is not
 * a token issued for a query of this kind. */
bool sc_query_token_decode(const char *tok, bool prefix_mode, unsigned char *out, size_t *n, const char **why);

#endif
