/* alloc.c - the malloc family on top of the thread caches, size classes and
 * huge blocks, with glibc's contracts: 16-byte alignment, ENOMEM, overflow
 * checks, realloc(p, 0) frees, and pointers memshim never handed out (the
 * dynamic loader's early blocks) tolerated rather than trusted, unless they
 * certainly are no block at all (badptr.c). */

#include <errno.h>
#include <string.h>
#include "shim.h"

uintptr_t _ms_free_key;      /* second word of every block on a free list */

void _ms_alloc_init(uintptr_t key) { _ms_free_key = key | 1; }

/* ---- allocation --------------------------------------------------------- */

MS_NOINLINE void *_ms_malloc_slow(size_t n)
{
    if (n > MS_MAX_SMALL) return _ms_huge_alloc(n, 0, false);
    ms_tcache_t *tc = _ms_tcache_get();
    if (!tc) { errno = ENOMEM; return NULL; }
    unsigned cls = _ms_class_fast(n);
    ms_bin_t *b = &tc->bins[cls];
    bool look = false;
    _ms_bins_enter();
    ms_block_t *blk = b->head;
    if (blk) {                      /* the bin's turn to look (_ms_pop), or a first call that raced here */
        b->head = blk->next;
        b->count--;
        look = !(++b->allocs & (MS_LOOK_EVERY - 1));
    } else {
        blk = _ms_tcache_refill(tc, cls);
        /* A signal handler inside its thread's refill of this class (the
         * class's lock the thread's), or needing a new span while its
         * thread takes one (the segments' lock, shim.h): a block of a
         * larger class that has one free. */
        if (!blk && (_ms_central_mine(cls) || _ms_segment_mine()))
            for (unsigned up = cls + 1; !blk && up < MS_NCLASSES; up++)
                if (!_ms_central_mine(up)) blk = _ms_tcache_refill(tc, up);
    }
    _ms_bins_leave();
    if (!blk) { errno = ENOMEM; return NULL; }
    if (look) _ms_tcache_look(tc, cls);
    ((uintptr_t *)blk)[1] = 0;
    return blk;
}

void *_ms_malloc(size_t n)
{
    void *p = _ms_pop(n, false);
    return MS_LIKELY(p != NULL) ? p : _ms_malloc_slow(n);
}

/* ---- free ---------------------------------------------------------------- */

/* A block that carries the free key may be on a free list already.  Look in
 * this thread's cache, in those that threads gone left (tcache.c) and in
 * its span; a block sitting in another live thread's cache cannot be seen,
 * and a program's own data may match by chance, so only a sighting
 * counts. */
static bool is_double_free(ms_tcache_t *tc, unsigned cls, void *p)
{
    return _ms_chain_holds(tc->bins[cls].head, p, cls, tc->bins[cls].count + 1) ||
           _ms_tcache_left_holds(cls, p) || _ms_central_holds(cls, p);
}

/* Whether p, of segment s, lies in a span another thread's cache took
 * blocks from last. */
static bool of_another_thread(ms_segment_t *s, const void *p, const ms_tcache_t *tc)
{
    return __atomic_load_n(&_ms_page_of(s, p)->owner, __ATOMIC_RELAXED) != tc->id;
}

/* Everything the inline path declines: huge and foreign pointers, invalid
 * ones, a full cache or one never filled, a thread without (or past) its
 * cache. */
MS_NOINLINE void _ms_free_slow(void *p, ms_segment_t *s)
{
    if (MS_UNLIKELY(_ms_sampling)) _ms_sample_release(p);   /* a sampled block? (sample.c) */
    if (!s) {
        if (_ms_huge_free(p)) return;
        ms_meta_t m;
        if (_ms_huge_recently_freed(p, &m)) {
            if (_ms_track_on && m.stack) _ms_misuse("free(): double free of a large block", p, &m);
            else _ms_heap_error("free(): double free of a large block", p);
        }
        else if (!_ms_bad_pointer("free(): invalid pointer", p) && _ms_opt.verbose)
            _ms_message("free(%p): not a block memshim handed out; ignored", p);
        return;
    }
    unsigned cls;
    if (!_ms_block_valid(s, p, &cls)) {
        _ms_bad_pointer("free(): invalid pointer", p);
        return;
    }
    ms_tcache_t *tc = _ms_tcache_get();
    if (((uintptr_t *)p)[1] == _ms_free_key && tc && is_double_free(tc, cls, p)) {
        _ms_heap_error("free(): double free", p);
        return;
    }
    if (!tc || !_ms_tcache_caches(tc, cls)) {   /* a dead thread's, or a class no cache holds */
        ((uintptr_t *)p)[1] = _ms_free_key;
        _ms_tcache_free_direct(p, cls);
        return;
    }
    ms_bin_t *b = &tc->bins[cls];
    _ms_bins_enter();
    if (!b->limit) {                            /* the bin's first block: whose? */
        if (!of_another_thread(s, p, tc) || !_ms_tcache_push_under(tc, cls, p)) {
            b->limit = _ms_classes[cls].limit;
            _ms_bin_push(b, p);
        }
    } else {
        if (b->count >= b->limit) _ms_tcache_flush(tc, cls, b->limit - _ms_classes[cls].batch);
        _ms_bin_push(b, p);
    }
    _ms_bins_leave();
}

/* A valid block of a span that holds a block of the sampled profiler: it
 * is forgotten if it is that block, then goes to the cache as usual.  Most
 * frees here are of the span's other blocks, which the hash of sampled
 * addresses clears without a call into sample.c (churn sampled: 2.2M of
 * its 5M frees come here; they cost 42 instructions each with the call,
 * nearly all that sampling added to the pools there). */
static bool free_in_sampled_span(void *p, ms_tcache_t *tc, unsigned cls, ms_page_t *pg)
{
    if (MS_UNLIKELY(_ms_sample_hash_hit(p))) _ms_sample_release_at(p, pg);
    /* _ms_free_push's test without the span's (written twice: a helper
     * shared with it put the span's test first and cost the pools' hot
     * path an instruction a pair) */
    ms_bin_t *b = &tc->bins[cls];
    if (b->count >= b->limit || ((uintptr_t *)p)[1] == _ms_free_key) return false;
    _ms_bin_push(b, p);
    return true;
}

/* A valid block that the inline push declined: a full bin, the free key,
 * a span holding a sampled block.  Out of line and called last, so that
 * _ms_free keeps no frame of its own (4 instructions a free). */
static MS_NOINLINE void free_declined(void *p, ms_segment_t *s, ms_tcache_t *tc, unsigned cls, ms_page_t *pg)
{
    if (__atomic_load_n(&pg->sampled, __ATOMIC_RELAXED) && free_in_sampled_span(p, tc, cls, pg)) return;
    _ms_free_slow(p, s);
}

void _ms_free(void *p)
{
    if (MS_UNLIKELY(p == NULL)) return;
    ms_segment_t *s = _ms_segment_of(p);
    ms_tcache_t *tc = _ms_thread.tc;
    if (MS_LIKELY(s != NULL && tc != NULL)) {
        unsigned i = _ms_page_index(s, p);
        uint8_t cls = s->page_class[i];
        if (MS_LIKELY(cls != MS_CLASS_NONE)) {
            /* Validate cheaply: p must start a block of its span that has
             * been carved (handed out at least once). */
            const ms_class_t *k = &_ms_classes[cls];
            ms_page_t *pg = &s->pages[s->span_head[i]];
            uint64_t off = (uint64_t)((uintptr_t)p - (uintptr_t)pg->start);
            uint64_t idx = _ms_block_index(k, off);
            if (MS_LIKELY(idx * k->size == off && idx < __atomic_load_n(&pg->carved, __ATOMIC_RELAXED))) {
                if (MS_LIKELY(_ms_free_push(p, tc, cls, pg))) return;
                free_declined(p, s, tc, cls, pg);
                return;
            }
        }
    }
    _ms_free_slow(p, s);
}

/* free() of a collection's block without tracking (gcglue.c): held in
 * `b` with the others of its span, which go back to it together when the
 * batch fills, meets another span or ends (_ms_free_batch_flush), past the
 * thread's cache, as with tracking (track.c) but without records.  A
 * million-object collection's garbage took 305 instructions an object
 * through free() (265 now), more than with tracking's batches (288).
 * 1, or 0 to have the collector free(p), which collectable() tells: no
 * block of a span, one whose second word says it may be free already
 * (free() looks closer), one of a span holding a block of the sampled
 * profiler. */
static inline bool collectable(const void *p, const ms_class_t *k, const ms_page_t *pg, uint64_t off)
{
    uint64_t idx = _ms_block_index(k, off);
    return idx * k->size == off && idx < __atomic_load_n(&pg->carved, __ATOMIC_RELAXED) &&
           ((const uintptr_t *)p)[1] != _ms_free_key && !__atomic_load_n(&pg->sampled, __ATOMIC_RELAXED);
}

static inline int hold_collected(void *p, ms_free_batch_t *b)
{
    ((uintptr_t *)p)[1] = _ms_free_key;
    _ms_free_batch_push(b, p);
    return 1;
}

/* p's span, looked up: the batch's from now on (p, held, keeps it). */
static MS_NOINLINE int collected_in_new_span(void *p, ms_free_batch_t *b)
{
    ms_segment_t *s = _ms_segment_of(p);
    ms_where_t w;
    if (!s || !_ms_where(s, p, &w) || !collectable(p, w.k, w.pg, w.off)) return 0;
    _ms_free_batch_span(b, &w);
    return hold_collected(p, b);
}

int _ms_free_collected(void *p, ms_free_batch_t *b, unsigned long key)
{
    if (MS_UNLIKELY(b->key != key)) {
        _ms_free_batch_flush(b);                        /* (the last batch's end did) */
        b->key = key;
    }
    uint64_t off = (uint64_t)((uint8_t *)p - b->start);  /* < bytes: its index < capacity */
    if (MS_UNLIKELY(!b->n || off >= b->bytes || b->n == MS_FREE_BATCH)) return collected_in_new_span(p, b);
    if (MS_UNLIKELY(!collectable(p, &_ms_classes[b->cls], b->pg, off))) return 0;
    return hold_collected(p, b);
}

/* ---- sizes ----------------------------------------------------------------- */

size_t _ms_usable_size(const void *p)
{
    if (!p) return 0;
    ms_segment_t *s = _ms_segment_of(p);
    unsigned cls;
    if (s) return _ms_block_valid(s, p, &cls) ? _ms_classes[cls].size : 0;
    return _ms_huge_usable(p);
}

bool _ms_owns(const void *p)
{
    ms_segment_t *s = _ms_segment_of(p);
    return s ? _ms_block_valid(s, p, NULL) : _ms_huge_usable(p) != 0;
}

void *_ms_calloc(size_t n, size_t m)
{
    size_t total;
    if (__builtin_mul_overflow(n, m, &total)) { errno = ENOMEM; return NULL; }
    if (total > MS_MAX_SMALL) return _ms_huge_alloc(total, 0, true);
    void *p = _ms_malloc(total);
    if (p) memset(p, 0, total);
    return p;
}

/* The longest prefix of [p, p+n) that is mapped: what can be copied out of a
 * block whose size we never knew. */
static size_t readable_prefix(const void *p, size_t n)
{
    uintptr_t a = (uintptr_t)p, end = a + n, page = a & ~(uintptr_t)(MS_OS_PAGE - 1);
    while (page < end && _ms_os_readable((const void *)page, 1)) page += MS_OS_PAGE;
    return page >= end ? n : (size_t)(page - a);
}

void *_ms_realloc(void *p, size_t n)
{
    if (!p) return _ms_malloc(n);
    if (n == 0) { _ms_free(p); return NULL; }           /* glibc's behaviour */
    size_t old;
    ms_segment_t *s = _ms_segment_of(p);
    if (s) {
        unsigned cls;
        if (!_ms_block_valid(s, p, &cls)) {
            _ms_bad_pointer("realloc(): invalid pointer", p);
            errno = EINVAL;
            return NULL;
        }
        if (((uintptr_t *)p)[1] == _ms_free_key) {
            ms_tcache_t *tc = _ms_tcache_get();
            if (tc && is_double_free(tc, cls, p)) {
                _ms_heap_error("realloc(): pointer already freed", p);
                errno = EINVAL;
                return NULL;
            }
        }
        old = _ms_classes[cls].size;
        if (_ms_realloc_fits(n, old)) return p;           /* fits, not too loose */
    } else if ((old = _ms_huge_usable(p)) != 0) {
        if (n > MS_MAX_SMALL) {                           /* in place or moved by mremap */
            int saved = errno;
            void *q = _ms_huge_realloc(p, n);
            if (q || n > PTRDIFF_MAX - MS_SEGMENT_SIZE) return q;
            errno = saved;                                /* the kernel refused: copy */
        }
    } else {
        if (_ms_bad_pointer("realloc(): invalid pointer", p)) {
            errno = EINVAL;
            return NULL;
        }
        /* Possibly another allocator's: copy what can be read, leave the original alone. */
        if (_ms_opt.verbose) _ms_message("realloc(%p): not a block memshim handed out; copied", p);
        void *q = _ms_malloc(n);
        if (q) memcpy(q, p, readable_prefix(p, n));
        return q;
    }
    /* A block of the pools grown by less than half its size is being grown
     * step by step (a string appended to, a buffer that grows as it
     * fills): it moves to a class with room for half as much again, as
     * glibc's in-place growth and a vector's doubling would leave, so that
     * the next steps fit where it is.  Otherwise each step past a class
     * (12.5-25% apart) copied the whole block: one grown 16 bytes at a time
     * to 256 KiB was copied 83 times (test pool/a_block_grown_in_steps_
     * moves_rarely).  A jump of half its size or more gets the size asked. */
    size_t want = n;
    if (s && n > old && n - old < old / 2 && n <= MS_MAX_SMALL)
        want = n + n / 2 <= MS_MAX_SMALL ? n + n / 2 : MS_MAX_SMALL;
    int saved = errno;
    void *q = _ms_malloc(want);
    if (!q && want != n) q = _ms_malloc(n);
    if (!q && n <= old) q = p;                            /* a shrink with no room to move stays, as
                                                           * glibc's (it returned NULL: found by a helper) */
    if (!q) return NULL;                                  /* p stays valid */
    errno = saved;                                        /* a first try's ENOMEM is no failure */
    if (q == p) return p;
    memcpy(q, p, n < old ? n : old);
    _ms_free(p);
    return q;
}

/* Whether _ms_realloc(p, n) of huge block p would only return p: for the
 * sampled profiler, which then need not forget p's sample before it.  (A
 * pool block's realloc tells it by its result: one that moves is freed.) */
bool _ms_realloc_huge_stays(const void *p, size_t n)
{
    return n > MS_MAX_SMALL && _ms_huge_stays(p, n);
}

void *_ms_reallocarray(void *p, size_t n, size_t m)
{
    size_t total;
    if (__builtin_mul_overflow(n, m, &total)) { errno = ENOMEM; return NULL; }
    return _ms_realloc(p, total);
}

/* ---- aligned allocation --------------------------------------------------- *
 * Spans start on 64 KiB boundaries and every power of two from 16 to 512 KiB
 * is a class, so a class whose size is a multiple of the alignment gives
 * aligned blocks.  Larger alignments go to the huge path. */

void *_ms_memalign(size_t align, size_t n)
{
    if (align <= MS_ALIGN) return _ms_malloc(n);
    if (align & (align - 1)) {                            /* glibc rounds up (to 2^63 at most) */
        if (align > ((size_t)1 << 63)) { errno = EINVAL; return NULL; }
        align = (size_t)1 << (64 - __builtin_clzll(align));
    }
    size_t need = n > align ? n : align;
    if (align <= MS_PAGE_SIZE && need <= MS_MAX_SMALL) {
        unsigned cls = _ms_class_of(need);
        while (_ms_classes[cls].size % align) cls++;      /* ends at a power of two */
        return _ms_malloc(_ms_classes[cls].size);
    }
    if (align > PTRDIFF_MAX / 2) { errno = ENOMEM; return NULL; }
    return _ms_huge_alloc(n, align, false);
}

int _ms_posix_memalign(void **out, size_t align, size_t n)
{
    if (align < sizeof(void *) || (align & (align - 1))) return EINVAL;
    int saved = errno;
    void *p = _ms_memalign(align, n);
    int rc = p ? 0 : ENOMEM;
    errno = saved;
    if (p) *out = p;
    return rc;
}

void *_ms_aligned_alloc(size_t align, size_t n) { return _ms_memalign(align, n); }

/* operator new's memory: align 0 (or up to 16) for the plain forms; an
 * alignment that is not a power of two fails, as libstdc++'s does. */
void *_ms_new(size_t n, size_t align)
{
    if (align & (align - 1)) { errno = EINVAL; return NULL; }   /* 3, 6, 12 too (0: the unaligned forms) */
    if (align <= MS_ALIGN) return _ms_malloc(n);
    return _ms_memalign(align, n);
}
void *_ms_valloc(size_t n) { return _ms_memalign(MS_OS_PAGE, n); }

/* What pvalloc gives for n: whole pages, at least one; 0 if that overflows. */
size_t _ms_pvalloc_size(size_t n)
{
    size_t r = (n + MS_OS_PAGE - 1) & ~(size_t)(MS_OS_PAGE - 1);
    return r < n ? 0 : r ? r : MS_OS_PAGE;
}

void *_ms_pvalloc(size_t n)
{
    size_t r = _ms_pvalloc_size(n);
    if (!r) { errno = ENOMEM; return NULL; }
    return _ms_memalign(MS_OS_PAGE, r);
}

/* malloc_trim: give back everything that can be: this thread's cache, cached
 * huge mappings, free pages and empty segments. */
int _ms_trim(size_t pad)
{
    (void)pad;
    _ms_tcache_flush_current();
    _ms_central_drain();
    bool huge = _ms_huge_trim();
    bool pages = _ms_segment_purge_all();
    return huge || pages;               /* 1 if memory went back to the system, as glibc's */
}
