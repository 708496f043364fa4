/* xthread.c - cross-thread frees: a producer thread allocates, a consumer
 * thread frees, through a queue.
 *
 *   xthread [objects]          default: 2000000
 *
 * The producer mallocs blocks of 16 B to 1 KiB (mostly small: 70% up to
 * 128 B), writes a header into each and pushes the pointer onto a
 * single-producer single-consumer ring of 4096 slots; the consumer pops,
 * reads and frees it.  Indices are published in batches of 64 so that the
 * queue itself costs little next to malloc and free.  When the ring is full
 * or empty the waiting side yields.  Every block is thus allocated on one
 * thread and freed on the other: an allocator whose per-thread caches only
 * take back their own blocks has to move every block between threads.
 * Prints a checksum. */
#define _GNU_SOURCE
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define RING  4096
#define BATCH 64

static void *ring[RING];
static _Alignas(64) _Atomic size_t head;   /* written by the producer */
static _Alignas(64) _Atomic size_t tail;   /* written by the consumer */
static _Alignas(64) long nobj;

static void *producer(void *arg)
{
    (void)arg;
    uint64_t rng = 0x9E3779B97F4A7C15ull;
    size_t h = 0, cached_tail = 0;
    for (long i = 0; i < nobj; i++) {
        rng ^= rng << 13; rng ^= rng >> 7; rng ^= rng << 17;
        size_t n = (rng % 10 < 7) ? 16 + (rng >> 8) % 113 : 16 + (rng >> 8) % 1009;
        uint64_t *p = malloc(n);
        if (!p) { perror("malloc"); exit(1); }
        p[0] = (uint64_t)i;
        p[1] = n;
        while (h - cached_tail >= RING) {
            cached_tail = atomic_load_explicit(&tail, memory_order_acquire);
            if (h - cached_tail >= RING) sched_yield();
        }
        ring[h % RING] = p;
        h++;
        if (h % BATCH == 0 || i == nobj - 1) atomic_store_explicit(&head, h, memory_order_release);
    }
    return NULL;
}

static void *consumer(void *arg)
{
    uint64_t sum = 0;
    size_t t = 0, cached_head = 0;
    for (long i = 0; i < nobj; i++) {
        while (t == cached_head) {
            cached_head = atomic_load_explicit(&head, memory_order_acquire);
            if (t == cached_head) sched_yield();
        }
        uint64_t *p = ring[t % RING];
        sum += p[0] ^ p[1];
        free(p);
        t++;
        if (t % BATCH == 0) atomic_store_explicit(&tail, t, memory_order_release);
    }
    *(uint64_t *)arg = sum;
    return NULL;
}

/* Put the two threads on different CPUs when there are two: otherwise the
 * scheduler decides between a truly concurrent run and one where the threads
 * take turns on one CPU, and the timing is bimodal. */
static void pin(pthread_t t, int cpu)
{
    cpu_set_t set;
    if (sched_getaffinity(0, sizeof set, &set) != 0 || CPU_COUNT(&set) < 2) return;
    int seen = 0;
    for (int c = 0; c < CPU_SETSIZE; c++)
        if (CPU_ISSET(c, &set) && seen++ == cpu) {
            cpu_set_t one;
            CPU_ZERO(&one);
            CPU_SET(c, &one);
            pthread_setaffinity_np(t, sizeof one, &one);
            return;
        }
}

int main(int argc, char **argv)
{
    nobj = argc > 1 ? atol(argv[1]) : 2000000;
    pthread_t pt, ct;
    uint64_t sum = 0;
    pthread_create(&ct, NULL, consumer, &sum);
    pthread_create(&pt, NULL, producer, NULL);
    pin(ct, 1);
    pin(pt, 0);
    pthread_join(pt, NULL);
    pthread_join(ct, NULL);
    printf("xthread: objects=%ld checksum=%016llx\n", nobj, (unsigned long long)sum);
    return 0;
}
