/*
 * The ops port while the task hub is counted: /metrics renders the last count of instances and entities and asks
 * for a new one, counted on a thread of its own, so /healthz answers at once while a count of 200,000 instances
 * runs. When /metrics counted inline, every stale scrape held the ops thread for the whole scan (0.4-1.4 s at a
 * million instances), and a liveness probe that timed out meanwhile restarted a healthy pod.
 */
#define _GNU_SOURCE
#include "hx.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>

#define N_INSTANCES 200000
#define N_TERMINATED 1000
#define N_ENTITIES 100
/* Generous for ASan on two busy cores: an answer takes a millisecond or two; the count it must not wait for takes
 * about 100 ms here (the test prints it). On a host so loaded that counting takes longer, half the longest count is
 * the bound: an answer that waited for a count would take all of it. */
#define HEALTHZ_BOUND_MS 50
#define SCRAPE_FOR_MS 4000

static const ProtobufCMessage *make_start(int i, void *ctx)
{
  static char id[32];
  static CreateInstanceRequest req;
  (void)ctx;
  create_instance_request__init(&req);
  snprintf(id, sizeof id, "cnt-%06d", i);
  req.instanceid = id;
  req.name = (char *)"Counted";
  return &req.base;
}

static const ProtobufCMessage *make_terminate(int i, void *ctx)
{
  static char id[32];
  static TerminateRequest req;
  (void)ctx;
  terminate_request__init(&req);
  snprintf(id, sizeof id, "cnt-%06d", i);
  req.instanceid = id;
  return &req.base;
}

static const ProtobufCMessage *make_signal(int i, void *ctx)
{
  static char id[32], rid[32];
  static SignalEntityRequest req;
  (void)ctx;
  signal_entity_request__init(&req);
  snprintf(id, sizeof id, "@counter@k%d", i);
  snprintf(rid, sizeof rid, "req-%d", i);
  req.instanceid = id;
  req.name = (char *)"add";
  req.requestid = rid;
  return &req.base;
}

/* The value of one series (name with its labels, as the page spells it), or -1 when the page has none. */
static double sample(const char *page, const char *series)
{
  char key[160];
  snprintf(key, sizeof key, "\n%s ", series);
  const char *p = strstr(page, key);
  return p ? strtod(p + strlen(key), NULL) : -1;
}

struct healthz_loop {
  int port;
  atomic_bool stop;
  atomic_llong max_ms, calls; /* written by the probing thread, read by the test after it joined */
};

static void *healthz_main(void *arg)
{
  struct healthz_loop *h = arg;
  while (!atomic_load(&h->stop)) {
    long long t0 = th_now_ms();
    int code = 0;
    char *body = hx_http_get(h->port, "/healthz", &code);
    long long ms = th_now_ms() - t0;
    ASSERT_EQ(code, 200);
    ASSERT_STR_EQ(body, "ok\n");
    free(body);
    if (ms > atomic_load(&h->max_ms))
      atomic_store(&h->max_ms, ms);
    atomic_fetch_add(&h->calls, 1);
  }
  return NULL;
}

TEST_IMPL(hostile_ops_healthz_answers_while_metrics_count)
{
  int ops = hx_free_port();
  char listen[32];
  snprintf(listen, sizeof listen, "127.0.0.1:%d", ops);
  const char *const args[] = {"--ops-listen", listen, NULL};
  it_env e;
  int rc = it_setup(&e, args);
  if (rc)
    return rc;
  long long t0 = th_now_ms();
  hx_pipeline(e.cli, IT_SVC "StartInstance", N_INSTANCES, make_start, NULL);
  hx_pipeline(e.cli, IT_SVC "TerminateInstance", N_TERMINATED, make_terminate, NULL);
  hx_pipeline(e.cli, IT_SVC "SignalEntity", N_ENTITIES, make_signal, NULL);
  fprintf(stderr, "created %d instances (%d terminated) and signalled %d entities in %lld ms\n", N_INSTANCES,
          N_TERMINATED, N_ENTITIES, th_now_ms() - t0);

  /* Scrapes without pause while /healthz is probed without pause: every scrape that finds the last count older
   * than ten times its cost asks for another. */
  struct healthz_loop h = {.port = ops};
  atomic_init(&h.stop, false);
  pthread_t th;
  ASSERT_OK(pthread_create(&th, NULL, healthz_main, &h));
  long long scrape_max_ms = 0, end = th_now_ms() + SCRAPE_FOR_MS;
  int scrapes = 0, fresh = 0;
  double last_age = -1, count_ms = 0;
  char *page = NULL;
  while (th_now_ms() < end) {
    free(page);
    long long s0 = th_now_ms();
    int code = 0;
    page = hx_http_get(ops, "/metrics", &code);
    ASSERT_EQ(code, 200);
    scrapes++;
    if (th_now_ms() - s0 > scrape_max_ms)
      scrape_max_ms = th_now_ms() - s0;
    double age = sample(page, "taskhubd_instances_count_age_seconds");
    if (age >= 0 && last_age >= 0 && age < last_age) /* a count finished since the last scrape */
      fresh++;
    last_age = age;
    double took = sample(page, "taskhubd_instances_count_duration_seconds");
    if (took * 1000 > count_ms)
      count_ms = took * 1000;
  }
  atomic_store(&h.stop, true);
  ASSERT_OK(pthread_join(th, NULL));
  fprintf(stderr, "%d scrapes (slowest %lld ms), %d fresh counts (the longest took %.0f ms); /healthz meanwhile: "
          "%lld answers, slowest %lld ms\n", scrapes, scrape_max_ms, fresh, count_ms, (long long)atomic_load(&h.calls),
          (long long)atomic_load(&h.max_ms));
  ASSERT_GE(atomic_load(&h.calls), 10);
  long long bound = count_ms / 2 > HEALTHZ_BOUND_MS ? (long long)(count_ms / 2) : HEALTHZ_BOUND_MS;
  ASSERT_LT(atomic_load(&h.max_ms), bound);
  ASSERT_LT(scrape_max_ms, bound);
  /* Counted again and again while scraped (the first count after the load among them), each no sooner than ten
   * times the last one's cost. */
  ASSERT_GE(fresh, 2);

  /* Nothing changed during the scrapes: the last page's counts are exact. */
  ASSERT_EQ(sample(page, "taskhubd_instances{status=\"PENDING\"}"), N_INSTANCES - N_TERMINATED);
  ASSERT_EQ(sample(page, "taskhubd_instances{status=\"TERMINATED\"}"), N_TERMINATED);
  ASSERT_EQ(sample(page, "taskhubd_instances{status=\"RUNNING\"}"), 0);
  ASSERT_EQ(sample(page, "taskhubd_entities{kind=\"transient\"}"), N_ENTITIES);
  ASSERT_EQ(sample(page, "taskhubd_entities{kind=\"with_state\"}"), 0);
  ASSERT_EQ(sample(page, "taskhubd_entity_operations_queued"), N_ENTITIES);
  ASSERT(last_age >= 0 && last_age < SCRAPE_FOR_MS / 1000.0);
  free(page);
  it_teardown(&e);
  return 0;
}
