#ifndef SC_UTF8_H
#define SC_UTF8_H

#include <stddef.h>

/* Length of the valid UTF-8 sequence at the start of s[0..n) (1 to 4), or 0 when there is none there: no overlong
 * forms, no surrogates, nothing above U+10FFFF. */
size_t sc_utf8_seq_len(const unsigned char *s, size_t n);
/* 0 when s[0..n) is valid UTF-8, else one more than the offset of the first byte that is not. */
size_t sc_utf8_invalid_at(const unsigned char *s, size_t n);

#endif
