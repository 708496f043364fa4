/* track.c - what memshim remembers of each live block: requested size,
 * allocating thread and allocation stack (an id into the trace table), and
 * whether it was freed, so that a double free or a free of a pointer never
 * handed out is caught with its stacks.  Records live beside each span, in
 * memshim's own memory (pool.c allocates them), never in the program's heap.
 *
 * These wrappers sit between override.c and the raw allocator of alloc.c and
 * run only while tracking is on (MEMSHIM_TRACK, on by default).  With
 * MEMSHIM_SAMPLE=N only about one allocation per N bytes pays for a stack;
 * every block still gets its record, which the leak scan needs. */
#include <errno.h>
#include <unistd.h>
#include <string.h>
#include "shim.h"

int _ms_track_on = 1;

static __thread uint32_t tl_tid __attribute__((tls_model("initial-exec")));

uint32_t _ms_tid(void)
{
    if (MS_UNLIKELY(!tl_tid)) {
        tl_tid = (uint32_t)_ms_os_gettid();
        if (_ms_leak_forked) _ms_fork_own_tid((int)tl_tid);   /* a thread of the child */
    }
    return tl_tid;
}

static int self_pid;                        /* getpid(), asked once; 0 in a new child */

/* Whether the caller is the process's main thread (whose id is the
 * process's): no system call after a thread's first. */
bool _ms_on_main_thread(void)
{
    if (MS_UNLIKELY(!self_pid)) __atomic_store_n(&self_pid, getpid(), __ATOMIC_RELAXED);
    return _ms_tid() == (uint32_t)__atomic_load_n(&self_pid, __ATOMIC_RELAXED);
}

void _ms_track_after_fork_child(void)
{
    tl_tid = 0;
    self_pid = 0;
}

/* MEMSHIM_SAMPLE=N: about one allocation per N bytes pays for a stack
 * (sample.c draws the gaps). */
static inline bool take_sample(size_t n)
{
    if (!_ms_opt.sample) return true;
    if ((_ms_sample_left -= (int64_t)n) >= 0) return false;
    return _ms_sample_due(n);
}

/* ---- records -------------------------------------------------------------- */

/* The record of p, and where p is (*s NULL when it has none: huge,
 * foreign, or not the start of a block). */
static inline ms_meta_t *meta_at(const void *p, ms_segment_t **s, ms_where_t *w)
{
    ms_segment_t *seg = _ms_segment_of(p);
    *s = NULL;
    if (!seg || !_ms_where(seg, p, w) || !w->pg->meta) return NULL;
    if (w->idx * w->k->size != w->off || w->idx >= w->k->capacity) return NULL;
    *s = seg;
    return &w->pg->meta[w->idx];
}

ms_meta_t *_ms_meta_of(const void *p)
{
    ms_segment_t *s;
    ms_where_t w;
    return meta_at(p, &s, &w);
}

/* A new block still holds the free-list link (and key) of its free days:
 * stale pointers to other free blocks that a conservative scan would take
 * for edges.  Clear them; the program may not rely on malloc's contents. */
static inline void scrub(void *p, size_t n)
{
    if (p && n >= sizeof(void *)) ((uintptr_t *)p)[0] = 0;
}

/* What a block holds before the program writes it is no pointer: memcheck
 * reads only the bytes a program wrote, and a word an earlier owner left
 * in the part never written kept lost blocks alive (troff: glibc's locale
 * alias table, 45 of its 100 entries filled, its 46th an old pointer; 409
 * blocks "still reachable" that valgrind called lost).  So the bytes of a
 * tracked block that reach the program unwritten, [from, to), are cleared:
 * all of a new block's, those a realloc adds.  Blocks of the pools only: a
 * huge block is a fresh mapping (zeros) or one from the cache of freed
 * mappings, left as it is (clearing it would make all its pages resident). */
static inline void clear(void *p, size_t from, size_t to)
{
    if (!p || to <= from) return;
    if (to <= MS_MAX_SMALL) memset((char *)p + from, 0, to - from);
    else if (!from) scrub(p, to);                       /* its link, as before */
}

/* clear() for a new block of malloc's of n bytes: up to 128 bytes, inline
 * 16-byte stores over n rounded up to 16 (the block holds n + 1 bytes, its
 * class is a multiple of 16), the first and last units overlapping as in
 * memset, instead of a call to memset (most of a tracked 32-byte malloc's
 * clearing was the call: 11 instructions of memset's own a block). */
typedef uint64_t ms_zero16_t __attribute__((vector_size(16), aligned(16)));
static inline __attribute__((always_inline)) void clear_new(void *p, size_t n)
{
    if (MS_UNLIKELY(n > 128)) { clear(p, 0, n); return; }
    if (!p || !n) return;
    const ms_zero16_t z = { 0, 0 };
    ms_zero16_t *a = p, *e = (ms_zero16_t *)((char *)p + ((n + 15) & ~(size_t)15));
    if (n <= 32) { a[0] = z; e[-1] = z; return; }
    a[0] = z; a[1] = z; e[-2] = z; e[-1] = z;
    if (n <= 64) return;
    a[2] = z; a[3] = z; e[-4] = z; e[-3] = z;
}

/* The bytes [from, to) a huge block regains in place, or in the pages
 * mremap moved with it: what it held there before it shrank (a 2 MiB
 * block's pointer at 1.6 MiB kept the block it named "still reachable"
 * after a realloc to 1 MiB and back, which memcheck and LeakSanitizer call
 * lost).  Whole pages go back to the kernel, to come back as zeros when
 * touched; the pages beyond the old mapping are new, zeros already. */
static void clear_regained(void *p, size_t from, size_t to)
{
    if (!p || to <= from) return;
    char *a = (char *)p + from, *b = (char *)p + to;
    char *pa = (char *)(((uintptr_t)a + MS_OS_PAGE - 1) & ~(uintptr_t)(MS_OS_PAGE - 1));
    char *pb = (char *)((uintptr_t)b & ~(uintptr_t)(MS_OS_PAGE - 1));
    if (pa >= pb) { memset(a, 0, (size_t)(b - a)); return; }
    memset(a, 0, (size_t)(pa - a));
    if (!_ms_os_purge(pa, (size_t)(pb - pa))) memset(pa, 0, (size_t)(pb - pa));   /* locked pages */
    memset(pb, 0, (size_t)(b - pb));
}

/* The record of a block just handed out from segment s: no validation
 * needed. */
static inline ms_meta_t *meta_in(ms_segment_t *s, const void *p)
{
    unsigned i = _ms_page_index(s, p);
    ms_page_t *pg = &s->pages[s->span_head[i]];
    if (!pg->meta) return NULL;
    return &pg->meta[_ms_block_index(&_ms_classes[pg->cls], (uint64_t)((const uint8_t *)p - pg->start))];
}

/* The same for a block from anywhere (a huge one has none here). */
static inline ms_meta_t *fresh_meta(const void *p)
{
    ms_segment_t *s = _ms_segment_of(p);
    return s ? meta_in(s, p) : NULL;
}

/* A record built in registers and stored whole: composed field by field
 * in memory, its 16 bytes were read back while their parts were still
 * being written (a store-forwarding stall, most of record()'s time). */
static inline ms_meta_t meta_make(uint32_t stack, uint32_t tid, size_t n, unsigned alloc, unsigned flags)
{
    return (ms_meta_t){
        .stack = stack,
        .tid = tid,
        .size = n <= MS_META_SIZE_MAX ? (uint32_t)n : 0,
        .alloc = alloc,
        .state = MS_BLK_LIVE,
        .flags = flags,
    };
}

/* `pooled`: p comes from malloc or calloc of at most MS_MAX_SMALL bytes,
 * hence from a segment, whose header is then found without the bitmap.
 * `taken`: the stack of this call, already captured (a realloc's, taken for
 * the block it releases), or NULL. */
static inline __attribute__((always_inline))
void record_inline(void *p, size_t n, const ms_site_t *site, unsigned alloc, bool pooled,
                   const uint32_t *taken, bool internal)
{
    if (!p) return;
    /* The record's line is asked for first: a live set larger than the
     * cache finds it out of the cache, and it arrives while the stack is
     * taken. */
    ms_meta_t *slot = pooled ? meta_in((ms_segment_t *)((uintptr_t)p & ~(MS_SEGMENT_SIZE - 1)), p)
                             : fresh_meta(p);
    if (MS_LIKELY(slot != NULL)) __builtin_prefetch(slot, 1);
    /* memshim's own block (`internal`: libdw's while symbolizing,
     * libunwind's) is never reported nor profiled: it takes no stack, nor
     * a sample of the program's bytes, and its free takes none either
     * (keeps_free_stack).  Writing python3's heap profile, libdw's blocks'
     * stacks were 70 M of the 519 M instructions of the profile's exit. */
    bool sampled = !internal && (!_ms_opt.sample || take_sample(n));
    uint32_t stack = !sampled ? 0 : taken ? *taken : _ms_capture(site);
    if (MS_UNLIKELY(!stack) && sampled) stack = _ms_stack_none();
    uint32_t tid = _ms_tid();
    unsigned flags = (sampled ? MS_META_SAMPLED : 0) | (internal ? MS_META_INTERNAL : 0);
    if (MS_LIKELY(slot != NULL)) *slot = meta_make(stack, tid, n, alloc, flags);
    else if (!_ms_segment_of(p)) {
        ms_meta_t m = meta_make(stack, tid, n, alloc, flags);
        _ms_huge_set_meta(p, &m, n);
    }
    if (_ms_prof_on && !(flags & MS_META_INTERNAL)) _ms_prof_alloc(stack, n, p);
}

/* Whether an allocation at site is memshim's own: made while memshim runs,
 * but for glibc's pthread_setspecific array (the program's). */
static inline bool own_site(const ms_site_t *site)
{
    return _ms_busy && !_ms_tsd_array_site(site->ra);
}

static MS_NOINLINE void record_taken(void *p, size_t n, const ms_site_t *site, unsigned alloc, bool pooled,
                                     const uint32_t *taken)
{
    record_inline(p, n, site, alloc, pooled, taken, own_site(site));
}

static MS_NOINLINE void record(void *p, size_t n, const ms_site_t *site, unsigned alloc, bool pooled)
{
    record_inline(p, n, site, alloc, pooled, NULL, own_site(site));
}

/* The profile forgets a released block (memshim's own blocks never counted;
 * nothing when no profile is kept). */
static inline __attribute__((always_inline)) void unprofile(const ms_meta_t *m, size_t size, const void *p)
{
    if (_ms_prof_on && !(m->flags & MS_META_INTERNAL)) _ms_prof_free(m->stack, size, p, m->tid);
}

/* The stack of the free that releases a block, whole, for a later double
 * free to show: the same stack cache as allocations (a loop freeing from
 * one place unwinds once).  When sampling, only sampled blocks pay for it;
 * with MEMSHIM_FREE_STACKS=0, none. */
static inline bool keeps_free_stack(const ms_meta_t *m)
{
    return (m->flags & MS_META_SAMPLED) && _ms_opt.free_stacks;
}

static inline __attribute__((always_inline)) uint32_t free_stack(const ms_meta_t *m, const ms_site_t *site)
{
    return keeps_free_stack(m) ? _ms_capture_release(site) : 0;
}

/* Blocks released together (a collection's: gcglue.c) share one free
 * stack, taken at the first that needs one: one unwind, not one a block. */
static inline __attribute__((always_inline)) uint32_t batch_stack(const ms_meta_t *m, const ms_site_t *site, ms_free_batch_t *batch)
{
    if (!keeps_free_stack(m)) return 0;
    if (!batch->taken) {
        batch->stack = _ms_capture_release(site);
        batch->taken = true;
    }
    return batch->stack;
}

/* A live block released by a call that does not match its allocation
 * (free of a new'd block, delete of a new[]'d one...): reported unless
 * memshim itself is running or C++ checks are off; the block is released
 * all the same when the program goes on. */
static inline void check_match(const void *p, const ms_meta_t *m, unsigned how, const char *by,
                               const ms_site_t *site)
{
    if (MS_UNLIKELY(m->alloc != how) && _ms_cxx_checks && !_ms_busy)
        _ms_mismatch(p, m, by ? by : _ms_dealloc_name(how), site->ra);
}

/* The same for a pointer with no record beside a span: a live huge block's
 * record is in huge.c.  True, with its record and size, if p is one. */
static bool check_match_huge(const void *p, unsigned how, const char *by, const ms_site_t *site, ms_meta_t *h,
                             size_t *req)
{
    if (_ms_segment_of(p) || !_ms_huge_get_meta(p, h, req) || h->state != MS_BLK_LIVE) return false;
    check_match(p, h, how, by, site);
    return true;
}

/* Check p before it is released by a call of kind `how` (MS_ALLOC_*); false
 * if it must not be (misuse reported).  `batch`: NULL, or the free stack
 * shared by the blocks released with p.  *s and *w: where p is, for
 * free_at (*s NULL: no record, or one not live; _ms_free validates). */
static inline __attribute__((always_inline)) bool release(void *p, const ms_site_t *site, unsigned how,
                                                          ms_free_batch_t *batch, ms_segment_t **s,
                                                          ms_where_t *w)
{
    ms_meta_t *m = meta_at(p, s, w);
    if (!m) {                            /* huge, foreign or invalid: alloc.c decides */
        if (MS_UNLIKELY(_ms_held) && _ms_huge_mine()) return false;   /* a handler inside its thread's
                                                                      * hold: kept, lost (shim.h) */
        ms_meta_t h;
        size_t req;
        if (check_match_huge(p, how, NULL, site, &h, &req)) {
            unprofile(&h, req, p);
            h.state = MS_BLK_FREED;         /* huge.c keeps it a while: a double free's stacks */
            h.free_stack = batch ? batch_stack(&h, site, batch) : free_stack(&h, site);
            _ms_huge_set_meta(p, &h, req);
        }
        return true;
    }
    if (MS_UNLIKELY(m->state != MS_BLK_LIVE)) {
        if (_ms_busy) { *s = NULL; return true; }   /* _ms_free validates it */
        if (m->state == MS_BLK_FREED)
            _ms_misuse(how == MS_ALLOC_MALLOC ? "free(): double free" :
                       (how & MS_ALLOC_NEW_ARRAY) ? "operator delete[]: double free" : "operator delete: double free",
                       p, m);
        else _ms_bad_pointer("free(): invalid pointer", p);     /* carved, never handed out */
        return false;
    }
    check_match(p, m, how, NULL, site);
    unprofile(m, m->size, p);
    m->state = MS_BLK_FREED;
    m->free_stack = batch ? batch_stack(m, site, batch) : free_stack(m, site);
    return true;
}

/* ---- the tracked family --------------------------------------------------- */

/* The block came off a free list: the link it carried must be sound. */
static inline void check_pop(const void *p)
{
    ms_segment_t *s = _ms_segment_of(p);
    if (!s) return;
    uint8_t cls = s->page_class[_ms_page_index(s, p)];
    if (cls != MS_CLASS_NONE) _ms_tcache_check_pop(p, cls);
}

/* The same for a block of n bytes from malloc or calloc: its class is the
 * request's (alloc.c's table), and a sound link, now its bin's head, is
 * seen without a call; tcache.c looks closer at an unsound one. */
static inline void check_pop_sized(const void *p, size_t n)
{
    if (!p || n > MS_MAX_SMALL) return;
    unsigned cls = _ms_class_fast(n);
    ms_tcache_t *tc = _ms_thread.tc;
    if (!tc) return;
    if (MS_LIKELY(_ms_bin_sound(&tc->bins[cls], p, cls))) return;
    _ms_tcache_check_pop(p, cls);
}

/* A tracked block gets a byte more than asked for.  Blocks of a class lie
 * end to end, so a block that filled its class would have its one-past-
 * the-end pointer (a C++ vector's end or capacity) start the next block
 * and keep it "still reachable": gdb's 1,180 lost strings, all lost to
 * valgrind and LeakSanitizer (whose chunks have headers between them),
 * were 674 lost and 506 reachable.  With the byte, such a pointer lies past
 * the asked bytes of its own block, which the scan takes for no pointer.
 * Huge blocks too: the kernel maps each new mapping just below the last,
 * so a block of a whole number of pages ended where the block mapped
 * before it starts (a vector's megabyte kept a leaked megabyte "still
 * reachable").  Their byte costs a page of address space, never touched,
 * when the request is a whole number of pages. */
static inline size_t padded(size_t n) { return n + (n != SIZE_MAX); }

/* malloc's block, its link checked (the pop's, at hand there, or the bin
 * head's after a refill) and scrubbed. */
static MS_NOINLINE void *malloc_checked_slow(size_t n)
{
    void *p = _ms_malloc_slow(n);
    check_pop_sized(p, n);
    return p;
}

/* What the program may use of p, with tracking: the bytes it asked for, as
 * valgrind's and AddressSanitizer's malloc_usable_size answer.  The leak
 * scan reads only those, so a pointer that a program kept in the rest of
 * its class (a vector grown into the slack malloc_usable_size offered) was
 * unseen, and the block it kept alive reported definitely lost.  Blocks
 * without a live record (memshim's own, foreign) answer as untracked. */
size_t _ms_tracked_usable_size(const void *p)
{
    if (!p) return 0;
    ms_meta_t *m = _ms_meta_of(p);
    ms_meta_t h;
    size_t req = 0;
    if (m) {
        h = *m;
        req = h.size;
    } else if (!_ms_huge_get_meta(p, &h, &req)) {
        return _ms_usable_size(p);
    }
    if (h.state != MS_BLK_LIVE || (h.flags & MS_META_INTERNAL))
        return _ms_usable_size(p);
    return req;
}

/* malloc, for the program or (`internal`) for memshim's own code, whose
 * blocks are never scanned: not cleared. */
static inline __attribute__((always_inline)) void *tracked_malloc(size_t n, const ms_site_t *site, bool internal)
{
    size_t k = padded(n);
    void *p = _ms_pop(k, true);
    if (MS_UNLIKELY(!p)) p = malloc_checked_slow(k);
    if (!internal) clear_new(p, n);
    record_inline(p, n, site, MS_ALLOC_MALLOC, k <= MS_MAX_SMALL, NULL, internal);
    if (MS_UNLIKELY(_ms_corrupt_pending)) _ms_corrupt_report();
    return p;
}

static MS_NOINLINE void *tracked_malloc_busy(size_t n, const ms_site_t *site)
{
    return tracked_malloc(n, site, own_site(site));
}

void *_ms_tracked_malloc(size_t n, const ms_site_t *site)
{
    if (MS_UNLIKELY(_ms_busy)) return tracked_malloc_busy(n, site);
    return tracked_malloc(n, site, false);
}

void *_ms_tracked_calloc(size_t n, size_t m, const ms_site_t *site)
{
    size_t t;
    if (__builtin_mul_overflow(n, m, &t)) return _ms_calloc(n, m);      /* ENOMEM */
    size_t k = padded(t);
    void *p = _ms_calloc(1, k);
    check_pop_sized(p, k);
    record(p, t, site, MS_ALLOC_MALLOC, k <= MS_MAX_SMALL);
    if (MS_UNLIKELY(_ms_corrupt_pending)) _ms_corrupt_report();
    return p;
}

/* _ms_free of a block of segment s whose record has just shown it live:
 * it starts a block that was handed out (place w). */
static inline void free_at(void *p, ms_segment_t *s, const ms_where_t *w)
{
    ms_tcache_t *tc = _ms_thread.tc;
    if (MS_LIKELY(tc != NULL) && _ms_free_push(p, tc, w->cls, w->pg)) return;
    _ms_free_slow(p, s);
}

/* Release p (checked by release()) to the allocator. */
static inline __attribute__((always_inline)) void free_checked(void *p, const ms_site_t *site, unsigned how, ms_free_batch_t *batch)
{
    ms_segment_t *s;
    ms_where_t w;
    if (!p) return;
    /* The block's first line is read (its free key) and written (its link)
     * below, after its record: a program freeing blocks it has not touched
     * lately misses the cache on both, and asked for now the two misses
     * overlap instead of following each other. */
    __builtin_prefetch(p, 1);
    if (!release(p, site, how, batch, &s, &w)) return;
    if (s) free_at(p, s, &w);
    else _ms_free(p);
}

void _ms_tracked_free(void *p, const ms_site_t *site)
{
    free_checked(p, site, MS_ALLOC_MALLOC, NULL);
    if (MS_UNLIKELY(_ms_corrupt_pending)) _ms_corrupt_report();
}

void _ms_tracked_free_batch(void *p, const ms_site_t *site, ms_free_batch_t *batch)
{
    free_checked(p, site, MS_ALLOC_MALLOC, batch);
    if (MS_UNLIKELY(_ms_corrupt_pending)) _ms_corrupt_report();
}

/* A collection's free (gcglue.c): a pooled block with a live record of
 * malloc's is recorded freed, as release() records it, and held in the
 * batch; its span is found once for the blocks that follow it there, as a
 * collection's do (objects die in the order of their list, mostly that of
 * their addresses).  Anything else goes the way of free() (which reports
 * what is wrong with it).  The common case makes no call but tail calls,
 * so it saves no registers; the site (ra, sp) is the caller's call into
 * the collector's free hook, as scalars for the same reason. */

/* Whether a block with record m may be held: live, from malloc (a
 * collector object's always is; anything else the checked free reports). */
static inline bool holdable(const ms_meta_t *m)
{
    return m->state == MS_BLK_LIVE && m->alloc == MS_ALLOC_MALLOC;
}

/* Record m's block p freed and hold it. */
static MS_NOINLINE int hold(void *p, uintptr_t ra, uintptr_t sp, ms_free_batch_t *b, ms_meta_t *m)
{
    unprofile(m, m->size, p);
    m->state = MS_BLK_FREED;
    m->free_stack = batch_stack(m, &(ms_site_t){ ra, sp }, b);
    _ms_free_batch_push(b, p);
    if (b->n == MS_FREE_BATCH) _ms_free_batch_flush(b);
    return 1;
}

/* Not to be held: freed as free() would, the batch's stack shared; 0 if
 * p is no block of memshim's. */
static MS_NOINLINE int free_unheld(void *p, size_t size, uintptr_t ra, uintptr_t sp, ms_free_batch_t *b)
{
    if (!_ms_segment_of(p)) {                       /* a huge block of ours, or foreign */
        ms_meta_t h;
        if (size <= MS_MAX_SMALL || !_ms_huge_get_meta(p, &h, NULL)) return 0;
    }
    _ms_tracked_free_batch(p, &(ms_site_t){ ra, sp }, b);
    return 1;
}

/* p's span, looked up: the batch's from now on (p, live, keeps it). */
static MS_NOINLINE int hold_in_new_span(void *p, size_t size, uintptr_t ra, uintptr_t sp, ms_free_batch_t *b)
{
    ms_segment_t *s;
    ms_where_t w;
    ms_meta_t *m = meta_at(p, &s, &w);
    if (!m || !holdable(m)) return free_unheld(p, size, ra, sp, b);
    _ms_free_batch_span(b, &w);
    return hold(p, ra, sp, b, m);
}

/* The first block of batch `key` (a collection's number). */
static MS_NOINLINE int batch_begin(void *p, size_t size, uintptr_t ra, uintptr_t sp, ms_free_batch_t *b,
                                   unsigned long key)
{
    _ms_free_batch_flush(b);                        /* (the last batch's end did) */
    b->key = key;
    b->taken = false;
    return hold_in_new_span(p, size, ra, sp, b);
}

int _ms_tracked_free_collected(void *p, size_t size, uintptr_t ra, uintptr_t sp, ms_free_batch_t *b,
                               unsigned long key)
{
    if (MS_UNLIKELY(b->key != key)) return batch_begin(p, size, ra, sp, b, key);
    uint64_t off = (uint64_t)((uint8_t *)p - b->start);
    if (MS_UNLIKELY(!b->n || off >= b->bytes))           /* no span held, or another */
        return hold_in_new_span(p, size, ra, sp, b);
    const ms_class_t *k = &_ms_classes[b->cls];
    uint64_t idx = _ms_block_index(k, off);              /* < capacity: off < bytes */
    ms_meta_t *m = &b->pg->meta[idx];
    if (MS_UNLIKELY(idx * k->size != off || !holdable(m)))
        return free_unheld(p, size, ra, sp, b);
    if (MS_UNLIKELY(_ms_prof_on || b->n == MS_FREE_BATCH - 1 || (!b->taken && keeps_free_stack(m))))
        return hold(p, ra, sp, b, m);
    m->state = MS_BLK_FREED;
    m->free_stack = keeps_free_stack(m) ? b->stack : 0;
    _ms_free_batch_push(b, p);
    return 1;
}

void _ms_free_batch_flush(ms_free_batch_t *b)
{
    unsigned n = b->n;
    if (!n) return;
    for (unsigned i = 0; i < n; i++) {
        ms_block_t *blk = b->blocks[i], *want = i ? b->blocks[i - 1] : NULL;
        if (MS_UNLIKELY(blk->next != want)) {         /* written after its free */
            _ms_corrupt_note(blk);
            blk->next = want;
        }
    }
    _ms_span_give(b->pg, b->blocks[n - 1], b->blocks[0], n);
    _ms_tcache_count_frees(b->cls, n);
    b->n = 0;
}

/* operator new and delete (override.c): the block's record says which. */
void *_ms_tracked_new(size_t n, size_t align, unsigned how, const ms_site_t *site)
{
    void *p = _ms_new(padded(n), align);
    if (p) check_pop(p);
    clear(p, 0, n);
    record(p, n, site, how, false);
    if (MS_UNLIKELY(_ms_corrupt_pending)) _ms_corrupt_report();
    return p;
}

void _ms_tracked_delete(void *p, unsigned how, const ms_site_t *site)
{
    free_checked(p, site, how, NULL);
    if (MS_UNLIKELY(_ms_corrupt_pending)) _ms_corrupt_report();
}

/* realloc of a live block of the pools that stays where it is (the pools'
 * own rule, _ms_realloc_fits, on its class): the old block's profile
 * entry goes, the bytes it gains are cleared, and its record is written
 * anew for this call, without a round trip through _ms_realloc (which
 * would find the block again, check it again and return it) nor the
 * record's freeing and restoring of the general path below: a block
 * grown in place over and over took 483 instructions a realloc with them,
 * 357 without. */
static MS_NOINLINE void *realloc_in_place(void *p, size_t n, const ms_site_t *site, ms_meta_t *m)
{
    check_match(p, m, MS_ALLOC_MALLOC, "realloc()", site);
    const ms_meta_t before = *m;
    const uint32_t fstack = free_stack(&before, site);   /* the new record's stack too */
    unprofile(&before, before.size, p);
    if (n > before.size) clear(p, before.size, n);       /* what the block gained, unwritten */
    record_taken(p, n, site, MS_ALLOC_MALLOC, true, keeps_free_stack(&before) ? &fstack : NULL);
    return p;
}

static void *tracked_realloc(void *p, size_t n, const ms_site_t *site)
{
    if (!p) return _ms_tracked_malloc(n, site);
    if (n == 0) { _ms_tracked_free(p, site); return NULL; }
    ms_segment_t *s;
    ms_where_t w;
    ms_meta_t *m = meta_at(p, &s, &w);
    if (m && m->state == MS_BLK_LIVE && _ms_realloc_fits(padded(n), w.k->size))   /* n of a class: small */
        return realloc_in_place(p, n, site, m);
    if (m && m->state != MS_BLK_LIVE && !_ms_busy) {
        if (m->state == MS_BLK_FREED) _ms_misuse("realloc(): realloc of a freed block", p, m);
        else _ms_bad_pointer("realloc(): invalid pointer", p);
        errno = EINVAL;
        return NULL;
    }
    ms_meta_t before, h;
    size_t hsize = 0, hmap = 0;
    bool huge = false;
    if (m) check_match(p, m, MS_ALLOC_MALLOC, "realloc()", site);
    else if ((huge = check_match_huge(p, MS_ALLOC_MALLOC, "realloc()", site, &h, &hsize))) hmap = _ms_huge_usable(p);
    /* Mark p freed before the move: once freed, its span and with it the
     * record may be gone.  Undone if p stays.  The free's stack is this
     * call's: the new block's record takes the same id, not a second
     * capture. */
    uint32_t fstack = 0;
    const uint32_t *taken = NULL;
    if (m) {
        before = *m;
        m->state = MS_BLK_FREED;
        m->free_stack = fstack = free_stack(m, site);
        if (keeps_free_stack(m)) taken = &fstack;
    }
    void *q = _ms_realloc(p, padded(n));
    if (q) {                              /* the profile: the old block freed, a new one */
        if (m) unprofile(&before, before.size, p);
        else if (huge) unprofile(&h, hsize, p);
    }
    size_t had = m ? before.size : huge ? hsize : n;
    if (q && n > had) clear(q, had, n);   /* what the block gained, unwritten */
    if (q && huge && n > MS_MAX_SMALL && hmap > had)
        clear_regained(q, had, n < hmap ? n : hmap);
    if (q != p && q) {                    /* moved: popped untracked, the bin's new head unchecked */
        check_pop_sized(q, padded(n));
        record_taken(q, n, site, MS_ALLOC_MALLOC, false, taken);
        return q;
    }
    if (m) *m = before;                   /* p stays: failed, or resized in place */
    if (q) record_taken(q, n, site, MS_ALLOC_MALLOC, false, taken);
    return q;
}

/* The dynamic loader reallocates a thread's dynamic TLS vector while it
 * brings it up to date: no stack of that call is unwound by libunwind
 * (unwind.c, _ms_capture_miss_release), for the new block nor the old. */
void *_ms_tracked_realloc(void *p, size_t n, const ms_site_t *site)
{
    if (MS_LIKELY(!_ms_loader_code(site->ra))) return tracked_realloc(p, n, site);
    _ms_no_unwind++;
    void *q = tracked_realloc(p, n, site);
    _ms_no_unwind--;
    return q;
}

void *_ms_tracked_memalign(size_t align, size_t n, const ms_site_t *site)
{
    void *p = _ms_memalign(align, padded(n));
    clear(p, 0, n);
    record(p, n, site, MS_ALLOC_MALLOC, false);
    return p;
}

int _ms_tracked_posix_memalign(void **out, size_t align, size_t n, const ms_site_t *site)
{
    int rc = _ms_posix_memalign(out, align, padded(n));
    if (rc == 0) { clear(*out, 0, n); record(*out, n, site, MS_ALLOC_MALLOC, false); }
    return rc;
}

void *_ms_tracked_valloc(size_t n, const ms_site_t *site)
{
    void *p = _ms_valloc(n);
    clear(p, 0, n);
    record(p, n, site, MS_ALLOC_MALLOC, false);
    return p;
}

void *_ms_tracked_pvalloc(size_t n, const ms_site_t *site)
{
    void *p = _ms_pvalloc(n);
    if (!p) return NULL;
    size_t pages = _ms_pvalloc_size(n);
    clear(p, 0, pages);
    record(p, pages, site, MS_ALLOC_MALLOC, false);
    return p;
}
