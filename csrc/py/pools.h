/*
 * pools.h: the thread pools every call of neurec._core runs on.
 *
 * Every long call borrows a pool of the current thread count for its duration
 * (nr_py_pool_acquire / nr_py_pool_release, with the GIL released) and gives
 * it back to a small free list, so calls from several Python threads (two
 * models fitting at once, a server predicting while another thread
 * evaluates) run side by side instead of queueing on one pool, and a
 * single-threaded user reuses one pool forever. A plan is used by one call at
 * a time (its own lock); the sampler, the scorer and the ranking functions
 * hold no shared state.
 *
 * After fork() the free list and the thread count are reset in the child: the
 * parent's workers do not exist there, so its pools are abandoned (never
 * joined) and the child builds its own.
 */
#ifndef NR_PY_POOLS_H
#define NR_PY_POOLS_H

#include "convert.h"

#include "neurec/nr_pool.h"
#include "neurec/nr_thread.h"

/* The most threads set_num_threads accepts. */
#define NR_PY_MAX_THREADS 1024

/* Register the fork handler (once per process). Returns 0, or -1 with an
 * error set. Called from the module's exec slot. */
int nr_py_pools_init(void);

/* Take a pool of the current size, creating one if none is idle. Called
 * without the GIL. On failure returns NULL and sets *status. */
struct nr_pool *nr_py_pool_acquire(enum nr_status *status);

/* Give a pool back: kept if it still has the current size and the free list
 * has room, else stopped. NULL is a no-op. Called without the GIL. */
void nr_py_pool_release(struct nr_pool *pool);

/* A counter bumped in every forked child: a lock made under another value may
 * be held by a thread of the parent and must be re-created (GIL held). */
long nr_py_fork_generation(void);

/* RUN_ON_POOL_LOCKED(lock, status, call): with the GIL released, take `lock`
 * (an nr_mutex_t *, or NULL for none), borrow a pool as `pool`, evaluate
 * `status = call`, give the pool back and release the lock.
 * RUN_ON_POOL(status, call) is the same without a lock. */
#define RUN_ON_POOL_LOCKED(LOCK, STATUS, CALL)                \
    do {                                                      \
        nr_mutex_t *lock_ = (LOCK);                           \
        Py_BEGIN_ALLOW_THREADS                                \
        if (lock_)                                            \
            nr_mutex_lock(lock_);                             \
        struct nr_pool *pool = nr_py_pool_acquire(&(STATUS)); \
        if (pool) {                                           \
            STATUS = CALL;                                    \
            nr_py_pool_release(pool);                         \
        }                                                     \
        if (lock_)                                            \
            nr_mutex_unlock(lock_);                           \
        Py_END_ALLOW_THREADS                                  \
    } while (0)
#define RUN_ON_POOL(STATUS, CALL) RUN_ON_POOL_LOCKED(NULL, STATUS, CALL)

/* Rows [begin, end) of some work; returns its status. Called without the GIL,
 * on several threads at once for disjoint ranges. */
typedef enum nr_status (*nr_py_rows_fn)(void *ctx, int64_t begin, int64_t end);

/* Run fn over rows [0, n) split into contiguous blocks, one per thread of a
 * borrowed pool but at most max_threads (<= 1: on the calling thread alone,
 * no pool), with the GIL released. Returns the status of the first failing
 * block in row order, or NR_OK. Called with the GIL. */
enum nr_status nr_py_run_rows(nr_py_rows_fn fn, void *ctx, int64_t n, int max_threads);

/* set_num_threads and get_num_threads. */
extern PyMethodDef nr_py_pool_methods[];

#endif /* NR_PY_POOLS_H */
