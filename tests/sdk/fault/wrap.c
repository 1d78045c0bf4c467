/* The wrappers of fault.h (see there). */
#define _GNU_SOURCE
#include "fault.h"

#include <errno.h>
#include <fcntl.h>
#include "orchestrator_service.pb-c.h"

#include <grpc/grpc.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <string.h>
#include <sys/random.h>
#include <sys/types.h>

ssize_t __real_getrandom(void *buf, size_t len, unsigned flags);
ssize_t __wrap_getrandom(void *buf, size_t len, unsigned flags);
int __real_open(const char *path, int flags, ...);
int __wrap_open(const char *path, int flags, ...);
int __real_pthread_create(pthread_t *t, const pthread_attr_t *a, void *(*fn)(void *), void *arg);
int __wrap_pthread_create(pthread_t *t, const pthread_attr_t *a, void *(*fn)(void *), void *arg);
grpc_call_error __real_grpc_call_start_batch(grpc_call *call, const grpc_op *ops, size_t nops, void *tag,
                                             void *reserved);
grpc_call_error __wrap_grpc_call_start_batch(grpc_call *call, const grpc_op *ops, size_t nops, void *tag,
                                             void *reserved);

ProtobufCMessage *__real_protobuf_c_message_unpack(const ProtobufCMessageDescriptor *d, ProtobufCAllocator *a,
                                                   size_t len, const uint8_t *data);
ProtobufCMessage *__wrap_protobuf_c_message_unpack(const ProtobufCMessageDescriptor *d, ProtobufCAllocator *a,
                                                   size_t len, const uint8_t *data);

static atomic_bool g_chunk_fails;
static atomic_int g_chunk_failed;
static atomic_int g_getrandom_errno, g_getrandom_calls;
static atomic_bool g_urandom_fails;
static atomic_int g_pthread_nth, g_pthread_failed;
static atomic_int g_batch_left, g_batch_failed;
static pthread_t g_batch_armer;

void fault_getrandom_errno(int err)
{
  atomic_store(&g_getrandom_errno, err);
}

int fault_getrandom_calls(void)
{
  return atomic_load(&g_getrandom_calls);
}

void fault_urandom_fails(bool on)
{
  atomic_store(&g_urandom_fails, on);
}

void fault_pthread_create_fail_nth(int nth)
{
  atomic_store(&g_pthread_nth, nth);
}

int fault_pthread_create_failed(void)
{
  return atomic_load(&g_pthread_failed);
}

void fault_start_batch_fail_next(int n)
{
  g_batch_armer = pthread_self();
  atomic_store(&g_batch_left, n);
}

int fault_start_batch_failed(void)
{
  return atomic_load(&g_batch_failed);
}

ssize_t __wrap_getrandom(void *buf, size_t len, unsigned flags)
{
  int err = atomic_load(&g_getrandom_errno);
  if (err) {
    atomic_fetch_add(&g_getrandom_calls, 1);
    errno = err;
    return -1;
  }
  return __real_getrandom(buf, len, flags);
}

int __wrap_open(const char *path, int flags, ...)
{
  mode_t mode = 0;
  if (flags & (O_CREAT | O_TMPFILE)) {
    va_list ap;
    va_start(ap, flags);
    mode = (mode_t)va_arg(ap, int);
    va_end(ap);
  }
  if (atomic_load(&g_urandom_fails) && strcmp(path, "/dev/urandom") == 0) {
    errno = EACCES;
    return -1;
  }
  return __real_open(path, flags, mode);
}

int __wrap_pthread_create(pthread_t *t, const pthread_attr_t *a, void *(*fn)(void *), void *arg)
{
  int nth = atomic_load(&g_pthread_nth);
  if (nth > 0) {
    atomic_store(&g_pthread_nth, nth - 1);
    if (nth == 1) {
      atomic_fetch_add(&g_pthread_failed, 1);
      return EAGAIN;
    }
  }
  return __real_pthread_create(t, a, fn, arg);
}

grpc_call_error __wrap_grpc_call_start_batch(grpc_call *call, const grpc_op *ops, size_t nops, void *tag,
                                             void *reserved)
{
  if (nops == 6 && atomic_load(&g_batch_left) > 0 && !pthread_equal(pthread_self(), g_batch_armer) &&
      atomic_fetch_sub(&g_batch_left, 1) > 0) {
    atomic_fetch_add(&g_batch_failed, 1);
    return GRPC_CALL_ERROR;
  }
  return __real_grpc_call_start_batch(call, ops, nops, tag, reserved);
}

void fault_history_chunk_fails(bool on)
{
  atomic_store(&g_chunk_fails, on);
}

int fault_history_chunk_failed(void)
{
  return atomic_load(&g_chunk_failed);
}

ProtobufCMessage *__wrap_protobuf_c_message_unpack(const ProtobufCMessageDescriptor *d, ProtobufCAllocator *a,
                                                   size_t len, const uint8_t *data)
{
  if (d == &history_chunk__descriptor && atomic_load(&g_chunk_fails)) {
    atomic_fetch_add(&g_chunk_failed, 1);
    return NULL;
  }
  return __real_protobuf_c_message_unpack(d, a, len, data);
}
