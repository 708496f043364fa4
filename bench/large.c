/* large.c - big buffers allocated and freed in turn, as mimalloc-bench's
 * malloc-large does: a table of 20 buffers, each round replaces a random one
 * with a new buffer of 5 to 25 MiB, zeroed as `new char[n]()` zeroes it.
 *
 *   large [rounds]      default 500
 *
 * The new buffer is allocated before the old one is freed (a smart pointer's
 * assignment), so some 20 buffers (~300 MiB) stay live.  What it measures is
 * whether freed big mappings are reused or mapped and faulted in afresh.
 * Prints a checksum so that a broken allocator is noticed. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define NBUF 20
#define MIN_SIZE ((size_t)5 << 20)
#define MAX_SIZE ((size_t)25 << 20)

static uint64_t rng = 0x9E3779B97F4A7C15ull;
static uint64_t next(void)
{
    rng ^= rng << 13; rng ^= rng >> 7; rng ^= rng << 17;
    return rng;
}

/* Called through a volatile pointer: gcc would fold malloc + memset(0) into
 * calloc, which a fresh mapping answers without touching a page. */
static void *(*volatile alloc)(size_t) = malloc;

int main(int argc, char **argv)
{
    long rounds = argc > 1 ? atol(argv[1]) : 500;
    unsigned char *buf[NBUF] = { 0 };
    size_t len[NBUF] = { 0 };
    uint64_t sum = 0;
    for (long r = 0; r < rounds; r++) {
        unsigned i = (unsigned)(next() % NBUF);
        size_t n = MIN_SIZE + next() % (MAX_SIZE - MIN_SIZE + 1);
        unsigned char *p = alloc(n);
        if (!p) { perror("malloc"); return 1; }
        memset(p, 0, n);
        p[n / 2] = (unsigned char)r;
        if (buf[i]) sum += buf[i][len[i] / 2] + buf[i][len[i] - 1];
        free(buf[i]);
        buf[i] = p;
        len[i] = n;
    }
    for (unsigned i = 0; i < NBUF; i++) free(buf[i]);
    printf("large: %ld rounds, checksum %llu\n", rounds, (unsigned long long)sum);
    return 0;
}
