/* churn.c - small-object churn: malloc/free of 16-256 byte blocks around a
 * live set.
 *
 *   churn [rounds] [live]      defaults: 2000000 rounds, live set of 200000
 *
 * A table of `live` slots is filled, then each round replaces one random slot
 * (free the old block, malloc a new one of a random size) and allocates and
 * frees a few short-lived temporaries in LIFO order, the way a parser or an
 * interpreter does.  Every eighth round frees and refills a run of 64
 * neighbouring slots (a burst of deaths of objects born together).  Sizes are
 * skewed towards the small end: 60% 16-64 B, 30% 65-128 B, 10% 129-256 B.
 * Every block is written, so the allocator's placement shows in the timing.
 * Prints a checksum so that a broken allocator is noticed. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static uint64_t rng = 0x9E3779B97F4A7C15ull;
static inline uint64_t next(void)
{
    rng ^= rng << 13; rng ^= rng >> 7; rng ^= rng << 17;
    return rng;
}

static inline size_t small_size(void)
{
    uint64_t r = next();
    unsigned pick = (unsigned)(r % 10);
    r >>= 8;
    if (pick < 6) return 16 + r % 49;        /* 16..64 */
    if (pick < 9) return 65 + r % 64;        /* 65..128 */
    return 129 + r % 128;                    /* 129..256 */
}

static inline void *fill(size_t n, uint64_t tag)
{
    unsigned char *p = malloc(n);
    if (!p) { perror("malloc"); exit(1); }
    memcpy(p, &tag, sizeof tag);             /* every size here is >= 16 */
    p[n - 1] = (unsigned char)tag;
    return p;
}

int main(int argc, char **argv)
{
    long rounds = argc > 1 ? atol(argv[1]) : 2000000;
    size_t live = argc > 2 ? (size_t)atol(argv[2]) : 200000;
    if (live < 128) live = 128;
    void **slot = calloc(live, sizeof *slot);
    size_t *len = calloc(live, sizeof *len);
    uint64_t sum = 0;

    for (size_t i = 0; i < live; i++) { len[i] = small_size(); slot[i] = fill(len[i], i); }

    for (long r = 0; r < rounds; r++) {
        size_t i = next() % live;
        sum += *(uint64_t *)slot[i] + ((unsigned char *)slot[i])[len[i] - 1];
        free(slot[i]);
        len[i] = small_size();
        slot[i] = fill(len[i], (uint64_t)r);

        void *tmp[4];
        unsigned nt = 1 + (unsigned)(next() & 3);
        for (unsigned k = 0; k < nt; k++) tmp[k] = fill(small_size(), k);
        for (unsigned k = nt; k-- > 0;) { sum += *(unsigned char *)tmp[k]; free(tmp[k]); }

        if ((r & 7) == 0) {
            size_t base = next() % (live - 64);
            for (size_t k = base; k < base + 64; k++) { sum += *(uint64_t *)slot[k]; free(slot[k]); }
            for (size_t k = base; k < base + 64; k++) { len[k] = small_size(); slot[k] = fill(len[k], k ^ (uint64_t)r); }
        }
    }
    for (size_t i = 0; i < live; i++) { sum += *(uint64_t *)slot[i]; free(slot[i]); }
    free(slot);
    free(len);
    printf("churn: rounds=%ld live=%zu checksum=%016llx\n", rounds, live, (unsigned long long)sum);
    return 0;
}
