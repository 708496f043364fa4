/* profile.c - the heap profiler: where the memory goes.
 *
 * Every tracked allocation and free updates its stack's counters (the trace
 * table's, stacks.c: allocations, bytes, frees, temporaries) -- with plain
 * adds while the process has one thread, afterwards in the thread's own
 * slot for the stack, handed on to the counters when another stack needs
 * the slot or the thread ends (where(), below); a free other than a
 * temporary's through the thread's log of frees, added 32 at a time --
 * and its thread's state through one TLS pointer: the last block the
 * thread allocated (a block the thread frees before its next allocation
 * is a temporary: heaptrack's idea, per thread), a size histogram, and the
 * change of the heap in use not yet added to the global figure (published
 * every 64 KiB, so threads do not fight over one cache line).
 *
 * The peak.  A free that finds the heap in use above _ms_prof_peak_next
 * (the last recorded peak + 1%, at least + 64 KiB) first copies every
 * stack's live blocks and bytes into its peak fields: the heap just before
 * that free, a local maximum.  A free tests its thread's own figures
 * (pending > room: the room left under _ms_prof_peak_next when the thread
 * last published), and, before it publishes a fall, the heap every thread
 * has published (another thread's blocks freed here); a thread sees the
 * others' changes when it publishes its own.  The recorded peak is thus
 * within 1% (or 64 KiB) of the true one, plus what other threads had not
 * yet published (under 64 KiB each); a program that grows by steps and
 * frees after each gets the exact peak, and one still at its highest when
 * the profile is written gets the heap of that moment.  A snapshot costs one pass over
 * the stacks; the 1% step bounds them to about 100 per doubling of the heap,
 * as jemalloc's gdump does.
 *
 * Profiles (MEMSHIM_PROFILE, MEMSHIM_PROFILE_SIGNAL, memshim_profile_dump)
 * are written by out.c's rules, in a format chosen by the name: .pb.gz or
 * .pprof: pprof (pprof.c); .folded: folded stacks of the bytes at the peak;
 * anything else JSON (memshim(7)). */
#include <errno.h>
#include <sched.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include "shim.h"
#include "profile.h"
#include "../include/memshim.h"

__thread ms_prof_thread_t *_ms_prof_tl __attribute__((tls_model("initial-exec")));
int64_t _ms_prof_heap;
int64_t _ms_prof_peak_next = MS_PROF_PUBLISH;

static ms_prof_thread_t *threads;          /* every thread's state, pushed, never removed */
static int      peak_busy;                  /* a snapshot is under way */
static uint64_t peak_bytes, peak_blocks;    /* the recorded peak (peak_busy) */
static uint64_t peak_ns, start_ns;          /* when (CLOCK_MONOTONIC) */

/* ---- per-thread state ---------------------------------------------------------- */

/* What t's heap change may grow by before the heap passes the next peak,
 * heap being the heap in use (published). */
static void renew_room(ms_prof_thread_t *t, int64_t heap)
{
    t->room = __atomic_load_n(&_ms_prof_peak_next, __ATOMIC_RELAXED) - heap;
}

/* The calling thread's state: a free one of a thread gone, or a new one. */
ms_prof_thread_t *_ms_prof_thread(void)
{
    ms_prof_thread_t *t;
    for (t = __atomic_load_n(&threads, __ATOMIC_ACQUIRE); t; t = t->next) {
        int zero = 0;
        if (!__atomic_load_n(&t->in_use, __ATOMIC_RELAXED) &&
            __atomic_compare_exchange_n(&t->in_use, &zero, 1, false, __ATOMIC_ACQUIRE, __ATOMIC_RELAXED))
            break;
    }
    if (!t) {
        if (!(t = _ms_meta_alloc(sizeof *t))) return NULL;
        t->in_use = 1;
        t->next = __atomic_load_n(&threads, __ATOMIC_RELAXED);
        while (!__atomic_compare_exchange_n(&threads, &t->next, t, true, __ATOMIC_RELEASE, __ATOMIC_RELAXED))
            ;
    }
    t->last = NULL;
    t->log_room = MS_PROF_LOG;          /* empty (flushed when the last thread ended) */
    t->flushing = 0;
    t->logging = 0;
    t->tid = _ms_tid();
    renew_room(t, __atomic_load_n(&_ms_prof_heap, __ATOMIC_RELAXED));
    _ms_prof_tl = t;
    return t;
}

/* The thread's heap change goes to the heap in use; its room is renewed
 * from both figures.  Another thread's publishing or snapshot is seen at
 * this thread's next publishing (its heap change is under 64 KiB and a
 * log until then) or at its next test in _ms_prof_peak. */
void _ms_prof_publish(ms_prof_thread_t *t)
{
    int64_t heap = __atomic_add_fetch(&_ms_prof_heap, t->pending, __ATOMIC_RELAXED);
    t->pending = 0;
    renew_room(t, heap);
}

/* A slot's changes go to its stack's counters; the slot is then free.  Its
 * stack is cleared first, so that a reader adding slots to counters skips
 * it rather than count its changes twice (a reader that read it just
 * before may still: figures taken while threads run are approximate). */
static void slot_hand_on(ms_prof_slot_t *s)
{
    uint32_t stack = s->stack;
    if (!stack) return;
    __atomic_store_n(&s->stack, 0, __ATOMIC_RELEASE);
    ms_prof_t *c = _ms_stack_prof(stack);
    const ms_prof_counts_t *k = &s->k;
    if (k->allocs) __atomic_add_fetch(&c->k.allocs, k->allocs, __ATOMIC_RELAXED);
    if (k->alloc_bytes) __atomic_add_fetch(&c->k.alloc_bytes, k->alloc_bytes, __ATOMIC_RELAXED);
    if (k->frees) __atomic_add_fetch(&c->k.frees, k->frees, __ATOMIC_RELAXED);
    if (k->freed_bytes) __atomic_add_fetch(&c->k.freed_bytes, k->freed_bytes, __ATOMIC_RELAXED);
    if (k->temps) __atomic_add_fetch(&c->k.temps, k->temps, __ATOMIC_RELAXED);
    if (k->temp_bytes) __atomic_add_fetch(&c->k.temp_bytes, k->temp_bytes, __ATOMIC_RELAXED);
    memset(&s->k, 0, sizeof s->k);
}

ms_prof_thread_t _ms_prof_dying;     /* zeroed: no room in its log */

/* Where thread t's changes to stack's counts (stack not 0) go: the
 * counters themselves while the process has one thread (`alone`: the
 * caller's read of __libc_single_threaded); afterwards t's slot for the
 * stack, taken from the stack it held if need be, or the counters when t
 * keeps no slots (*own false: the counts are shared, add with locked
 * adds). */
static inline __attribute__((always_inline))
ms_prof_counts_t *where(ms_prof_thread_t *t, uint32_t stack, bool alone, bool *own)
{
    *own = true;
    if (alone) return _ms_prof_counters(stack);
    ms_prof_counts_t *k = _ms_prof_slot_of(t, stack);
    if (MS_LIKELY(k != NULL)) return k;
    ms_prof_slot_t *x = _ms_prof_slot_take(t, stack);
    if (x) return &x->k;
    *own = false;
    return _ms_prof_counters(stack);
}

void _ms_prof_tally(ms_prof_thread_t *t, uint32_t stack, unsigned which, uint64_t w, uint64_t nb)
{
    bool own, alone = __libc_single_threaded;
    ms_prof_counts_t *k;
    if (MS_UNLIKELY(t->flushing) && !alone) {
        /* a signal handler's, inside its thread's flush: no slot taken
         * from under the flush's adds */
        k = _ms_prof_counters(stack);
        own = false;
    } else
        k = where(t, stack, alone, &own);
    _ms_prof_add_to(k, which, own, w, nb);
}

/* The log's frees go to their stacks' counters (or the thread's slots),
 * now that their records have been fetched, each where its stack's
 * changes go (looked up once for a run of one stack's frees); then the
 * log is empty.  A reader adding the log between the two counts those
 * frees twice: figures taken while threads run are approximate.
 *
 * A signal handler's free in the middle finds no room in the log and this
 * flush under way: 0, and the caller counts it at once.  The room is
 * taken by one exchange, so that a handler's entry written before it is
 * flushed too, and none is written after it. */
unsigned _ms_prof_log_flush(ms_prof_thread_t *t)
{
    if (t == &_ms_prof_dying || t->flushing) return 0;
    t->flushing = 1;
    __atomic_signal_fence(__ATOMIC_SEQ_CST);
    unsigned from = __atomic_exchange_n(&t->log_room, 0, __ATOMIC_ACQ_REL);
    if (from > MS_PROF_LOG) from = MS_PROF_LOG;
    bool own, alone = __libc_single_threaded;   /* own: true, t keeps slots */
    uint32_t run = 0;                   /* no entry has stack 0 */
    ms_prof_counts_t *k = NULL;         /* set at the first entry */
    for (unsigned i = from; i < MS_PROF_LOG; i++) {
        ms_prof_freed_t e = t->log[i];
        uint32_t stack = MS_PROF_FREED_STACK(e);
        if (stack != run) {
            k = where(t, stack, alone, &own);
            run = stack;
        }
        _ms_prof_add_to(k, MS_PROF_FREES, true, 1, MS_PROF_FREED_BYTES(e));
    }
    __atomic_store_n(&t->log_room, MS_PROF_LOG, __ATOMIC_RELEASE);
    __atomic_signal_fence(__ATOMIC_SEQ_CST);
    t->flushing = 0;
    return MS_PROF_LOG;
}

ms_prof_slot_t *_ms_prof_slot_take(ms_prof_thread_t *t, uint32_t stack)
{
    if (t == &_ms_prof_dying) return NULL;            /* shared: straight to the counters */
    ms_prof_slot_t *s = &t->slot[stack % MS_PROF_SLOTS];
    slot_hand_on(s);
    __atomic_store_n(&s->stack, stack, __ATOMIC_RELEASE);
    return s;
}

/* A thread ends: its heap change published, its slots handed on, its
 * state free for the next thread (its histogram stays: totals are sums
 * over all states).  What the thread allocates after this (later
 * destructors) goes to a shared state of dying threads rather than
 * claiming a state for good. */
void _ms_prof_thread_exit(void)
{
    ms_prof_thread_t *t = _ms_prof_tl;
    if (t == &_ms_prof_dying) return;
    if (t) {
        _ms_prof_publish(t);
        _ms_prof_log_flush(t);
        for (unsigned i = 0; i < MS_PROF_SLOTS; i++) slot_hand_on(&t->slot[i]);
        t->last = NULL;
    }
    /* A thread that had none makes none now: one made by a key destructor
     * that runs after this (a sampled block's) was never given back, 4.8 KB
     * a thread. */
    _ms_prof_tl = &_ms_prof_dying;
    if (t) __atomic_store_n(&t->in_use, 0, __ATOMIC_RELEASE);
}

/* Sampling (MEMSHIM_SAMPLE=N): MS_PROF_UNIT/p, and n/p in *bytes. */
uint64_t _ms_prof_weigh(size_t n, uint64_t *bytes)
{
    double p = _ms_sample_chance(n);
    if (p <= 0) p = 1;
    *bytes = _ms_round((double)n / p);
    return _ms_round(MS_PROF_UNIT / p);
}

void _ms_prof_alloc_sampled(uint32_t stack, size_t n, const void *p)
{
    if (!stack) return;
    uint64_t nb, w = _ms_prof_weigh(n, &nb);
    _ms_prof_alloc_sample(stack, n, p, w, nb);
}

void _ms_prof_free_sampled(uint32_t stack, size_t n, const void *p, uint32_t tid)
{
    if (!stack) return;
    uint64_t nb, w = _ms_prof_weigh(n, &nb);
    _ms_prof_free_sample(stack, p, w, nb, tid);
}

/* A count as written: blocks, from 1/MS_PROF_UNIT blocks when sampling. */
static uint64_t blocks_of(uint64_t v)
{
    return _ms_opt.sample ? (v + MS_PROF_UNIT / 2) / MS_PROF_UNIT : v;
}

/* ---- the peak ---------------------------------------------------------------------- */

/* A stack's figures: its counters, and every thread's frees of it in the
 * thread's log and its slot for it, read together (the log first: what
 * the thread allocates in between is seen live, not freed unallocated).
 * Exact when no thread is changing them; while threads run, a block
 * allocated by one and freed by another may be seen freed and not yet
 * allocated, and a log flushed while read counted twice: live figures are
 * never taken below 0.  Each stack reads the logs afresh (32 words a
 * thread): logs gathered once, before the pass, would be out of step with
 * the slots read during it. */
typedef struct { uint64_t allocs, alloc_bytes, frees, freed_bytes, temps, temp_bytes; } figures_t;

static inline __attribute__((always_inline)) void figures_of(uint32_t id, figures_t *f, bool counters_only)
{
    const ms_prof_t *c = _ms_stack_prof(id);
    f->frees = __atomic_load_n(&c->k.frees, __ATOMIC_ACQUIRE);
    f->freed_bytes = __atomic_load_n(&c->k.freed_bytes, __ATOMIC_ACQUIRE);
    f->temps = __atomic_load_n(&c->k.temps, __ATOMIC_ACQUIRE);
    f->temp_bytes = __atomic_load_n(&c->k.temp_bytes, __ATOMIC_ACQUIRE);
    f->allocs = __atomic_load_n(&c->k.allocs, __ATOMIC_ACQUIRE);
    f->alloc_bytes = __atomic_load_n(&c->k.alloc_bytes, __ATOMIC_ACQUIRE);
    for (ms_prof_thread_t *t = counters_only ? NULL : __atomic_load_n(&threads, __ATOMIC_ACQUIRE); t; t = t->next) {
        for (unsigned i = __atomic_load_n(&t->log_room, __ATOMIC_ACQUIRE); i < MS_PROF_LOG; i++) {
            ms_prof_freed_t e = __atomic_load_n(&t->log[i], __ATOMIC_RELAXED);
            if (MS_PROF_FREED_STACK(e) != id) continue;
            f->frees++;
            f->freed_bytes += MS_PROF_FREED_BYTES(e);
        }
        const ms_prof_slot_t *s = &t->slot[id % MS_PROF_SLOTS];
        if (__atomic_load_n(&s->stack, __ATOMIC_ACQUIRE) != id) continue;
        f->frees += __atomic_load_n(&s->k.frees, __ATOMIC_RELAXED);
        f->freed_bytes += __atomic_load_n(&s->k.freed_bytes, __ATOMIC_RELAXED);
        f->temps += __atomic_load_n(&s->k.temps, __ATOMIC_RELAXED);
        f->temp_bytes += __atomic_load_n(&s->k.temp_bytes, __ATOMIC_RELAXED);
        f->allocs += __atomic_load_n(&s->k.allocs, __ATOMIC_RELAXED);
        f->alloc_bytes += __atomic_load_n(&s->k.alloc_bytes, __ATOMIC_RELAXED);
    }
    f->frees += f->temps;               /* temporaries' frees are counted apart (shim.h) */
    f->freed_bytes += f->temp_bytes;
}

static MS_NOINLINE void figures(uint32_t id, figures_t *f) { figures_of(id, f, false); }

/* Whether every stack's figures are its counters alone: while the process
 * has one thread, its changes go to the counters but for the frees in its
 * log (where(): no slot is ever taken), so with that log empty (the
 * caller's, just flushed by _ms_prof_peak) the logs and slots need not be
 * read for each stack.  A growing heap's snapshots read every stack's
 * figures twice; a tracked python3 (PYTHONMALLOC=malloc, on
 * bench/alloc_heavy.py) spent 5.4% of its instructions there: 305
 * snapshots of 14,000 stacks. */
static bool counters_alone(void)
{
    if (!__libc_single_threaded) return false;
    for (ms_prof_thread_t *t = __atomic_load_n(&threads, __ATOMIC_ACQUIRE); t; t = t->next)
        if (__atomic_load_n(&t->log_room, __ATOMIC_ACQUIRE) < MS_PROF_LOG) return false;
    return true;
}

static uint64_t live_blocks(const figures_t *f) { return f->allocs > f->frees ? f->allocs - f->frees : 0; }
static uint64_t live_bytes(const figures_t *f)
{
    return f->alloc_bytes > f->freed_bytes ? f->alloc_bytes - f->freed_bytes : 0;
}

static int64_t next_after(uint64_t peak)
{
    uint64_t step = peak / 100 > (uint64_t)MS_PROF_PUBLISH ? peak / 100 : (uint64_t)MS_PROF_PUBLISH;
    return (int64_t)(peak + step);
}

/* Copy every stack's live figures into its peak if their sum passes the
 * recorded peak.  Lock-free: one snapshot at a time, others skip. */
static bool snapshot(void)
{
    if (__atomic_exchange_n(&peak_busy, 1, __ATOMIC_ACQUIRE)) return false;
    uint32_t n = _ms_prof_count();
    uint64_t total = 0;
    figures_t f;
    bool alone = counters_alone();
    for (uint32_t i = 0; i < n; i++) {
        figures_of(i + 1, &f, alone);
        total += live_bytes(&f);
    }
    int64_t next;
    if (total > peak_bytes) {
        uint64_t blocks = 0;
        for (uint32_t i = 0; i < n; i++) {
            ms_prof_t *c = _ms_stack_prof(i + 1);
            figures_of(i + 1, &f, alone);
            c->peak_bytes = live_bytes(&f);
            c->peak_blocks = live_blocks(&f);
            blocks += c->peak_blocks;
        }
        peak_bytes = total;
        peak_blocks = blocks;
        peak_ns = _ms_os_now_ns();
        next = next_after(total);
    } else {
        /* the estimate ran ahead of the exact sum (other threads' frees not
         * yet published): wait for another step before summing again */
        int64_t est = __atomic_load_n(&_ms_prof_heap, __ATOMIC_RELAXED);
        next = next_after(peak_bytes);
        if (est + MS_PROF_PUBLISH > next) next = est + MS_PROF_PUBLISH;
    }
    __atomic_store_n(&_ms_prof_peak_next, next, __ATOMIC_RELAXED);
    __atomic_store_n(&peak_busy, 0, __ATOMIC_RELEASE);
    return true;
}

void _ms_prof_peak(ms_prof_thread_t *t)
{
    if (__atomic_load_n(&_ms_prof_heap, __ATOMIC_RELAXED) + t->pending >
        __atomic_load_n(&_ms_prof_peak_next, __ATOMIC_RELAXED)) {
        _ms_prof_log_flush(t);          /* an empty log: figures() does not read it for every stack */
        snapshot();                     /* another thread's may be under way: it counts */
    }
    renew_room(t, __atomic_load_n(&_ms_prof_heap, __ATOMIC_RELAXED));
}

/* ---- the figures of one profile ----------------------------------------------------- */

static void site_add(void *arg, uint32_t id)
{
    ms_profile_t *p = arg;
    ms_prof_t *c = _ms_stack_prof(id);
    figures_t f;
    figures(id, &f);
    if (!f.allocs) return;
    if (p->n == p->cap) {
        size_t ncap = p->cap ? p->cap * 2 : 256;
        ms_psite_t *s = _ms_meta_alloc(ncap * sizeof *s);
        if (!s) { p->oom = true; return; }
        if (p->site) { memcpy(s, p->site, p->n * sizeof *s); _ms_meta_free(p->site, p->cap * sizeof *s); }
        p->site = s;
        p->cap = ncap;
    }
    ms_psite_t *s = &p->site[p->n++];
    s->stack = id;
    s->allocs = blocks_of(f.allocs);
    s->alloc_bytes = f.alloc_bytes;
    s->live_blocks = blocks_of(live_blocks(&f));
    s->live_bytes = live_bytes(&f);
    s->temps = blocks_of(f.temps);
    s->temp_bytes = f.temp_bytes;
    s->peak_blocks = blocks_of(c->peak_blocks);
    s->peak_bytes = c->peak_bytes;
    p->allocs += s->allocs;
    p->alloc_bytes += s->alloc_bytes;
    p->live_blocks += s->live_blocks;
    p->live_bytes += s->live_bytes;
    p->temps += s->temps;
    p->temp_bytes += s->temp_bytes;
}

static void hist_add(ms_profile_t *p, const ms_prof_thread_t *t)
{
    for (unsigned b = 0; b < MS_PROF_BITS; b++)
        p->hist[b < MS_PROF_HIST ? b : MS_PROF_HIST - 1] += __atomic_load_n(&t->hist[b], __ATOMIC_RELAXED);
}

static bool profile_collect(ms_profile_t *p)
{
    memset(p, 0, sizeof *p);
    while (!snapshot()) sched_yield();    /* the heap now, if it is the highest yet */
    _ms_stack_each(site_add, p);
    p->peak_bytes = peak_bytes;
    p->peak_blocks = blocks_of(peak_blocks);
    p->peak_ms = peak_ns > start_ns ? (peak_ns - start_ns) / 1000000 : 0;
    for (ms_prof_thread_t *t = __atomic_load_n(&threads, __ATOMIC_ACQUIRE); t; t = t->next)
        hist_add(p, t);
    hist_add(p, &_ms_prof_dying);       /* what ending threads allocated (thread-key destructors) */
    for (unsigned b = 0; b < MS_PROF_HIST; b++) p->hist[b] = blocks_of(p->hist[b]);
    return !p->oom;
}

static void profile_free(ms_profile_t *p)
{
    if (p->site) _ms_meta_free(p->site, p->cap * sizeof *p->site);
}

/* ---- folded stacks and JSON --------------------------------------------------------- */

/* A frame's name in a folded line: its function, else module+offset, else
 * its address; no ';' and no line break. */
void _ms_prof_frame_name(ms_buf_t *b, const ms_frame_t *f)
{
    size_t from = b->len;
    if (f->function) _ms_text_str(b, f->function);          /* control characters escaped */
    else if (f->module) {
        _ms_text_str(b, _ms_base_name(f->module));
        _ms_bprintf(b, "+0x%lx", (unsigned long)f->offset);
    } else _ms_bprintf(b, "%p", (void *)f->ip);
    for (size_t i = from; i < b->len; i++)
        if (b->p[i] == ';') b->p[i] = ':';                    /* the folded format's separator */
}

/* One line per site live at the peak: "main;work;make_node 4096",
 * outermost frame first.  Frame names longer than the buffer are cut. */
static void write_folded(ms_buf_t *out, const ms_profile_t *p)
{
    for (size_t i = 0; i < p->n; i++) {
        const ms_psite_t *s = &p->site[i];
        if (!s->peak_bytes) continue;
        ms_frame_t f[MS_MAX_STACK];
        unsigned n = _ms_stack_frames(s->stack, f);
        char mem[8192];
        ms_buf_t line;
        _ms_buf_init(&line, mem, sizeof mem - 64, -1);
        for (unsigned j = n; j-- > 0;) {
            if (line.len + 512 > line.cap) break;     /* a line stays whole */
            if (j != n - 1) _ms_bprintf(&line, ";");
            _ms_prof_frame_name(&line, &f[j]);
        }
        if (!n) _ms_bprintf(&line, "[no stack]");
        _ms_buf_put(out, line.p, line.len);
        _ms_bprintf(out, " %llu\n", (unsigned long long)s->peak_bytes);
    }
}

static void counts_json(ms_buf_t *b, uint64_t allocs, uint64_t abytes, uint64_t temps, uint64_t tbytes,
                        uint64_t lblocks, uint64_t lbytes, uint64_t pblocks, uint64_t pbytes)
{
    _ms_bprintf(b, "\"allocations\": %llu, \"allocated_bytes\": %llu, \"temporary\": %llu, "
                "\"temporary_bytes\": %llu, \"live_blocks\": %llu, \"live_bytes\": %llu, "
                "\"peak_blocks\": %llu, \"peak_bytes\": %llu",
                (unsigned long long)allocs, (unsigned long long)abytes, (unsigned long long)temps,
                (unsigned long long)tbytes, (unsigned long long)lblocks, (unsigned long long)lbytes,
                (unsigned long long)pblocks, (unsigned long long)pbytes);
}

/* The JSON profile's members but its sites: format, program, when,
 * totals, histogram (a pprof profile carries them as a comment). */
static void json_head(ms_buf_t *b, const ms_profile_t *p, const char *when)
{
    _ms_json_begin(b, "memshim-profile", 1);
    _ms_bprintf(b, ", \"when\": \"%s\", \"sample_interval\": %llu,\n \"peak_tolerance\": {\"percent\": 1, \"bytes\": %lld},\n \"totals\": {",
                when, (unsigned long long)_ms_opt.sample, (long long)MS_PROF_PUBLISH);
    counts_json(b, p->allocs, p->alloc_bytes, p->temps, p->temp_bytes, p->live_blocks, p->live_bytes,
                p->peak_blocks, p->peak_bytes);
    _ms_bprintf(b, ", \"peak_time_ms\": %llu},\n \"histogram\": [", (unsigned long long)p->peak_ms);
    bool first = true;
    for (unsigned k = 0; k < MS_PROF_HIST; k++) {
        if (!p->hist[k]) continue;
        uint64_t lo = k ? (uint64_t)1 << (k - 1) : 0, hi = k ? ((uint64_t)1 << (k - 1)) * 2 - 1 : 0;
        if (k == MS_PROF_HIST - 1) hi = UINT64_MAX;
        _ms_bprintf(b, "%s{\"min\": %llu, \"max\": %llu, \"count\": %llu}", first ? "" : ", ",
                    (unsigned long long)lo, (unsigned long long)hi, (unsigned long long)p->hist[k]);
        first = false;
    }
    _ms_bprintf(b, "]");
}

static void write_json(ms_buf_t *b, const ms_profile_t *p, const char *when)
{
    json_head(b, p, when);
    _ms_bprintf(b, ",\n \"sites\": [");
    for (size_t i = 0; i < p->n; i++) {
        const ms_psite_t *s = &p->site[i];
        _ms_bprintf(b, "%s\n  {", i ? "," : "");
        counts_json(b, s->allocs, s->alloc_bytes, s->temps, s->temp_bytes, s->live_blocks, s->live_bytes,
                    s->peak_blocks, s->peak_bytes);
        _ms_bprintf(b, ", \"stack\": ");
        _ms_stack_json(b, s->stack);
        _ms_bprintf(b, "}");
    }
    _ms_bprintf(b, "\n ]}\n");
}

/* ---- writing ------------------------------------------------------------------------ */

static pthread_mutex_t prof_lock = PTHREAD_MUTEX_INITIALIZER;
static unsigned prof_seq;        /* profiles written (prof_lock): %n in the name */

/* In the format that the name asked for (dest, the pattern: a child's
 * prof.pb.gz.PID is pprof too), JSON on standard error. */
static void write_to(ms_out_t *o, const char *dest, const ms_profile_t *p, const char *when)
{
    char mem[16384];
    ms_buf_t b;
    _ms_buf_init_out(&b, mem, sizeof mem, o);
    const char *name = o->kind == MS_OUT_STDERR ? "" : dest;
    if (_ms_ends_with(name, ".pb.gz") || _ms_ends_with(name, ".pprof")) {
        /* The JSON head as the profile's comment: memshim profile shows
         * the same program, totals and histogram from either file.  At
         * most ~9 KiB: a program name of 1,023 bytes escaped, 41 buckets. */
        enum { HEAD_MAX = 16384 };
        char *head = _ms_meta_alloc(HEAD_MAX);
        if (head) {
            ms_buf_t h;
            _ms_buf_init(&h, head, HEAD_MAX - 2, -1);
            json_head(&h, p, when);
            memcpy(head + h.len, "}", 2);
        }
        _ms_pprof_write(&b, p, head);
        if (head) _ms_meta_free(head, HEAD_MAX);
    }
    else if (_ms_ends_with(name, ".folded")) write_folded(&b, p);
    else write_json(&b, p, when);
    _ms_buf_flush(&b);
}

static int profile_write(const char *dest, const char *when);
struct write_call { const char *dest, *when; };
static int write_on_own_stack(void *arg)
{
    const struct write_call *c = arg;
    return profile_write(c->dest, c->when);
}

int _ms_profile_write(const char *dest, const char *when)
{
    if (!_ms_profiling()) { errno = ENOTSUP; return -1; }
    if (_ms_confined_say("heap profile")) { errno = EPERM; return -1; }
    struct write_call c = { dest, when };
    return _ms_on_own_stack(write_on_own_stack, &c);
}

static int profile_write(const char *dest, const char *when)
{
    int saved = errno;
    pthread_mutex_lock(&prof_lock);
    _ms_busy++;                           /* symbolizing allocates: memshim's blocks */
    _ms_symbolize_begin();
    ms_profile_t p;
    int rc = -1;
    if (profile_collect(&p)) {
        ms_out_t o;
        bool opened = _ms_out_open_seq(&o, "MEMSHIM_PROFILE", dest,
                                       _ms_leak_forked || (_ms_opt.profile_child && dest == _ms_opt.profile)
                                           ? MS_OUT_CHILD_SUFFIX : 0,
                                       ++prof_seq);
        write_to(&o, dest, &p, when);
        rc = _ms_out_commit(&o) && opened ? 0 : -1;
    } else {
        _ms_message("heap profile not written: out of memory");
    }
    profile_free(&p);
    _ms_symbolize_end();
    _ms_busy--;
    pthread_mutex_unlock(&prof_lock);
    errno = rc ? EIO : saved;
    return rc;
}

/* The counters cost every tracked allocation and free a few atomic adds:
 * kept only when something will read them (a profile's name or signal,
 * the RSS log's top sites), as jemalloc's opt.prof.  On until the options
 * are read, so that blocks allocated before are counted if they are. */
int _ms_prof_on = 1;

/* This and _ms_profile_at_exit run in every process, profiling or not:
 * `hot` puts them at the front of the library's text with the allocator,
 * not in a 64 KiB window of pages of their own (test host_memory/
 * a_small_program_maps_little_of_memshims_code). */
__attribute__((hot)) void _ms_profile_init(void)
{
    start_ns = _ms_os_now_ns();
    bool wanted = _ms_opt.profile || _ms_opt.profile_signal || _ms_ropt.rss_log;
    __atomic_store_n(&_ms_prof_on, _ms_sampling || (_ms_track_on && wanted), __ATOMIC_RELAXED);
    if (_ms_opt.profile && !_ms_profiling()) {
        _ms_message("MEMSHIM_PROFILE ignored: no heap profile with MEMSHIM_TRACK=0 unless MEMSHIM_SAMPLE is set");
        _ms_opt.profile = NULL;
    }
}

__attribute__((hot)) void _ms_profile_at_exit(void)
{
    if (_ms_profiling() && _ms_opt.profile) _ms_profile_write(_ms_opt.profile, "at exit");
}

void _ms_prof_fork_child(void)
{
    pthread_mutex_init(&prof_lock, NULL);
    peak_busy = 0;
    ms_prof_thread_t *self = _ms_prof_tl;
    if (self && self != &_ms_prof_dying) self->tid = (uint32_t)_ms_os_gettid();   /* the child's */
    for (ms_prof_thread_t *t = threads; t; t = t->next)     /* the other threads are gone */
        if (t != self && t->in_use) {
            t->flushing = 0;            /* a flush the fork cut short: its log again */
            _ms_prof_publish(t);
            _ms_prof_log_flush(t);
            t->last = NULL;
            t->in_use = 0;
        }
}

/* The public entry: to path, or to MEMSHIM_PROFILE's name when path is NULL. */
MS_EXPORT int memshim_profile_dump(const char *path)
{
    if (!path || !*path) {
        if (!_ms_opt.profile) { errno = EINVAL; return -1; }
        path = _ms_opt.profile;
    }
    return _ms_profile_write(path, "memshim_profile_dump");
}

/* ---- the top sites over time (the RSS log) ----------------------------------------- *
 * After each RSS-log sample the reporter thread (sampler.c) asks for the
 * stacks holding the most live bytes: one pass over the per-stack counters
 * (64 bytes each: about 1 ms per 100,000 stacks) keeping the top
 * MS_PROF_TOP by insertion.  Each stack is named (symbolized) once, the
 * first time it is among them, on a line of its own before the figures.
 * The pass costs at most 1% of the reporter thread's time: after a pass of
 * d ns the next waits 100 d; samples in between get no sites line.  (The
 * naming is not counted: it happens once per site.) */
#define MS_PROF_TOP 8

static uint8_t *named;             /* bit per stack id: its "# site" line written */
static size_t   named_bytes;
static uint64_t sites_next_ns;     /* no pass before this (the 1% budget) */

/* Whether stack id was named before; marks it named.  Out of memory: it is
 * named again next time, which readers accept (the last name counts). */
static bool was_named(uint32_t id)
{
    size_t byte = id / 8;
    if (byte >= named_bytes) {
        size_t n = named_bytes ? named_bytes : 4096;
        while (n <= byte) n *= 2;
        uint8_t *m = _ms_meta_alloc(n);
        if (!m) return false;
        if (named) { memcpy(m, named, named_bytes); _ms_meta_free(named, named_bytes); }
        named = m;
        named_bytes = n;
    }
    bool was = named[byte] & (1u << (id % 8));
    named[byte] |= (uint8_t)(1u << (id % 8));
    return was;
}

/* "# site ID FUNCTION (FILE:LINE)": the stack's innermost frame, the
 * function holding the allocation call; a name cut at 900 bytes. */
static void site_name_line(ms_buf_t *b, uint32_t id)
{
    uintptr_t ip[MS_MAX_STACK];
    unsigned n = _ms_stack_get(id, ip);
    char mem[1024];
    ms_buf_t line;
    _ms_buf_init(&line, mem, 900, -1);
    ms_frame_t f = { 0 };
    if (n) {
        _ms_symbolize(ip[0], &f, true);
        _ms_prof_frame_name(&line, &f);
    } else {
        _ms_bprintf(&line, "[no stack]");
    }
    _ms_bprintf(b, "# site %u ", id);
    _ms_buf_put(b, line.p, line.len);
    if (f.file && f.line > 0) {
        line.len = 0;
        _ms_bprintf(&line, "%s:%d", _ms_base_name(f.file), f.line);
        for (size_t i = 0; i < line.len; i++) if (line.p[i] == '\n' || line.p[i] == '\r') line.p[i] = ' ';
        _ms_bprintf(b, " (");
        _ms_buf_put(b, line.p, line.len);
        _ms_bprintf(b, ")");
    }
    _ms_bprintf(b, "\n");
}

void _ms_prof_sites_line(ms_buf_t *b, uint64_t t_ms, uint64_t now_ns)
{
    if (!_ms_profiling() || now_ns < sites_next_ns) return;
    uint32_t id[MS_PROF_TOP];
    uint64_t by[MS_PROF_TOP], total = 0;
    unsigned k = 0;
    uint32_t n = _ms_prof_count();
    for (uint32_t i = 0; i < n; i++) {
        figures_t f;
        figures(i + 1, &f);
        uint64_t v = live_bytes(&f);
        if (!v || (int64_t)v < 0) continue;      /* a counter caught mid-update */
        total += v;
        if (k == MS_PROF_TOP && v <= by[k - 1]) continue;
        unsigned j = k < MS_PROF_TOP ? k++ : k - 1;
        for (; j > 0 && by[j - 1] < v; j--) { by[j] = by[j - 1]; id[j] = id[j - 1]; }
        by[j] = v;
        id[j] = i + 1;
    }
    uint64_t took = _ms_os_now_ns() - now_ns;     /* the pass, not the naming: once per site */
    _ms_busy++;                                   /* symbolizing allocates: memshim's blocks */
    bool fresh = false;
    for (unsigned j = 0; j < k; j++) {
        if (was_named(id[j])) continue;
        if (!fresh) { _ms_symbolize_begin(); fresh = true; }
        site_name_line(b, id[j]);
    }
    if (fresh) _ms_symbolize_end();
    _ms_busy--;
    _ms_bprintf(b, "# sites %llu %llu", (unsigned long long)t_ms, (unsigned long long)total);
    for (unsigned j = 0; j < k; j++) _ms_bprintf(b, " %u:%llu", id[j], (unsigned long long)by[j]);
    _ms_bprintf(b, "\n");
    sites_next_ns = now_ns + 100 * took;
}

/* A new RSS log (the process's first, or a forked child's own): every site
 * is named again in it. */
void _ms_prof_sites_reset(void)
{
    if (named) memset(named, 0, named_bytes);
    sites_next_ns = 0;
}
