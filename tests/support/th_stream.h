/*
 * Server-streaming calls for tests (GetWorkItems, StreamInstanceHistory) over the gRPC C core API, read one
 * message at a time, so a test can play a worker that reads slowly or never, cancels, or sends hand-made
 * completions.
 *
 * Ownership: messages returned by th_stream_read are malloc()ed (free()); work items from th_work_next are
 * protobuf-c messages (work_item__free_unpacked(wi, NULL)).
 */
#ifndef TH_STREAM_H
#define TH_STREAM_H

#include "orchestrator_service.pb-c.h"
#include "support/th_client.h"

#include <stdint.h>

typedef struct th_stream th_stream;

/* CONSTRUCTOR: starts method with req; timeout_ms is the call's deadline (TH_NO_DEADLINE: none). */
th_stream *th_stream_start(th_client *c, const char *method, const ProtobufCMessage *req, int timeout_ms);
/* Waits up to wait_ms for the next message: 1 with *buf (malloc()ed) and *len, 0 when none came in time (the
 * read stays posted for the next call), -1 when the stream has ended (see th_stream_status). */
int th_stream_read(th_stream *s, int wait_ms, uint8_t **buf, size_t *len);
/* Waits (with the safety bound) for the call's status; details as for th_call_unary. */
grpc_status_code th_stream_status(th_stream *s, char **details_out);
/* Cancels from the client side. */
void th_stream_cancel(th_stream *s);
/* DESTRUCTOR: cancels if still running and frees. */
void th_stream_free(th_stream *s);

/* GetWorkItems with req (NULL: an empty request, as the Go client sends). */
th_stream *th_work_open(th_client *c, const GetWorkItemsRequest *req);
/* The next work item other than a health ping within wait_ms, or NULL (timeout or end of stream). */
WorkItem *th_work_next(th_stream *s, int wait_ms);
/* Like th_work_next, but aborts the test when nothing arrives. */
WorkItem *th_work_expect(th_stream *s, int wait_ms, const char *what);

#endif
