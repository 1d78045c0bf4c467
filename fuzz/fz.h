#ifndef TH_FZ_H
#define TH_FZ_H

/*
 * What the fuzz targets share (support.c): scratch directories, the input format, and an engine on a real
 * RocksDB store with a worker stream, driven the way the transport drives it but without gRPC.
 *
 * Inputs made of several messages are chunks: a 2-byte little-endian length, then that many bytes (the last
 * chunk may be short). The seed program writes them the same way (fz_put_chunk).
 */

#include "engine/engine.h"
#include "store/store.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

/* A fresh directory under $TMPDIR (or /tmp), removed when the process exits. */
const char *fz_tempdir(const char *tag);
/* Removes |dir| and everything in it. */
void fz_rmtree(const char *dir);

/* The next chunk of [*p, *p + *n); false when none is left. */
bool fz_next_chunk(const uint8_t **p, size_t *n, const uint8_t **chunk, size_t *len);
/* Appends one chunk to |f|. */
void fz_put_chunk(FILE *f, const uint8_t *b, size_t len);

/* Reports a broken invariant and aborts, so libFuzzer keeps the input as a crash. */
void fz_fail(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));

/* taskhubd's defaults (sc_config_parse with no arguments): the limits and the engine configuration main.c
 * derives from them, with unsynced commits (nothing here needs durability across a power cut). */
void fz_default_engine_config(struct sc_engine_config *ec);

/* One engine on one store, for the whole process, with one worker stream open that takes every kind of work. */
struct fz_engine {
  struct sc_store *st;
  struct sc_engine *e;
  struct sc_engine_config cfg;
};

/* Starts it once (later calls return the same one). */
struct fz_engine *fz_engine(void);
/* Posts |cmd| and waits for its done callback; returns cmd->err.code. */
int fz_run(struct fz_engine *f, struct sc_cmd *cmd);

/* Whether a work item is the one the caller waits for. */
typedef bool (*fz_item_pred)(const WorkItem *wi, void *ctx);
/*
 * The next work item on the stream that |want| accepts, waiting up to |timeout_ms|; NULL when none came. Every
 * other item (left over from earlier inputs: child orchestrations, activities, timers, entity operations the
 * fuzzed messages started) is answered the simplest way a worker would (orchestrations completed, activities
 * and entity operations succeeded), so nothing piles up in flight. Free the result with work_item__free_unpacked.
 */
WorkItem *fz_next_item(struct fz_engine *f, fz_item_pred want, void *ctx, int timeout_ms);

/*
 * The engine's contract (engine.h): the poster owns a command's request and everything it points to. Packs |m| to
 * compare it later with fz_unchanged, which aborts when the engine changed it (a message written through the
 * const pointer may point at memory the engine frees, as the server's arena-held requests would never show).
 */
struct fz_snapshot {
  uint8_t *b;
  size_t len;
};
void fz_snapshot(const ProtobufCMessage *m, struct fz_snapshot *s);
void fz_unchanged(const ProtobufCMessage *m, struct fz_snapshot *s, const char *what);

/* Answers |wi| as fz_next_item answers the items nobody waits for, and frees it. */
void fz_finish(struct fz_engine *f, WorkItem *wi);

/* The invariants every stored instance must keep whatever a worker sent: the record, its history and its inbox
 * decode, and its status is one the protocol defines. Aborts (fz_fail) otherwise. */
void fz_check_instance(struct fz_engine *f, const char *iid);

#endif
