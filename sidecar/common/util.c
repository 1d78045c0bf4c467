#include "util.h"

#include "log.h"

#include <errno.h>
#include <malloc.h>
#include <sys/random.h>
#include <time.h>

int64_t sc_now_us(void)
{
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

int64_t sc_mono_us(void)
{
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

void sc_random_hex32(char out[33])
{
  unsigned char b[16];
  size_t got = 0;
  while (got < sizeof b) {
    ssize_t n = getrandom(b + got, sizeof b - got, 0);
    if (n < 0) {
      if (errno == EINTR)
        continue;
      sc_panic("getrandom failed: errno=%d", errno);
    }
    got += (size_t)n;
  }
  sc_hex_encode(b, sizeof b, out);
}

void sc_hex_encode(const void *in, size_t n, char *out)
{
  static const char digits[] = "0123456789abcdef";
  const unsigned char *p = in;
  for (size_t i = 0; i < n; i++) {
    out[2 * i] = digits[p[i] >> 4];
    out[2 * i + 1] = digits[p[i] & 15];
  }
  out[2 * n] = 0;
}

static int hexval(char c)
{
  if (c >= '0' && c <= '9')
    return c - '0';
  if (c >= 'a' && c <= 'f')
    return c - 'a' + 10;
  if (c >= 'A' && c <= 'F')
    return c - 'A' + 10;
  return -1;
}

int sc_hex_decode(const char *in, size_t len, void *out, size_t *out_len)
{
  if (len % 2)
    return -1;
  unsigned char *o = out;
  for (size_t i = 0; i < len; i += 2) {
    int hi = hexval(in[i]), lo = hexval(in[i + 1]);
    if (hi < 0 || lo < 0)
      return -1;
    o[i / 2] = (unsigned char)(hi << 4 | lo);
  }
  *out_len = len / 2;
  return 0;
}

void sc_trim_heap(void)
{
#ifdef __GLIBC__
  malloc_trim(0);
#endif
}
