/* spike.c - a peak of memory freed in random order, then a program that
 * goes on running on a little: what stays resident after the spike.
 *
 *   spike [size] [seconds]      defaults: 48 bytes, 2 s
 *
 * Allocates 100 MiB in blocks of `size` bytes (each written), frees them
 * all in random order, then for `seconds` keeps a ring of 256 small blocks
 * (16-216 B) turning over, as a server back to its steady load does.
 * Prints its resident set (from /proc/self/statm) at the peak and after,
 * in KiB, the pointer array it kept for the peak (8 bytes a block) left
 * out of "after": it is freed before that figure is taken. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static long resident_kib(void)
{
    long size = 0, resident = 0;
    FILE *f = fopen("/proc/self/statm", "r");
    if (!f) return -1;
    if (fscanf(f, "%ld %ld", &size, &resident) != 2) resident = -1;
    fclose(f);
    return resident < 0 ? -1 : resident * 4;
}

static double now_s(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

int main(int argc, char **argv)
{
    size_t size = argc > 1 ? (size_t)atol(argv[1]) : 48;
    double seconds = argc > 2 ? atof(argv[2]) : 2.0;
    if (size == 0) size = 1;
    size_t n = ((size_t)100 << 20) / size;
    void **v = malloc(n * sizeof *v);
    if (!v) { perror("malloc"); return 1; }
    for (size_t i = 0; i < n; i++) {
        if (!(v[i] = malloc(size))) { perror("malloc"); return 1; }
        memset(v[i], 1, size);
    }
    uint64_t r = 0x2545F4914F6CDD1Dull;
    for (size_t i = n - 1; i > 0; i--) {
        r ^= r << 13; r ^= r >> 7; r ^= r << 17;
        size_t j = (size_t)(r % (i + 1));
        void *t = v[i]; v[i] = v[j]; v[j] = t;
    }
    long peak = resident_kib();
    for (size_t i = 0; i < n; i++) free(v[i]);
    free(v);

    void *ring[256] = { 0 };
    uint64_t k = 0;
    double start = now_s();
    do {
        for (int j = 0; j < 100000; j++, k++) {
            free(ring[k & 255]);
            size_t m = 16 + (size_t)(k * 7 % 201);
            unsigned char *p = malloc(m);
            if (!p) { perror("malloc"); return 1; }
            p[0] = (unsigned char)k;
            ring[k & 255] = p;
        }
    } while (now_s() - start < seconds);
    long after = resident_kib();
    for (int j = 0; j < 256; j++) free(ring[j]);
    printf("peak_kib %ld\nafter_kib %ld\n", peak, after);
    fprintf(stderr, "spike: %zu blocks of %zu bytes, then %llu allocations\n", n, size, (unsigned long long)k);
    return 0;
}
