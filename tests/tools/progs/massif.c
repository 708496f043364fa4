/* massif.c - two allocation sites growing in turn, for the RSS log's top
 * sites and `memshim plot`'s stacked areas (issue 13: 5):
 *   grow_a() 20 x 100,000 bytes (2,000,000), then grow_b() 30 x 100,000
 *   bytes (3,000,000: the heap's peak, 5,000,000), then a's blocks freed,
 *   then b's.
 * After each phase it waits (up to 20 s) until its RSS log (MEMSHIM_RSS_LOG,
 * %p expanded) holds a "# sites" line showing it, so the log has every
 * state however slowly the machine runs.  It reads the log with read(2)
 * into a static buffer: no allocation but the known ones.  Exits 0 when
 * every state was seen, 1 otherwise. */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define NOINLINE __attribute__((noinline))
static char path[4096], log_text[1 << 22];
static void *a[20], *b[30];

NOINLINE void *grow_a(void) { return malloc(100000); }
NOINLINE void *grow_b(void) { return malloc(100000); }

/* The totals of the "# sites" lines after the first `skip`: whether one is
 * within [lo, hi]; *count: how many there are. */
static int seen(unsigned skip, unsigned long long lo, unsigned long long hi, unsigned *count)
{
    int fd = open(path, O_RDONLY), hit = 0;
    *count = 0;
    if (fd < 0) return 0;
    ssize_t n, len = 0;
    while (len < (ssize_t)sizeof log_text - 1 && (n = read(fd, log_text + len, sizeof log_text - 1 - len)) > 0)
        len += n;
    close(fd);
    log_text[len] = 0;
    for (char *p = log_text; (p = strstr(p, "# sites ")); p++) {
        unsigned long long t, total;
        if (sscanf(p, "# sites %llu %llu", &t, &total) == 2 && ++*count > skip && total >= lo && total <= hi)
            hit = 1;
    }
    return hit;
}

static int wait_for(unsigned long long lo, unsigned long long hi)
{
    unsigned skip;
    seen(0, 0, 0, &skip);
    for (int i = 0; i < 2000; i++) {
        unsigned n;
        if (seen(skip, lo, hi, &n)) return 1;
        struct timespec ts = { 0, 10000000 };
        nanosleep(&ts, NULL);
    }
    fprintf(stderr, "massif: the log never showed a heap of %llu to %llu bytes\n", lo, hi);
    return 0;
}

int main(void)
{
    const char *pat = getenv("MEMSHIM_RSS_LOG");
    if (!pat) { fprintf(stderr, "massif: MEMSHIM_RSS_LOG not set\n"); return 2; }
    const char *p = strstr(pat, "%p");
    if (p) snprintf(path, sizeof path, "%.*s%d%s", (int)(p - pat), pat, (int)getpid(), p + 2);
    else snprintf(path, sizeof path, "%s", pat);
    for (int i = 0; i < 20; i++) a[i] = grow_a();
    if (!wait_for(2000000, 2099999)) return 1;
    for (int i = 0; i < 30; i++) b[i] = grow_b();
    if (!wait_for(5000000, 5099999)) return 1;
    for (int i = 0; i < 20; i++) free(a[i]);
    if (!wait_for(3000000, 3099999)) return 1;
    for (int i = 0; i < 30; i++) free(b[i]);
    if (!wait_for(0, 99999)) return 1;
    return 0;
}
