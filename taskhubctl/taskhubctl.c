/*
 * taskhubctl — a command-line client for taskhubd, built on the C SDK (sdk-c/include/durabletask.h).
 *
 * argv -> struct ctl (parse.c) -> one cmd_* function (cmd_*.c, found through the command table of cli.c).
 * Every command prints text for people or, with --output json, exactly one JSON document on stdout (errors
 * included), and returns one of the exit codes of ctl.h. The reference is taskhubctl.1; `taskhubctl help
 * COMMAND` is generated from the tables in cli.c.
 */
#include "cli.h"
#include "credentials.h"
#include "report.h"

#include <stdlib.h>
#include <string.h>

#ifndef TASKHUBCTL_VERSION
#define TASKHUBCTL_VERSION "unknown"
#endif

/* The SDK never prints; show its warnings and errors (not its debug lines) on stderr. */
static void sdk_log(int level, const char *message, void *user_data)
{
  (void)user_data;
  if (level >= 2)
    fprintf(stderr, "taskhubctl: sdk: %s\n", message);
}

int main(int argc, char **argv)
{
  struct ctl c;
  memset(&c, 0, sizeof c);
  const char *env = getenv("TASKHUBD_ADDRESS");
  c.address = env && *env ? env : CTL_DEFAULT_ADDRESS;
  ctl_parse(&c, argc, argv);

  if (c.help) {
    /* "CMD --help" and "help CMD --help" show CMD's page, "help --help" the page of help itself. */
    const struct command *page = c.cmd;
    const struct command *help = ctl_find_command("help");
    if (page == help && c.npos == 1 && ctl_find_command(c.pos[0]))
      page = ctl_find_command(c.pos[0]);
    if (page == help && c.npos == 2 && ctl_find_group_command(c.pos[0], c.pos[1]))
      page = ctl_find_group_command(c.pos[0], c.pos[1]);
    const char *group = !page ? c.group : page == help && c.npos == 1 && ctl_is_group(c.pos[0]) ? c.pos[0] : NULL;
    if (group)
      ctl_print_group_help(stdout, group);
    else if (page)
      ctl_print_command_help(stdout, page);
    else
      ctl_print_tool_help(stdout);
    return CTL_EXIT_OK;
  }
  if (c.tool_version && !c.cmd && !c.err[0]) {
    printf("taskhubctl %s\n", TASKHUBCTL_VERSION);
    return CTL_EXIT_OK;
  }
  if (c.err[0])
    return ctl_usage_error(&c, "%s", c.err);
  if (!c.cmd) {
    ctl_print_tool_help(stderr);
    ctl_error_doc(&c, "USAGE", CTL_EXIT_USAGE, "no command given", NULL);
    return CTL_EXIT_USAGE;
  }
  if (c.cmd->local)
    return c.cmd->run(&c);

  dt_set_log_fn(sdk_log, NULL);
  dt_conn_options copt = {.call_timeout_ms = c.timeout_ms};
  struct ctl_credentials cred;
  int ex = ctl_credentials_load(&c, &cred, &copt);
  if (ex != CTL_EXIT_OK)
    return ex;
  int rc = dt_client_open(c.address, &copt, &c.client);
  ctl_credentials_free(&cred);
  if (rc != DT_OK)
    return ctl_fail(&c, rc, NULL, "cannot open a client for %s", c.address);
  ex = c.cmd->run(&c);
  dt_client_close(c.client);
  fflush(stdout);
  return ex;
}
