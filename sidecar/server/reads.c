/*
 * The handlers that read committed state: GetInstance, the replies of WaitForInstanceStart/Completion,
 * QueryInstances, ListInstanceIds and StreamInstanceHistory. They run on the reader threads (readers.h), never
 * on the completion-queue thread, which serves every other RPC, nor on the engine thread, which applies every
 * write; and each does a bounded amount of work per reply or per message: query pages stop after a scan
 * budget, histories are read one chunk at a time as the client takes them.
 */
#include "call.h"
#include "common/log.h"
#include "common/pbutil.h"
#include "common/util.h"
#include "limits/limits.h"
#include "store/query_token.h"
#include "store/store.h"

#include <stdlib.h>
#include <stdio.h>
#include <string.h>

#define GRPC_INVALID_ARGUMENT 3
#define GRPC_NOT_FOUND 5
#define GRPC_RESOURCE_EXHAUSTED 8
#define GRPC_ABORTED 10
#define MAX_PAGE 1000
#define DEFAULT_PAGE 100

/* History chunks: at most this many events and, unless one event is larger, about this many bytes, so that a
 * client that stops reading holds up little memory (the message in flight), while a reader still gets
 * several hundred events per message. */
#define CHUNK_EVENTS 500
#define CHUNK_BYTES (64u << 10)
/* Framing of one element of a repeated message field (events in a chunk, states in a page): a tag and a
 * length of up to 5 bytes. */
#define FIELD_HEADER 6

/* ------------------------------------------------------------------ shared */



/* Whether the committed record still says |iid| has a payload of |kind| (it may have been purged or replaced
 * since the record this reply is built from was read). */
static bool still_has(struct sc_arena *a, struct sc_store *st, const char *iid, int kind)
{
  StoredInstance *r;
  if (sc_store_get_instance(st, iid, a, &r) != SC_OK)
    return false;
  return kind == SC_PAYLOAD_INPUT ? r->has_input : kind == SC_PAYLOAD_OUTPUT ? r->has_output : r->has_custom_status;
}

/* A payload the record says the instance has: unreadable, or missing while the record still names it, it is
 * damage to report (DATA_LOSS naming the instance), never an instance without input. */
static Google__Protobuf__StringValue *payload(struct sc_arena *a, struct sc_store *st,
                                              const char *iid, int kind, struct sc_err *err)
{
  char *data;
  size_t len;
  int rc = st->ops->get_payload(st, iid, kind, a, &data, &len);
  if (rc == SC_OK)
    return sc_pb_sv(a, data);
  if (rc == SC_ENOTFOUND && !still_has(a, st, iid, kind))
    return NULL; /* purged or replaced meanwhile: the reply describes the record as it was read */
  if (!err->code) {
    const char *what = kind == SC_PAYLOAD_INPUT ? "input" : kind == SC_PAYLOAD_OUTPUT ? "output" : "custom status";
    if (rc == SC_ENOTFOUND || rc == SC_ECORRUPT)
      sc_err_set(err, SC_ECORRUPT, "instance %s: its %s %s in the store (see the log)", iid, what,
                 rc == SC_ENOTFOUND ? "is missing" : "is damaged");
    else
      sc_err_set(err, rc, "instance %s: reading its %s failed (see the log)", iid, what);
  }
  return NULL;
}

static OrchestrationState *build_state(struct sc_arena *a, struct sc_store *st,
                                       const char *iid, const StoredInstance *r,
                                       bool payloads, struct sc_err *err)
{
  OrchestrationState *s = sc_arena_alloc(a, sizeof *s);
  orchestration_state__init(s);
  s->instanceid = (char *)iid;
  s->name = r->name;
  if (r->has_version)
    s->version = sc_pb_sv(a, r->version);
  s->orchestrationstatus = r->status;
  if (r->scheduled_start_us)
    s->scheduledstarttimestamp = sc_pb_ts(a, r->scheduled_start_us);
  s->createdtimestamp = sc_pb_ts(a, r->created_us);
  s->lastupdatedtimestamp = sc_pb_ts(a, r->last_updated_us);
  if (r->execution_id[0])
    s->executionid = sc_pb_sv(a, r->execution_id);
  if (r->completed_us)
    s->completedtimestamp = sc_pb_ts(a, r->completed_us);
  if (r->parent_instance_id[0])
    s->parentinstanceid = sc_pb_sv(a, r->parent_instance_id);
  s->n_tags = r->n_tags;
  s->tags = sc_pb_copy_tags(a, &orchestration_state__tags_entry__descriptor, r->n_tags, (void *const *)r->tags);
  if (r->status == ORCHESTRATION_STATUS__ORCHESTRATION_STATUS_FAILED)
    s->failuredetails = r->failure_details;
  if (payloads) {
    if (r->has_input)
      s->input = payload(a, st, iid, SC_PAYLOAD_INPUT, err);
    if (r->has_output)
      s->output = payload(a, st, iid, SC_PAYLOAD_OUTPUT, err);
    if (r->has_custom_status)
      s->customstatus = payload(a, st, iid, SC_PAYLOAD_CUSTOM_STATUS, err);
  }
  return s;
}

/* Replies with GetInstanceResponse for |iid| as committed now. */
static void reply_instance(struct sc_call *c, const char *iid, bool payloads)
{
  struct sc_store *st = sc_call_ctx(c)->store;
  GetInstanceResponse resp = GET_INSTANCE_RESPONSE__INIT;
  StoredInstance *rec;
  int rc = sc_store_get_instance(st, iid, &c->arena, &rec);
  struct sc_err err = {0};
  if (rc == SC_OK) {
    resp.exists = true;
    resp.orchestrationstate = build_state(&c->arena, st, iid, rec, payloads, &err);
  } else if (rc != SC_ENOTFOUND) {
    sc_err_set(&err, rc, rc == SC_ECORRUPT ? "instance %s: its record is damaged in the store (see the log)"
                                           : "reading instance %s failed", iid);
  }
  if (err.code) {
    sc_call_reply_err(c, &err);
    return;
  }
  sc_call_reply(c, 0, NULL, &resp.base);
}

/* ------------------------------------------------------------------ GetInstance and waits */

static void get_read(struct sc_call *c)
{
  const GetInstanceRequest *r = (void *)c->req;
  if (!sc_call_check_id(c, "instanceId", r->instanceid))
    return;
  reply_instance(c, r->instanceid, r->getinputsandoutputs);
}

void sc_h_get_instance(struct sc_call *c)
{
  sc_call_read_request(c, get_read);
}

static void wait_read(struct sc_call *c)
{
  const GetInstanceRequest *r = (void *)c->req;
  reply_instance(c, r->instanceid, r->getinputsandoutputs);
}

/* On the engine thread: the answer is known, the reply (a store read and the payloads) is made elsewhere. */
static void wait_done(struct sc_cmd *cmd)
{
  struct sc_call *c = cmd->user;
  atomic_store(&c->waiting, false);
  if (cmd->err.code != SC_OK) {
    sc_call_reply_err(c, &cmd->err);
    return;
  }
  if (!cmd->u.wait.exists) {
    GetInstanceResponse resp = GET_INSTANCE_RESPONSE__INIT;
    sc_call_reply(c, 0, NULL, &resp.base);
    return;
  }
  sc_call_read(c, wait_read);
}

static void wait_common(struct sc_call *c, bool completion)
{
  const GetInstanceRequest *r = (void *)c->req;
  if (!sc_call_check_id(c, "instanceId", r->instanceid))
    return;
  int64_t dl = sc_call_deadline_us(c);
  c->cmd.kind = SC_CMD_WAIT;
  c->cmd.u.wait.iid = r->instanceid;
  c->cmd.u.wait.completion = completion;
  c->cmd.u.wait.deadline_us = dl < 0 ? 0 : dl;
  atomic_store(&c->waiting, true);
  sc_call_watch_cancel(c);
  sc_call_post(c, wait_done);
}

void sc_h_wait_start(struct sc_call *c)
{
  wait_common(c, false);
}

void sc_h_wait_completion(struct sc_call *c)
{
  wait_common(c, true);
}

/* ------------------------------------------------------------------ queries */

static bool collect_statuses(struct sc_call *c, const char *field, size_t n,
                             const OrchestrationStatus *in, int *out,
                             size_t *nout)
{
  *nout = 0;
  for (size_t i = 0; i < n; i++) {
    int s = (int)in[i];
    if (!sc_call_valid_status(s))
      return sc_call_reject(c, GRPC_INVALID_ARGUMENT, "%s: unknown status %d", field, s);
    bool dup = false;
    for (size_t j = 0; j < *nout; j++)
      dup |= out[j] == s;
    if (!dup)
      out[(*nout)++] = s;
  }
  return true;
}

static size_t page_size(int32_t asked)
{
  if (asked <= 0)
    return DEFAULT_PAGE;
  return asked > MAX_PAGE ? MAX_PAGE : (size_t)asked;
}

/* A token the client sent back: a store cursor, or the call answered INVALID_ARGUMENT. */
static bool decode_cursor(struct sc_call *c, const char *field, const char *tok,
                          bool prefix_mode, unsigned char *out, size_t *n)
{
  const char *why;
  if (sc_query_token_decode(tok, prefix_mode, out, n, &why))
    return true;
  return sc_call_reject(c, GRPC_INVALID_ARGUMENT, "%s: %s", field, why);
}

static void query_page(struct sc_call *c, bool reversed)
{
  const QueryInstancesRequest *r = (void *)c->req;
  static const InstanceQuery empty = INSTANCE_QUERY__INIT;
  const InstanceQuery *q = r->query ? r->query : &empty;
  int statuses[16];
  struct sc_query sq = {.index = SC_Q_CREATED, .statuses = statuses, .descending = reversed};
  if (!collect_statuses(c, "query.runtimeStatus", q->n_runtimestatus, q->runtimestatus, statuses,
                        &sq.n_statuses))
    return;
  if (q->maxinstancecount < 0) {
    sc_call_reject(c, GRPC_INVALID_ARGUMENT, "query.maxInstanceCount: must not be negative");
    return;
  }
  sq.page_size = page_size(q->maxinstancecount);
  if (q->instanceidprefix && q->instanceidprefix->value[0]) {
    if (!sc_call_check_text(c, "query.instanceIdPrefix", q->instanceidprefix->value, sc_call_limits(c)->max_id))
      return;
    sq.prefix = q->instanceidprefix->value;
  }
  sq.has_from = q->createdtimefrom != NULL;
  sq.from_us = sq.has_from ? sc_pb_ts_us(q->createdtimefrom) : 0;
  sq.has_to = q->createdtimeto != NULL;
  sq.to_us = sq.has_to ? sc_pb_ts_us(q->createdtimeto) : 0;
  bool prefix_mode = sq.prefix != NULL;
  unsigned char cur[SC_CURSOR_MAX];
  if (q->continuationtoken && q->continuationtoken->value[0]) {
    if (!decode_cursor(c, "query.continuationToken", q->continuationtoken->value, prefix_mode, cur,
                       &sq.cursor_len))
      return;
    sq.cursor = cur;
  }
  struct sc_store *st = sc_call_ctx(c)->store;
  struct sc_query_page page;
  struct sc_err err;
  if (st->ops->query(st, &sq, &c->arena, &page, &err) != SC_OK) {
    sc_call_reply_err(c, &err);
    return;
  }
  QueryInstancesResponse resp = QUERY_INSTANCES_RESPONSE__INIT;
  resp.orchestrationstate = sc_arena_alloc(&c->arena, (page.n ? page.n : 1) * sizeof(OrchestrationState *));
  /* With payloads a page could outgrow what a client can receive: end it early, and the token resumes after
   * the last state sent. */
  size_t budget = sc_call_send_budget(c), used = 0;
  err.code = SC_OK;
  for (size_t i = 0; i < page.n; i++) {
    OrchestrationState *s = build_state(&c->arena, st, page.rows[i].iid, page.rows[i].rec,
                                        q->fetchinputsandoutputs, &err);
    if (err.code) {
      sc_call_reply_err(c, &err);
      return;
    }
    used += orchestration_state__get_packed_size(s) + FIELD_HEADER;
    if (i > 0 && used > budget) {
      const struct sc_query_row *last = &page.rows[i - 1];
      size_t il = strlen(last->iid);
      if (prefix_mode) {
        memcpy(cur, last->iid, il);
        page.next_cursor_len = il;
      } else {
        sc_cursor_put_time(cur, last->rec->created_us);
        memcpy(cur + 8, last->iid, il);
        page.next_cursor_len = 8 + il;
      }
      page.next_cursor = cur;
      break;
    }
    resp.orchestrationstate[resp.n_orchestrationstate++] = s;
  }
  if (page.next_cursor)
    resp.continuationtoken =
        sc_pb_sv(&c->arena, sc_query_token_encode(&c->arena, prefix_mode, page.next_cursor, page.next_cursor_len));
  sc_call_reply(c, 0, NULL, &resp.base);
}

static void query_read(struct sc_call *c)
{
  query_page(c, false);
}

static void query_reversed_read(struct sc_call *c)
{
  query_page(c, true);
}

void sc_h_query_instances(struct sc_call *c)
{
  sc_call_read_request(c, query_read);
}

void sc_h_query_instances_reversed(struct sc_call *c)
{
  sc_call_read_request(c, query_reversed_read);
}

static void list_ids_read(struct sc_call *c)
{
  const ListInstanceIdsRequest *r = (void *)c->req;
  int asked[16], statuses[16];
  size_t nasked;
  if (!collect_statuses(c, "runtimeStatus", r->n_runtimestatus, r->runtimestatus, asked, &nasked))
    return;
  if (r->pagesize < 0) {
    sc_call_reject(c, GRPC_INVALID_ARGUMENT, "pageSize: must not be negative");
    return;
  }
  struct sc_query sq = {.index = SC_Q_COMPLETED, .statuses = statuses, .page_size = page_size(r->pagesize)};
  /* Only finished instances have a completion time; asking for live statuses alone matches nothing. */
  for (size_t i = 0; i < nasked; i++)
    if (sc_status_is_terminal(asked[i]))
      statuses[sq.n_statuses++] = asked[i];
  ListInstanceIdsResponse resp = LIST_INSTANCE_IDS_RESPONSE__INIT;
  if (nasked > 0 && sq.n_statuses == 0) {
    sc_call_reply(c, 0, NULL, &resp.base);
    return;
  }
  sq.has_from = r->completedtimefrom != NULL;
  sq.from_us = sq.has_from ? sc_pb_ts_us(r->completedtimefrom) : 0;
  sq.has_to = r->completedtimeto != NULL;
  sq.to_us = sq.has_to ? sc_pb_ts_us(r->completedtimeto) : 0;
  unsigned char cur[SC_CURSOR_MAX];
  if (r->lastinstancekey && r->lastinstancekey->value[0]) {
    /* "<16 hex digits of the completion time>:<instance id>" */
    const char *k = r->lastinstancekey->value;
    size_t len = strlen(k), hn;
    if (len < 18 || k[16] != ':' || len - 17 > SC_MAX_ID || sc_hex_decode(k, 16, cur, &hn) != 0) {
      sc_call_reject(c, GRPC_INVALID_ARGUMENT, "lastInstanceKey: not a key this server issued");
      return;
    }
    memcpy(cur + 8, k + 17, len - 17);
    sq.cursor = cur;
    sq.cursor_len = 8 + len - 17;
  }
  struct sc_store *st = sc_call_ctx(c)->store;
  struct sc_query_page page;
  struct sc_err err;
  if (st->ops->query(st, &sq, &c->arena, &page, &err) != SC_OK) {
    sc_call_reply_err(c, &err);
    return;
  }
  resp.n_instanceids = page.n;
  resp.instanceids = sc_arena_alloc(&c->arena, (page.n ? page.n : 1) * sizeof(char *));
  for (size_t i = 0; i < page.n; i++)
    resp.instanceids[i] = page.rows[i].iid;
  if (page.next_cursor) {
    char hex[17];
    sc_hex_encode(page.next_cursor, 8, hex);
    resp.lastinstancekey = sc_pb_sv(&c->arena, sc_arena_printf(&c->arena, "%s:%.*s", hex,
                                                               (int)(page.next_cursor_len - 8),
                                                               (const char *)page.next_cursor + 8));
  }
  sc_call_reply(c, 0, NULL, &resp.base);
}

void sc_h_list_instance_ids(struct sc_call *c)
{
  sc_call_read_request(c, list_ids_read);
}

/* ------------------------------------------------------------------ StreamInstanceHistory */

/*
 * The stream reads one chunk from the store each time the previous one has been sent, so a client that does not
 * read holds one chunk, not the history. Every chunk is read in one consistent view with the instance record;
 * the history it belongs to is identified by the execution id, the created time and the store's history
 * generation, all taken from the first chunk. Within one execution a history only grows, so the stream ends
 * at the length it had when the stream opened; if any chunk shows another history (continue-as-new, rewind,
 * purge), the stream ends with ABORTED rather than splice two histories.
 */
struct hist_stream {
  const char *iid;
  char *exec;
  int64_t created_us;
  uint64_t generation;
  uint32_t next, end; /* events [next, end) are still to be sent */
  size_t chunk_bytes;
  size_t max_send;
};

static void hist_end_err(struct sc_call *c, int rc, const char *what)
{
  struct hist_stream *h = c->read_ctx;
  char msg[SC_MAX_ID + 96];
  snprintf(msg, sizeof msg, "%s the history of %s failed", what, h->iid);
  sc_call_stream_end(c, sc_status_to_grpc(rc), msg);
}

/* Reads events [h->next, ...) into one chunk and queues it; ends the stream after the last one or on a
 * change. On a reader thread; |first| carries the slice the open already read. */
static void hist_send_chunk(struct sc_call *c, struct sc_arena *a, const struct sc_history_slice *first)
{
  struct hist_stream *h = c->read_ctx;
  struct sc_store *st = sc_call_ctx(c)->store;
  struct sc_history_slice sl;
  if (first) {
    sl = *first;
  } else {
    uint32_t want = h->end - h->next < CHUNK_EVENTS ? h->end - h->next : CHUNK_EVENTS;
    int rc = st->ops->history_range(st, h->iid, h->next, want, h->chunk_bytes, a, &sl);
    if (rc == SC_ENOTFOUND) {
      sc_call_stream_end(c, GRPC_ABORTED, "the history changed while it was streamed (the instance was purged)");
      return;
    }
    if (rc != SC_OK) {
      hist_end_err(c, rc, "reading");
      return;
    }
    if (strcmp(sl.rec->execution_id, h->exec) != 0 || sl.rec->created_us != h->created_us ||
        sl.generation != h->generation || sl.rec->history_count < h->end || sl.n == 0) {
      SC_INFO("event=history_stream_aborted instance=%s sent=%u", SC_Q(h->iid), (unsigned)h->next);
      sc_call_stream_end(c, GRPC_ABORTED, "the history changed while it was streamed");
      return;
    }
  }
  if (sl.n > h->end - h->next)
    sl.n = h->end - h->next;
  HistoryChunk ch = HISTORY_CHUNK__INIT;
  ch.n_events = sl.n;
  ch.events = sl.events;
  size_t len = history_chunk__get_packed_size(&ch);
  if (len > h->max_send) {
    /* Only a single event can be this large: it cannot be sent at all. */
    char msg[SC_MAX_ID + 160];
    snprintf(msg, sizeof msg, "history event %u of %s is %zu bytes encoded, more than --max-send-message (%zu)",
             (unsigned)h->next, h->iid, len, h->max_send);
    sc_call_stream_end(c, GRPC_RESOURCE_EXHAUSTED, msg);
    return;
  }
  uint8_t *buf = malloc(len ? len : 1);
  if (!buf)
    sc_panic("out of memory packing a history chunk");
  history_chunk__pack(&ch, buf);
  /* Once pushed, the chunk may be sent and the next pull run on another thread before this one goes on: h is
   * done with first. */
  h->next += (uint32_t)sl.n;
  bool last = h->next == h->end;
  sc_call_stream_push(c, buf, len);
  if (last)
    sc_call_stream_end(c, 0, NULL);
}

static void hist_next(struct sc_call *c)
{
  struct hist_stream *h = c->read_ctx;
  /* After the last chunk the stream is ending, or about to be: nothing more to read. */
  if (h->next < h->end && sc_call_stream_live(c)) {
    struct sc_arena a;
    sc_arena_init(&a);
    hist_send_chunk(c, &a, NULL);
    sc_arena_free(&a);
  }
  sc_call_unref(c);
}

/* On the completion-queue thread: the previous chunk is sent, read the next one on a reader thread. */
static void hist_pull(struct sc_call *c)
{
  sc_call_ref(c);
  sc_call_read(c, hist_next);
}

static void renew_done(struct sc_cmd *cmd)
{
  sc_call_unref(cmd->user);
}

/* A worker fetching the history for the work item it holds is at work on it: its lease starts again. */
static void renew_lease(struct sc_call *c)
{
  c->cmd.kind = SC_CMD_RENEW;
  c->cmd.u.renew.iid = ((const StreamInstanceHistoryRequest *)(void *)c->req)->instanceid;
  sc_call_ref(c);
  sc_call_post(c, renew_done);
}

static void hist_open(struct sc_call *c)
{
  const StreamInstanceHistoryRequest *r = (void *)c->req;
  if (!sc_call_check_id(c, "instanceId", r->instanceid))
    return;
  struct sc_store *st = sc_call_ctx(c)->store;
  struct hist_stream *h = sc_arena_calloc(&c->arena, sizeof *h);
  h->iid = r->instanceid;
  h->max_send = sc_call_ctx(c)->cfg->max_send_message;
  /* Room for the framing of every event of a full chunk. */
  size_t room = sc_call_send_budget(c);
  room = room > CHUNK_EVENTS * FIELD_HEADER * 2 ? room - CHUNK_EVENTS * FIELD_HEADER : room / 2;
  h->chunk_bytes = room < CHUNK_BYTES ? room : CHUNK_BYTES;
  c->read_ctx = h;
  struct sc_arena a;
  sc_arena_init(&a);
  struct sc_history_slice sl;
  int rc = st->ops->history_range(st, r->instanceid, 0, CHUNK_EVENTS, h->chunk_bytes, &a, &sl);
  const char *want_exec = r->executionid && r->executionid->value[0] ? r->executionid->value : NULL;
  if (rc == SC_ENOTFOUND || (rc == SC_OK && want_exec && strcmp(want_exec, sl.rec->execution_id) != 0)) {
    sc_call_reject(c, GRPC_NOT_FOUND, "instance not found: %s%s%s", r->instanceid,
                   rc == SC_OK ? " with execution " : "", rc == SC_OK ? want_exec : "");
  } else if (rc != SC_OK) {
    struct sc_err err;
    sc_err_set(&err, rc, "reading the history of %s failed", r->instanceid);
    sc_call_reply_err(c, &err);
  } else {
    /* No length limit here: histories are read a chunk at a time, and one a turn took just past --max-history
     * (the events of its failing turn) must still be readable. */
    if (r->forworkitemprocessing)
      renew_lease(c);
    h->exec = sc_arena_strdup(&c->arena, sl.rec->execution_id);
    h->created_us = sl.rec->created_us;
    h->generation = sl.generation;
    h->end = sl.rec->history_count;
    sc_call_stream_begin_pull(c, hist_pull);
    if (h->end == 0)
      sc_call_stream_end(c, 0, NULL);
    else if (sl.n == 0)
      hist_end_err(c, SC_ECORRUPT, "reading"); /* the record counts events the store does not hold */
    else
      hist_send_chunk(c, &a, &sl);
  }
  sc_arena_free(&a);
}

void sc_h_stream_history(struct sc_call *c)
{
  sc_call_read_request(c, hist_open);
}
