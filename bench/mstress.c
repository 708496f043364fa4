/* mstress.c - threads churning blocks of mixed sizes, some of them passed
 * to other threads, as mimalloc-bench's mstress does: the churn that makes
 * pages go free and come back again and again.
 *
 *   mstress [threads] [rounds] [steps]      defaults 4, 10, 200000
 *
 * Each round starts `threads` threads; each allocates into its own table of
 * slots (sizes: 90% 8-256 B, 9% to 8 KiB, 1% to 128 KiB; every block
 * written), frees random slots, and swaps a block now and then with a table
 * shared by all threads (so blocks die on another thread than their own).
 * A thread frees its blocks when it ends; the shared table lives on to the
 * next round.  Each block is checked when freed (its fill byte intact), and
 * the count of damaged blocks printed: the order threads run in changes
 * which blocks move, so a checksum would not repeat. */
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define SLOTS  4096
#define SHARED 1024

static void *shared[SHARED];
static pthread_mutex_t shared_lock = PTHREAD_MUTEX_INITIALIZER;
static long steps = 200000;
static uint64_t damaged;

static uint64_t next(uint64_t *s)
{
    *s ^= *s << 13; *s ^= *s >> 7; *s ^= *s << 17;
    return *s;
}

static size_t pick_size(uint64_t *s)
{
    uint64_t r = next(s);
    unsigned p = (unsigned)(r % 100);
    r >>= 8;
    if (p < 90) return 8 + r % 249;
    if (p < 99) return 257 + r % (8192 - 256);
    return 8193 + r % (128 * 1024 - 8192);
}

static void *block(size_t n, uint64_t tag)
{
    unsigned char *p = malloc(n);
    if (!p) { perror("malloc"); exit(1); }
    memset(p, (int)(tag & 0xff), n);
    memcpy(p, &n, sizeof n);                     /* every size is >= 8 */
    return p;
}

static unsigned release(void *b)                 /* 1 if the block was damaged */
{
    unsigned char *p = b;
    size_t n;
    memcpy(&n, p, sizeof n);
    unsigned bad = n < 8 || n > 128 * 1024 || (n > 8 && p[n - 1] != p[8]);
    free(p);
    return bad;
}

static void *worker(void *arg)
{
    uint64_t s = (uintptr_t)arg * 0x9E3779B97F4A7C15ull + 1, bad = 0;
    void **slot = calloc(SLOTS, sizeof *slot);
    for (long i = 0; i < steps; i++) {
        unsigned k = (unsigned)(next(&s) % SLOTS);
        if (slot[k]) bad += release(slot[k]);
        slot[k] = block(pick_size(&s), next(&s) & 0xffff);
        if (i % 64 == 0) {                       /* hand a block to whoever comes next */
            unsigned j = (unsigned)(next(&s) % SHARED);
            pthread_mutex_lock(&shared_lock);
            void *t = shared[j]; shared[j] = slot[k]; slot[k] = t;
            pthread_mutex_unlock(&shared_lock);
        }
    }
    for (unsigned k = 0; k < SLOTS; k++)
        if (slot[k]) bad += release(slot[k]);
    __atomic_fetch_add(&damaged, bad, __ATOMIC_RELAXED);
    free(slot);
    return NULL;
}

int main(int argc, char **argv)
{
    int threads = argc > 1 ? atoi(argv[1]) : 4;
    int rounds = argc > 2 ? atoi(argv[2]) : 10;
    if (argc > 3) steps = atol(argv[3]);
    pthread_t *t = calloc((size_t)threads, sizeof *t);
    for (int r = 0; r < rounds; r++) {
        for (int i = 0; i < threads; i++)
            pthread_create(&t[i], NULL, worker, (void *)(uintptr_t)(r * threads + i + 1));
        for (int i = 0; i < threads; i++) pthread_join(t[i], NULL);
    }
    for (unsigned j = 0; j < SHARED; j++) if (shared[j]) damaged += release(shared[j]);
    free(t);
    printf("mstress: %d threads, %d rounds, %llu damaged blocks\n", threads, rounds, (unsigned long long)damaged);
    return 0;
}
