/*
 * bank — a transfer between two accounts, each a durable entity, inside a critical section.
 *
 * The entity "account" holds a balance (a JSON number) and has three operations: deposit, withdraw (which fails
 * when the balance is too low) and balance. The orchestration "transfer" moves an amount between two accounts:
 *   1. locks both accounts (dt_lock_entities: nothing else runs on them until they are unlocked);
 *   2. reads the source balance with a call, and refuses the transfer when it is too low;
 *   3. withdraws from one and deposits into the other, with calls, then reads both balances;
 *   4. unlocks both (dt_unlock_entities).
 * No other transfer or deposit can run between the check and the move: that is what the lock is for. The
 * orchestration "withdraw" calls the entity without a lock and shows a failed call (dt_await_result).
 *
 * The run: alice gets 100 and bob 20 (client signals); alice sends bob 30 (done: 70 and 50); bob tries to send
 * alice 80 (refused: 50 is not enough); a direct withdrawal of 500 from bob fails in the entity.
 *
 * usage: sample_bank [HOST:PORT]        (default $TASKHUBD_ADDRESS, else 127.0.0.1:4001; start taskhubd first)
 * Exits 0 when every step ended as it should.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <json-c/json.h>

#include "durabletask.h"

/* ------------------------------------------------------------------------------------------------ the entity */

static long long balance_of(const char *state)
{
  return state ? atoll(state) : 0;
}

static const char *account(dt_entity_ctx *ctx, const char *op, const char *input, void *user_data)
{
  (void)user_data;
  long long balance = balance_of(dt_entity_state(ctx));
  long long amount = input ? atoll(input) : 0;
  if (strcmp(op, "balance") == 0)
    return dt_entity_printf(ctx, "%lld", balance);
  if (strcmp(op, "deposit") == 0) {
    dt_entity_set_state(ctx, dt_entity_printf(ctx, "%lld", balance + amount));
    return NULL;
  }
  if (strcmp(op, "withdraw") == 0) {
    if (amount > balance) {
      dt_entity_fail(ctx, "InsufficientFunds",
                     dt_entity_printf(ctx, "%s has %lld, %lld wanted", dt_entity_key(ctx), balance, amount));
      return NULL;
    }
    dt_entity_set_state(ctx, dt_entity_printf(ctx, "%lld", balance - amount));
    return NULL;
  }
  if (strcmp(op, "close") == 0) {
    dt_entity_delete_state(ctx);
    return NULL;
  }
  dt_entity_fail(ctx, "UnknownOperation", dt_entity_printf(ctx, "account has no operation '%s'", op));
  return NULL;
}

/* ------------------------------------------------------------------------------------------------ orchestrations */

struct request {
  const char *from, *to; /* account keys */
  long long amount;
};

/* Reads {"from":..,"to":..,"amount":..} into context memory (the JSON object is freed before any other call on
 * the context, which may end the run). */
static struct request read_request(dt_orch_ctx *ctx, const char *input)
{
  struct request r = {NULL, NULL, 0};
  json_object *in = json_tokener_parse(input ? input : ""), *v;
  char from[64] = "", to[64] = "";
  if (in && json_object_object_get_ex(in, "from", &v))
    snprintf(from, sizeof from, "%s", json_object_get_string(v));
  if (in && json_object_object_get_ex(in, "to", &v))
    snprintf(to, sizeof to, "%s", json_object_get_string(v));
  if (in && json_object_object_get_ex(in, "amount", &v))
    r.amount = json_object_get_int64(v);
  json_object_put(in);
  if (!*from)
    dt_orch_fail(ctx, "BadRequest", "a request names the accounts and the amount");
  r.from = dt_ctx_strdup(ctx, from);
  r.to = dt_ctx_strdup(ctx, to);
  return r;
}

static const char *account_id(dt_orch_ctx *ctx, const char *key)
{
  return dt_ctx_printf(ctx, "@account@%s", key);
}

static const char *transfer(dt_orch_ctx *ctx, const char *input, void *user_data)
{
  (void)user_data;
  struct request r = read_request(ctx, input);
  const char *from = account_id(ctx, r.from), *to = account_id(ctx, r.to);
  const char *both[] = {from, to};
  dt_await(ctx, dt_lock_entities(ctx, both, 2));
  long long have = balance_of(dt_await(ctx, dt_call_entity(ctx, from, "balance", NULL)));
  if (have < r.amount) {
    dt_unlock_entities(ctx);
    return dt_ctx_printf(ctx, "{\"status\":\"refused\",\"reason\":\"insufficient funds: %s has %lld, %lld wanted\"}",
                         r.from, have, r.amount);
  }
  const char *amount = dt_ctx_printf(ctx, "%lld", r.amount);
  dt_await(ctx, dt_call_entity(ctx, from, "withdraw", amount));
  dt_await(ctx, dt_call_entity(ctx, to, "deposit", amount));
  long long from_after = balance_of(dt_await(ctx, dt_call_entity(ctx, from, "balance", NULL)));
  long long to_after = balance_of(dt_await(ctx, dt_call_entity(ctx, to, "balance", NULL)));
  dt_unlock_entities(ctx);
  return dt_ctx_printf(ctx, "{\"status\":\"done\",\"%s\":%lld,\"%s\":%lld}", r.from, from_after, r.to, to_after);
}

/* A withdrawal without a lock; the entity refuses it when the balance is too low, and the failed call says why. */
static const char *withdraw(dt_orch_ctx *ctx, const char *input, void *user_data)
{
  (void)user_data;
  struct request r = read_request(ctx, input);
  dt_task *t = dt_call_entity(ctx, account_id(ctx, r.from), "withdraw", dt_ctx_printf(ctx, "%lld", r.amount));
  if (dt_await_result(ctx, t, NULL) != DT_OK) {
    const dt_failure *f = dt_task_failure(t);
    return dt_ctx_printf(ctx, "{\"status\":\"failed\",\"error\":\"%s: %s\"}", f->error_type, f->message);
  }
  return "{\"status\":\"done\"}";
}

/* ------------------------------------------------------------------------------------------------ main */

static void log_line(int level, const char *message, void *user_data)
{
  (void)user_data;
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

/* Runs one orchestration to its end and prints "<label>: <output>"; true when the output is |expected|. */
static bool run(dt_client *client, const char *name, const char *label, const char *input, const char *expected)
{
  char *id = NULL;
  dt_start_options start = {.input = input};
  check(dt_client_schedule(client, name, &start, &id), "dt_client_schedule");
  dt_instance *st = NULL;
  check(dt_client_wait_completion(client, id, 60000, true, &st), "dt_client_wait_completion");
  if (st->failure)
    printf("%s failed: %s: %s\n", label, st->failure->error_type, st->failure->message);
  printf("%s: %s\n", label, st->output ? st->output : "null");
  bool ok = st->status == DT_STATUS_COMPLETED && st->output && strcmp(st->output, expected) == 0;
  dt_instance_free(st);
  dt_free(id);
  return ok;
}

static long long read_balance(dt_client *client, const char *id)
{
  dt_entity *e = NULL;
  check(dt_client_get_entity(client, id, true, &e), "dt_client_get_entity");
  long long b = balance_of(e->exists ? e->state : NULL);
  dt_entity_free(e);
  return b;
}

int main(int argc, char **argv)
{
  const char *target = argc > 1 ? argv[1] : dt_default_target();
  setvbuf(stdout, NULL, _IOLBF, 0);
  dt_set_log_fn(log_line, NULL);

  dt_worker *worker = NULL;
  check(dt_worker_new(target, NULL, &worker), "dt_worker_new");
  check(dt_worker_add_entity(worker, "account", account, NULL), "add account");
  check(dt_worker_add_orchestrator(worker, "transfer", transfer, NULL), "add transfer");
  check(dt_worker_add_orchestrator(worker, "withdraw", withdraw, NULL), "add withdraw");
  check(dt_worker_start(worker), "dt_worker_start");

  dt_client *client = NULL;
  check(dt_client_open(target, NULL, &client), "dt_client_open");

  /* Fresh accounts (so that the sample can run again on the same server), then the opening deposits. An
   * entity runs its operations in the order they were queued, and the lock request of the first transfer queues
   * behind them, so the transfer sees both deposits. */
  check(dt_client_signal_entity(client, "@account@alice", "close", NULL, 0), "signal close");
  check(dt_client_signal_entity(client, "@account@bob", "close", NULL, 0), "signal close");
  check(dt_client_signal_entity(client, "@account@alice", "deposit", "100", 0), "signal deposit");
  check(dt_client_signal_entity(client, "@account@bob", "deposit", "20", 0), "signal deposit");

  bool ok = run(client, "transfer", "transfer alice->bob 30", "{\"from\":\"alice\",\"to\":\"bob\",\"amount\":30}",
                "{\"status\":\"done\",\"alice\":70,\"bob\":50}");
  ok &= run(client, "transfer", "transfer bob->alice 80", "{\"from\":\"bob\",\"to\":\"alice\",\"amount\":80}",
            "{\"status\":\"refused\",\"reason\":\"insufficient funds: bob has 50, 80 wanted\"}");
  ok &= run(client, "withdraw", "withdraw bob 500", "{\"from\":\"bob\",\"amount\":500}",
            "{\"status\":\"failed\",\"error\":\"InsufficientFunds: bob has 50, 500 wanted\"}");

  /* Every operation above was a call whose answer came after its batch committed: the states are final. */
  long long alice = read_balance(client, "@account@alice"), bob = read_balance(client, "@account@bob");
  printf("balances: alice %lld, bob %lld\n", alice, bob);
  ok = ok && alice == 70 && bob == 50;

  dt_client_close(client);
  dt_worker_free(worker);
  return ok ? 0 : 1;
}
