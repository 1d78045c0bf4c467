#include "metrics.h"

struct sc_metrics sc_metrics = {.method_names = {"unknown"}, .n_methods = 1};

const double sc_latency_bounds[SC_LATENCY_BUCKETS] = {0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025,
                                                      0.05,   0.1,     0.25,   0.5,   1,      2.5,   5,    10};
const double sc_batch_bounds[SC_BATCH_BUCKETS] = {1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 4096};

size_t sc_metrics_add_method(const char *label)
{
  size_t n = atomic_load_explicit(&sc_metrics.n_methods, memory_order_relaxed); /* one writer: main() */
  if (n == SC_METRICS_MAX_METHODS)
    return 0;
  sc_metrics.method_names[n] = label;
  atomic_store_explicit(&sc_metrics.n_methods, n + 1, memory_order_release);
  return n;
}

void sc_hist_observe(struct sc_hist *h, const double *bounds, size_t nbounds, double v)
{
  size_t i = 0;
  while (i < nbounds && v > bounds[i])
    i++;
  atomic_fetch_add_explicit(&h->le[i], 1, memory_order_relaxed);
  atomic_fetch_add_explicit(&h->count, 1, memory_order_relaxed);
  atomic_fetch_add_explicit(&h->sum_micros, (uint_fast64_t)(v * 1e6), memory_order_relaxed);
}

void sc_metrics_rpc(size_t method, int grpc_code, double seconds)
{
  if (method >= SC_METRICS_MAX_METHODS)
    method = 0;
  if (grpc_code < 0 || grpc_code >= SC_GRPC_CODES)
    grpc_code = 2;
  atomic_fetch_add_explicit(&sc_metrics.rpc[method][grpc_code], 1, memory_order_relaxed);
  sc_hist_observe(&sc_metrics.rpc_latency[method], sc_latency_bounds, SC_LATENCY_BUCKETS, seconds);
}
