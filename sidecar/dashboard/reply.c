/*
 * The replies every dashboard endpoint sends: JSON documents, and errors as {"error", "code"} with the HTTP status a
 * store or engine status maps to. Apart from the router (dashboard.c) so that the endpoints, which it calls, do not
 * call back into it.
 */
#include "internal.h"

#include <stdarg.h>
#include <stdio.h>

void dash_common_headers(struct MHD_Response *resp)
{
  MHD_add_response_header(resp, "X-Content-Type-Options", "nosniff");
  MHD_add_response_header(resp, "X-Frame-Options", "DENY");
  MHD_add_response_header(resp, "Referrer-Policy", "no-referrer");
}

enum MHD_Result dash_json(struct MHD_Connection *conn, unsigned code, struct json_object *obj)
{
  size_t len;
  const char *s = json_object_to_json_string_length(obj, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE,
                                                    &len);
  struct MHD_Response *resp = MHD_create_response_from_buffer(len, (void *)s, MHD_RESPMEM_MUST_COPY);
  json_object_put(obj);
  if (!resp)
    return MHD_NO;
  MHD_add_response_header(resp, "Content-Type", "application/json");
  MHD_add_response_header(resp, "Cache-Control", "no-store");
  dash_common_headers(resp);
  if (code == 401)
    MHD_add_response_header(resp, "WWW-Authenticate", "Bearer realm=\"taskhubd\"");
  enum MHD_Result ret = MHD_queue_response(conn, code, resp);
  MHD_destroy_response(resp);
  return ret;
}

static const char *code_name(unsigned code)
{
  switch (code) {
  case 400: return "INVALID_ARGUMENT";
  case 401: return "UNAUTHENTICATED";
  case 403: return "PERMISSION_DENIED";
  case 404: return "NOT_FOUND";
  case 405: return "METHOD_NOT_ALLOWED";
  case 409: return "FAILED_PRECONDITION";
  case 413: return "TOO_LARGE";
  case 429: return "RESOURCE_EXHAUSTED";
  case 503: return "UNAVAILABLE";
  default: return "INTERNAL";
  }
}

enum MHD_Result dash_error(struct MHD_Connection *conn, unsigned code, const char *fmt, ...)
{
  char msg[1536];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  struct json_object *o = json_object_new_object();
  json_object_object_add(o, "error", json_object_new_string(msg));
  json_object_object_add(o, "code", json_object_new_string(code_name(code)));
  return dash_json(conn, code, o);
}

enum MHD_Result dash_sc_error(struct MHD_Connection *conn, const struct sc_err *err)
{
  unsigned code;
  switch (err->code) {
  case SC_EINVAL: code = 400; break;
  case SC_ENOTFOUND: code = 404; break;
  case SC_EEXIST:
  case SC_ESTATE: code = 409; break;
  case SC_ETOOBIG:
  case SC_ENOMEM: code = 429; break;
  case SC_EUNAVAIL: code = 503; break;
  default: code = 500; break;
  }
  return dash_error(conn, code, "%s", err->msg[0] ? err->msg : sc_status_name(err->code));
}

