/* scan.c - which live blocks are leaks: a conservative scan, decided as
 * valgrind memcheck and LeakSanitizer decide it.
 *
 * 1. Stop the world.  Every allocator lock is taken (so no thread is inside
 *    the allocator's bookkeeping), then every other thread is stopped until
 *    the scan is done (park.c): by a helper task with ptrace, as
 *    LeakSanitizer does, which the program does not see (nothing runs in
 *    the thread; the kernel restarts the system call it was in, poll and
 *    nanosleep with what remains of their timeouts), or, where ptrace is
 *    not possible (a debugger, seccomp, Yama), by a signal whose handler
 *    waits.  Either way the scan gets each stopped thread's stack pointer
 *    and general registers.
 * 2. Roots: every readable-writable mapping of the process (data and bss of
 *    every loaded object, thread-local storage, other allocators' memory,
 *    anonymous mappings) and the live part of every thread's stack with the
 *    registers it was stopped with, less everything of memshim's own: its
 *    segments, huge blocks, bookkeeping, its library's data and bss, the
 *    files its symbolizer mapped (hook.c), the stacks of its threads and
 *    its own frames.  "Live part" is exact: a
 *    stopped thread from the stack pointer it was stopped at; the thread
 *    making the report from the stack pointer at which the program called
 *    exit() or memshim_leak_check() (ms_scan_self_t).  Dead frames below it
 *    -- memshim's malloc path, exit's own frames -- hold stale copies of
 *    pointers that would otherwise turn lost blocks into reachable ones,
 *    differently in every stack layout.
 * 3. Mark from the roots.  A word equal to a block's start makes it
 *    REACHABLE; a word inside it only POSSIBLE.  Strength flows down: what a
 *    possibly-reached block points to is at most possibly reached.  Only the
 *    readable parts of a block are read (the program may have mprotected or
 *    unmapped some of it); collector objects are read without their list
 *    links, which join every tracked object to the next.  Marking is
 *    breadth first: every root is read before any block, then blocks in
 *    the order they were reached (a FIFO holding each record at most once,
 *    so it never overflows).  Each record keeps the address of the word
 *    that gave it its mark and the record holding that word, or what kind
 *    of root it was in: the retention path ("why is it alive?") is then a
 *    shortest chain from a root, read back at report time.
 * 4. Every block still unreached leads a clique: it is DEFINITELY lost, and
 *    what only it reaches is INDIRECTLY lost, counted under it.  A leader
 *    reached later from another leader joins that leader's clique, so of a
 *    lost cycle exactly one block is definitely lost.
 *
 * While the world is stopped nothing here takes a lock or allocates: scratch
 * memory comes straight from mmap.  The result is a flat array of items
 * (kind, stack, size) that report.c groups and prints after the threads run
 * again. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/syscall.h>
#include <link.h>
#include <unistd.h>
#include "shim.h"
#include "../collector/collector.h"

#define MAX_THREADS      MS_PARK_MAX
#define MAX_EXCLUDE      8192

enum { M_UNREACHED = 0, M_INDIRECT, M_POSSIBLE, M_REACHABLE, M_DEFINITE };

typedef struct {            /* scan record of one live block: 64 bytes, as its item */
    uintptr_t  addr;
    size_t     size;        /* requested bytes: the part scanned and pointed into */
    uintptr_t  from;        /* the word that gave it its mark (retention paths) */
    union {                 /* by mark: read each only for its own */
        struct {            /* M_DEFINITE, M_INDIRECT: its clique (lead, scan_words) */
            uint64_t indirect;      /* for leaders: bytes of their clique */
            uint32_t leader;        /* for INDIRECT: the record leading its clique */
        };
        struct {            /* M_REACHABLE, M_POSSIBLE held from a STACK or TLS root */
            uintptr_t root_pc;      /* see ms_leak_item_t */
            uintptr_t root_module;
        };
    };
    uint32_t   stack;
    uint32_t   parent;      /* the record holding `from`, or NO_REC (a root) */
    uint32_t   into;        /* where that word points into this block */
    uint32_t   thread;      /* STACK, REGS, TLS roots: index in the scan's threads */
    uint8_t    mark;
    uint8_t    sampled;
    uint8_t    internal;    /* memshim's own (libunwind, libdw): never reported, no root */
    uint8_t    gclinks;     /* collector object: 1 + offset/16 of its list links, or 0 */
    uint8_t    inherited;   /* forked child: the parent's block */
    uint8_t    queued;      /* in the marking queue now */
    uint8_t    heuristic;   /* reachable only through an interior pointer a heuristic took (MS_HEUR_*) */
    uint8_t    rootk;       /* parent == NO_REC: MS_ROOT_* of `from` */
} rec_t;
_Static_assert(sizeof(rec_t) == 64, "a live block's scan record stays 64 bytes");
_Static_assert(MS_NKINDS <= 4 && MS_ROOT_GARBAGE < 8 && MS_HEUR_KINDS <= 8 && 16 + GC_BLOCK_HEADER < 64,
               "an item's small fields hold a record's");
#define NO_REC UINT32_MAX

typedef struct {
    rec_t       *recs;
    size_t       nrecs, cap;
    uintptr_t    heap_lo, heap_hi;    /* every word a block could be reached by is in [lo, hi) */
    uintptr_t    heap_span;           /* hi - lo, once every record is made */
    uint32_t    *queue;      /* marking FIFO of record indices (a ring) */
    size_t       qhead, qlen, qcap;
    uint32_t     cur;        /* the record being read, NO_REC while reading roots */
    uint8_t      rootk;      /* what kind of root is being read */
    uint32_t     thread;     /* ... and whose (index in sps) */
    ms_range_t  *ex;         /* executable mappings, sorted (stack roots' functions) */
    size_t       nex, ex_cap;
    ms_range_t  *img;        /* readable mappings of files, sorted (virtual tables) */
    size_t       nimg, img_cap;
    rec_t      **huge;       /* huge records sorted by address (pointers into recs) */
    size_t       nhuge;
    ms_range_t  *excl;       /* sorted ranges never scanned as roots */
    size_t       nexcl;
    ms_range_t  *rd;         /* readable mappings, sorted (from /proc/self/maps) */
    size_t       nrd, rd_cap, rd_last;
    uint8_t      strength;   /* current propagation strength */
} scan_t;

/* ---- threads: memshim's own, and those that have ended ------------------- */

/* memshim's own threads (the RSS sampler, the signal reporter) block
 * signals and never touch the program's heap: they are not parked, and
 * their stacks are no roots.  Each registers itself from its own stack. */
static int internal_tids[8];
static uintptr_t internal_stack[8];     /* an address on that thread's stack */
static uintptr_t internal_tp[8];        /* its thread pointer */
void _ms_internal_thread_add(int tid)
{
    for (unsigned i = 0; i < 8; i++)
        if (!internal_tids[i] || internal_tids[i] == tid) {
            internal_stack[i] = (uintptr_t)__builtin_frame_address(0);
            internal_tp[i] = _ms_thread_pointer();
            internal_tids[i] = tid;
            return;
        }
}

/* A thread of memshim's that took the place of one that ended (old): its
 * slot, which still covers the old one's stack (glibc's cached stacks, the
 * new one's likely, are no roots either). */
void _ms_internal_thread_moved(int old, int tid)
{
    for (unsigned i = 0; old && i < 8; i++)
        if (internal_tids[i] == old) internal_tids[i] = tid;
    _ms_internal_thread_add(tid);
}

/* Where the glibc thread stack holding thread pointer tp ends: glibc puts
 * the thread's descriptor (less than a page) at the very top of the stack's
 * mapping, the static TLS below it.  The kernel may have merged that mapping
 * with an anonymous one right above it -- the main thread's TLS, memory of
 * the program's -- which /proc/self/maps then shows as one: that part is
 * no stack and stays a root. */
static uintptr_t stack_end(uintptr_t tp, uintptr_t hi)
{
    uintptr_t end = (tp + MS_OS_PAGE) & ~(uintptr_t)(MS_OS_PAGE - 1);
    return end < hi ? end : hi;
}
bool _ms_internal_thread(int tid)
{
    for (unsigned i = 0; i < 8; i++) if (internal_tids[i] == tid) return true;
    return false;
}
void _ms_internal_threads_forget(void)  /* a forked child has none of them */
{
    memset(internal_tids, 0, sizeof internal_tids);
    memset(internal_stack, 0, sizeof internal_stack);
}

/* Stacks of threads that have ended.  glibc keeps them mapped for new
 * threads (its stack cache, 40 MiB by default), full of the dead thread's
 * pointers; memcheck knows they are dead memory, and so must we.  A thread
 * that allocated notes, as it exits, an address on its stack and its thread
 * pointer (which glibc keeps at the top of the same mapping); the scan skips
 * a mapping holding both unless a live thread's stack pointer is in it. */
#define DEAD_STACKS 256
static struct { uintptr_t sp, tp; } dead_stack[DEAD_STACKS];
static unsigned dead_next;

void _ms_scan_thread_exit(void)
{
    unsigned i = __atomic_fetch_add(&dead_next, 1, __ATOMIC_RELAXED) % DEAD_STACKS;
    __atomic_store_n(&dead_stack[i].sp, 0, __ATOMIC_RELAXED);
    __atomic_store_n(&dead_stack[i].tp, _ms_thread_pointer(), __ATOMIC_RELAXED);
    __atomic_store_n(&dead_stack[i].sp, (uintptr_t)__builtin_frame_address(0), __ATOMIC_RELEASE);
}

/* Whether glibc made the stack [lo, end) below guard [guard, lo): its
 * thread's descriptor, in the last page, says the block is the guard and
 * the stack together ([guard, end), then the guard's size).  A stack the
 * program gave (pthread_attr_setstack) has no guard of glibc's, and its
 * memory may be the program's data again. */
static bool glibc_made(uintptr_t guard, uintptr_t lo, uintptr_t end)
{
    for (const uintptr_t *k = (const uintptr_t *)(end - MS_OS_PAGE); (uintptr_t)(k + 3) <= end; k++)
        if (k[0] == guard && k[1] == end - guard && k[2] == lo - guard) return true;
    return false;
}

/* Whether [lo, hi), right above the guard [guard, lo), starts with a glibc
 * thread stack (the thread pointer near its top) of a thread that has ended
 * (noted above, or `owner`: found by unowned_stack below), and no live
 * thread runs on it again: where its dead part ends (its thread pointer:
 * the stack and static TLS below it), or 0.  An unrelated
 * mapping made later at the same place has no guard below, or no thread
 * pointer where glibc puts it.  The two ways to know one: a thread that
 * ended without allocating, and a forked child's copies of its parent's
 * threads' stacks, note nothing; a stack the kernel merged with the
 * mapping above it has no descriptor in its mapping's last page. */
static uintptr_t dead_thread_stack(uintptr_t guard, uintptr_t lo, uintptr_t hi, const uintptr_t *sps,
                                   const uintptr_t *tps, unsigned nsps, uintptr_t owner)
{
    uintptr_t tp = owner;
    for (unsigned i = 0; i < DEAD_STACKS && !tp; i++) {
        uintptr_t sp = __atomic_load_n(&dead_stack[i].sp, __ATOMIC_ACQUIRE), t = dead_stack[i].tp;
        if (sp >= lo && sp < hi && t > sp && t < hi) tp = t;
    }
    if (!tp) return 0;
    /* in use again: a live thread's stack pointer is in it, or its thread
     * pointer (a thread running on a signal stack or a coroutine's) */
    uintptr_t end = stack_end(tp, hi);
    for (unsigned j = 0; j < nsps; j++)
        if ((sps[j] >= lo && sps[j] < end) || (tps[j] >= lo && tps[j] < end)) return 0;
    if (end - lo < 2 * MS_OS_PAGE || !glibc_made(guard, lo, end)) return 0;
    /* The descriptor, from tp up, stays a root: a thread that ended but
     * was not joined yet keeps its result there, and its thread vector. */
    return tp;
}

static uintptr_t main_tp;                    /* the main thread's, from start-up */
static int pagemap_fd = -1;                  /* /proc/self/pagemap, open while marking */

/* The thread pointer of a glibc thread stack that no live thread owns:
 * one that ended (and was never seen ending: it never allocated), or, in a
 * forked child, one of the parent's other threads, which do not exist here.
 * glibc puts the thread's descriptor in the last page of the mapping; on
 * x86-64 it starts with the TCB header every thread's starts with (the TCB
 * and self pointers both its own address, the stack protector's canary the
 * process's, at 0x28).  Returns that address if [lo, hi)'s last page holds
 * one (resident: a page never written is not read) and it is not the main
 * thread's, else 0.  Every parked thread's thread pointer must be known:
 * dead_thread_stack then keeps the stack of any live one. */
static uintptr_t unowned_stack(uintptr_t lo, uintptr_t hi, const uintptr_t *tps, unsigned ntps)
{
#if defined(__x86_64__)
    uintptr_t my_tp = _ms_thread_pointer();
    if (!main_tp || !my_tp || hi - lo < 2 * MS_OS_PAGE || pagemap_fd < 0) return 0;
    for (unsigned i = 1; i < ntps; i++) if (!tps[i]) return 0;   /* a parked thread's not known */
    uintptr_t page = hi - MS_OS_PAGE, flags = 0;
    if (pread(pagemap_fd, &flags, 8, (off_t)(page / MS_OS_PAGE * 8)) != 8 || !(flags >> 63 & 1)) return 0;
    uintptr_t canary = ((const uintptr_t *)my_tp)[5];
    for (uintptr_t a = page; a + 6 * sizeof(uintptr_t) <= hi; a += 16) {
        const uintptr_t *w = (const uintptr_t *)a;
        if (w[0] != a || w[2] != a || w[5] != canary) continue;
        return a == main_tp ? 0 : a;
    }
#else
    (void)lo; (void)hi; (void)tps; (void)ntps;
#endif
    return 0;
}

/* A forked child reports what it allocated itself: blocks the parent made
 * before fork() are the parent's report's business (it lists them too),
 * unless the parent has ended without a report (leak.c).
 * A block's record names the thread that allocated it; the child's threads
 * are those that allocated since fork (track.c notes each one's first
 * allocation).  A parent's thread id reused by a child's thread would blur
 * the line; the kernel makes that rare. */
#define OWN_TIDS 256
static int      own_tid[OWN_TIDS];
static unsigned own_n;

void _ms_fork_own_reset(void) { own_n = 0; }

void _ms_fork_own_tid(int tid)
{
    unsigned i = __atomic_fetch_add(&own_n, 1, __ATOMIC_ACQ_REL);
    if (i < OWN_TIDS) __atomic_store_n(&own_tid[i], tid, __ATOMIC_RELEASE);
}

static bool parent_counts;              /* this scan: leak.c's _ms_leak_parent_counts */
static bool inherited(uint32_t tid)
{
    if (!_ms_leak_forked || !parent_counts) return false;
    unsigned n = __atomic_load_n(&own_n, __ATOMIC_ACQUIRE);
    if (n > OWN_TIDS) return false;                /* too many threads to tell: keep all */
    for (unsigned i = 0; i < n; i++)
        if ((uint32_t)__atomic_load_n(&own_tid[i], __ATOMIC_ACQUIRE) == tid) return false;
    return true;
}

/* ---- scratch memory: mmap only, listed so it is never a root --------------- */

static void *scratch(scan_t *sc, size_t bytes)
{
    bytes = (bytes + MS_OS_PAGE - 1) & ~(size_t)(MS_OS_PAGE - 1);
    void *p = _ms_os_map(bytes ? bytes : MS_OS_PAGE);
    if (p && sc->nexcl < MAX_EXCLUDE) {
        sc->excl[sc->nexcl].start = (uintptr_t)p;
        sc->excl[sc->nexcl].end = (uintptr_t)p + bytes;
        sc->nexcl++;
    }
    return p;
}

/* ---- collecting the live blocks -------------------------------------------- */

/* The type name of a collector object, read while the world is parked; the
 * report checks it is readable before printing it. */
static bool is_readable(const scan_t *sc, uintptr_t lo, uintptr_t hi)
{
    size_t a = 0, b = sc->nrd;
    while (a < b) {
        size_t mid = (a + b) / 2;
        if (sc->rd[mid].end <= lo) a = mid + 1; else b = mid;
    }
    return a < sc->nrd && sc->rd[a].start <= lo && hi <= sc->rd[a].end;
}

/* A collector object's block (gclinks != 0): where its header starts (its
 * list links first), and where the object itself starts -- a pointer there
 * is a start pointer, since programs hold objects, not their headers. */
static inline uintptr_t gc_header_off(uint8_t gclinks) { return (uintptr_t)(gclinks - 1) * 16; }
static inline uintptr_t gc_object_off(uint8_t gclinks)
{
    return gclinks ? gc_header_off(gclinks) + GC_BLOCK_HEADER : 0;
}

static const char *gc_type_name(const scan_t *sc, const rec_t *r)
{
    uintptr_t hdr = r->addr + gc_header_off(r->gclinks);
    if (r->size < hdr - r->addr + GC_BLOCK_HEADER || !is_readable(sc, hdr, hdr + GC_BLOCK_HEADER))
        return NULL;
    const void *type = gc_header_type((const void *)hdr);
    if (!type || !is_readable(sc, (uintptr_t)type, (uintptr_t)type + sizeof(void *))) return NULL;
    return *(const char *const *)type;
}

static uint8_t gc_links(const ms_meta_t *m)
{
    return (m->flags & MS_META_GC_AT0) ? 1 : (m->flags & MS_META_GC_AT16) ? 2 : 0;
}

static void count_span(void *arg, ms_page_t *pg)
{
    size_t *n = arg;
    if (!pg->meta) return;
    for (uint32_t i = 0; i < pg->carved; i++) *n += pg->meta[i].state == MS_BLK_LIVE;
}

static void count_huge(void *arg, uintptr_t a, size_t map, size_t req, const ms_meta_t *m)
{
    (void)a; (void)map; (void)req; (void)m;
    ++*(size_t *)arg;
}


/* The scan's record of a live block (sc->cap not reached: the caller sees). */
static rec_t *rec_add(scan_t *sc, uintptr_t addr, size_t size, const ms_meta_t *m)
{
    rec_t *r = &sc->recs[sc->nrecs++];
    /* lookup() takes words up to a word past the requested bytes (an
     * empty new[]'s end); a little more keeps the bound simple. */
    if (addr < sc->heap_lo) sc->heap_lo = addr;
    if (addr + size + 16 > sc->heap_hi) sc->heap_hi = addr + size + 16;
    r->addr = addr;
    r->size = size;
    r->stack = m->stack;
    r->sampled = m->flags & MS_META_SAMPLED;
    r->internal = (m->flags & MS_META_INTERNAL) != 0;
    r->gclinks = gc_links(m);
    r->inherited = inherited(m->tid);
    r->parent = r->thread = NO_REC;
    return r;
}
static void add_span(void *arg, ms_page_t *pg)
{
    scan_t *sc = arg;
    if (!pg->meta) return;
    uint32_t bsize = _ms_classes[pg->cls].size;
    for (uint32_t i = 0; i < pg->carved && sc->nrecs < sc->cap; i++) {
        ms_meta_t *m = &pg->meta[i];
        if (m->state != MS_BLK_LIVE) continue;
        rec_add(sc, (uintptr_t)pg->start + (uintptr_t)i * bsize, m->size, m);
        m->free_stack = (uint32_t)sc->nrecs - 1;   /* record index, for lookups */
    }
}

static void add_huge(void *arg, uintptr_t a, size_t map, size_t req, const ms_meta_t *m)
{
    scan_t *sc = arg;
    if (sc->nrecs >= sc->cap) return;
    sc->huge[sc->nhuge++] = rec_add(sc, a, req, m);
    if (sc->nexcl < MAX_EXCLUDE) {                  /* a huge block is heap, not a root */
        sc->excl[sc->nexcl].start = a;
        sc->excl[sc->nexcl].end = a + map;
        sc->nexcl++;
    }
}

/* ---- lookups ------------------------------------------------------------------- */

/* The record a word points into, or -1; *start tells a start pointer. */
/* new T[0] of a type with a destructor: the block is new[]'s element
 * count alone (0), and new[] returns a pointer just past it, one past the
 * bytes asked for; it is what delete[] takes back (LeakSanitizer's
 * operator-new-0 case).  Anything else one past a block points into no
 * block (track.c: the byte added to tracked blocks). */
static bool new_array_of_none(const scan_t *sc, const ms_meta_t *m, uintptr_t w, uint64_t into)
{
    const uintptr_t W = sizeof(uintptr_t);
    return into == W && m->size == W && (m->alloc & MS_ALLOC_NEW_ARRAY) && is_readable(sc, w - W, w) &&
           *(const uintptr_t *)(w - W) == 0;
}

static long lookup(scan_t *sc, uintptr_t w, bool *start)
{
    ms_segment_t *s = _ms_segment_of((void *)w);
    if (s) {
        ms_where_t at;
        if (!_ms_where(s, (void *)w, &at) || !at.pg->meta || at.idx >= at.pg->carved) return -1;
        ms_meta_t *m = &at.pg->meta[at.idx];
        if (m->state != MS_BLK_LIVE) return -1;
        uint64_t into = at.off - at.idx * at.k->size;
        *start = into == 0 || into == gc_object_off(gc_links(m)) || new_array_of_none(sc, m, w, into);
        if (into && into >= m->size && !*start) return -1;    /* past the requested bytes */
        return m->free_stack < sc->nrecs ? (long)m->free_stack : -1;
    }
    size_t lo = 0, hi = sc->nhuge;                 /* huge: last block starting <= w */
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        if (sc->huge[mid]->addr <= w) lo = mid + 1; else hi = mid;
    }
    if (!lo) return -1;
    rec_t *r = sc->huge[lo - 1];
    if (w != r->addr && w - r->addr >= r->size) return -1;
    *start = w == r->addr || (r->gclinks && w - r->addr == gc_object_off(r->gclinks));
    return r - sc->recs;
}

/* ---- memcheck's leak heuristics ------------------------------------------------------ *
 * Some interior pointers are how a program holds a block, not a sign it lost
 * the start: memcheck takes them as start pointers (its
 * --leak-check-heuristics, all on by default), and so does memshim, so
 * that a C++ program's verdicts are memcheck's.  Each looks at the block:
 *   stdstring   3 words in, the block being a copy-on-write std::string's
 *               representation: length, capacity, a count, then capacity + 1
 *               bytes;
 *   length64    8 bytes in, after a 64-bit length of the rest (sqlite's
 *               blocks);
 *   newarray    one word in, after the element count new[] puts before an
 *               array of objects with destructors, when the rest divides by
 *               it;
 *   multipleinheritance  anywhere, when the word there and the block's first
 *               word both point to virtual tables (a base other than the
 *               first of an object of several);
 *   gobject     (memshim's own) a multiple of 16 bytes in, at a GLib type
 *               instance after its private data: valgrind sees such an
 *               instance as a block of its own because GLib tells it so
 *               (client requests), memshim by its shape.
 * A virtual table is taken to be an array in a mapping of a file (a
 * program's or a library's) whose first 20 words hold at least two
 * pointers into executable mappings of files, and nothing else but zeros
 * before them, as memcheck takes it: a table of function pointers built on
 * the heap is none. */

static bool in_ranges(const ms_range_t *r, size_t n, uintptr_t a);

static bool is_vtable(const scan_t *sc, uintptr_t p)
{
    unsigned fns = 0;
    for (unsigned i = 0; i < 20; i++, p += sizeof(uintptr_t)) {
        if (!is_readable(sc, p, p + sizeof(uintptr_t)) || !in_ranges(sc->img, sc->nimg, p)) return false;
        uintptr_t f = *(const uintptr_t *)p;
        if (!f) continue;
        if (!in_ranges(sc->ex, sc->nex, f) || !in_ranges(sc->img, sc->nimg, f)) return false;
        if (++fns == 2) return true;
    }
    return false;
}

/* Whether w, 16k bytes (k > 0) into a block, points at a GLib type
 * instance: g_type_create_instance puts the type's private data (a
 * multiple of 16 bytes) first and hands out the address after it.  The
 * instance's first word points to the start of its class (a block), the
 * class's first word to the start of its type's node (a block), and the
 * node holds its own address among its first 16 words (its supers[0], the
 * type itself).  Three blocks and a self-pointer, checked as they are. */
static bool gobject_instance(scan_t *sc, uintptr_t w)
{
    const uintptr_t W = sizeof(uintptr_t);
    bool start;
    if (!is_readable(sc, w, w + W)) return false;
    uintptr_t cls = *(const uintptr_t *)w;
    long c = cls % W == 0 ? lookup(sc, cls, &start) : -1;
    if (c < 0 || !start || sc->recs[c].size < W || !is_readable(sc, cls, cls + W)) return false;
    uintptr_t node = *(const uintptr_t *)cls;
    long t = node % W == 0 ? lookup(sc, node, &start) : -1;
    if (t < 0 || !start) return false;
    uint64_t words = sc->recs[t].size / W < 16 ? sc->recs[t].size / W : 16;
    if (!is_readable(sc, node, node + words * W)) return false;
    for (uint64_t i = 1; i < words; i++)
        if (((const uintptr_t *)node)[i] == node) return true;
    return false;
}

/* The heuristic that takes w, pointing into r's requested bytes but not at
 * its start, for a start pointer, or MS_HEUR_NONE. */
static unsigned heuristic(scan_t *sc, const rec_t *r, uintptr_t w)
{
    const uintptr_t W = sizeof(uintptr_t), a = r->addr, into = w - a;
    const uintptr_t *b = (const uintptr_t *)a;
    if (into == 3 * W && is_readable(sc, a, a + 2 * W) && b[1] < r->size && 3 * W + b[1] + 1 == r->size &&
        b[0] <= b[1])
        return MS_HEUR_STDSTRING;
    if (into == W && is_readable(sc, a, a + W) && b[0]) {        /* into < size: the block is longer */
        if (r->size - W == b[0]) return MS_HEUR_LENGTH64;
        if ((r->size - W) % b[0] == 0) return MS_HEUR_NEWARRAY;
    }
    if (w % W == 0 && is_readable(sc, w, w + W) && is_readable(sc, a, a + W)) {
        uintptr_t inner = *(const uintptr_t *)w, first = *(const uintptr_t *)a;
        if (inner % W == 0 && inner >= 4096 && first % W == 0 && first >= 4096 && is_vtable(sc, inner) &&
            is_vtable(sc, first))
            return MS_HEUR_MULTIPLE;
    }
    if (into % 16 == 0 && into + W <= r->size && gobject_instance(sc, w)) return MS_HEUR_GOBJECT;
    return MS_HEUR_NONE;
}

/* glibc's vector of a thread's dynamic TLS: the loader allocates its
 * length + 2 entries of 16 bytes, the first holding the length, and the
 * thread's control block points to the second (INSTALL_DTV).  That is the
 * vector's start pointer in all but address: the TLS blocks of dlopen'd
 * modules behind it, and what they hold, are reachable (a thread's were
 * possibly lost; the main thread's vector is the loader's own memory). */
static bool dtv_pointer(const scan_t *sc, const rec_t *r, uintptr_t w)
{
    const uintptr_t a = r->addr;
    if (w - a != 16 || !is_readable(sc, a, a + sizeof(uintptr_t))) return false;
    uintptr_t len = *(const uintptr_t *)a;
    return len && len < ((uintptr_t)1 << 24) && (len + 2) * 16 == r->size;
}

/* glibc's tsearch(3) keeps a node's colour in the low bit of the node's
 * left link (misc/tsearch.c): the left child of a red node is pointed to
 * one byte in.  Its nodes are blocks of three words -- the key, the left
 * link with the colour, the right link -- and setenv(3) keeps the strings
 * it made in such a tree (known_values, which only valgrind's
 * __libc_freeres frees): a program calling setenv for a few names had
 * nodes "possibly lost" (git: one of 24 bytes).  Such a pointer is taken
 * for the node's start pointer where it is a left link: held one word into
 * a block of three words (the parent node, being read: sc->cur), and
 * pointing one byte into another whose key is an aligned address and whose
 * links are null or, the colour aside, the start of a block of three
 * words; and both blocks allocated by tsearch itself, where their stacks
 * say (a block whose stack was not taken, sampled out, has the shape
 * alone to go by): a program's own tree of that shape, its colour kept
 * the same way, stays "possibly lost", as memcheck calls it. */
static bool tsearch_made(const rec_t *r)
{
    uintptr_t site = r->stack ? _ms_stack_site(r->stack) : 0;
    return !site || _ms_tsearch_code(site);
}

static bool tsearch_link(scan_t *sc, const rec_t *r, uintptr_t w, uintptr_t at)
{
    const uintptr_t W = sizeof(uintptr_t), a = r->addr;
    if (w - a != 1 || r->size != 3 * W || sc->cur == NO_REC) return false;
    const rec_t *parent = &sc->recs[sc->cur];
    if (parent->size != 3 * W || at - parent->addr != W || !is_readable(sc, a, a + 3 * W)) return false;
    const uintptr_t *n = (const uintptr_t *)a;
    if (!n[0] || n[0] % W || !tsearch_made(r) || !tsearch_made(parent)) return false;
    for (unsigned k = 1; k < 3; k++) {
        uintptr_t link = k == 1 ? n[k] & ~(uintptr_t)1 : n[k];
        bool start;
        long c;
        if (link && (link % W || (c = lookup(sc, link, &start)) < 0 || !start || sc->recs[c].size != 3 * W))
            return false;
    }
    return true;
}

/* ---- marking ---------------------------------------------------------------------- */

/* A record is queued at most once at a time and the ring holds every
 * record: a push is never dropped. */
static void push(scan_t *sc, uint32_t i)
{
    rec_t *r = &sc->recs[i];
    if (r->queued) return;              /* it will be read with its new mark */
    r->queued = 1;
    size_t t = sc->qhead + sc->qlen;
    sc->queue[t >= sc->qcap ? t - sc->qcap : t] = i;
    sc->qlen++;
}

/* Where the word at `a` pointing `into` the record r gave it its mark. */
static inline void reached_from(scan_t *sc, rec_t *r, uintptr_t a, uintptr_t into)
{
    r->from = a;
    r->parent = sc->cur;
    r->into = (uint32_t)into;
    r->rootk = sc->cur == NO_REC ? sc->rootk : MS_ROOT_NONE;
    r->thread = sc->thread;
}

/* Look at every aligned word of [lo, hi) as a possible pointer. */
static void scan_words(scan_t *sc, uintptr_t lo, uintptr_t hi, uint8_t strength, uint32_t leader)
{
    lo = (lo + sizeof(uintptr_t) - 1) & ~(uintptr_t)(sizeof(uintptr_t) - 1);
    if (hi < lo + sizeof(uintptr_t)) return;
    const uintptr_t heap_lo = sc->heap_lo, heap_span = sc->heap_span;
    const uintptr_t last = hi - sizeof(uintptr_t);
    for (uintptr_t a = lo; a <= last; a += sizeof(uintptr_t)) {
        /* four words at a time while none can be a block's */
        while (a + 3 * sizeof(uintptr_t) <= last) {
            const uintptr_t *q = (const uintptr_t *)a;
            if ((q[0] - heap_lo < heap_span) | (q[1] - heap_lo < heap_span) |
                (q[2] - heap_lo < heap_span) | (q[3] - heap_lo < heap_span)) break;
            a += 4 * sizeof(uintptr_t);
        }
        if (a > last) break;
        uintptr_t w = *(const uintptr_t *)a;
        if (MS_LIKELY(w - heap_lo >= heap_span)) continue;   /* no block's: most words */
        bool start;
        long i = lookup(sc, w, &start);
        if (i < 0) continue;
        rec_t *r = &sc->recs[i];
        if (leader != UINT32_MAX) {                   /* clique scan of a lost block */
            if ((uint32_t)i == leader) continue;
            if (r->mark == M_UNREACHED) {
                reached_from(sc, r, a, start ? 0 : w - r->addr);
                r->mark = M_INDIRECT;
                r->leader = leader;
                sc->recs[leader].indirect += r->size;
                push(sc, (uint32_t)i);
            } else if (r->mark == M_DEFINITE) {       /* an earlier leader joins us */
                r->mark = M_INDIRECT;
                r->leader = leader;
                sc->recs[leader].indirect += r->size + r->indirect;
                r->indirect = 0;
            }
            continue;
        }
        if (start && r->heuristic && strength == M_REACHABLE) r->heuristic = MS_HEUR_NONE;   /* a real start pointer */
        if (r->mark == M_REACHABLE) continue;
        unsigned h = MS_HEUR_NONE;
        if (!start && (dtv_pointer(sc, r, w) || tsearch_link(sc, r, w, a))) start = true;
        else if (!start && strength == M_REACHABLE && (h = heuristic(sc, r, w)) != MS_HEUR_NONE) start = true;
        uint8_t s = start ? strength : (strength < M_POSSIBLE ? strength : M_POSSIBLE);
        if (r->mark < s) {
            r->mark = s;
            r->heuristic = (uint8_t)h;
            reached_from(sc, r, a, start && h == MS_HEUR_NONE ? 0 : w - r->addr);
            push(sc, (uint32_t)i);
        }
    }
}

/* Scan only the pages of [lo, hi) that hold data: resident or swapped out,
 * as /proc/self/pagemap says (open for the whole marking).  A page never
 * touched reads as zeros, so it holds no pointer; reading it would fault
 * it in: a program that reserves gigabytes would see its RSS jump at
 * exit, and a reachable buffer of 600 KB the program never wrote cost the
 * scan 0.3 ms, its 147 pages faulted in one by one. */
#define RESIDENT_MIN (16 * MS_OS_PAGE)     /* smaller ranges: read whole */

static void scan_resident(scan_t *sc, uintptr_t lo, uintptr_t hi, uint8_t strength, uint32_t leader)
{
    if (pagemap_fd < 0) { scan_words(sc, lo, hi, strength, leader); return; }
    uint64_t flags[512];
    uintptr_t page = lo & ~(uintptr_t)(MS_OS_PAGE - 1);
    while (page < hi) {
        size_t n = (size_t)((hi - page + MS_OS_PAGE - 1) / MS_OS_PAGE);
        if (n > 512) n = 512;
        ssize_t got = pread(pagemap_fd, flags, n * 8, (off_t)(page / MS_OS_PAGE * 8));
        if (got < (ssize_t)(n * 8)) {                   /* cannot tell: scan it all */
            scan_words(sc, page > lo ? page : lo, hi, strength, leader);
            return;
        }
        for (size_t i = 0; i < n; i++) {
            if (!(flags[i] >> 62 & 3)) continue;        /* bit 63 present, 62 swapped */
            uintptr_t a = page + i * MS_OS_PAGE, b = a + MS_OS_PAGE;
            scan_words(sc, a > lo ? a : lo, b < hi ? b : hi, strength, leader);
        }
        page += n * MS_OS_PAGE;
    }
}

/* A part of a block: big ones by their pages holding data. */
static void scan_part(scan_t *sc, uintptr_t lo, uintptr_t hi, uint8_t strength, uint32_t leader)
{
    if (hi - lo >= RESIDENT_MIN) scan_resident(sc, lo, hi, strength, leader);
    else scan_words(sc, lo, hi, strength, leader);
}

/* Scan [lo, hi) of the heap where it is readable: the program may have made
 * part of a block PROT_NONE or unmapped part of a huge block.  Such a block
 * is still classified; its unreadable bytes just hold no pointers. */
static void scan_readable(scan_t *sc, uintptr_t lo, uintptr_t hi, uint8_t strength, uint32_t leader)
{
    if (lo >= hi) return;
    const ms_range_t *last = sc->nrd ? &sc->rd[sc->rd_last] : NULL;
    if (last && last->start <= lo && hi <= last->end) {      /* the common case */
        scan_part(sc, lo, hi, strength, leader);
        return;
    }
    size_t a = 0, b = sc->nrd;                 /* first range ending above lo */
    while (a < b) {
        size_t mid = (a + b) / 2;
        if (sc->rd[mid].end <= lo) a = mid + 1; else b = mid;
    }
    for (; a < sc->nrd && sc->rd[a].start < hi; a++) {
        uintptr_t x = sc->rd[a].start > lo ? sc->rd[a].start : lo;
        uintptr_t y = sc->rd[a].end < hi ? sc->rd[a].end : hi;
        sc->rd_last = a;
        scan_part(sc, x, y, strength, leader);
    }
}

static void scan_block(scan_t *sc, const rec_t *r, uint32_t leader)
{
    uintptr_t lo = r->addr, hi = r->addr + r->size;
    if (r->gclinks) {                /* skip the collector's next/prev words */
        uintptr_t links = lo + gc_header_off(r->gclinks);
        scan_readable(sc, lo, links < hi ? links : hi, r->mark, leader);
        lo = links + 16;
    }
    scan_readable(sc, lo, hi, r->mark, leader);
}

static void drain(scan_t *sc, uint32_t leader)
{
    while (sc->qlen) {
        uint32_t i = sc->queue[sc->qhead];
        sc->qhead = sc->qhead + 1 == sc->qcap ? 0 : sc->qhead + 1;
        sc->qlen--;
        rec_t *r = &sc->recs[i];
        r->queued = 0;
        sc->cur = i;
        scan_block(sc, r, leader);
    }
    sc->cur = NO_REC;
}

/* Scan [lo, hi) minus the excluded ranges (sorted) and memshim's segments. */
static void scan_root(scan_t *sc, uintptr_t lo, uintptr_t hi)
{
    size_t e = 0;
    while (e < sc->nexcl && sc->excl[e].end <= lo) e++;
    while (lo < hi) {
        if (_ms_segment_of((void *)lo)) {               /* a whole segment of ours */
            lo = (lo | MS_SEGMENT_MASK) + 1;
            continue;
        }
        if (e < sc->nexcl && sc->excl[e].start <= lo) {
            lo = sc->excl[e].end > lo ? sc->excl[e].end : lo + 1;
            e++;
            continue;
        }
        uintptr_t end = (lo | MS_SEGMENT_MASK) + 1;
        if (end > hi || end < lo) end = hi;
        if (e < sc->nexcl && sc->excl[e].start < end) end = sc->excl[e].start;
        scan_resident(sc, lo, end, M_REACHABLE, UINT32_MAX);
        lo = end;
    }
}

static uintptr_t parse_hex(const char **p)
{
    uintptr_t v = 0;
    for (;; (*p)++) {
        char c = **p;
        if (c >= '0' && c <= '9') v = v * 16 + (uintptr_t)(c - '0');
        else if (c >= 'a' && c <= 'f') v = v * 16 + (uintptr_t)(c - 'a' + 10);
        else return v;
    }
}

/* ---- the process's mappings ------------------------------------------------------- */

typedef struct { uintptr_t lo, hi; uint8_t readable, root; } map_ent;
#define MAX_MAPS 65536                 /* the kernel's default vm.max_map_count is 65530 */

/* memshim's own writable data and bss (its tables, the huge-block table,
 * the collector's state): never a root. */
static const ms_self_t *self_image;

void _ms_scan_init(void)
{
    self_image = _ms_self();
    if (_ms_on_main_thread()) main_tp = _ms_thread_pointer();
}

/* Whether a shared mapping named `path` (its maps line from the first '/')
 * is shared memory: anonymous (the kernel names it /dev/zero), POSIX
 * (/dev/shm), System V (/SYSV...) or a memfd.  Those are roots, as
 * memcheck takes them: a program may keep a pointer to its heap there.
 * Shared mappings of files and devices are not: a device's memory may not
 * be plain memory to read (a PCI resource, a GPU's buffer), and a mapped
 * file (a database's) may be far larger than anything holding pointers. */
static bool shared_memory(const char *path)
{
    return path && (strncmp(path, "/dev/zero", 9) == 0 || strncmp(path, "/dev/shm/", 9) == 0 ||
                    strncmp(path, "/SYSV", 5) == 0 || strncmp(path, "/memfd:", 7) == 0);
}

/* [lo, hi) appended to the sorted ranges r (n of cap), joined to the last
 * if that ends where this one starts; once r is full, nothing more. */
static void range_add(ms_range_t *r, size_t *n, size_t cap, uintptr_t lo, uintptr_t hi)
{
    if (*n >= cap) return;
    if (*n && r[*n - 1].end == lo) r[*n - 1].end = hi;
    else r[(*n)++] = (ms_range_t){ lo, hi };
}

/* What read_maps keeps while it reads the lines. */
typedef struct {
    scan_t *sc;
    map_ent *maps;
    size_t max, n;
    const uintptr_t *sps, *tps;
    unsigned nsps;
    bool all_parked;
    uintptr_t guard_lo, guard_end;           /* the last PROT_NONE private mapping */
} maps_read_t;

static bool maps_line(char *line, void *arg)
{
    maps_read_t *m = arg;
    scan_t *sc = m->sc;
    const char *p = line;
    uintptr_t lo = parse_hex(&p);
    p++;
    uintptr_t hi = parse_hex(&p);
    p++;
    bool rw = p[0] == 'r' && p[1] == 'w', priv = p[3] == 'p';
    const char *path = strchr(p, '/');
    const char *bracket = strchr(p, '[');
    /* private: a root unless a device's; shared: only shared memory */
    bool skip = !rw || ((!priv || (path && strncmp(path, "/dev/", 5) == 0)) && !shared_memory(path))
                    || (bracket && (strncmp(bracket, "[vvar]", 6) == 0 ||
                                    strncmp(bracket, "[vsyscall]", 10) == 0));
    uintptr_t stack_to = 0;            /* [lo, stack_to): a stack that is no root */
    for (unsigned i = 0; i < 8 && !skip && !stack_to; i++)
        if (internal_tids[i] && internal_stack[i] >= lo && internal_stack[i] < hi)
            stack_to = stack_end(internal_tp[i], hi);
    if (!skip && !stack_to && m->all_parked && !path && !bracket && m->guard_end == lo)
        stack_to = dead_thread_stack(m->guard_lo, lo, hi, m->sps, m->tps, m->nsps,
                                     unowned_stack(lo, hi, m->tps, m->nsps));
    if (p[0] == '-' && p[1] == '-' && p[2] == '-' && p[3] == 'p') m->guard_lo = lo, m->guard_end = hi;
    if (stack_to && m->n < m->max) m->maps[m->n++] = (map_ent){ lo, stack_to, p[0] == 'r', false };
    uintptr_t rest = stack_to ? stack_to : lo;
    if (rest < hi && m->n < m->max) m->maps[m->n++] = (map_ent){ rest, hi, p[0] == 'r', !skip };
    if (p[0] == 'r' && p[2] == 'x') range_add(sc->ex, &sc->nex, sc->ex_cap, lo, hi);
    if (p[0] == 'r' && path && strncmp(path, "/dev/", 5) != 0) range_add(sc->img, &sc->nimg, sc->img_cap, lo, hi);
    if (p[0] == 'r') range_add(sc->rd, &sc->nrd, sc->rd_cap, lo, hi);
    return false;                      /* every line */
}

/* Read the process's maps once (/proc/thread-self/maps): which mappings are roots, which are readable.
 * SIZE_MAX, errno set, when it cannot be read (a seccomp filter, no /proc):
 * then no root is known, and no verdict can be given.  Read in 64 KiB
 * pieces: no line (a path is at most 4 KiB) is ever long enough to be
 * skipped, and a process of many mappings takes few reads. */
static size_t read_maps(scan_t *sc, map_ent *maps, size_t max, const uintptr_t *sps, const uintptr_t *tps,
                        unsigned nsps, bool all_parked)
{
    char buf[65536];
    maps_read_t m = { sc, maps, max, 0, sps, tps, nsps, all_parked, 0, 0 };
    if (_ms_proc_lines_in("maps", buf, sizeof buf, maps_line, &m) < 0) return SIZE_MAX;
    return m.n;
}

/* A stack pointer this far below a mapping, with no mapping between but a
 * guard (unreadable), is that mapping's thread's: its stack overflowed
 * (the fault a little below the lowest page the kernel would give the
 * main thread, or in a thread's guard). */
#define OVERFLOW_GAP ((uintptr_t)1 << 20)

/* Scan every root mapping; a thread's stack only from its live stack
 * pointer up, a self-data mapping partly shared with others minus ours. */
static void scan_roots(scan_t *sc, const map_ent *maps, size_t nmaps, const uintptr_t *sps, unsigned nsps)
{
    for (size_t m = 0; m < nmaps; m++) {
        if (!maps[m].root) continue;
        uintptr_t lo = maps[m].lo, hi = maps[m].hi;
        uintptr_t below = !m ? 0 : maps[m - 1].readable ? maps[m - 1].hi : maps[m - 1].lo;
        sc->rootk = MS_ROOT_MAPPING;
        sc->thread = NO_REC;
        for (unsigned i = 0; i < nsps; i++)
            if ((sps[i] >= lo && sps[i] < hi) ||
                (sps[i] && sps[i] < lo && sps[i] >= below && lo - sps[i] <= OVERFLOW_GAP)) {
                if (sps[i] >= lo) lo = sps[i] & ~(uintptr_t)7;
                sc->rootk = MS_ROOT_STACK;
                sc->thread = i;
                break;
            }
        scan_root(sc, lo, hi);
    }
}

#define MS_SORT_NAME sort_ranges
#define MS_SORT_TYPE ms_range_t
#define MS_SORT_BEFORE(x, y) ((x)->start < (y)->start)
#include "sort.h"

#define MS_SORT_NAME sort_huge
#define MS_SORT_TYPE rec_t *
#define MS_SORT_BEFORE(x, y) ((*(x))->addr < (*(y))->addr)
#include "sort.h"

/* A reference the collector holds for the program (a root, the garbage
 * list): what it points to is reachable. */
static void strong_ref(void *arg, const void *p, int garbage)
{
    scan_t *sc = arg;
    uintptr_t w = (uintptr_t)p;
    sc->rootk = garbage ? MS_ROOT_GARBAGE : MS_ROOT_GC;
    sc->thread = NO_REC;
    scan_words(sc, (uintptr_t)&w, (uintptr_t)(&w + 1), M_REACHABLE, UINT32_MAX);
}

/* ---- naming the roots of retention paths ------------------------------------------ */

/* Static thread-local storage: each module's block sits at the same offset
 * from every thread's thread pointer.  Read before the world stops
 * (dl_iterate_phdr takes the loader's lock). */
typedef struct { intptr_t off; size_t size; uintptr_t probe; } tls_mod_t;  /* probe: an address in it */
#define MAX_TLS_MODS 64
static tls_mod_t tls_mods[MAX_TLS_MODS];
static unsigned  ntls_mods;

static int find_tls(struct dl_phdr_info *info, size_t size, void *arg)
{
    if (size < offsetof(struct dl_phdr_info, dlpi_tls_data) + sizeof info->dlpi_tls_data ||
        !info->dlpi_tls_data || ntls_mods >= MAX_TLS_MODS) return 0;
    for (int i = 0; i < info->dlpi_phnum; i++) {
        const ElfW(Phdr) *ph = &info->dlpi_phdr[i];
        if (ph->p_type != PT_TLS || !ph->p_memsz) continue;
        uintptr_t probe = 0;
        for (int j = 0; j < info->dlpi_phnum && !probe; j++)
            if (info->dlpi_phdr[j].p_type == PT_LOAD) probe = info->dlpi_addr + info->dlpi_phdr[j].p_vaddr;
        tls_mods[ntls_mods++] = (tls_mod_t){ (intptr_t)((uintptr_t)info->dlpi_tls_data - (uintptr_t)arg),
                                             ph->p_memsz, probe };
        break;
    }
    return 0;
}

static bool in_ranges(const ms_range_t *r, size_t n, uintptr_t a)
{
    size_t lo = 0, hi = n;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        if (r[mid].end <= a) lo = mid + 1; else hi = mid;
    }
    return lo < n && r[lo].start <= a;
}

/* Whether v looks like a return address: in code, right after a call. */
static bool return_address(const scan_t *sc, uintptr_t v)
{
    if (v < 8 || !in_ranges(sc->ex, sc->nex, v - 1) || !is_readable(sc, v - 8, v)) return false;
#if defined(__x86_64__)
    const uint8_t *c = (const uint8_t *)v;
    if (c[-5] == 0xe8) return true;                         /* call rel32 */
    static const unsigned len[] = { 2, 3, 4, 6, 7 };        /* call *r/m: ff /2 */
    for (unsigned k = 0; k < sizeof len / sizeof *len; k++)
        if (c[-(int)len[k]] == 0xff && (c[1 - (int)len[k]] & 0x38) == 0x10) return true;
    return false;
#elif defined(__aarch64__)
    uint32_t insn = *(const uint32_t *)(v - 4);
    return (insn & 0xfc000000u) == 0x94000000u || (insn & 0xfffffc1fu) == 0xd63f0000u;   /* bl, blr */
#else
    return false;
#endif
}

typedef struct { const uintptr_t *sp, *pc, *tp; unsigned n; } threads_t;

/* Whether `a` is in thread t's static TLS: then the root is TLS. */
static bool tls_of(rec_t *r, const threads_t *th, unsigned t, uintptr_t a)
{
    for (unsigned m = 0; m < ntls_mods; m++) {
        uintptr_t lo = th->tp[t] + (uintptr_t)tls_mods[m].off;
        if (a >= lo && a < lo + tls_mods[m].size) {
            r->rootk = MS_ROOT_TLS;
            r->thread = t;
            r->root_pc = a - lo;
            r->root_module = tls_mods[m].probe;
            return true;
        }
    }
    return false;
}

/* Name the roots of the blocks a root keeps directly, while the world is
 * still stopped: a word in a thread's static TLS is TLS; a word on a stack
 * belongs to the frame of the function whose call lies nearest below it
 * (the return address it pushed), or the one the thread was stopped in.
 * The threads' TLS areas are disjoint: sorted by thread pointer, a word's
 * candidate is found by bisection.  Looking for return addresses is
 * bounded, in all, to a few million words. */
static void name_roots(scan_t *sc, const threads_t *th)
{
    static uint32_t order[MAX_THREADS + 1];
    unsigned no = 0;
    intptr_t lo_off = INTPTR_MAX;
    for (unsigned m = 0; m < ntls_mods; m++) if (tls_mods[m].off < lo_off) lo_off = tls_mods[m].off;
    for (unsigned t = 0; t < th->n && ntls_mods; t++) if (th->tp[t]) order[no++] = t;
    for (unsigned gap = no / 2; gap; gap /= 2)                  /* shell sort by thread pointer */
        for (unsigned i = gap; i < no; i++) {
            uint32_t x = order[i];
            unsigned j = i;
            for (; j >= gap && th->tp[order[j - gap]] > th->tp[x]; j -= gap) order[j] = order[j - gap];
            order[j] = x;
        }
    size_t budget = (size_t)4 << 20;
    for (size_t i = 0; i < sc->nrecs; i++) {
        rec_t *r = &sc->recs[i];
        if (r->parent != NO_REC || (r->mark != M_REACHABLE && r->mark != M_POSSIBLE)) continue;
        if (r->rootk == MS_ROOT_STACK && r->thread < th->n && th->tp[r->thread] && tls_of(r, th, r->thread, r->from))
            continue;
        if (r->rootk == MS_ROOT_MAPPING && no) {
            uintptr_t key = r->from - (uintptr_t)lo_off;          /* the last thread with tp <= key */
            unsigned a = 0, b = no;
            while (a < b) {
                unsigned mid = (a + b) / 2;
                if (th->tp[order[mid]] <= key) a = mid + 1; else b = mid;
            }
            if (a && tls_of(r, th, order[a - 1], r->from)) continue;
        }
        if (r->rootk != MS_ROOT_STACK || r->thread >= th->n) continue;
        uintptr_t sp = th->sp[r->thread], pc = th->pc[r->thread];
        for (uintptr_t a = (r->from & ~(uintptr_t)7) - 8; a >= sp && budget; a -= 8, budget--) {
            uintptr_t v = *(const uintptr_t *)a;
            if (return_address(sc, v)) { pc = v - 1; break; }
        }
        r->root_pc = budget ? pc : 0;
    }
}

static size_t round_pages(size_t n) { return (n + MS_OS_PAGE - 1) & ~(size_t)(MS_OS_PAGE - 1); }

/* The records' memory, which becomes the items' (make_items): item k is
 * written in place, made from record i >= k (memshim's own records make
 * none) and is no bigger, so it only covers records already read.  A
 * record's item index is kept aside, in the marking queue (empty by then,
 * a word per record).  A million live blocks: 92 MB less at the exit
 * report's peak than records and items side by side. */
_Static_assert(sizeof(ms_leak_item_t) <= sizeof(rec_t), "an item must fit in its record's place");
static size_t recs_bytes(size_t cap)
{
    size_t recs = cap * sizeof(rec_t), items = (cap + 1) * sizeof(ms_leak_item_t);
    return round_pages(recs > items ? recs : items);
}

/* Run the whole scan.  On return *out holds one item per live block with
 * its kind (an mmap'd array the caller releases with _ms_leak_items_free).
 * `self`: where the calling thread's live stack starts and its registers
 * there, or NULL when the caller is one of memshim's own threads. */
/* ---- the scan, phase by phase ------------------------------------------------------ */

/* The scan's scratch memory, mapped afresh (the heap is locked) and given
 * back at the end. */
typedef struct {
    size_t           nhuge;
    ms_leak_item_t  *items;
    map_ent         *maps;
} scratch_t;

/* Phase 1: a record for every live block, sorted huge blocks, the ranges
 * that are no roots.  False if scratch memory ran out. */
static bool collect_blocks(scan_t *sc, scratch_t *x, const ms_parked_t *pk)
{
    static ms_range_t excl_store[MAX_EXCLUDE];
    sc->excl = excl_store;
    sc->nexcl = _ms_meta_ranges(sc->excl, MAX_EXCLUDE / 2);
    if (pk->own.end) sc->excl[sc->nexcl++] = pk->own;
    /* memshim's own writable data, exactly: the kernel may have merged its
     * .bss with an anonymous mapping of the program's (the main thread's
     * TLS, say), which must stay a root. */
    for (unsigned i = 0; self_image && i < self_image->ndata; i++) sc->excl[sc->nexcl++] = self_image->data[i];
    sc->nexcl += _ms_hook_maps(sc->excl + sc->nexcl, MAX_EXCLUDE / 4);   /* the symbolizer's files */
    sc->nexcl += _ms_leak_note_ranges(sc->excl + sc->nexcl);             /* shared memory of ours */

    parent_counts = _ms_leak_parent_counts();
    size_t live = 0;
    _ms_segment_each_span_locked(count_span, &live);
    _ms_huge_each_locked(count_huge, &x->nhuge);
    sc->cap = live + x->nhuge;
    sc->recs = scratch(sc, recs_bytes(sc->cap));    /* then the items (make_items) */
    sc->qcap = sc->cap + 1;
    sc->queue = scratch(sc, sc->qcap * sizeof(uint32_t));
    sc->cur = NO_REC;
    sc->ex_cap = 4096;
    sc->ex = scratch(sc, sc->ex_cap * sizeof(ms_range_t));
    sc->img_cap = 4096;
    sc->img = scratch(sc, sc->img_cap * sizeof(ms_range_t));
    sc->huge = scratch(sc, (x->nhuge + 1) * sizeof(rec_t *));
    x->maps = scratch(sc, MAX_MAPS * sizeof(map_ent));
    sc->rd_cap = MAX_MAPS;
    sc->rd = scratch(sc, sc->rd_cap * sizeof(ms_range_t));
    if (!sc->recs || !sc->queue || !sc->ex || !sc->img || !sc->huge || !x->maps || !sc->rd) return false;
    sc->heap_lo = UINTPTR_MAX;
    _ms_segment_each_span_locked(add_span, sc);
    _ms_huge_each_locked(add_huge, sc);
    sc->heap_span = sc->heap_hi > sc->heap_lo ? sc->heap_hi - sc->heap_lo : 0;
    sc->nexcl += _ms_huge_cached_locked(sc->excl + sc->nexcl, MAX_EXCLUDE - sc->nexcl);  /* freed: no roots */
    sort_huge(sc->huge, sc->nhuge);
    sort_ranges(sc->excl, sc->nexcl);
    return true;
}

/* The threads: [0] the caller (NULL self: one of memshim's threads), then
 * the parked ones; a parked thread waiting in exit() as its caller left it
 * (init.c, _ms_exit_waiter): registers as the caller's, then the stack. */
#define SCAN_THREADS (MAX_THREADS + 1)
typedef struct {
    uintptr_t sp[SCAN_THREADS], pc[SCAN_THREADS], tp[SCAN_THREADS];
    const uintptr_t *regs[SCAN_THREADS];
    unsigned nregs[SCAN_THREADS];
    int tid[SCAN_THREADS];
    unsigned n;
} scan_threads_t;

static void list_threads(scan_threads_t *t, const ms_parked_t *pk, const ms_scan_self_t *self, uintptr_t my_tp)
{
    t->n = 0;
    t->tid[0] = _ms_os_gettid();
    t->pc[0] = self && self->pc ? self->pc - 1 : 0;   /* a return address */
    t->tp[0] = self ? my_tp : 0;
    t->sp[t->n++] = self ? self->sp : UINTPTR_MAX;
    unsigned parked = pk->n < MAX_THREADS ? pk->n : MAX_THREADS;
    for (unsigned i = 0; i < parked; i++) {
        const ms_caller_t *w = _ms_exit_waiter(pk->tid[i]);
        t->tid[t->n] = pk->tid[i];
        t->pc[t->n] = w ? (w->pc ? w->pc - 1 : 0) : pk->pc[i];
        t->tp[t->n] = pk->tp[i];
        t->regs[t->n] = w ? w->regs : pk->regs[i];
        t->nregs[t->n] = w ? w->nregs : MS_SCAN_REGS;
        t->sp[t->n++] = w ? w->sp : pk->sp[i];
    }
}

/* Phase 2: every root (registers, the collector's strong references, the
 * mappings), then the blocks they reach, breadth first; where each reached
 * block was reached from, for retention paths. */
static bool mark_reachable(scan_t *sc, scratch_t *x, const scan_threads_t *t,
                           const ms_scan_self_t *self, bool all_parked, int gc_held)
{
    size_t nmaps = read_maps(sc, x->maps, MAX_MAPS, t->sp, t->tp, t->n, all_parked);
    if (nmaps == SIZE_MAX) return false;
    /* Blocks made for memshim (by libunwind, libdw, the loader loading
     * them) are never reported, and never roots: libdw keeps the
     * addresses of the process's mappings, a huge block's among them. */
    for (size_t i = 0; i < sc->nrecs; i++)
        if (sc->recs[i].internal) sc->recs[i].mark = M_REACHABLE;
    sc->rootk = MS_ROOT_REGS;
    sc->thread = 0;
    if (self)
        scan_words(sc, (uintptr_t)self->regs, (uintptr_t)(self->regs + self->nregs), M_REACHABLE, UINT32_MAX);
    for (unsigned i = 1; i < t->n; i++) {
        sc->thread = i;
        scan_words(sc, (uintptr_t)t->regs[i], (uintptr_t)(t->regs[i] + t->nregs[i]), M_REACHABLE, UINT32_MAX);
    }
    if (gc_held) gc_strong_refs_locked(strong_ref, sc);
    scan_roots(sc, x->maps, nmaps, t->sp, t->n);
    drain(sc, UINT32_MAX);
    threads_t th = { t->sp, t->pc, t->tp, t->n };
    if (_ms_opt.why_depth) name_roots(sc, &th);
    return true;
}

/* Phase 3: what is left unreached is lost; each unreached block not yet
 * reached from another lost one leads a clique of its own.  Of a lost
 * cycle, the block taken first leads it (the others, reached from it, are
 * indirectly lost), so the blocks are taken by their allocation stack's
 * id, which stacks.c hands out in the order stacks are first met, then in
 * the records' order: the cycle is named by the call that made its first
 * block, as memcheck's lowest address names it, mostly (its heap grows by
 * address; memshim's classes keep blocks of different sizes apart, which
 * made a 48-byte block allocated first the indirect one of a cycle with a
 * 72-byte one).  Blocks without a stack (MEMSHIM_SAMPLE) come last. */
#define MS_SORT_NAME sort_keys
#define MS_SORT_TYPE uint64_t
#define MS_SORT_BEFORE(x, y) (*(x) < *(y))
#include "sort.h"

static void lead(scan_t *sc, uint32_t i)
{
    if (sc->recs[i].mark != M_UNREACHED) return;
    sc->recs[i].mark = M_DEFINITE;
    push(sc, i);
    drain(sc, i);
}

static void mark_lost(scan_t *sc)
{
    size_t n = 0;
    for (size_t i = 0; i < sc->nrecs; i++) n += sc->recs[i].mark == M_UNREACHED;
    size_t bytes = round_pages(n * sizeof(uint64_t));
    uint64_t *key = n > 1 ? _ms_os_map(bytes) : NULL;    /* none: the records' order alone */
    if (key) {
        size_t k = 0;
        for (size_t i = 0; i < sc->nrecs; i++)
            if (sc->recs[i].mark == M_UNREACHED)
                key[k++] = (uint64_t)(sc->recs[i].stack ? sc->recs[i].stack : UINT32_MAX) << 32 | i;
        sort_keys(key, k);
        for (size_t j = 0; j < k; j++) lead(sc, (uint32_t)key[j]);
        _ms_os_unmap(key, bytes);
    } else {
        for (size_t i = 0; i < sc->nrecs; i++) lead(sc, (uint32_t)i);
    }
}

/* Phase 4: the verdicts as the report's items (memshim's own blocks left
 * out), with parents and leaders as item indices, written over the records
 * (recs_bytes above). */
static size_t make_items(scan_t *sc, const scan_threads_t *t)
{
    uint32_t *item_of = sc->queue;
    size_t nitems = 0;
    for (size_t i = 0; i < sc->nrecs; i++) {
        const rec_t *r = &sc->recs[i];
        ms_meta_t *m = _ms_meta_of((void *)r->addr);
        if (m) m->free_stack = 0;         /* it held the record index */
        item_of[i] = r->internal ? NO_REC : (uint32_t)nitems++;
    }
    ms_leak_item_t *items = (ms_leak_item_t *)(void *)sc->recs;
    for (size_t i = 0; i < sc->nrecs; i++) {
        if (item_of[i] == NO_REC) continue;
        const rec_t rec = sc->recs[i], *r = &rec;
        ms_leak_item_t *it = &items[item_of[i]];
        memset(it, 0, sizeof *it);
        it->from = r->mark == M_DEFINITE ? 0 : r->from;
        it->into = r->into;
        it->root = r->parent == NO_REC ? r->rootk : MS_ROOT_NONE;
        it->root_tid = r->thread < t->n ? (uint32_t)t->tid[r->thread] : 0;
        it->objoff = (uint16_t)gc_object_off(r->gclinks);
        it->addr = r->addr;
        it->size = r->size;
        it->stack = r->stack;
        it->sampled = r->sampled;
        it->gctype = r->gclinks ? gc_type_name(sc, r) : NULL;
        it->inherited = r->inherited;
        it->heuristic = r->mark == M_REACHABLE ? r->heuristic : MS_HEUR_NONE;
        if (r->mark == M_DEFINITE || r->mark == M_INDIRECT) {     /* the union's lost half */
            uint32_t leader = r->mark == M_DEFINITE ? (uint32_t)i : r->leader;
            it->leader = item_of[leader] == NO_REC ? UINT32_MAX : item_of[leader];
            it->indirect = r->mark == M_DEFINITE ? r->indirect : 0;
        } else {                                                  /* its rooted half */
            it->root_pc = r->root_pc;
            it->root_module = r->root_module;
        }
        it->kind = r->mark == M_DEFINITE ? MS_KIND_DEFINITE
                 : r->mark == M_INDIRECT ? MS_KIND_INDIRECT
                 : r->mark == M_POSSIBLE ? MS_KIND_POSSIBLE : MS_KIND_REACHABLE;
        /* the parent as an item: a block of memshim's own is no root to show */
        it->parent = r->parent == NO_REC ? MS_WHY_ROOT : item_of[r->parent];
        if (r->parent != NO_REC && item_of[r->parent] == NO_REC) {
            it->parent = MS_WHY_ROOT;
            it->root = MS_ROOT_NONE;
        }
    }
    return nitems;
}

static void release_scratch(scan_t *sc, scratch_t *x)
{
    if (sc->recs) _ms_os_unmap(sc->recs, recs_bytes(sc->cap));
    if (sc->queue) _ms_os_unmap(sc->queue, round_pages(sc->qcap * sizeof(uint32_t)));
    if (sc->ex) _ms_os_unmap(sc->ex, round_pages(sc->ex_cap * sizeof(ms_range_t)));
    if (sc->img) _ms_os_unmap(sc->img, round_pages(sc->img_cap * sizeof(ms_range_t)));
    if (sc->huge) _ms_os_unmap(sc->huge, round_pages((x->nhuge + 1) * sizeof(rec_t *)));
    if (x->maps) _ms_os_unmap(x->maps, round_pages(MAX_MAPS * sizeof(map_ent)));
    if (sc->rd) _ms_os_unmap(sc->rd, round_pages(sc->rd_cap * sizeof(ms_range_t)));
}

/* The leak scan: with every allocator lock held and the program's threads
 * parked, the phases above; the items are the caller's (one mapping, freed
 * by _ms_leak_items_free). */
size_t _ms_scan_leaks(ms_leak_item_t **out, size_t *cap, unsigned *unparked, const ms_scan_self_t *self,
                      unsigned flags)
{
    *out = NULL;
    *cap = 0;
    *unparked = 0;
    _ms_busy++;
    uintptr_t my_tp = _ms_thread_pointer();
    ntls_mods = 0;
    /* before the loader may be stopped; not across a fork; nor while the
     * program is inside dl_iterate_phdr (unwind.c): its TLS blocks are
     * then not named in retention paths */
    if (my_tp && !_ms_program_iterating()) {
        _ms_loader_enter();
        _ms_iterate_phdr(find_tls, (void *)my_tp);
        _ms_loader_leave();
    }
    int gc_held = gc_scan_lock(1000);        /* the collector's lock nests outside ours */
    _ms_lock_all();
    if (MS_DEBUG) _ms_heap_check_locked();
    ms_parked_t pk;
    _ms_park_world(&pk);
    *unparked = pk.missed;

    scan_t sc;
    memset(&sc, 0, sizeof sc);
    scratch_t x = { 0 };
    static scan_threads_t threads;        /* big; one scan at a time (the locks) */
    size_t nitems = 0;
    int failed = ENOMEM;                  /* no scratch memory, or the errno of /proc/self/maps */
    if (collect_blocks(&sc, &x, &pk)) {
        list_threads(&threads, &pk, self, my_tp);
        pagemap_fd = flags & MS_SCAN_FEW_FDS ? -1 : _ms_os_proc_open("pagemap", O_RDONLY);
        bool marked = mark_reachable(&sc, &x, &threads, self, *unparked == 0, gc_held);
        if (marked) mark_lost(&sc);
        int e = errno;
        if (pagemap_fd >= 0) _ms_fd_close(pagemap_fd);
        pagemap_fd = -1;
        errno = e;
        if (marked) {
            nitems = make_items(&sc, &threads);
            x.items = (ms_leak_item_t *)(void *)sc.recs;
            sc.recs = NULL;                       /* the items' now */
            failed = 0;
        } else failed = errno ? errno : EIO;
    }
    _ms_unpark_world();
    _ms_unlock_all(false);
    if (gc_held) gc_scan_unlock();
    _ms_busy--;
    release_scratch(&sc, &x);
    *cap = sc.cap + 1;
    if (failed) {
        _ms_leak_items_free(x.items, *cap);
        errno = failed;
        return 0;
    }
    *out = x.items;
    return nitems;
}

void _ms_leak_items_free(ms_leak_item_t *items, size_t cap)
{
    if (items) _ms_os_unmap(items, recs_bytes(cap - 1));
}
