/* object.c - collector objects: allocation, reference counts, tracking, the
 * collector lock, and death (finalize, weakrefs, dealloc, free) through a
 * per-thread trashcan so that freeing a long chain keeps the stack bounded. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include "gc_int.h"

gc_state gc_st = { .lock = PTHREAD_MUTEX_INITIALIZER };
__thread unsigned gc_lock_depth;

/* The trashcan: per-thread nesting depth of deaths, and the deferred ones. */
static __thread unsigned dealloc_depth;
static __thread gc_head *trash;
static __thread const gc_site *death_site;   /* the outermost death's call (collector.h) */

/* ---- memory ----------------------------------------------------------------- */
static void *default_alloc(void *ctx, size_t n) { (void)ctx; return malloc(n); }
static void  default_free(void *ctx, void *p, size_t n) { (void)ctx; (void)n; free(p); }

static const gc_allocator default_allocator = { default_alloc, default_free, NULL };

int gc_set_allocator(const gc_allocator *a)
{
    gc_lock();
    int rc = 0;
    if (gc_st.alloc_used) { errno = EBUSY; rc = -1; }
    else gc_st.alloc = a ? *a : default_allocator;
    gc_unlock();
    return rc;
}

/* Objects come from gc_st.alloc; the collector's own tables (nodes, links,
 * maps, weak reference lists and handles, the garbage and callback lists)
 * from gc_st.tables when the shim set it, else the same. */
static const gc_allocator *tables(void) { return gc_st.tables.alloc ? &gc_st.tables : &gc_st.alloc; }

/* Objects come from malloc: the shim's hooks (collector.h) may take them. */
static int objects_on_malloc(void) { return gc_st.alloc.alloc == default_allocator.alloc; }

/* Whether p is an object, as the host's records of blocks tell
 * (collector.h): they know objects that came through gc_object_alloc. */
int gc_is_object(const void *p)
{
    return objects_on_malloc() && gc_object_alloc ? gc_host_is_object(p) : -1;
}

static void *alloc_from(const gc_allocator *a, size_t n)
{
    __atomic_store_n(&gc_st.alloc_used, 1, __ATOMIC_RELAXED);
    void *p = a->alloc(a->ctx, n);
    if (p && ((uintptr_t)p & 15)) gc_fatal("the allocator returned memory not 16-byte aligned", p);
    return p;
}

static void free_to(const gc_allocator *a, void *p, size_t n)
{
    if (p) a->free(a->ctx, p, n);
}

static void *grow_from(const gc_allocator *a, void *p, size_t old_n, size_t new_n)
{
    void *q = alloc_from(a, new_n);
    if (!q) return NULL;
    if (p) {
        memcpy(q, p, old_n < new_n ? old_n : new_n);
        free_to(a, p, old_n);
    }
    return q;
}

void *gc_mem_alloc(size_t n)                           { return alloc_from(&gc_st.alloc, n); }
void  gc_mem_free(void *p, size_t n)                   { free_to(&gc_st.alloc, p, n); }
void *gc_tab_alloc(size_t n)                           { return alloc_from(tables(), n); }
void  gc_tab_free(void *p, size_t n)                   { free_to(tables(), p, n); }
void *gc_tab_grow(void *p, size_t old_n, size_t new_n) { return grow_from(tables(), p, old_n, new_n); }

/* Does not start the collector.  Called once, at the shim's start in every
 * process: cold, so that it lies with the start-up code rather than with
 * the collector's, which most processes never run (a page fault there maps
 * 64 KiB of the library's text). */
__attribute__((cold)) int gc_set_table_allocator(const gc_allocator *a)
{
    pthread_mutex_lock(&gc_st.lock);
    int rc = 0;
    if (gc_st.alloc_used) { errno = EBUSY; rc = -1; }
    else gc_st.tables = a ? *a : (gc_allocator){ 0 };
    pthread_mutex_unlock(&gc_st.lock);
    return rc;
}

/* ---- the leak scan's view (collector.h) ------------------------------------------ */
int gc_scan_lock(unsigned timeout_ms)
{
    if (!__atomic_load_n(&gc_st.inited, __ATOMIC_ACQUIRE)) return 0;   /* never used: nothing held */
    if (gc_lock_depth) { gc_lock_depth++; return 1; }
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    ts.tv_sec += timeout_ms / 1000;
    ts.tv_nsec += (long)(timeout_ms % 1000) * 1000000;
    if (ts.tv_nsec >= 1000000000) { ts.tv_sec++; ts.tv_nsec -= 1000000000; }
    if (pthread_mutex_timedlock(&gc_st.lock, &ts) != 0) return 0;
    gc_lock_depth = 1;
    if (!gc_st.inited) gc_init_locked();
    return 1;
}

void gc_scan_unlock(void) { gc_unlock(); }

void gc_fatal(const char *what, const void *obj)
{
    char buf[256];
    int n = obj ? snprintf(buf, sizeof buf, "memshim: collector: %s (object %p)\n", what, obj)
                : snprintf(buf, sizeof buf, "memshim: collector: %s\n", what);
    if (n > 0) gc_host_write(buf, (size_t)n < sizeof buf ? (size_t)n : sizeof buf - 1, what);
    gc_host_abort();
}

/* ---- the lock and start-up -------------------------------------------------- */
/* Registered when the library is loaded, not at the collector's first use:
 * a first use in one thread (the leak scan's, say) racing a fork in another
 * would otherwise leave the child a lock held by nobody.  Registered after
 * the allocator's handlers (init.c), so this prepare runs first: the
 * collector's lock nests outside the allocator's.  It takes the lock
 * without starting the collector. */
static void fork_prepare(void) { if (gc_lock_depth++ == 0) pthread_mutex_lock(&gc_st.lock); }
/* The depth falls after the unlock: a signal handler's fork that came in
 * the middle of the unlock, the depth already 0, waited for the lock its
 * own thread was giving back (fixture fork_in_fork). */
static void fork_parent(void)
{
    if (gc_lock_depth == 1) pthread_mutex_unlock(&gc_st.lock);
    gc_lock_depth--;
}
/* Only this thread survives; it held the lock through fork and gives it
 * back as in the parent.  Not pthread_mutex_init: the allocator's child
 * handler, which runs before this one, starts memshim's reporter thread
 * again, and that thread may already wait for the lock (its figures ask
 * the collector's); a mutex made anew over its wait never woke it, and the
 * child's live figures and metrics file stopped there, its exit waiting
 * two seconds for the thread. */
static void fork_child(void)
{
    if (gc_lock_depth == 1) pthread_mutex_unlock(&gc_st.lock);
    gc_lock_depth--;
}

/* First use of the collector, with the lock held. */
void gc_init_locked(void)
{
    static const long dflt[GC_NGEN] = { 2000, 10, 10 };
    if (!gc_st.alloc.alloc) gc_st.alloc = default_allocator;
    for (int i = 0; i < GC_NGEN; i++) {
        gc_list_init(&gc_st.gen[i].head);
        gc_st.gen[i].threshold = dflt[i];
        gc_st.gen[i].count = 0;
    }
    gc_list_init(&gc_st.permanent);
    gc_st.enabled = 1;
    gc_env_load();
    __atomic_store_n(&gc_st.inited, 1, __ATOMIC_RELEASE);
}

__attribute__((constructor(102))) static void gc_atfork_register(void)
{
    pthread_atfork(fork_prepare, fork_parent, fork_child);
}

/* ---- reference counts -------------------------------------------------------- */
void gc_incref(gc_head *g)
{
    if (GC_UNLIKELY(__atomic_fetch_add(&g->refcnt, 1, __ATOMIC_RELAXED) == UINT32_MAX))
        gc_fatal("reference count overflow", gc_obj(g));
}

/* Drop a reference: 1 when it was the last, and the object must die.
 * acq_rel (one lock xadd on x86): the thread that frees sees every write
 * made before other threads' decrefs.
 *
 * Except the last reference dropped by the holder of the collector lock (a
 * collection's clear functions, the dealloc functions of a death, code
 * inside memshim_gc_lock): with a count of 1 no other thread holds a
 * reference that could change it, and the one way to make a reference
 * from none, memshim_weakref_get, needs the lock.  A plain load and store
 * then do: the locked instructions were a quarter of a collection of
 * garbage (rings of 10: 12 locked instructions a ring, 2 now). */
/* The program handed `what` an object whose count is 0: dead (its block
 * usually freed), or dying.  Reported as heap misuse (the host's); with
 * MEMSHIM_ON_ERROR=continue the caller does nothing more. */
void gc_misuse_dead(const char *what, gc_head *g)
{
    size_t prefix;
    gc_total_size(g, &prefix);
    gc_host_misuse(what, gc_obj(g), (char *)g - prefix);
}

/* One reference more dropped than the program held: the count is put back
 * to 0 and nothing dies. */
static __attribute__((noinline, cold)) int decref_of_dead(gc_head *g)
{
    __atomic_fetch_add(&g->refcnt, 1, __ATOMIC_RELAXED);
    gc_misuse_dead("memshim_decref(): reference count already 0", g);
    return 0;
}

static inline int drop_ref(gc_head *g)
{
    if (gc_lock_depth && __atomic_load_n(&g->refcnt, __ATOMIC_ACQUIRE) == 1) {
        __atomic_store_n(&g->refcnt, 0, __ATOMIC_RELAXED);   /* dying: no weakref_new */
        return 1;
    }
    uint32_t old = __atomic_fetch_sub(&g->refcnt, 1, __ATOMIC_ACQ_REL);
    if (GC_LIKELY(old > 1)) return 0;
    if (GC_UNLIKELY(old == 0)) return decref_of_dead(g);
    return 1;
}

void gc_decref_at(gc_head *g, const gc_site *site)
{
    if (drop_ref(g)) gc_dealloc(g, site);
}

/* Take a reference unless the count is already 0 (the object is dying in
 * some thread): what weak references need. */
int gc_incref_if_alive(gc_head *g)
{
    uint32_t c = __atomic_load_n(&g->refcnt, __ATOMIC_RELAXED);
    do {
        if (c == 0) return 0;
        if (c == UINT32_MAX) gc_fatal("reference count overflow", gc_obj(g));
    } while (!__atomic_compare_exchange_n(&g->refcnt, &c, c + 1, 1,
                                          __ATOMIC_ACQUIRE, __ATOMIC_RELAXED));
    return 1;
}

/* A reference taken to an object whose count is 0 would make it die twice
 * (its dealloc and free run again at the matching decref).  The program
 * holds a reference to whatever it increfs, so a count read as 0 is misuse,
 * not a race; the check is a load of the line the increment writes. */
GC_EXPORT void memshim_incref(void *obj)
{
    if (!obj) return;
    gc_head *g = gc_hdr(obj);
    if (GC_UNLIKELY(!gc_refcnt(g))) gc_misuse_dead("memshim_incref(): reference count 0", g);
    else gc_incref(g);
}
/* The last reference went: reached by a tail call from memshim_decref, so
 * that the return address and frame here are those of the program's call. */
static __attribute__((noinline)) void decref_last(gc_head *g)
{
    gc_dealloc(g, GC_CALLER);
}

GC_EXPORT void memshim_decref(void *obj)
{
    if (!obj) return;
    gc_head *g = gc_hdr(obj);
    if (!drop_ref(g)) return;
    /* A collection's clear functions kill the garbage: its frees are the
     * collection's (free_object), the program's call no use.  Read without
     * the lock: the value only picks the path, gc_dealloc takes the lock. */
    if (__atomic_load_n(&gc_st.collecting, __ATOMIC_RELAXED)) gc_dealloc(g, NULL);
    else decref_last(g);
}

GC_EXPORT size_t memshim_refcount(const void *obj)
{
    return obj ? gc_refcnt(gc_hdr(obj)) : 0;
}

GC_EXPORT const memshim_type *memshim_typeof(const void *obj)
{
    return obj ? gc_hdr(obj)->type : NULL;
}

GC_EXPORT size_t memshim_getsizeof(const void *obj)
{
    size_t prefix;
    return obj ? gc_total_size(gc_hdr(obj), &prefix) : 0;
}

/* ---- tracking ---------------------------------------------------------------- */
void gc_track_head(gc_head *g)
{
    gc_list_append(g, &gc_st.gen[0].head);
}

void gc_untrack_head(gc_head *g)
{
    gc_list_remove(g);
    g->next = 0;
    g->prev &= GC_PERSIST;
}

/* An object whose count is 0 is dead or dying: tracked, it would be freed
 * while in a generation's list; untracked, `next` is a free list's link or
 * a trash list's.  Untracking one already untracked stays a no-op: a
 * dealloc function may untrack its own object, as CPython's do. */
GC_EXPORT void memshim_track(void *obj)
{
    if (!obj) return;
    gc_lock();
    gc_head *g = gc_hdr(obj);
    if (GC_UNLIKELY(!gc_refcnt(g))) gc_misuse_dead("memshim_track(): reference count 0", g);
    else if (!g->next) gc_track_head(g);
    gc_unlock();
}

GC_EXPORT void memshim_untrack(void *obj)
{
    if (!obj) return;
    gc_lock();
    gc_head *g = gc_hdr(obj);
    if (g->next) {
        if (GC_UNLIKELY(!gc_refcnt(g))) gc_misuse_dead("memshim_untrack(): reference count 0", g);
        else gc_untrack_head(g);
    }
    gc_unlock();
}

GC_EXPORT int memshim_is_tracked(const void *obj)
{
    if (!obj) return 0;
    gc_lock();
    int t = gc_hdr(obj)->next != 0;
    gc_unlock();
    return t;
}

/* ---- birth -------------------------------------------------------------------- */
GC_EXPORT void *memshim_new(const memshim_type *type, size_t size)
{
    if (!type) { errno = EINVAL; return NULL; }
    if (size > SIZE_MAX - sizeof(gc_head) - 16) { errno = ENOMEM; return NULL; }
    if (GC_UNLIKELY(!__atomic_load_n(&gc_st.inited, __ATOMIC_ACQUIRE))) { gc_lock(); gc_unlock(); }
    size_t prefix = size >= GC_SIZE_BIG ? 16 : 0;
    size_t total = prefix + sizeof(gc_head) + size;
    char *base;
    if (objects_on_malloc() && gc_object_alloc) {
        __atomic_store_n(&gc_st.alloc_used, 1, __ATOMIC_RELAXED);
        base = gc_object_alloc(total, prefix, GC_CALLER);
    } else {
        base = gc_mem_alloc(total);
    }
    if (!base) { errno = ENOMEM; return NULL; }
    gc_head *g = (gc_head *)(base + prefix);
    if (prefix) *(size_t *)base = size;
    g->next = 0;
    g->prev = 0;
    g->type = type;
    g->refcnt = 1;
    g->size = prefix ? GC_SIZE_BIG : (uint32_t)size;
    memset(g + 1, 0, size);

    gc_lock();
    /* Count, and maybe collect, before the new object joins the lists: a
     * collection started here never sees it (CPython's _PyObject_GC_Link). */
    gc_gen *g0 = &gc_st.gen[0];
    g0->count++;
    if (g0->count > g0->threshold && g0->threshold && gc_st.enabled && !gc_st.collecting)
        gc_collect_auto();
    gc_track_head(g);
    gc_unlock();
    return gc_obj(g);
}

/* ---- death -------------------------------------------------------------------- */
static void free_object(gc_head *g, const gc_site *site)
{
    size_t prefix, total = gc_total_size(g, &prefix);
    char *base = (char *)g - prefix;
    /* Only the collecting thread frees objects while a collection runs (it
     * holds the lock), so this one is the collection's. */
    if (gc_st.collecting) {
        if (!gc_st.free_hook || !gc_object_free(base, total, gc_st.collection)) gc_mem_free(base, total);
    } else if ((site || death_site) && gc_object_release && objects_on_malloc()) {
        gc_object_release(base, site, death_site);
    } else {
        gc_mem_free(base, total);
    }
}

int gc_free_hook_wanted(void)
{
    return gc_object_free && objects_on_malloc() &&
           gc_object_free(NULL, 0, gc_st.collection);
}

/* The count is 0 and the lock held: the object dies, unless its finalizer
 * resurrects it.  Order as in CPython's subtype_dealloc: finalize, untrack,
 * clear weak references (callbacks run now, the object still intact),
 * dealloc, free. */
static void dealloc_now(gc_head *g, const gc_site *site)
{
    const memshim_type *t = g->type;
    void *obj = gc_obj(g);
    if (t->finalize && !(g->prev & GC_FINALIZED)) {
        g->prev |= GC_FINALIZED;
        __atomic_store_n(&g->refcnt, 1, __ATOMIC_RELAXED);
        t->finalize(obj);
        if (__atomic_sub_fetch(&g->refcnt, 1, __ATOMIC_ACQ_REL) != 0) return; /* resurrected */
    }
    if (g->next) gc_untrack_head(g);
    if (gc_st.gen[0].count > 0) gc_st.gen[0].count--;
    if (g->prev & GC_WEAKREFS) {
        gc_wr_list pending = { NULL, NULL };
        gc_weakref_detach(g, &pending);
        gc_weakref_run(&pending);
    }
    if (g->prev & GC_NODE) gc_node_forget(g);
    if (t->dealloc) t->dealloc(obj);
    free_object(g, site);
}

int gc_trash_empty(void) { return trash == NULL; }

/* Trashcan (CPython's Py_TRASHCAN_BEGIN/END, applied to every object): too
 * deep a nest of deaths parks the object on this thread's trash list; the
 * outermost death empties the list, one object at a time. */
void gc_dealloc(gc_head *g, const gc_site *site)
{
    gc_lock();
    if (dealloc_depth >= GC_TRASH_DEPTH) {
        uintptr_t retrack = 0;
        if (g->next) { gc_untrack_head(g); retrack = GC_TRASH_RETRACK; }
        g->next = (uintptr_t)trash | retrack;
        trash = g;
    } else {
        if (dealloc_depth++ == 0) death_site = site;
        dealloc_now(g, site);
        if (dealloc_depth == 1) {
            while (trash) {
                gc_head *t = trash;
                trash = (gc_head *)(t->next & ~GC_FLAGS);
                int retrack = (t->next & GC_TRASH_RETRACK) != 0;
                t->next = 0;
                if (retrack) gc_track_head(t);  /* so a resurrected object stays tracked */
                dealloc_now(t, site);
            }
            death_site = NULL;
        }
        dealloc_depth--;
    }
    gc_unlock();
}
