/* falseshare.c - whether the allocator makes threads share cache lines, as
 * Hoard's cache-thrash and cache-scratch (in mimalloc-bench) measure.
 *
 *   falseshare thrash|scratch [threads] [objects] [size] [writes]
 *                                        defaults: 2, 1000, 8, 100000
 *
 * Each thread allocates `objects` blocks of `size` bytes one after another,
 * writes each block `writes` times over, and frees it before the next.
 * thrash: nothing else.  An allocator that gives two threads blocks in one
 * cache line makes every write of one thread take the line from the other
 * (active false sharing).
 * scratch: first, the main thread allocates one block for each thread, one
 * after another (so they are neighbours), and each thread frees the one it
 * was given before its loop.  An allocator that hands a freed block to the
 * thread that freed it, not back to the one whose memory it is, gives the
 * threads neighbouring blocks (passive false sharing).
 * The threads run on separate CPUs where there are enough.  Prints a
 * checksum of the blocks' contents. */
#define _GNU_SOURCE
#include <pthread.h>
#include <sched.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static long objects = 1000, writes = 100000;
static size_t size = 8;
static pthread_barrier_t start;

typedef struct { int cpu; void *given; uint64_t sum; } worker_t;

static void *worker(void *arg)
{
    worker_t *w = arg;
    cpu_set_t set;
    CPU_ZERO(&set);
    CPU_SET(w->cpu, &set);
    pthread_setaffinity_np(pthread_self(), sizeof set, &set);   /* best effort */
    pthread_barrier_wait(&start);
    free(w->given);
    uint64_t sum = 0;
    for (long i = 0; i < objects; i++) {
        volatile unsigned char *p = malloc(size);
        if (!p) { perror("malloc"); exit(1); }
        for (size_t k = 0; k < size; k++) p[k] = 0;
        for (long r = 0; r < writes; r++)
            for (size_t k = 0; k < size; k++) p[k]++;
        for (size_t k = 0; k < size; k++) sum += p[k];
        free((void *)p);
    }
    w->sum = sum;
    return NULL;
}

int main(int argc, char **argv)
{
    if (argc < 2 || (strcmp(argv[1], "thrash") && strcmp(argv[1], "scratch"))) {
        fprintf(stderr, "usage: falseshare thrash|scratch [threads] [objects] [size] [writes]\n");
        return 2;
    }
    int scratch = !strcmp(argv[1], "scratch");
    int threads = argc > 2 ? atoi(argv[2]) : 2;
    if (argc > 3) objects = atol(argv[3]);
    if (argc > 4) size = (size_t)atol(argv[4]);
    if (argc > 5) writes = atol(argv[5]);
    long cpus = sysconf(_SC_NPROCESSORS_ONLN);
    worker_t *w = calloc((size_t)threads, sizeof *w);
    pthread_t *t = calloc((size_t)threads, sizeof *t);
    pthread_barrier_init(&start, NULL, (unsigned)threads);
    for (int i = 0; i < threads; i++) {
        w[i].cpu = (int)(i % (cpus > 0 ? cpus : 1));
        w[i].given = scratch ? malloc(size) : NULL;
    }
    for (int i = 0; i < threads; i++) pthread_create(&t[i], NULL, worker, &w[i]);
    uint64_t sum = 0;
    for (int i = 0; i < threads; i++) {
        pthread_join(t[i], NULL);
        sum += w[i].sum;
    }
    printf("falseshare %s: %d threads, %ld objects of %zu bytes, checksum %llu\n",
           argv[1], threads, objects, size, (unsigned long long)sum);
    free(w);
    free(t);
    return 0;
}
