/*
 * The one batch of a unary gRPC call, as the load generators make them many at a time on a completion queue
 * (th-start-load, th-limits-bench, th-bench's entity worker).
 */
#ifndef BENCH_UNARY_H
#define BENCH_UNARY_H

#include <grpc/byte_buffer.h>
#include <grpc/grpc.h>
#include <protobuf-c/protobuf-c.h>
#include <string.h>

/* |m| packed into a byte buffer for a call's SEND_MESSAGE (the caller destroys it). */
static inline grpc_byte_buffer *bench_pack(const ProtobufCMessage *m)
{
  size_t n = protobuf_c_message_get_packed_size(m);
  grpc_slice sl = grpc_slice_malloc(n);
  protobuf_c_message_pack(m, GRPC_SLICE_START_PTR(sl));
  grpc_byte_buffer *bb = grpc_raw_byte_buffer_create(&sl, 1);
  grpc_slice_unref(sl);
  return bb;
}

/* Fills |ops| (6): send |req| and close, then receive the initial metadata, the reply and the status into the places
 * given. Start it with grpc_call_start_batch(call, ops, 6, tag, NULL). */
static inline void bench_unary_ops(grpc_op ops[6], grpc_byte_buffer *req, grpc_metadata_array *imd,
                                   grpc_byte_buffer **resp, grpc_metadata_array *tmd, grpc_status_code *status,
                                   grpc_slice *details)
{
  memset(ops, 0, 6 * sizeof *ops);
  ops[0].op = GRPC_OP_SEND_INITIAL_METADATA;
  ops[1].op = GRPC_OP_SEND_MESSAGE;
  ops[1].data.send_message.send_message = req;
  ops[2].op = GRPC_OP_SEND_CLOSE_FROM_CLIENT;
  ops[3].op = GRPC_OP_RECV_INITIAL_METADATA;
  ops[3].data.recv_initial_metadata.recv_initial_metadata = imd;
  ops[4].op = GRPC_OP_RECV_MESSAGE;
  ops[4].data.recv_message.recv_message = resp;
  ops[5].op = GRPC_OP_RECV_STATUS_ON_CLIENT;
  ops[5].data.recv_status_on_client.trailing_metadata = tmd;
  ops[5].data.recv_status_on_client.status = status;
  ops[5].data.recv_status_on_client.status_details = details;
}

#endif
