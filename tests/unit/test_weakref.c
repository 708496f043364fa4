/* test_weakref.c - weak references (CPython's test_weakref scenarios that
 * apply to C): get, death by counting and by collection, callbacks and
 * their order, callbacks in cycles that see no half-cleared object, weak
 * references made by finalizers, resurrection, freeing from callbacks. */
#include <criterion/criterion.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include "memshim.h"

typedef struct obj { void *ref; int id; int cleared; } obj;
static int deaths, clears;
static char events[2048];

static void note(const char *fmt, int id)
{
    size_t n = strlen(events);
    snprintf(events + n, sizeof events - n, fmt, id);
}

static int obj_traverse(void *o, memshim_visit_fn visit, void *arg)
{
    obj *x = o;
    return x->ref ? visit(x->ref, arg) : 0;
}
static void obj_clear(void *o)
{
    obj *x = o;
    clears++;
    x->cleared = 1;
    note("c%d ", x->id);
    void *r = x->ref;
    x->ref = NULL;
    memshim_decref(r);
}
static void obj_dealloc(void *o)
{
    obj *x = o;
    deaths++;
    note("d%d ", x->id);
    memshim_decref(x->ref);
}
static void obj_finalize(void *o) { note("f%d ", ((obj *)o)->id); }
static const memshim_type obj_type = { "obj", obj_traverse, obj_clear, NULL, obj_dealloc };
static const memshim_type fin_type = { "fin", obj_traverse, obj_clear, obj_finalize, obj_dealloc };

static int next_id = 1;
static obj *mk(const memshim_type *t)
{
    obj *o = memshim_new(t, sizeof(obj));
    cr_assert_not_null(o);
    o->id = next_id++;
    return o;
}
static obj *pair(const memshim_type *t, obj **second)
{
    obj *a = mk(t), *b = mk(t);
    a->ref = b;                      /* moves the references: a <-> b, nothing outside */
    b->ref = a;
    if (second) *second = b;
    return a;
}

/* Callback recorder: arg is an int id. */
static int ncb;
static memshim_weakref *cb_ref[16];
static void *cb_arg[16];
static void record(memshim_weakref *r, void *arg)
{
    if (ncb < 16) { cb_ref[ncb] = r; cb_arg[ncb] = arg; }
    ncb++;
    note("w%d ", (int)(long)arg);
}

static void setup(void) { memshim_gc_disable(); }
TestSuite(weakref, .init = setup);

Test(weakref, get_returns_a_new_strong_reference)
{
    obj *o = mk(&obj_type);
    memshim_weakref *w = memshim_weakref_new(o, NULL, NULL);
    cr_assert_not_null(w);
    cr_assert_eq(memshim_refcount(o), 1, "a weak reference does not count");
    void *p = memshim_weakref_get(w);
    cr_assert_eq(p, o);
    cr_assert_eq(memshim_refcount(o), 2);
    memshim_decref(p);
    memshim_decref(o);
    cr_assert_null(memshim_weakref_get(w));
    memshim_weakref_free(w);
}

Test(weakref, new_on_null_fails_with_einval)
{
    errno = 0;
    cr_assert_null(memshim_weakref_new(NULL, NULL, NULL));
    cr_assert_eq(errno, EINVAL);
    cr_assert_null(memshim_weakref_get(NULL));
    memshim_weakref_free(NULL);
}

Test(weakref, death_by_counting_clears_and_calls_back_once)
{
    obj *o = mk(&obj_type);
    memshim_weakref *w = memshim_weakref_new(o, record, (void *)7);
    memshim_decref(o);
    cr_assert_eq(ncb, 1);
    cr_assert_eq(cb_ref[0], w);
    cr_assert_eq(cb_arg[0], (void *)7);
    cr_assert_null(memshim_weakref_get(w));
    cr_assert_str_eq(events, "w7 d1 ", "callbacks run before dealloc");
    memshim_weakref_free(w);
    cr_assert_eq(ncb, 1);
}

Test(weakref, callbacks_run_newest_first)
{
    obj *o = mk(&obj_type);
    memshim_weakref *w1 = memshim_weakref_new(o, record, (void *)1);
    memshim_weakref *w2 = memshim_weakref_new(o, record, (void *)2);
    memshim_weakref *w3 = memshim_weakref_new(o, NULL, NULL);
    memshim_weakref *w4 = memshim_weakref_new(o, record, (void *)4);
    cr_assert_eq(memshim_weakref_count(o), 4);
    memshim_decref(o);
    cr_assert_str_eq(events, "w4 w2 w1 d1 ");
    memshim_weakref_free(w1); memshim_weakref_free(w2);
    memshim_weakref_free(w3); memshim_weakref_free(w4);
}

Test(weakref, freeing_before_death_cancels_the_callback)
{
    obj *o = mk(&obj_type);
    memshim_weakref *w = memshim_weakref_new(o, record, (void *)1);
    memshim_weakref *keep = memshim_weakref_new(o, NULL, NULL);
    memshim_weakref_free(w);
    cr_assert_eq(memshim_weakref_count(o), 1);
    memshim_decref(o);
    cr_assert_eq(ncb, 0);
    cr_assert_eq(deaths, 1);
    memshim_weakref_free(keep);
}

static void free_self(memshim_weakref *r, void *arg) { ncb++; memshim_weakref_free(r); }

Test(weakref, a_callback_may_free_its_own_reference)
{
    obj *o = mk(&obj_type);
    memshim_weakref_new(o, free_self, NULL);
    memshim_weakref_new(o, free_self, NULL);
    memshim_decref(o);
    cr_assert_eq(ncb, 2);
}

static memshim_weakref *victim;
static void free_victim(memshim_weakref *r, void *arg)
{
    ncb++;
    note("v%d ", 0);
    memshim_weakref_free(victim);    /* still pending: its callback must not run */
    victim = NULL;
}

Test(weakref, a_callback_may_free_a_pending_reference)
{
    obj *b, *a = pair(&obj_type, &b);
    victim = memshim_weakref_new(b, record, (void *)2);
    memshim_weakref *w = memshim_weakref_new(a, free_victim, NULL);
    cr_assert_eq(memshim_gc_collect(2), 2);
    cr_assert_eq(ncb, 1, "events: %s", events);
    cr_assert_null(strstr(events, "w2"));
    memshim_weakref_free(w);
}

Test(weakref, reachable_objects_keep_their_weak_references)
{
    obj *b, *a = pair(&obj_type, &b);
    memshim_incref(a);               /* held from outside */
    memshim_weakref *w = memshim_weakref_new(b, record, (void *)1);
    cr_assert_eq(memshim_gc_collect(2), 0);
    cr_assert_eq(ncb, 0);
    void *p = memshim_weakref_get(w);
    cr_assert_eq(p, b);
    memshim_decref(p);
    memshim_decref(a);
    memshim_weakref_free(w);
}

/* ---- cycles: callbacks see intact objects ------------------------------------------ */
static int intact, got_null;
static void check_intact(memshim_weakref *r, void *arg)
{
    obj *a = arg;                    /* borrowed: the callback only looks */
    obj *b = a->ref;
    intact = clears == 0 && !a->cleared && b && !b->cleared && b->ref == a;
    got_null = memshim_weakref_get(r) == NULL;
    ncb++;
}

Test(weakref, callbacks_in_a_cycle_run_before_any_clear)
{
    obj *b, *a = pair(&obj_type, &b);
    memshim_weakref *wa = memshim_weakref_new(a, check_intact, a);
    memshim_weakref *wb = memshim_weakref_new(b, record, (void *)2);
    cr_assert_eq(memshim_gc_collect(2), 2);
    cr_assert_eq(ncb, 2);
    cr_assert(intact, "a callback saw a half-cleared object");
    cr_assert(got_null, "the weak reference is cleared before its callback");
    cr_assert_null(memshim_weakref_get(wb));
    cr_assert_eq(deaths, 2);
    memshim_weakref_free(wa);
    memshim_weakref_free(wb);
}

Test(weakref, in_a_collection_callbacks_precede_finalizers_and_clears)
{
    obj *b, *a = pair(&fin_type, &b);
    memshim_weakref *w = memshim_weakref_new(a, record, (void *)9);
    cr_assert_eq(memshim_gc_collect(2), 2);
    /* w9, then both finalizers, then clears/deaths. */
    cr_assert_eq(strncmp(events, "w9 f1 f2 ", 9), 0, "events: %s", events);
    memshim_weakref_free(w);
}

/* A finalizer makes a weak reference to the other object of its cycle. */
static memshim_weakref *late;
static int late_clears_before_callback = -1;
static void late_record(memshim_weakref *r, void *arg) { late_clears_before_callback = clears; ncb++; }
static void make_late_ref(void *o)
{
    obj *x = o;
    note("f%d ", x->id);
    if (!late) late = memshim_weakref_new(x->ref, late_record, NULL);
}
static const memshim_type late_type = { "late", obj_traverse, obj_clear, make_late_ref, obj_dealloc };

Test(weakref, weak_references_made_by_finalizers_are_cleared_before_clear)
{
    obj *a = pair(&late_type, NULL);
    (void)a;
    cr_assert_eq(memshim_gc_collect(2), 2);
    cr_assert_not_null(late);
    cr_assert_eq(ncb, 1);
    cr_assert_eq(late_clears_before_callback, 0, "callback ran after a clear");
    cr_assert_null(memshim_weakref_get(late));
    cr_assert_eq(deaths, 2);
    memshim_weakref_free(late);
}

/* As in CPython: weak references to garbage are cleared before finalizers
 * run, so an object its finalizer resurrects has lost them. */
static obj *saved;
static void resurrect(void *o) { if (!saved) { memshim_incref(o); saved = o; } }
static const memshim_type res_type = { "res", obj_traverse, obj_clear, resurrect, obj_dealloc };

Test(weakref, weak_reference_to_an_object_resurrected_by_its_finalizer)
{
    obj *a = mk(&res_type);
    a->ref = a;                      /* a self-cycle holding our reference */
    memshim_weakref *w = memshim_weakref_new(a, record, (void *)1);
    cr_assert_eq(memshim_gc_collect(2), 0);
    cr_assert_eq(saved, a);
    cr_assert_eq(ncb, 1);
    cr_assert_null(memshim_weakref_get(w));
    cr_assert_eq(memshim_weakref_count(a), 0);
    cr_assert_eq(deaths, 0);
    /* A new weak reference to the resurrected object works. */
    memshim_weakref *w2 = memshim_weakref_new(a, NULL, NULL);
    void *p = memshim_weakref_get(w2);
    cr_assert_eq(p, a);
    memshim_decref(p);
    memshim_decref(saved);
    cr_assert_eq(memshim_gc_collect(2), 1);
    cr_assert_null(memshim_weakref_get(w2));
    memshim_weakref_free(w);
    memshim_weakref_free(w2);
}

/* A callback that takes a strong reference to another garbage object (a
 * borrowed pointer in its arg) resurrects it: it is kept, not cleared. */
static obj *grabbed;
static void grab(memshim_weakref *r, void *arg) { memshim_incref(arg); grabbed = arg; ncb++; }

Test(weakref, a_callback_that_resurrects_garbage_is_honoured)
{
    obj *b, *a = pair(&obj_type, &b);
    memshim_weakref *w = memshim_weakref_new(a, grab, b);
    cr_assert_eq(memshim_gc_collect(2), 0);
    cr_assert_eq(grabbed, b);
    cr_assert_eq(clears, 0);
    cr_assert_eq(b->ref, a);
    memshim_decref(grabbed);
    cr_assert_eq(memshim_gc_collect(2), 2);
    cr_assert_eq(deaths, 2);
    memshim_weakref_free(w);
}

Test(weakref, count_follows_new_and_free)
{
    obj *o = mk(&obj_type);
    cr_assert_eq(memshim_weakref_count(o), 0);
    memshim_weakref *w[10];
    for (int i = 0; i < 10; i++) w[i] = memshim_weakref_new(o, NULL, NULL);
    cr_assert_eq(memshim_weakref_count(o), 10);
    for (int i = 0; i < 10; i += 2) memshim_weakref_free(w[i]);
    cr_assert_eq(memshim_weakref_count(o), 5);
    memshim_decref(o);
    for (int i = 1; i < 10; i += 2) cr_assert_null(memshim_weakref_get(w[i]));
    for (int i = 1; i < 10; i += 2) memshim_weakref_free(w[i]);
}

Test(weakref, many_referents_at_once)
{
    /* Enough objects with weak references to make the table grow and shrink. */
    enum { N = 5000 };
    static obj *o[N];
    static memshim_weakref *w[N];
    for (int i = 0; i < N; i++) {
        o[i] = mk(&obj_type);
        w[i] = memshim_weakref_new(o[i], record, (void *)(long)i);
    }
    for (int i = 0; i < N; i += 2) memshim_decref(o[i]);
    for (int i = 0; i < N; i++) {
        void *p = memshim_weakref_get(w[i]);
        if (i % 2) { cr_assert_eq(p, o[i]); memshim_decref(p); }
        else cr_assert_null(p);
    }
    for (int i = 1; i < N; i += 2) memshim_decref(o[i]);
    cr_assert_eq(ncb, N);
    for (int i = 0; i < N; i++) memshim_weakref_free(w[i]);
}

/* A callback that watches the other object of its cycle: each time it
 * runs it frees its own reference and makes one to the sibling, with
 * itself as callback.  Every round of step 3 (memshim(3)) ran one more,
 * and the collection never ended (found by a helper writing CPython's
 * weakref scenarios anew).  Now the rounds stop, the last reference keeps
 * its callback for its object's death during the clears, and that one
 * finds the other object dying (count 0: no reference made) and stops. */
static obj *rearm_a, *rearm_b;
static int rearms;
static void rearm(memshim_weakref *w, void *arg)
{
    obj *sibling = arg == rearm_a ? rearm_b : rearm_a;
    memshim_weakref_free(w);
    rearms++;
    if (rearms < 1000000) memshim_weakref_new(sibling, rearm, sibling);   /* NULL once it is dying */
}

Test(weakref, callbacks_that_make_new_ones_to_the_garbage_end, .timeout = 20)
{
    rearm_a = pair(&obj_type, &rearm_b);
    memshim_weakref_new(rearm_a, rearm, rearm_a);
    cr_assert_eq(memshim_gc_collect(2), 2);
    cr_assert_lt(rearms, 100, "%d callbacks", rearms);
    cr_assert_eq(deaths, 2);
}
