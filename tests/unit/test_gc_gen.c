/* test_gc_gen.c - generations and thresholds (CPython's test_gc scenarios):
 * counts, automatic collection, promotion, collect(n) examining 0..n only,
 * enable/disable, freeze, callbacks, and MEMSHIM_GC in the environment. */
#include <criterion/criterion.h>
#include <criterion/redirect.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "memshim.h"

typedef struct obj { void *ref; } obj;
static int deaths;

static int obj_traverse(void *o, memshim_visit_fn visit, void *arg)
{
    obj *x = o;
    return x->ref ? visit(x->ref, arg) : 0;
}
static void obj_clear(void *o) { obj *x = o; void *r = x->ref; x->ref = NULL; memshim_decref(r); }
static void obj_dealloc(void *o) { deaths++; memshim_decref(((obj *)o)->ref); }
static const memshim_type obj_type = { "obj", obj_traverse, obj_clear, NULL, obj_dealloc };

static obj *mk(void)
{
    obj *o = memshim_new(&obj_type, sizeof(obj));
    cr_assert_not_null(o);
    return o;
}
/* A self-cycle with no outside reference: garbage for the collector. */
static obj *garbage(void)
{
    obj *o = mk();
    o->ref = o;                      /* moves our reference into the cycle */
    return o;
}
static int in_generation(int gen, void *o)
{
    void *objs[64];
    size_t n = memshim_gc_get_objects(gen, objs, 64);
    cr_assert_leq(n, 64);
    for (size_t i = 0; i < n; i++) if (objs[i] == o) return 1;
    return 0;
}

/* Callback recorder. */
static int calls, phases[64], gens[64];
static long collected[64];
static void record(int phase, int generation, long n, void *arg)
{
    (void)arg;
    if (calls < 64) { phases[calls] = phase; gens[calls] = generation; collected[calls] = n; }
    calls++;
}

static void setup(void) { memshim_gc_disable(); memshim_gc_collect(2); }
TestSuite(gen, .init = setup);

Test(gen, defaults_are_2000_10_10_and_enabled)
{
    memshim_gc_enable();
    long t[3];
    memshim_gc_get_threshold(t);
    cr_assert_eq(t[0], 2000);
    cr_assert_eq(t[1], 10);
    cr_assert_eq(t[2], 10);
    cr_assert(memshim_gc_isenabled());
}

Test(gen, set_threshold_and_get_it_back)
{
    memshim_gc_set_threshold(700, 5, 3);
    long t[3];
    memshim_gc_get_threshold(t);
    cr_assert(t[0] == 700 && t[1] == 5 && t[2] == 3);
}

Test(gen, enable_and_disable)
{
    cr_assert_not(memshim_gc_isenabled());
    memshim_gc_enable();
    cr_assert(memshim_gc_isenabled());
    memshim_gc_disable();
    cr_assert_not(memshim_gc_isenabled());
}

Test(gen, count_is_allocations_minus_deallocations)
{
    long c[3];
    memshim_gc_get_count(c);
    cr_assert_eq(c[0], 0);
    obj *o[5];
    for (int i = 0; i < 5; i++) o[i] = mk();
    memshim_gc_get_count(c);
    cr_assert_eq(c[0], 5);
    memshim_decref(o[0]);
    memshim_decref(o[1]);
    memshim_gc_get_count(c);
    cr_assert_eq(c[0], 3);
    memshim_gc_collect(0);
    memshim_gc_get_count(c);
    cr_assert_eq(c[0], 0);
    cr_assert_eq(c[1], 1, "a generation-0 collection counts toward generation 1");
    for (int i = 2; i < 5; i++) memshim_decref(o[i]);
}

Test(gen, survivors_are_promoted)
{
    obj *o = mk();
    cr_assert(in_generation(0, o));
    memshim_gc_collect(0);
    cr_assert_not(in_generation(0, o));
    cr_assert(in_generation(1, o));
    memshim_gc_collect(1);
    cr_assert(in_generation(2, o));
    memshim_gc_collect(2);
    cr_assert(in_generation(2, o));
    cr_assert(in_generation(-1, o));
    memshim_decref(o);
    cr_assert_eq(deaths, 1);
    cr_assert_not(in_generation(-1, o));
}

Test(gen, collect_n_examines_generations_0_to_n_only)
{
    obj *a = mk(), *b = mk();
    a->ref = b;                      /* a <-> b, held by us through a */
    memshim_incref(a);
    b->ref = a;
    memshim_gc_collect(1);           /* both to generation 2 */
    cr_assert(in_generation(2, a) && in_generation(2, b));
    memshim_decref(a);               /* now garbage, in generation 2 */
    cr_assert_eq(memshim_gc_collect(0), 0);
    cr_assert_eq(memshim_gc_collect(1), 0);
    cr_assert_eq(deaths, 0);
    cr_assert_eq(memshim_gc_collect(2), 2);
    cr_assert_eq(deaths, 2);
}

Test(gen, young_garbage_is_found_by_a_generation_0_collection)
{
    garbage();
    garbage();
    cr_assert_eq(memshim_gc_collect(0), 2);
    cr_assert_eq(deaths, 2);
}

Test(gen, automatic_collection_when_count_passes_threshold_0)
{
    memshim_gc_set_threshold(10, 1000, 1000);
    memshim_gc_callback_add(record, NULL);
    memshim_gc_enable();
    for (int i = 0; i < 10; i++) garbage();
    cr_assert_eq(calls, 0, "count 10 is not past threshold 10");
    cr_assert_eq(deaths, 0);
    garbage();                       /* the 11th allocation collects first */
    cr_assert_eq(calls, 2);
    cr_assert_eq(phases[0], MEMSHIM_GC_START);
    cr_assert_eq(gens[0], 0);
    cr_assert_eq(collected[1], 10);
    cr_assert_eq(deaths, 10);
}

Test(gen, disable_stops_automatic_collection)
{
    memshim_gc_set_threshold(10, 10, 10);
    memshim_gc_callback_add(record, NULL);
    for (int i = 0; i < 5000; i++) garbage();
    cr_assert_eq(calls, 0);
    cr_assert_eq(deaths, 0);
    memshim_gc_enable();
    garbage();
    cr_assert_gt(calls, 0);
    cr_assert_gt(deaths, 0);
}

Test(gen, threshold_0_of_zero_means_no_automatic_collection)
{
    memshim_gc_set_threshold(0, 10, 10);
    memshim_gc_enable();
    memshim_gc_callback_add(record, NULL);
    for (int i = 0; i < 5000; i++) garbage();
    cr_assert_eq(calls, 0);
    cr_assert_eq(memshim_gc_collect(2), 5000, "explicit collection still works");
}

/* CPython's rule: generation 1 when its count (generation-0 collections
 * since) passes its threshold; generation 2 likewise, if the pending
 * long-lived objects are 25% of the total. */
Test(gen, older_generations_collected_by_their_thresholds)
{
    memshim_gc_set_threshold(1, 1, 1);
    memshim_gc_callback_add(record, NULL);
    memshim_gc_enable();
    for (int i = 0; i < 18; i++) mk();          /* kept alive: never garbage */
    int expect[] = { 0, 0, 1, 0, 0, 1, 2, 0, 0 };
    cr_assert_geq(calls, 18);
    for (int i = 0; i < 9; i++)
        cr_assert_eq(gens[2 * i], expect[i], "collection %d: generation %d, expected %d",
                     i, gens[2 * i], expect[i]);
}

Test(gen, full_collection_waits_for_25_percent_new_long_lived_objects)
{
    /* 100 long-lived objects after a full collection; then generation-1
     * collections promote only a few more: the full collection is skipped
     * although generation 2's count passes its threshold. */
    for (int i = 0; i < 100; i++) mk();
    memshim_gc_collect(2);
    memshim_gc_set_threshold(1, 0, 0);
    memshim_gc_callback_add(record, NULL);
    memshim_gc_enable();
    for (int i = 0; i < 20; i++) mk();          /* 20 < 100/4 pending */
    for (int i = 0; i < calls; i += 2) cr_assert_neq(gens[i], 2, "full collection #%d", i / 2);
    for (int i = 0; i < 20; i++) mk();          /* now past 25 */
    int full = 0;
    for (int i = 0; i < calls && i < 64; i += 2) full += gens[i] == 2;
    cr_assert_gt(full, 0);
}

Test(gen, freeze_moves_everything_out_of_reach_of_collections)
{
    obj *a = garbage(), *b = garbage();
    memshim_gc_freeze();
    cr_assert_eq(memshim_gc_get_freeze_count(), 2);
    long c[3];
    memshim_gc_get_count(c);
    cr_assert_eq(c[0], 0);
    cr_assert_eq(memshim_gc_collect(2), 0);
    cr_assert_eq(deaths, 0);
    cr_assert_not(in_generation(-1, a) || in_generation(-1, b));
    garbage();                                  /* new objects are collected as usual */
    cr_assert_eq(memshim_gc_collect(2), 1);
    memshim_gc_unfreeze();
    cr_assert_eq(memshim_gc_get_freeze_count(), 0);
    cr_assert(in_generation(2, a));
    cr_assert_eq(memshim_gc_collect(2), 2);
    cr_assert_eq(deaths, 3);
}

Test(gen, callbacks_get_start_and_stop)
{
    int arg;
    cr_assert_eq(memshim_gc_callback_add(record, &arg), 0);
    garbage();
    garbage();
    cr_assert_eq(memshim_gc_collect(1), 2);
    cr_assert_eq(calls, 2);
    cr_assert(phases[0] == MEMSHIM_GC_START && gens[0] == 1 && collected[0] == 0);
    cr_assert(phases[1] == MEMSHIM_GC_STOP && gens[1] == 1 && collected[1] == 2);
    cr_assert_eq(memshim_gc_callback_remove(record, &arg), 0);
    memshim_gc_collect(2);
    cr_assert_eq(calls, 2);
    errno = 0;
    cr_assert_eq(memshim_gc_callback_remove(record, &arg), -1);
    cr_assert_eq(errno, ENOENT);
    cr_assert_eq(memshim_gc_callback_add(NULL, NULL), -1);
    cr_assert_eq(errno, EINVAL);
}

static int other_calls;
static void other(int phase, int generation, long n, void *arg) { other_calls++; }
static void remover(int phase, int generation, long n, void *arg)
{
    memshim_gc_callback_remove(other, NULL);
    memshim_gc_callback_remove(remover, NULL);
}

Test(gen, a_callback_may_remove_callbacks)
{
    memshim_gc_callback_add(remover, NULL);
    memshim_gc_callback_add(other, NULL);
    memshim_gc_collect(0);
    int after_first = other_calls;
    memshim_gc_collect(0);
    cr_assert_eq(other_calls, after_first, "removed callbacks are not called again");
}

/* ---- MEMSHIM_GC: read at the collector's first use (no .init here) ---------------- */
Test(gc_env, thresholds_from_the_environment)
{
    setenv("MEMSHIM_GC", "700,20,5", 1);
    long t[3];
    memshim_gc_get_threshold(t);
    cr_assert(t[0] == 700 && t[1] == 20 && t[2] == 5, "%ld %ld %ld", t[0], t[1], t[2]);
    cr_assert(memshim_gc_isenabled());
}

Test(gc_env, one_threshold_keeps_the_other_defaults)
{
    setenv("MEMSHIM_GC", "300", 1);
    long t[3];
    memshim_gc_get_threshold(t);
    cr_assert(t[0] == 300 && t[1] == 10 && t[2] == 10);
}

Test(gc_env, off_disables_automatic_collection)
{
    setenv("MEMSHIM_GC", "off", 1);
    cr_assert_not(memshim_gc_isenabled());
    long t[3];
    memshim_gc_get_threshold(t);
    cr_assert_eq(t[0], 2000);
    memshim_gc_set_threshold(5, 10, 10);
    memshim_gc_callback_add(record, NULL);
    for (int i = 0; i < 100; i++) garbage();
    cr_assert_eq(calls, 0);
}

Test(gc_env, zero_disables_automatic_collection)
{
    setenv("MEMSHIM_GC", "0", 1);
    cr_assert_not(memshim_gc_isenabled());
}

static void check_malformed(const char *value)
{
    setenv("MEMSHIM_GC", value, 1);
    long t[3];
    memshim_gc_get_threshold(t);
    cr_assert(t[0] == 2000 && t[1] == 10 && t[2] == 10, "defaults kept");
    cr_assert(memshim_gc_isenabled());
    fflush(stderr);
    char buf[512] = { 0 };
    size_t n = fread(buf, 1, sizeof buf - 1, cr_get_redirected_stderr());
    buf[n] = 0;
    cr_assert_not_null(strstr(buf, "MEMSHIM_GC="), "got: %s", buf);
    cr_assert_not_null(strstr(buf, "THRESHOLD0[,THRESHOLD1[,THRESHOLD2]]"), "got: %s", buf);
    cr_assert_eq(strchr(buf, '\n'), buf + strlen(buf) - 1, "one line: %s", buf);
}

/* memshim writes its messages to standard error as it was at start-up:
 * Criterion's pipe, once redirected, is told to be that. */
void _ms_out_retake_stderr(void);
static void redirect_stderr(void)
{
    cr_redirect_stderr();
    _ms_out_retake_stderr();
}

Test(gc_env, malformed_value_warns_once_and_keeps_defaults, .init = redirect_stderr)
{
    check_malformed("fast");
}

Test(gc_env, too_many_thresholds_is_malformed, .init = redirect_stderr)
{
    check_malformed("1,2,3,4");
}

Test(gc_env, trailing_comma_is_malformed, .init = redirect_stderr)
{
    check_malformed("700,");
}
