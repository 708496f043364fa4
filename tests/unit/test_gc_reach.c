/* test_gc_reach.c - roots, reachability, get_referrers/get_referents,
 * registered plain blocks with explicit links, and gc_cycles_find (what
 * the leak report will list): queries that must leave the graph as found. */
#include <criterion/criterion.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include "memshim.h"
#include "collector.h"

#define NREF 3
typedef struct obj { void *ref[NREF]; } obj;
static int deaths;

static int obj_traverse(void *o, memshim_visit_fn visit, void *arg)
{
    obj *x = o;
    for (int i = 0; i < NREF; i++)
        if (x->ref[i]) { int r = visit(x->ref[i], arg); if (r) return r; }
    return 0;
}
static void obj_clear(void *o)
{
    obj *x = o;
    for (int i = 0; i < NREF; i++) { void *r = x->ref[i]; x->ref[i] = NULL; memshim_decref(r); }
}
static void obj_dealloc(void *o) { deaths++; obj_clear(o); }
static const memshim_type obj_type = { "obj", obj_traverse, obj_clear, NULL, obj_dealloc };
static const memshim_type other_type = { "other", obj_traverse, obj_clear, NULL, obj_dealloc };

static obj *mk(void)
{
    obj *o = memshim_new(&obj_type, sizeof(obj));
    cr_assert_not_null(o);
    return o;
}
static void set(obj *from, int i, void *to)
{
    memshim_incref(to);
    void *old = from->ref[i];
    from->ref[i] = to;
    memshim_decref(old);
}
static int contains(void **v, size_t n, void *p)
{
    for (size_t i = 0; i < n; i++) if (v[i] == p) return 1;
    return 0;
}

static void setup(void) { memshim_gc_disable(); }
TestSuite(reach, .init = setup);

/* ---- roots ---------------------------------------------------------------------- */
Test(reach, a_root_holds_a_reference)
{
    obj *a = mk();
    cr_assert_eq(memshim_root_add(a), 0);
    cr_assert_eq(memshim_refcount(a), 2);
    memshim_decref(a);
    cr_assert_eq(deaths, 0);
    cr_assert_eq(memshim_root_remove(a), 0);
    cr_assert_eq(deaths, 1);
}

Test(reach, roots_count_and_unknown_roots_fail)
{
    obj *a = mk();
    memshim_root_add(a);
    memshim_root_add(a);
    cr_assert_eq(memshim_refcount(a), 3);
    cr_assert_eq(memshim_root_remove(a), 0);
    cr_assert_eq(memshim_root_remove(a), 0);
    errno = 0;
    cr_assert_eq(memshim_root_remove(a), -1);
    cr_assert_eq(errno, ENOENT);
    cr_assert_eq(memshim_root_add(NULL), -1);
    cr_assert_eq(errno, EINVAL);
    memshim_decref(a);
}

Test(reach, a_rooted_cycle_is_not_collected)
{
    obj *a = mk(), *b = mk();
    set(a, 0, b);
    set(b, 0, a);
    memshim_root_add(a);
    memshim_decref(a);
    memshim_decref(b);
    cr_assert_eq(memshim_gc_collect(2), 0);
    cr_assert(memshim_is_reachable(b));
    memshim_root_remove(a);
    cr_assert_not(memshim_is_reachable(a));
    cr_assert_eq(memshim_gc_collect(2), 2);
    cr_assert_eq(deaths, 2);
}

/* ---- reachability -------------------------------------------------------------------- */
Test(reach, held_objects_are_reachable_and_garbage_is_not)
{
    obj *held = mk(), *child = mk();
    set(held, 0, child);
    memshim_decref(child);
    obj *g1 = mk(), *g2 = mk();      /* a garbage cycle */
    set(g1, 0, g2);
    set(g2, 0, g1);
    set(g2, 1, held);                /* garbage may point at live objects */
    memshim_decref(g1);
    memshim_decref(g2);
    cr_assert_eq(memshim_is_reachable(held), 1);
    cr_assert_eq(memshim_is_reachable(child), 1);
    cr_assert_eq(memshim_is_reachable(g1), 0);
    cr_assert_eq(memshim_is_reachable(g2), 0);
    cr_assert_eq(deaths, 0, "a query frees nothing");
    /* The graph is as it was: a collection finds exactly the garbage. */
    cr_assert_eq(memshim_gc_collect(2), 2);
    cr_assert_eq(memshim_refcount(held), 1);
    cr_assert_eq(memshim_is_reachable(child), 1);
    memshim_decref(held);
}

Test(reach, reachability_crosses_generations_and_frozen_objects)
{
    obj *a = mk(), *b = mk(), *c = mk();
    set(a, 0, b);
    set(b, 0, c);
    memshim_decref(b);
    memshim_decref(c);
    memshim_gc_collect(1);           /* a, b, c in generation 2 */
    obj *d = mk();
    set(c, 1, d);                    /* d in generation 0 */
    memshim_decref(d);
    memshim_gc_freeze();             /* everything frozen */
    obj *e = mk();
    set(d, 1, e);                    /* e young, reached through frozen d */
    memshim_decref(e);
    cr_assert(memshim_is_reachable(e));
    cr_assert(memshim_is_reachable(c));
    memshim_gc_unfreeze();
    memshim_decref(a);
    cr_assert_eq(deaths, 5);
}

Test(reach, untracked_live_objects_count_as_reachable)
{
    obj *a = mk();
    memshim_untrack(a);
    cr_assert_eq(memshim_is_reachable(a), 1);
    memshim_decref(a);
}

/* ---- referrers and referents -------------------------------------------------------- */
Test(reach, referrers_and_referents)
{
    obj *a = mk(), *b = mk(), *c = mk();
    set(a, 0, b);
    set(c, 0, b);
    set(c, 1, b);                    /* two references from c */
    set(c, 2, a);
    void *out[8];
    size_t n = memshim_get_referrers(b, out, 8);
    cr_assert_eq(n, 2, "each referrer once");
    cr_assert(contains(out, n, a) && contains(out, n, c));
    cr_assert_eq(memshim_get_referrers(c, out, 8), 0);
    n = memshim_get_referents(c, out, 8);
    cr_assert_eq(n, 3, "each reference, as CPython's get_referents");
    cr_assert(out[0] == b && out[1] == b && out[2] == a);
    /* A short buffer: the total is returned, max filled. */
    out[1] = NULL;
    cr_assert_eq(memshim_get_referents(c, out, 1), 3);
    cr_assert_eq(out[0], b);
    cr_assert_null(out[1]);
    cr_assert_eq(memshim_get_referents(b, out, 8), 0);
    memshim_decref(a); memshim_decref(b); memshim_decref(c);
}

Test(reach, referrers_are_searched_in_every_generation_and_frozen)
{
    obj *target = mk(), *frozen = mk();
    set(frozen, 0, target);
    memshim_gc_freeze();
    obj *old = mk();
    set(old, 0, target);
    memshim_gc_collect(1);           /* old to generation 2 */
    obj *young = mk();
    set(young, 0, target);
    void *out[8];
    size_t n = memshim_get_referrers(target, out, 8);
    cr_assert_eq(n, 3);
    cr_assert(contains(out, n, old) && contains(out, n, young) && contains(out, n, frozen));
    cr_assert_eq(memshim_get_referrers(target, out, 1), 3, "the total, whatever max");
}

/* ---- plain blocks and links ------------------------------------------------------------- */
Test(reach, blocks_are_reachable_only_from_roots_through_links)
{
    void *top = malloc(64), *mid = malloc(64), *leaf = malloc(64);
    cr_assert_eq(memshim_register(top, "top"), 0);
    cr_assert_eq(memshim_register(mid, "mid"), 0);
    cr_assert_eq(memshim_register(leaf, "leaf"), 0);
    cr_assert_eq(memshim_link(top, mid), 0);
    cr_assert_eq(memshim_link(mid, leaf), 0);
    cr_assert_eq(memshim_is_reachable(leaf), 0, "no root yet");
    memshim_root_add(top);
    cr_assert_eq(memshim_is_reachable(leaf), 1);
    cr_assert_eq(memshim_unlink(mid, leaf), 0);
    cr_assert_eq(memshim_is_reachable(mid), 1);
    cr_assert_eq(memshim_is_reachable(leaf), 0);
    memshim_root_remove(top);
    cr_assert_eq(memshim_is_reachable(top), 0);
    memshim_unregister(top); memshim_unregister(mid); memshim_unregister(leaf);
    free(top); free(mid); free(leaf);
}

Test(reach, links_carry_reachability_between_blocks_and_objects)
{
    void *blk = malloc(32);
    memshim_register(blk, "config");
    memshim_root_add(blk);
    obj *a = mk(), *b = mk();        /* a garbage cycle, known to the block */
    set(a, 0, b);
    set(b, 0, a);
    memshim_decref(a);
    memshim_decref(b);
    cr_assert_eq(memshim_link(blk, a), 0);
    cr_assert_eq(memshim_is_reachable(b), 1, "through blk -> a -> b");
    void *out[4];
    cr_assert_eq(memshim_get_referents(blk, out, 4), 1);
    cr_assert_eq(out[0], a);
    size_t n = memshim_get_referrers(a, out, 4);
    cr_assert_eq(n, 2);
    cr_assert(contains(out, n, blk) && contains(out, n, b));
    /* Links are not references: the collector frees the cycle anyway, and
     * the link to the dead object goes with it. */
    cr_assert_eq(memshim_gc_collect(2), 2);
    cr_assert_eq(deaths, 2);
    cr_assert_eq(memshim_get_referents(blk, out, 4), 0);
    /* An object can link to a block. */
    obj *c = mk();
    void *blk2 = malloc(16);
    memshim_register(blk2, "buffer");
    memshim_link(c, blk2);
    memshim_root_remove(blk);
    cr_assert_eq(memshim_is_reachable(blk2), 1, "c is held from outside, and links to blk2");
    n = memshim_get_referents(c, out, 4);
    cr_assert_eq(n, 1);
    cr_assert_eq(out[0], blk2);
    memshim_decref(c);
    cr_assert_eq(memshim_is_reachable(blk2), 0);
    memshim_unregister(blk);
    memshim_unregister(blk2);
    free(blk); free(blk2);
}

Test(reach, links_have_multiplicity)
{
    void *x = malloc(8), *y = malloc(8);
    memshim_register(x, "x");
    memshim_register(y, "y");
    memshim_root_add(x);
    memshim_link(x, y);
    memshim_link(x, y);
    cr_assert_eq(memshim_unlink(x, y), 0);
    cr_assert_eq(memshim_is_reachable(y), 1);
    cr_assert_eq(memshim_unlink(x, y), 0);
    cr_assert_eq(memshim_is_reachable(y), 0);
    errno = 0;
    cr_assert_eq(memshim_unlink(x, y), -1);
    cr_assert_eq(errno, ENOENT);
    memshim_unregister(x); memshim_unregister(y);
    free(x); free(y);
}

Test(reach, unregister_drops_the_links_both_ways)
{
    void *x = malloc(8), *y = malloc(8), *z = malloc(8);
    memshim_register(x, "x");
    memshim_register(y, "y");
    memshim_register(z, "z");
    memshim_link(x, y);
    memshim_link(y, z);
    memshim_link(y, y);
    cr_assert_eq(memshim_unregister(y), 0);
    void *out[4];
    cr_assert_eq(memshim_get_referents(x, out, 4), 0);
    cr_assert_eq(memshim_get_referrers(z, out, 4), 0);
    errno = 0;
    cr_assert_eq(memshim_unregister(y), -1);
    cr_assert_eq(errno, ENOENT);
    cr_assert_eq(memshim_register(NULL, "n"), -1);
    cr_assert_eq(errno, EINVAL);
    cr_assert_eq(memshim_link(x, NULL), -1);
    memshim_unregister(x); memshim_unregister(z);
    free(x); free(y); free(z);
}

Test(reach, registering_an_object_is_refused)
{
    obj *a = mk();
    memshim_root_add(a);             /* gives a a node */
    errno = 0;
    cr_assert_eq(memshim_register(a, "no"), -1);
    cr_assert_eq(errno, EINVAL);
    memshim_root_remove(a);
    memshim_decref(a);
}

/* ---- gc_cycles_find -------------------------------------------------------------------- */
typedef struct report {
    int nobj, nedge;
    const void *obj[16];
    const char *name[16];
    size_t group[16], size[16];
    const void *from[16], *to[16];
} report;

static void on_object(void *arg, const void *o, const char *name, size_t size, size_t group)
{
    report *r = arg;
    cr_assert_lt(r->nobj, 16);
    r->obj[r->nobj] = o; r->name[r->nobj] = name; r->size[r->nobj] = size;
    r->group[r->nobj++] = group;
}
static void on_edge(void *arg, const void *from, const void *to)
{
    report *r = arg;
    cr_assert_lt(r->nedge, 16);
    r->from[r->nedge] = from;
    r->to[r->nedge++] = to;
}
static int find(report *r, const void *o)
{
    for (int i = 0; i < r->nobj; i++) if (r->obj[i] == o) return i;
    return -1;
}

Test(reach, cycles_find_reports_garbage_without_freeing_it)
{
    /* Group A: x -> y -> z -> x (types obj, other, obj), z -> w (a leaf
     * hanging off the cycle).  Group B: s -> s.  Live: h -> x' (h held). */
    obj *x = mk(), *y = memshim_new(&other_type, sizeof(obj)), *z = mk(), *w = mk();
    obj *h = mk(), *hc = mk();
    set(x, 0, y); set(y, 0, z); set(z, 0, x); set(z, 1, w);
    set(h, 0, hc);
    memshim_decref(y); memshim_decref(z); memshim_decref(w); memshim_decref(hc);
    memshim_gc_collect(0);           /* to generation 1, x still held */
    obj *s = mk();                   /* generation 0 */
    set(s, 0, s);
    memshim_decref(x);
    memshim_decref(s);
    report r = { 0 };
    gc_cycle_sink sink = { on_object, on_edge, &r };
    cr_assert_eq(gc_cycles_find(&sink), 5);
    cr_assert_eq(r.nobj, 5);
    cr_assert_eq(deaths, 0);
    int ix = find(&r, x), iy = find(&r, y), iz = find(&r, z), iw = find(&r, w), is = find(&r, s);
    cr_assert(ix >= 0 && iy >= 0 && iz >= 0 && iw >= 0 && is >= 0);
    cr_assert_eq(find(&r, h), -1);
    cr_assert_eq(find(&r, hc), -1);
    cr_assert_str_eq(r.name[iy], "other");
    cr_assert_str_eq(r.name[ix], "obj");
    cr_assert_eq(r.size[ix], memshim_getsizeof(x));
    cr_assert(r.group[ix] == r.group[iy] && r.group[iy] == r.group[iz] && r.group[iz] == r.group[iw]);
    cr_assert_neq(r.group[is], r.group[ix]);
    cr_assert(r.group[is] <= 1 && r.group[ix] <= 1, "groups are numbered from 0");
    cr_assert_eq(r.nedge, 5);
    int found_zw = 0, found_ss = 0;
    for (int i = 0; i < r.nedge; i++) {
        found_zw += r.from[i] == z && r.to[i] == w;
        found_ss += r.from[i] == s && r.to[i] == s;
    }
    cr_assert(found_zw == 1 && found_ss == 1);
    /* Nothing was disturbed: the collection finds the same five. */
    cr_assert_eq(memshim_gc_collect(2), 5);
    cr_assert_eq(deaths, 5);
    r.nobj = r.nedge = 0;
    cr_assert_eq(gc_cycles_find(&sink), 0);
    memshim_decref(h);
}

/* A full collection and the walks count every tracked object's references
 * in one pass, each object joining the set at its first visit: a frozen
 * object that young ones reference is outside the set, and must be left
 * as it was (its list links intact) by each. */
Test(reach, frozen_referents_are_left_intact_by_collections_and_walks)
{
    obj *f = mk(), *g = mk();
    set(f, 0, g);                    /* f -> g, both frozen, f held */
    memshim_decref(g);
    memshim_gc_freeze();
    obj *y = mk(), *c = mk();        /* young: y -> f, and the garbage cycle c -> c -> f */
    set(y, 0, f);
    set(c, 0, c);
    set(c, 1, g);
    memshim_decref(c);
    report r = { 0 };
    gc_cycle_sink sink = { on_object, on_edge, &r };
    cr_assert_eq(gc_cycles_find(&sink), 1);
    cr_assert_eq(r.nobj, 1);
    cr_assert_eq(r.obj[0], c);
    cr_assert_eq(memshim_gc_collect(2), 1);
    cr_assert_eq(deaths, 1);
    cr_assert_eq(memshim_gc_get_freeze_count(), 2);
    memshim_decref(f);
    memshim_decref(y);               /* y, f, g die by counting: f and g unlinked from
                                      * the frozen list, through their prev links */
    cr_assert_eq(deaths, 4);
    cr_assert_eq(memshim_gc_get_freeze_count(), 0);
    cr_assert_eq(memshim_gc_get_objects(-1, NULL, 0), 0);
}

/* ---- the allocator vtable (collector.h) ---------------------------------------------- */
typedef struct counting { long blocks; size_t bytes; int bad_size; } counting;

static void *count_alloc(void *ctx, size_t n)
{
    counting *c = ctx;
    size_t *p = malloc(n + 16);
    if (!p) return NULL;
    p[0] = n;
    c->blocks++;
    c->bytes += n;
    return (char *)p + 16;
}
static void count_free(void *ctx, void *q, size_t n)
{
    counting *c = ctx;
    size_t *p = (size_t *)((char *)q - 16);
    if (p[0] != n) c->bad_size++;
    c->blocks--;
    c->bytes -= n;
    free(p);
}

Test(collector_alloc, every_table_gives_its_memory_back)
{
    static counting c;
    gc_allocator a = { count_alloc, count_free, &c };
    cr_assert_eq(gc_set_allocator(&a), 0);
    memshim_gc_disable();
    obj *x = mk(), *y = mk();
    cr_assert_eq(c.blocks, 2, "objects come from the allocator");
    set(x, 0, y);
    set(y, 0, x);
    memshim_weakref *w[40];
    for (int i = 0; i < 40; i++) w[i] = memshim_weakref_new(i % 2 ? x : y, NULL, NULL);
    void *blk = malloc(8);
    memshim_register(blk, "blk");
    memshim_root_add(blk);
    for (int i = 0; i < 10; i++) memshim_link(blk, x);
    memshim_link(x, blk);
    memshim_root_add(y);
    cr_assert_eq(memshim_is_reachable(x), 1);
    void *out[4];
    memshim_get_referrers(x, out, 4);
    gc_cycle_sink sink = { NULL, NULL, NULL };
    cr_assert_eq(gc_cycles_find(&sink), 0);
    memshim_root_remove(y);
    memshim_decref(x);
    memshim_decref(y);
    cr_assert_eq(memshim_gc_collect(2), 2);
    for (int i = 0; i < 40; i++) memshim_weakref_free(w[i]);
    memshim_unregister(blk);
    free(blk);
    cr_assert_eq(c.bad_size, 0, "a free with the wrong size");
    cr_assert_eq(c.blocks, 0, "%ld blocks (%zu bytes) still out", c.blocks, c.bytes);
    /* Too late to change the allocator now. */
    errno = 0;
    cr_assert_eq(gc_set_allocator(NULL), -1);
    cr_assert_eq(errno, EBUSY);
}
