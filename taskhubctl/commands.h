/*
 * The commands: one function each, taking the parsed command line (with c->client open unless the command is
 * local) and returning an exit code of ctl.h. The table in cli.c points at them.
 */
#ifndef CTL_COMMANDS_H
#define CTL_COMMANDS_H

#include "cli.h"

/* cmd_query.c: many instances at once */
int cmd_list(struct ctl *c);
int cmd_purge(struct ctl *c);

/* cmd_instance.c: one instance */
int cmd_show(struct ctl *c);
int cmd_start(struct ctl *c);
int cmd_raise(struct ctl *c);
int cmd_suspend(struct ctl *c);
int cmd_resume(struct ctl *c);
int cmd_terminate(struct ctl *c);
int cmd_rewind(struct ctl *c);
int cmd_restart(struct ctl *c);

/* cmd_entity.c: durable entities */
int cmd_entity_list(struct ctl *c);
int cmd_entity_show(struct ctl *c);
int cmd_entity_signal(struct ctl *c);
int cmd_entity_clean(struct ctl *c);

/* cmd_watch.c */
int cmd_watch(struct ctl *c);

/* cmd_admin.c: no server */
int cmd_migrate(struct ctl *c);
int cmd_version(struct ctl *c);

/* cli.c: help and completion scripts are generated from the tables there */
int cmd_help(struct ctl *c);
int cmd_completion(struct ctl *c);

#endif
