/* test_sizeclass.c - the size-class map: every request lands in the smallest
 * class that holds it, spans waste little, and the reciprocal that turns an
 * offset into a block index is exact. */
#include <criterion/criterion.h>
#include "shim.h"

static void setup(void) { _ms_init(); }

TestSuite(sizeclass, .init = setup);

Test(sizeclass, classes_increase_in_16_byte_multiples)
{
    for (unsigned c = 0; c < MS_NCLASSES; c++) {
        cr_assert_eq(_ms_classes[c].size % 16, 0, "class %u size %u", c, _ms_classes[c].size);
        if (c) cr_assert_gt(_ms_classes[c].size, _ms_classes[c - 1].size);
    }
    cr_assert_eq(_ms_classes[0].size, 16);
    cr_assert_eq(_ms_classes[MS_NCLASSES - 1].size, MS_MAX_SMALL);
}

Test(sizeclass, every_size_maps_to_smallest_fitting_class)
{
    for (size_t n = 0; n <= MS_MAX_SMALL; n++) {
        unsigned c = _ms_class_of(n);
        cr_assert_lt(c, MS_NCLASSES);
        cr_assert_geq(_ms_classes[c].size, n, "size %zu -> class %u", n, c);
        if (c) cr_assert_lt(_ms_classes[c - 1].size, n, "size %zu not tight in class %u", n, c);
        cr_assert_eq(_ms_class_fast(n), c, "table and formula disagree at %zu", n);
    }
}

Test(sizeclass, rounding_waste_at_most_25_percent_above_128_and_12_above_1k)
{
    for (unsigned c = 8; c < MS_NCLASSES; c++) {
        size_t lo = _ms_classes[c - 1].size + 1, hi = _ms_classes[c].size;
        cr_assert_leq((hi - lo) * 4, lo, "class %u: %zu..%zu", c, lo, hi);
        if (lo > 1024) cr_assert_leq((hi - lo) * 8, lo, "class %u: %zu..%zu", c, lo, hi);
    }
}

Test(sizeclass, powers_of_two_are_classes)
{
    for (size_t p = 16; p <= MS_MAX_SMALL; p <<= 1)
        cr_assert_eq(_ms_classes[_ms_class_of(p)].size, p, "%zu", p);
}

Test(sizeclass, spans_hold_whole_blocks_with_little_waste)
{
    for (unsigned c = 0; c < MS_NCLASSES; c++) {
        const ms_class_t *k = &_ms_classes[c];
        size_t span = (size_t)k->npages * MS_PAGE_SIZE;
        cr_assert_geq(k->capacity, 1);
        cr_assert_leq(k->npages, MS_MAX_SPAN_PAGES);
        cr_assert_leq((size_t)k->capacity * k->size, span);
        cr_assert_leq(span - (size_t)k->capacity * k->size, span / 8, "class %u wastes too much", c);
        if (k->size <= MS_TCACHE_MAX) {                  /* thread caches hold it */
            cr_assert_geq(k->limit, 1);
            cr_assert_leq(k->batch, k->limit);
        } else {
            cr_assert_eq(k->limit, 0, "class %u (%u bytes) is above MS_TCACHE_MAX", c, k->size);
        }
        cr_assert_geq(k->batch, 1);
    }
}

Test(sizeclass, reciprocal_gives_exact_block_index)
{
    for (unsigned c = 0; c < MS_NCLASSES; c++) {
        const ms_class_t *k = &_ms_classes[c];
        for (uint64_t i = 0; i < k->capacity; i++) {
            uint64_t off = i * k->size;
            cr_assert_eq((off * k->recip) >> 42, i, "class %u block %llu", c, (unsigned long long)i);
            /* an offset inside the block never looks like a block start */
            uint64_t in = off + 16;
            if (k->size > 16) cr_assert_neq(((in * k->recip) >> 42) * k->size, in);
            uint64_t last = off + k->size - 1;
            cr_assert_eq((last * k->recip) >> 42, i);
        }
    }
}

/* A power of two behind a header of up to 16 bytes (sqlite asks for 1032
 * and 4104 bytes for its 1 KiB and 4 KiB pages), or a tracked power of two
 * with its padding byte, takes a class 16 bytes larger, not the next
 * eighth of the doubling, from 1 KiB to 8 KiB. */
Test(sizeclass, power_of_two_plus_a_header_fits_tightly)
{
    for (size_t p = 1024; p <= 8192; p *= 2) {
        for (size_t n = p + 1; n <= p + 16; n++)
            cr_assert_eq(_ms_classes[_ms_class_of(n)].size, p + 16, "%zu", n);
        cr_assert_eq(_ms_classes[_ms_class_of(p + 17)].size, p + p / 8, "%zu", p + 17);
    }
    cr_assert_eq(_ms_classes[_ms_class_of(16384 + 1)].size, 16384 + 2048);
}
