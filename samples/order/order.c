/*
 * order — order processing: inventory, then payment, then shipping, with the failures a shop has to handle.
 *
 * The orchestration "process_order" for one order:
 *   1. reserve_inventory  — out of stock: the order is rejected, nothing to undo;
 *   2. charge_payment     — with a retry policy whose handler retries only what may pass next time (the payment
 *                           gateway timed out), never a declined card. Declined: release_inventory gives the
 *                           stock back, and the order is cancelled;
 *   3. ship_order         — a sub-orchestration (pack, then dispatch) that returns the tracking number.
 * Business outcomes (rejected, cancelled, shipped) are the orchestration's result, not failures: dt_await_result()
 * lets the orchestrator look at a failed task instead of failing with it.
 *
 * Three orders run at once: A-1001 ships, A-1002's card is declined, A-1003 wants more grinders than there are.
 * The gateway times out on the first attempt of every charge, so each charge is retried once. Instance ids are
 * the order ids, with a reuse policy that lets a finished order's id be used again (so the sample can be run
 * repeatedly against the same taskhubd).
 *
 * usage: sample_order [HOST:PORT]        (default $TASKHUBD_ADDRESS, else 127.0.0.1:4001; start taskhubd first)
 * Exits 0 when all three orders ended as they should and the stock adds up.
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <json-c/json.h>

#include "durabletask.h"

#define JSON_FLAGS (JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE)

/* ------------------------------------------------------------------------------------------------ the shop */

/* The shop's systems, simulated in memory. Every operation is idempotent per order: activities run at least
 * once, so a repeated reservation or release must not count twice. */
#define MAX_ORDERS 8
struct shop {
  pthread_mutex_t mu;
  struct {
    const char *sku;
    int stock;
  } items[2];
  struct {
    char order[16];
    int item, qty; /* a live reservation: qty > 0 */
    int charge_attempts;
  } orders[MAX_ORDERS];
  int n_orders;
};

/* The record of |order| (created on first use); call with the lock held. */
static int order_slot(struct shop *s, const char *order)
{
  for (int i = 0; i < s->n_orders; i++)
    if (strcmp(s->orders[i].order, order) == 0)
      return i;
  if (s->n_orders == MAX_ORDERS)
    return -1;
  snprintf(s->orders[s->n_orders].order, sizeof s->orders[0].order, "%s", order);
  return s->n_orders++;
}

/* What every activity gets: the order as the orchestration's input has it. */
struct order_in {
  const char *order, *sku, *card;
  int qty;
  long long amount_cents;
};

/* Parses the order JSON into activity memory. */
static bool read_order_in(dt_activity_ctx *actx, const char *input, struct order_in *o)
{
  json_object *in = json_tokener_parse(input ? input : ""), *v;
  memset(o, 0, sizeof *o);
  if (in && json_object_object_get_ex(in, "order", &v))
    o->order = dt_activity_printf(actx, "%s", json_object_get_string(v));
  if (in && json_object_object_get_ex(in, "sku", &v))
    o->sku = dt_activity_printf(actx, "%s", json_object_get_string(v));
  if (in && json_object_object_get_ex(in, "card", &v))
    o->card = dt_activity_printf(actx, "%s", json_object_get_string(v));
  if (in && json_object_object_get_ex(in, "qty", &v))
    o->qty = json_object_get_int(v);
  if (in && json_object_object_get_ex(in, "amount_cents", &v))
    o->amount_cents = json_object_get_int64(v);
  json_object_put(in);
  if (!o->order || !o->sku || !o->card || o->qty <= 0) {
    dt_activity_fail(actx, "InvalidInput", "an order needs order, sku, card and qty > 0");
    return false;
  }
  return true;
}

/* ------------------------------------------------------------------------------------------------ activities */

static const char *reserve_inventory(dt_activity_ctx *actx, const char *input, void *user_data)
{
  struct shop *s = user_data;
  struct order_in o;
  if (!read_order_in(actx, input, &o))
    return NULL;
  pthread_mutex_lock(&s->mu);
  int item = strcmp(o.sku, s->items[0].sku) == 0 ? 0 : strcmp(o.sku, s->items[1].sku) == 0 ? 1 : -1;
  int slot = order_slot(s, o.order);
  const char *error = NULL;
  if (item < 0 || slot < 0)
    error = dt_activity_printf(actx, "unknown item %s", o.sku);
  else if (s->orders[slot].qty == 0 && s->items[item].stock < o.qty)
    error = dt_activity_printf(actx, "out of stock: %d %s wanted, %d left", o.qty, o.sku, s->items[item].stock);
  else if (s->orders[slot].qty == 0) { /* not reserved yet (a repeated call must not reserve twice) */
    s->items[item].stock -= o.qty;
    s->orders[slot].item = item;
    s->orders[slot].qty = o.qty;
  }
  pthread_mutex_unlock(&s->mu);
  if (error) {
    printf("reserve_inventory %s: %s\n", o.order, error);
    dt_activity_fail(actx, "OutOfStock", error);
    return NULL;
  }
  printf("reserve_inventory %s: %d %s\n", o.order, o.qty, o.sku);
  return dt_activity_printf(actx, "\"R-%s\"", o.order);
}

static const char *release_inventory(dt_activity_ctx *actx, const char *input, void *user_data)
{
  struct shop *s = user_data;
  struct order_in o;
  if (!read_order_in(actx, input, &o))
    return NULL;
  pthread_mutex_lock(&s->mu);
  int slot = order_slot(s, o.order);
  if (slot >= 0 && s->orders[slot].qty > 0) {
    s->items[s->orders[slot].item].stock += s->orders[slot].qty;
    s->orders[slot].qty = 0;
  }
  pthread_mutex_unlock(&s->mu);
  printf("release_inventory %s\n", o.order);
  return NULL;
}

/* The payment gateway: every charge's first attempt times out; a card ending in 0002 is declined. */
static const char *charge_payment(dt_activity_ctx *actx, const char *input, void *user_data)
{
  struct shop *s = user_data;
  struct order_in o;
  if (!read_order_in(actx, input, &o))
    return NULL;
  pthread_mutex_lock(&s->mu);
  int slot = order_slot(s, o.order);
  int attempt = slot >= 0 ? ++s->orders[slot].charge_attempts : 1;
  pthread_mutex_unlock(&s->mu);
  size_t len = strlen(o.card);
  if (attempt == 1) {
    printf("charge_payment %s: gateway timeout\n", o.order);
    dt_activity_fail(actx, "GatewayTimeout", "the payment gateway did not answer in time");
  } else if (len >= 4 && strcmp(o.card + len - 4, "0002") == 0) {
    printf("charge_payment %s: declined\n", o.order);
    dt_activity_fail(actx, "CardDeclined", "insufficient funds");
  } else {
    printf("charge_payment %s: %lld.%02lld EUR\n", o.order, o.amount_cents / 100, o.amount_cents % 100);
    return dt_activity_printf(actx, "\"ch_%s\"", o.order);
  }
  return NULL;
}

static const char *pack(dt_activity_ctx *actx, const char *input, void *user_data)
{
  struct order_in o;
  if (!read_order_in(actx, input, &o))
    return NULL;
  printf("pack %s: %d %s\n", o.order, o.qty, o.sku);
  return dt_activity_printf(actx, "\"P-%s\"", o.order);
}

static const char *dispatch(dt_activity_ctx *actx, const char *input, void *user_data)
{
  struct order_in o;
  if (!read_order_in(actx, input, &o))
    return NULL;
  printf("dispatch %s\n", o.order);
  return dt_activity_printf(actx, "\"TRK-%s\"", o.order);
}

/* ------------------------------------------------------------------------------------------------ orchestrators */

/* The sub-orchestration: pack, then hand over to the carrier. Its result is the tracking number. */
static const char *ship_order(dt_orch_ctx *ctx, const char *input, void *user_data)
{
  dt_await(ctx, dt_call_activity(ctx, "pack", input));
  return dt_await(ctx, dt_call_activity(ctx, "dispatch", input));
}

/* The retry handler: called with each failed attempt; true tries again (after the policy's delay). It runs in
 * the orchestrator, on replays too, so it must decide from the failure alone — deterministically. */
static bool retry_transient(const dt_failure *failure, int attempt, void *user_data)
{
  return failure->error_type && strcmp(failure->error_type, "GatewayTimeout") == 0;
}

/* {"order":...,"status":...} plus up to two more string fields (key NULL: none), in context memory. */
static const char *outcome(dt_orch_ctx *ctx, const char *input, const char *status, const char *key1,
                           const char *val1, const char *key2, const char *val2)
{
  json_object *in = json_tokener_parse(input), *order = NULL;
  json_object *out = json_object_new_object();
  if (json_object_object_get_ex(in, "order", &order))
    json_object_object_add(out, "order", json_object_get(order));
  json_object_object_add(out, "status", json_object_new_string(status));
  if (key1)
    json_object_object_add(out, key1, json_object_new_string(val1 ? val1 : ""));
  if (key2)
    json_object_object_add(out, key2, json_object_new_string(val2 ? val2 : ""));
  const char *s = dt_ctx_strdup(ctx, json_object_to_json_string_ext(out, JSON_FLAGS));
  json_object_put(out);
  json_object_put(in);
  return s;
}

/* Parses a JSON string result ("ch_A-1001") into a C string in context memory. */
static const char *unquote(dt_orch_ctx *ctx, const char *json)
{
  json_object *v = json_tokener_parse(json ? json : "");
  const char *s = dt_ctx_strdup(ctx, json_object_is_type(v, json_type_string) ? json_object_get_string(v) : "");
  json_object_put(v);
  return s;
}

static const char *process_order(dt_orch_ctx *ctx, const char *input, void *user_data)
{
  if (!input)
    dt_orch_fail(ctx, "InvalidInput", "no order");

  /* 1. Inventory. A failure here is a business outcome, so await it with dt_await_result(). */
  dt_task *reserve = dt_call_activity(ctx, "reserve_inventory", input);
  if (dt_await_result(ctx, reserve, NULL) != DT_OK)
    return outcome(ctx, input, "rejected", "reason", dt_task_failure(reserve)->message, NULL, NULL);

  /* 2. Payment: up to 4 attempts, 100 ms then 200 ms ... apart, but only while the handler says the failure
   *    is worth retrying. */
  dt_retry_policy retry = {.max_attempts = 4, .first_delay_ms = 100, .backoff = 2.0, .handler = retry_transient};
  dt_task *charge = dt_call_activity_retry(ctx, "charge_payment", input, &retry);
  const char *charge_id;
  if (dt_await_result(ctx, charge, &charge_id) != DT_OK) {
    /* Compensate: the reservation must not outlive the order. */
    dt_await(ctx, dt_call_activity(ctx, "release_inventory", input));
    const char *why = dt_task_failure(charge)->message; /* "insufficient funds" */
    return outcome(ctx, input, "cancelled", "reason", dt_ctx_printf(ctx, "payment declined: %s", why ? why : "?"),
                   "inventory", "released");
  }

  /* 3. Shipping, as a sub-orchestration: an orchestration of its own (own history, own instance id — NULL
   *    here, so "<this id>:<action id>"), awaited like an activity. */
  const char *tracking = dt_await(ctx, dt_call_sub_orchestrator(ctx, "ship_order", NULL, input));
  return outcome(ctx, input, "shipped", "charge", unquote(ctx, charge_id), "tracking", unquote(ctx, tracking));
}

/* ------------------------------------------------------------------------------------------------ main */

static void log_line(int level, const char *message, void *user_data)
{
  if (level >= 2)
    fprintf(stderr, "durabletask: %s\n", message);
}

static void check(int rc, const char *what)
{
  if (rc != DT_OK) {
    fprintf(stderr, "%s: %s\n", what, dt_strerror(rc));
    exit(1);
  }
}

static const struct {
  const char *id, *input, *expected;
} ORDERS[] = {
    {"A-1001", "{\"order\":\"A-1001\",\"sku\":\"espresso-machine\",\"qty\":1,\"amount_cents\":24900,\"card\":\"4242\"}",
     "{\"order\":\"A-1001\",\"status\":\"shipped\",\"charge\":\"ch_A-1001\",\"tracking\":\"TRK-A-1001\"}"},
    {"A-1002", "{\"order\":\"A-1002\",\"sku\":\"espresso-machine\",\"qty\":1,\"amount_cents\":24900,\"card\":\"0002\"}",
     "{\"order\":\"A-1002\",\"status\":\"cancelled\",\"reason\":\"payment declined: insufficient funds\","
     "\"inventory\":\"released\"}"},
    {"A-1003", "{\"order\":\"A-1003\",\"sku\":\"grinder\",\"qty\":5,\"amount_cents\":59500,\"card\":\"4242\"}",
     "{\"order\":\"A-1003\",\"status\":\"rejected\",\"reason\":\"out of stock: 5 grinder wanted, 2 left\"}"},
};
#define N_ORDERS (sizeof ORDERS / sizeof ORDERS[0])

int main(int argc, char **argv)
{
  const char *target = argc > 1 ? argv[1] : dt_default_target();
  setvbuf(stdout, NULL, _IOLBF, 0);
  dt_set_log_fn(log_line, NULL);

  struct shop shop = {.mu = PTHREAD_MUTEX_INITIALIZER, .items = {{"espresso-machine", 3}, {"grinder", 2}}};
  dt_worker *worker = NULL;
  check(dt_worker_new(target, NULL, &worker), "dt_worker_new");
  check(dt_worker_add_orchestrator(worker, "process_order", process_order, NULL), "add process_order");
  check(dt_worker_add_orchestrator(worker, "ship_order", ship_order, NULL), "add ship_order");
  check(dt_worker_add_activity(worker, "reserve_inventory", reserve_inventory, &shop), "add reserve_inventory");
  check(dt_worker_add_activity(worker, "release_inventory", release_inventory, &shop), "add release_inventory");
  check(dt_worker_add_activity(worker, "charge_payment", charge_payment, &shop), "add charge_payment");
  check(dt_worker_add_activity(worker, "pack", pack, NULL), "add pack");
  check(dt_worker_add_activity(worker, "dispatch", dispatch, NULL), "add dispatch");
  check(dt_worker_start(worker), "dt_worker_start");

  dt_client *client = NULL;
  check(dt_client_open(target, NULL, &client), "dt_client_open");

  /* Start all three, then wait for each. An id still in use by a finished instance may be replaced. */
  const dt_status finished[] = {DT_STATUS_COMPLETED, DT_STATUS_FAILED, DT_STATUS_TERMINATED};
  dt_reuse_policy reuse = {finished, 3};
  char *ids[N_ORDERS];
  for (size_t i = 0; i < N_ORDERS; i++) {
    char instance_id[32];
    snprintf(instance_id, sizeof instance_id, "order-%s", ORDERS[i].id);
    dt_start_options start = {.instance_id = instance_id, .input = ORDERS[i].input, .reuse = &reuse};
    check(dt_client_schedule(client, "process_order", &start, &ids[i]), "schedule process_order");
  }

  bool ok = true;
  for (size_t i = 0; i < N_ORDERS; i++) {
    dt_instance *st = NULL;
    check(dt_client_wait_completion(client, ids[i], 60000, true, &st), "wait for process_order");
    if (st->failure)
      printf("%s failed: %s: %s\n", ids[i], st->failure->error_type, st->failure->message);
    printf("%s %s: %s\n", ids[i], dt_status_name(st->status), st->output ? st->output : "null");
    ok = ok && st->status == DT_STATUS_COMPLETED && st->output && strcmp(st->output, ORDERS[i].expected) == 0;
    dt_instance_free(st);
    dt_free(ids[i]);
  }

  dt_client_close(client);
  dt_worker_free(worker);

  /* One espresso machine shipped, the declined one's reservation given back, no grinder taken. */
  printf("stock: %s %d, %s %d\n", shop.items[0].sku, shop.items[0].stock, shop.items[1].sku, shop.items[1].stock);
  ok = ok && shop.items[0].stock == 2 && shop.items[1].stock == 2;
  return ok ? 0 : 1;
}
