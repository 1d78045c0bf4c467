#ifndef SC_LOG_JSON_H
#define SC_LOG_JSON_H

#include <stdarg.h>

/*
 * One log event as a JSON object, built with json-c from the call's own format and arguments rather than from
 * the rendered logfmt text: a field whose value is one conversion takes its type from it (%d, %lld, %zu: a
 * number; %.1f: a number; %s: a string, whole), a literal number is a number, anything mixed is a string. Text
 * that is not key=value (a panic's message) goes in "msg". Returns a malloc'd line ending in '\n'.
 */
char *sc_log_json_line(const char *ts, const char *level, const char *fmt, va_list ap)
    __attribute__((format(printf, 3, 0)));

#endif
