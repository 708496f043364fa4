/* test_gc_threads.c - the collector under several threads: exact counts
 * when incref and decref race on one object, threads making and dropping
 * cycles while others collect (automatically and explicitly), weak
 * references followed while their referents die, and the documented
 * protocols for changing references of tracked objects (memshim_gc_lock, or
 * building an object untracked and tracking it afterwards). */
#include <criterion/criterion.h>
#include <pthread.h>
#include <sched.h>
#include <stdint.h>
#include <stdlib.h>
#include "memshim.h"

#define MAGIC 0x5eed5eedu
typedef struct obj { void *ref[2]; unsigned magic; } obj;
static long deaths, made;

static int obj_traverse(void *o, memshim_visit_fn visit, void *arg)
{
    obj *x = o;
    for (int i = 0; i < 2; i++)
        if (x->ref[i]) { int r = visit(x->ref[i], arg); if (r) return r; }
    return 0;
}
static void obj_clear(void *o)
{
    obj *x = o;
    for (int i = 0; i < 2; i++) { void *r = x->ref[i]; x->ref[i] = NULL; memshim_decref(r); }
}
static void obj_dealloc(void *o)
{
    obj *x = o;
    if (x->magic != MAGIC) abort();  /* freed twice, or never made */
    x->magic = 0;
    __atomic_add_fetch(&deaths, 1, __ATOMIC_RELAXED);
    obj_clear(o);
}
static const memshim_type obj_type = { "obj", obj_traverse, obj_clear, NULL, obj_dealloc };

static obj *mk(void)
{
    obj *o = memshim_new(&obj_type, sizeof(obj));
    if (!o) abort();
    o->magic = MAGIC;
    __atomic_add_fetch(&made, 1, __ATOMIC_RELAXED);
    return o;
}

static pthread_t spawn(void *(*fn)(void *), void *arg)
{
    pthread_t t;
    cr_assert_eq(pthread_create(&t, NULL, fn, arg), 0);
    return t;
}

/* ---- counts -------------------------------------------------------------------- */
#define ROUNDS 200000
static void *inc_inc_dec(void *o)
{
    for (int i = 0; i < ROUNDS; i++) { memshim_incref(o); memshim_incref(o); memshim_decref(o); }
    return NULL;
}
static void *dec_only(void *o)
{
    for (int i = 0; i < ROUNDS; i++) memshim_decref(o);
    return NULL;
}

Test(threads, racing_incref_and_decref_keep_the_count_exact)
{
    obj *o = mk();
    pthread_t t[4];
    for (int i = 0; i < 4; i++) t[i] = spawn(inc_inc_dec, o);
    for (int i = 0; i < 4; i++) pthread_join(t[i], NULL);
    cr_assert_eq(memshim_refcount(o), 1 + 4 * (size_t)ROUNDS);
    for (int i = 0; i < 4; i++) t[i] = spawn(dec_only, o);
    for (int i = 0; i < 4; i++) pthread_join(t[i], NULL);
    cr_assert_eq(memshim_refcount(o), 1);
    cr_assert_eq(deaths, 0);
    memshim_decref(o);
    cr_assert_eq(deaths, 1);
}

static void *last_reference_race(void *o) { memshim_decref(o); return NULL; }

Test(threads, exactly_one_thread_frees_the_object)
{
    for (int round = 0; round < 2000; round++) {
        obj *o = mk();
        memshim_incref(o);           /* two references, dropped by two threads at once */
        pthread_t a = spawn(last_reference_race, o), b = spawn(last_reference_race, o);
        pthread_join(a, NULL);
        pthread_join(b, NULL);
        cr_assert_eq(deaths, round + 1);
    }
}

/* The holder of the collector lock drops its references to an object
 * that other threads keep changing: its count must stay exact (the holder
 * takes a shortcut for the last reference only). */
static obj *shared;
static void *decref_locked(void *arg)
{
    for (int i = 0; i < ROUNDS; i++) {
        memshim_gc_lock();
        memshim_incref(shared);
        memshim_decref(shared);
        memshim_decref(shared);      /* one of the references main made for us */
        memshim_gc_unlock();
    }
    return NULL;
}

Test(threads, the_lock_holder_and_other_threads_change_one_count_exactly)
{
    shared = mk();
    for (int i = 0; i < 2 * ROUNDS; i++) memshim_incref(shared);
    pthread_t t[4];
    t[0] = spawn(decref_locked, NULL);
    t[1] = spawn(decref_locked, NULL);
    t[2] = spawn(inc_inc_dec, shared);
    t[3] = spawn(inc_inc_dec, shared);
    for (int i = 0; i < 4; i++) pthread_join(t[i], NULL);
    cr_assert_eq(memshim_refcount(shared), 1 + 2 * (size_t)ROUNDS);
    t[0] = spawn(dec_only, shared);
    t[1] = spawn(dec_only, shared);
    for (int i = 0; i < 2; i++) pthread_join(t[i], NULL);
    cr_assert_eq(memshim_refcount(shared), 1);
    cr_assert_eq(deaths, 0);
    memshim_gc_lock();
    memshim_decref(shared);          /* the last, under the lock */
    cr_assert_eq(deaths, 1);
    memshim_gc_unlock();
}

/* An object whose last reference goes under the lock (a collection's
 * clear, a death's dealloc, the program's own memshim_gc_lock) is dying
 * like any other: its count reads 0 and no weak reference can be made to
 * it from its dealloc function. */
static long seen_count = -1, weakref_refused;
static void probe_dealloc(void *o)
{
    seen_count = (long)memshim_refcount(o);
    memshim_weakref *r = memshim_weakref_new(o, NULL, NULL);
    if (!r) weakref_refused++;
    else memshim_weakref_free(r);
    obj_dealloc(o);
}
static const memshim_type probe_type = { "probe", obj_traverse, obj_clear, NULL, probe_dealloc };

Test(threads, an_object_dying_under_the_lock_has_a_count_of_0)
{
    obj *o = memshim_new(&probe_type, sizeof(obj));
    cr_assert_not_null(o);
    o->magic = MAGIC;
    memshim_gc_lock();
    memshim_decref(o);
    memshim_gc_unlock();
    cr_assert_eq(seen_count, 0);
    cr_assert_eq(weakref_refused, 1);
    /* In a collection: a ring of two, the probe freed by its partner's clear. */
    obj *p = memshim_new(&probe_type, sizeof(obj)), *q = mk();
    cr_assert_not_null(p);
    p->magic = MAGIC;
    p->ref[0] = q;                   /* moves our references into the ring */
    q->ref[0] = p;
    seen_count = -1;
    cr_assert_eq(memshim_gc_collect(2), 2);
    cr_assert_eq(seen_count, 0);
    cr_assert_eq(weakref_refused, 2);
    cr_assert_eq(deaths, 3);
}

/* A thread drops the last reference while another thread holds the
 * collector lock and collects: the object, its count at 0, waits for the
 * lock in the first thread.  The collection must leave it (and what it
 * holds) to that thread, which frees it once. */
static void *drop(void *o) { memshim_decref(o); return NULL; }

Test(threads, an_object_dying_in_another_thread_is_left_to_it)
{
    obj *o = mk(), *child = mk();
    o->ref[0] = child;               /* moves the reference */
    memshim_gc_lock();
    pthread_t t = spawn(drop, o);
    while (memshim_refcount(o) != 0) sched_yield();
    /* t is now blocked on the lock in the middle of o's death. */
    cr_assert_eq(memshim_gc_collect(2), 0);
    cr_assert_eq(deaths, 0);
    memshim_gc_unlock();
    pthread_join(t, NULL);
    cr_assert_eq(deaths, 2);
}

/* ---- cycles made and dropped while others collect -------------------------------------- */
#define CYCLES 20000
static volatile int stop_collecting;

/* Protocol 1: change references of tracked objects under memshim_gc_lock. */
static void *make_cycles_locked(void *arg)
{
    obj *keep = mk();                /* held throughout: must survive every collection */
    for (int i = 0; i < CYCLES; i++) {
        obj *a = mk(), *b = mk(), *c = mk();
        memshim_gc_lock();
        a->ref[0] = b;               /* moves our references into the ring */
        b->ref[0] = c;
        c->ref[0] = a;
        memshim_incref(keep);
        b->ref[1] = keep;
        memshim_gc_unlock();
        if (keep->magic != MAGIC) return (void *)1;
    }
    memshim_decref(keep);
    return NULL;
}

/* Protocol 2: build untracked, then track. */
static void *make_cycles_untracked(void *arg)
{
    for (int i = 0; i < CYCLES; i++) {
        obj *a = mk(), *b = mk();
        memshim_untrack(a);
        memshim_untrack(b);
        a->ref[0] = b;
        b->ref[0] = a;
        memshim_track(a);
        memshim_track(b);
    }
    return NULL;
}

static void *collect_loop(void *arg)
{
    long n = 0;
    while (!__atomic_load_n(&stop_collecting, __ATOMIC_RELAXED)) {
        long r = memshim_gc_collect(2);
        if (r < 0) return (void *)1;
        n += r;
    }
    return NULL;
}

Test(threads, cycles_made_and_dropped_while_others_collect)
{
    memshim_gc_set_threshold(500, 5, 5);
    memshim_gc_enable();
    pthread_t col = spawn(collect_loop, NULL);
    pthread_t t[4];
    t[0] = spawn(make_cycles_locked, NULL);
    t[1] = spawn(make_cycles_untracked, NULL);
    t[2] = spawn(make_cycles_locked, NULL);
    t[3] = spawn(make_cycles_untracked, NULL);
    void *rv;
    for (int i = 0; i < 4; i++) {
        pthread_join(t[i], &rv);
        cr_assert_null(rv, "a live object was freed under a thread");
    }
    __atomic_store_n(&stop_collecting, 1, __ATOMIC_RELAXED);
    pthread_join(col, &rv);
    cr_assert_null(rv);
    memshim_gc_collect(2);
    cr_assert_eq(deaths, made, "made %ld, freed %ld", made, deaths);
    long c[3];
    memshim_gc_get_count(c);
    cr_assert_eq(c[0], 0);
}

/* ---- weak references followed while their referents die --------------------------------- */
#define NOBJ 20000
static obj *objs[NOBJ];
static memshim_weakref *refs[NOBJ];

static void *follow(void *arg)
{
    long bad = 0;
    for (int pass = 0; pass < 4; pass++)
        for (int i = 0; i < NOBJ; i++) {
            obj *o = memshim_weakref_get(refs[i]);
            if (!o) continue;
            if (o->magic != MAGIC || memshim_refcount(o) < 1) bad++;
            memshim_decref(o);       /* may be the last reference now */
        }
    return (void *)bad;
}

static void *drop_all(void *arg)
{
    for (int i = 0; i < NOBJ; i++) memshim_decref(objs[i]);
    return NULL;
}

Test(threads, weakref_get_races_with_the_last_decref)
{
    for (int i = 0; i < NOBJ; i++) {
        objs[i] = mk();
        refs[i] = memshim_weakref_new(objs[i], NULL, NULL);
    }
    pthread_t f1 = spawn(follow, NULL), f2 = spawn(follow, NULL), d = spawn(drop_all, NULL);
    void *bad1, *bad2;
    pthread_join(d, NULL);
    pthread_join(f1, &bad1);
    pthread_join(f2, &bad2);
    cr_assert_null(bad1);
    cr_assert_null(bad2);
    cr_assert_eq(deaths, NOBJ);
    for (int i = 0; i < NOBJ; i++) {
        cr_assert_null(memshim_weakref_get(refs[i]));
        memshim_weakref_free(refs[i]);
    }
}
