#include "internal.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

/* Under a lock: workers log from their own threads while the program may set a new function, and a function
 * must never be called with the other one's user_data. */
static pthread_mutex_t log_mu = PTHREAD_MUTEX_INITIALIZER;
static dt_log_fn log_fn;
static void *log_data;

void dt_set_log_fn(dt_log_fn fn, void *user_data)
{
  pthread_mutex_lock(&log_mu);
  log_fn = fn;
  log_data = user_data;
  pthread_mutex_unlock(&log_mu);
}

void dt__log(int level, const char *fmt, ...)
{
  pthread_mutex_lock(&log_mu);
  dt_log_fn fn = log_fn;
  void *data = log_data;
  pthread_mutex_unlock(&log_mu);
  if (!fn)
    return;
  char buf[1024];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(buf, sizeof buf, fmt, ap);
  va_end(ap);
  fn(level, buf, data);
}

const char *dt_strerror(int rc)
{
  switch (rc) {
  case DT_OK: return "ok";
  case DT_ERR_INVALID_ARG: return "invalid argument";
  case DT_ERR_NOT_FOUND: return "not found";
  case DT_ERR_EXISTS: return "already exists";
  case DT_ERR_STATE: return "wrong state for this operation";
  case DT_ERR_TIMEOUT: return "timed out";
  case DT_ERR_UNAVAILABLE: return "server unavailable";
  case DT_ERR_TASK_FAILED: return "task failed";
  case DT_ERR_NONDETERMINISM: return "nondeterministic orchestrator";
  case DT_ERR_NOMEM: return "out of memory";
  case DT_ERR_INTERNAL: return "internal or protocol error";
  case DT_ERR_CANCELLED: return "cancelled";
  case DT_ERR_UNSUPPORTED: return "not supported by the server";
  case DT_ERR_TOO_BIG: return "too big";
  case DT_ERR_UNAUTHENTICATED: return "not authenticated (missing or wrong token or certificate)";
  }
  return "unknown status";
}

const char *dt_status_name(dt_status s)
{
  switch (s) {
  case DT_STATUS_RUNNING: return "RUNNING";
  case DT_STATUS_COMPLETED: return "COMPLETED";
  case DT_STATUS_CONTINUED_AS_NEW: return "CONTINUED_AS_NEW";
  case DT_STATUS_FAILED: return "FAILED";
  case DT_STATUS_CANCELED: return "CANCELED";
  case DT_STATUS_TERMINATED: return "TERMINATED";
  case DT_STATUS_PENDING: return "PENDING";
  case DT_STATUS_SUSPENDED: return "SUSPENDED";
  }
  return "UNKNOWN";
}

void dt_free(void *p)
{
  free(p);
}

char *dt__strdup(const char *s)
{
  return s ? strdup(s) : NULL;
}

int64_t dt__now_ms(void)
{
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* ------------------------------------------------------------------ arena */

struct dt__arena_chunk {
  struct dt__arena_chunk *next;
  size_t cap, off;
  max_align_t data[];
};

static void *pb_alloc(void *d, size_t n)
{
  return dt__arena_alloc(d, n);
}

static void pb_free(void *d, void *p)
{
  (void)d;
  (void)p;
}

void dt__arena_init(dt__arena *a)
{
  a->head = NULL;
  a->pb.alloc = pb_alloc;
  a->pb.free = pb_free;
  a->pb.allocator_data = a;
}

void *dt__arena_alloc(dt__arena *a, size_t n)
{
  const size_t al = sizeof(max_align_t);
  /* Checked before rounding up and adding the chunk header, either of which would wrap around into a small
   * allocation. No object may be larger than PTRDIFF_MAX anyway. */
  if (n > (size_t)PTRDIFF_MAX - sizeof(struct dt__arena_chunk) - al)
    return NULL;
  n = n ? (n + al - 1) & ~(al - 1) : al;
  struct dt__arena_chunk *c = a->head;
  if (!c || c->cap - c->off < n) {
    size_t cap = c ? c->cap * 2 : 4096;
    if (cap > ((size_t)1 << 20))
      cap = (size_t)1 << 20;
    if (cap < n)
      cap = n;
    c = malloc(sizeof *c + cap);
    if (!c)
      return NULL;
    c->cap = cap;
    c->off = 0;
    c->next = a->head;
    a->head = c;
  }
  void *p = (char *)c->data + c->off;
  c->off += n;
  return p;
}

char *dt__arena_strdup(dt__arena *a, const char *s)
{
  if (!s)
    return NULL;
  size_t n = strlen(s);
  char *p = dt__arena_alloc(a, n + 1);
  if (p)
    memcpy(p, s, n + 1);
  return p;
}

char *dt__arena_vprintf(dt__arena *a, const char *fmt, va_list ap)
{
  va_list ap2;
  va_copy(ap2, ap);
  int n = vsnprintf(NULL, 0, fmt, ap2);
  va_end(ap2);
  if (n < 0)
    return NULL;
  char *p = dt__arena_alloc(a, (size_t)n + 1);
  if (p)
    vsnprintf(p, (size_t)n + 1, fmt, ap);
  return p;
}

void dt__arena_free(dt__arena *a)
{
  struct dt__arena_chunk *c = a->head;
  while (c) {
    struct dt__arena_chunk *n = c->next;
    free(c);
    c = n;
  }
  a->head = NULL;
}

/* getrandom() blocks only until the kernel's pool is first seeded, and a signal can interrupt that wait: EINTR is
 * retried, but only so often. Other errors (ENOSYS from old kernels and some seccomp sandboxes) go straight to
 * /dev/urandom. */
#define RANDOM_TRIES 64

static size_t fill_random(unsigned char *b, size_t len)
{
  size_t got = 0;
  for (int i = 0; got < len && i < RANDOM_TRIES; i++) {
    ssize_t n = getrandom(b + got, len - got, 0);
    if (n > 0)
      got += (size_t)n;
    else if (n < 0 && errno != EINTR)
      break;
  }
  if (got == len)
    return got;
  int fd = open("/dev/urandom", O_RDONLY | O_CLOEXEC);
  if (fd < 0)
    return 0;
  got = 0;
  for (int i = 0; got < len && i < RANDOM_TRIES; i++) {
    ssize_t n = read(fd, b + got, len - got);
    if (n > 0)
      got += (size_t)n;
    else if (n == 0 || errno != EINTR)
      break;
  }
  close(fd);
  return got;
}

int dt__random_hex32(char out[33])
{
  static const char digits[] = "0123456789abcdef";
  unsigned char b[16];
  if (fill_random(b, sizeof b) != sizeof b) {
    DT_ERROR("no randomness: getrandom and /dev/urandom both failed");
    return DT_ERR_INTERNAL;
  }
  for (int i = 0; i < 16; i++) {
    out[2 * i] = digits[b[i] >> 4];
    out[2 * i + 1] = digits[b[i] & 15];
  }
  out[32] = 0;
  return DT_OK;
}

Google__Protobuf__StringValue *dt__sv(Google__Protobuf__StringValue *slot, const char *s)
{
  if (!s)
    return NULL;
  google__protobuf__string_value__init(slot);
  slot->value = (char *)s;
  return slot;
}

Google__Protobuf__Timestamp *dt__ts(Google__Protobuf__Timestamp *slot, int64_t ms)
{
  google__protobuf__timestamp__init(slot);
  int64_t s = ms / 1000, rem = ms % 1000;
  if (rem < 0) {
    rem += 1000;
    s--;
  }
  slot->seconds = s;
  slot->nanos = (int32_t)(rem * 1000000);
  return slot;
}

/* Timestamps outside protobuf's range (years 1 to 9999) are clamped to it: the arithmetic below cannot overflow,
 * whatever a server sends. */
#define TS_MIN_SECONDS (-62135596800LL)
#define TS_MAX_SECONDS 253402300799LL

int64_t dt__ts_us(const Google__Protobuf__Timestamp *t)
{
  if (!t)
    return 0;
  int64_t s = t->seconds < TS_MIN_SECONDS ? TS_MIN_SECONDS : t->seconds > TS_MAX_SECONDS ? TS_MAX_SECONDS : t->seconds;
  int32_t ns = t->nanos < 0 ? 0 : t->nanos > 999999999 ? 999999999 : t->nanos;
  return s * 1000000 + ns / 1000;
}

int64_t dt__ts_ms(const Google__Protobuf__Timestamp *t)
{
  return t ? dt__ts_us(t) / 1000 : 0;
}

char *dt__cp(const char *s, bool *oom)
{
  if (!s)
    return NULL;
  char *d = strdup(s);
  if (!d)
    *oom = true;
  return d;
}

bool dt__pb_unwritable(const ProtobufCMessage *m)
{
  for (unsigned i = 0; i < m->n_unknown_fields; i++)
    if (m->unknown_fields[i].tag == 0)
      return true;
  const ProtobufCMessageDescriptor *d = m->descriptor;
  const char *base = (const char *)m;
  for (unsigned i = 0; i < d->n_fields; i++) {
    const ProtobufCFieldDescriptor *f = &d->fields[i];
    if (f->type != PROTOBUF_C_TYPE_MESSAGE)
      continue;
    if (f->label == PROTOBUF_C_LABEL_REPEATED) {
      size_t n = *(const size_t *)(const void *)(base + f->quantifier_offset);
      ProtobufCMessage *const *v = *(ProtobufCMessage *const *const *)(const void *)(base + f->offset);
      for (size_t k = 0; k < n; k++)
        if (v[k] && dt__pb_unwritable(v[k]))
          return true;
      continue;
    }
    /* Another member of the oneof is set: this one's slot is not a message. */
    if ((f->flags & PROTOBUF_C_FIELD_FLAG_ONEOF) &&
        *(const uint32_t *)(const void *)(base + f->quantifier_offset) != f->id)
      continue;
    const ProtobufCMessage *sub = *(ProtobufCMessage *const *)(const void *)(base + f->offset);
    if (sub && dt__pb_unwritable(sub))
      return true;
  }
  return false;
}
