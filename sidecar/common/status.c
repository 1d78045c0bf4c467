#include "status.h"

#include <stdarg.h>
#include <stdio.h>

void sc_err_set(struct sc_err *e, int code, const char *fmt, ...)
{
  e->code = code;
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(e->msg, sizeof e->msg, fmt, ap);
  va_end(ap);
}
