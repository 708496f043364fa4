/* simple.c - one thread allocating a few blocks of one size and freeing them
 * all, over and over, as glibc's bench-malloc-simple (mimalloc-bench's
 * glibc-simple) does: the allocator's fast path and nothing else.
 *
 *   simple [rounds]      default 400
 *
 * Each round goes through sizes 16 B to 1 KiB (powers of two) and batches of
 * 25, 100, 400 and 1600 blocks: a batch is allocated (each block's first
 * and last byte written), then freed in the order it was allocated.  Prints
 * a checksum of what was written and read back. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#define MOST 1600

int main(int argc, char **argv)
{
    long rounds = argc > 1 ? atol(argv[1]) : 400;
    static unsigned char *b[MOST];
    static const int batch[] = { 25, 100, 400, 1600 };
    uint64_t sum = 0;
    for (long r = 0; r < rounds; r++)
        for (size_t size = 16; size <= 1024; size *= 2)
            for (unsigned k = 0; k < sizeof batch / sizeof batch[0]; k++) {
                int n = batch[k];
                for (int i = 0; i < n; i++) {
                    b[i] = malloc(size);
                    if (!b[i]) { perror("malloc"); return 1; }
                    b[i][0] = (unsigned char)i;
                    b[i][size - 1] = (unsigned char)size;
                }
                for (int i = 0; i < n; i++) {
                    sum += b[i][0] + b[i][size - 1];
                    free(b[i]);
                }
            }
    printf("simple: %ld rounds, checksum %llu\n", rounds, (unsigned long long)sum);
    return 0;
}
