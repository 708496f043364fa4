/* test_gc.c - the cycle collector on the scenarios of CPython's test_gc:
 * reference counts and death, self-cycles, cycles through several types,
 * finalizers (PEP 442) and resurrection, clear functions that decref during
 * a collection, objects without hooks, untracking, SAVEALL, DEBUG_STATS,
 * and freeing a million-long chain without overflowing the stack. */
#include <criterion/criterion.h>
#include <criterion/redirect.h>
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "memshim.h"

/* ---- a test object: up to 4 references, an id, and an event log ---------- */
#define NREF 4
typedef struct obj { void *ref[NREF]; int id; } obj;

static int deaths, clears, finals;
static char events[4096];           /* "f1 c1 d2 ..." : finalize/clear/dealloc of id */

static void note(char what, int id)
{
    size_t n = strlen(events);
    snprintf(events + n, sizeof events - n, "%c%d ", what, id);
}

static int obj_traverse(void *o, memshim_visit_fn visit, void *arg)
{
    obj *x = o;
    for (int i = 0; i < NREF; i++)
        if (x->ref[i]) { int r = visit(x->ref[i], arg); if (r) return r; }
    return 0;
}

static void drop_refs(obj *x)
{
    for (int i = 0; i < NREF; i++) {
        void *r = x->ref[i];
        x->ref[i] = NULL;
        memshim_decref(r);
    }
}

static void obj_clear(void *o)   { clears++; note('c', ((obj *)o)->id); drop_refs(o); }
static void obj_dealloc(void *o) { deaths++; note('d', ((obj *)o)->id); drop_refs(o); }
static void obj_finalize(void *o) { finals++; note('f', ((obj *)o)->id); }

static const memshim_type obj_type = { "obj", obj_traverse, obj_clear, NULL, obj_dealloc };
static const memshim_type fin_type = { "fin", obj_traverse, obj_clear, obj_finalize, obj_dealloc };
static const memshim_type noclear_type = { "noclear", obj_traverse, NULL, NULL, obj_dealloc };

static int next_id = 1;
static obj *mk(const memshim_type *t)
{
    obj *o = memshim_new(t, sizeof(obj));
    cr_assert_not_null(o, "memshim_new failed");
    o->id = next_id++;
    return o;
}
/* from->ref[i] = to, with the reference counted. */
static void set(obj *from, int i, void *to)
{
    memshim_incref(to);
    void *old = from->ref[i];
    from->ref[i] = to;
    memshim_decref(old);
}

static void setup(void) { memshim_gc_disable(); memshim_gc_collect(2); }
TestSuite(gc, .init = setup);

/* ---- objects and counts ------------------------------------------------------- */
Test(gc, new_gives_zeroed_tracked_object_with_count_one)
{
    obj *o = mk(&obj_type);
    cr_assert_eq(memshim_refcount(o), 1);
    cr_assert(memshim_is_tracked(o));
    cr_assert_eq(memshim_typeof(o), &obj_type);
    for (int i = 0; i < NREF; i++) cr_assert_null(o->ref[i]);
    unsigned char *big = memshim_new(&obj_type, 1000);   /* an obj, and more */
    for (int i = 0; i < 1000; i++) cr_assert_eq(big[i], 0);
    memshim_decref(big);
    memshim_decref(o);
}

Test(gc, new_without_type_fails_with_einval)
{
    errno = 0;
    cr_assert_null(memshim_new(NULL, 16));
    cr_assert_eq(errno, EINVAL);
}

static const memshim_type bare_type = { "bare", NULL, NULL, NULL, NULL };

Test(gc, getsizeof_counts_header_and_size)
{
    void *a = memshim_new(&bare_type, 10), *b = memshim_new(&bare_type, 110);
    cr_assert_gt(memshim_getsizeof(a), 10);
    cr_assert_eq(memshim_getsizeof(b) - memshim_getsizeof(a), 100);
    memshim_decref(a);
    memshim_decref(b);
}

Test(gc, decref_to_zero_deallocs_once)
{
    obj *a = mk(&obj_type), *b = mk(&obj_type);
    set(a, 0, b);
    memshim_decref(b);
    cr_assert_eq(memshim_refcount(b), 1);
    memshim_incref(a);
    cr_assert_eq(memshim_refcount(a), 2);
    memshim_decref(a);
    cr_assert_eq(deaths, 0);
    memshim_decref(a);          /* a dies, and drops b */
    cr_assert_eq(deaths, 2);
    cr_assert_str_eq(events, "d1 d2 ");
}

/* CPython's tp_dealloc functions start with PyObject_GC_UnTrack(self): a
 * dealloc function untracking its own object, count 0 and already
 * untracked, does nothing and is no misuse (tracking or untracking a dead
 * object is: test_heap_errors). */
static void untrack_dealloc(void *o) { memshim_untrack(o); obj_dealloc(o); }
static const memshim_type untrack_type = { "untrack", obj_traverse, obj_clear, NULL, untrack_dealloc };

Test(gc, a_dealloc_function_may_untrack_its_own_object, .init = cr_redirect_stderr)
{
    obj *a = mk(&untrack_type);
    memshim_decref(a);
    cr_assert_eq(deaths, 1);
    fflush(stderr);
    cr_assert_stderr_eq_str("");
}

Test(gc, null_is_a_noop_for_incref_and_decref)
{
    memshim_incref(NULL);
    memshim_decref(NULL);
    cr_assert_eq(memshim_refcount(NULL), 0);
}

Test(gc, collect_rejects_bad_generation)
{
    errno = 0;
    cr_assert_eq(memshim_gc_collect(3), -1);
    cr_assert_eq(errno, EINVAL);
    cr_assert_eq(memshim_gc_collect(-1), -1);
}

/* ---- cycles ---------------------------------------------------------------------- */
Test(gc, self_cycle_is_collected)
{
    obj *a = mk(&obj_type);
    set(a, 0, a);
    memshim_decref(a);
    cr_assert_eq(deaths, 0, "a self-cycle cannot die by counting");
    cr_assert_eq(memshim_gc_collect(2), 1);
    cr_assert_eq(deaths, 1);
    cr_assert_eq(clears, 1);
}

Test(gc, cycle_held_from_outside_survives)
{
    obj *a = mk(&obj_type), *b = mk(&obj_type);
    set(a, 0, b);
    set(b, 0, a);
    memshim_decref(b);
    cr_assert_eq(memshim_gc_collect(2), 0);
    cr_assert_eq(deaths, 0);
    cr_assert_eq(memshim_refcount(a), 2);
    cr_assert_eq(memshim_refcount(b), 1);
    memshim_decref(a);
    cr_assert_eq(memshim_gc_collect(2), 2);
    cr_assert_eq(deaths, 2);
}

/* A list-like type holding any number of references. */
typedef struct vec { size_t n; void *item[8]; } vec;
static int vec_traverse(void *o, memshim_visit_fn visit, void *arg)
{
    vec *v = o;
    for (size_t i = 0; i < v->n; i++) { int r = visit(v->item[i], arg); if (r) return r; }
    return 0;
}
static void vec_clear(void *o)
{
    vec *v = o;
    size_t n = v->n;
    v->n = 0;
    for (size_t i = 0; i < n; i++) memshim_decref(v->item[i]);
}
static void vec_dealloc(void *o) { deaths++; vec_clear(o); }
static const memshim_type vec_type = { "vec", vec_traverse, vec_clear, NULL, vec_dealloc };

/* A leaf holding nothing, with no hooks at all. */
static const memshim_type leaf_type = { "leaf", NULL, NULL, NULL, NULL };

Test(gc, cycle_through_several_types_is_collected)
{
    vec *v = memshim_new(&vec_type, sizeof(vec));
    obj *o = mk(&obj_type), *n = mk(&noclear_type);
    void *leaf = memshim_new(&leaf_type, 8);
    /* v -> o -> n -> v, and v -> leaf, v -> v */
    v->item[v->n++] = o;
    v->item[v->n++] = leaf;
    memshim_incref(v);
    v->item[v->n++] = v;
    set(o, 0, n);
    memshim_decref(n);
    set(n, 0, v);
    memshim_decref(v);
    cr_assert_eq(memshim_refcount(leaf), 1);
    cr_assert_eq(memshim_gc_collect(2), 4);
    cr_assert_eq(deaths, 3, "vec, obj and noclear deallocated (the leaf has no dealloc)");
}

Test(gc, objects_hanging_off_a_cycle_are_collected_with_it)
{
    obj *a = mk(&obj_type), *b = mk(&obj_type), *c = mk(&obj_type), *d = mk(&obj_type);
    set(a, 0, b);
    set(b, 0, a);
    set(b, 1, c);                    /* c and d are not in the cycle */
    set(c, 0, d);
    memshim_decref(b);
    memshim_decref(c);
    memshim_decref(d);
    cr_assert_eq(memshim_gc_collect(2), 0);
    memshim_decref(a);
    cr_assert_eq(memshim_gc_collect(2), 4);
    cr_assert_eq(deaths, 4);
}

Test(gc, objects_reached_only_from_later_in_the_list_survive)
{
    /* Each node points at the one made before it, and only the last is
     * held: the scan meets every node before the one referring to it, so
     * each is first set aside as unreachable and then brought back. */
    obj *prev = NULL;
    for (int i = 0; i < 1000; i++) {
        obj *o = mk(&obj_type);
        o->ref[0] = prev;            /* moves the reference */
        prev = o;
    }
    obj *g = mk(&obj_type);          /* and a garbage self-cycle after them */
    set(g, 0, g);
    memshim_decref(g);
    cr_assert_eq(memshim_gc_collect(2), 1);
    cr_assert_eq(deaths, 1);
    cr_assert_eq(memshim_gc_collect(2), 0);
    memshim_decref(prev);
    cr_assert_eq(deaths, 1001);
}

Test(gc, cycle_whose_types_have_no_clear_is_kept)
{
    /* As CPython: with nothing to break it, the cycle survives the collection
     * (found, counted as uncollectable, moved to the oldest generation). */
    obj *a = mk(&noclear_type), *b = mk(&noclear_type);
    set(a, 0, b);
    set(b, 0, a);
    memshim_decref(a);
    memshim_decref(b);
    cr_assert_eq(memshim_gc_collect(2), 2);
    cr_assert_eq(deaths, 0);
    struct memshim_gc_stats st[3];
    memshim_gc_get_stats(st);
    cr_assert_eq(st[2].uncollectable, 2);
    cr_assert_eq(st[2].collected, 2);
    cr_assert_eq(memshim_refcount(a), 1);
    void *objs[4];
    cr_assert_eq(memshim_gc_get_objects(2, objs, 4), 2);
    /* Kept as plain members of the oldest generation: unreachable to a
     * walk, and found again by the next collection. */
    cr_assert_eq(memshim_is_reachable(a), 0);
    cr_assert_eq(memshim_gc_collect(2), 2);
    cr_assert_eq(deaths, 0);
}

/* A doubly linked ring: each object is held by both neighbours, so it
 * outlives its own clear and dies at the next one's.  Every object is
 * freed, and none is uncollectable (8 of 10 were counted so). */
Test(gc, a_ring_freed_by_later_clears_has_nothing_uncollectable)
{
    enum { N = 10 };
    obj *o[N];
    for (int i = 0; i < N; i++) o[i] = mk(&obj_type);
    for (int i = 0; i < N; i++) {
        set(o[i], 0, o[(i + 1) % N]);
        set(o[i], 1, o[(i + N - 1) % N]);
    }
    struct memshim_gc_stats before[3], after[3];
    memshim_gc_get_stats(before);
    for (int i = 0; i < N; i++) memshim_decref(o[i]);
    cr_assert_eq(memshim_gc_collect(2), N);
    cr_assert_eq(deaths, N);
    memshim_gc_get_stats(after);
    cr_assert_eq(after[2].uncollectable, before[2].uncollectable);
    cr_assert_eq(after[2].collected, before[2].collected + N);
}

/* The garbage is settled (its collection marks taken off) object by object
 * as its cycles are broken; a clear function that walks the graph finds
 * the rest settled all the same. */
static int walked[4], nwalked;
static void clear_walks(void *o)
{
    obj *x = o;
    if (x->ref[0] && nwalked < 4) walked[nwalked++] = memshim_is_reachable(x->ref[0]);
    obj_clear(o);
}
static const memshim_type walker_type = { "walker", obj_traverse, clear_walks, NULL, obj_dealloc };

Test(gc, clear_that_walks_the_graph_during_a_collection)
{
    obj *a = mk(&walker_type), *b = mk(&walker_type), *c = mk(&walker_type);
    set(a, 0, b); set(b, 0, c); set(c, 0, a);
    obj *held = mk(&obj_type);
    set(c, 1, held);
    memshim_decref(a); memshim_decref(b); memshim_decref(c);
    cr_assert_eq(memshim_gc_collect(2), 3);
    /* One clear broke the ring; the rest died by counting.  Its walk saw b
     * as an object outside the lists with a count: held, as any object out
     * of the collector's lists. */
    cr_assert_eq(nwalked, 1);
    cr_assert_eq(walked[0], 1);
    cr_assert_eq(deaths, 3);
    cr_assert_eq(memshim_refcount(held), 1);
    cr_assert_eq(memshim_is_reachable(held), 1);
    cr_assert_eq(memshim_gc_collect(2), 0);
    memshim_decref(held);
    cr_assert_eq(deaths, 4);
}

Test(gc, untracked_objects_are_invisible_to_the_collector)
{
    obj *a = mk(&obj_type), *b = mk(&obj_type);
    set(a, 0, b);
    set(b, 0, a);
    memshim_untrack(b);
    cr_assert_not(memshim_is_tracked(b));
    memshim_decref(a);
    memshim_decref(b);
    /* b's reference to a is not seen: a looks referenced from outside. */
    cr_assert_eq(memshim_gc_collect(2), 0);
    cr_assert_eq(deaths, 0);
    memshim_track(b);
    memshim_track(b);                /* tracking twice is harmless */
    cr_assert(memshim_is_tracked(b));
    cr_assert_eq(memshim_gc_collect(2), 2);
    cr_assert_eq(deaths, 2);
}

/* ---- clear that decrefs during a collection --------------------------------------- */
Test(gc, clear_that_frees_the_rest_of_the_garbage)
{
    /* A ring of 100: the first clear frees the 99 others by counting, while
     * delete_garbage is walking the list they are on. */
    obj *first = mk(&obj_type), *prev = first;
    for (int i = 1; i < 100; i++) {
        obj *o = mk(&obj_type);
        set(prev, 0, o);
        memshim_decref(o);
        prev = o;
    }
    set(prev, 0, first);
    memshim_decref(first);
    cr_assert_eq(memshim_gc_collect(2), 100);
    cr_assert_eq(deaths, 100);
    cr_assert_eq(clears, 1, "one clear broke the ring; counting freed the rest");
}

static obj *outsider;
static void clear_drops_outsider(void *o)
{
    clears++;
    memshim_decref(outsider);        /* an object outside the garbage dies here */
    outsider = NULL;
    drop_refs(o);
}
static const memshim_type drop_outsider_type = { "dropper", obj_traverse, clear_drops_outsider,
                                                 NULL, obj_dealloc };

Test(gc, clear_that_frees_a_reachable_object)
{
    obj *a = mk(&drop_outsider_type), *b = mk(&obj_type);
    outsider = mk(&obj_type);        /* held only by the global, through its count */
    set(a, 0, b);
    set(b, 0, a);
    memshim_decref(a);
    memshim_decref(b);
    cr_assert_eq(memshim_gc_collect(2), 2);
    cr_assert_eq(deaths, 3);
    cr_assert_null(outsider);
}

static size_t count_in_own_clear;
static int dealloc_seen_in_own_clear;
static void clear_checks_self(void *o)
{
    obj *x = o;
    void *r = x->ref[0];
    x->ref[0] = NULL;
    memshim_decref(r);               /* drops the last reference from the cycle to x */
    count_in_own_clear = memshim_refcount(x);
    dealloc_seen_in_own_clear = strstr(events, "d1 ") != NULL;
    clears++;
}
static const memshim_type self_check_type = { "selfcheck", obj_traverse, clear_checks_self,
                                              NULL, obj_dealloc };

Test(gc, object_is_kept_alive_while_its_clear_runs)
{
    obj *a = mk(&self_check_type), *b = mk(&noclear_type);   /* ids 1 and 2 */
    set(a, 0, b);
    set(b, 0, a);
    memshim_decref(a);
    memshim_decref(b);
    cr_assert_eq(memshim_gc_collect(2), 2);
    cr_assert_eq(clears, 1);
    cr_assert_eq(count_in_own_clear, 1, "the collector holds a reference during clear");
    cr_assert_not(dealloc_seen_in_own_clear);
    cr_assert_str_eq(events, "d2 d1 ");
}

/* ---- finalizers (PEP 442) ---------------------------------------------------------- */
Test(gc, finalizers_run_once_before_any_clear)
{
    obj *a = mk(&fin_type), *b = mk(&fin_type), *c = mk(&fin_type);
    set(a, 0, b);
    set(b, 0, c);
    set(c, 0, a);
    memshim_decref(a);
    memshim_decref(b);
    memshim_decref(c);
    cr_assert_eq(memshim_gc_collect(2), 3);
    cr_assert_eq(finals, 3);
    cr_assert_eq(deaths, 3);
    /* Every f precedes the first c. */
    char *first_clear = strchr(events, 'c');
    cr_assert_not_null(first_clear);
    for (char *p = first_clear; *p; p++) cr_assert_neq(*p, 'f', "finalizer after a clear: %s", events);
}

static obj *saved;
static void resurrecting_finalize(void *o)
{
    finals++;
    note('f', ((obj *)o)->id);
    if (!saved) { memshim_incref(o); saved = o; }
}
static const memshim_type resurrect_type = { "resurrect", obj_traverse, obj_clear,
                                             resurrecting_finalize, obj_dealloc };

Test(gc, finalizer_resurrects_a_cycle)
{
    obj *a = mk(&resurrect_type), *b = mk(&fin_type);
    set(a, 0, b);
    set(b, 0, a);
    memshim_decref(a);
    memshim_decref(b);
    cr_assert_eq(memshim_gc_collect(2), 0, "resurrected objects are not counted");
    cr_assert_eq(finals, 2);
    cr_assert_eq(saved, a);
    cr_assert_eq(deaths, 0);
    cr_assert_eq(clears, 0, "no clear once anything in the set is resurrected");
    cr_assert_eq(a->ref[0], b, "b is intact");
    /* Drop it again: collected this time, without running finalizers again. */
    memshim_decref(saved);
    cr_assert_eq(memshim_gc_collect(2), 2);
    cr_assert_eq(finals, 2, "PEP 442: once per object");
    cr_assert_eq(deaths, 2);
}

Test(gc, finalizer_resurrects_on_the_counting_path)
{
    obj *a = mk(&resurrect_type);
    memshim_decref(a);
    cr_assert_eq(finals, 1);
    cr_assert_eq(deaths, 0);
    cr_assert_eq(saved, a);
    cr_assert_eq(memshim_refcount(a), 1);
    cr_assert(memshim_is_tracked(a), "a resurrected object stays tracked");
    saved = NULL;
    memshim_decref(a);
    cr_assert_eq(finals, 1, "the finalizer does not run twice");
    cr_assert_eq(deaths, 1);
}

static obj *half;
static void resurrect_other_finalize(void *o)
{
    finals++;
    obj *x = o;
    if (x->ref[1]) { memshim_incref(x->ref[1]); half = x->ref[1]; }
}
static const memshim_type resurrect_other_type = { "resother", obj_traverse, obj_clear,
                                                   resurrect_other_finalize, obj_dealloc };

Test(gc, resurrecting_part_of_the_garbage_keeps_what_it_reaches)
{
    /* Cycle a <-> b; a also holds c, which holds d (d -> c cycle).  a's
     * finalizer resurrects c: c and d live, a and b are freed. */
    obj *a = mk(&resurrect_other_type), *b = mk(&obj_type), *c = mk(&obj_type), *d = mk(&obj_type);
    set(a, 0, b);
    set(b, 0, a);
    set(a, 1, c);
    set(c, 0, d);
    set(d, 0, c);
    memshim_decref(a); memshim_decref(b); memshim_decref(c); memshim_decref(d);
    cr_assert_eq(memshim_gc_collect(2), 2);
    cr_assert_eq(half, c);
    cr_assert_eq(deaths, 2);
    cr_assert_eq(c->ref[0], d);
    cr_assert_eq(memshim_refcount(c), 2, "held by d and by `half`");
    memshim_decref(half);
    cr_assert_eq(memshim_gc_collect(2), 2);
    cr_assert_eq(deaths, 4);
}

static void breaking_finalize(void *o)
{
    finals++;
    note('f', ((obj *)o)->id);
    drop_refs(o);                    /* breaks the cycle from inside */
}
static const memshim_type breaking_type = { "breaking", obj_traverse, obj_clear,
                                            breaking_finalize, obj_dealloc };

Test(gc, a_finalizer_that_breaks_its_cycle_frees_it_by_counting)
{
    obj *a = mk(&breaking_type), *b = mk(&obj_type), *c = mk(&obj_type);
    set(a, 0, b);
    set(b, 0, c);
    set(c, 0, a);
    memshim_decref(a); memshim_decref(b); memshim_decref(c);
    cr_assert_eq(memshim_gc_collect(2), 3, "died while finalizers ran: still counted");
    cr_assert_eq(deaths, 3);
    cr_assert_eq(clears, 0, "nothing left to clear");
    cr_assert_str_eq(events, "f1 d2 d3 d1 ");
}

static long nested_collect = -2;
static void collecting_finalize(void *o) { finals++; nested_collect = memshim_gc_collect(2); }
static const memshim_type collecting_type = { "collecting", obj_traverse, obj_clear,
                                              collecting_finalize, obj_dealloc };

Test(gc, collect_inside_a_collection_returns_zero)
{
    obj *a = mk(&collecting_type);
    set(a, 0, a);
    memshim_decref(a);
    cr_assert_eq(memshim_gc_collect(2), 1);
    cr_assert_eq(nested_collect, 0);
    cr_assert_eq(deaths, 1);
}

/* ---- the long chain ----------------------------------------------------------------- */
static obj *chain(long n)
{
    obj *head = mk(&obj_type), *prev = head;
    for (long i = 1; i < n; i++) {
        obj *o = mk(&obj_type);
        prev->ref[0] = o;            /* moves the reference */
        prev = o;
    }
    return head;
}

Test(gc, freeing_a_million_long_chain_does_not_overflow_the_stack, .timeout = 60)
{
    obj *head = chain(1000000);
    memshim_decref(head);
    cr_assert_eq(deaths, 1000000);
}

static void *drop_in_small_stack(void *head) { memshim_decref(head); return NULL; }

Test(gc, freeing_a_long_chain_in_a_thread_with_a_64k_stack, .timeout = 60)
{
    obj *head = chain(200000);
    pthread_attr_t at;
    pthread_attr_init(&at);
    pthread_attr_setstacksize(&at, 64 * 1024);
    pthread_t t;
    cr_assert_eq(pthread_create(&t, &at, drop_in_small_stack, head), 0);
    pthread_join(t, NULL);
    cr_assert_eq(deaths, 200000);
}

Test(gc, collecting_a_cycle_holding_a_million_long_chain, .timeout = 60)
{
    obj *a = mk(&obj_type);
    set(a, 0, a);
    a->ref[1] = chain(1000000);
    memshim_decref(a);
    cr_assert_eq(memshim_gc_collect(2), 1000001);
    cr_assert_eq(deaths, 1000001);
}

/* ---- SAVEALL and DEBUG_STATS ---------------------------------------------------------- */
Test(gc, saveall_keeps_unreachable_objects_in_the_garbage_list)
{
    memshim_gc_set_debug(MEMSHIM_DEBUG_SAVEALL);
    cr_assert_eq(memshim_gc_get_debug(), MEMSHIM_DEBUG_SAVEALL);
    obj *a = mk(&obj_type), *b = mk(&obj_type);
    set(a, 0, b);
    set(b, 0, a);
    memshim_decref(a);
    memshim_decref(b);
    cr_assert_eq(memshim_gc_collect(2), 2);
    cr_assert_eq(deaths + clears, 0);
    void *g[4] = { 0 };
    cr_assert_eq(memshim_gc_get_garbage(g, 4), 2);
    cr_assert((g[0] == a && g[1] == b) || (g[0] == b && g[1] == a));
    cr_assert_eq(memshim_refcount(a), 2, "the list holds a reference");
    /* Found again while the list holds them: nothing new. */
    cr_assert_eq(memshim_gc_collect(2), 0);
    memshim_gc_set_debug(0);
    cr_assert_eq(memshim_gc_clear_garbage(), 2);
    cr_assert_eq(memshim_gc_get_garbage(g, 4), 0);
    cr_assert_eq(memshim_gc_collect(2), 2);
    cr_assert_eq(deaths, 2);
}

Test(gc, debug_stats_prints_one_line_per_collection, .init = cr_redirect_stderr)
{
    memshim_gc_disable();
    memshim_gc_set_debug(MEMSHIM_DEBUG_STATS);
    obj *a = mk(&obj_type);
    set(a, 0, a);
    memshim_decref(a);
    memshim_gc_collect(1);
    memshim_gc_collect(2);
    fflush(stderr);
    FILE *f = cr_get_redirected_stderr();
    char buf[1024] = { 0 };
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    buf[n] = 0;
    int lines = 0;
    for (char *p = buf; *p; p++) lines += *p == '\n';
    cr_assert_eq(lines, 2, "got: %s", buf);
    cr_assert_not_null(strstr(buf, "memshim: gc: generation 1: 1 examined, 1 unreachable"), "got: %s", buf);
    cr_assert_not_null(strstr(buf, "memshim: gc: generation 2: 0 examined, 0 unreachable"), "got: %s", buf);
}
