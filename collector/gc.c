/* gc.c - the cycle collector's pipeline: find the unreachable objects of a
 * generation, clear their weak references, finalize, check for resurrection,
 * break cycles with clear; generations and the automatic-collection rule.
 *
 * This is CPython's Modules/gcmodule.c (3.11) for memshim objects; the
 * user-facing memshim_gc_* functions are in gcapi.c.  collect_main is the
 * main function: read it to see how a collection proceeds.
 *
 * Finding the unreachable ones
 * ----------------------------
 * Only reference counts and traverse functions are known, not where the
 * external references are.  So: copy each refcount into gc_refs
 * (update_refs), subtract every reference that one examined object holds to
 * another (subtract_refs); what is left is the number of references from
 * outside the set.  Objects with gc_refs > 0 are reachable, and so is
 * everything they reach (move_unreachable).  The rest is garbage.
 *
 * While this runs no user code runs but traverse functions, so the
 * NEXT_UNREACHABLE bits and the gc_refs in prev are seen by nobody else.
 * Before any finalizer or callback runs, every object of the unreachable
 * set is a normal list member again with GC_COLLECTING off
 * (scan_unreachable), so memshim_untrack, queries and deaths work on it.
 * When the garbage needs neither (no weak references, no finalizer to
 * run), that pass over it is left to delete_garbage, which settles each
 * object as it reaches it; until then an object may keep the two marks,
 * which only the walks of reach.c would misread: they settle the rest
 * first (gc_settle_garbage), and lists read past NEXT_UNREACHABLE.
 *
 * Where this differs from CPython (see memshim(3), "DIFFERENCES"):
 * - An object whose count is 0 while tracked is dying in another thread,
 *   blocked on the collector lock; it is treated as reachable and left to
 *   that thread.
 * - The resurrection check (a second deduce_unreachable over the garbage)
 *   runs only if some finalizer or weakref callback ran: nothing else can
 *   take a reference to garbage.
 * - Weak references created by finalizers or callbacks to still-unreachable
 *   objects are cleared, and their callbacks run, before any clear: a second
 *   pass, repeated with the resurrection check until no callback runs, 16
 *   times at most (then, as in CPython, a callback runs when its object
 *   dies, which may be during the clears).
 */
#include <stdarg.h>
#include <stdio.h>
#include <time.h>
#include <unistd.h>
#include "gc_int.h"

#define GC_WEAKREF_ROUNDS 16    /* step 7's rounds of callbacks, at most */

#if MS_DEBUG
/* Check links and the flag state of every member: executable documentation
 * of each phase's postcondition.  `flags_on` must be set, `flags_off` clear. */
static void validate_list(gc_head *head, uintptr_t flags_on, uintptr_t flags_off,
                          uintptr_t next_mask)
{
    gc_head *prev = head;
    gc_head *g = (gc_head *)(head->next & ~next_mask);
    while (g != head) {
        if (gc_prev(g) != prev) gc_fatal("validate_list: bad prev link", gc_obj(g));
        if ((g->prev & (flags_on | flags_off)) != flags_on)
            gc_fatal("validate_list: unexpected flags", gc_obj(g));
        if ((g->next & GC_NEXT_UNREACHABLE) != (next_mask & GC_NEXT_UNREACHABLE))
            gc_fatal("validate_list: unexpected unreachable bit", gc_obj(g));
        prev = g;
        g = (gc_head *)(g->next & ~next_mask);
    }
    if (gc_prev(head) != prev) gc_fatal("validate_list: bad tail", head);
}
#else
#define validate_list(head, on, off, mask) do { } while (0)
#endif

/* ---- deduce_unreachable ------------------------------------------------------ */

/* Set every member's gc_refs to its refcount and GC_COLLECTING on.
 * Postcondition: gc_refs >= 1 for all; prev pointers are lost (next stays). */
size_t gc_update_refs(gc_head *containers)
{
    size_t n = 0;
    for (gc_head *g = gc_next(containers); g != containers; g = gc_next(g)) {
        uint32_t rc = gc_refcnt(g);
        /* 0: another thread dropped the last reference and waits for our
         * lock to free it.  Keep it (and what it holds) out of the garbage. */
        gc_reset_refs(g, rc ? rc : 1);
        n++;
    }
    return n;
}

static void refs_too_small(gc_head *g, void *parent)
{
    if (gc_st.warned_refs) return;
    gc_st.warned_refs = 1;
    gc_warn_line("memshim: collector: object %p (%s) is visited by more traverse calls "
                  "than its reference count (parent %p): a missing incref?\n",
                  gc_obj(g), g->type->name ? g->type->name : "?", parent ? gc_obj(parent) : NULL);
}

static int visit_decref(void *obj, void *parent)
{
    if (obj) {
        gc_head *g = gc_hdr(obj);
        /* Only the examined set has GC_COLLECTING, so only their gc_refs count. */
        if (g->prev & GC_COLLECTING) {
            if (GC_LIKELY(g->prev >> GC_REFS_SHIFT)) g->prev -= (uintptr_t)1 << GC_REFS_SHIFT;
            else refs_too_small(g, parent);
        }
    }
    return 0;
}

/* Subtract internal references.  Postcondition: gc_refs of each member is
 * the number of references to it from outside the set (>= 0). */
void gc_subtract_refs(gc_head *containers)
{
    for (gc_head *g = gc_next(containers); g != containers; g = gc_next(g)) {
        memshim_traverse_fn tr = g->type->traverse;
        if (tr) tr(gc_obj(g), visit_decref, g);
    }
}

/* The first visit of a member in gc_count_refs: it enters the set as
 * gc_update_refs would have put it there. */
static inline uintptr_t enter_set(const gc_head *g)
{
    uint32_t rc = gc_refcnt(g);
    return (g->prev & GC_PERSIST) | GC_COLLECTING | ((uintptr_t)(rc ? rc : 1) << GC_REFS_SHIFT);
}

static int visit_decref_all(void *obj, void *parent)
{
    if (obj) {
        gc_head *g = gc_hdr(obj);
        uintptr_t p = g->prev;
        if (!(p & GC_COLLECTING)) {
            if (!g->next) return 0;        /* untracked: not in the set */
            p = enter_set(g);              /* tracked: ahead in the lists */
        }
        if (GC_LIKELY(p >> GC_REFS_SHIFT)) g->prev = p - ((uintptr_t)1 << GC_REFS_SHIFT);
        else { g->prev = p; refs_too_small(g, parent); }
    }
    return 0;
}

/* gc_update_refs then gc_subtract_refs over `lists`, in one walk instead of
 * two: for a set of a million objects each walk costs as much as the rest
 * of a collection that finds nothing.  An object enters the set at its
 * first visit, as a referent or in its list, whichever comes first.  So
 * the set must be every tracked object (a referent outside it must be
 * known by its header alone, and an untracked one has next 0): no tracked
 * object may be out of `lists`, in a running collection's own lists or in
 * this thread's trash (gc_trash_empty).  Other threads' trash is empty
 * while this one holds the lock. */
size_t gc_count_refs(gc_head **lists, int nlists)
{
    size_t n = 0;
    for (int i = 0; i < nlists; i++)
        for (gc_head *g = gc_next(lists[i]); g != lists[i]; g = gc_next(g)) {
            if (!(g->prev & GC_COLLECTING)) g->prev = enter_set(g);
            memshim_traverse_fn tr = g->type->traverse;
            if (tr) tr(gc_obj(g), visit_decref_all, g);
            n++;
        }
    return n;
}

static int visit_reachable(void *obj, void *arg)
{
    if (!obj) return 0;
    gc_head *g = gc_hdr(obj), *young = arg;
    /* Not in the set, or already scanned by move_unreachable (to its left). */
    if (!(g->prev & GC_COLLECTING)) return 0;
    if (g->next & GC_NEXT_UNREACHABLE) {
        /* move_unreachable put it in `unreachable` with gc_refs 0, but it is
         * reachable after all: back to the end of young, to be scanned. */
        gc_head *prev = gc_prev(g);
        gc_head *next = (gc_head *)(g->next & ~GC_NEXT_UNREACHABLE);
        prev->next = g->next;              /* keeps the bit, if prev has it */
        gc_set_prev(next, prev);
        gc_list_append(g, young);
        gc_set_refs(g, 1);
    } else if (gc_get_refs(g) == 0) {
        /* Still ahead in young: tell move_unreachable it is reachable. */
        gc_set_refs(g, 1);
    }
    /* gc_refs > 0: ahead in young, will be scanned anyway. */
    return 0;
}

/* Move everything with gc_refs 0 that nothing reachable reaches from young
 * to unreachable.  Invariant of the scan: everything to the left of `g` in
 * young is reachable, scanned, has its prev pointer back and GC_COLLECTING
 * off.  Objects moved to unreachable carry NEXT_UNREACHABLE and keep
 * GC_COLLECTING (so a later visit can bring them back).  Returns the number
 * of objects left in young; *work, at least the number moved to unreachable
 * that have weak references or a finalizer to run. */
static size_t move_unreachable(gc_head *young, gc_head *unreachable, size_t *work)
{
    gc_head *prev = young;
    gc_head *g = gc_next(young);
    size_t kept = 0, w = 0;
    while (g != young) {
        if (gc_get_refs(g)) {
            memshim_traverse_fn tr = g->type->traverse;
            if (tr) tr(gc_obj(g), visit_reachable, young);
            g->prev = (g->prev & GC_PERSIST) | (uintptr_t)prev;  /* pointer back, COLLECTING off */
            prev = g;
            kept++;
        } else {
            /* young is singly linked here: only next needs fixing. */
            prev->next = g->next;
            w += (g->prev & GC_WEAKREFS) || (g->type->finalize && !(g->prev & GC_FINALIZED));
            gc_head *last = gc_prev(unreachable);
            /* Sets the bit on the sentinel's next too when last is the
             * sentinel; repaired below. */
            last->next = GC_NEXT_UNREACHABLE | (uintptr_t)g;
            gc_set_prev(g, last);
            g->next = GC_NEXT_UNREACHABLE | (uintptr_t)unreachable;
            gc_set_prev(unreachable, g);
        }
        g = gc_next(prev);
    }
    gc_set_prev(young, prev);
    unreachable->next &= ~GC_NEXT_UNREACHABLE;
    *work = w;
    return kept;
}

/* Postcondition: young holds the reachable objects (GC_COLLECTING off, prev
 * pointers valid), unreachable the rest (GC_COLLECTING on, NEXT_UNREACHABLE
 * set).  Returns the number left in young; *found, the number in
 * unreachable; *work as move_unreachable's. */
static size_t deduce_unreachable(gc_head *young, gc_head *unreachable, size_t *found,
                                 size_t *work)
{
    validate_list(young, 0, GC_COLLECTING, 0);
    size_t n;
    /* A full collection's first pass, before its own lists hold any object. */
    if (young == &gc_st.gen[GC_NGEN - 1].head && gc_list_is_empty(&gc_st.permanent) &&
        gc_trash_empty()) {
        n = gc_count_refs(&young, 1);
    } else {
        n = gc_update_refs(young);
        gc_subtract_refs(young);
    }
    size_t kept = move_unreachable(young, unreachable, work);
    validate_list(young, 0, GC_COLLECTING, 0);
    validate_list(unreachable, GC_COLLECTING, 0, GC_NEXT_UNREACHABLE);
    *found = n - kept;
    return kept;
}

/* An object of the garbage becomes a normal list member. */
static inline void settle(gc_head *g)
{
    g->next &= ~GC_NEXT_UNREACHABLE;
    g->prev &= ~GC_COLLECTING;
}

/* The garbage that delete_garbage has not reached yet, settled now: what a
 * clear or dealloc function does may walk the graph (reach.c). */
void gc_settle_garbage(void)
{
    gc_head *l = gc_st.unsettled;
    if (!l) return;
    for (gc_head *g = gc_next(l); g != l; g = gc_next(g)) settle(g);
    gc_st.unsettled = NULL;
}

/* Make unreachable a normal list with GC_COLLECTING off everywhere, before
 * user code runs; count the members and those needing weakref or finalizer
 * work.  Returns the number of members. */
static size_t scan_unreachable(gc_head *unreachable, size_t *nweak, size_t *nfinal)
{
    size_t n = 0, w = 0, f = 0;
    for (gc_head *g = gc_next(unreachable); g != unreachable; ) {
        settle(g);
        w += (g->prev & GC_WEAKREFS) != 0;
        f += g->type->finalize && !(g->prev & GC_FINALIZED);
        n++;
        g = gc_next(g);
    }
    validate_list(unreachable, 0, GC_COLLECTING, 0);
    if (nweak) *nweak = w;
    if (nfinal) *nfinal = f;
    return n;
}

/* ---- garbage handling ---------------------------------------------------------- */

/* Clear every weak reference to the set, then call the callbacks: no
 * callback runs while any referent is half-cleared (none has been cleared
 * yet) nor while a weakref to garbage could still be followed.  Returns the
 * number of callbacks called. */
static size_t handle_weakrefs(gc_head *unreachable)
{
    gc_wr_list pending = { NULL, NULL };
    for (gc_head *g = gc_next(unreachable); g != unreachable; g = gc_next(g))
        if (g->prev & GC_WEAKREFS) gc_weakref_detach(g, &pending);
    return gc_weakref_run(&pending);
}

/* Run each pending finalizer once (PEP 442), holding a reference across the
 * call.  Members may die meanwhile (untracking unlinks them), so each is
 * moved to `seen` before its finalizer runs.  Returns finalizers run. */
static size_t finalize_garbage(gc_head *collectable)
{
    gc_head seen;
    size_t ran = 0;
    gc_list_init(&seen);
    while (!gc_list_is_empty(collectable)) {
        gc_head *g = gc_next(collectable);
        gc_list_move(g, &seen);
        const memshim_type *t = g->type;
        if (t->finalize && !(g->prev & GC_FINALIZED)) {
            g->prev |= GC_FINALIZED;
            gc_incref(g);
            t->finalize(gc_obj(g));
            gc_decref(g);
            ran++;
        }
    }
    gc_list_merge(&seen, collectable);
    return ran;
}

/* Finalizers or callbacks ran: some of the set may be referenced from
 * outside now.  Recompute; resurrected objects (and what they reach) go to
 * `old`, the rest to still_unreachable (a normal list, GC_COLLECTING off).
 * Returns the number resurrected. */
static size_t handle_resurrected_objects(gc_head *unreachable, gc_head *still_unreachable,
                                         gc_head *old)
{
    gc_list_init(still_unreachable);
    size_t found, work;
    size_t n = deduce_unreachable(unreachable, still_unreachable, &found, &work);
    scan_unreachable(still_unreachable, NULL, NULL);
    gc_list_merge(unreachable, old);
    return n;
}

/* Break the cycles: call clear on each (holding a reference so it lives
 * through its own clear), or keep it in the garbage list under SAVEALL.
 * Whatever is still alive once every clear has run goes to `old`: returns
 * how many (none under SAVEALL).  An object alive after its own clear
 * mostly dies at another's (a doubly linked ring: each is held by both
 * neighbours); counted then, 8 of a ring of 10 were "uncollectable" though
 * all were freed (found by a helper against CPython's test_gc). */
static size_t delete_garbage(gc_head *collectable, gc_head *old)
{
    gc_head kept;                          /* alive after their own clear; a death unlinks */
    gc_list_init(&kept);
    while (!gc_list_is_empty(collectable)) {
        gc_head *g = gc_next(collectable);
        settle(g);
        if (gc_st.debug & MEMSHIM_DEBUG_SAVEALL) {
            if (gc_garbage_append(g) < 0) gc_warn_line("memshim: collector: no memory for "
                                                        "the garbage list; object %p kept\n", gc_obj(g));
        } else if (g->type->clear) {
            gc_incref(g);
            g->type->clear(gc_obj(g));
            gc_decref(g);
        }
        if (gc_next(collectable) == g) gc_list_move(g, &kept);   /* still alive: it may die later */
    }
    size_t survivors = gc_st.debug & MEMSHIM_DEBUG_SAVEALL ? 0 : gc_list_size(&kept);
    gc_list_merge(&kept, old);
    return survivors;
}

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* A line the program asked for (MEMSHIM_DEBUG_STATS: standard error as it
 * is now, as CPython's gc module writes to sys.stderr), or one of memshim's
 * own messages (standard error as it was at start-up). */
static void gc_vline(int asked, const char *fmt, va_list ap)
{
    char buf[512];
    int n = vsnprintf(buf, sizeof buf, fmt, ap);
    if (n > 0) gc_host_write(buf, (size_t)n < sizeof buf ? (size_t)n : sizeof buf - 1, asked ? NULL : fmt);
}

void gc_debug_line(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    gc_vline(1, fmt, ap);
    va_end(ap);
}

void gc_warn_line(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    gc_vline(0, fmt, ap);
    va_end(ap);
}

/* This is the main function.  Read this to understand how the collection
 * process works.  Lock held, gc_st.collecting set.  Returns the number of
 * unreachable objects found, resurrected ones excluded (those that died by
 * counting while finalizers ran are included). */
static long collect_main(int generation)
{
    uint64_t t0 = now_ns();

    /* 1. Counts: this collection counts toward the next older generation. */
    if (generation + 1 < GC_NGEN) gc_st.gen[generation + 1].count++;
    for (int i = 0; i <= generation; i++) gc_st.gen[i].count = 0;

    /* 2. Merge the younger generations into the one being collected. */
    for (int i = 0; i < generation; i++)
        gc_list_merge(&gc_st.gen[i].head, &gc_st.gen[generation].head);
    gc_head *young = &gc_st.gen[generation].head;
    gc_head *old = generation + 1 < GC_NGEN ? &gc_st.gen[generation + 1].head : young;

    /* 3. Split young into reachable (stays in young) and unreachable. */
    gc_head unreachable;
    gc_list_init(&unreachable);
    size_t found, work;
    size_t kept = deduce_unreachable(young, &unreachable, &found, &work);

    /* 4. Promote the survivors (CPython's long-lived bookkeeping decides
     *    when a full collection is worth it). */
    if (young != old) {
        if (generation == GC_NGEN - 2) gc_st.long_lived_pending += (long)kept;
        gc_list_merge(young, old);
    } else {
        gc_st.long_lived_pending = 0;
        gc_st.long_lived_total = (long)kept;
    }

    /* 5. Make the garbage a plain list; from here on user code may run.
     *    Garbage without weak references or finalizers is settled by
     *    delete_garbage instead, one object at a time. */
    size_t nweak = 0, nfinal = 0;
    if (work) scan_unreachable(&unreachable, &nweak, &nfinal);

    /* 6. Weak references first, then finalizers (CPython's order). */
    size_t user = 0;
    if (nweak) user += handle_weakrefs(&unreachable);
    if (nfinal) user += finalize_garbage(&unreachable);

    /* 7. Resurrection: only user code can have taken references. */
    gc_head final;
    gc_list_init(&final);
    size_t resurrected = 0;
    if (user) {
        for (unsigned round = 1;; round++) {
            resurrected += handle_resurrected_objects(&unreachable, &final, old);
            /* Weak references made since step 6 to what is still garbage,
             * for GC_WEAKREF_ROUNDS rounds: a callback that makes another
             * (watching a sibling) went round for ever; the ones made in
             * the last keep their callbacks for their objects' deaths. */
            if (round > GC_WEAKREF_ROUNDS) break;
            size_t ran = handle_weakrefs(&final);
            if (!ran) break;
            gc_list_merge(&final, &unreachable);
        }
    } else {
        gc_list_merge(&unreachable, &final);
    }
    found -= resurrected;

    /* 8. Break the cycles. */
    if (!work) gc_st.unsettled = &final;
    size_t survivors = delete_garbage(&final, old);
    gc_st.unsettled = NULL;

    struct memshim_gc_stats *st = &gc_st.stats[generation];
    st->collections++;
    st->collected += (long)found;
    st->uncollectable += (long)survivors;
    uint64_t took = now_ns() - t0;
    gc_st.time_ns += took;
    if (gc_st.debug & MEMSHIM_DEBUG_STATS)
        gc_debug_line("memshim: gc: generation %d: %zu examined, %zu unreachable, "
                      "%zu resurrected, %zu uncollectable, %.6f s\n",
                      generation, kept + found + resurrected, found, resurrected,
                      survivors, (double)took * 1e-9);
    return (long)found;
}

long gc_collect_locked(int generation)
{
    if (gc_st.collecting) return 0;
    gc_st.collecting = 1;
    gc_st.collection++;
    gc_st.free_hook = gc_free_hook_wanted();
    gc_run_callbacks(MEMSHIM_GC_START, generation, 0);
    long n = collect_main(generation);
    gc_run_callbacks(MEMSHIM_GC_STOP, generation, n);
    if (gc_st.free_hook && gc_object_free_done) gc_object_free_done(gc_st.collection);
    gc_st.collecting = 0;
    return n;
}

/* The oldest generation whose count passed its threshold is collected, but
 * a full collection only once the objects that survived a generation-1
 * collection since the last full one number 25% of those a full collection
 * last kept (CPython, after issue #4074: full collections cost amortised
 * linear time). */
long gc_collect_auto(void)
{
    for (int i = GC_NGEN - 1; i >= 0; i--) {
        if (gc_st.gen[i].count > gc_st.gen[i].threshold) {
            if (i == GC_NGEN - 1 && gc_st.long_lived_pending < gc_st.long_lived_total / 4)
                continue;
            return gc_collect_locked(i);
        }
    }
    return 0;
}
