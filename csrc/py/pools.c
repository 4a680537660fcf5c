/*
 * pools.c: the binding's free list of thread pools, the thread count, and the
 * row-split runner of the ranking functions (see pools.h).
 */
#include "pools.h"

#include <stdlib.h>

#define POOL_CACHE 4
static nr_mutex_t g_pools_lock = NR_MUTEX_INITIALIZER;
static struct nr_pool *g_idle[POOL_CACHE];
static int g_n_idle = 0;
static int g_threads = 0; /* guarded by g_pools_lock; 0 = not yet chosen */
static long g_fork_generation = 0;

static int default_threads(void)
{
    const char *env = getenv("NEUREC_NUM_THREADS");
    if (env && *env) {
        char *end = NULL;
        long v = strtol(env, &end, 10);
        if (end && *end == '\0' && v >= 1 && v <= NR_PY_MAX_THREADS)
            return (int)v;
    }
    int n = nr_cpu_count();
    return n > NR_PY_MAX_THREADS ? NR_PY_MAX_THREADS : n;
}

struct nr_pool *nr_py_pool_acquire(enum nr_status *status)
{
    struct nr_pool *pool = NULL, *stale[POOL_CACHE];
    int n_stale = 0, want;
    nr_mutex_lock(&g_pools_lock);
    if (g_threads == 0)
        g_threads = default_threads();
    want = g_threads;
    while (g_n_idle > 0 && !pool) {
        struct nr_pool *p = g_idle[--g_n_idle];
        if (nr_pool_size(p) == want)
            pool = p;
        else
            stale[n_stale++] = p;
    }
    nr_mutex_unlock(&g_pools_lock);
    for (int i = 0; i < n_stale; i++)
        nr_pool_free(stale[i]);
    if (!pool)
        *status = nr_pool_init(&pool, want);
    return pool;
}

void nr_py_pool_release(struct nr_pool *pool)
{
    if (!pool)
        return;
    nr_mutex_lock(&g_pools_lock);
    int keep = nr_pool_size(pool) == g_threads && g_n_idle < POOL_CACHE;
    if (keep)
        g_idle[g_n_idle++] = pool;
    nr_mutex_unlock(&g_pools_lock);
    if (!keep)
        nr_pool_free(pool);
}

long nr_py_fork_generation(void) { return g_fork_generation; }

#if !defined(_WIN32)
static void pools_after_fork_in_child(void)
{
    /* Only this thread exists now; the idle pools' workers do not. */
    nr_mutex_init(&g_pools_lock);
    g_n_idle = 0;
    g_fork_generation++;
}
#endif

int nr_py_pools_init(void)
{
#if !defined(_WIN32)
    static int atfork_done = 0;
    if (!atfork_done) {
        if (pthread_atfork(NULL, NULL, pools_after_fork_in_child) != 0) {
            PyErr_SetString(PyExc_RuntimeError, "neurec: pthread_atfork failed");
            return -1;
        }
        atfork_done = 1;
    }
#endif
    return 0;
}

/* ------------------------------------------------------------------------ */
/* row-split runner                                                          */

struct rows_job {
    nr_py_rows_fn fn;
    void *ctx;
    int64_t n;
    int max_threads;
    enum nr_status *status; /* one per block */
};

/* Thread ith of the pool takes block ith of min(nth, max_threads). */
static void rows_worker(void *arg, int ith, int nth)
{
    const struct rows_job *j = arg;
    const int nb = nth < j->max_threads ? nth : j->max_threads;
    if (ith < nb)
        j->status[ith] = j->fn(j->ctx, j->n * ith / nb, j->n * (ith + 1) / nb);
}

static enum nr_status run_rows_on(struct nr_pool *pool, struct rows_job *j)
{
    nr_pool_run(pool, rows_worker, j);
    const int nth = nr_pool_size(pool);
    const int nb = nth < j->max_threads ? nth : j->max_threads;
    for (int b = 0; b < nb; b++)
        if (j->status[b] != NR_OK)
            return j->status[b];
    return NR_OK;
}

enum nr_status nr_py_run_rows(nr_py_rows_fn fn, void *ctx, int64_t n, int max_threads)
{
    enum nr_status s = NR_OK;
    if (max_threads > NR_PY_MAX_THREADS)
        max_threads = NR_PY_MAX_THREADS;
    if ((int64_t)max_threads > n)
        max_threads = (int)n;
    if (max_threads <= 1) {
        Py_BEGIN_ALLOW_THREADS
        s = fn(ctx, 0, n);
        Py_END_ALLOW_THREADS
        return s;
    }
    enum nr_status status[NR_PY_MAX_THREADS];
    struct rows_job job = {fn, ctx, n, max_threads, status};
    RUN_ON_POOL(s, run_rows_on(pool, &job));
    return s;
}

/* ------------------------------------------------------------------------ */
/* set_num_threads / get_num_threads                                         */

static PyObject *py_set_num_threads(PyObject *self, PyObject *arg)
{
    (void)self;
    long n = PyLong_AsLong(arg);
    if (n == -1 && PyErr_Occurred())
        return NULL;
    if (n < 1 || n > NR_PY_MAX_THREADS) {
        PyErr_Format(PyExc_ValueError, "n must be between 1 and %d, got %ld", NR_PY_MAX_THREADS, n);
        return NULL;
    }
    /* Pools of the old size finish the calls running on them and are
     * stopped when given back. */
    Py_BEGIN_ALLOW_THREADS
    nr_mutex_lock(&g_pools_lock);
    g_threads = (int)n;
    nr_mutex_unlock(&g_pools_lock);
    Py_END_ALLOW_THREADS
    Py_RETURN_NONE;
}

static PyObject *py_get_num_threads(PyObject *self, PyObject *unused)
{
    (void)self;
    (void)unused;
    int n;
    Py_BEGIN_ALLOW_THREADS
    nr_mutex_lock(&g_pools_lock);
    if (g_threads == 0)
        g_threads = default_threads();
    n = g_threads;
    nr_mutex_unlock(&g_pools_lock);
    Py_END_ALLOW_THREADS
    return PyLong_FromLong(n);
}

PyMethodDef nr_py_pool_methods[] = {
    {"set_num_threads", py_set_num_threads, METH_O, "set_num_threads(n): threads of the C core."},
    {"get_num_threads", py_get_num_threads, METH_NOARGS, "get_num_threads() -> int."},
    {NULL, NULL, 0, NULL},
};
