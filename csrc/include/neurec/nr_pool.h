/*
 * nr_pool.h: a small persistent thread pool (POSIX threads or Win32, nr_thread.h).
 *
 * nr_pool_run(pool, fn, ctx) calls fn(ctx, ith, nth) once for every ith in
 * [0, nth): the calling thread runs ith = 0 and the pool's workers the rest,
 * and it returns when all have finished. Work is split by the callee ("thread
 * ith of nth takes a block"), as in ggml.
 *
 * Idle workers spin briefly, then sleep on a condition variable, so a pool
 * costs no CPU between calls. A pool is not re-entrant: one nr_pool_run at a
 * time (the Python binding holds a lock around it).
 */
#ifndef NR_POOL_H
#define NR_POOL_H

#include "neurec/nr_status.h"

struct nr_pool; /* opaque */

typedef void (*nr_pool_fn)(void *ctx, int ith, int nth);

/* Create a pool for n_threads >= 1 threads (n_threads - 1 workers are
 * started). On success *out owns the pool; free it with nr_pool_free.
 * Errors: NR_ERR_VALUE (n_threads < 1), NR_ERR_NOMEM (allocation or thread
 * creation failed; nothing is leaked). */
enum nr_status nr_pool_init(struct nr_pool **out, int n_threads);

/* Stop and join the workers and free the pool. NULL is a no-op. */
void nr_pool_free(struct nr_pool *pool);

/* Number of threads, the caller included. pool may be NULL (then 1). */
int nr_pool_size(const struct nr_pool *pool);

/* Run fn on every thread of pool (or on the caller alone if pool is NULL)
 * and wait for all of them. */
void nr_pool_run(struct nr_pool *pool, nr_pool_fn fn, void *ctx);

#endif /* NR_POOL_H */
