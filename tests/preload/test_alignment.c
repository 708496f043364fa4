/* test_alignment.c - every size class and every requested alignment: blocks
 * are aligned, at least as large as asked, writable, and disjoint (all of a
 * round are kept live, filled with distinct patterns, then checked). */
#include <criterion/criterion.h>
#include <malloc.h>
#include <stdint.h>
#include "memshim.h"
#include "helpers.h"

typedef struct { unsigned char *p; size_t n, usable; uint64_t seed; } blk_t;

static int by_addr(const void *a, const void *b)
{
    uintptr_t x = (uintptr_t)((const blk_t *)a)->p, y = (uintptr_t)((const blk_t *)b)->p;
    return x < y ? -1 : x > y;
}

/* Fill each block's whole usable area, then verify all and check no two
 * blocks' usable areas overlap. */
static void check_round(blk_t *b, size_t nb, const char *what)
{
    for (size_t i = 0; i < nb; i++) h_fill(b[i].p, b[i].usable, b[i].seed);
    for (size_t i = 0; i < nb; i++) {
        size_t bad = h_check(b[i].p, b[i].usable, b[i].seed);
        cr_assert_eq(bad, (size_t)-1, "%s: block of %zu bytes at %p overwritten at offset %zu",
                     what, b[i].n, (void *)b[i].p, bad);
    }
    qsort(b, nb, sizeof *b, by_addr);
    for (size_t i = 1; i < nb; i++)
        cr_assert_leq((uintptr_t)b[i - 1].p + b[i - 1].usable, (uintptr_t)b[i].p,
                      "%s: blocks %p (+%zu) and %p overlap", what, (void *)b[i - 1].p,
                      b[i - 1].usable, (void *)b[i].p);
}

/* The request sizes: 0..2048 one by one, then each class boundary and its
 * neighbours up to 512 KiB, then huge sizes up to 600 KiB and a few above. */
static size_t make_sizes(size_t *out)
{
    size_t n = 0;
    for (size_t s = 0; s <= 2048; s++) out[n++] = s;
    for (unsigned c = 0; c < h_nclasses(); c++) {
        size_t b = h_class_size(c);
        if (b <= 2048) continue;
        out[n++] = b - 1;
        out[n++] = b;
        out[n++] = b + 1;
        out[n++] = b - b / 8 + 3;              /* inside the class */
    }
    for (size_t s = MS_MAX_SMALL_BYTES + 4096; s <= 600 * KiB; s += 20 * KiB + 1) out[n++] = s;
    out[n++] = 600 * KiB;
    return n;
}

/* With tracking (as this test runs), malloc_usable_size offers the bytes
 * asked for, no more, as valgrind and AddressSanitizer do: the leak scan
 * reads only those, so a pointer kept beyond them would be unseen.  (The
 * class each size gets: unit test pool/every_size_gets_its_class_block.) */
Test(classes, every_size_offers_the_bytes_asked_for)
{
    static size_t sizes[4096];
    size_t ns = make_sizes(sizes);
    for (size_t i = 0; i < ns; i++) {
        size_t n = sizes[i];
        void *p = v_malloc(n);
        cr_assert_not_null(p, "malloc(%zu)", n);
        cr_assert_eq((uintptr_t)p % 16, 0, "malloc(%zu) = %p not 16-aligned", n, p);
        cr_assert_eq(v_usable(p), n, "malloc(%zu): usable %zu", n, v_usable(p));
        p = v_realloc(p, n + 40);
        cr_assert_eq(v_usable(p), n + 40, "realloc to %zu: usable %zu", n + 40, v_usable(p));
        v_free(p);
    }
}

Test(classes, all_sizes_live_at_once_are_disjoint)
{
    static size_t sizes[4096];
    static blk_t blocks[4096];
    size_t ns = make_sizes(sizes);
    for (size_t i = 0; i < ns; i++) {
        blk_t *b = &blocks[i];
        b->n = sizes[i];
        b->p = (i & 1) ? v_calloc(1, b->n) : v_malloc(b->n);
        cr_assert_not_null(b->p, "allocating %zu", b->n);
        cr_assert_eq((uintptr_t)b->p % 16, 0, "%zu bytes at %p", b->n, (void *)b->p);
        if (i & 1) cr_assert(h_all_zero(b->p, b->n), "calloc(1, %zu) not zeroed", b->n);
        b->usable = v_usable(b->p);
        cr_assert_geq(b->usable, b->n);
        b->seed = i + 1;
    }
    check_round(blocks, ns, "malloc/calloc");
    for (size_t i = 0; i < ns; i++) v_free(blocks[i].p);
}

/* Each power-of-two alignment from 2 to 1 MiB, several sizes, through
 * posix_memalign, aligned_alloc and memalign (and valloc for 4096). */
Test(alignment, every_power_of_two_with_several_sizes)
{
    static blk_t blocks[256];
    for (size_t align = 2; align <= MiB; align *= 2) {
        const size_t sizes[] = { 0, 1, 8, 15, 16, 17, 24, 100, align - 1, align, align + 1,
                                 2 * align + 16, 1000, 5000, 70000, 200000,
                                 512 * KiB, 513 * KiB, 600 * KiB };
        size_t nb = 0;
        for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
            size_t n = sizes[i];
            for (int fn = 0; fn < 4; fn++) {
                void *p = NULL;
                const char *name;
                switch (fn) {
                case 0:
                    name = "posix_memalign";
                    if (align < sizeof(void *)) continue;
                    cr_assert_eq(v_posix_memalign(&p, align, n), 0, "posix_memalign(%zu, %zu)", align, n);
                    break;
                case 1: name = "aligned_alloc"; p = v_aligned_alloc(align, n); break;
                case 2: name = "memalign"; p = v_memalign(align, n); break;
                default:
                    name = "valloc";
                    if (align != 4096) continue;
                    p = v_valloc(n);
                    break;
                }
                cr_assert_not_null(p, "%s(%zu, %zu)", name, align, n);
                cr_assert_eq((uintptr_t)p % align, 0, "%s(%zu, %zu) = %p misaligned", name, align, n, p);
                cr_assert_eq((uintptr_t)p % 16, 0, "%s(%zu, %zu) = %p below 16", name, align, n, p);
                blk_t *b = &blocks[nb++];
                b->p = p;
                b->n = n;
                b->usable = v_usable(p);
                cr_assert_geq(b->usable, n, "%s(%zu, %zu): usable %zu", name, align, n, b->usable);
                b->seed = align * 1000 + nb;
            }
        }
        /* interleave plain mallocs so aligned and unaligned blocks share pools */
        for (size_t k = 0; k < 20; k++) {
            blk_t *b = &blocks[nb++];
            b->n = 24 + k * 333;
            b->p = v_malloc(b->n);
            cr_assert_not_null(b->p);
            b->usable = v_usable(b->p);
            b->seed = 7777 + k;
        }
        char what[64];
        snprintf(what, sizeof what, "alignment %zu", align);
        check_round(blocks, nb, what);
        for (size_t i = 0; i < nb; i++) v_free(blocks[i].p);
    }
}

/* Aligned blocks freed and reallocated: the reused ones are still aligned. */
Test(alignment, reused_blocks_stay_aligned)
{
    for (int round = 0; round < 3; round++)
        for (size_t align = 32; align <= 256 * KiB; align *= 2) {
            void *ps[16];
            for (int i = 0; i < 16; i++) {
                ps[i] = v_memalign(align, (size_t)(i + 1) * 24);
                cr_assert_not_null(ps[i]);
                cr_assert_eq((uintptr_t)ps[i] % align, 0, "memalign(%zu) = %p", align, ps[i]);
                memset(ps[i], i, (size_t)(i + 1) * 24);
            }
            for (int i = 0; i < 16; i++) v_free(ps[i]);
        }
}

/* realloc of an aligned block keeps the contents (alignment need not be kept). */
Test(alignment, realloc_of_aligned_blocks_keeps_contents)
{
    for (size_t align = 64; align <= MiB; align *= 4) {
        unsigned char *p = v_aligned_alloc(align, 3000);
        cr_assert_not_null(p);
        h_fill(p, 3000, align);
        p = v_realloc(p, 900 * KiB);
        cr_assert_not_null(p);
        cr_assert_eq(h_check(p, 3000, align), (size_t)-1, "align %zu: grow lost data", align);
        p = v_realloc(p, 100);
        cr_assert_not_null(p);
        cr_assert_eq(h_check(p, 100, align), (size_t)-1, "align %zu: shrink lost data", align);
        v_free(p);
    }
}
