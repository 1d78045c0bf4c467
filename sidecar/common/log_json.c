/* JSON log lines with typed fields (see log_json.h). */
#include "log_json.h"

#include "utf8.h"

#include <json-c/json.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>

/* A string as json-c takes it: bytes that are not UTF-8 become U+FFFD, so every line is valid JSON. */
static json_object *str_obj(const char *s, size_t n)
{
  char *b = malloc(n * 3 + 1);
  if (!b)
    return json_object_new_string("");
  size_t o = 0;
  for (size_t i = 0; i < n;) {
    size_t len = (unsigned char)s[i] < 0x80 ? 1 : sc_utf8_seq_len((const unsigned char *)s + i, n - i);
    if (len == 0) {
      memcpy(b + o, "\xef\xbf\xbd", 3);
      o += 3;
      i++;
      continue;
    }
    memcpy(b + o, s + i, len);
    o += len;
    i += len;
  }
  json_object *j = json_object_new_string_len(b, (int)o);
  free(b);
  return j;
}

/* One conversion of the format: its text (for snprintf), its type, and the '*' it takes. */
struct spec {
  char text[32];
  char conv;     /* d i u x X o f g e ... s c p, or '%' */
  char len[3];   /* "", "h", "hh", "l", "ll", "z", "j", "t" */
  int stars;
};

/* Parses the conversion at |p| (just after '%'); returns the character after it, or NULL if unsupported. */
static const char *parse_spec(const char *p, struct spec *s)
{
  memset(s, 0, sizeof *s);
  const char *start = p - 1;
  while (*p && strchr("-+ #0", *p))
    p++;
  for (int part = 0; part < 2; part++) { /* width, then .precision */
    if (part == 1) {
      if (*p != '.')
        break;
      p++;
    }
    if (*p == '*') {
      s->stars++;
      p++;
    } else {
      while (*p >= '0' && *p <= '9')
        p++;
    }
  }
  size_t l = 0;
  while (*p && strchr("hlzjt", *p) && l < 2)
    s->len[l++] = *p++;
  if (!*p || !strchr("diuxXofgeEGcsp%", *p) || (size_t)(p + 1 - start) >= sizeof s->text)
    return NULL;
  s->conv = *p++;
  memcpy(s->text, start, (size_t)(p - start));
  return p;
}

/* The value of one conversion: a json-c number or string. Consumes its arguments. */
static json_object *take(const struct spec *s, va_list *ap, char *buf, size_t cap)
{
  int star[2] = {0, 0};
  for (int i = 0; i < s->stars; i++)
    star[i] = va_arg(*ap, int);
  bool ll = !strcmp(s->len, "ll"), l = !strcmp(s->len, "l"), z = !strcmp(s->len, "z"),
       j = !strcmp(s->len, "j"), t = !strcmp(s->len, "t");
  int64_t iv = 0;
  uint64_t uv = 0;
  double dv = 0;
  const char *sv = NULL;
  void *pv = NULL;
  int kind; /* 0 signed, 1 unsigned, 2 double, 3 string, 4 pointer/char: formatted */
  switch (s->conv) {
  case 'd':
  case 'i':
    iv = ll ? va_arg(*ap, long long) : l ? va_arg(*ap, long) : z ? va_arg(*ap, ssize_t)
        : j ? (int64_t)va_arg(*ap, intmax_t) : t ? va_arg(*ap, ptrdiff_t) : va_arg(*ap, int);
    kind = 0;
    break;
  case 'u':
  case 'x':
  case 'X':
  case 'o':
    uv = ll ? va_arg(*ap, unsigned long long) : l ? va_arg(*ap, unsigned long) : z ? va_arg(*ap, size_t)
        : j ? (uint64_t)va_arg(*ap, uintmax_t) : va_arg(*ap, unsigned);
    kind = s->conv == 'u' ? 1 : 4;
    break;
  case 's':
    sv = va_arg(*ap, const char *);
    kind = 3;
    break;
  case 'c':
    iv = va_arg(*ap, int);
    kind = 4;
    break;
  case 'p':
    pv = va_arg(*ap, void *);
    kind = 4;
    break;
  default: /* f g e E G */
    dv = va_arg(*ap, double);
    kind = 2;
    break;
  }
  /* The text as the format would print it (precision and all), for strings and mixed values. */
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wformat-nonliteral"
  int n;
  char f[48];
  /* Integers are fetched at their widest; the format's own length modifier becomes "ll" to match. */
  snprintf(f, sizeof f, "%.*sll%c", (int)(strlen(s->text) - 1 - strlen(s->len)), s->text, s->conv);
  switch (kind) {
  case 0:
    n = s->stars == 2 ? snprintf(buf, cap, f, star[0], star[1], (long long)iv)
        : s->stars   ? snprintf(buf, cap, f, star[0], (long long)iv)
                     : snprintf(buf, cap, f, (long long)iv);
    break;
  case 1:
  case 4:
    if (s->conv == 'c')
      n = snprintf(buf, cap, "%c", (int)iv);
    else if (s->conv == 'p')
      n = snprintf(buf, cap, "%p", pv);
    else
      n = s->stars == 2 ? snprintf(buf, cap, f, star[0], star[1], (unsigned long long)uv)
          : s->stars   ? snprintf(buf, cap, f, star[0], (unsigned long long)uv)
                       : snprintf(buf, cap, f, (unsigned long long)uv);
    break;
  case 2:
    n = s->stars == 2 ? snprintf(buf, cap, s->text, star[0], star[1], dv)
        : s->stars   ? snprintf(buf, cap, s->text, star[0], dv)
                     : snprintf(buf, cap, s->text, dv);
    break;
  default:
    if (!sv)
      sv = "(null)";
    if (!strcmp(s->text, "%s"))
      return str_obj(sv, strlen(sv)); /* the whole string: no truncation */
    n = s->stars == 2 ? snprintf(buf, cap, s->text, star[0], star[1], sv)
        : s->stars   ? snprintf(buf, cap, s->text, star[0], sv)
                     : snprintf(buf, cap, s->text, sv);
    break;
  }
#pragma GCC diagnostic pop
  if (kind == 0 && !s->stars)
    return json_object_new_int64(iv);
  if (kind == 1 && !s->stars)
    return json_object_new_uint64(uv);
  if (kind == 2)
    return json_object_new_double_s(dv, buf); /* printed as the format printed it, parsed as a number */
  return str_obj(buf, n < 0 ? 0 : (size_t)n < cap ? (size_t)n : cap - 1);
}

/* A literal value: a number when it is one (partition=-1), else a string. */
static json_object *literal(const char *s, size_t n)
{
  char b[32];
  if (n && n < sizeof b) {
    memcpy(b, s, n);
    b[n] = 0;
    char *end = NULL;
    long long v = strtoll(b, &end, 10);
    if (*end == 0 && (b[0] == '-' || (b[0] >= '0' && b[0] <= '9')))
      return json_object_new_int64(v);
  }
  return str_obj(s, n);
}

char *sc_log_json_line(const char *ts, const char *level, const char *fmt, va_list ap0)
{
  va_list ap;
  va_copy(ap, ap0);
  json_object *o = json_object_new_object();
  json_object_object_add(o, "ts", json_object_new_string(ts));
  json_object_object_add(o, "level", json_object_new_string(level));
  char buf[1024];
  const char *p = fmt;
  while (*p) {
    while (*p == ' ')
      p++;
    if (!*p)
      break;
    const char *k = p;
    while (*p && *p != '=' && *p != ' ' && *p != '%')
      p++;
    if (*p != '=' || p == k) {
      /* Not key=value from here on: the rest is a message. */
      char *msg = NULL;
      va_list rest;
      va_copy(rest, ap);
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wformat-nonliteral"
      int n = vasprintf(&msg, k, rest);
#pragma GCC diagnostic pop
      va_end(rest);
      if (n >= 0) {
        json_object_object_add(o, "msg", str_obj(msg, (size_t)n));
        free(msg);
      }
      break;
    }
    char key[64];
    size_t kl = (size_t)(p - k) < sizeof key - 1 ? (size_t)(p - k) : sizeof key - 1;
    memcpy(key, k, kl);
    key[kl] = 0;
    p++;
    /* The value: literal text and conversions up to the next space. */
    json_object *single = NULL;
    int parts = 0;
    size_t vo = 0;
    char *val = malloc(1);
    size_t vcap = 1;
    while (*p && *p != ' ') {
      json_object *piece = NULL;
      const char *lit = p;
      size_t litn = 0;
      if (*p == '%' && p[1] == '%') {
        litn = 1;
        p += 2;
      } else if (*p == '%') {
        struct spec s;
        const char *after = parse_spec(p + 1, &s);
        if (!after) {
          lit = p++;
          litn = 1;
        } else {
          p = after;
          piece = take(&s, &ap, buf, sizeof buf);
        }
      } else {
        while (*p && *p != ' ' && *p != '%')
          p++;
        litn = (size_t)(p - lit);
      }
      const char *text = piece ? json_object_get_string(piece) : lit;
      size_t tn = piece ? (size_t)json_object_get_string_len(piece) : litn;
      if (vo + tn + 1 > vcap) {
        vcap = (vo + tn + 1) * 2;
        val = realloc(val, vcap);
      }
      memcpy(val + vo, text, tn);
      vo += tn;
      parts++;
      if (parts == 1 && piece)
        single = piece;
      else if (piece)
        json_object_put(piece);
    }
    if (parts == 1 && single) {
      json_object_object_add(o, key, single);
    } else {
      if (single)
        json_object_put(single);
      json_object_object_add(o, key, parts == 1 ? literal(val, vo) : str_obj(val, vo));
    }
    free(val);
  }
  va_end(ap);
  const char *s = json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE);
  size_t n = strlen(s);
  char *line = malloc(n + 2);
  if (line) {
    memcpy(line, s, n);
    line[n] = '\n';
    line[n + 1] = 0;
  }
  json_object_put(o);
  return line;
}
