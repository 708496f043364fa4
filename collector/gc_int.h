/* gc_int.h - the collector's insides: object header layout, flag bits, gc
 * lists, the one state struct and its lock, and prototypes shared between
 * the files of collector/.  Not for use outside collector/ (tests excepted).
 *
 * The object header
 * -----------------
 * memshim_new(type, size) allocates a 32-byte header followed by `size`
 * zeroed bytes and returns a pointer just past the header:
 *
 *        +----------------+----------------+----------------+-------+-------+
 *        | next           | prev           | type           |refcnt | size  |
 *        +----------------+----------------+----------------+-------+-------+
 *        0                8                16               24      28      32
 *                                                                          ^ the object
 *
 *   next    the next header in the object's generation list, 0 when the
 *           object is untracked.  During move_unreachable the low bit
 *           (NEXT_UNREACHABLE) marks members of the tentatively-unreachable
 *           list, as in CPython.
 *   prev    the previous header in the list, with flag bits in the low 4 bits
 *           (headers are 16-aligned).  During a collection the bits above the
 *           flags hold gc_refs instead of a pointer; move_unreachable puts the
 *           pointers back.  This is CPython's _gc_prev trick.
 *   type    the memshim_type given to memshim_new.
 *   refcnt  the reference count, 32 bits, changed only with atomic operations
 *           (incref/decref may race).  Overflow aborts.
 *   size    the bytes asked for.  GC_SIZE_BIG (UINT32_MAX) means "bigger":
 *           the true size is a size_t stored 16 bytes before the header,
 *           where the allocation then starts.
 *
 * CPython spends 32 bytes on the same things (PyGC_Head + ob_refcnt +
 * ob_type); the weak reference list, which CPython keeps in the object, lives
 * here in a table keyed by the object (weakref.c), flagged in the header, as
 * do roots and explicit links (reach.c).
 *
 * Flag bits in prev, all changed only under the collector lock:
 *   GC_FINALIZED   the finalizer has run (PEP 442: it never runs twice).
 *   GC_COLLECTING  the object is in the set a collection or a reachability
 *                  walk is examining, and prev holds gc_refs.  Never set while
 *                  user code other than a traverse function runs.
 *   GC_WEAKREFS    weakref.c's table has weak references to it.
 *   GC_NODE        reach.c's table has an entry for it (root count, links).
 * Untracking keeps only GC_PERSIST (all but GC_COLLECTING).
 *
 * Death and the trashcan
 * ----------------------
 * When the count reaches zero, gc_dealloc runs (under the lock): finalizer
 * (unless run before; resurrection stops here), untrack, clear weak
 * references and call their callbacks, forget roots/links, type->dealloc,
 * free.  type->dealloc usually decrefs what the object holds, so freeing a
 * chain nests.  Past GC_TRASH_DEPTH nested deaths in a thread, an object is
 * put on that thread's trash list instead (linked through `next`, untracked,
 * GC_TRASH_RETRACK noting it was tracked) and the outermost gc_dealloc frees
 * the list: the stack stays bounded whatever the chain's length.
 *
 * The lock
 * --------
 * One mutex, gc_st.lock, guards the generation lists, all flags, the tables
 * of weakref.c and reach.c, and every setting in gc_st.  It is made
 * recursive by a per-thread depth (gc_lock_depth): finalizers, clear and
 * dealloc functions and weakref callbacks run with it held and may call any
 * memshim_* function.  Reference counts are atomics and need no lock except
 * at zero.  See "THREADS" in memshim(3).
 */
#ifndef MS_GC_INT_H
#define MS_GC_INT_H

#include <pthread.h>
#include <stddef.h>
#include <stdint.h>
#include "collector.h"
#include "../include/memshim.h"

#define GC_EXPORT __attribute__((visibility("default")))
#define GC_HIDDEN __attribute__((visibility("hidden")))
#define GC_LIKELY(x)   __builtin_expect(!!(x), 1)
#define GC_UNLIKELY(x) __builtin_expect(!!(x), 0)
/* The call into the collector, in a function that the program called
 * (or reached by a tail call from one): what gc_object_alloc and
 * gc_object_release are given (collector.h). */
#define GC_CALLER (&(gc_site){ (uintptr_t)__builtin_return_address(0), \
                               (uintptr_t)__builtin_frame_address(0) + 16 })

typedef struct __attribute__((aligned(16))) gc_head {
    uintptr_t           next;
    uintptr_t           prev;
    const memshim_type *type;
    uint32_t            refcnt;
    uint32_t            size;
} gc_head;

_Static_assert(sizeof(gc_head) == 32, "the header is 32 bytes, a multiple of 16");
_Static_assert(sizeof(gc_head) == GC_BLOCK_HEADER && offsetof(gc_head, type) == GC_BLOCK_LINKS,
               "collector.h describes the header to the leak scan");
/* 16-aligned, list sentinels included: prev keeps flags in the low 4 bits. */
_Static_assert(_Alignof(gc_head) == 16, "headers are 16-aligned");

#define GC_FINALIZED      ((uintptr_t)1)
#define GC_COLLECTING     ((uintptr_t)2)
#define GC_WEAKREFS       ((uintptr_t)4)
#define GC_NODE           ((uintptr_t)8)
#define GC_FLAGS          ((uintptr_t)15)
#define GC_PERSIST        (GC_FINALIZED | GC_WEAKREFS | GC_NODE)
#define GC_REFS_SHIFT     4
#define GC_NEXT_UNREACHABLE ((uintptr_t)1)
#define GC_TRASH_RETRACK  ((uintptr_t)2)      /* in `next` of a trash-list member */
#define GC_SIZE_BIG       UINT32_MAX
#define GC_TRASH_DEPTH    64
#define GC_NGEN           3

static inline gc_head *gc_hdr(const void *obj) { return (gc_head *)obj - 1; }
static inline void    *gc_obj(gc_head *g)      { return g + 1; }

/*** list functions: circular, doubly linked, with a sentinel head ***/
/* Past NEXT_UNREACHABLE: garbage not yet settled keeps it (gc.c). */
static inline gc_head *gc_next(const gc_head *g) { return (gc_head *)(g->next & ~GC_NEXT_UNREACHABLE); }
static inline gc_head *gc_prev(const gc_head *g) { return (gc_head *)(g->prev & ~GC_FLAGS); }
static inline void gc_set_prev(gc_head *g, gc_head *p)
{
    g->prev = (g->prev & GC_FLAGS) | (uintptr_t)p;
}
static inline void gc_list_init(gc_head *l) { l->next = l->prev = (uintptr_t)l; }
static inline int  gc_list_is_empty(const gc_head *l) { return l->next == (uintptr_t)l; }
static inline void gc_list_append(gc_head *node, gc_head *list)
{
    gc_head *last = gc_prev(list);
    gc_set_prev(node, last);
    last->next = (uintptr_t)node;
    node->next = (uintptr_t)list;
    gc_set_prev(list, node);
}
static inline void gc_list_remove(gc_head *node)
{
    gc_head *prev = gc_prev(node), *next = gc_next(node);
    prev->next = (uintptr_t)next;
    gc_set_prev(next, prev);
}
static inline void gc_list_move(gc_head *node, gc_head *list)
{
    gc_list_remove(node);
    gc_list_append(node, list);
}
/* Append all of `from` to `to`; `from` is left empty. */
static inline void gc_list_merge(gc_head *from, gc_head *to)
{
    if (gc_list_is_empty(from)) return;
    gc_head *to_tail = gc_prev(to), *first = gc_next(from), *last = gc_prev(from);
    to_tail->next = (uintptr_t)first;
    gc_set_prev(first, to_tail);
    last->next = (uintptr_t)to;
    gc_set_prev(to, last);
    gc_list_init(from);
}
static inline size_t gc_list_size(const gc_head *l)
{
    size_t n = 0;
    for (gc_head *g = gc_next(l); g != l; g = gc_next(g)) n++;
    return n;
}
/*** end of list functions ***/

/* gc_refs, valid only while GC_COLLECTING is set. */
static inline uintptr_t gc_get_refs(const gc_head *g) { return g->prev >> GC_REFS_SHIFT; }
static inline void gc_set_refs(gc_head *g, uintptr_t r)
{
    g->prev = (g->prev & GC_FLAGS) | (r << GC_REFS_SHIFT);
}
/* Enter the examined set with gc_refs = r (the prev pointer is lost). */
static inline void gc_reset_refs(gc_head *g, uintptr_t r)
{
    g->prev = (g->prev & GC_PERSIST) | GC_COLLECTING | (r << GC_REFS_SHIFT);
}

static inline uint32_t gc_refcnt(const gc_head *g)
{
    return __atomic_load_n(&g->refcnt, __ATOMIC_RELAXED);
}
static inline size_t gc_total_size(const gc_head *g, size_t *prefix)
{
    if (GC_UNLIKELY(g->size == GC_SIZE_BIG)) {
        *prefix = 16;
        return 16 + sizeof(gc_head) + *(const size_t *)((const char *)g - 16);
    }
    *prefix = 0;
    return sizeof(gc_head) + g->size;
}

/* ---- the state: one struct, every field guarded by `lock` ---------------- */
typedef struct gc_gen {
    gc_head head;
    long    threshold;
    long    count;   /* gen 0: allocations minus deallocations; older: collections of the younger */
} gc_gen;

typedef struct gc_callback {
    void (*cb)(int phase, int generation, long collected, void *arg);
    void *arg;
} gc_callback;

typedef struct gc_state {
    pthread_mutex_t lock;
    int          inited;        /* lists set up, environment read (atomic read outside lock) */
    int          alloc_used;    /* the allocator handed out memory: no more changes */
    gc_allocator alloc;
    gc_allocator tables;        /* the collector's own tables; alloc if unset */
    gc_gen       gen[GC_NGEN];
    gc_head      permanent;     /* frozen objects */
    int          enabled;       /* automatic collection */
    int          collecting;    /* a collection is running (in the lock holder) */
    unsigned long collection;   /* its number: collections started so far */
    int          free_hook;     /* its objects' blocks go to gc_object_free */
    int          debug;         /* MEMSHIM_DEBUG_* */
    long         long_lived_total, long_lived_pending; /* CPython's full-collection rule */
    struct memshim_gc_stats stats[GC_NGEN];
    uint64_t     time_ns;       /* spent collecting, all generations */
    void       **garbage;       /* SAVEALL: strong references */
    size_t       ngarbage, garbage_cap;
    gc_callback *callbacks;
    size_t       ncallbacks, callbacks_cap;
    gc_head     *unsettled;     /* the garbage delete_garbage is breaking, if not yet settled */
    int          warned_refs;   /* "traverse visits more references than counted" said once */
} gc_state;

GC_HIDDEN extern gc_state gc_st;
GC_HIDDEN extern __thread unsigned gc_lock_depth;
GC_HIDDEN void gc_init_locked(void);

static inline void gc_lock(void)
{
    if (gc_lock_depth++ == 0) {
        pthread_mutex_lock(&gc_st.lock);
        if (GC_UNLIKELY(!gc_st.inited)) gc_init_locked();
    }
}
static inline void gc_unlock(void)
{
    if (--gc_lock_depth == 0) pthread_mutex_unlock(&gc_st.lock);
}

/* ---- object.c ------------------------------------------------------------ */
GC_HIDDEN void *gc_mem_alloc(size_t n);              /* vtable; NULL on failure */
GC_HIDDEN void  gc_mem_free(void *p, size_t n);
GC_HIDDEN void *gc_tab_alloc(size_t n);              /* the tables' allocator, same contract */
GC_HIDDEN void  gc_tab_free(void *p, size_t n);
GC_HIDDEN void *gc_tab_grow(void *p, size_t old_n, size_t new_n);   /* copy; NULL keeps p */
GC_HIDDEN void  gc_dealloc(gc_head *g, const gc_site *site); /* refcnt reached 0; site: the program's call, or NULL */
GC_HIDDEN int   gc_free_hook_wanted(void);           /* at a collection's start */
GC_HIDDEN void  gc_incref(gc_head *g);
GC_HIDDEN void  gc_decref_at(gc_head *g, const gc_site *site);  /* site as gc_dealloc's */
static inline void gc_decref(gc_head *g) { gc_decref_at(g, NULL); }
GC_HIDDEN int   gc_incref_if_alive(gc_head *g);      /* 0 if the count was 0 */
GC_HIDDEN void  gc_track_head(gc_head *g);           /* into generation 0 */
GC_HIDDEN void  gc_untrack_head(gc_head *g);
GC_HIDDEN int   gc_trash_empty(void);             /* this thread's trash list */
GC_HIDDEN void  gc_fatal(const char *what, const void *obj) __attribute__((noreturn));
GC_HIDDEN void  gc_misuse_dead(const char *what, gc_head *g) __attribute__((cold)); /* count 0: the host's report */
GC_HIDDEN int   gc_is_object(const void *p);         /* 1, 0, -1 unknown: gc_host_is_object */

/* ---- gc.c ---------------------------------------------------------------- */
GC_HIDDEN size_t gc_update_refs(gc_head *containers); /* returns the members */
GC_HIDDEN void  gc_subtract_refs(gc_head *containers);
GC_HIDDEN size_t gc_count_refs(gc_head **lists, int nlists); /* both, over every tracked object */
GC_HIDDEN void  gc_settle_garbage(void);            /* before a walk in a collection */
GC_HIDDEN long  gc_collect_locked(int generation);   /* with callbacks; 0 if collecting */
GC_HIDDEN long  gc_collect_auto(void);               /* the threshold rule */
GC_HIDDEN void  gc_debug_line(const char *fmt, ...) __attribute__((format(printf, 1, 2)));  /* asked for */
GC_HIDDEN void  gc_warn_line(const char *fmt, ...) __attribute__((format(printf, 1, 2)));   /* memshim's */

/* ---- gcapi.c ------------------------------------------------------------- */
GC_HIDDEN void  gc_env_load(void);
GC_HIDDEN void  gc_run_callbacks(int phase, int generation, long collected);
GC_HIDDEN int   gc_garbage_append(gc_head *g);
GC_HIDDEN void  gc_strong_refs_garbage(void (*cb)(void *arg, const void *p, int garbage), void *arg);

/* ---- weakref.c ----------------------------------------------------------- */
typedef struct gc_wr_list { memshim_weakref *first, *last; } gc_wr_list;
GC_HIDDEN size_t gc_weakref_detach(gc_head *g, gc_wr_list *pending); /* clear; queue callbacks */
GC_HIDDEN size_t gc_weakref_run(gc_wr_list *pending);                 /* callbacks called */

/* ---- reach.c ------------------------------------------------------------- */
GC_HIDDEN void  gc_node_forget(gc_head *g);          /* the object dies */

/* ---- ptrmap.c: a map from pointers to pointers (shim/table.h) ------------- */
typedef struct gc_map { struct ms_table *t; } gc_map;   /* shim/table.h's; NULL: empty */
GC_HIDDEN void *gc_map_get(const gc_map *m, const void *key);
GC_HIDDEN int   gc_map_put(gc_map *m, const void *key, void *val); /* 0, -1 ENOMEM */
GC_HIDDEN void *gc_map_del(gc_map *m, const void *key);            /* old value or NULL */
GC_HIDDEN void  gc_map_each(const gc_map *m, void (*fn)(void *arg, void *val), void *arg); /* fn: no change to m */

#endif
