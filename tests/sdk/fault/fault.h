/*
 * Fault injection for the C SDK's fault tests (tests/sdk/fault). The test binary is linked with
 * -Wl,--wrap=<symbol> for the functions below, so every call the SDK (a static library linked into the binary)
 * makes to them goes through a wrapper here; libgrpc's own calls do not. Each wrapper passes the call through
 * unless the test armed a fault, and counts what it did, so that a test can wait for the fault to have happened.
 */
#ifndef TH_FAULT_H
#define TH_FAULT_H

#include <stdbool.h>

/* getrandom(): 0 passes through; otherwise every call fails with this errno (EINTR, ENOSYS, ...). */
void fault_getrandom_errno(int err);
int fault_getrandom_calls(void); /* calls that failed by injection */

/* open("/dev/urandom", ...) fails with EACCES while set. */
void fault_urandom_fails(bool on);

/* pthread_create(): the |nth| call from now (1: the next one) fails with EAGAIN; 0 disarms. */
void fault_pthread_create_fail_nth(int nth);
int fault_pthread_create_failed(void); /* calls that failed by injection */

/* grpc_call_start_batch(): the next |n| batches that send a message (a unary call or a completion: six ops)
 * started on a thread other than the calling one fail with GRPC_CALL_ERROR. */
void fault_start_batch_fail_next(int n);
int fault_start_batch_failed(void); /* batches that failed by injection */

/* protobuf_c_message_unpack() of a HistoryChunk returns NULL (an undecodable chunk) while set. */
void fault_history_chunk_fails(bool on);
int fault_history_chunk_failed(void); /* unpacks that failed by injection */

#endif
