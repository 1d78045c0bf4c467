/* The reader pool refuses client reads past its limit (sc_readers_try_post, --max-queued-commands) and still runs
 * what it queued. */
#include "server/readers.h"
#include "test.h"

#include <pthread.h>
#include <stdbool.h>
#include <time.h>

struct rjob {
  struct sc_job job; /* first: the pool hands back this pointer */
  pthread_mutex_t *mu;
  pthread_cond_t *cv;
  bool *open, *entered;
  int *ran;
};

static void run_job(struct sc_job *j)
{
  struct rjob *r = (struct rjob *)j;
  pthread_mutex_lock(r->mu);
  *r->entered = true;
  pthread_cond_broadcast(r->cv);
  while (!*r->open)
    pthread_cond_wait(r->cv, r->mu);
  ++*r->ran;
  pthread_cond_broadcast(r->cv);
  pthread_mutex_unlock(r->mu);
}

TEST_IMPL(readers_refuse_past_the_limit)
{
  pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
  pthread_cond_t cv = PTHREAD_COND_INITIALIZER;
  bool open = false, entered = false;
  int ran = 0;
  struct sc_readers *rd = sc_readers_start(1);
  struct rjob jobs[4];
  for (int i = 0; i < 4; i++)
    jobs[i] = (struct rjob){{run_job, NULL}, &mu, &cv, &open, &entered, &ran};
  /* The one thread takes the first job and holds it. */
  ASSERT(sc_readers_try_post(rd, &jobs[0].job, 2, NULL));
  struct timespec dl;
  clock_gettime(CLOCK_REALTIME, &dl);
  dl.tv_sec += 10;
  pthread_mutex_lock(&mu);
  while (!entered)
    ASSERT_OK(pthread_cond_timedwait(&cv, &mu, &dl));
  pthread_mutex_unlock(&mu);
  /* Two may wait; the third is refused and told how many wait. */
  ASSERT(sc_readers_try_post(rd, &jobs[1].job, 2, NULL));
  ASSERT(sc_readers_try_post(rd, &jobs[2].job, 2, NULL));
  size_t waiting = 0;
  ASSERT(!sc_readers_try_post(rd, &jobs[3].job, 2, &waiting));
  ASSERT_EQ(waiting, 2);
  pthread_mutex_lock(&mu);
  open = true;
  pthread_cond_broadcast(&cv);
  while (ran < 3)
    ASSERT_OK(pthread_cond_timedwait(&cv, &mu, &dl));
  pthread_mutex_unlock(&mu);
  /* Drained: room again. */
  ASSERT(sc_readers_try_post(rd, &jobs[3].job, 2, NULL));
  sc_readers_stop(rd);
  ASSERT_EQ(ran, 4);
  sc_readers_free(rd);
  return 0;
}
