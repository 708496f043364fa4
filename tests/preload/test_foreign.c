/* test_foreign.c - pointers memshim did not hand out.  Those another
 * allocator may have handed out (an anonymous mapping, as the dynamic
 * loader's early blocks are) are tolerated: free ignores them, realloc
 * copies them into a new block and leaves the original alone, and
 * malloc_usable_size says 0.  Nothing may crash or abort.  Pointers that
 * are certainly no block (the stack, globals: test_heap_errors) are heap
 * misuse for free and realloc; malloc_usable_size still says 0 of them. */
#include <criterion/criterion.h>
#include <malloc.h>
#include <sys/mman.h>
#include "memshim.h"
#include "helpers.h"

static unsigned char static_buf[8192] __attribute__((aligned(64)));

Test(foreign, static_buffer_has_no_usable_size)
{
    h_fill(static_buf, sizeof static_buf, 11);
    const size_t offs[] = { 0, 16, 64, 1, 100, 4096 };
    for (size_t i = 0; i < sizeof offs / sizeof offs[0]; i++) {
        unsigned char *p = static_buf + offs[i];
        cr_assert_eq(v_usable(p), 0, "malloc_usable_size(static + %zu) = %zu", offs[i], v_usable(p));
    }
    cr_assert_eq(h_check(static_buf, sizeof static_buf, 11), (size_t)-1, "the buffer changed");
}

Test(foreign, stack_buffer_has_no_usable_size)
{
    unsigned char buf[512] __attribute__((aligned(16)));
    memset(buf, 0x61, sizeof buf);
    cr_assert_eq(v_usable(buf), 0);
    cr_assert_eq(v_usable(buf + 8), 0);
    for (size_t i = 0; i < sizeof buf; i++) cr_assert_eq(buf[i], 0x61);
}

Test(foreign, mmapped_page)
{
    long pg = sysconf(_SC_PAGESIZE);
    unsigned char *m = mmap(NULL, 2 * pg, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    cr_assert_neq(m, MAP_FAILED);
    cr_assert_eq(munmap(m + pg, pg), 0);      /* the page after is a hole */
    h_fill(m, pg, 21);
    cr_assert_eq(v_usable(m), 0);
    cr_assert_eq(v_usable(m + 48), 0);
    v_free(m);
    v_free(m + 48);
    cr_assert_eq(h_check(m, pg, 21), (size_t)-1, "free of an mmap'd page touched it");

    /* smaller than the page: copied */
    unsigned char *q = v_realloc(m + 96, 200);
    cr_assert_not_null(q);
    cr_assert_eq(memcmp(q, m + 96, 200), 0);
    v_free(q);

    /* larger than what is mapped: the mapped part copied, no fault */
    q = v_realloc(m, 3 * pg);
    cr_assert_not_null(q);
    cr_assert_eq(memcmp(q, m, pg), 0, "realloc did not copy the mapped page");
    cr_assert_geq(v_usable(q), 3 * (size_t)pg);
    memset(q, 0, 3 * pg);
    v_free(q);
    q = v_realloc(m + pg - 64, 1000);          /* straddles into the hole */
    cr_assert_not_null(q);
    cr_assert_eq(memcmp(q, m + pg - 64, 64), 0);
    v_free(q);
    cr_assert_eq(h_check(m, pg, 21), (size_t)-1);
    munmap(m, pg);
}

/* Large private mapping (where huge blocks also live): still foreign. */
Test(foreign, big_mapping_is_not_a_huge_block)
{
    size_t len = 4 * MiB;
    unsigned char *m = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    cr_assert_neq(m, MAP_FAILED);
    memset(m, 0x33, len);
    struct memshim_heap_stats a, b;
    memshim_heap_stats(&a);
    cr_assert_eq(v_usable(m), 0);
    v_free(m);
    memshim_heap_stats(&b);
    cr_assert_eq(a.huge_blocks, b.huge_blocks);
    for (size_t i = 0; i < len; i += 4096) cr_assert_eq(m[i], 0x33, "free(foreign mapping) unmapped or changed it");
    munmap(m, len);
}

/* Foreign pointers mixed with real blocks: the heap stays sound. */
Test(foreign, heap_stays_sound)
{
    void *real[64];
    unsigned char *m = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    cr_assert_neq(m, MAP_FAILED);
    for (int i = 0; i < 64; i++) {
        real[i] = v_malloc((size_t)(i + 1) * 40);
        h_fill(real[i], (size_t)(i + 1) * 40, (uint64_t)i + 500);
        v_free(m + 16 * i);
    }
    for (int i = 0; i < 64; i++) {
        cr_assert_eq(h_check(real[i], (size_t)(i + 1) * 40, (uint64_t)i + 500), (size_t)-1);
        v_free(real[i]);
    }
    void *a = v_malloc(40), *b = v_malloc(40);
    cr_assert_neq(a, b);
    cr_assert(a < (void *)m || a >= (void *)(m + 4096), "a foreign pointer got onto a free list");
    v_free(a);
    v_free(b);
    munmap(m, 4096);
}

/* Interior pointers of huge blocks are not block starts: usable size 0. */
Test(foreign, huge_block_interior_has_no_usable_size)
{
    unsigned char *p = v_malloc(2 * MiB);
    cr_assert_not_null(p);
    cr_assert_geq(v_usable(p), 2 * MiB);
    cr_assert_eq(v_usable(p + 4096), 0);
    cr_assert_eq(v_usable(p + 16), 0);
    v_free(p);
}

/* A program whose executable defines malloc keeps its own allocator (the
 * executable comes before LD_PRELOAD in the symbol search): memshim sees
 * none of its blocks, and says so in one line rather than let a report
 * without leaks read as "no leaks". */
Test(foreign, program_with_its_own_malloc_is_told, .timeout = 60)
{
    h_run_t *r = malloc(sizeof *r);
    h_run_fixture(r, "own_malloc", NULL, NULL, 30);
    cr_assert(WIFEXITED(r->status) && WEXITSTATUS(r->status) == 0, "%s", r->err);
    cr_expect(strstr(r->out, "own allocator"), "%s", r->out);
    cr_expect(strstr(r->err, "memshim: malloc is defined by ") && strstr(r->err, "own_malloc, which comes before memshim"),
              "%s", r->err);
    cr_expect(strchr(r->err, '\n') == strrchr(r->err, '\n'), "one line: %s", r->err);
    free(r);
}

/* The same when each function of that allocator has other names at its
 * address (Chromium's and tcmalloc's malloc is their __libc_malloc too):
 * dladdr gives any of them.  Compared by name, such a program drew no
 * word, and its report of no leaks read as one (Chromium's crash handler
 * was said to define free, its malloc passed over). */
Test(foreign, program_with_its_own_malloc_under_other_names_is_told, .timeout = 60)
{
    h_run_t *r = malloc(sizeof *r);
    h_run_fixture(r, "own_malloc_alias", NULL, NULL, 30);
    cr_assert(WIFEXITED(r->status) && WEXITSTATUS(r->status) == 0, "%s", r->err);
    cr_expect(strstr(r->out, "own allocator"), "%s", r->out);
    cr_expect(strstr(r->err, "memshim: malloc is defined by ") &&
              strstr(r->err, "own_malloc_alias, which comes before memshim"), "%s", r->err);
    cr_expect(strchr(r->err, '\n') == strrchr(r->err, '\n'), "one line: %s", r->err);
    free(r);
}
