/*
 * Helpers for the hostile-input tests: a growable protobuf writer for requests no SDK would build (nesting
 * 10,000 deep, bytes that are not UTF-8, out-of-range timestamps), and a scripted worker on raw streams.
 */
#ifndef TH_HX_H
#define TH_HX_H

#include "it.h"
#include "support/th_stream.h"

typedef struct hx_buf {
  uint8_t *b;
  size_t n, cap;
} hx_buf;

void hx_varint(hx_buf *p, uint64_t v);
void hx_tag(hx_buf *p, unsigned field, unsigned wire_type);
/* field as a length-delimited record holding len bytes. */
void hx_bytes(hx_buf *p, unsigned field, const void *data, size_t len);
void hx_str(hx_buf *p, unsigned field, const char *s);
/* field as a varint. */
void hx_uint(hx_buf *p, unsigned field, uint64_t v);
/* field as a message holding inner's bytes. */
void hx_msg(hx_buf *p, unsigned field, const hx_buf *inner);
void hx_free(hx_buf *p);

/* Sends the bytes to method and returns the status (details malloc()ed, may be NULL). */
grpc_status_code hx_send(th_client *c, const char *method, const hx_buf *p, char **details);
/* Hello answers OK: the server is alive. */
void hx_assert_alive(th_client *c);

/* The server's current log (log-<starts-1>.txt), malloc()ed. */
char *hx_server_log(const th_server *s);

#endif
