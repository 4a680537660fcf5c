#if defined(__linux__)
#define _GNU_SOURCE /* sched_getaffinity, CPU_COUNT */
#endif
#include "neurec/nr_thread.h"

#include <stdlib.h>

#if defined(_WIN32)
#include <process.h>

void nr_mutex_init(nr_mutex_t *m) { InitializeSRWLock(m); }
void nr_mutex_destroy(nr_mutex_t *m) { (void)m; }
void nr_mutex_lock(nr_mutex_t *m) { AcquireSRWLockExclusive(m); }
void nr_mutex_unlock(nr_mutex_t *m) { ReleaseSRWLockExclusive(m); }

void nr_cond_init(nr_cond_t *c) { InitializeConditionVariable(c); }
void nr_cond_destroy(nr_cond_t *c) { (void)c; }
void nr_cond_wait(nr_cond_t *c, nr_mutex_t *m) { SleepConditionVariableSRW(c, m, INFINITE, 0); }
void nr_cond_broadcast(nr_cond_t *c) { WakeAllConditionVariable(c); }

struct trampoline {
    void *(*fn)(void *);
    void *arg;
};

static unsigned __stdcall thread_main(void *p)
{
    struct trampoline t = *(struct trampoline *)p;
    free(p);
    t.fn(t.arg);
    return 0;
}

int nr_thread_create(nr_thread_t *t, void *(*fn)(void *), void *arg)
{
    struct trampoline *tr = malloc(sizeof *tr);
    if (!tr)
        return -1;
    tr->fn = fn;
    tr->arg = arg;
    uintptr_t h = _beginthreadex(NULL, 0, thread_main, tr, 0, NULL);
    if (h == 0) {
        free(tr);
        return -1;
    }
    *t = (HANDLE)h;
    return 0;
}

void nr_thread_join(nr_thread_t t)
{
    WaitForSingleObject(t, INFINITE);
    CloseHandle(t);
}

void nr_thread_yield(void) { SwitchToThread(); }
void nr_thread_sleep_us(long us) { Sleep((DWORD)(us >= 1000 ? us / 1000 : 1)); }

int nr_cpu_count(void)
{
    DWORD_PTR proc = 0, sys = 0;
    int n = 0;
    if (GetProcessAffinityMask(GetCurrentProcess(), &proc, &sys))
        for (; proc; proc &= proc - 1)
            n++;
    if (n < 1) {
        DWORD all = GetActiveProcessorCount(ALL_PROCESSOR_GROUPS);
        n = all >= 1 ? (int)all : 1;
    }
    return n;
}

#else /* POSIX threads */
#include <sched.h>
#include <time.h>
#include <unistd.h>

void nr_mutex_init(nr_mutex_t *m) { pthread_mutex_init(m, NULL); }
void nr_mutex_destroy(nr_mutex_t *m) { pthread_mutex_destroy(m); }
void nr_mutex_lock(nr_mutex_t *m) { pthread_mutex_lock(m); }
void nr_mutex_unlock(nr_mutex_t *m) { pthread_mutex_unlock(m); }

void nr_cond_init(nr_cond_t *c) { pthread_cond_init(c, NULL); }
void nr_cond_destroy(nr_cond_t *c) { pthread_cond_destroy(c); }
void nr_cond_wait(nr_cond_t *c, nr_mutex_t *m) { pthread_cond_wait(c, m); }
void nr_cond_broadcast(nr_cond_t *c) { pthread_cond_broadcast(c); }

int nr_thread_create(nr_thread_t *t, void *(*fn)(void *), void *arg)
{
    return pthread_create(t, NULL, fn, arg) == 0 ? 0 : -1;
}

void nr_thread_join(nr_thread_t t) { pthread_join(t, NULL); }
void nr_thread_yield(void) { sched_yield(); }

void nr_thread_sleep_us(long us)
{
    struct timespec t = {.tv_sec = us / 1000000, .tv_nsec = (us % 1000000) * 1000};
    nanosleep(&t, NULL);
}

int nr_cpu_count(void)
{
#if defined(__linux__) && defined(CPU_COUNT)
    cpu_set_t set;
    if (sched_getaffinity(0, sizeof set, &set) == 0) {
        int n = CPU_COUNT(&set);
        if (n >= 1)
            return n;
    }
#endif
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    return n >= 1 ? (n > 1 << 20 ? 1 << 20 : (int)n) : 1;
}
#endif
