/* weakref.c - weak references: each referent's list of them (in a table
 * keyed by the referent, flagged by GC_WEAKREFS in its header), clearing in
 * two passes (all cleared, then callbacks), and the memshim_weakref_* API.
 *
 * A weak reference is in one of three states:
 *   LIVE     obj set, on its referent's list (the table entry's wr_list).
 *   PENDING  obj NULL, on a pending list of a running clear: its callback is
 *            about to be called.
 *   DEAD     obj NULL, on no list: cleared, callback called or none.
 * and FREED once memshim_weakref_free gave its memory back: until the
 * memory is another's, a second free or a get finds it so (the table
 * allocator's free list keeps its first words) and is reported.
 * gc_weakref_detach is the only code that takes weak references off a
 * referent (CPython's clear_weakref); memshim_weakref_free the only code
 * that frees them.  Freeing a PENDING reference cancels its callback, so a
 * callback may free any weak reference, its own included. */
#include <errno.h>
#include "gc_int.h"

enum { WR_LIVE, WR_PENDING, WR_DEAD, WR_FREED = 0x5eaf5eaf };

struct memshim_weakref {
    gc_head         *obj;
    void           (*callback)(memshim_weakref *, void *);
    void            *arg;
    memshim_weakref *next, *prev;   /* on `list` */
    gc_wr_list      *list;
    int              state;
};

static gc_map referents;   /* gc_head * -> gc_wr_list * (allocated) */

static void list_push_front(gc_wr_list *l, memshim_weakref *r)
{
    r->prev = NULL;
    r->next = l->first;
    if (l->first) l->first->prev = r;
    else l->last = r;
    l->first = r;
    r->list = l;
}

static void list_unlink(memshim_weakref *r)
{
    if (r->prev) r->prev->next = r->next;
    else r->list->first = r->next;
    if (r->next) r->next->prev = r->prev;
    else r->list->last = r->prev;
    r->next = r->prev = NULL;
    r->list = NULL;
}

/* Drop the referent's (empty) list and its table entry. */
static void referent_forget(gc_head *g, gc_wr_list *l)
{
    gc_map_del(&referents, g);
    gc_tab_free(l, sizeof *l);
    g->prev &= ~GC_WEAKREFS;
}

GC_EXPORT memshim_weakref *memshim_weakref_new(void *obj, void (*callback)(memshim_weakref *, void *),
                                               void *arg)
{
    if (!obj) { errno = EINVAL; return NULL; }
    gc_head *g = gc_hdr(obj);
    memshim_weakref *r = NULL;
    gc_lock();
    if (!gc_refcnt(g)) { errno = EINVAL; goto out; }     /* dying: nothing to refer to */
    gc_wr_list *l = (g->prev & GC_WEAKREFS) ? gc_map_get(&referents, g) : NULL;
    if (!l) {
        if (!(l = gc_tab_alloc(sizeof *l))) { errno = ENOMEM; goto out; }
        l->first = l->last = NULL;
        if (gc_map_put(&referents, g, l) < 0) { gc_tab_free(l, sizeof *l); goto out; }
        g->prev |= GC_WEAKREFS;
    }
    if (!(r = gc_tab_alloc(sizeof *r))) {
        if (!l->first) referent_forget(g, l);
        errno = ENOMEM;
        goto out;
    }
    r->obj = g;
    r->callback = callback;
    r->arg = arg;
    r->state = WR_LIVE;
    list_push_front(l, r);      /* newest first: callbacks run newest to oldest, as in CPython */
out:
    gc_unlock();
    return r;
}

/* A freed weak reference given to `what`: reported as heap misuse (the
 * host's); with MEMSHIM_ON_ERROR=continue the call does nothing more. */
static __attribute__((noinline, cold)) void weakref_freed(const char *what, memshim_weakref *ref)
{
    gc_host_misuse_at(what, ref, "a weak reference already freed");
}

GC_EXPORT void *memshim_weakref_get(memshim_weakref *ref)
{
    if (!ref) return NULL;
    gc_lock();
    void *obj = NULL;
    if (GC_UNLIKELY(ref->state == WR_FREED)) weakref_freed("memshim_weakref_get(): use after free", ref);
    else if (ref->obj && gc_incref_if_alive(ref->obj)) obj = gc_obj(ref->obj);
    gc_unlock();
    return obj;
}

GC_EXPORT void memshim_weakref_free(memshim_weakref *ref)
{
    if (!ref) return;
    gc_lock();
    if (GC_UNLIKELY(ref->state == WR_FREED)) {
        weakref_freed("memshim_weakref_free(): double free", ref);
        gc_unlock();
        return;
    }
    if (ref->state == WR_LIVE) {
        gc_head *g = ref->obj;
        gc_wr_list *l = ref->list;
        list_unlink(ref);
        if (!l->first) referent_forget(g, l);
    } else if (ref->state == WR_PENDING) {
        list_unlink(ref);
    }
    ref->state = WR_FREED;
    gc_tab_free(ref, sizeof *ref);
    gc_unlock();
}

GC_EXPORT size_t memshim_weakref_count(const void *obj)
{
    if (!obj) return 0;
    gc_head *g = gc_hdr(obj);
    size_t n = 0;
    gc_lock();
    if (g->prev & GC_WEAKREFS) {
        gc_wr_list *l = gc_map_get(&referents, g);
        for (memshim_weakref *r = l ? l->first : NULL; r; r = r->next) n++;
    }
    gc_unlock();
    return n;
}

/* Clear every weak reference to g: none can be followed any more.  Those
 * with a callback go to the end of `pending` (keeping their order), the
 * rest are DEAD.  Returns the number queued. */
size_t gc_weakref_detach(gc_head *g, gc_wr_list *pending)
{
    gc_wr_list *l = gc_map_get(&referents, g);
    if (!l) { g->prev &= ~GC_WEAKREFS; return 0; }
    size_t n = 0;
    while (l->first) {
        memshim_weakref *r = l->first;
        list_unlink(r);
        r->obj = NULL;
        if (r->callback) {
            r->state = WR_PENDING;
            r->list = pending;
            r->prev = pending->last;
            r->next = NULL;
            if (pending->last) pending->last->next = r;
            else pending->first = r;
            pending->last = r;
            n++;
        } else {
            r->state = WR_DEAD;
        }
    }
    referent_forget(g, l);
    return n;
}

/* Call the callbacks of `pending`, first to last.  Each reference is DEAD
 * when its callback runs, so the callback may free it. */
size_t gc_weakref_run(gc_wr_list *pending)
{
    size_t n = 0;
    while (pending->first) {
        memshim_weakref *r = pending->first;
        list_unlink(r);
        r->state = WR_DEAD;
        r->callback(r, r->arg);
        n++;
    }
    return n;
}
