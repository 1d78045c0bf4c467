#ifndef DT_TSAN_H
#define DT_TSAN_H

/*
 * Happens-before edges ThreadSanitizer cannot see, for the TSan build (-DTASKHUBD_TSAN=ON); nothing otherwise.
 * gRPC core (from Debian, not built with TSan) passes a batch from the thread that starts it to the thread that
 * takes its tag from the completion queue through locks TSan does not observe. gRPC guarantees that order, so the
 * SDK states it: DT__TSAN_RELEASE(tag) before handing a tag to gRPC, DT__TSAN_ACQUIRE(tag) when it comes back.
 */

#if defined(__SANITIZE_THREAD__)
#define DT__TSAN 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define DT__TSAN 1
#endif
#endif

#ifdef DT__TSAN
#include <sanitizer/tsan_interface.h>
#define DT__TSAN_RELEASE(p) __tsan_release((void *)(p))
#define DT__TSAN_ACQUIRE(p) __tsan_acquire((void *)(p))
#else
#define DT__TSAN_RELEASE(p) ((void)(p))
#define DT__TSAN_ACQUIRE(p) ((void)(p))
#endif

#endif
