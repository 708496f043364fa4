/* test_table.c - the one hash table (shim/table.h): finds what was added,
 * deletion by backward shift keeps every other key findable, growth and its
 * failure (room while two slots are empty), caller equality on hash keys,
 * tables kept for lock-free readers. */
#include <criterion/criterion.h>
#include <stdlib.h>
#include "table.h"

typedef struct { uint64_t key; uint64_t val; } slot_t;

static int allocs, frees, fail_allocs;      /* the test allocator's counts */

static void *t_alloc(size_t n)
{
    if (fail_allocs) return NULL;
    allocs++;
    return malloc(n);
}

static void t_free(void *p, size_t n)
{
    frees++;
    free(p);
}

static const ms_table_kind_t kind = MS_TABLE_KIND(slot_t, key, 16, t_alloc, t_free);
static const ms_table_kind_t kept = MS_TABLE_KIND(slot_t, key, 16, t_alloc, NULL);

static void reset(void) { allocs = frees = fail_allocs = 0; }

static slot_t *find(const ms_table_t *t, uint64_t key) { return ms_table_find(t, &kind, key, NULL, NULL); }

static void put(ms_table_t **t, uint64_t key, uint64_t val)
{
    cr_assert(ms_table_room(t, &kind));
    ms_table_add(*t, &kind, &(slot_t){ key, val });
}

Test(table, finds_what_was_added_and_grows_past_half_full, .init = reset)
{
    ms_table_t *t = NULL;
    cr_assert_null(find(t, 5));
    for (uint64_t k = 1; k <= 1000; k++) put(&t, k << 12, k);   /* page-aligned, as huge.c's */
    cr_assert_eq(ms_table_count(t), 1000);
    cr_assert_eq(ms_table_slots(t), 2048, "slots %zu", ms_table_slots(t));
    for (uint64_t k = 1; k <= 1000; k++) {
        slot_t *s = find(t, k << 12);
        cr_assert_not_null(s, "key %lu", (unsigned long)k);
        cr_assert_eq(s->val, k);
    }
    cr_assert_null(find(t, 1001 << 12));
    cr_assert_null(find(t, 3));
    cr_assert_eq(allocs, 8);                         /* 16, 32, ... 2048 slots */
    cr_assert_eq(frees, 7);
    ms_table_free(&t, &kind);
    cr_assert_null(t);
    cr_assert_eq(frees, 8);
}

/* A kind that fills to three quarters (the trace table's) doubles only
 * past that: 768 keys stay in 1024 slots, the 769th makes 2048; every key
 * is found at every size. */
Test(table, a_kind_may_fill_to_three_quarters, .init = reset)
{
    static const ms_table_kind_t fuller = MS_TABLE_KIND_FULL(slot_t, key, 16, t_alloc, t_free, 3);
    ms_table_t *t = NULL;
    for (uint64_t k = 1; k <= 769; k++) {
        cr_assert(ms_table_room(&t, &fuller));
        ms_table_add(t, &fuller, &(slot_t){ k << 12, k });
        cr_assert_eq(ms_table_slots(t), k <= 12 ? 16 : k <= 24 ? 32 : k <= 48 ? 64 : k <= 96 ? 128 :
                                        k <= 192 ? 256 : k <= 384 ? 512 : k <= 768 ? 1024 : 2048,
                     "%lu keys in %zu slots", (unsigned long)k, ms_table_slots(t));
        for (uint64_t j = 1; j <= k; j += 97) {
            slot_t *s = ms_table_find(t, &fuller, j << 12, NULL, NULL);
            cr_assert(s && s->val == j, "key %lu of %lu", (unsigned long)j, (unsigned long)k);
        }
    }
    ms_table_free(&t, &fuller);
}

/* Random adds and deletes against a plain array: after each deletion every
 * remaining key is still found, none of the deleted ones is. */
Test(table, backward_shift_deletion_keeps_every_run_whole, .init = reset)
{
    enum { N = 600 };
    static uint64_t keys[N];
    static bool in[N];
    ms_table_t *t = NULL;
    unsigned x = 12345;
    size_t live = 0;
    for (int step = 0; step < 20000; step++) {
        x = x * 1103515245u + 12345u;
        unsigned i = (x >> 8) % N;
        if (!keys[i]) keys[i] = ((uint64_t)(x >> 4) << 4) | 16;   /* distinct enough; checked below */
        slot_t *s = find(t, keys[i]);
        cr_assert_eq(s != NULL, in[i], "step %d", step);
        if (in[i]) {
            cr_assert_eq(s->val, i);
            ms_table_del(t, &kind, s);
            in[i] = false;
            live--;
        } else {
            put(&t, keys[i], i);
            in[i] = true;
            live++;
        }
        cr_assert_eq(ms_table_count(t), live);
        if (step % 97 == 0)
            for (unsigned j = 0; j < N; j++)
                if (keys[j]) {
                    slot_t *f = find(t, keys[j]);
                    cr_assert_eq(f != NULL, in[j], "step %d key %u", step, j);
                    if (f) cr_assert_eq(f->val, j);
                }
    }
    for (unsigned a = 0; a < N; a++)          /* the keys were distinct */
        for (unsigned b = a + 1; b < N; b++) cr_assert(!keys[a] || keys[a] != keys[b]);
    ms_table_free(&t, &kind);
}

/* When the table cannot grow it still takes keys while two slots are
 * empty, so a key just deleted can always be put back (huge.c's mremap). */
Test(table, full_and_unable_to_grow_a_deleted_key_goes_back, .init = reset)
{
    ms_table_t *t = ms_table_new(&kind, 0);
    cr_assert_eq(ms_table_slots(t), 16);
    fail_allocs = 1;
    uint64_t k = 1;
    while (ms_table_room(&t, &kind)) ms_table_add(t, &kind, &(slot_t){ k++ * 7919, 0 });
    cr_assert_eq(ms_table_count(t), 15, "one slot stays empty: %zu", ms_table_count(t));
    cr_assert_eq(ms_table_slots(t), 16);
    for (uint64_t j = 1; j < k; j++) {
        slot_t *s = find(t, j * 7919);
        cr_assert_not_null(s);
        ms_table_del(t, &kind, s);
        cr_assert(ms_table_room(&t, &kind), "room after a deletion");
        ms_table_add(t, &kind, &(slot_t){ 1000003 * j, 0 });
        cr_assert_null(find(t, j * 7919));
    }
    cr_assert_null(find(t, 5));                /* a probe of a full table still stops */
    fail_allocs = 0;
    cr_assert(ms_table_room(&t, &kind));       /* and grows again when it can */
    cr_assert_eq(ms_table_slots(t), 32);
    for (uint64_t j = 1; j < k; j++) cr_assert_not_null(find(t, 1000003 * j));
    ms_table_free(&t, &kind);
}

/* Hash keys: equal keys told apart by the caller's equality. */
static bool same_val(const void *slot, const void *arg)
{
    return ((const slot_t *)slot)->val == *(const uint64_t *)arg;
}

Test(table, equal_keys_are_told_apart_by_eq, .init = reset)
{
    ms_table_t *t = NULL;
    for (uint64_t v = 1; v <= 40; v++) {
        cr_assert(ms_table_room(&t, &kind));
        ms_table_add(t, &kind, &(slot_t){ v % 3 + 1, v });   /* three keys in all */
    }
    for (uint64_t v = 1; v <= 40; v++) {
        slot_t *s = ms_table_find(t, &kind, v % 3 + 1, same_val, &v);
        cr_assert_not_null(s);
        cr_assert_eq(s->val, v);
    }
    uint64_t none = 41;
    cr_assert_null(ms_table_find(t, &kind, 2, same_val, &none));
    ms_table_clear(t, &kind);
    cr_assert_eq(ms_table_count(t), 0);
    uint64_t one = 1;
    cr_assert_null(ms_table_find(t, &kind, 2, same_val, &one));
    ms_table_free(&t, &kind);
}

/* A kind without free keeps replaced tables (a reader may still probe one),
 * and each still finds what it held when it was replaced. */
Test(table, replaced_tables_stay_for_readers, .init = reset)
{
    ms_table_t *t = NULL, *old[8];
    unsigned nold = 0;
    for (uint64_t k = 1; k <= 100; k++) {
        ms_table_t *before = t;
        cr_assert(ms_table_room(&t, &kept));
        if (before && before != t) old[nold++] = before;
        ms_table_add(t, &kept, &(slot_t){ k, k });
    }
    cr_assert_eq(frees, 0);
    cr_assert_eq(nold, 4);                     /* 16, 32, 64, 128, then 256 slots */
    cr_assert_eq(ms_table_slots(t), 256);
    for (unsigned i = 0; i < nold; i++) {
        size_t had = ms_table_slots(old[i]) / 2;
        cr_assert_eq(ms_table_count(old[i]), had);
        for (uint64_t k = 1; k <= had; k++) cr_assert_not_null(ms_table_find(old[i], &kept, k, NULL, NULL));
        free(old[i]);
    }
    free(t);
}
