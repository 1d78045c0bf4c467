/* Commands that talk to no server: migrate (it opens the stores itself) and version. */
#include "commands.h"
#include "migrate.h"
#include "report.h"

int cmd_migrate(struct ctl *c)
{
  if (!c->from || !c->to)
    return ctl_usage_error(c, "migrate needs --from rocksdb:DIR and --to STORE");
  struct ctl_migrate_opts o = {.from = c->from,
                               .to = c->to,
                               .batch = c->batch ? c->batch : CTL_MIGRATE_DEFAULT_BATCH,
                               .progress = true};
  struct ctl_migrate_result r;
  int ex = ctl_migrate(&o, &r);
  if (ex == CTL_EXIT_USAGE)
    return ctl_usage_error(c, "%s", r.msg);
  if (ex != CTL_EXIT_OK) {
    fprintf(stderr, "taskhubctl: migrate: %s\n", r.msg);
    ctl_error_doc(c, ex == CTL_EXIT_STATE ? "WRONG_STATE" : ex == CTL_EXIT_UNAVAIL ? "UNAVAILABLE" : "FAILED", ex, r.msg,
              NULL);
    return ex;
  }
  if (c->json) {
    json_object *doc = json_object_new_object();
    json_object_object_add(doc, "instances", json_object_new_int64((int64_t)r.instances));
    json_object_object_add(doc, "historyEvents", json_object_new_int64((int64_t)r.history_events));
    json_object_object_add(doc, "inboxMessages", json_object_new_int64((int64_t)r.inbox_messages));
    json_object_object_add(doc, "payloads", json_object_new_int64((int64_t)r.payloads));
    json_object_object_add(doc, "timers", json_object_new_int64((int64_t)r.timers));
    json_object_object_add(doc, "activities", json_object_new_int64((int64_t)r.activities));
    json_object_object_add(doc, "entities", json_object_new_int64((int64_t)r.entities));
    json_object_object_add(doc, "nextSequence", json_object_new_int64((int64_t)r.next_seq));
    char secs[32];
    snprintf(secs, sizeof secs, "%.3f", r.copy_s);
    json_object_object_add(doc, "copySeconds", json_object_new_double_s(r.copy_s, secs));
    snprintf(secs, sizeof secs, "%.3f", r.verify_s);
    json_object_object_add(doc, "verifySeconds", json_object_new_double_s(r.verify_s, secs));
    json_object_object_add(doc, "verified", json_object_new_boolean(1));
    ctl_json_print(doc);
  } else {
    printf("migrated %llu instances, %llu history events, %llu inbox messages, %llu timers, %llu activities, %llu "
           "entities in %.1f s; verified in %.1f s\n",
           (unsigned long long)r.instances, (unsigned long long)r.history_events,
           (unsigned long long)r.inbox_messages, (unsigned long long)r.timers, (unsigned long long)r.activities,
           (unsigned long long)r.entities, r.copy_s, r.verify_s);
  }
  return CTL_EXIT_OK;
}

#ifndef TASKHUBCTL_VERSION
#define TASKHUBCTL_VERSION "unknown"
#endif

/* taskhubd reports its version nowhere a gRPC client can read it (checked for issue 14): Hello answers an empty
 * message and grpc.health.v1 only a serving status; /metrics has taskhubd_build_info, but on the ops port,
 * whose address taskhubctl does not know. So version says so; the reason is part of the output. */
#define SERVER_VERSION_UNKNOWN                                                                                    \
  "taskhubd does not report its version: Hello returns an empty message, grpc.health.v1 only a serving "        \
  "status (the ops port's /metrics has taskhubd_build_info); run taskhubd --version where it runs"

int cmd_version(struct ctl *c)
{
  if (c->json) {
    json_object *doc = json_object_new_object();
    json_object_object_add(doc, "client", json_object_new_string(TASKHUBCTL_VERSION));
    json_object_object_add(doc, "server", NULL);
    json_object_object_add(doc, "serverUnknownReason", json_object_new_string(SERVER_VERSION_UNKNOWN));
    ctl_json_print(doc);
  } else {
    printf("client: taskhubctl %s\n", TASKHUBCTL_VERSION);
    printf("server: unknown (%s)\n", SERVER_VERSION_UNKNOWN);
  }
  return CTL_EXIT_OK;
}
