#ifndef SC_UTIL_H
#define SC_UTIL_H

#include <stddef.h>
#include <stdint.h>

/* Wall-clock microseconds since the Unix epoch: the unit of every stored timestamp. */
int64_t sc_now_us(void);
/* Monotonic microseconds, for measuring durations. */
int64_t sc_mono_us(void);

/* Writes 32 lowercase hex characters of fresh randomness and a NUL (out must hold 33 bytes). */
void sc_random_hex32(char out[33]);

/* Gives free heap memory back to the system (glibc keeps freed pages inside its heaps otherwise). */
void sc_trim_heap(void);

/* Lowercase hex of n bytes into out (2n+1 bytes). */
void sc_hex_encode(const void *in, size_t n, char *out);
/* Decodes 2n hex digits into n bytes; returns 0 or -1 on a bad digit or odd length. */
int sc_hex_decode(const char *in, size_t len, void *out, size_t *out_len);

/* Big-endian integer helpers for keys. */
static inline void sc_put_be64(unsigned char *p, uint64_t v)
{
  for (int i = 7; i >= 0; i--) {
    p[i] = (unsigned char)(v & 0xff);
    v >>= 8;
  }
}

static inline uint64_t sc_get_be64(const unsigned char *p)
{
  uint64_t v = 0;
  for (int i = 0; i < 8; i++)
    v = (v << 8) | p[i];
  return v;
}

static inline void sc_put_be32(unsigned char *p, uint32_t v)
{
  p[0] = (unsigned char)(v >> 24);
  p[1] = (unsigned char)(v >> 16);
  p[2] = (unsigned char)(v >> 8);
  p[3] = (unsigned char)v;
}

static inline uint32_t sc_get_be32(const unsigned char *p)
{
  return ((uint32_t)p[0] << 24) | ((uint32_t)p[1] << 16) |
         ((uint32_t)p[2] << 8) | p[3];
}

#endif
