#ifndef SC_TSAN_H
#define SC_TSAN_H

/*
 * Happens-before edges that ThreadSanitizer cannot see by itself, for the TSan build (-DTASKHUBD_TSAN=ON).
 *
 * gRPC core from Debian is not built with TSan and hands a batch from the thread that starts it to the thread
 * that takes its completion from the completion queue through Abseil locks and atomics TSan does not observe.
 * gRPC guarantees that order (a tag comes out of grpc_completion_queue_next only after its batch was started),
 * so the caller states it: SC_TSAN_RELEASE(tag) just before the tag is handed to gRPC, SC_TSAN_ACQUIRE(tag) just
 * after it comes back. Without this every field written before a batch and read in its completion handler would
 * be reported. Elsewhere these compile to nothing.
 */

#if defined(__SANITIZE_THREAD__)
#define SC_TSAN 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define SC_TSAN 1
#endif
#endif

#ifdef SC_TSAN
#include <sanitizer/tsan_interface.h>
#define SC_TSAN_RELEASE(p) __tsan_release((void *)(p))
#define SC_TSAN_ACQUIRE(p) __tsan_acquire((void *)(p))
#else
#define SC_TSAN_RELEASE(p) ((void)(p))
#define SC_TSAN_ACQUIRE(p) ((void)(p))
#endif

#endif
