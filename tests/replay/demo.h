/*
 * The orchestrators and activities that tests/data/replay/rec_*.hist were recorded from (th_replay_record
 * --run ...). The replay tests register the very same functions, so a recorded history must replay to the
 * decisions the worker made when it was recorded.
 */
#ifndef TH_REPLAY_DEMO_H
#define TH_REPLAY_DEMO_H

#include "durabletask.h"

/* RecChain: hello(input), a 1 s timer, hello(first result). */
const char *demo_chain(dt_orch_ctx *ctx, const char *input, void *user_data);
/* RecFanOut: square(1..3) in parallel, custom status "waiting", then the "Approval" event; returns
 * {"sum":14,"approval":<event data>}. */
const char *demo_fanout(dt_orch_ctx *ctx, const char *input, void *user_data);

/* Activities: rec_hello("x") -> "Hello, x!"; rec_square(n) -> n*n. */
const char *demo_hello(dt_activity_ctx *ctx, const char *input, void *user_data);
const char *demo_square(dt_activity_ctx *ctx, const char *input, void *user_data);

#endif
