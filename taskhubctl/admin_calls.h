/*
 * taskhubctl's calls of taskhubd's own service (protos/taskhubd_admin.proto), made through the C SDK's
 * dt_client_call_raw so that they share the client's connection: which server answers (version), and what waits
 * in an instance's inbox and why it has not moved (show).
 */
#ifndef CTL_ADMIN_CALLS_H
#define CTL_ADMIN_CALLS_H

#include "durabletask.h"
#include "taskhubd_admin.pb-c.h"

#include <json-c/json.h>
#include <stdio.h>

/* DT_OK with *out (free with protobuf_c_message_free_unpacked(&(*out)->base, NULL)), or the call's status:
 * DT_ERR_UNSUPPORTED from a server that is not taskhubd. */
int ctl_server_info(dt_client *c, Taskhubd__Admin__ServerInfoResponse **out);
int ctl_pending_messages(dt_client *c, const char *iid, int max, Taskhubd__Admin__PendingMessagesResponse **out);
/* Why the instance has not moved, as taskhubd's engine sees it now: a malloc'd reason, or NULL when it gave none
 * (or is not taskhubd, or could not be asked). */
char *ctl_explain_instance(dt_client *c, const char *iid);

/* One line per pending message ("  event 'approval' raised 2026-...Z"), under a heading; nothing when none. */
void ctl_print_pending(FILE *f, const Taskhubd__Admin__PendingMessagesResponse *p);
/* The JSON form: an array of {kind, name?, timestamp}. */
json_object *ctl_json_pending(const Taskhubd__Admin__PendingMessagesResponse *p);

#endif
