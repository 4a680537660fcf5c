#include "neurec/nr_pool.h"
#include "neurec/nr_thread.h"

#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>

/* Spin this many rounds before sleeping: long enough to cover the gap between
 * two batches of one fit call, short enough to not burn a core when idle. */
#define NR_POOL_SPIN 50000

struct nr_pool {
    int n_threads;
    nr_thread_t *threads;
    nr_mutex_t mutex;
    nr_cond_t cond;
    atomic_uint_fast64_t generation; /* bumped once per nr_pool_run */
    atomic_int done;                 /* workers finished with this generation */
    atomic_int stop;
    int sleepers;                    /* guarded by mutex */
    nr_pool_fn fn;
    void *ctx;
};

struct worker_arg {
    struct nr_pool *pool;
    int ith;
};

static void *worker_main(void *p)
{
    struct worker_arg *arg = p;
    struct nr_pool *pool = arg->pool;
    int ith = arg->ith;
    free(arg);
    uint_fast64_t seen = 0;
    for (;;) {
        uint_fast64_t g;
        long spins = 0;
        while ((g = atomic_load_explicit(&pool->generation, memory_order_acquire)) == seen) {
            if (++spins < NR_POOL_SPIN) {
                /* yield now and then: on an oversubscribed machine the thread
                 * that will publish the next job may need this core */
                if ((spins & 1023) == 0)
                    nr_thread_yield();
                else
                    NR_PAUSE();
                continue;
            }
            nr_mutex_lock(&pool->mutex);
            pool->sleepers++;
            while (atomic_load(&pool->generation) == seen && !atomic_load(&pool->stop))
                nr_cond_wait(&pool->cond, &pool->mutex);
            pool->sleepers--;
            nr_mutex_unlock(&pool->mutex);
            spins = 0;
            if (atomic_load(&pool->stop))
                return NULL;
        }
        seen = g;
        if (atomic_load(&pool->stop))
            return NULL;
        pool->fn(pool->ctx, ith, pool->n_threads);
        atomic_fetch_add_explicit(&pool->done, 1, memory_order_release);
    }
}

enum nr_status nr_pool_init(struct nr_pool **out, int n_threads)
{
    *out = NULL;
    if (n_threads < 1)
        return NR_ERR_VALUE;
    struct nr_pool *pool = calloc(1, sizeof *pool);
    if (!pool)
        return NR_ERR_NOMEM;
    pool->n_threads = 1;
    atomic_init(&pool->generation, 0);
    atomic_init(&pool->done, 0);
    atomic_init(&pool->stop, 0);
    nr_mutex_init(&pool->mutex);
    nr_cond_init(&pool->cond);
    if (n_threads > 1) {
        pool->threads = calloc((size_t)n_threads - 1, sizeof *pool->threads);
        if (!pool->threads) {
            nr_pool_free(pool);
            return NR_ERR_NOMEM;
        }
        for (int i = 1; i < n_threads; i++) {
            struct worker_arg *arg = malloc(sizeof *arg);
            if (!arg) {
                nr_pool_free(pool);
                return NR_ERR_NOMEM;
            }
            arg->pool = pool;
            arg->ith = i;
            if (nr_thread_create(&pool->threads[i - 1], worker_main, arg) != 0) {
                free(arg);
                nr_pool_free(pool);
                return NR_ERR_NOMEM;
            }
            pool->n_threads = i + 1;
        }
    }
    *out = pool;
    return NR_OK;
}

void nr_pool_free(struct nr_pool *pool)
{
    if (!pool)
        return;
    nr_mutex_lock(&pool->mutex);
    atomic_store(&pool->stop, 1);
    atomic_fetch_add(&pool->generation, 1);
    nr_cond_broadcast(&pool->cond);
    nr_mutex_unlock(&pool->mutex);
    for (int i = 1; i < pool->n_threads; i++)
        nr_thread_join(pool->threads[i - 1]);
    nr_cond_destroy(&pool->cond);
    nr_mutex_destroy(&pool->mutex);
    free(pool->threads);
    free(pool);
}

int nr_pool_size(const struct nr_pool *pool) { return pool ? pool->n_threads : 1; }

void nr_pool_run(struct nr_pool *pool, nr_pool_fn fn, void *ctx)
{
    if (!pool || pool->n_threads == 1) {
        fn(ctx, 0, 1);
        return;
    }
    pool->fn = fn;
    pool->ctx = ctx;
    atomic_store_explicit(&pool->done, 0, memory_order_relaxed);
    nr_mutex_lock(&pool->mutex);
    atomic_fetch_add_explicit(&pool->generation, 1, memory_order_release);
    if (pool->sleepers > 0)
        nr_cond_broadcast(&pool->cond);
    nr_mutex_unlock(&pool->mutex);
    fn(ctx, 0, pool->n_threads);
    long spins = 0;
    while (atomic_load_explicit(&pool->done, memory_order_acquire) < pool->n_threads - 1) {
        if ((++spins & 255) == 0)
            nr_thread_yield();
        else
            NR_PAUSE();
    }
}
