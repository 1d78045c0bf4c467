#include "query_token.h"

#include "common/util.h"
#include "store.h"

#include <string.h>

char *sc_query_token_encode(struct sc_arena *a, bool prefix_mode, const unsigned char *cur, size_t n)
{
  if (prefix_mode)
    return sc_arena_printf(a, "p%.*s", (int)n, (const char *)cur);
  char hex[17];
  sc_hex_encode(cur, 8, hex);
  return sc_arena_printf(a, "t%s%.*s", hex, (int)(n - 8), (const char *)cur + 8);
}

bool sc_query_token_decode(const char *tok, bool prefix_mode, unsigned char *out, size_t *n, const char **why)
{
  size_t len = strlen(tok);
  if (len > SC_MAX_ID + 20) {
    *why = "too long";
    return false;
  }
  if (prefix_mode && tok[0] == 'p') {
    memcpy(out, tok + 1, len - 1);
    *n = len - 1;
    return true;
  }
  size_t hn;
  if (!prefix_mode && tok[0] == 't' && len >= 17 && sc_hex_decode(tok + 1, 16, out, &hn) == 0) {
    memcpy(out + 8, tok + 17, len - 17);
    *n = 8 + len - 17;
    return true;
  }
  *why = "not a token this server issued for this query";
  return false;
}
