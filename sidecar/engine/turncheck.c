/* Whether a worker's response to an orchestration work item can be applied at all. */
#include "internal.h"

#include "common/log.h"
#include "common/metrics.h"
#include "common/pbutil.h"
#include "common/util.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static bool valid_id(const char *s)
{
  size_t n = strlen(s);
  if (n == 0 || n > SC_MAX_ID)
    return false;
  for (size_t i = 0; i < n; i++)
    if ((unsigned char)s[i] < 0x20 || s[i] == 0x7f)
      return false;
  return true;
}

/* Actions the engine cannot apply fail the orchestration (naming the action) instead of wedging it. */
const char *invalid_action(const OrchestratorAction *a, char *buf, size_t len)
{
  switch (a->orchestrator_action_type_case) {
  case ORCHESTRATOR_ACTION__ORCHESTRATOR_ACTION_TYPE_SCHEDULE_TASK:
    if (!a->scheduletask->name[0])
      snprintf(buf, len, "action %d: scheduleTask.name is empty", a->id);
    else
      return NULL;
    return buf;
  case ORCHESTRATOR_ACTION__ORCHESTRATOR_ACTION_TYPE_CREATE_TIMER:
    if (!a->createtimer->fireat)
      snprintf(buf, len, "action %d: createTimer.fireAt is missing", a->id);
    else
      return NULL;
    return buf;
  case ORCHESTRATOR_ACTION__ORCHESTRATOR_ACTION_TYPE_CREATE_SUB_ORCHESTRATION: {
    const CreateSubOrchestrationAction *s = a->createsuborchestration;
    if (!s->name[0])
      snprintf(buf, len, "action %d: createSubOrchestration.name is empty", a->id);
    else if (s->instanceid[0] && !valid_id(s->instanceid))
      snprintf(buf, len, "action %d: createSubOrchestration.instanceId is not a valid instance id", a->id);
    else
      return NULL;
    return buf;
  }
  case ORCHESTRATOR_ACTION__ORCHESTRATOR_ACTION_TYPE_SEND_EVENT: {
    const SendEventAction *s = a->sendevent;
    if (!s->instance || !valid_id(s->instance->instanceid))
      snprintf(buf, len, "action %d: sendEvent.instance.instanceId is not a valid instance id", a->id);
    else if (!s->name[0])
      snprintf(buf, len, "action %d: sendEvent.name is empty", a->id);
    else
      return NULL;
    return buf;
  }
  case ORCHESTRATOR_ACTION__ORCHESTRATOR_ACTION_TYPE_TERMINATE_ORCHESTRATION:
    if (!valid_id(a->terminateorchestration->instanceid))
      snprintf(buf, len, "action %d: terminateOrchestration.instanceId is not a valid instance id", a->id);
    else
      return NULL;
    return buf;
  default:
    return NULL;
  }
}
