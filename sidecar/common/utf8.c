#include "utf8.h"

size_t sc_utf8_seq_len(const unsigned char *s, size_t n)
{
  if (n == 0)
    return 0;
  unsigned char b = s[0];
  if (b < 0x80)
    return 1;
  /* The second byte's range depends on the first: that is what excludes overlong forms (E0, F0),
   * surrogates (ED) and code points above U+10FFFF (F4). */
  size_t len;
  unsigned char lo = 0x80, hi = 0xbf;
  if (b >= 0xc2 && b <= 0xdf)
    len = 2;
  else if (b >= 0xe0 && b <= 0xef) {
    len = 3;
    if (b == 0xe0)
      lo = 0xa0;
    else if (b == 0xed)
      hi = 0x9f;
  } else if (b >= 0xf0 && b <= 0xf4) {
    len = 4;
    if (b == 0xf0)
      lo = 0x90;
    else if (b == 0xf4)
      hi = 0x8f;
  } else {
    return 0;
  }
  if (n < len || s[1] < lo || s[1] > hi)
    return 0;
  for (size_t k = 2; k < len; k++)
    if ((s[k] & 0xc0) != 0x80)
      return 0;
  return len;
}

size_t sc_utf8_invalid_at(const unsigned char *s, size_t n)
{
  size_t i = 0;
  while (i < n) {
    if (s[i] < 0x80) {
      i++;
      continue;
    }
    size_t len = sc_utf8_seq_len(s + i, n - i);
    if (!len)
      return i + 1;
    i += len;
  }
  return 0;
}
