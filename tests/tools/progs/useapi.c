/* useapi.c - a program built against an installed memshim with
 * `pkg-config --cflags --libs memshim`: calls the API and prints the figures. */
#include <memshim.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int main(void)
{
    struct memshim_rss r;
    if (memshim_rss(&r) != 0 || r.rss == 0 || r.peak_rss < r.rss) { puts("memshim_rss failed"); return 1; }
    char *p = malloc(100000);
    memset(p, 1, 100000);
    struct memshim_heap_stats h;
    if (memshim_heap_stats(&h) != 0 || h.small_bytes_in_use < 100000) { puts("memshim_heap_stats failed"); return 1; }
    printf("memshim %s rss %zu\n", memshim_version(), r.rss);
    free(p);
    return strcmp(memshim_version(), MEMSHIM_VERSION) != 0;
}
