#include "admin_calls.h"
#include "ctl.h"

#include <stdlib.h>
#include <string.h>

static int call(dt_client *c, const char *method, const ProtobufCMessage *req, const ProtobufCMessageDescriptor *rd,
                ProtobufCMessage **out)
{
  size_t n = protobuf_c_message_get_packed_size(req);
  uint8_t *buf = malloc(n ? n : 1);
  if (!buf)
    return DT_ERR_NOMEM;
  protobuf_c_message_pack(req, buf);
  uint8_t *resp = NULL;
  size_t len = 0;
  int rc = dt_client_call_raw(c, method, buf, n, 0, &resp, &len);
  free(buf);
  if (rc != DT_OK)
    return rc;
  *out = protobuf_c_message_unpack(rd, NULL, len, resp);
  dt_free(resp);
  return *out ? DT_OK : DT_ERR_INTERNAL;
}

int ctl_server_info(dt_client *c, Taskhubd__Admin__ServerInfoResponse **out)
{
  Taskhubd__Admin__ServerInfoRequest req = TASKHUBD__ADMIN__SERVER_INFO_REQUEST__INIT;
  return call(c, "/taskhubd.admin.Admin/GetServerInfo", &req.base, &taskhubd__admin__server_info_response__descriptor,
              (ProtobufCMessage **)out);
}

int ctl_pending_messages(dt_client *c, const char *iid, int max, Taskhubd__Admin__PendingMessagesResponse **out)
{
  Taskhubd__Admin__PendingMessagesRequest req = TASKHUBD__ADMIN__PENDING_MESSAGES_REQUEST__INIT;
  req.instance_id = (char *)iid;
  req.max_messages = max;
  return call(c, "/taskhubd.admin.Admin/ListPendingMessages", &req.base,
              &taskhubd__admin__pending_messages_response__descriptor, (ProtobufCMessage **)out);
}

char *ctl_explain_instance(dt_client *c, const char *iid)
{
  Taskhubd__Admin__ExplainInstanceRequest req = TASKHUBD__ADMIN__EXPLAIN_INSTANCE_REQUEST__INIT;
  req.instance_id = (char *)iid;
  Taskhubd__Admin__ExplainInstanceResponse *resp = NULL;
  if (call(c, "/taskhubd.admin.Admin/ExplainInstance", &req.base,
           &taskhubd__admin__explain_instance_response__descriptor, (ProtobufCMessage **)&resp) != DT_OK)
    return NULL;
  char *why = resp->reason[0] ? strdup(resp->reason) : NULL;
  protobuf_c_message_free_unpacked(&resp->base, NULL);
  return why;
}

/* What a pending message is, in the words of the Durable Task model, and the name it carries (or NULL). */
static const char *describe(const HistoryEvent *e, const char **name, int *task_id)
{
  *name = NULL;
  *task_id = -1;
  switch (e->event_type_case) {
  case HISTORY_EVENT__EVENT_TYPE_EXECUTION_STARTED:
    *name = e->executionstarted->name;
    return "start (no worker has run it yet)";
  case HISTORY_EVENT__EVENT_TYPE_EVENT_RAISED:
    *name = e->eventraised->name;
    return "event raised";
  case HISTORY_EVENT__EVENT_TYPE_EXECUTION_SUSPENDED:
    return "suspend requested";
  case HISTORY_EVENT__EVENT_TYPE_EXECUTION_RESUMED:
    return "resume requested";
  case HISTORY_EVENT__EVENT_TYPE_EXECUTION_TERMINATED:
    return "terminate requested";
  case HISTORY_EVENT__EVENT_TYPE_TASK_COMPLETED:
    *task_id = e->taskcompleted->taskscheduledid;
    return "activity completed";
  case HISTORY_EVENT__EVENT_TYPE_TASK_FAILED:
    *task_id = e->taskfailed->taskscheduledid;
    return "activity failed";
  case HISTORY_EVENT__EVENT_TYPE_TIMER_FIRED:
    *task_id = e->timerfired->timerid;
    return "timer fired";
  case HISTORY_EVENT__EVENT_TYPE_SUB_ORCHESTRATION_INSTANCE_COMPLETED:
    *task_id = e->suborchestrationinstancecompleted->taskscheduledid;
    return "sub-orchestration completed";
  case HISTORY_EVENT__EVENT_TYPE_SUB_ORCHESTRATION_INSTANCE_FAILED:
    *task_id = e->suborchestrationinstancefailed->taskscheduledid;
    return "sub-orchestration failed";
  case HISTORY_EVENT__EVENT_TYPE_ENTITY_OPERATION_COMPLETED:
    return "entity operation completed";
  case HISTORY_EVENT__EVENT_TYPE_ENTITY_OPERATION_FAILED:
    return "entity operation failed";
  case HISTORY_EVENT__EVENT_TYPE_ENTITY_LOCK_GRANTED:
    return "entity lock granted";
  default: {
    const ProtobufCFieldDescriptor *f =
        protobuf_c_message_descriptor_get_field(&history_event__descriptor, (unsigned)e->event_type_case);
    return f ? f->name : "message";
  }
  }
}

static int64_t ts_ms(const Google__Protobuf__Timestamp *t)
{
  return t ? t->seconds * 1000 + t->nanos / 1000000 : 0;
}

void ctl_print_pending(FILE *f, const Taskhubd__Admin__PendingMessagesResponse *p)
{
  if (p->total == 0)
    return;
  fprintf(f, "\nWaiting in its inbox (%d message%s, not yet in the history):\n", p->total, p->total == 1 ? "" : "s");
  for (size_t i = 0; i < p->n_messages; i++) {
    const char *name;
    int task_id;
    const char *what = describe(p->messages[i], &name, &task_id);
    char ts[48];
    fprintf(f, "  %s  %s", ctl_format_time(ts_ms(p->messages[i]->timestamp), ts, sizeof ts), what);
    if (name) {
      fputs(" '", f);
      ctl_print_escaped(f, name, strlen(name));
      fputc('\'', f);
    }
    if (task_id >= 0)
      fprintf(f, " (task %d)", task_id);
    fputc('\n', f);
  }
  if ((size_t)p->total > p->n_messages)
    fprintf(f, "  ... and %zu more\n", (size_t)p->total - p->n_messages);
}

json_object *ctl_json_pending(const Taskhubd__Admin__PendingMessagesResponse *p)
{
  json_object *arr = json_object_new_array();
  for (size_t i = 0; i < p->n_messages; i++) {
    const char *name;
    int task_id;
    const char *what = describe(p->messages[i], &name, &task_id);
    json_object *o = json_object_new_object();
    json_object_object_add(o, "kind", json_object_new_string(what));
    if (name)
      json_object_object_add(o, "name", json_object_new_string(name));
    if (task_id >= 0)
      json_object_object_add(o, "taskId", json_object_new_int(task_id));
    json_object_object_add(o, "timestamp", ctl_json_time(ts_ms(p->messages[i]->timestamp)));
    json_object_array_add(arr, o);
  }
  return arr;
}
