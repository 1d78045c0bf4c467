/*
 * How taskhubctl shows instances and histories in text (and the JSON history array): the fields of an
 * instance, its failure, and the timeline of its history, one line per event.
 */
#ifndef CTL_RENDER_H
#define CTL_RENDER_H

#include "ctl.h"

/* Payloads in text output are cut to this many bytes unless --payloads is given. */
#define CTL_EXCERPT_BYTES 60

/* "Type: message" of a failure on one line, the message cut to |max| bytes (0: whole). */
void ctl_print_failure_text(FILE *f, const dt_failure *fl, size_t max);
/*
 * A failure as lines, from where the cursor is: "Type: message", the rest of a message of several lines and
 * the stack trace one per line at column |indent| + 2, then each inner failure as "caused by: Type: message"
 * at column |indent|, with its own lines below it. Without |full|, messages are cut to 200 bytes and stack
 * traces to 10 lines, saying how many more there are.
 */
void ctl_print_failure_block(FILE *f, const dt_failure *fl, int indent, bool full);
/* One timeline line: offset from |t0| (marked with '*' when |earlier|), event id, type, then what the event
 * carries (payloads in full with |full|). */
void ctl_print_event(FILE *f, const dt_event *e, int64_t t0, bool full, bool earlier);
/* Whether |e| is notably (100 ms or more) earlier than an event before it in its history, *latest being the
 * latest time of those (updated here; start it at 0). */
bool ctl_event_earlier(const dt_event *e, int64_t *latest);
/* The note under a timeline with events marked earlier; |first| is the first of them. */
void ctl_print_earlier_note(FILE *f, const dt_history *h, size_t first);
/* The fields of an instance, one "Label:  value" line each (show). */
void ctl_print_instance_text(const dt_instance *in, bool full);
/* "ID STATUS" and the output and failure of a finished instance (start --wait). */
void ctl_print_final_text(const dt_instance *in);

/* The time a timeline counts from: the earliest event (ExecutionStarted may be older than the
 * OrchestratorStarted before it), else the creation time. */
int64_t ctl_timeline_t0(const dt_instance *in, const dt_history *h);
/* The JSON array of a history, offsets counted from |t0|. */
json_object *ctl_history_json(const dt_history *h, int64_t t0);

#endif
