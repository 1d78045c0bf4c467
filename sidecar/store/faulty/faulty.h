#ifndef SC_STORE_FAULTY_H
#define SC_STORE_FAULTY_H

/*
 * A store that wraps a real one (store.h) and fails on cue: for tests of what the engine does when its store
 * fails. Every operation passes through to the inner store and is counted, from the last sc_faulty_arm:
 *  - writes: apply and wipe;
 *  - reads: every committed read (a record, a payload, a history, an inbox, a query page, a count, ...);
 *  - iterator steps: each row a read or scan returns (a history's events, an inbox's messages, a page's rows,
 *    each row a scan hands its callback);
 *  - operations: all of the above in one sequence, the steps of a commit among them (the reads before it, the
 *    apply, the reads and scans after a failure).
 * Armed with a fault, the |n|th one of its kind fails with |code| and nothing of it reaches the inner store (a
 * step: the read it belongs to fails). A crash at operation |n| is a process dying there: that operation and
 * every later one fails without reaching the inner store, so what the inner store holds is what a restart finds;
 * with |after_write| the |n|th write reaches the inner store first (durable, but its caller never learns so).
 * One fault at a time; it fires once (a crash stays crashed until re-armed).
 */

#include "store/store.h"

#include <stdbool.h>
#include <stdint.h>

enum sc_fault_kind { SC_FAULT_NONE, SC_FAULT_WRITE, SC_FAULT_READ, SC_FAULT_STEP, SC_FAULT_CRASH };

struct sc_fault {
  enum sc_fault_kind kind;
  uint64_t n;       /* 1: the first of its kind after arming */
  int code;         /* what the failing operation returns (0: SC_EIO) */
  bool after_write; /* SC_FAULT_CRASH: |n| counts writes, and the write is applied before the crash */
};

struct sc_faulty_counts {
  uint64_t writes, reads, steps, ops;
  bool fired;   /* the armed fault happened */
  bool crashed; /* a crash happened: nothing reaches the inner store any more */
};

/* CONSTRUCTOR: wraps |inner|, which it owns from now on (closing the wrapper closes it). Unarmed: passes every
 * operation through. */
struct sc_store *sc_faulty_wrap(struct sc_store *inner);
/* Resets the counts and arms |f| (NULL or SC_FAULT_NONE: none). Thread-safe. */
void sc_faulty_arm(struct sc_store *s, const struct sc_fault *f);
void sc_faulty_counts(struct sc_store *s, struct sc_faulty_counts *out);
/* The counts are also copied to |mirror| whenever they change (NULL: not): memory a test shares with the
 * process it forked, so that a child that dies at a crash point still tells how far it got. */
void sc_faulty_mirror(struct sc_store *s, struct sc_faulty_counts *mirror);

#endif
