#ifndef SC_PBUTIL_H
#define SC_PBUTIL_H

/* Small constructors for protobuf-c values allocated from an arena. */

#include "arena.h"
#include "orchestrator_service.pb-c.h"

#include <stdbool.h>
#include <stdint.h>

Google__Protobuf__Timestamp *sc_pb_ts(struct sc_arena *a, int64_t us);
int64_t sc_pb_ts_us(const Google__Protobuf__Timestamp *t);
/* NULL in, NULL out: absent wrappers stay absent. */
Google__Protobuf__StringValue *sc_pb_sv(struct sc_arena *a, const char *s);
Google__Protobuf__StringValue *sc_pb_sv_copy(struct sc_arena *a,
                                             const Google__Protobuf__StringValue *v);
HistoryEvent *sc_pb_event(struct sc_arena *a, int32_t event_id, int64_t us);
const char *sc_pb_status_name(int status);
/* Copies map<string,string> entries into entries of descriptor |d| (every generated entry type has the same
 * layout); the strings are shared, not copied. */
void *sc_pb_copy_tags(struct sc_arena *a, const ProtobufCMessageDescriptor *d, size_t n, void *const *src);

#endif
