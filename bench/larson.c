/* larson.c - the server simulation of Larson and Krishnan's benchmark
 * (mimalloc-bench's larson): threads replace random blocks of a table of
 * their own, then hand the table, blocks and all, to a thread started to
 * take over, which frees what its predecessor allocated.  Fixed work, not
 * a fixed time, so that the wall time compares allocators.
 *
 *   larson [threads] [generations] [steps] [slots]   defaults 2, 20, 400000, 5000
 *
 * `threads` lines run at once; each is `generations` threads in turn, each
 * doing `steps` replacements (free a random slot's block, allocate 8-1000
 * bytes, write its first and last 4 bytes) before it starts its successor
 * with the table and ends.  Blocks are checked when freed; prints the
 * count of damaged ones and a checksum. */
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

typedef struct {
    void **slot;
    unsigned slots;
    int left;                    /* generations still to come after this one */
    uint64_t rng, sum, bad;
} line_t;

static long steps = 400000;

static uint64_t next(uint64_t *s)
{
    *s ^= *s << 13; *s ^= *s >> 7; *s ^= *s << 17;
    return *s;
}

static void *block(uint64_t *s)
{
    uint32_t n = 8 + (uint32_t)(next(s) % 993), tail = n * 2654435761u;   /* 8 .. 1000 bytes */
    char *p = malloc(n);
    if (!p) { perror("malloc"); exit(1); }
    memcpy(p, &n, 4);
    memcpy(p + n - 4, &tail, 4);
    return p;
}

static void release(line_t *l, void *b)
{
    uint32_t n, tail;
    memcpy(&n, b, 4);
    if (n < 8 || n > 1000) { l->bad++; free(b); return; }
    memcpy(&tail, (char *)b + n - 4, 4);
    l->bad += tail != n * 2654435761u;
    l->sum += n;
    free(b);
}

static void *generation(void *arg)
{
    line_t *l = arg, w = *l;           /* worked on in a copy: the lines' records share cache lines */
    for (long i = 0; i < steps; i++) {
        unsigned k = (unsigned)(next(&w.rng) % w.slots);
        release(&w, w.slot[k]);
        w.slot[k] = block(&w.rng);
    }
    if (w.left-- > 0) {                          /* the successor takes over */
        *l = w;
        pthread_t t;
        if (pthread_create(&t, NULL, generation, l)) { perror("pthread_create"); exit(1); }
        pthread_detach(t);
        return NULL;
    }
    for (unsigned k = 0; k < w.slots; k++) release(&w, w.slot[k]);
    free(w.slot);
    w.slot = NULL;
    l->sum = w.sum;
    l->bad = w.bad;
    __atomic_store_n(&l->slot, NULL, __ATOMIC_RELEASE);   /* main's sign: done */
    return NULL;
}

int main(int argc, char **argv)
{
    int threads = argc > 1 ? atoi(argv[1]) : 2;
    int gens = argc > 2 ? atoi(argv[2]) : 20;
    if (argc > 3) steps = atol(argv[3]);
    unsigned slots = argc > 4 ? (unsigned)atoi(argv[4]) : 5000;
    line_t *line = calloc((size_t)threads, sizeof *line);
    pthread_t *t = calloc((size_t)threads, sizeof *t);
    for (int i = 0; i < threads; i++) {
        line_t *l = &line[i];
        l->rng = 0x9E3779B97F4A7C15ull * (uint64_t)(i + 1);
        l->slots = slots;
        l->left = gens - 1;
        l->slot = malloc(slots * sizeof *l->slot);
        for (unsigned k = 0; k < slots; k++) l->slot[k] = block(&l->rng);
        pthread_create(&t[i], NULL, generation, l);
    }
    uint64_t sum = 0, bad = 0;
    for (int i = 0; i < threads; i++) {
        pthread_join(t[i], NULL);
        /* the line's last generation is detached: wait for it to finish */
        while (__atomic_load_n(&line[i].slot, __ATOMIC_ACQUIRE)) {
            struct timespec ts = { 0, 1000000 };
            nanosleep(&ts, NULL);
        }
        sum += line[i].sum;
        bad += line[i].bad;
    }
    printf("larson: %d lines of %d generations, %llu damaged blocks, checksum %llu\n",
           threads, gens, (unsigned long long)bad, (unsigned long long)sum);
    free(line);
    free(t);
    return 0;
}
