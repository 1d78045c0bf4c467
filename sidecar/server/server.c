/*
 * The gRPC transport: one completion-queue thread drives a small state machine per call. Registered methods
 * arrive with their request payload; everything else arrives through the generic path and is answered
 * UNIMPLEMENTED. Replies to engine commands are started from the engine thread, and reads of committed state
 * run on a small pool of reader threads (readers.h), which start their own replies (grpc_call_start_batch may
 * be called from any thread); the reference count on each call keeps it alive until every batch is done.
 */
#include "server.h"

#include "call.h"
#include "server/bind.h"
#include "server/tls.h"
#include "common/log.h"
#include "common/metrics.h"
#include "common/tokens.h"
#include "common/util.h"
#include "common/tsan.h"
#include "limits/limits.h"

#include <grpc/byte_buffer.h>
#include <grpc/byte_buffer_reader.h>
#include <grpc/grpc_security.h>
#include <grpc/support/alloc.h>
#include <grpc/support/time.h>
#include <pthread.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Reader threads: reads are short (bounded pages and chunks), so two keep up while leaving a core to the
 * engine and the completion queue on small machines. */
#define READER_THREADS 2

struct sc_server {
  struct sc_server_ctx ctx;
  pthread_mutex_t streams_mu;
  struct sc_call *streams; /* open GetWorkItems calls, ended at shutdown */
  grpc_server *server;
  grpc_completion_queue *cq;
  pthread_t th;
  struct sc_readers *readers;
  atomic_bool shutting_down;
  atomic_bool outbox_full; /* a stream was refused work by --max-outbox-total: kick the engine when it drains */
  atomic_int live_calls;
  struct sc_tag shutdown_tag;
  pthread_mutex_t mu;
  pthread_cond_t cv;
  bool shutdown_done;
  bool started;
};

const struct sc_server_ctx *sc_call_ctx(const struct sc_call *c)
{
  return &c->srv->ctx;
}

size_t sc_call_send_budget(const struct sc_call *c)
{
  size_t send = c->srv->ctx.cfg->max_send_message;
  return send > (128u << 10) ? send - (64u << 10) : send / 2;
}

static void call_unref(struct sc_call *c)
{
  if (atomic_fetch_sub(&c->refs, 1) != 1)
    return;
  if (c->call)
    grpc_call_unref(c->call);
  if (c->req_bb)
    grpc_byte_buffer_destroy(c->req_bb);
  if (c->resp_bb)
    grpc_byte_buffer_destroy(c->resp_bb);
  if (c->has_status_details)
    grpc_slice_unref(c->status_details);
  grpc_metadata_array_destroy(&c->md);
  if (!c->m)
    grpc_call_details_destroy(&c->details);
  sc_arena_free(&c->arena);
  if (c->out) {
    while (c->out->head) {
      struct sc_outmsg *m = c->out->head;
      c->out->head = m->next;
      free(m->buf);
      free(m);
    }
    pthread_mutex_destroy(&c->out->mu);
    free(c->out);
  }
  atomic_fetch_sub(&c->srv->live_calls, 1);
  free(c);
}

void sc_call_ref(struct sc_call *c)
{
  atomic_fetch_add(&c->refs, 1);
}

void sc_call_unref(struct sc_call *c)
{
  call_unref(c);
}

static void run_read(struct sc_job *j)
{
  struct sc_call *c = (struct sc_call *)((char *)j - offsetof(struct sc_call, read_job));
  c->read_fn(c);
}

void sc_call_read(struct sc_call *c, sc_call_fn fn)
{
  c->read_fn = fn;
  c->read_job.fn = run_read;
  sc_readers_post(c->srv->readers, &c->read_job);
}

void sc_call_read_request(struct sc_call *c, sc_call_fn fn)
{
  c->read_fn = fn;
  c->read_job.fn = run_read;
  size_t waiting = 0;
  if (sc_readers_try_post(c->srv->readers, &c->read_job, c->srv->ctx.cfg->max_queued, &waiting))
    return;
  char msg[200];
  snprintf(msg, sizeof msg, "taskhubd is overloaded: %zu reads already wait for a reader thread, the limit "
           "(--max-queued-commands); retry later", waiting);
  sc_call_reply(c, GRPC_STATUS_RESOURCE_EXHAUSTED, msg, NULL);
}

static void start_batch(struct sc_call *c, const grpc_op *ops, size_t n,
                        struct sc_tag *t)
{
  atomic_fetch_add(&c->refs, 1);
  grpc_call *call = c->call;
  SC_TSAN_RELEASE(t);
  grpc_call_error e = grpc_call_start_batch(call, ops, n, t, NULL);
  if (e != GRPC_CALL_OK)
    sc_panic("grpc_call_start_batch failed: %s", grpc_call_error_to_string(e));
}

/* ------------------------------------------------------------------ replies */

static void on_done(struct sc_call *c, bool ok)
{
  (void)ok;
  call_unref(c);
}

void sc_call_reply(struct sc_call *c, int code, const char *msg,
                   const ProtobufCMessage *resp)
{
  grpc_op ops[4];
  memset(ops, 0, sizeof ops);
  size_t n = 0;
  ops[n++].op = GRPC_OP_SEND_INITIAL_METADATA;
  if (code == GRPC_STATUS_OK && resp) {
    size_t len = protobuf_c_message_get_packed_size(resp);
    grpc_slice sl = grpc_slice_malloc(len);
    protobuf_c_message_pack(resp, GRPC_SLICE_START_PTR(sl));
    c->resp_bb = grpc_raw_byte_buffer_create(&sl, 1);
    grpc_slice_unref(sl);
    ops[n].op = GRPC_OP_SEND_MESSAGE;
    ops[n++].data.send_message.send_message = c->resp_bb;
  }
  ops[n].op = GRPC_OP_SEND_STATUS_FROM_SERVER;
  ops[n].data.send_status_from_server.status = (grpc_status_code)code;
  if (msg && *msg) {
    c->status_details = grpc_slice_from_copied_string(msg);
    c->has_status_details = true;
    ops[n].data.send_status_from_server.status_details = &c->status_details;
  }
  n++;
  if (!c->close_started) {
    c->close_started = true;
    ops[n].op = GRPC_OP_RECV_CLOSE_ON_SERVER;
    ops[n++].data.recv_close_on_server.cancelled = &c->cancelled;
  }
  sc_metrics_rpc(c->m ? c->m->metric : 0, code, (double)(sc_mono_us() - c->start_us) / 1e6);
  if (sc_log_level <= SC_LOG_DEBUG || code != GRPC_STATUS_OK) {
    const char *path = c->m ? c->m->path : "(unregistered)";
    if (code == GRPC_STATUS_INTERNAL || code == GRPC_STATUS_DATA_LOSS)
      SC_ERROR("event=rpc rpc=%s code=%d us=%lld error=%s", SC_Q(path), code,
               (long long)(sc_mono_us() - c->start_us), SC_Q(msg ? msg : ""));
    else
      SC_DEBUG("event=rpc rpc=%s code=%d us=%lld error=%s", SC_Q(path), code,
               (long long)(sc_mono_us() - c->start_us), SC_Q(msg ? msg : ""));
  }
  start_batch(c, ops, n, &c->t_done);
  call_unref(c); /* the handler's reference */
}

void sc_call_reply_err(struct sc_call *c, const struct sc_err *err)
{
  sc_call_reply(c, sc_status_to_grpc(err->code), err->msg, NULL);
}


void sc_call_post(struct sc_call *c, sc_cmd_done_fn done)
{
  c->cmd.done = done;
  c->cmd.user = c;
  c->cmd.bytes = c->req_bb ? grpc_byte_buffer_length(c->req_bb) : 0;
  sc_engine_post(c->srv->ctx.engine, &c->cmd);
}

static void cancel_done(struct sc_cmd *cmd)
{
  call_unref(cmd->user);
}

static void stream_closed(struct sc_call *c);

static void on_close(struct sc_call *c, bool ok)
{
  if (c->out) {
    stream_closed(c);
    call_unref(c);
    return;
  }
  /* The client cancelled or its deadline passed while its wait was parked: release the waiter now rather
   * than at the engine's cap, so an abandoned wait holds nothing. */
  if (ok && c->cancelled && atomic_load(&c->waiting)) {
    memset(&c->cancel_cmd, 0, sizeof c->cancel_cmd);
    c->cancel_cmd.kind = SC_CMD_WAIT_CANCEL;
    c->cancel_cmd.u.cancel.target = &c->cmd;
    c->cancel_cmd.done = cancel_done;
    c->cancel_cmd.user = c;
    atomic_fetch_add(&c->refs, 1);
    sc_engine_post(c->srv->ctx.engine, &c->cancel_cmd);
  }
  call_unref(c);
}

void sc_call_watch_cancel(struct sc_call *c)
{
  grpc_op op;
  memset(&op, 0, sizeof op);
  op.op = GRPC_OP_RECV_CLOSE_ON_SERVER;
  op.data.recv_close_on_server.cancelled = &c->cancelled;
  c->close_started = true;
  start_batch(c, &op, 1, &c->t_close);
}

int64_t sc_call_deadline_us(const struct sc_call *c)
{
  gpr_timespec d = gpr_convert_clock_type(c->deadline, GPR_CLOCK_REALTIME);
  if (gpr_time_cmp(d, gpr_inf_future(GPR_CLOCK_REALTIME)) >= 0 || d.tv_sec > INT64_MAX / 2000000)
    return -1;
  return d.tv_sec * 1000000 + d.tv_nsec / 1000;
}

/* ------------------------------------------------------------------ server streams */

static void drop_outbox_locked(struct sc_stream_out *o)
{
  atomic_fetch_sub_explicit(&sc_metrics.stream_bytes, (int_fast64_t)(o->bytes - o->sending_len),
                            memory_order_relaxed);
  while (o->head) {
    struct sc_outmsg *m = o->head;
    o->head = m->next;
    free(m->buf);
    free(m);
  }
  o->tail = NULL;
  o->queued = 0;
  o->bytes = o->sending_len;
}

static void start_send_locked(struct sc_call *c)
{
  struct sc_stream_out *o = c->out;
  struct sc_outmsg *m = o->head;
  o->head = m->next;
  if (!o->head)
    o->tail = NULL;
  o->queued--;
  o->sending_len = m->len;
  grpc_slice sl = grpc_slice_new(m->buf, m->len, free);
  free(m);
  o->send_bb = grpc_raw_byte_buffer_create(&sl, 1);
  grpc_slice_unref(sl);
  grpc_op op;
  memset(&op, 0, sizeof op);
  op.op = GRPC_OP_SEND_MESSAGE;
  op.data.send_message.send_message = o->send_bb;
  o->sending = true;
  start_batch(c, &op, 1, &c->t_send);
}

/* Starts the status batch; the caller then drops the handler's reference (outside the lock). */
static void send_status_locked(struct sc_call *c)
{
  struct sc_stream_out *o = c->out;
  o->status_sent = true;
  sc_metrics_rpc(c->m ? c->m->metric : 0, o->end_code, (double)(sc_mono_us() - c->start_us) / 1e6);
  grpc_op op;
  memset(&op, 0, sizeof op);
  op.op = GRPC_OP_SEND_STATUS_FROM_SERVER;
  op.data.send_status_from_server.status = (grpc_status_code)o->end_code;
  if (o->end_msg[0]) {
    c->status_details = grpc_slice_from_copied_string(o->end_msg);
    c->has_status_details = true;
    op.data.send_status_from_server.status_details = &c->status_details;
  }
  start_batch(c, &op, 1, &c->t_done);
}

/* Whether streams were refused work for --max-outbox-total and the total is below it again (then once only). */
static bool total_drained(struct sc_server *s)
{
  size_t total = s->ctx.cfg->max_outbox_total;
  if (!total || !atomic_load(&s->outbox_full))
    return false;
  if ((size_t)atomic_load_explicit(&sc_metrics.stream_bytes, memory_order_relaxed) >= total)
    return false;
  return atomic_exchange(&s->outbox_full, false);
}

static void on_send(struct sc_call *c, bool ok)
{
  struct sc_stream_out *o = c->out;
  bool release = false, pull = false;
  pthread_mutex_lock(&o->mu);
  grpc_byte_buffer_destroy(o->send_bb);
  o->send_bb = NULL;
  o->sending = false;
  o->bytes -= o->sending_len;
  atomic_fetch_sub_explicit(&sc_metrics.stream_bytes, (int_fast64_t)o->sending_len, memory_order_relaxed);
  o->sending_len = 0;
  bool kick = o->kick_below && o->bytes < o->kick_below;
  if (kick)
    o->kick_below = 0;
  o->progress_us = sc_mono_us();
  if (!ok) {
    o->closed = true; /* the client is gone; on_close finishes the call */
    drop_outbox_locked(o);
  } else if (o->head) {
    start_send_locked(c);
  } else if (o->ending && !o->status_sent) {
    send_status_locked(c);
    release = true;
  } else if (!o->ending && !o->closed) {
    pull = o->pull != NULL;
  }
  pthread_mutex_unlock(&o->mu);
  if (kick || total_drained(c->srv))
    sc_engine_kick(c->srv->ctx.engine);
  if (pull)
    o->pull(c);
  if (release)
    call_unref(c);
  call_unref(c);
}

static void on_md(struct sc_call *c, bool ok)
{
  (void)ok;
  call_unref(c);
}

void sc_call_stream_begin(struct sc_call *c, bool work_stream)
{
  struct sc_stream_out *o = calloc(1, sizeof *o);
  if (!o)
    sc_panic("out of memory opening a stream");
  pthread_mutex_init(&o->mu, NULL);
  o->work_stream = work_stream;
  c->out = o;
  c->t_send = (struct sc_tag){on_send, c};
  c->t_md = (struct sc_tag){on_md, c};
  grpc_op op;
  memset(&op, 0, sizeof op);
  op.op = GRPC_OP_SEND_INITIAL_METADATA;
  start_batch(c, &op, 1, &c->t_md);
  sc_call_watch_cancel(c);
  if (work_stream) {
    struct sc_server *s = c->srv;
    pthread_mutex_lock(&s->streams_mu);
    o->next = s->streams;
    if (s->streams)
      s->streams->out->prev = c;
    s->streams = c;
    pthread_mutex_unlock(&s->streams_mu);
  }
}

void sc_call_stream_begin_pull(struct sc_call *c, sc_call_fn pull)
{
  sc_call_stream_begin(c, false);
  pthread_mutex_lock(&c->out->mu);
  c->out->pull = pull;
  pthread_mutex_unlock(&c->out->mu);
}

bool sc_call_stream_live(struct sc_call *c)
{
  struct sc_stream_out *o = c->out;
  pthread_mutex_lock(&o->mu);
  bool live = !o->closed && !o->ending && !o->status_sent;
  pthread_mutex_unlock(&o->mu);
  return live;
}

void sc_call_stream_push(struct sc_call *c, uint8_t *buf, size_t len)
{
  struct sc_stream_out *o = c->out;
  pthread_mutex_lock(&o->mu);
  if (o->closed || o->ending) {
    pthread_mutex_unlock(&o->mu);
    free(buf);
    return;
  }
  struct sc_outmsg *m = malloc(sizeof *m);
  if (!m)
    sc_panic("out of memory queueing a stream message");
  m->buf = buf;
  m->len = len;
  m->next = NULL;
  if (o->tail)
    o->tail->next = m;
  else
    o->head = m;
  o->tail = m;
  o->queued++;
  o->bytes += len;
  atomic_fetch_add_explicit(&sc_metrics.stream_bytes, (int_fast64_t)len, memory_order_relaxed);
  if (!o->sending) {
    o->progress_us = sc_mono_us(); /* a stall is counted from here: the worker had read everything before */
    start_send_locked(c);
  }
  pthread_mutex_unlock(&o->mu);
}

bool sc_call_stream_ready(struct sc_call *c, size_t cap)
{
  struct sc_server *s = c->srv;
  struct sc_stream_out *o = c->out;
  size_t total = s->ctx.cfg->max_outbox_total;
  int64_t stall_us = s->ctx.cfg->stream_stall_s * 1000000;
  bool over_total = total && (size_t)atomic_load_explicit(&sc_metrics.stream_bytes, memory_order_relaxed) >= total;
  bool stalled = false;
  size_t held = 0;
  pthread_mutex_lock(&o->mu);
  bool full = o->bytes >= cap;
  /* Past --max-outbox-total only a stream with nothing waiting takes more: a worker that reads keeps getting work
   * while streams that stopped reading hold the total (until --stream-stall ends them), and each stream holds at
   * most one item past it. */
  bool ready = o->closed || (!full && (!over_total || o->bytes == 0));
  if (!ready) {
    if (full) {
      o->kick_below = cap;
    } else {
      o->kick_below = 1; /* it may take more once it has sent what it holds */
      atomic_store(&s->outbox_full, true);
    }
    /* Held back with work waiting (at its own limit, or all streams at the total), and nothing sent for
     * --stream-stall: the worker stopped reading. Ending the stream frees what it holds and sends its work items
     * to other workers; a working one reconnects. */
    if (stall_us > 0 && o->bytes > 0 && !o->stalled && !o->status_sent &&
        sc_mono_us() - o->progress_us >= stall_us) {
      o->stalled = stalled = true;
      o->end_code = GRPC_STATUS_RESOURCE_EXHAUSTED;
      held = o->bytes;
      if (full)
        snprintf(o->end_msg, sizeof o->end_msg, "the worker read nothing for %lld s while %zu bytes waited for it, "
                 "past the %zu-byte limit (--max-outbox, --stream-stall)", (long long)s->ctx.cfg->stream_stall_s,
                 held, cap);
      else
        snprintf(o->end_msg, sizeof o->end_msg, "the worker read nothing for %lld s while %zu bytes waited for it "
                 "and all streams held %zu bytes (--max-outbox-total, --stream-stall)",
                 (long long)s->ctx.cfg->stream_stall_s, held, total);
    }
  }
  pthread_mutex_unlock(&o->mu);
  if (stalled) {
    SC_WARN("event=stream_stalled bytes=%zu seconds=%lld", held, (long long)s->ctx.cfg->stream_stall_s);
    /* Completes the pending send (not ok) and the close watch on the completion queue thread, which unregisters
     * the stream (stream_closed). */
    grpc_call_cancel_with_status(c->call, GRPC_STATUS_RESOURCE_EXHAUSTED, o->end_msg, NULL);
  }
  /* Over the total, the kick comes when any stream's send completes below it (total_drained); also check now, in
   * case every send completed between the load above and the flag being set. */
  if (!ready && !full && total_drained(s))
    sc_engine_kick(s->ctx.engine);
  return ready;
}

void sc_call_stream_end(struct sc_call *c, int code, const char *msg)
{
  struct sc_stream_out *o = c->out;
  bool release = false;
  pthread_mutex_lock(&o->mu);
  if (!o->ending && !o->status_sent) {
    o->ending = true;
    o->end_code = code;
    snprintf(o->end_msg, sizeof o->end_msg, "%s", msg ? msg : "");
    if (!o->sending) {
      send_status_locked(c);
      release = true;
    }
  }
  pthread_mutex_unlock(&o->mu);
  if (release)
    call_unref(c);
}

static void stream_close_done(struct sc_cmd *cmd)
{
  call_unref(cmd->user);
}

/* The client went away or the status went out: finish the call, and unregister a work stream. */
static void stream_closed(struct sc_call *c)
{
  struct sc_stream_out *o = c->out;
  bool release = false;
  pthread_mutex_lock(&o->mu);
  o->closed = true;
  drop_outbox_locked(o);
  if (!o->status_sent) {
    /* The client is gone and never sees this status; it is what the metrics count. A worker closing its
     * GetWorkItems stream is how workers leave (stop, scale-in, redeploy), not a failed call. */
    if (!o->stalled) {
      o->end_code = o->work_stream ? GRPC_STATUS_OK : GRPC_STATUS_CANCELLED;
      snprintf(o->end_msg, sizeof o->end_msg, "the client closed the stream");
    }
    send_status_locked(c);
    release = true;
  }
  pthread_mutex_unlock(&o->mu);
  if (release)
    call_unref(c);
  if (total_drained(c->srv))
    sc_engine_kick(c->srv->ctx.engine);
  if (!o->work_stream)
    return;
  struct sc_server *s = c->srv;
  pthread_mutex_lock(&s->streams_mu);
  if (o->prev)
    o->prev->out->next = o->next;
  else if (s->streams == c)
    s->streams = o->next;
  if (o->next)
    o->next->out->prev = o->prev;
  o->prev = o->next = NULL;
  pthread_mutex_unlock(&s->streams_mu);
  /* The engine reference taken at open is dropped when the engine has let go of the stream. */
  memset(&c->cancel_cmd, 0, sizeof c->cancel_cmd);
  c->cancel_cmd.kind = SC_CMD_STREAM_CLOSE;
  c->cancel_cmd.u.stream_close.ctx = c;
  c->cancel_cmd.done = stream_close_done;
  c->cancel_cmd.user = c;
  sc_engine_post(s->ctx.engine, &c->cancel_cmd);
}

/* ------------------------------------------------------------------ arrivals */

static void on_new(struct sc_call *c, bool ok);

static struct sc_call *call_new(struct sc_server *s, const struct sc_method *m)
{
  struct sc_call *c = calloc(1, sizeof *c);
  if (!c)
    sc_panic("out of memory accepting a call");
  c->srv = s;
  c->m = m;
  atomic_init(&c->refs, 1);
  atomic_init(&c->waiting, false);
  c->t_new = (struct sc_tag){on_new, c};
  c->t_close = (struct sc_tag){on_close, c};
  c->t_done = (struct sc_tag){on_done, c};
  grpc_metadata_array_init(&c->md);
  sc_arena_init(&c->arena);
  atomic_fetch_add(&s->live_calls, 1);
  return c;
}

static void request(struct sc_server *s, const struct sc_method *m)
{
  struct sc_call *c = call_new(s, m);
  grpc_call_error e;
  SC_TSAN_RELEASE(&c->t_new);
  if (m) {
    e = grpc_server_request_registered_call(s->server, m->registered, &c->call, &c->deadline, &c->md,
                                            &c->req_bb, s->cq, s->cq, &c->t_new);
  } else {
    grpc_call_details_init(&c->details);
    e = grpc_server_request_call(s->server, &c->call, &c->details, &c->md, s->cq, s->cq, &c->t_new);
  }
  if (e != GRPC_CALL_OK)
    sc_panic("requesting a call failed: %s", grpc_call_error_to_string(e));
}

static bool decode(struct sc_call *c)
{
  char why[300];
  if (!c->req_bb) {
    /* A registered unary method always carries a message; none means the client sent nothing. */
    sc_call_reply(c, GRPC_STATUS_INVALID_ARGUMENT, "request message missing", NULL);
    return false;
  }
  grpc_byte_buffer_reader r;
  if (!grpc_byte_buffer_reader_init(&r, c->req_bb)) {
    sc_call_reply(c, GRPC_STATUS_INVALID_ARGUMENT, "request message unreadable", NULL);
    return false;
  }
  grpc_slice sl = grpc_byte_buffer_reader_readall(&r);
  grpc_byte_buffer_reader_destroy(&r);
  const uint8_t *p = GRPC_SLICE_START_PTR(sl);
  size_t len = GRPC_SLICE_LENGTH(sl);
  bool ok = false;
  /* Before unpacking: protobuf-c would recurse without bound into nested messages and accept any bytes in
   * strings and timestamps. */
  if (sc_wire_check(c->m->req_desc, p, len, why, sizeof why) != 0) {
    char msg[400];
    snprintf(msg, sizeof msg, "malformed %s: %s", c->m->req_desc->name, why);
    sc_call_reply(c, GRPC_STATUS_INVALID_ARGUMENT, msg, NULL);
  } else {
    c->req = protobuf_c_message_unpack(c->m->req_desc, sc_arena_allocator(&c->arena), len, p);
    if (!c->req) {
      char msg[200];
      snprintf(msg, sizeof msg, "malformed %s: the request is not a valid protobuf encoding",
               c->m->req_desc->name);
      sc_call_reply(c, GRPC_STATUS_INVALID_ARGUMENT, msg, NULL);
    } else {
      ok = true;
    }
  }
  grpc_slice_unref(sl);
  return ok;
}

/* With --auth-token-file, every call but the health check carries "authorization: Bearer <token>" with one of
 * the tokens. Health stays open: it says only SERVING or NOT_SERVING, and Kubernetes' gRPC probes and the
 * image's startup probe send no credentials. */
static bool authorized(const struct sc_call *c)
{
  if (!sc_tokens_enabled() || (c->m && strcmp(c->m->path, "/grpc.health.v1.Health/Check") == 0))
    return true;
  for (size_t i = 0; i < c->md.count; i++) {
    const grpc_metadata *m = &c->md.metadata[i];
    if (!grpc_slice_str_cmp(m->key, "authorization")) {
      size_t n = GRPC_SLICE_LENGTH(m->value);
      char v[4200];
      if (n >= sizeof v)
        return false;
      memcpy(v, GRPC_SLICE_START_PTR(m->value), n);
      v[n] = 0;
      return sc_tokens_check_bearer(v);
    }
  }
  return false;
}

static void on_new(struct sc_call *c, bool ok)
{
  struct sc_server *s = c->srv;
  if (!ok) {
    /* The server is shutting down and the posted request was never matched. */
    call_unref(c);
    return;
  }
  c->start_us = sc_mono_us();
  if (!atomic_load(&s->shutting_down))
    request(s, c->m);
  if (!authorized(c)) {
    /* One answer for a missing and a wrong token: which it was would help whoever is guessing. */
    sc_call_reply(c, GRPC_STATUS_UNAUTHENTICATED, "missing or invalid bearer token (authorization: Bearer <token>)",
                  NULL);
    return;
  }
  if (!c->m) {
    char msg[300];
    char *method = grpc_slice_to_c_string(c->details.method);
    snprintf(msg, sizeof msg, "method %s is not implemented by taskhubd", method);
    SC_DEBUG("event=rpc_unimplemented rpc=%s", SC_Q(method));
    gpr_free(method);
    sc_call_reply(c, GRPC_STATUS_UNIMPLEMENTED, msg, NULL);
    return;
  }
  if (!decode(c))
    return;
  c->m->handle(c);
}

static void *cq_main(void *arg)
{
  struct sc_server *s = arg;
  for (;;) {
    grpc_event ev = grpc_completion_queue_next(s->cq, gpr_inf_future(GPR_CLOCK_REALTIME), NULL);
    if (ev.type == GRPC_QUEUE_SHUTDOWN)
      break;
    if (ev.type != GRPC_OP_COMPLETE)
      continue;
    struct sc_tag *t = ev.tag;
    SC_TSAN_ACQUIRE(t);
    if (t == &s->shutdown_tag) {
      pthread_mutex_lock(&s->mu);
      s->shutdown_done = true;
      pthread_cond_broadcast(&s->cv);
      pthread_mutex_unlock(&s->mu);
      continue;
    }
    t->fn(t->call, ev.success != 0);
  }
  return NULL;
}

/* ------------------------------------------------------------------ lifecycle */

static void free_server(struct sc_server *s)
{
  pthread_mutex_destroy(&s->mu);
  pthread_cond_destroy(&s->cv);
  pthread_mutex_destroy(&s->streams_mu);
  free(s);
}

int sc_server_bind(const struct sc_config *cfg, struct sc_server **out, int *port, struct sc_err *err)
{
  if (sc_tls_init(cfg, err) != SC_OK ||
      sc_bind_check_exposure(cfg->listen, sc_tls_enabled() || sc_tokens_enabled(), cfg->allow_insecure, err) != SC_OK ||
      sc_bind_precheck(cfg->listen, err) != SC_OK)
    return err->code;
  struct sc_server *s = calloc(1, sizeof *s);
  if (!s)
    sc_panic("out of memory starting the server");
  s->ctx = (struct sc_server_ctx){cfg, NULL, NULL, sc_config_limits(cfg)};
  atomic_init(&s->shutting_down, false);
  atomic_init(&s->live_calls, 0);
  pthread_mutex_init(&s->mu, NULL);
  pthread_cond_init(&s->cv, NULL);
  pthread_mutex_init(&s->streams_mu, NULL);
  sc_grpc_log_route(true);
  grpc_init();
  int max_msg = cfg->max_message > INT32_MAX ? INT32_MAX : (int)cfg->max_message;
  int max_send = cfg->max_send_message > INT32_MAX ? INT32_MAX : (int)cfg->max_send_message;
  int keepalive_ms = cfg->keepalive_s > INT32_MAX / 1000 ? INT32_MAX : (int)cfg->keepalive_s * 1000;
  grpc_arg args[] = {
      {GRPC_ARG_INTEGER, (char *)GRPC_ARG_MAX_RECEIVE_MESSAGE_LENGTH, {.integer = max_msg}},
      {GRPC_ARG_INTEGER, (char *)GRPC_ARG_MAX_SEND_MESSAGE_LENGTH, {.integer = max_send}},
      /* A second server on our port must fail to bind, not share it. */
      {GRPC_ARG_INTEGER, (char *)GRPC_ARG_ALLOW_REUSEPORT, {.integer = 0}},
      /* Ping idle connections: a worker that vanished without closing its connection (a powered-off node, a
       * dropped NAT entry) is then noticed, and its work items go to others. */
      {GRPC_ARG_INTEGER, (char *)GRPC_ARG_KEEPALIVE_TIME_MS, {.integer = keepalive_ms}},
      {GRPC_ARG_INTEGER, (char *)GRPC_ARG_KEEPALIVE_TIMEOUT_MS, {.integer = keepalive_ms < 20000 ? keepalive_ms : 20000}},
      {GRPC_ARG_INTEGER, (char *)GRPC_ARG_HTTP2_MAX_PINGS_WITHOUT_DATA, {.integer = 0}},
      /* Clients' own keepalive pings (the C SDK sends one every 30 s) are welcome down to every 10 s. */
      {GRPC_ARG_INTEGER, (char *)GRPC_ARG_HTTP2_MIN_RECV_PING_INTERVAL_WITHOUT_DATA_MS, {.integer = 10000}},
      {GRPC_ARG_INTEGER, (char *)GRPC_ARG_KEEPALIVE_PERMIT_WITHOUT_CALLS, {.integer = 1}},
  };
  grpc_channel_args ca = {sizeof args / sizeof args[0], args};
  s->server = grpc_server_create(&ca, NULL);
  s->cq = grpc_completion_queue_create_for_next(NULL);
  grpc_server_register_completion_queue(s->server, s->cq, NULL);
  for (size_t i = 0; i < sc_n_methods; i++) {
    sc_methods[i].registered = grpc_server_register_method(
        s->server, sc_methods[i].path, NULL, GRPC_SRM_PAYLOAD_READ_INITIAL_BYTE_BUFFER, 0);
    /* Metric label: "StartInstance", or "Health/Check" outside our service. */
    const char *p = sc_methods[i].path;
    const char *label = strncmp(p, "/TaskHubSidecarService/", 23) == 0 ? p + 23 : strrchr(p, '.') + 1;
    if (!sc_methods[i].metric)
      sc_methods[i].metric = sc_metrics_add_method(label);
  }
  grpc_server_credentials *creds = sc_tls_server_credentials();
  int p = sc_bind_add_port(s->server, cfg->listen, creds);
  grpc_server_credentials_release(creds);
  sc_grpc_log_route(false);
  if (p == 0) {
    sc_bind_explain(cfg->listen, err);
    grpc_server_destroy(s->server);
    grpc_completion_queue_shutdown(s->cq);
    grpc_completion_queue_destroy(s->cq);
    grpc_shutdown();
    free_server(s);
    return SC_EUNAVAIL;
  }
  *port = strncmp(cfg->listen, "unix:", 5) == 0 ? 0 : p;
  *out = s;
  return SC_OK;
}

void sc_server_start(struct sc_server *s, struct sc_store *store, struct sc_engine *engine)
{
  s->ctx.store = store;
  s->ctx.engine = engine;
  grpc_server_start(s->server);
  for (size_t i = 0; i < sc_n_methods; i++)
    for (int j = 0; j < sc_methods[i].preposted; j++)
      request(s, &sc_methods[i]);
  for (int j = 0; j < 4; j++)
    request(s, NULL);
  s->readers = sc_readers_start(READER_THREADS);
  if (pthread_create(&s->th, NULL, cq_main, s) != 0)
    sc_panic("cannot start the completion-queue thread");
  s->started = true;
}

void sc_server_stop_accepting(struct sc_server *s)
{
  atomic_store(&s->shutting_down, true);
  /* Workers reconnect elsewhere (or later); what they hold stays leased for its grace period. */
  pthread_mutex_lock(&s->streams_mu);
  for (struct sc_call *c = s->streams; c; c = c->out->next)
    sc_call_stream_end(c, GRPC_STATUS_UNAVAILABLE, "taskhubd is shutting down");
  pthread_mutex_unlock(&s->streams_mu);
  s->shutdown_tag = (struct sc_tag){NULL, NULL};
  grpc_server_shutdown_and_notify(s->server, s->cq, &s->shutdown_tag);
}

/* Bound but never started (the store or the engine failed to come up): close the port. */
static void destroy_unstarted(struct sc_server *s)
{
  grpc_server_shutdown_and_notify(s->server, s->cq, &s->shutdown_tag);
  for (;;) {
    grpc_event ev = grpc_completion_queue_next(s->cq, gpr_inf_future(GPR_CLOCK_REALTIME), NULL);
    if (ev.type == GRPC_OP_COMPLETE && ev.tag == &s->shutdown_tag)
      break;
  }
  grpc_server_destroy(s->server);
  grpc_completion_queue_shutdown(s->cq);
  while (grpc_completion_queue_next(s->cq, gpr_inf_future(GPR_CLOCK_REALTIME), NULL).type != GRPC_QUEUE_SHUTDOWN)
    ;
  grpc_completion_queue_destroy(s->cq);
  grpc_shutdown();
  free_server(s);
}

void sc_server_destroy(struct sc_server *s, int grace_ms)
{
  if (!s)
    return;
  if (!s->started) {
    destroy_unstarted(s);
    return;
  }
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  ts.tv_sec += grace_ms / 1000;
  ts.tv_nsec += (long)(grace_ms % 1000) * 1000000;
  if (ts.tv_nsec >= 1000000000) {
    ts.tv_sec++;
    ts.tv_nsec -= 1000000000;
  }
  pthread_mutex_lock(&s->mu);
  while (!s->shutdown_done) {
    if (pthread_cond_timedwait(&s->cv, &s->mu, &ts) != 0)
      break;
  }
  bool clean = s->shutdown_done;
  pthread_mutex_unlock(&s->mu);
  if (!clean) {
    SC_WARN("event=shutdown_cancel_calls grace_ms=%d", grace_ms);
    grpc_server_cancel_all_calls(s->server);
    pthread_mutex_lock(&s->mu);
    while (!s->shutdown_done)
      pthread_cond_wait(&s->cv, &s->mu);
    pthread_mutex_unlock(&s->mu);
  }
  /* Reads still queued run now, while the completion queue can take their replies; a read posted after this
   * (a stream's next chunk) runs on the posting thread. */
  sc_readers_stop(s->readers);
  grpc_server_destroy(s->server);
  grpc_completion_queue_shutdown(s->cq);
  pthread_join(s->th, NULL);
  sc_readers_free(s->readers);
  grpc_completion_queue_destroy(s->cq);
  if (atomic_load(&s->live_calls) != 0)
    SC_WARN("event=shutdown_leak calls=%d", atomic_load(&s->live_calls));
  grpc_shutdown();
  free_server(s);
}
