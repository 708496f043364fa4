/* test_mallinfo.c - glibc's questions about the heap (mallinfo2, mallinfo,
 * malloc_stats, malloc_info, mallopt) answered from memshim's figures, in
 * this process (linked with -lmemshim): glibc's own answers would be about
 * a heap it does not hold. */
#include <criterion/criterion.h>
#include <malloc.h>
#include <pthread.h>
#include <stdlib.h>
#include <unistd.h>
#include "memshim.h"
#include "helpers.h"

Test(mallinfo, mallinfo2_follows_a_huge_block_and_a_mebibyte_of_small_ones)
{
    struct mallinfo2 a = mallinfo2();
    void *big = v_malloc(MiB);
    memset(big, 1, MiB);
    struct mallinfo2 b = mallinfo2();
    cr_expect_eq(b.hblks, a.hblks + 1, "hblks %zu -> %zu", a.hblks, b.hblks);
    cr_expect_geq(b.hblkhd, a.hblkhd + MiB, "hblkhd %zu -> %zu", a.hblkhd, b.hblkhd);
    v_free(big);
    struct mallinfo2 c = mallinfo2();
    cr_expect_eq(c.hblks, a.hblks);
    cr_expect_eq(c.hblkhd, a.hblkhd);

    enum { N = 1024 };
    static void *blk[N];
    for (int i = 0; i < N; i++) blk[i] = v_malloc(1024);
    struct mallinfo2 d = mallinfo2();
    cr_expect_geq(d.uordblks, c.uordblks + MiB, "uordblks %zu -> %zu", c.uordblks, d.uordblks);
    cr_expect_geq(d.arena, d.uordblks + d.fordblks, "arena %zu < in use %zu + free %zu", d.arena, d.uordblks,
                  d.fordblks);
    cr_expect_geq(d.arena, c.arena);
    for (int i = 0; i < N; i++) v_free(blk[i]);
    struct mallinfo2 e = mallinfo2();
    cr_expect_leq(e.uordblks + MiB, d.uordblks, "uordblks %zu -> %zu after freeing", d.uordblks, e.uordblks);
    /* freed blocks are free in the pools, or their emptied pages went back
     * to the segments (the pools shrank by as much) */
    cr_expect_geq(e.fordblks + (d.uordblks + d.fordblks - e.uordblks - e.fordblks), d.fordblks + MiB,
                  "fordblks %zu -> %zu after freeing", d.fordblks, e.fordblks);
    cr_expect_geq(e.ordblks, e.smblks, "free blocks %zu, of which cached %zu", e.ordblks, e.smblks);
    cr_expect_leq(e.fsmblks, e.fordblks);
    cr_expect_eq(e.usmblks, 0);
    cr_expect_leq(e.keepcost, e.arena + e.hblkhd + 16 * MiB);

    /* the same figures as memshim's own statistics (taken between two equal
     * mallinfo2 calls: nothing allocated meanwhile) */
    struct memshim_heap_stats st;
    struct mallinfo2 f, g;
    for (int tries = 0; tries < 20; tries++) {
        f = mallinfo2();
        cr_assert_eq(memshim_heap_stats(&st), 0);
        g = mallinfo2();
        if (!memcmp(&f, &g, sizeof f)) break;
    }
    cr_expect_eq(f.uordblks, st.small_bytes_in_use);
    cr_expect_eq(f.uordblks + f.fordblks, st.small_bytes_pooled);
    cr_expect_eq(f.hblks, st.huge_blocks);
    cr_expect_eq(f.hblkhd, st.huge_bytes);
}

Test(mallinfo, mallinfo_is_mallinfo2_in_ints)
{
    void *p = v_malloc(3 * MiB);
    struct mallinfo2 m2 = mallinfo2();
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wdeprecated-declarations"
    struct mallinfo m = mallinfo();
#pragma GCC diagnostic pop
    cr_expect_eq((size_t)m.hblks, m2.hblks);
    cr_expect_eq((size_t)m.hblkhd, m2.hblkhd);
    cr_expect_eq((size_t)m.arena, m2.arena);
    cr_expect_geq(m.hblkhd, 3 * (int)MiB);
    v_free(p);
}

static int child_malloc_stats(void *arg)
{
    (void)arg;
    malloc_stats();
    return 0;
}

Test(mallinfo, malloc_stats_prints_memshims_table_on_stderr)
{
    h_run_t *r = malloc(sizeof *r);
    h_fork_run(r, child_malloc_stats, NULL, 30);
    cr_expect(WIFEXITED(r->status) && WEXITSTATUS(r->status) == 0, "status %#x", r->status);
    cr_expect(strstr(r->err, "memshim: heap statistics (pid ") && strstr(r->err, "\nheap: in use "),
              "%s", r->err);
    cr_expect_null(strstr(r->err, "Arena 0:"), "glibc's table:\n%s", r->err);
    cr_expect_eq(r->out[0], 0, "stdout: %s", r->out);
    free(r);
}

/* Written to a memory stream, which grows through malloc and realloc while
 * malloc_info writes: memshim must hold none of its locks meanwhile. */
Test(mallinfo, malloc_info_writes_memshims_figures_as_glibcs_xml)
{
    void *big = v_malloc(2 * MiB), *small = v_malloc(100);
    char *xml = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&xml, &len);
    cr_assert_not_null(f);
    cr_expect_eq(malloc_info(0, f), 0);
    fclose(f);
    cr_assert_not_null(xml);
    cr_expect_eq(strncmp(xml, "<malloc version=\"1\" allocator=\"memshim\"", 39), 0, "%s", xml);
    cr_expect(len > 10 && strcmp(xml + len - 10, "</malloc>\n") == 0, "%s", xml);
    struct memshim_heap_stats st;
    memshim_heap_stats(&st);
    char want[128];
    snprintf(want, sizeof want, "<total type=\"mmap\" count=\"%zu\" size=\"%zu\"/>", st.huge_blocks, st.huge_bytes);
    cr_expect(strstr(xml, want), "no %s in\n%s", want, xml);
    cr_expect(strstr(xml, "<size from=\"97\" to=\"112\" total=\""), "the 112-byte class:\n%s", xml);
    int opens = 0, closes = 0;
    for (const char *p = xml; (p = strchr(p, '<')); p++) p[1] == '/' ? closes++ : opens++;
    int empty = 0;
    for (const char *p = xml; (p = strstr(p, "/>")); p++) empty++;
    cr_expect_eq(opens, closes + empty, "unbalanced XML:\n%s", xml);
    free(xml);
    f = open_memstream(&xml, &len);
    errno = 0;
    cr_expect_eq(malloc_info(1, f), EINVAL, "options other than 0: glibc returns EINVAL itself");
    cr_expect_eq(errno, 0, "and leaves errno as it was");
    fclose(f);
    free(xml);
    v_free(big);
    v_free(small);
}

Test(mallinfo, mallopt_accepts_glibcs_parameters_and_nothing_else)
{
    cr_expect_eq(mallopt(M_MMAP_THRESHOLD, 1 << 20), 1);
    cr_expect_eq(mallopt(M_TRIM_THRESHOLD, 1 << 20), 1);
    cr_expect_eq(mallopt(M_ARENA_MAX, 2), 1);
    cr_expect_eq(mallopt(M_PERTURB, 0), 1);
    cr_expect_eq(mallopt(M_MXFAST, 64), 1);
    cr_expect_eq(mallopt(M_MXFAST, 100000), 0, "glibc refuses fastbins that large");
    cr_expect_eq(mallopt(M_MMAP_THRESHOLD, 1 << 30), 1, "glibc (2.35 and later) takes any threshold");
    cr_expect_eq(mallopt(M_MMAP_THRESHOLD, -1), 1);
    cr_expect_eq(mallopt(12345, 0), 0, "not a parameter");
    void *p = v_malloc(100);                    /* and nothing changed */
    cr_expect_eq(v_usable(p), 100);             /* tracked: the bytes asked for */
    v_free(p);
}

/* malloc_stats writes its whole table even from a thread with a cancel
 * pending (glibc's tst-malloc-stats-cancellation): the thread is cancelled
 * after it, not in memshim's first write (nothing was written). */
static void *stats_cancelled(void *arg)
{
    (void)arg;
    pthread_setcanceltype(PTHREAD_CANCEL_DEFERRED, NULL);
    pthread_cancel(pthread_self());
    malloc_stats();
    pthread_testcancel();
    return NULL;
}

Test(mallinfo, malloc_stats_is_written_whole_with_a_cancel_pending)
{
    char path[] = "/tmp/msstatsXXXXXX";
    int fd = mkstemp(path);
    cr_assert_geq(fd, 0);
    fflush(stderr);
    int saved = dup(2);
    dup2(fd, 2);
    pthread_t t;
    void *res = NULL;
    cr_assert_eq(pthread_create(&t, NULL, stats_cancelled, NULL), 0);
    pthread_join(t, &res);
    dup2(saved, 2);
    close(saved);
    off_t len = lseek(fd, 0, SEEK_END);
    close(fd);
    unlink(path);
    cr_expect_eq(res, PTHREAD_CANCELED);
    cr_expect_gt(len, 100, "malloc_stats wrote %lld bytes", (long long)len);
}

/* malloc_trim says 1 when memory went back to the system and 0 when there
 * was none to give, as glibc's does (it said 1 every time).  The second
 * call may find a page another thread (Criterion's) freed meanwhile: it is
 * asked again, a few times. */
Test(mallinfo, malloc_trim_says_whether_memory_went_back)
{
    void *big = v_malloc(8 * MiB);
    memset(big, 1, 8 * MiB);
    v_free(big);                                   /* a cached mapping, resident */
    cr_expect_eq(malloc_trim(0), 1);
    int again = 1;
    for (int i = 0; i < 5 && again; i++) again = malloc_trim(0);
    cr_expect_eq(again, 0, "nothing left to give back, and malloc_trim still said 1");
}
