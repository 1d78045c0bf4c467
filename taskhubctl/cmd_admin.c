/* Commands that talk to no server: migrate (it opens the stores itself) and version. */
#include "commands.h"
#include "migrate.h"
#include "admin_calls.h"
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

/* The server's version comes from taskhubd's own service (taskhubd.admin.Admin/GetServerInfo); a sidecar without
 * it (another Durable Task implementation) is reported as such, and an unreachable server as unreachable, with the
 * client's version printed either way. */
int cmd_version(struct ctl *c)
{
  Taskhubd__Admin__ServerInfoResponse *info = NULL;
  int rc = ctl_server_info(c->client, &info);
  const char *code = NULL, *msg = NULL;
  if (rc != DT_OK)
    dt_last_call_status(&code, &msg);
  char why[600];
  snprintf(why, sizeof why, "%s%s%s",
           rc == DT_ERR_UNSUPPORTED ? "the server does not implement taskhubd.admin.Admin: not a taskhubd"
                                    : (code ? code : dt_strerror(rc)),
           rc != DT_ERR_UNSUPPORTED && msg && *msg ? ": " : "", rc != DT_ERR_UNSUPPORTED && msg ? msg : "");
  if (c->json) {
    json_object *doc = json_object_new_object();
    json_object_object_add(doc, "client", json_object_new_string(TASKHUBCTL_VERSION));
    if (info) {
      json_object *srv = json_object_new_object();
      json_object_object_add(srv, "version", json_object_new_string(info->version));
      json_object_object_add(srv, "grpc", json_object_new_string(info->grpc_version));
      json_object_object_add(srv, "store", json_object_new_string(info->store));
      json_object_object_add(srv, "replicaId", info->replica_id[0] ? json_object_new_string(info->replica_id) : NULL);
      json_object_object_add(srv, "partitions", json_object_new_int(info->partitions));
      json_object_object_add(doc, "server", srv);
    } else {
      json_object_object_add(doc, "server", NULL);
      json_object_object_add(doc, "serverUnknownReason", json_object_new_string(why));
    }
    ctl_json_print(doc);
  } else {
    printf("client: taskhubctl %s\n", TASKHUBCTL_VERSION);
    if (info)
      printf("server: taskhubd %s (gRPC %s, store %s%s%s, %d partition%s) at %s\n", info->version,
             info->grpc_version, info->store, info->replica_id[0] ? ", replica " : "", info->replica_id,
             info->partitions, info->partitions == 1 ? "" : "s", c->address);
    else
      printf("server: unknown (%s)\n", why);
  }
  if (info)
    protobuf_c_message_free_unpacked(&info->base, NULL);
  /* The client's version is printed whatever the server says; an unreachable server still fails the command. */
  return rc == DT_OK || rc == DT_ERR_UNSUPPORTED ? CTL_EXIT_OK : ctl_exit_for(rc);
}
