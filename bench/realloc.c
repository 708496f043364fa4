/* realloc.c - mixed sizes with realloc growth.
 *
 *   realloc [buffers] [small_live]     defaults: 4000 buffers, 4096 small
 *
 * Grows `buffers` buffers one after another, up to 32 of them alive at once,
 * each to a random final size from 1 KiB to 1 MiB (log-uniform, so most stay
 * small and a few get big).  Half are "strings" that realloc on every append
 * of 8-200 bytes; the other half are "arrays" that double their capacity with
 * realloc when full.  Every appended byte is written.  Between appends the
 * program keeps a ring of `small_live` short-lived small allocations (16 B to
 * 2 KiB) turning over, so the growing buffers keep getting neighbours.  A
 * finished buffer is freed at a random later time.  Prints a checksum. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <math.h>

static uint64_t rng = 0x2545F4914F6CDD1Dull;
static inline uint64_t next(void)
{
    rng ^= rng << 13; rng ^= rng >> 7; rng ^= rng << 17;
    return rng;
}

typedef struct { unsigned char *p; size_t len, cap, target; int string; } buf_t;

#define ACTIVE 32

static void *xrealloc(void *p, size_t n)
{
    void *q = realloc(p, n);
    if (!q) { perror("realloc"); exit(1); }
    return q;
}

static void start(buf_t *b)
{
    double lg = 10.0 + (double)(next() % 10000) / 1000.0;   /* 2^10 .. 2^20 */
    b->target = (size_t)pow(2.0, lg);
    b->string = (int)(next() & 1);
    b->len = 0;
    b->cap = b->string ? 1 : 16;
    b->p = xrealloc(NULL, b->cap);
}

int main(int argc, char **argv)
{
    long nbuf = argc > 1 ? atol(argv[1]) : 4000;
    size_t nsmall = argc > 2 ? (size_t)atol(argv[2]) : 4096;
    void **small = calloc(nsmall, sizeof *small);
    buf_t act[ACTIVE];
    unsigned char *done[64] = { 0 };
    uint64_t sum = 0;
    long finished = 0;
    size_t si = 0;

    for (int i = 0; i < ACTIVE; i++) start(&act[i]);
    while (finished < nbuf) {
        buf_t *b = &act[next() % ACTIVE];
        size_t add = 8 + next() % 193;
        if (b->len + add > b->cap) {
            size_t want = b->string ? b->len + add : b->cap * 2;
            if (want < b->len + add) want = b->len + add;
            b->p = xrealloc(b->p, b->string ? want + 1 : want);
            b->cap = want;
        }
        memset(b->p + b->len, (int)(add & 0xff), add);
        b->len += add;

        /* one small allocation turns over per append */
        free(small[si]);
        size_t n = 16 + (next() % 100 < 90 ? next() % 240 : next() % 2033);
        small[si] = malloc(n);
        memset(small[si], 1, n < 64 ? n : 64);
        si = (si + 1) % nsmall;

        if (b->len >= b->target) {
            sum += b->len + b->p[b->len / 2];
            unsigned d = (unsigned)(next() % 64);      /* free an older one instead */
            free(done[d]);
            done[d] = b->p;
            finished++;
            start(b);
        }
    }
    for (int i = 0; i < ACTIVE; i++) free(act[i].p);
    for (int i = 0; i < 64; i++) free(done[i]);
    for (size_t i = 0; i < nsmall; i++) free(small[i]);
    free(small);
    printf("realloc: buffers=%ld checksum=%016llx\n", nbuf, (unsigned long long)sum);
    return 0;
}
