/*
 * GET /api/v1/events: server-sent events of what the engine changed. The engine calls dash_events_observe after
 * each batch's commit; the changes go into a ring, and every stream parked (a suspended connection) is resumed
 * to send what it has not seen. Nothing polls: a stream with nothing to send is suspended until the engine or
 * the heartbeat (a comment line every 15 s, which also finds clients that went away) resumes it.
 *
 *   event: hello    data: {"seq": N}                      first, on connecting
 *   event: changes  data: [{"id", "status", "exists"}]    instances a batch changed, in order
 *   event: reset    data: {}                              the stream fell behind the ring: reload everything
 */
#include "internal.h"

#include "common/log.h"
#include "common/util.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define RING 4096
#define MAX_STREAMS 32
#define STREAM_BUF (32u << 10)
#define HEARTBEAT_S 15

struct change {
  char *iid;
  int status;
  bool exists;
};

struct stream {
  struct dash_events *ev;
  struct MHD_Connection *conn;
  uint64_t seq; /* next change to send */
  bool hello, ping, suspended;
  struct stream *prev, *next;
};

struct dash_events {
  pthread_mutex_t mu;
  pthread_cond_t cv;
  struct change ring[RING];
  uint64_t next_seq;
  struct stream *streams;
  atomic_size_t nstreams;
  bool closing;
  bool hb_started;
  pthread_t hb;
};

static void resume_all(struct dash_events *ev)
{
  for (struct stream *s = ev->streams; s; s = s->next)
    if (s->suspended) {
      s->suspended = false;
      MHD_resume_connection(s->conn);
    }
}

static void *heartbeat(void *arg)
{
  struct dash_events *ev = arg;
  pthread_mutex_lock(&ev->mu);
  while (!ev->closing) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    ts.tv_sec += HEARTBEAT_S;
    int rc = 0;
    while (!ev->closing && rc != ETIMEDOUT)
      rc = pthread_cond_timedwait(&ev->cv, &ev->mu, &ts);
    if (ev->closing)
      break;
    for (struct stream *s = ev->streams; s; s = s->next)
      s->ping = true;
    resume_all(ev);
  }
  pthread_mutex_unlock(&ev->mu);
  return NULL;
}

struct dash_events *dash_events_new(void)
{
  struct dash_events *ev = calloc(1, sizeof *ev);
  if (!ev)
    sc_panic("out of memory starting the dashboard's event stream");
  pthread_mutex_init(&ev->mu, NULL);
  pthread_cond_init(&ev->cv, NULL);
  return ev;
}

void dash_events_observe(void *ctx, const struct sc_engine_change *v, size_t n)
{
  struct dash_events *ev = ctx;
  if (!atomic_load(&ev->nstreams))
    return; /* nobody watches: the engine pays nothing */
  pthread_mutex_lock(&ev->mu);
  for (size_t i = 0; i < n; i++) {
    struct change *c = &ev->ring[ev->next_seq % RING];
    free(c->iid);
    c->iid = strdup(v[i].iid);
    if (!c->iid)
      sc_panic("out of memory recording a change");
    c->status = v[i].status;
    c->exists = v[i].exists;
    ev->next_seq++;
  }
  resume_all(ev);
  pthread_mutex_unlock(&ev->mu);
}

static size_t put_event(char *buf, size_t max, const char *event, const char *data)
{
  int n = snprintf(buf, max, "event: %s\ndata: %s\n\n", event, data);
  return n > 0 && (size_t)n < max ? (size_t)n : 0;
}

/* Called by libmicrohttpd on the ops thread whenever the stream may send. */
static ssize_t reader(void *cls, uint64_t pos, char *buf, size_t max)
{
  struct stream *s = cls;
  struct dash_events *ev = s->ev;
  (void)pos;
  pthread_mutex_lock(&ev->mu);
  ssize_t out = 0;
  if (ev->closing) {
    out = MHD_CONTENT_READER_END_OF_STREAM;
  } else if (!s->hello) {
    char data[64];
    snprintf(data, sizeof data, "{\"seq\":%llu}", (unsigned long long)s->seq);
    out = (ssize_t)put_event(buf, max, "hello", data);
    s->hello = true;
  } else if (s->seq + RING < ev->next_seq) {
    out = (ssize_t)put_event(buf, max, "reset", "{}");
    s->seq = ev->next_seq;
  } else if (s->seq < ev->next_seq) {
    /* As many changes as fit, as one JSON array. */
    static const char head[] = "event: changes\ndata: [";
    size_t n = sizeof head - 1;
    memcpy(buf, head, n);
    bool first = true;
    while (s->seq < ev->next_seq) {
      const struct change *c = &ev->ring[s->seq % RING];
      struct json_object *o = json_object_new_object();
      json_object_object_add(o, "id", json_object_new_string(c->iid));
      json_object_object_add(o, "status", json_object_new_string(dash_status_name(c->status)));
      json_object_object_add(o, "exists", json_object_new_boolean(c->exists));
      size_t len;
      const char *js = json_object_to_json_string_length(o, JSON_C_TO_STRING_PLAIN, &len);
      bool fits = n + len + 1 + 3 < max;
      if (fits) {
        if (!first)
          buf[n++] = ',';
        memcpy(buf + n, js, len);
        n += len;
        first = false;
        s->seq++;
      }
      json_object_put(o);
      if (!fits)
        break;
    }
    if (first) {
      s->seq++; /* one change larger than the buffer (an id near the limit): skip it, the page reloads anyway */
      out = (ssize_t)put_event(buf, max, "reset", "{}");
    } else {
      memcpy(buf + n, "]\n\n", 3);
      out = (ssize_t)(n + 3);
    }
  } else if (s->ping) {
    s->ping = false;
    memcpy(buf, ":\n\n", 3);
    out = 3;
  } else {
    s->suspended = true;
    MHD_suspend_connection(s->conn);
  }
  pthread_mutex_unlock(&ev->mu);
  return out;
}

static void stream_free(void *cls)
{
  struct stream *s = cls;
  struct dash_events *ev = s->ev;
  pthread_mutex_lock(&ev->mu);
  if (s->prev)
    s->prev->next = s->next;
  else
    ev->streams = s->next;
  if (s->next)
    s->next->prev = s->prev;
  atomic_fetch_sub(&ev->nstreams, 1);
  pthread_mutex_unlock(&ev->mu);
  free(s);
}

enum MHD_Result dash_events_stream(struct dash_events *ev, struct MHD_Connection *conn)
{
  pthread_mutex_lock(&ev->mu);
  if (ev->closing || atomic_load(&ev->nstreams) >= MAX_STREAMS) {
    bool closing = ev->closing;
    pthread_mutex_unlock(&ev->mu);
    return dash_error(conn, 503, closing ? "taskhubd is shutting down"
                                         : "too many event streams open (at most 32): close other dashboard tabs");
  }
  if (!ev->hb_started) {
    if (pthread_create(&ev->hb, NULL, heartbeat, ev) != 0)
      sc_panic("cannot start the dashboard's heartbeat thread");
    ev->hb_started = true;
  }
  struct stream *s = calloc(1, sizeof *s);
  if (!s)
    sc_panic("out of memory opening an event stream");
  s->ev = ev;
  s->conn = conn;
  s->seq = ev->next_seq;
  s->next = ev->streams;
  if (ev->streams)
    ev->streams->prev = s;
  ev->streams = s;
  atomic_fetch_add(&ev->nstreams, 1);
  pthread_mutex_unlock(&ev->mu);
  struct MHD_Response *resp = MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, STREAM_BUF, reader, s,
                                                                stream_free);
  if (!resp) {
    stream_free(s);
    return MHD_NO;
  }
  MHD_add_response_header(resp, "Content-Type", "text/event-stream");
  MHD_add_response_header(resp, "Cache-Control", "no-store");
  MHD_add_response_header(resp, "X-Content-Type-Options", "nosniff");
  enum MHD_Result ret = MHD_queue_response(conn, 200, resp);
  MHD_destroy_response(resp);
  return ret;
}

void dash_events_shutdown(struct dash_events *ev)
{
  pthread_mutex_lock(&ev->mu);
  ev->closing = true;
  resume_all(ev);
  pthread_cond_broadcast(&ev->cv);
  bool join = ev->hb_started;
  ev->hb_started = false;
  pthread_mutex_unlock(&ev->mu);
  if (join)
    pthread_join(ev->hb, NULL);
}

void dash_events_free(struct dash_events *ev)
{
  if (!ev)
    return;
  for (size_t i = 0; i < RING; i++)
    free(ev->ring[i].iid);
  pthread_mutex_destroy(&ev->mu);
  pthread_cond_destroy(&ev->cv);
  free(ev);
}
