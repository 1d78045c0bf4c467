#ifndef SC_STATUS_H
#define SC_STATUS_H

/*
 * The one table of sidecar status codes: name, value, and the gRPC status code each maps to (the numeric
 * values of grpc_status_code, fixed by the gRPC specification, so the engine needs no gRPC header).
 */
#define SC_STATUS_MAP(XX)                                                     \
  XX(OK, 0, 0)                                                                \
  XX(EINVAL, -1, 3)      /* INVALID_ARGUMENT */                               \
  XX(ENOTFOUND, -2, 5)   /* NOT_FOUND */                                      \
  XX(EEXIST, -3, 6)      /* ALREADY_EXISTS */                                 \
  XX(ESTATE, -4, 9)      /* FAILED_PRECONDITION */                            \
  XX(ETOOBIG, -5, 8)     /* RESOURCE_EXHAUSTED */                             \
  XX(ETIMEOUT, -6, 4)    /* DEADLINE_EXCEEDED */                              \
  XX(EUNAVAIL, -7, 14)   /* UNAVAILABLE */                                    \
  XX(ECANCELLED, -8, 1)  /* CANCELLED */                                      \
  XX(EUNIMPL, -9, 12)    /* UNIMPLEMENTED */                                  \
  XX(ELOCKLOST, -10, 10) /* ABORTED */                                        \
  XX(EIO, -11, 13)       /* INTERNAL */                                       \
  XX(ECORRUPT, -12, 15)  /* DATA_LOSS */                                      \
  XX(ENOMEM, -13, 8)     /* RESOURCE_EXHAUSTED */                           \
  XX(ENOSPACE, -14, 8)   /* RESOURCE_EXHAUSTED: the disk is full */

enum sc_status {
#define XX(name, value, grpc) SC_##name = value,
  SC_STATUS_MAP(XX)
#undef XX
};

static inline int sc_status_to_grpc(int st)
{
  switch (st) {
#define XX(name, value, grpc)                                                 \
  case value:                                                                 \
    return grpc;
    SC_STATUS_MAP(XX)
#undef XX
  }
  return 2; /* UNKNOWN */
}

static inline const char *sc_status_name(int st)
{
  switch (st) {
#define XX(name, value, grpc)                                                 \
  case value:                                                                 \
    return "SC_" #name;
    SC_STATUS_MAP(XX)
#undef XX
  }
  return "SC_UNKNOWN";
}

/* An error with its message; messages name the offending field or instance. */
struct sc_err {
  int code;
  char msg[256];
};

void sc_err_set(struct sc_err *e, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

#endif
