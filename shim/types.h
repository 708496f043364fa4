/* types.h - memshim's allocator layout: size classes, pages, segments, thread caches.
 *
 * The design in one page
 * ----------------------
 * memshim replaces the C heap (it does not wrap glibc's malloc).  Memory comes
 * from the kernel in SEGMENTS: 4 MiB mappings aligned to 4 MiB.  A pointer's
 * segment is therefore `p & ~(MS_SEGMENT_SIZE-1)`, and a flat bitmap over the
 * 47-bit user address space (one bit per 4 MiB, 4 MiB of untouched virtual
 * memory, reserved once) says whether a given segment is ours.  That bitmap is
 * how free() tells our blocks from the dynamic loader's and from garbage.
 *
 *   segment (4 MiB, aligned)
 *   +---------+---------+---------+---------+-- ... --+---------+
 *   | header  | page 1  | page 2  | page 3  |         | page 63 |
 *   | 64 KiB  | class 3 |  span of class 40 |         |  free   |
 *   +---------+---------+-------------------+-- ... --+---------+
 *
 * The header (first 64 KiB page, only its first few KiB ever touched) holds
 * the page descriptors.  Blocks never carry headers: a block's size class is
 * found from its page, so a 16-byte malloc costs 16 bytes.
 *
 * A PAGE (64 KiB, pymalloc's "pool") serves blocks of one size class.  Classes
 * above 8 KiB use a SPAN of up to 16 contiguous pages so that a span holds a
 * whole number of blocks with little waste.  Blocks are carved lazily: a new
 * span hands out blocks by bumping `carved`, so untouched memory is never
 * faulted in; freed blocks go on the span's intrusive free list.
 *
 * A block cannot grow where it is, so realloc moves it past its class; one
 * grown by less than half its size (a string appended to) moves to a class
 * with room for half as much again, so that the next steps stay in place
 * (alloc.c).
 *
 * Requests above MS_MAX_SMALL (512 KiB) are HUGE: each is its own mmap,
 * recorded in a hash table by address (huge.c), resized with mremap.  A block's
 * record keeps its usable size (the request rounded to 4 KiB) apart from its
 * mapping's length, which a reused mapping may exceed.
 *
 * Threads: every thread has a cache (struct ms_tcache) with one LIFO list of
 * free blocks per class.  malloc pops, free pushes, with no lock and no atomic
 * operation.  A thread frees into its own cache whatever thread allocated the
 * block; when a list passes its limit, half of it goes back to the CENTRAL
 * list of the class (pool.c) under that class's lock, and an empty list is
 * refilled from there in one batch -- a thread's first batches of a class
 * small, doubling up to half the limit (tcmalloc's slow start), so that a
 * short thread does not carve and give back half a cache of every size it
 * touches.  A batch given back whole is PARKED as it is, a chain, in a few
 * slots of the central list (tcmalloc's transfer cache, at most 64 KiB a
 * class), and the next refill of the class takes it whole: blocks that one
 * thread frees and another allocates (a producer and a consumer) pass
 * between them a batch at a time, never through their spans' free lists.
 * Cross-thread frees are thus safe and cost the same as local ones
 * (tcmalloc's design rather than mimalloc's), but for one: a thread's first
 * free of a class, while its list has never been filled (limit 0), of a
 * block of a span that another thread's cache took blocks from last
 * (ms_page_t.owner).  Such a block, given to the thread by the one that
 * allocated it, has neighbours that thread may still write; handed out
 * again at once, it would put the two threads on one cache line (passive
 * false sharing, Hoard's cache-scratch: 0.97x glibc's time, 0.20x now).
 * It goes under a refill instead, reused last.  A thread that ends leaves
 * its cache whole, blocks and all, for the next thread that starts, which
 * takes it over (at most 4 such caches wait; more are flushed to the
 * central lists, and so is one that no thread took for a look's interval,
 * or at malloc_trim): a program of short threads neither flushes nor
 * refills a cache per thread (tcache.c).
 *
 * Locks, in the only order they are ever nested:
 *   report lock (report.c: one leak report at a time) -> everything below
 *   collector lock (collector/, taken by the leak scan too) -> everything below
 *   symbolizer lock (symbolize.c) -> everything below (libdw allocates and
 *     frees under it, a free may intern its stack, and it opens files with
 *     fopen, which takes the C library's list of streams)
 *   the C library's list of streams (_IO_list_lock; memshim takes it only
 *     at fork, init.c) -> everything below (a program's thread holds a
 *     stream's lock while it allocates: getline)
 *   loader guard (loader.c: held shared around memshim's calls that iterate
 *     the loaded objects, exclusively by fork) -> allocator locks below
 *   stack-table lock (stacks.c: writers; readers probe its table without it)
 *     -> meta lock (meta.c)
 *   class lock (one per class, pool.c) -> segment lock (segment.c) -> meta lock
 *   huge lock (huge.c), tcache-list lock (tcache.c): leaves (huge -> meta).
 * Each thread knows which of them it holds (shim.h).  A handler the
 * program set through sigaction() and its kin never comes in while its
 * thread holds one: the signal is put off until the last is released
 * (signals.c).  A handler the kernel calls directly (set by the program's
 * own system call) may: its allocation that needs a lock its own thread
 * holds takes another way (a larger class, no memory, a block kept)
 * instead of waiting for ever; the huge lock is held with signals held off.
 * fork() takes the collector's lock (its own handler, registered at load)
 * and then the others in that order (init.c) so the child finds the heap,
 * the trace table and the symbolizer (libdw's state included) consistent;
 * the report lock is not taken: the child makes it anew (a report under way
 * in another thread does not go on in the child).
 *
 * Page states:   FREE --(page_alloc)--> IN USE by a class --(last block back)--> FREE
 * A FREE page is "dirty" until purged with MADV_DONTNEED; dirty pages are
 * reused first.
 *
 * Giving memory back: by decay, not by threshold
 * ----------------------------------------------
 * Freed memory stays resident for MEMSHIM_DECAY ms (default 1000) and goes
 * back to the kernel only if nothing reused it meanwhile, as jemalloc's
 * dirty decay and mimalloc's purge delay do.  A threshold (purge when more
 * than N bytes are free) re-triggers under churn: a program whose heap
 * swings by more than N purges at every swing and faults the same pages in
 * again; a delay purges only what a whole second of the program's life did
 * not need.
 *   - Pages: the segment keeps, per page, when it was freed (freed_ms[]).
 *     Pages free for longer than the delay are purged, and a segment with
 *     every page free and none dirty any longer is unmapped, but for one.
 *   - Huge blocks: a freed mapping goes to a cache (huge.c) with the time
 *     of its free, and is unmapped once it is older than a quarter of the
 *     delay (a whole buffer, resident, is worth keeping only for the next
 *     one, which a program replacing big buffers asks for at once), or a
 *     tenth of that if the program has asked for no huge block since (it
 *     freed big buffers and went on with small objects).  A
 *     request takes the smallest cached mapping that holds it (a tail of
 *     512 KiB or more stays cached on its own) or grows the largest where
 *     it lies (never moved: huge.c), so only the pages added are new;
 *     calloc zeroes what was in use before; a freed mapping joins its
 *     cached neighbours.  The cache
 *     follows demand: cached and live mappings stay within the live ones'
 *     peak over the last one or two such quarters plus a quarter of the
 *     live ones (at most 256 MiB; 8 MiB above the live ones at least), the oldest
 *     mapping making room: a steady program's footprint stays near what it
 *     recently used, with enough freed mappings at hand that the next
 *     request of a varying size usually finds one that holds it.
 *   - Blocks kept for the next allocations (a thread's bins, parked
 *     batches) each keep their span from going back: after a peak freed
 *     in random order, a class's few hundred kept blocks held most of its
 *     spans.  A bin not refilled between two of its thread's looks gives
 *     back half of what it holds, and parked batches that no thread took
 *     between two looks go to their spans (tcache.c).  Parked batches do
 *     not wait for a look while the heap grows: every 8th new span taken,
 *     those that sat out the last 8 untaken go to their spans, whose
 *     emptied pages the growing class then reuses (pool.c, unpark_idle).
 *   - memshim's own free blocks of 16 KiB and more (a span's records while
 *     tracking) are purged once free for the delay (meta.c), at the
 *     segments' decay.
 * Nothing wakes up to do this (memshim starts no thread for it): the delay
 * is checked lazily whenever a page is taken or given back (the segment lock
 * is held then anyway; every eighth of the delay at most), on every huge
 * allocation and free, when a thread looks at what it keeps (every 64 Ki
 * allocations from one of its bins, every eighth of the delay at most), and
 * by the reporter thread if one runs.  An idle program keeps what it freed
 * last until it allocates again, calls malloc_trim, or exits (the exit's
 * leak scan gives it back first).
 *
 * Invariants (check.c walks them all in the debug build, at every leak scan,
 * fork and exit, with every lock above held):
 *   dirty pages are free pages; the header page is never free; dirty bytes
 *   and empty segments add up; huge blocks lie within their mappings, and no
 *   cached mapping overlaps a live block;
 *   a free page has no class; a page in use lies inside its span, of its class;
 *   per span: used <= carved <= capacity, free list length = carved - used;
 *   per class: the central counts are the sums over its spans.
 * Blocks in thread caches and parked batches count as used by their span;
 *   a parked batch is one batch long, of blocks of its class.
 *
 * Hash tables: one implementation (table.h) serves every table keyed by a
 * word or a hash: huge blocks and sampled blocks by address, the trace
 * table's stacks, symbols by code address, loss records, the collector's
 * pointer maps.
 * Linear probing, at most half full, deletion by backward shift (no
 * tombstones), memory from the caller (meta.c here); the trace table's is
 * read without a lock, since nothing is ever deleted from it.  The stack
 * cache of unwind.c (4-way set-associative, least recently used out) and
 * its frame sizes (a shared 4-way table, and each thread's direct-mapped
 * copy of those its walks met last) are caches, not tables.
 */
#ifndef MS_TYPES_H
#define MS_TYPES_H

#include <stddef.h>
#include <stdint.h>
#include <pthread.h>

#define MS_LIKELY(x)   __builtin_expect(!!(x), 1)
#define MS_UNLIKELY(x) __builtin_expect(!!(x), 0)
#define MS_HIDDEN      __attribute__((visibility("hidden")))
#define MS_EXPORT      __attribute__((visibility("default")))
#define MS_NOINLINE    __attribute__((noinline))

/* ---- geometry ---------------------------------------------------------- */
#define MS_ALIGN            16u                 /* every block is 16-aligned */
#define MS_PAGE_SHIFT       16
#define MS_PAGE_SIZE        ((size_t)1 << MS_PAGE_SHIFT)       /* 64 KiB */
#define MS_SEGMENT_SHIFT    22
#define MS_SEGMENT_SIZE     ((size_t)1 << MS_SEGMENT_SHIFT)    /* 4 MiB */
#define MS_SEGMENT_MASK     (MS_SEGMENT_SIZE - 1)
#define MS_PAGES_PER_SEG    (MS_SEGMENT_SIZE / MS_PAGE_SIZE)   /* 64 */
#define MS_MAX_SPAN_PAGES   16
#define MS_ADDR_BITS        47                  /* x86-64 / aarch64 user space */
#define MS_OS_PAGE          4096u
#define MS_MAX_STACK        64                  /* frames kept per allocation stack */

#if (MS_SEGMENT_SHIFT - MS_PAGE_SHIFT) != 6
#error "segment bookkeeping uses one 64-bit mask of pages"
#endif
#if MS_MAX_SPAN_PAGES >= 64
#error "a span must fit in a segment beside its header page"
#endif

/* ---- size classes ------------------------------------------------------ *
 * 16..128 in steps of 16 (8 classes), four classes per power of two up to
 * 1 KiB (at most 25% rounding), then eight per power of two up to
 * MS_MAX_SMALL (at most 12.5%: a 4 KiB page plus its header, as sqlite and
 * many caches allocate, wastes 11% rather than 20%).  From 1 KiB to 16 KiB
 * each power of two also has a class 16 bytes above it (1040, 2064, 4112,
 * 8208), for a buffer of a power of two behind a small header (sqlite's
 * allocator asks for 1032 and 4104 bytes for its 1 KiB and 4 KiB pages)
 * and for a tracked power-of-two request with its padding byte (track.c).
 * Every power of two from 16 to MS_MAX_SMALL is a class (memalign relies
 * on it).  96 classes: the most that struct memshim_heap_stats holds. */
#define MS_MAX_SMALL        ((size_t)512 * 1024)
#define MS_SMALL_TABLE_MAX  1024                /* sizes served by a table lookup */
#define MS_NCLASSES         96
#define MS_CLASS_NONE       0xFF                /* page_class[] of a free page */
#define MS_FIRST_BATCH      4                   /* a thread's first refill of a class */
/* Thread caches hold blocks up to MS_TCACHE_MAX (jemalloc's tcache_max):
 * a cached block above it kept its whole span resident for one block, and
 * a program touching many large sizes (python3's buffers) held megabytes
 * that way.  Larger blocks go to and from the central lists directly. */
#define MS_TCACHE_MAX       ((size_t)32 * 1024)

/* ---- per-page bookkeeping --------------------------------------------- */
typedef struct ms_block_s { struct ms_block_s *next; } ms_block_t;

/* What tracking knows of one block (track.c).  Spans keep an array of these
 * beside them, one per block, in memshim's own memory; huge blocks keep one
 * in their table entry.  Written without locks by whoever owns the block. */
enum { MS_BLK_NEVER = 0, MS_BLK_LIVE = 1, MS_BLK_FREED = 2 };
enum { MS_META_SAMPLED = 1,     /* has a stack; counts in reports */
       MS_META_INTERNAL = 2,     /* allocated on memshim's behalf (libunwind, libdw) */
       MS_META_GC_AT0 = 4,       /* a collector object, its header at the block's start */
       MS_META_GC_AT16 = 8 };    /* a collector object, its header 16 bytes in */
/* How a block was allocated, as memcheck tells them apart: it must be
 * released by the matching call (free, delete, delete[]; aligned delete
 * for aligned new), else "Mismatched free() / delete / delete []". */
enum { MS_ALLOC_MALLOC = 0,     /* the malloc family */
       MS_ALLOC_NEW = 1,         /* operator new */
       MS_ALLOC_NEW_ARRAY = 2,   /* operator new[] */
       MS_ALLOC_ALIGNED = 4 };   /* with NEW or NEW_ARRAY: the std::align_val_t form */
typedef struct ms_meta_s {
    uint32_t stack;        /* allocation stack id (stacks.c), 0 if unknown */
    uint32_t free_stack;   /* stack of the free that released it */
    uint32_t tid;          /* allocating thread (kernel thread id) */
    uint32_t size  : 23;   /* bytes requested (huge blocks keep theirs in huge.c) */
    uint32_t alloc : 3;    /* MS_ALLOC_* */
    uint32_t state : 2;    /* MS_BLK_* */
    uint32_t flags : 4;    /* MS_META_* */
} ms_meta_t;
#define MS_META_SIZE_MAX ((1u << 23) - 1)
_Static_assert(sizeof(ms_meta_t) == 16, "a block's record stays 16 bytes");
_Static_assert(MS_META_SIZE_MAX >= MS_MAX_SMALL, "a small block's size fits its record");

typedef struct ms_page_s {
    ms_block_t        *free;      /* blocks returned to this span (class lock) */
    ms_meta_t         *meta;      /* per-block tracking records, or NULL */
    uint8_t           *start;     /* first byte of the span */
    uint32_t           used;      /* blocks handed out and not yet returned */
    uint32_t           carved;    /* blocks carved so far (bump pointer) */
    uint32_t           capacity;  /* blocks the span holds */
    uint16_t           npages;    /* span length in pages (on the head page) */
    uint8_t            cls;       /* size class, or MS_CLASS_NONE */
    uint8_t            in_partial;/* on its class's partial list */
    uint32_t           sampled;   /* live blocks of the sampled profiler (sample.c) */
    uint32_t           owner;     /* id of the thread cache that last took blocks
                                   * from the span (pool.c; read racily, a hint) */
    struct ms_page_s  *prev, *next; /* partial list of the class */
} ms_page_t;
_Static_assert(sizeof(ms_page_t) == 64, "a span's header stays one cache line");

typedef struct ms_segment_s {
    uint64_t              magic;      /* MS_SEGMENT_MAGIC ^ address: sanity */
    uint64_t              free_mask;  /* bit i: page i is free (segment lock) */
    uint64_t              dirty_mask; /* free pages not yet purged */
    uint32_t              freed_ms[MS_PAGES_PER_SEG]; /* when each dirty page was freed (ms, wraps) */
    struct ms_segment_s  *prev, *next;/* all segments (segment lock) */
    uint8_t               page_class[MS_PAGES_PER_SEG]; /* read lock-free by free() */
    uint8_t               span_head[MS_PAGES_PER_SEG];  /* head page of each page's span */
    ms_page_t             pages[MS_PAGES_PER_SEG];
} ms_segment_t;

#define MS_SEGMENT_MAGIC 0x6d656d7368696d53ULL  /* "memshimS" */

/* ---- thread caches ----------------------------------------------------- */
typedef struct ms_bin_s {
    ms_block_t *head;
    uint32_t    count;
    uint16_t    limit;       /* 0: no cache (classes above MS_TCACHE_MAX,
                              * the sentinel of a dead thread) */
    uint16_t    want;        /* the next refill's batch: small for a new
                              * thread, doubling up to the class's batch */
    uint64_t    allocs;      /* statistics, owned by the thread */
    uint64_t    frees;
} ms_bin_t;

typedef struct ms_tcache_s {
    ms_bin_t             bins[MS_NCLASSES];
    struct ms_tcache_s  *prev, *next;   /* registry of live caches (tcache lock) */
    uint64_t             next_look;     /* ns: the thread's next look at what it keeps (tcache.c) */
    uint64_t             dry[(MS_NCLASSES + 63) / 64]; /* bins refilled since the last look */
    uint64_t             seen[MS_NCLASSES]; /* each bin's allocs + frees at the last look */
    uint64_t             left_ns;       /* a cache of a thread gone: when its thread left its
                                         * blocks in it for the next thread (0: none) */
    uint32_t             id;            /* never 0; the owner of the spans it takes from */
} ms_tcache_t;

#endif
