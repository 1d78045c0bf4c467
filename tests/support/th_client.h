/*
 * A small synchronous gRPC client for tests, over the gRPC C core API.
 *
 * One channel per client, one completion queue per call. Every call waits for its completion with a safety
 * bound (the call's own deadline plus a margin, or TH_CALL_SAFETY_MS without one) and aborts the test when
 * the bound is hit, so a hung server fails a test instead of hanging it.
 *
 * Ownership: responses returned through resp_out are protobuf-c messages the caller frees with
 * protobuf_c_message_free_unpacked(msg, NULL); details/raw responses are malloc()ed and freed with free().
 */
#ifndef TH_CLIENT_H
#define TH_CLIENT_H

#include <grpc/grpc.h>
#include <protobuf-c/protobuf-c.h>
#include <stddef.h>

/* timeout_ms value meaning "send the call with no gRPC deadline". */
#define TH_NO_DEADLINE (-1)
/* How long a call without a deadline may take before the test gives up on it. */
#define TH_CALL_SAFETY_MS 60000

typedef struct th_client th_client;
typedef struct th_call th_call;

/* CONSTRUCTOR: opens an insecure channel to 127.0.0.1:port (calls grpc_init). Never NULL. */
th_client *th_client_open(int port);
/* th_client_open on a connection of its own, as another process would have: channels of one process to one target
 * otherwise share gRPC's global subchannel pool, and so one connection. */
th_client *th_client_open_own(int port);
/* th_client_open with channel arguments of the caller's (copied by gRPC; |args| may be NULL). */
th_client *th_client_open_args(int port, const grpc_channel_args *args);
/* Creates a call on the client's channel (for streaming helpers); never NULL. */
grpc_call *th_client_create_call(th_client *c, grpc_slice method, grpc_completion_queue *cq, gpr_timespec deadline);
/* DESTRUCTOR: destroys the channel (calls grpc_shutdown). Every th_call of the client must be freed first. */
void th_client_close(th_client *c);

/*
 * Sends req to method (full path, e.g. "/TaskHubSidecarService/StartInstance") and waits for the status.
 * When the status is OK and resp_out is not NULL, *resp_out receives the response unpacked with resp_desc
 * (aborting the test if it does not parse); otherwise *resp_out is set to NULL. When details_out is not NULL
 * it receives the status message (never NULL, possibly ""). timeout_ms: the gRPC deadline, or TH_NO_DEADLINE.
 */
grpc_status_code th_call_unary(th_client *c, const char *method, const ProtobufCMessage *req,
                               const ProtobufCMessageDescriptor *resp_desc, int timeout_ms,
                               ProtobufCMessage **resp_out, char **details_out);

/* Like th_call_unary, but sends len raw bytes and returns the raw response bytes (when the status is OK). */
grpc_status_code th_call_raw(th_client *c, const char *method, const void *data, size_t len, int timeout_ms,
                             void **resp_out, size_t *resp_len_out, char **details_out);

/*
 * Asynchronous variant: starts a unary call and returns at once. Poll with th_call_wait, cancel from the
 * client side with th_call_cancel, collect the result with th_call_finish (which also frees the call).
 */
th_call *th_call_start(th_client *c, const char *method, const ProtobufCMessage *req, int timeout_ms);
/* Waits up to wait_ms for the call to complete: returns 1 when it has completed, 0 when it is still running. */
int th_call_wait(th_call *call, int wait_ms);
/* Cancels the call from the client side (the server sees a cancellation). */
void th_call_cancel(th_call *call);
/* Waits for completion (with the safety bound), returns the status and the response like th_call_unary,
 * and frees the call. */
grpc_status_code th_call_finish(th_call *call, const ProtobufCMessageDescriptor *resp_desc,
                                ProtobufCMessage **resp_out, char **details_out);

/* Name of a status code, for messages. */
const char *th_status_name(grpc_status_code code);
/* Milliseconds on a monotonic clock. */
long long th_now_ms(void);

#endif
