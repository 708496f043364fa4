/* hotpath.c - the allocator's fast path and nothing else: N malloc+free
 * pairs of one small size, for instruction counting (bench/callgrind.sh).
 *
 *   hotpath [pairs] [size]     defaults: 1000000 pairs of 32 bytes
 *
 * The pointer goes through a volatile so the compiler cannot drop the pair.
 * callgrind.sh runs this with 0 pairs and with N pairs and divides the
 * difference by N, which cancels start-up (the loader, the allocator's own
 * initialisation, the first refill) and leaves the steady-state cost of one
 * malloc plus one free, plus the few instructions of this loop. */
#include <stdio.h>
#include <stdlib.h>

int main(int argc, char **argv)
{
    long pairs = argc > 1 ? atol(argv[1]) : 1000000;
    size_t size = argc > 2 ? (size_t)atol(argv[2]) : 32;
    void *volatile sink;
    sink = malloc(size);                /* warm-up: the first call initialises */
    free(sink);
    for (long i = 0; i < pairs; i++) {
        sink = malloc(size);
        free(sink);
    }
    (void)sink;
    return 0;
}
