/* gcglue.c - the collector's figures for MEMSHIM_STATS and the live region,
 * through the collector's public API (the shim sees nothing else of it). */
#include <stdlib.h>
#include "shim.h"
#include "../include/memshim.h"
#include "../collector/collector.h"

int _ms_gc_figures(ms_gc_figures_t *out)
{
    struct memshim_gc_stats st[MS_GC_NGEN];      /* memshim.h's out[3] (gcapi.c checks) */
    memshim_gc_get_stats(st);
    out->collections = out->collected = out->uncollectable = 0;
    for (int g = 0; g < MS_GC_NGEN; g++) {
        out->gen_collections[g] = (uint64_t)st[g].collections;
        out->gen_collected[g] = (uint64_t)st[g].collected;
        out->gen_uncollectable[g] = (uint64_t)st[g].uncollectable;
        out->collections += (uint64_t)st[g].collections;
        out->collected += (uint64_t)st[g].collected;
        out->uncollectable += (uint64_t)st[g].uncollectable;
    }
    out->tracked = memshim_gc_get_objects(-1, NULL, 0);
    out->time_ns = gc_time_ns();
    return 1;
}

/* ---- the collector on memshim's memory ----------------------------------------
 * The collector's tables live in memshim's bookkeeping memory: the leak
 * report never lists them and the scan never reads them, so registering or
 * linking a block does not make it reachable.  Its objects stay on the
 * program's heap, flagged so that the scan skips their list links, counts a
 * pointer to the object (past its header) as a pointer to the block, and
 * names the object's type. */

static void *tab_alloc(void *ctx, size_t n) { (void)ctx; return _ms_meta_alloc(n); }
static void  tab_free(void *ctx, void *p, size_t n) { (void)ctx; _ms_meta_free(p, n); }

void _ms_gc_glue_init(void)
{
    static const gc_allocator tables = { tab_alloc, tab_free, NULL };
    gc_set_table_allocator(&tables);
}

/* The collector's settings and messages go through the shim's owners:
 * options.c reads MEMSHIM_GC (or gc= in MEMSHIM_OPTIONS), out.c writes:
 * debug output the program asked for (kind NULL) to its standard error as
 * it is now (CPython's gc writes to sys.stderr), memshim's messages as
 * they all go, through the gate. */
const char *gc_host_setting(char *buf, size_t cap) { return _ms_option_text("MEMSHIM_GC", buf, cap); }

void gc_host_write(const char *text, size_t n, const char *kind)
{
    if (kind && !_ms_message_gate(kind)) return;
    ms_buf_t b;
    _ms_buf_init(&b, (char *)text, n, kind ? _ms_err_fd() : 2);
    b.len = n;
    _ms_buf_flush(&b);
}

/* The blocks of the objects a collection frees: each checked and recorded
 * as free() would, but they share one free stack, the collection's first
 * free's (its program frames: the clear or dealloc function, the call that
 * collected).  Unwinding at each free cost ~2,500 instructions an object,
 * ten times the collection itself.  A pooled block goes back to its span
 * with the others of that span, past the thread's cache, when the batch
 * fills or the collection ends (gc_object_free_done): one lookup and one
 * lock for up to MS_FREE_BATCH blocks, not a cache push each and a flush
 * that takes every block to its span again (a million-object collection's
 * frees went from ~220 to ~95 instructions a block).  Without tracking the
 * same batches, without records (alloc.c): 305 -> 265 instructions an
 * object of the whole collection.  One batch for the
 * process: only the thread that holds the collector's lock frees a
 * collection's objects (and thread-local, its 560 bytes would come out of
 * the static TLS that a dlopen'd libmemshim.so must find room in).  Blocks
 * not on memshim's heap (the library only dlopen'd: the collector's malloc
 * is the C library's) are left to the collector. */
static ms_free_batch_t batch;            /* key: the collection; the collector's lock */

/* memshim's code, found once (_ms_self's pthread_once was a tenth of an
 * object's making): whether `a` is in it; for &malloc, whether the
 * collector's malloc is ours (preloaded), not the C library's (dlopen'd
 * only), and so every object's block on our heap. */
static uintptr_t code_lo, code_hi;
static MS_NOINLINE uintptr_t code_find(void)
{
    const ms_self_t *me = _ms_self();
    __atomic_store_n(&code_lo, me->code.start, __ATOMIC_RELAXED);
    __atomic_store_n(&code_hi, me->code.end, __ATOMIC_RELEASE);
    return me->code.end;
}
static inline bool ours(uintptr_t a)
{
    uintptr_t hi = __atomic_load_n(&code_hi, __ATOMIC_ACQUIRE);
    if (MS_UNLIKELY(!hi)) hi = code_find();
    return a >= __atomic_load_n(&code_lo, __ATOMIC_RELAXED) && a < hi;
}
/* The answer never changes: kept (a race only works it out twice). */
static int malloc_ours = -1;
static inline bool malloc_is_ours(void)
{
    int m = __atomic_load_n(&malloc_ours, __ATOMIC_RELAXED);
    if (MS_UNLIKELY(m < 0)) __atomic_store_n(&malloc_ours, m = ours((uintptr_t)&malloc), __ATOMIC_RELAXED);
    return m;
}

/* (Out of line: gc_object_free stays a tail call that saves no register.) */
static MS_NOINLINE int wants_blocks(void) { return malloc_is_ours(); }

int gc_object_free(void *base, size_t size, unsigned long collection)
{
    if (!base) return wants_blocks();             /* this collection's blocks? */
    if (!_ms_track_on) return _ms_free_collected(base, &batch, collection);
    return _ms_tracked_free_collected(base, size, (uintptr_t)__builtin_return_address(0),
                                      (uintptr_t)__builtin_frame_address(0) + 16, &batch, collection);
}

void gc_object_free_done(unsigned long collection)
{
    if (batch.key == collection) _ms_free_batch_flush(&batch);
}

void gc_host_abort(void) { _ms_abort(); }

/* A reference dropped from an object whose count is 0: the program
 * dropped one more than it held.  Its block is usually freed by then (the
 * object died at the drop before), and then the report shows where the
 * object was made and where it died, as a double free's does. */
void gc_host_misuse(const char *what, const void *obj, const void *base)
{
    ms_meta_t m;
    bool known = false;
    if (_ms_track_on && malloc_is_ours()) {
        const ms_meta_t *mp = _ms_meta_of(base);
        if (mp) m = *mp, known = true;       /* a copy: symbolizing may reuse the block */
        else known = _ms_huge_get_meta(base, &m, NULL) || _ms_huge_recently_freed(base, &m);
    }
    bool dead = known && m.state == MS_BLK_FREED;
    static const char *const titles[] = { "object made at", "object freed at" };
    const uint32_t stacks[2] = { known ? m.stack : 0, known ? m.free_stack : 0 };
    _ms_misuse_report(what, obj, dead ? "a dead object (its block was freed)" : "an object whose count is 0",
                      titles, stacks, !known ? 0 : dead ? 2 : 1);
}

/* The record of the block that starts at base, if there is one. */
static bool block_at(const void *base, ms_meta_t *m)
{
    const ms_meta_t *mp = _ms_meta_of(base);
    if (mp) { *m = *mp; return true; }
    return _ms_huge_get_meta(base, m, NULL);
}

/* An object's block starts GC_BLOCK_HEADER bytes before it, or 16 more
 * with the size prefix, and gc_object_alloc flagged it so.  A flagged
 * block of a header alone (memshim_new(type, 0)) ends where the next block
 * may start: a pointer to that block is either. */
int gc_host_is_object(const void *obj)
{
    if (!_ms_track_on || !malloc_is_ours()) return -1;
    static const unsigned flag[2] = { MS_META_GC_AT0, MS_META_GC_AT16 };
    ms_meta_t m;
    for (int i = 0; i < 2; i++)
        if (block_at((const char *)obj - GC_BLOCK_HEADER - 16 * i, &m) && (m.flags & flag[i])) {
            ms_meta_t next;
            if (m.size == GC_BLOCK_HEADER + 16u * i && block_at(obj, &next) && next.state == MS_BLK_LIVE)
                return -1;
            return 1;
        }
    return 0;
}

void gc_host_not_object(const char *what, const void *p)
{
    ms_meta_t m;
    bool block = block_at(p, &m) && m.state == MS_BLK_LIVE;
    static const char *const titles[] = { "block allocated at" };
    _ms_misuse_report(what, p, block ? "a block that memshim_new did not make" : "no object memshim_new made",
                      titles, (const uint32_t[]){ block ? m.stack : 0 }, block ? 1 : 0);
}

void gc_host_misuse_at(const char *what, const void *p, const char *is)
{
    _ms_misuse_report(what, p, is, NULL, NULL, 0);
}

/* memshim_new's blocks and the frees of objects the program's decrefs
 * kill: recorded as a malloc or free at the program's call into the
 * collector (collector.h), so that the stack cache finds them.  From
 * inside the collector every one was a miss and a full unwind: 3,100
 * instructions an object made, 3,700 an object freed.  A block of ours is
 * flagged as an object's, with its header's offset, for the leak scan. */
void *gc_object_alloc(size_t size, size_t header_offset, const gc_site *site)
{
    if (!_ms_track_on || !malloc_is_ours()) return malloc(size);   /* no records to flag */
    void *base = _ms_tracked_malloc(size, &(ms_site_t){ site->ra, site->sp });
    if (base) {
        unsigned flag = header_offset ? MS_META_GC_AT16 : MS_META_GC_AT0;
        ms_meta_t *m = _ms_meta_of(base);
        if (m) m->flags |= flag;
        else _ms_huge_flag(base, flag);                 /* a huge block */
    }
    return base;
}

void gc_object_release(void *base, const gc_site *site, const gc_site *outer)
{
    if (!_ms_track_on || !malloc_is_ours()) { free(base); return; }
    if (site && ours(site->ra)) site = NULL;      /* a dealloc function's tail call */
    if (!site && outer && !ours(outer->ra)) site = outer;
    if (site) _ms_tracked_free(base, &(ms_site_t){ site->ra, site->sp });
    else free(base);
}
