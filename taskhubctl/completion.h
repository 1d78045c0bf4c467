/*
 * Shell completion scripts for bash and zsh, written from the option and command tables of cli.c (which hands
 * them over), so that a new option or command completes without anyone editing a script.
 */
#ifndef CTL_COMPLETION_H
#define CTL_COMPLETION_H

#include "cli.h"

struct ctl_tables {
  const struct command *commands;
  size_t n_commands;
  const struct optdef *global_opts; /* both {O_END}-terminated */
  const struct optdef *cmd_opts;
};

/* Writes the completion script for |shell| ("bash" or "zsh") to |f|; false for another shell. */
bool ctl_write_completion(FILE *f, const char *shell, const struct ctl_tables *t);

#endif
