#ifndef CTL_CREDENTIALS_H
#define CTL_CREDENTIALS_H

#include "cli.h"

/* What taskhubctl connects with: TLS files and a token, from flags or else TASKHUBCTL_* variables. */
struct ctl_credentials {
  char *ca, *cert, *key, *token; /* file contents, owned */
};

/* Reads the files named by the flags/variables into |cred| and points |o| at them. Returns CTL_EXIT_OK, or an
 * exit code after printing the error (a file that cannot be read, a key without a certificate). */
int ctl_credentials_load(struct ctl *c, struct ctl_credentials *cred, dt_conn_options *o);
/* Wipes and frees what ctl_credentials_load read (after the client is open: the SDK copies what it keeps). */
void ctl_credentials_free(struct ctl_credentials *cred);

#endif
