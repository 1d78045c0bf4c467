/*
 * The reader pool: a FIFO of jobs under one mutex, served by a few threads. Jobs are embedded in the calls they
 * serve, so posting allocates nothing.
 */
#include "readers.h"

#include "common/log.h"

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdlib.h>

#define MAX_READERS 16

struct sc_readers {
  pthread_mutex_t mu;
  pthread_cond_t cv;
  struct sc_job *head, *tail;
  size_t queued; /* jobs waiting for a thread */
  bool stopping;
  int n;
  pthread_t th[MAX_READERS];
};

static void *reader_main(void *arg)
{
  struct sc_readers *r = arg;
  pthread_mutex_lock(&r->mu);
  for (;;) {
    while (!r->head && !r->stopping)
      pthread_cond_wait(&r->cv, &r->mu);
    struct sc_job *j = r->head;
    if (!j)
      break; /* stopping, and nothing left to run */
    r->head = j->next;
    if (!r->head)
      r->tail = NULL;
    r->queued--;
    pthread_mutex_unlock(&r->mu);
    j->next = NULL;
    j->fn(j);
    pthread_mutex_lock(&r->mu);
  }
  pthread_mutex_unlock(&r->mu);
  return NULL;
}

struct sc_readers *sc_readers_start(int n)
{
  struct sc_readers *r = calloc(1, sizeof *r);
  if (!r)
    sc_panic("out of memory starting the reader threads");
  pthread_mutex_init(&r->mu, NULL);
  pthread_cond_init(&r->cv, NULL);
  if (n < 1)
    n = 1;
  if (n > MAX_READERS)
    n = MAX_READERS;
  for (r->n = 0; r->n < n; r->n++)
    if (pthread_create(&r->th[r->n], NULL, reader_main, r) != 0)
      sc_panic("cannot start a reader thread");
  return r;
}

void sc_readers_post(struct sc_readers *r, struct sc_job *job)
{
  sc_readers_try_post(r, job, 0, NULL);
}

bool sc_readers_try_post(struct sc_readers *r, struct sc_job *job, size_t max, size_t *waiting)
{
  job->next = NULL;
  pthread_mutex_lock(&r->mu);
  if (r->stopping) {
    pthread_mutex_unlock(&r->mu);
    job->fn(job);
    return true;
  }
  if (max && r->queued >= max) {
    if (waiting)
      *waiting = r->queued;
    pthread_mutex_unlock(&r->mu);
    return false;
  }
  r->queued++;
  if (r->tail)
    r->tail->next = job;
  else
    r->head = job;
  r->tail = job;
  pthread_cond_signal(&r->cv);
  pthread_mutex_unlock(&r->mu);
  return true;
}

void sc_readers_stop(struct sc_readers *r)
{
  pthread_mutex_lock(&r->mu);
  r->stopping = true;
  pthread_cond_broadcast(&r->cv);
  pthread_mutex_unlock(&r->mu);
  for (int i = 0; i < r->n; i++)
    pthread_join(r->th[i], NULL);
  r->n = 0;
}

void sc_readers_free(struct sc_readers *r)
{
  if (!r)
    return;
  SC_ASSERT(r->stopping && r->n == 0);
  pthread_mutex_destroy(&r->mu);
  pthread_cond_destroy(&r->cv);
  free(r);
}
