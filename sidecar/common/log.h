#ifndef SC_LOG_H
#define SC_LOG_H

/*
 * One line per event on stderr: `ts=... level=... <fields>`. Callers write the fields in logfmt
 * (`event=started instance=abc`); payload contents never go into a log line, only their sizes.
 */
enum sc_log_level { SC_LOG_DEBUG = 0, SC_LOG_INFO, SC_LOG_WARN, SC_LOG_ERROR };

extern int sc_log_level;
/* Render lines as JSON objects instead of logfmt, with typed fields (see log_json.h). */
extern int sc_log_json;

/* The level is checked before the arguments are evaluated. */
#define SC_LOG(level, ...)                                                    \
  do {                                                                        \
    if ((level) >= sc_log_level)                                              \
      sc_log_write((level), __VA_ARGS__);                                     \
  } while (0)

#define SC_DEBUG(...) SC_LOG(SC_LOG_DEBUG, __VA_ARGS__)
#define SC_INFO(...) SC_LOG(SC_LOG_INFO, __VA_ARGS__)
#define SC_WARN(...) SC_LOG(SC_LOG_WARN, __VA_ARGS__)
#define SC_ERROR(...) SC_LOG(SC_LOG_ERROR, __VA_ARGS__)

/*
 * A logfmt value: |s| as is when it is a plain token, else in double quotes with quotes and backslashes escaped,
 * so that a client-chosen instance id cannot forge fields. Each thread has a small ring of buffers: the result
 * lives until eight more calls on the same thread. With JSON lines, |s| itself: json-c escapes it.
 */
const char *sc_log_quote(const char *s);
#define SC_Q(s) sc_log_quote(s)

void sc_log_write(int level, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* Parses "debug", "info", "warn" or "error"; returns -1 for anything else. */
int sc_log_parse_level(const char *s);

/* Aborts the process after logging: for states that must not happen. */
_Noreturn void sc_panic(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

#define SC_ASSERT(x)                                                          \
  do {                                                                        \
    if (!(x))                                                                 \
      sc_panic("assertion failed: %s (%s:%d)", #x, __FILE__, __LINE__);       \
  } while (0)

#endif
