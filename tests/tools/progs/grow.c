/* grow.c - a program that grows, then frees: 64 blocks of 1 MiB, touched,
 * then all freed.  After each phase it waits (up to 20 s) until its own RSS
 * log (MEMSHIM_RSS_LOG, %p expanded) holds a sample taken after the phase,
 * so the log shows both states however slowly the machine runs.  Exits 0
 * when both were seen, 1 otherwise. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static char path[4096];

/* The largest heap_in_use of samples after the first `skip` ones, and how
 * many samples the log holds. */
static unsigned long long scan(unsigned *count, unsigned skip, unsigned long long *last)
{
    FILE *f = fopen(path, "r");
    char line[512];
    unsigned long long max = 0, t, rss, peak, heap, mapped;
    *count = 0;
    *last = 0;
    if (!f) return 0;
    while (fgets(line, sizeof line, f))
        if (line[0] != '#' && sscanf(line, "%llu %llu %llu %llu %llu", &t, &rss, &peak, &heap, &mapped) == 5) {
            if (++*count > skip && heap > max) max = heap;
            *last = heap;
        }
    fclose(f);
    return max;
}

static int wait_for(int (*ok)(unsigned long long max, unsigned long long last), unsigned skip)
{
    for (int i = 0; i < 2000; i++) {
        unsigned n;
        unsigned long long last, max = scan(&n, skip, &last);
        if (n > skip + 1 && ok(max, last)) return 1;
        struct timespec ts = { 0, 10000000 };
        nanosleep(&ts, NULL);
    }
    return 0;
}

static int grown(unsigned long long max, unsigned long long last) { (void)last; return max >= 64ull << 20; }
static int shrunk(unsigned long long max, unsigned long long last) { (void)max; return last < 8ull << 20; }

int main(void)
{
    const char *pat = getenv("MEMSHIM_RSS_LOG");
    if (!pat) { fprintf(stderr, "grow: MEMSHIM_RSS_LOG not set\n"); return 2; }
    const char *p = strstr(pat, "%p");
    if (p) snprintf(path, sizeof path, "%.*s%d%s", (int)(p - pat), pat, (int)getpid(), p + 2);
    else snprintf(path, sizeof path, "%s", pat);
    char *blocks[64];
    for (int i = 0; i < 64; i++) { blocks[i] = malloc(1 << 20); memset(blocks[i], i, 1 << 20); }
    unsigned n;
    unsigned long long last;
    scan(&n, 0, &last);
    if (!wait_for(grown, 0)) { fprintf(stderr, "grow: the log never showed the growth\n"); return 1; }
    scan(&n, 0, &last);
    for (int i = 0; i < 64; i++) free(blocks[i]);
    if (!wait_for(shrunk, n)) { fprintf(stderr, "grow: the log never showed the frees\n"); return 1; }
    return 0;
}
