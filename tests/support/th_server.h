/*
 * Runs taskhubd as a child process for integration tests.
 *
 * The binary comes from $TASKHUBD_BIN. The server gets a fresh temporary directory (mkdtemp under $TMPDIR
 * or /tmp) holding the RocksDB data dir and one stderr log per start (log-0.txt, log-1.txt, ...). The port
 * is learnt through --ready-fd: the test reads one line from a pipe with poll() and a timeout.
 *
 * If the test aborts (a failed ASSERT), a SIGABRT handler kills the child and prints its logs, so a failure
 * always shows what the server said and never leaves a server running. On a clean th_server_free the
 * directory is removed.
 */
#ifndef TH_SERVER_H
#define TH_SERVER_H

#include <limits.h>
#include <sys/types.h>

#define TH_SERVER_MAX_ARGS 16
#define TH_SERVER_MAX_LOGS 16
/* How long the server may take to report its port, and to exit after SIGTERM. */
#define TH_SERVER_START_MS 30000
#define TH_SERVER_STOP_MS 15000

typedef struct th_server {
  pid_t pid;      /* 0 when not running */
  int port;       /* valid while running */
  int starts;     /* number of starts so far; log-<starts-1>.txt is the current log */
  char root[PATH_MAX / 2];
  char data_dir[PATH_MAX];
  char store[512]; /* with $TASKHUBD_TEST_PG: the PostgreSQL database of this server, kept across restarts */
  char *extra[TH_SERVER_MAX_ARGS];
  int n_extra;
} th_server;

/*
 * Creates the temp dir and starts the server with the NULL-terminated extra arguments (may be NULL).
 * Returns 0, or TEST_SKIP when $TASKHUBD_BIN is unset (the caller returns that from the test).
 * Aborts the test if the server does not report a port in time.
 */
int th_server_start(th_server *s, const char *const *extra_args);
/* Starts the server again on the same data dir with the same extra arguments (it gets a new port). */
void th_server_restart(th_server *s);
/* SIGTERM; asserts the server exits with status 0 within TH_SERVER_STOP_MS and its log is clean. */
void th_server_stop(th_server *s);
/* SIGTERM without the exit-status assertion: returns the raw wait status (the caller asserts). */
int th_server_term(th_server *s, long long *elapsed_ms);
/* Sends sig to the running server (no wait). */
void th_server_signal(th_server *s, int sig);
/* Waits up to timeout_ms for the server to exit: returns 1 with the raw wait status in *status (the server is
 * then no longer running), or 0 if it is still running. */
int th_server_wait_exit(th_server *s, long long timeout_ms, int *status);
/* SIGKILL and reap. */
void th_server_kill(th_server *s);
/* Asserts that no sanitizer report ("AddressSanitizer", "LeakSanitizer", "runtime error", ...) appears in any
 * log of this server so far. */
void th_server_assert_clean_log(const th_server *s);
/* Prints every log of the server to stderr. */
void th_server_dump_logs(const th_server *s);
/* Stops the server if still running (asserting a clean exit), then removes the temp dir recursively. */
void th_server_free(th_server *s);

#endif
