/* threads.c - many short threads: what an allocator or tracker costs per
 * thread (its caches, its set-up and tear-down), not per block.
 *
 *   threads [count] [blocks]   defaults: 5000 threads, 64 blocks each
 *
 * Threads are started two at a time and joined; each allocates `blocks`
 * blocks of 16 B to 2 KiB, writes them, frees them, and returns a sum of
 * what it wrote.  An allocator whose per-thread state is set up eagerly
 * (signal masks, system calls, a cache filled and emptied) pays it 5000
 * times.  Prints a checksum. */
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static long blocks = 64;

static void *work(void *arg)
{
    uintptr_t seed = (uintptr_t)arg, sum = 0;
    unsigned char *p[256];
    long n = blocks < 256 ? blocks : 256;
    for (long i = 0; i < n; i++) {
        seed = seed * 6364136223846793005ULL + 1442695040888963407ULL;
        size_t size = 16 + (seed >> 33) % 2033;
        p[i] = malloc(size);
        if (!p[i]) abort();
        memset(p[i], (int)(i & 0xff), size);
        sum += p[i][size - 1] + size;
    }
    for (long i = 0; i < n; i++) free(p[i]);
    return (void *)sum;
}

int main(int argc, char **argv)
{
    long count = argc > 1 ? atol(argv[1]) : 5000;
    if (argc > 2) blocks = atol(argv[2]);
    uintptr_t total = 0;
    for (long i = 0; i < count; i += 2) {
        pthread_t t[2];
        int k = i + 1 < count ? 2 : 1;
        for (int j = 0; j < k; j++)
            if (pthread_create(&t[j], NULL, work, (void *)(uintptr_t)(i + j + 1)) != 0) return 1;
        for (int j = 0; j < k; j++) {
            void *r;
            pthread_join(t[j], &r);
            total += (uintptr_t)r;
        }
    }
    printf("%lu\n", (unsigned long)total);
    return 0;
}
