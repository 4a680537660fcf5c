/*
 * nr_thread.h: the few threading primitives the core needs, on POSIX threads
 * or on Win32 (SRWLOCK, CONDITION_VARIABLE, _beginthreadex), so that the
 * pool and the bindings build unchanged with gcc, clang, MinGW-w64 and
 * clang-cl.
 *
 * Mutexes are not recursive. A statically allocated mutex is initialised with
 * NR_MUTEX_INITIALIZER; nr_mutex_init (re)initialises one at run time (for
 * example in a child process after fork). None of these functions fail
 * except nr_thread_create.
 */
#ifndef NR_THREAD_H
#define NR_THREAD_H

#if defined(_WIN32)
#ifndef WIN32_LEAN_AND_MEAN
#define WIN32_LEAN_AND_MEAN
#endif
#include <windows.h>
typedef SRWLOCK nr_mutex_t;
typedef CONDITION_VARIABLE nr_cond_t;
typedef HANDLE nr_thread_t;
#define NR_MUTEX_INITIALIZER SRWLOCK_INIT
#else
#include <pthread.h>
typedef pthread_mutex_t nr_mutex_t;
typedef pthread_cond_t nr_cond_t;
typedef pthread_t nr_thread_t;
#define NR_MUTEX_INITIALIZER PTHREAD_MUTEX_INITIALIZER
#endif

void nr_mutex_init(nr_mutex_t *m);
void nr_mutex_destroy(nr_mutex_t *m);
void nr_mutex_lock(nr_mutex_t *m);
void nr_mutex_unlock(nr_mutex_t *m);

void nr_cond_init(nr_cond_t *c);
void nr_cond_destroy(nr_cond_t *c);
/* Atomically release m and wait for a broadcast; m is held again on return.
 * Spurious wake-ups happen: wait in a loop on the condition. */
void nr_cond_wait(nr_cond_t *c, nr_mutex_t *m);
void nr_cond_broadcast(nr_cond_t *c);

/* Start fn(arg) on a new thread. Returns 0 on success, -1 on failure (then
 * nothing was started and *t is unspecified). */
int nr_thread_create(nr_thread_t *t, void *(*fn)(void *), void *arg);
/* Wait for the thread to end and release it. */
void nr_thread_join(nr_thread_t t);
/* Give up the rest of this thread's time slice. */
void nr_thread_yield(void);
/* Sleep about us microseconds (at least a time slice on Windows). */
void nr_thread_sleep_us(long us);

/* NR_PAUSE(): the CPU's spin-wait hint, for the rounds of a spin loop. */
#if defined(__x86_64__) || defined(__i386__) || defined(_M_X64) || defined(_M_IX86)
#include <immintrin.h>
#define NR_PAUSE() _mm_pause()
#elif (defined(__aarch64__) || defined(__arm__)) && (defined(__GNUC__) || defined(__clang__))
#define NR_PAUSE() __asm__ volatile("yield")
#else
#define NR_PAUSE() ((void)0)
#endif

/* The number of CPUs this process may run on (its affinity mask on Linux and
 * Windows, the online processors elsewhere); at least 1. */
int nr_cpu_count(void);

#endif /* NR_THREAD_H */
