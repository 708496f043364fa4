/* memshim.h - the public interface of libmemshim.
 *
 * memshim is an LD_PRELOAD memory instrumentation shim: a size-class pool
 * allocator that replaces malloc, with statistics, leak reports and an
 * object-graph collector on top.  Programs need this header only to call
 * memshim directly; preloading needs no change to the program at all.
 * Link with -lmemshim (pkg-config --libs memshim), or run under
 * LD_PRELOAD=libmemshim.so and look the functions up with dlsym.
 * See memshim(3). */
#ifndef MEMSHIM_H
#define MEMSHIM_H

#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

#define MEMSHIM_VERSION_MAJOR 0
#define MEMSHIM_VERSION_MINOR 1
#define MEMSHIM_VERSION_PATCH 0
#define MEMSHIM_VERSION       "0.1.0"

/* The library's version string, e.g. "0.1.0". */
const char *memshim_version(void);

/* Write the allocator's statistics table (as MEMSHIM_STATS does at exit) to
 * the file descriptor fd.  Allocates nothing. */
void memshim_stats_print(int fd);

/* Per-size-class and total figures of the pool allocator. */
struct memshim_class_stats {
    size_t block_size;      /* bytes per block of this class */
    size_t pools;           /* pools (spans of 64 KiB pages) holding the class */
    size_t blocks_in_use;   /* handed to the program and not freed */
    size_t blocks_free;     /* free in those pools and in thread caches */
    unsigned long long allocations, frees; /* since start, with or without a thread cache */
};

struct memshim_heap_stats {
    size_t small_bytes_in_use;   /* in size-class blocks */
    size_t small_bytes_pooled;   /* capacity of the pools in use */
    size_t huge_blocks, huge_bytes; /* blocks above the largest class */
    size_t mapped_bytes;         /* held from the OS now (segments + huge) */
    size_t returned_bytes;       /* given back to the OS since start */
    size_t rss, peak_rss;        /* of the process, from /proc/self/status */
    unsigned threads;            /* threads with a cache */
    unsigned nclasses;           /* entries filled in `classes` */
    struct memshim_class_stats classes[96];
};

/* Fill *out with current figures; 0 on success, -1 if memshim is not the
 * allocator of this process. */
int memshim_heap_stats(struct memshim_heap_stats *out);

/* ---- leak reports --------------------------------------------------------
 * Scan the heap now (other threads are paused meanwhile) and write a leak
 * report where MEMSHIM_REPORT says (standard error by default), as at exit.
 * Returns the number of blocks definitely, indirectly or possibly lost and
 * not suppressed, or -1 when tracking is off (MEMSHIM_TRACK=0). */
int memshim_leak_check(void);

/* Why is the block holding ptr still alive?  Scan as memshim_leak_check
 * does and write to fd the shortest chain of pointers from a root (a
 * global, a thread's stack, registers or thread-local storage, a collector
 * root) to that block, each block on the way with its allocation site; or
 * say that it is lost, or no live block.  Returns 0, or -1 with errno
 * (EBADF: fd is not open for writing; ENOTSUP: tracking is off; ENOMEM). */
int memshim_why(const void *ptr, int fd);

/* ---- heap profiles ---------------------------------------------------------
 * Write a heap profile now, as MEMSHIM_PROFILE does at exit: per allocation
 * stack its allocations, temporaries, live bytes and bytes at the peak, and
 * a size histogram.  path (%p: pid) chooses the format: *.pb.gz or *.pprof
 * pprof, *.folded folded stacks, anything else JSON (memshim(7)); NULL or
 * "" means MEMSHIM_PROFILE's name.  Returns 0, or -1 with errno (ENOTSUP:
 * no profile is kept, see memshim(3); EINVAL: no name; EIO: not written). */
int memshim_profile_dump(const char *path);

/* ---- memshim_rss: the process's memory as the kernel counts it ----------
 * The figures of psutil's memory_info() and memory_full_info(), in bytes.
 * Allocates nothing.  rss..data and peak_rss cost a few microseconds (two
 * small /proc reads); uss, pss and swap come from /proc/self/smaps_rollup,
 * for which the kernel walks the page tables (about 1 ms per GiB resident). */
struct memshim_rss {
    size_t rss;        /* resident set size (VmRSS) */
    size_t vms;        /* virtual memory size (VmSize) */
    size_t shared;     /* resident pages that are file-backed or shared */
    size_t text;       /* program code */
    size_t data;       /* data segment and stack, resident or not */
    size_t peak_rss;   /* high-water mark of rss (VmHWM) */
    size_t uss;        /* unique set size: private pages (what exit would free) */
    size_t pss;        /* proportional set size: shared pages split among sharers */
    size_t swap;       /* swapped out */
};

/* Fill *out; 0 on success, -1 with errno set if /proc is unreadable (out is
 * zeroed then).  Works whether or not memshim is the process's allocator. */
int memshim_rss(struct memshim_rss *out);

/* ---- the object-graph collector (collector/) ------------------------------
 * CPython's object model for C: reference counts, a generational cycle
 * collector, weak references and reachability queries.  Objects come from
 * memshim_new; plain blocks join the graph with memshim_register and
 * memshim_link.  Thread-safe under one collector lock; see memshim(3). */

/* A traverse function calls visit(referent, arg) for each object the object
 * holds a counted reference to (NULL referents may be passed or skipped) and
 * returns the first nonzero value visit returns, else 0. */
typedef int  (*memshim_visit_fn)(void *referent, void *arg);
typedef int  (*memshim_traverse_fn)(void *obj, memshim_visit_fn visit, void *arg);

typedef struct memshim_type {
    const char *name;
    memshim_traverse_fn traverse;  /* visits each object this one holds a reference to */
    void (*clear)(void *obj);      /* the collector breaks a cycle: drop the references held */
    void (*finalize)(void *obj);   /* runs once before death; may resurrect */
    void (*dealloc)(void *obj);    /* at death: drop the references still held and other
                                      resources, as CPython's tp_dealloc; memshim frees the memory */
} memshim_type;

/* Objects and reference counts. */
void  *memshim_new(const memshim_type *type, size_t size); /* zeroed; refcount 1, tracked; NULL+errno */
void   memshim_incref(void *obj);                   /* NULL: no-op */
void   memshim_decref(void *obj);                   /* at zero: finalize, clear weakrefs, dealloc, free */
size_t memshim_refcount(const void *obj);
const memshim_type *memshim_typeof(const void *obj);
size_t memshim_getsizeof(const void *obj);          /* bytes it occupies, header included */
void   memshim_track(void *obj);
void   memshim_untrack(void *obj);
int    memshim_is_tracked(const void *obj);

/* Roots, plain blocks, explicit edges and reachability.  A root holds a
 * strong reference to an object; links are not references. */
int    memshim_root_add(void *obj);                 /* 0, or -1 with errno */
int    memshim_root_remove(void *obj);              /* 0, or -1 with errno ENOENT */
int    memshim_register(void *block, const char *name); /* name is not copied */
int    memshim_unregister(void *block);             /* drops its links and root entries */
int    memshim_link(void *from, void *to);
int    memshim_unlink(void *from, void *to);
int    memshim_is_reachable(const void *obj);       /* from roots or from references outside the graph */
size_t memshim_get_referrers(const void *obj, void **out, size_t max); /* returns the total found */
size_t memshim_get_referents(const void *obj, void **out, size_t max);

/* The cycle collector, after CPython's gc module. */
#define MEMSHIM_DEBUG_STATS   1     /* one line per collection on stderr */
#define MEMSHIM_DEBUG_SAVEALL 32    /* keep unreachable objects in the garbage list */
#define MEMSHIM_GC_START      0     /* callback phases */
#define MEMSHIM_GC_STOP       1

struct memshim_gc_stats {
    long collections;      /* collections of this generation */
    long collected;        /* unreachable objects they found */
    long uncollectable;    /* of those, objects still alive after clear (kept, moved on) */
};

long   memshim_gc_collect(int generation);  /* 0, 1, 2 (full); returns unreachable objects found */
void   memshim_gc_enable(void);
void   memshim_gc_disable(void);
int    memshim_gc_isenabled(void);
void   memshim_gc_set_threshold(long t0, long t1, long t2);
void   memshim_gc_get_threshold(long out[3]);
void   memshim_gc_get_count(long out[3]);
void   memshim_gc_get_stats(struct memshim_gc_stats out[3]);
void   memshim_gc_freeze(void);
void   memshim_gc_unfreeze(void);
size_t memshim_gc_get_freeze_count(void);
size_t memshim_gc_get_objects(int generation, void **out, size_t max); /* -1: all; returns the total */
size_t memshim_gc_get_garbage(void **out, size_t max);  /* objects kept by the SAVEALL debug flag */
size_t memshim_gc_clear_garbage(void);                  /* drops the list's references */
void   memshim_gc_set_debug(int flags);                 /* MEMSHIM_DEBUG_STATS, MEMSHIM_DEBUG_SAVEALL */
int    memshim_gc_get_debug(void);
int    memshim_gc_callback_add(void (*cb)(int phase, int generation, long collected, void *arg), void *arg);
int    memshim_gc_callback_remove(void (*cb)(int, int, long, void *), void *arg);
void   memshim_gc_lock(void);      /* hold while changing references of tracked objects */
void   memshim_gc_unlock(void);    /* when other threads may collect; recursive */

/* Weak references. */
typedef struct memshim_weakref memshim_weakref;
memshim_weakref *memshim_weakref_new(void *obj, void (*callback)(memshim_weakref *, void *arg), void *arg);
void  *memshim_weakref_get(memshim_weakref *ref);   /* a new strong reference, or NULL once dead */
void   memshim_weakref_free(memshim_weakref *ref);
size_t memshim_weakref_count(const void *obj);      /* live weak references to obj */

#ifdef __cplusplus
}
#endif
#endif
