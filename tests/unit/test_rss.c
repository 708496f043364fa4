/* test_rss.c - memshim_rss(): its figures against /proc/self/status, the
 * arithmetic of mapping and touching a known amount, and that it neither
 * allocates nor disturbs errno. */
#include <criterion/criterion.h>
#include <errno.h>
#include <malloc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include "shim.h"
#include "memshim.h"

static void setup(void) { _ms_init(); free(malloc(1)); }
TestSuite(rss, .init = setup);

#define MiB ((size_t)1 << 20)

/* A "Key: N kB" field of /proc/self/status, in bytes, read with stdio. */
static size_t status_field(const char *key)
{
    FILE *f = fopen("/proc/self/status", "r");
    cr_assert_not_null(f);
    char line[256];
    size_t v = 0, klen = strlen(key);
    while (fgets(line, sizeof line, f))
        if (strncmp(line, key, klen) == 0 && line[klen] == ':') { v = strtoull(line + klen + 1, NULL, 10) * 1024; break; }
    fclose(f);
    return v;
}

/* v lies within [lo - slack, hi + slack]. */
#define cr_assert_between(v, lo, hi, slack, what) \
    cr_assert((v) + (slack) >= (lo) && (v) <= (hi) + (slack), "%s: %zu not in [%zu, %zu] +- %zu", \
              what, (size_t)(v), (size_t)(lo), (size_t)(hi), (size_t)(slack))

Test(rss, agrees_with_proc_self_status)
{
    size_t rss0 = status_field("VmRSS"), vms0 = status_field("VmSize"), hwm0 = status_field("VmHWM");
    struct memshim_rss r;
    cr_assert_eq(memshim_rss(&r), 0);
    size_t rss1 = status_field("VmRSS"), vms1 = status_field("VmSize"), hwm1 = status_field("VmHWM");
    size_t lo, hi;
    lo = rss0 < rss1 ? rss0 : rss1; hi = rss0 < rss1 ? rss1 : rss0;
    cr_assert_between(r.rss, lo, hi, 256 << 10, "rss");
    lo = vms0 < vms1 ? vms0 : vms1; hi = vms0 < vms1 ? vms1 : vms0;
    cr_assert_between(r.vms, lo, hi, 1 << 20, "vms");
    cr_assert_between(r.peak_rss, hwm0, hwm1, 256 << 10, "peak_rss");
    cr_assert_geq(r.peak_rss, r.rss);
    cr_assert_between(r.text, status_field("VmExe"), status_field("VmExe"), 0, "text");
    cr_assert_gt(r.data, 0);
    cr_assert_gt(r.shared, 0);                      /* libc's pages at least */
    cr_assert_leq(r.shared, r.rss + (256 << 10));
    /* memory_full_info: private pages <= proportional share <= resident */
    cr_assert_gt(r.uss, 0);
    cr_assert_leq(r.uss, r.pss + (64 << 10));
    cr_assert_leq(r.pss, r.rss + (256 << 10));
}

Test(rss, counts_what_is_mapped_and_touched)
{
    const size_t n = 64 * MiB;
    struct memshim_rss a, b, c, d;
    cr_assert_eq(memshim_rss(&a), 0);
    char *p = mmap(NULL, n, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    cr_assert_neq(p, MAP_FAILED);
    cr_assert_eq(memshim_rss(&b), 0);
    cr_assert_geq(b.vms, a.vms + n, "mapping 64 MiB adds 64 MiB of virtual memory");
    cr_assert_lt(b.rss, a.rss + 8 * MiB, "untouched pages are not resident");
    memset(p, 1, n);
    cr_assert_eq(memshim_rss(&c), 0);
    cr_assert_geq(c.rss, a.rss + n - 4 * MiB, "touching 64 MiB makes it resident (%zu -> %zu)", a.rss, c.rss);
    cr_assert_geq(c.uss, a.uss + n - 4 * MiB, "and private to the process");
    cr_assert_geq(c.pss, a.pss + n - 4 * MiB);
    cr_assert_geq(c.peak_rss, c.rss);
    munmap(p, n);
    cr_assert_eq(memshim_rss(&d), 0);
    cr_assert_leq(d.rss + n - 4 * MiB, c.rss, "unmapping gives it back");
    cr_assert_geq(d.peak_rss, c.rss - MiB, "the peak remembers it");
}

Test(rss, counts_a_huge_malloc)
{
    const size_t n = 48 * MiB;
    struct memshim_rss a, b, c;
    memshim_rss(&a);
    char *volatile p = malloc(n);
    cr_assert_not_null(p);
    memset(p, 7, n);
    memshim_rss(&b);
    cr_assert_geq(b.rss, a.rss + n - 4 * MiB);
    free(p);                       /* kept for reuse (MEMSHIM_DECAY) ... */
    malloc_trim(0);                /* ... until given back */
    memshim_rss(&c);
    cr_assert_leq(c.rss + n - 4 * MiB, b.rss);
}

Test(rss, allocates_nothing_and_keeps_errno)
{
    ms_stats_t before, after;
    _ms_stats_collect(&before);
    uint64_t out0 = __atomic_load_n(&_ms_heap_out, __ATOMIC_RELAXED);
    struct memshim_rss r;
    for (int i = 0; i < 200; i++) {
        errno = 1234;
        cr_assert_eq(memshim_rss(&r), 0);
        cr_assert_eq(errno, 1234);
    }
    uint64_t out1 = __atomic_load_n(&_ms_heap_out, __ATOMIC_RELAXED);
    _ms_stats_collect(&after);
    uint64_t a0 = 0, a1 = 0;
    for (unsigned c = 0; c < MS_NCLASSES; c++) { a0 += before.cls[c].allocs; a1 += after.cls[c].allocs; }
    cr_assert_eq(a1, a0, "memshim_rss allocated (%llu allocations)", (unsigned long long)(a1 - a0));
    cr_assert_eq(out1, out0);
    cr_assert_eq(after.huge.blocks, before.huge.blocks);
}

Test(rss, rejects_null)
{
    errno = 0;
    cr_assert_eq(memshim_rss(NULL), -1);
    cr_assert_eq(errno, EINVAL);
}

Test(rss, cheap_read_skips_smaps)
{
    ms_rss_t r;
    cr_assert_eq(_ms_rss_read(&r, false), 0);
    cr_assert_gt(r.rss, 0);
    cr_assert_eq(r.uss, 0);
    cr_assert_eq(r.pss, 0);
}
