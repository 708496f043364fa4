/* sampler.c - the workload of bench/sampler.sh, which measures what the RSS
 * sampler (MEMSHIM_RSS_LOG) and the live figures (MEMSHIM_LIVE) cost a busy
 * program: two threads that each run a fixed number of rounds of malloc,
 * touch and free over a live set of 50k blocks of 16 B - 1 KiB, so both CPUs
 * are busy and the sampler has to steal its time.
 * Prints a checksum.
 *
 *   sampler [ROUNDS]      default 3,000,000 per thread */
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define LIVE 50000

static long rounds;

static uint64_t next(uint64_t *s)
{
    *s ^= *s << 13; *s ^= *s >> 7; *s ^= *s << 17;
    return *s;
}

static void *work(void *arg)
{
    uint64_t seed = (uintptr_t)arg * 0x9E3779B97F4A7C15ull + 1, sum = 0;
    unsigned char **live = calloc(LIVE, sizeof *live);
    for (long r = 0; r < rounds; r++) {
        uint64_t x = next(&seed);
        size_t i = x % LIVE;
        size_t n = 16 + (x >> 32) % 1008;
        free(live[i]);
        live[i] = malloc(n);
        memset(live[i], (int)r, n < 64 ? n : 64);
        sum += live[i][0] + n;
    }
    for (size_t i = 0; i < LIVE; i++) free(live[i]);
    free(live);
    return (void *)(uintptr_t)sum;
}

int main(int argc, char **argv)
{
    rounds = argc > 1 ? atol(argv[1]) : 3000000;
    pthread_t t[2];
    uint64_t sum = 0;
    for (uintptr_t i = 0; i < 2; i++) pthread_create(&t[i], NULL, work, (void *)(i + 1));
    for (int i = 0; i < 2; i++) { void *r; pthread_join(t[i], &r); sum += (uintptr_t)r; }
    printf("sampler: rounds=%ld checksum=%016llx\n", rounds, (unsigned long long)sum);
    return 0;
}
