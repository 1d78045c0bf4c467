/* The fault-injecting store (faulty.h): every operation counted, passed through, or failed on cue. */
#include "faulty.h"

#include "common/log.h"

#include <pthread.h>
#include <stdlib.h>

struct fstore {
  struct sc_store base;
  struct sc_store *in;
  pthread_mutex_t mu;
  struct sc_fault f;
  struct sc_faulty_counts c;
  struct sc_faulty_counts *mirror;
};

#define FS(s) ((struct fstore *)(s))

enum verdict { PASS, FAIL, PASS_THEN_CRASH };

static int code_of(const struct fstore *s)
{
  return s->f.code ? s->f.code : SC_EIO;
}

/* An operation (SC_FAULT_WRITE, _READ or _STEP) begins: counted, and judged. */
static enum verdict begin(struct fstore *s, enum sc_fault_kind kind)
{
  pthread_mutex_lock(&s->mu);
  enum verdict v = PASS;
  if (s->c.crashed) {
    v = FAIL;
  } else {
    uint64_t *n = kind == SC_FAULT_WRITE ? &s->c.writes : kind == SC_FAULT_READ ? &s->c.reads : &s->c.steps;
    ++*n;
    s->c.ops++;
    if (!s->c.fired && s->f.kind == kind && *n == s->f.n) {
      v = FAIL;
    } else if (!s->c.fired && s->f.kind == SC_FAULT_CRASH) {
      if (!s->f.after_write && s->c.ops == s->f.n)
        v = FAIL;
      else if (s->f.after_write && kind == SC_FAULT_WRITE && *n == s->f.n)
        v = PASS_THEN_CRASH;
    }
    if (v != PASS) {
      s->c.fired = true;
      s->c.crashed = s->f.kind == SC_FAULT_CRASH;
      SC_WARN("event=fault_injected kind=%d n=%llu op=%llu", (int)s->f.kind, (unsigned long long)s->f.n,
              (unsigned long long)s->c.ops);
    }
    if (s->mirror)
      *s->mirror = s->c;
  }
  pthread_mutex_unlock(&s->mu);
  return v;
}

/* Steps of a read that returned |n| rows: SC_OK, or the failure of the step that failed. */
static int steps(struct fstore *s, size_t n)
{
  for (size_t i = 0; i < n; i++)
    if (begin(s, SC_FAULT_STEP) != PASS)
      return code_of(s);
  return SC_OK;
}

#define READ_BEGIN(s)                                                                                           \
  do {                                                                                                          \
    if (begin(FS(s), SC_FAULT_READ) != PASS)                                                                    \
      return code_of(FS(s));                                                                                    \
  } while (0)

/* ------------------------------------------------------------------ reads */

static int get_instance(struct sc_store *s, const char *iid, struct sc_arena *a, struct sc_blob *out)
{
  READ_BEGIN(s);
  return FS(s)->in->ops->get_instance(FS(s)->in, iid, a, out);
}

static int get_payload(struct sc_store *s, const char *iid, int kind, struct sc_arena *a, char **data, size_t *len)
{
  READ_BEGIN(s);
  return FS(s)->in->ops->get_payload(FS(s)->in, iid, kind, a, data, len);
}

static int history_load(struct sc_store *s, const char *iid, struct sc_arena *a, struct sc_blob **out, size_t *n)
{
  READ_BEGIN(s);
  int rc = FS(s)->in->ops->history_load(FS(s)->in, iid, a, out, n);
  return rc == SC_OK ? steps(FS(s), *n) : rc;
}

static int history_range(struct sc_store *s, const char *iid, uint32_t from, size_t max_events, size_t max_bytes,
                         struct sc_arena *a, struct sc_history_slice *out)
{
  READ_BEGIN(s);
  int rc = FS(s)->in->ops->history_range(FS(s)->in, iid, from, max_events, max_bytes, a, out);
  return rc == SC_OK ? steps(FS(s), out->n) : rc;
}

static int inbox_load(struct sc_store *s, const char *iid, struct sc_arena *a, struct sc_inbox_blob **out, size_t *n)
{
  READ_BEGIN(s);
  int rc = FS(s)->in->ops->inbox_load(FS(s)->in, iid, a, out, n);
  return rc == SC_OK ? steps(FS(s), *n) : rc;
}

static int timer_get(struct sc_store *s, int64_t due_us, uint64_t seq, struct sc_arena *a, StoredTimer **out)
{
  READ_BEGIN(s);
  return FS(s)->in->ops->timer_get(FS(s)->in, due_us, seq, a, out);
}

static int actq_get(struct sc_store *s, uint64_t seq, struct sc_arena *a, StoredActivity **out)
{
  READ_BEGIN(s);
  return FS(s)->in->ops->actq_get(FS(s)->in, seq, a, out);
}

/* Scans: every row handed to the callback is a step; a failing one ends the scan with its failure. */
struct scan {
  struct fstore *s;
  void *ctx;
  sc_child_fn child;
  sc_timer_fn timer;
  sc_seq_fn seq;
};

static int child_step(const char *iid, void *ctx)
{
  struct scan *w = ctx;
  return begin(w->s, SC_FAULT_STEP) != PASS ? code_of(w->s) : w->child(iid, w->ctx);
}

static int timer_step(const struct sc_timer_row *row, void *ctx)
{
  struct scan *w = ctx;
  return begin(w->s, SC_FAULT_STEP) != PASS ? code_of(w->s) : w->timer(row, w->ctx);
}

static int seq_step(uint64_t seq, void *ctx)
{
  struct scan *w = ctx;
  return begin(w->s, SC_FAULT_STEP) != PASS ? code_of(w->s) : w->seq(seq, w->ctx);
}

static int children(struct sc_store *s, const char *parent, sc_child_fn fn, void *ctx)
{
  READ_BEGIN(s);
  struct scan w = {.s = FS(s), .ctx = ctx, .child = fn};
  return FS(s)->in->ops->children(FS(s)->in, parent, child_step, &w);
}

static int timer_scan(struct sc_store *s, int part, sc_timer_fn fn, void *ctx)
{
  READ_BEGIN(s);
  struct scan w = {.s = FS(s), .ctx = ctx, .timer = fn};
  return FS(s)->in->ops->timer_scan(FS(s)->in, part, timer_step, &w);
}

static int actq_scan(struct sc_store *s, int part, sc_seq_fn fn, void *ctx)
{
  READ_BEGIN(s);
  struct scan w = {.s = FS(s), .ctx = ctx, .seq = fn};
  return FS(s)->in->ops->actq_scan(FS(s)->in, part, seq_step, &w);
}

static int inbox_scan_instances(struct sc_store *s, int part, sc_child_fn fn, void *ctx)
{
  READ_BEGIN(s);
  struct scan w = {.s = FS(s), .ctx = ctx, .child = fn};
  return FS(s)->in->ops->inbox_scan_instances(FS(s)->in, part, child_step, &w);
}

static int failed(struct fstore *s, struct sc_err *err, const char *what)
{
  sc_err_set(err, code_of(s), "injected fault: %s failed", what);
  return code_of(s);
}

static int query(struct sc_store *s, const struct sc_query *q, struct sc_arena *a, struct sc_query_page *out,
                 struct sc_err *err)
{
  if (begin(FS(s), SC_FAULT_READ) != PASS)
    return failed(FS(s), err, "query");
  int rc = FS(s)->in->ops->query(FS(s)->in, q, a, out, err);
  if (rc == SC_OK && steps(FS(s), out->n) != SC_OK)
    return failed(FS(s), err, "query row");
  return rc;
}

static int get_entity(struct sc_store *s, const char *id, struct sc_arena *a, struct sc_blob *out)
{
  READ_BEGIN(s);
  return FS(s)->in->ops->get_entity(FS(s)->in, id, a, out);
}

static int query_entities(struct sc_store *s, const struct sc_entity_query *q, struct sc_arena *a,
                          struct sc_entity_page *out, struct sc_err *err)
{
  if (begin(FS(s), SC_FAULT_READ) != PASS)
    return failed(FS(s), err, "entity query");
  int rc = FS(s)->in->ops->query_entities(FS(s)->in, q, a, out, err);
  if (rc == SC_OK && steps(FS(s), out->n) != SC_OK)
    return failed(FS(s), err, "entity query row");
  return rc;
}

static int count_entities(struct sc_store *s, uint64_t *with_state, uint64_t *transient, uint64_t *queued,
                          struct sc_err *err)
{
  if (begin(FS(s), SC_FAULT_READ) != PASS)
    return failed(FS(s), err, "counting entities");
  return FS(s)->in->ops->count_entities(FS(s)->in, with_state, transient, queued, err);
}

static int count_by_status(struct sc_store *s, uint64_t counts[8], struct sc_err *err)
{
  if (begin(FS(s), SC_FAULT_READ) != PASS)
    return failed(FS(s), err, "counting instances");
  return FS(s)->in->ops->count_by_status(FS(s)->in, counts, err);
}

/* ------------------------------------------------------------------ writes */

static int apply(struct sc_store *s, const struct sc_changes *ch, bool sync, struct sc_err *err)
{
  enum verdict v = begin(FS(s), SC_FAULT_WRITE);
  if (v == FAIL)
    return failed(FS(s), err, "commit");
  int rc = FS(s)->in->ops->apply(FS(s)->in, ch, sync, err);
  if (v == PASS_THEN_CRASH && rc == SC_OK)
    return failed(FS(s), err, "commit (written, then the process died)");
  return rc;
}

static int wipe(struct sc_store *s, uint64_t next_seq, struct sc_err *err)
{
  enum verdict v = begin(FS(s), SC_FAULT_WRITE);
  if (v == FAIL)
    return failed(FS(s), err, "wipe");
  int rc = FS(s)->in->ops->wipe(FS(s)->in, next_seq, err);
  if (v == PASS_THEN_CRASH && rc == SC_OK)
    return failed(FS(s), err, "wipe (written, then the process died)");
  return rc;
}

/* ------------------------------------------------------------------ passed through */

static uint64_t seq_start(struct sc_store *s)
{
  return FS(s)->in->ops->seq_start(FS(s)->in);
}

static int partitions(struct sc_store *s)
{
  return FS(s)->in->ops->partitions(FS(s)->in);
}

static void attach(struct sc_store *s, const struct sc_store_events *ev)
{
  FS(s)->in->ops->attach(FS(s)->in, ev);
}

static void detach(struct sc_store *s)
{
  FS(s)->in->ops->detach(FS(s)->in);
}

static void release(struct sc_store *s, int part)
{
  FS(s)->in->ops->release(FS(s)->in, part);
}

static void set_workers(struct sc_store *s, bool any)
{
  FS(s)->in->ops->set_workers(FS(s)->in, any);
}

static int check(struct sc_store *s, struct sc_err *err)
{
  return sc_store_check(FS(s)->in, err);
}

static int64_t property(struct sc_store *s, const char *name)
{
  return FS(s)->in->ops->property(FS(s)->in, name);
}

static void fclose_(struct sc_store *s)
{
  sc_store_close(FS(s)->in);
  pthread_mutex_destroy(&FS(s)->mu);
  free(s);
}

static const struct sc_store_ops faulty_ops = {
    .close = fclose_,
    .get_instance = get_instance,
    .get_payload = get_payload,
    .history_load = history_load,
    .history_range = history_range,
    .inbox_load = inbox_load,
    .timer_get = timer_get,
    .actq_get = actq_get,
    .children = children,
    .timer_scan = timer_scan,
    .actq_scan = actq_scan,
    .inbox_scan_instances = inbox_scan_instances,
    .query = query,
    .get_entity = get_entity,
    .query_entities = query_entities,
    .count_entities = count_entities,
    .count_by_status = count_by_status,
    .seq_start = seq_start,
    .apply = apply,
    .wipe = wipe,
    .partitions = partitions,
    .attach = attach,
    .detach = detach,
    .release = release,
    .set_workers = set_workers,
    .check = check,
    .property = property,
};

struct sc_store *sc_faulty_wrap(struct sc_store *inner)
{
  struct fstore *s = calloc(1, sizeof *s);
  if (!s)
    sc_panic("out of memory");
  s->base.ops = &faulty_ops;
  s->in = inner;
  pthread_mutex_init(&s->mu, NULL);
  return &s->base;
}

void sc_faulty_arm(struct sc_store *st, const struct sc_fault *f)
{
  struct fstore *s = FS(st);
  pthread_mutex_lock(&s->mu);
  s->f = f ? *f : (struct sc_fault){.kind = SC_FAULT_NONE};
  s->c = (struct sc_faulty_counts){0};
  pthread_mutex_unlock(&s->mu);
}

void sc_faulty_mirror(struct sc_store *st, struct sc_faulty_counts *mirror)
{
  struct fstore *s = FS(st);
  pthread_mutex_lock(&s->mu);
  s->mirror = mirror;
  pthread_mutex_unlock(&s->mu);
}

void sc_faulty_counts(struct sc_store *st, struct sc_faulty_counts *out)
{
  struct fstore *s = FS(st);
  pthread_mutex_lock(&s->mu);
  *out = s->c;
  pthread_mutex_unlock(&s->mu);
}
