/* sample.c - MEMSHIM_SAMPLE's byte countdown, and with it, when tracking is
 * off (MEMSHIM_TRACK=0 MEMSHIM_SAMPLE=N), the sampled heap profiler of
 * tcmalloc and jemalloc: a production profiler that costs nothing until a
 * sample is taken.
 *
 * Every thread counts the bytes it allocates down from a gap drawn from an
 * exponential distribution of mean N (so a block of n bytes is taken with
 * chance 1 - e^(-n/N), whatever the sizes around it).  The fast path of an
 * untracked allocation is one thread-local subtraction and a sign test
 * (override.c); a thread that never allocated has a countdown of 0, so its
 * first allocation lands here and sets the gap: no per-thread set-up.
 *
 * A sampled block gets its stack (the stack cache, unwind.c) and an entry
 * in a table keyed by address (table.h); the profile counts it as the 1/p blocks it
 * stands for (profile.c).  Its span's `sampled` count makes free() of any
 * block of that span take the slow path, which looks the block up here;
 * free() of other spans' blocks pays one load of a field it already reads.
 * Huge blocks are few: every huge free while sampling asks the table. */
#include <errno.h>
#include <pthread.h>
#include <stdint.h>
#include "shim.h"
#include "table.h"

__thread int64_t _ms_sample_left __attribute__((tls_model("initial-exec")));
int _ms_sampling;                            /* the sampled profiler is on */
static int settled;                          /* the options are read */

static __thread uint64_t tl_rng __attribute__((tls_model("initial-exec")));

/* -ln(u) for u in (0,1], from the float's exponent and a short series:
 * plenty for drawing sample gaps without libm.  The series is in Horner
 * form with its divisions made multiplications: written as divisions they
 * were a chain of five, and a fifth of a sampled realloc's cost. */
static double neg_ln(double u)
{
    union { double d; uint64_t b; } v = { .d = u };
    int e = (int)((v.b >> 52) & 0x7ff) - 1023;
    v.b = (v.b & ~((uint64_t)0x7ff << 52)) | ((uint64_t)1023 << 52);   /* m in [1,2) */
    double m = v.d, t = (m - 1) / (m + 1), t2 = t * t;     /* the one division */
    double ln_m = 2 * t * (1 + t2 * (1.0 / 3 + t2 * (1.0 / 5 + t2 * (1.0 / 7 + t2 * (1.0 / 9)))));
    return -(e * 0.6931471805599453 + ln_m);
}

static double exp_neg(double x)   /* e^-x for x >= 0 */
{
    if (x > 700) return 0;
    unsigned k = 0;
    while (x > 0.5) { x /= 2; k++; }
    double r = 1 - x * (1 - x * (1.0 / 2 - x * (1.0 / 6 - x * (1.0 / 24 - x * (1.0 / 120)))));
    while (k--) r *= r;
    return r;
}

/* A thread's generator, seeded at its first gap from a count of seeds
 * drawn, where its TLS lies and the clock, through splitmix64's finisher:
 * no system call (gettid was one a thread: 5,000 short threads sampled
 * made 5,000 more system calls than the pools alone). */
static uint64_t seeds_drawn;
static uint64_t first_seed(void)
{
    uint64_t z = __atomic_add_fetch(&seeds_drawn, 0x9e3779b97f4a7c15ULL, __ATOMIC_RELAXED);
    z ^= ((uint64_t)(uintptr_t)&tl_rng << 16) ^ _ms_os_now_ns();
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    z ^= z >> 31;
    return z ? z : 1;                        /* xorshift's state is never 0 */
}

/* Every byte allocated is a draw with chance 1/N (N = MEMSHIM_SAMPLE), so
 * a block of n bytes is sampled with chance 1 - (1 - 1/N)^n =
 * 1 - e^(-n c), c = -ln(1 - 1/N): about 1 - e^(-n/N) for the N of
 * production, and 1 for every block with N = 1, whose figures are then
 * full tracking's.  c is worked out once for the N set (the options are
 * read once; a thread that reads `of` sees the c written before it). */
static double per_byte;                    /* c */
static uint64_t per_byte_of;               /* the N it is for */
static double per_byte_c(void)
{
    uint64_t n = _ms_opt.sample;
    if (__atomic_load_n(&per_byte_of, __ATOMIC_ACQUIRE) == n) return per_byte;
    double c = __builtin_inf();
    if (n > 1) {                           /* -ln(1 - x) = x + x^2/2 + x^3/3 + ..., x <= 1/2 */
        double x = 1.0 / (double)n, term = x;
        c = 0;
        for (unsigned k = 1; k < 200 && term > c * 1e-18; k++, term *= x) c += term / k;
    }
    per_byte = c;
    __atomic_store_n(&per_byte_of, n, __ATOMIC_RELEASE);
    return c;
}

double _ms_sample_chance(size_t n)
{
    return 1 - exp_neg((double)(n ? n : 1) * per_byte_c());
}

/* The bytes to pass before the next sampled one: the draws that fail
 * before one succeeds (geometric, from 0), so that the countdown run out
 * below 0 by a block of n bytes takes it with _ms_sample_chance(n)
 * exactly.  (The gap was 1 more, of mean N: a block right after a sample
 * was taken with 1 - e^(-(n-1)/N), a 1-byte block never, and
 * MEMSHIM_SAMPLE=1 counted 615 of 1,000 such blocks: found by a helper
 * checking the profiler against massif's tests.  Run out at or below 0
 * instead, the fast path's test was three instructions more: gcc does not
 * take `<= 0` from the flags of a subtraction in memory.)  A block of 0
 * bytes moves no countdown and is never taken. */
static int64_t next_gap(void)
{
    if (!tl_rng) tl_rng = first_seed();
    tl_rng ^= tl_rng << 13; tl_rng ^= tl_rng >> 7; tl_rng ^= tl_rng << 17;
    double u = ((tl_rng >> 11) + 1) * (1.0 / 9007199254740992.0);        /* (0,1] */
    return (int64_t)(neg_ln(u) / per_byte_c());
}

/* The countdown ran out (or was never set): true if the allocation of n
 * bytes that did it is to be sampled.  Without MEMSHIM_SAMPLE the countdown
 * is set so far away that it never runs out again; before the options are
 * read, a little way, to ask again. */
bool _ms_sample_due(size_t n)
{
    if (MS_UNLIKELY(!_ms_opt.sample)) {
        _ms_sample_left = settled ? INT64_MAX / 2 : 64 << 10;
        return false;
    }
    if (MS_UNLIKELY(!tl_rng)) {              /* the thread's first gap: then count n in it */
        _ms_sample_left = next_gap() - (int64_t)n;
        if (_ms_sample_left >= 0) return false;
    }
    _ms_sample_left = next_gap();
    return true;
}

void _ms_sample_fork_child(void) { tl_rng = 0; }   /* not the parent's sequence */

/* ---- the sampled blocks (MEMSHIM_TRACK=0) --------------------------------------- */

/* addr: the key; w and nb: what the block counts for in the profile (its
 * weight, profile.c's _ms_prof_weigh), kept so that its free need not
 * weigh it again; tid: the thread that allocated it (temporaries). */
typedef struct { uintptr_t addr; uint64_t w, nb; uint32_t stack, tid; } sampled_t;
static const ms_table_kind_t sampled_kind = MS_TABLE_KIND(sampled_t, addr, 1024, _ms_meta_alloc, _ms_meta_free);

/* Held for a few hundred instructions at a time, by every thread that
 * samples or frees a sampled block: an adaptive mutex spins a little
 * before it sleeps.  Two threads of bench `larson` sampling at once
 * (15,000 samples in 0.3 s) made 1,121 futex calls with a plain one, 275
 * with this; their time, 0.32-0.33 s -> 0.30-0.31 (the pools alone
 * 0.26-0.27; medians of two sets of 9 interleaved runs). */
static pthread_mutex_t lock = PTHREAD_ADAPTIVE_MUTEX_INITIALIZER_NP;
static ms_table_t *table;                 /* lock: the sampled blocks by address */

/* A signal handler that allocates (or frees a sampled block) while its own
 * thread is in the table must not wait for the lock: it would wait for
 * ever.  While a thread is in, a handler's allocation is not sampled and a
 * handler's release of a sampled block is left in one of the thread's
 * `later` slots, which the thread empties before it leaves (holding
 * signals off instead cost two system calls a sampled block: a sampled
 * block realloc'd over and over took 2.5 times as long).  A slot is
 * claimed by its `p` (written last) and given back by clearing it, so that
 * a handler coming while the thread empties them never writes over one not
 * yet read.  With every slot taken, the release is lost: the block's
 * sample stays counted live until its address is sampled or freed again. */
#define LATER 8
static __thread int tl_in __attribute__((tls_model("initial-exec")));
static __thread struct later_s { ms_page_t *pg; const void *p; } tl_later[LATER]
    __attribute__((tls_model("initial-exec")));
/* Slots filled since the thread last looked: raised by the handler after
 * it fills one, set to 0 by the thread before it looks at them all, so
 * that a table_leave with nothing left for later reads one word, not the
 * slots twice (a sixth of a sampled realloc's cost). */
static __thread int tl_later_put __attribute__((tls_model("initial-exec")));

static void forget_locked(const void *p, ms_page_t *pg, sampled_t *got);

bool _ms_sample_mine(void) { return tl_in != 0; }   /* fork from a handler (init.c) */

static void table_enter(void)
{
    tl_in = 1;
    __atomic_signal_fence(__ATOMIC_SEQ_CST);
    pthread_mutex_lock(&lock);
}

/* Releases left by handlers are made (and their profile counts passed to
 * the caller's `done`, up to LATER of them) before the lock goes. */
static unsigned later_take(sampled_t *done)
{
    unsigned n = 0;
    if (!__atomic_load_n(&tl_later_put, __ATOMIC_RELAXED)) return 0;
    __atomic_store_n(&tl_later_put, 0, __ATOMIC_RELAXED);
    __atomic_signal_fence(__ATOMIC_SEQ_CST);
    for (bool again = true; again;) {
        again = false;
        for (unsigned i = 0; i < LATER; i++) {
            const void *p = __atomic_load_n(&tl_later[i].p, __ATOMIC_RELAXED);
            if (!p) continue;
            __atomic_signal_fence(__ATOMIC_SEQ_CST);
            ms_page_t *pg = tl_later[i].pg;
            __atomic_signal_fence(__ATOMIC_SEQ_CST);
            __atomic_store_n(&tl_later[i].p, NULL, __ATOMIC_RELAXED);
            sampled_t got = { 0 };
            forget_locked(p, pg, &got);
            if (got.addr && n < LATER) done[n++] = got;
            again = true;
        }
    }
    return n;
}

static void table_leave(void)
{
    sampled_t done[LATER];
    for (;;) {
        unsigned n = later_take(done);
        pthread_mutex_unlock(&lock);
        __atomic_signal_fence(__ATOMIC_SEQ_CST);
        tl_in = 0;
        __atomic_signal_fence(__ATOMIC_SEQ_CST);
        for (unsigned i = 0; i < n; i++)
            if (done[i].stack)
                _ms_prof_free_sample(done[i].stack, (const void *)done[i].addr, done[i].w, done[i].nb, done[i].tid);
        /* a handler came between the last look and tl_in = 0 */
        if (!__atomic_load_n(&tl_later_put, __ATOMIC_RELAXED)) { _ms_signals_due(); return; }
        table_enter();
    }
}

/* A handler's release while its thread is in the table: for later. */
static void later_put(const void *p, ms_page_t *pg)
{
    for (unsigned i = 0; i < LATER; i++)
        if (!__atomic_load_n(&tl_later[i].p, __ATOMIC_RELAXED)) {
            tl_later[i].pg = pg;
            __atomic_signal_fence(__ATOMIC_SEQ_CST);
            __atomic_store_n(&tl_later[i].p, p, __ATOMIC_RELAXED);
            __atomic_signal_fence(__ATOMIC_SEQ_CST);
            __atomic_store_n(&tl_later_put, 1, __ATOMIC_RELAXED);
            return;
        }
}

/* Sampled blocks counted by a hash of their address.  A span holding a
 * sampled block sends the frees of all its blocks here; most are not the
 * sampled one, and a zero count says so without the lock (churn's frees
 * took the lock about one time in eight, 9% of its time).  free() and
 * realloc() read it first (alloc.c, override.c): a block whose count is 0
 * needs no call here. */
uint32_t _ms_sample_maybe[1u << MS_SAMPLE_MAYBE_BITS];

static bool put(const sampled_t *e)
{
    if (!ms_table_room(&table, &sampled_kind)) return false;
    ms_table_add(table, &sampled_kind, e);
    __atomic_add_fetch(_ms_sample_maybe_of((const void *)e->addr), 1, __ATOMIC_RELAXED);
    return true;
}

/* The span of a pool block, whose `sampled` count marks it; NULL for huge. */
static ms_page_t *span_of(const void *p)
{
    ms_segment_t *s = _ms_segment_of(p);
    ms_where_t w;
    return s && _ms_where(s, p, &w) ? w.pg : NULL;
}

void *_ms_sample_took(void *p, size_t n, const ms_site_t *site)
{
    if (!p || !_ms_sampling || _ms_busy || tl_in) return p;   /* tl_in: a handler's, see table_enter */
    sampled_t e = { .addr = (uintptr_t)p, .stack = _ms_capture(site), .tid = _ms_tid() };
    if (!e.stack) e.stack = _ms_stack_none();
    e.w = _ms_prof_weigh(n, &e.nb);
    ms_page_t *pg = span_of(p);
    table_enter();
    bool kept = put(&e);
    if (kept && pg) __atomic_add_fetch(&pg->sampled, 1, __ATOMIC_RELAXED);
    table_leave();
    if (kept && e.stack) _ms_prof_alloc_sample(e.stack, n, p, e.w, e.nb);
    return p;
}

/* p, maybe sampled, of span pg: out of the table (its entry in *got); the
 * lock held. */
static void forget_locked(const void *p, ms_page_t *pg, sampled_t *got)
{
    sampled_t *e = ms_table_find(table, &sampled_kind, (uintptr_t)p, NULL, NULL);
    if (!e) return;
    *got = *e;
    ms_table_del(table, &sampled_kind, e);
    __atomic_sub_fetch(_ms_sample_maybe_of(p), 1, __ATOMIC_RELAXED);
    if (pg) __atomic_sub_fetch(&pg->sampled, 1, __ATOMIC_RELAXED);
}

/* p, maybe sampled (its hash's count is not 0), of span pg: out of the
 * table and the profile if it is. */
static void forget(const void *p, ms_page_t *pg)
{
    if (tl_in) { later_put(p, pg); return; }        /* a handler's: table_enter */
    sampled_t got = { 0 };
    table_enter();
    forget_locked(p, pg, &got);
    table_leave();
    if (got.addr && got.stack) _ms_prof_free_sample(got.stack, p, got.w, got.nb, got.tid);
}

/* Whether p may be a sampled block (*pg: its span, NULL if huge). */
static bool maybe_sampled(const void *p, ms_page_t **pg)
{
    if (!_ms_sampling || !_ms_sample_hash_hit(p)) return false;
    *pg = span_of(p);
    return !*pg || __atomic_load_n(&(*pg)->sampled, __ATOMIC_RELAXED);
}

/* p is being freed: if it is a sampled block, the profile forgets it.
 * Called by alloc.c for blocks of a marked span and for huge blocks. */
void _ms_sample_release(const void *p)
{
    ms_page_t *pg;
    if (maybe_sampled(p, &pg)) forget(p, pg);
}

/* The same for a block of span pg (NULL: huge), which holds a sampled
 * one, whose address hashes with a sampled one's (alloc.c asks). */
void _ms_sample_release_at(const void *p, ms_page_t *pg)
{
    /* p's own sample was counted before p reached whoever frees it */
    forget(p, pg);
}

/* realloc by the dynamic loader, updating a thread's TLS: no stack of it
 * is unwound (unwind.c). */
static bool loader_in(const ms_site_t *site)
{
    bool loader = _ms_loader_code(site->ra);
    if (loader) _ms_no_unwind++;
    return loader;
}
static void loader_out(bool loader) { if (loader) _ms_no_unwind--; }

/* A realloc draws a sample only when it allocates: when the block moves
 * (or p is NULL), as tcmalloc's does.  One that leaves the block where it
 * is allocates nothing and draws nothing; a sampled block keeps the weight
 * of the chance it was drawn with, and the realloc counts as its free and
 * a new allocation of n bytes at this site, each with that weight.  The
 * estimates stay unbiased: a block drawn with chance p counts 1/p of each
 * size it comes to have.  (Every realloc drew, in proportion to its full
 * new size: a string grown by appends drew for its whole length at each,
 * and bench realloc's 2.8M reallocs took 471,627 samples, 1.22x the pools'
 * time.)  With MEMSHIM_SAMPLE=1 every block is drawn with p = 1 and the
 * figures are still full tracking's.  carry: p stayed where it is. */
static void *carry(void *p, size_t n, const ms_site_t *site, sampled_t *got)
{
    bool loader = loader_in(site);
    uint32_t stack = _ms_capture(site);
    if (!stack) stack = _ms_stack_none();
    loader_out(loader);
    sampled_t old = { 0 }, now = { 0 };
    table_enter();
    sampled_t *at = got ? NULL : ms_table_find(table, &sampled_kind, (uintptr_t)p, NULL, NULL);
    if (got) { old = *got; now = old; }        /* out of the table already: put back */
    else if (at) { old = *at; now = old; }
    if (old.addr) {
        now.stack = stack;
        now.tid = _ms_tid();
        now.nb = _ms_round((double)n * (double)old.w / MS_PROF_UNIT);
        if (at) *at = now;
        else if (!put(&now)) now.stack = 0;    /* no room: it leaves the profile */
    }
    table_leave();
    if (!old.addr) return p;
    if (old.stack) _ms_prof_free_sample(old.stack, p, old.w, old.nb, old.tid);
    if (now.stack) _ms_prof_alloc_sample(now.stack, n, p, now.w, now.nb);
    return p;
}

/* q, a new block of n bytes from realloc, due for a sample. */
void *_ms_sample_realloc_took(void *q, size_t n, const ms_site_t *site)
{
    bool loader = loader_in(site);
    q = _ms_sample_took(q, n, site);
    loader_out(loader);
    return q;
}

/* q, a new block of n bytes from realloc (NULL: it failed), counted down. */
static void *drew(void *q, size_t n, const ms_site_t *site)
{
    return q && MS_SAMPLE_DUE(n) ? _ms_sample_realloc_took(q, n, site) : q;
}

/* realloc(p, n) while sampling, p perhaps a sampled block (override.c
 * asks the hash first, and reallocates a block it clears itself).
 * A pool block that moves is freed by _ms_realloc, which forgets it
 * (alloc.c); if realloc fails it stays sampled.  A huge block leaves the
 * table before it may move (once moved, its old address may be another
 * thread's new block, sampled), and the profile once it has: if realloc
 * fails, its entry goes back, the block as it was. */
void *_ms_sample_realloc(void *p, size_t n, const ms_site_t *site)
{
    ms_page_t *pg = NULL;
    if (p && n && maybe_sampled(p, &pg)) {     /* n == 0 frees: the free path sees it */
        /* not a handler's (table_enter) nor memshim's own: those forget */
        bool keep = !tl_in && !_ms_busy;
        if (keep && pg) {
            void *q = _ms_realloc(p, n);
            return q == p ? carry(p, n, site, NULL) : drew(q, n, site);
        }
        if (keep && _ms_realloc_huge_stays(p, n))   /* _ms_realloc would only return p */
            return carry(p, n, site, NULL);
        if (keep) {                                  /* huge, and may move */
            sampled_t got = { 0 };
            table_enter();
            forget_locked(p, NULL, &got);
            table_leave();
            void *q = _ms_realloc(p, n);
            if (!q) {
                int e = errno;                       /* realloc's ENOMEM */
                if (got.addr) {
                    table_enter();
                    put(&got);
                    table_leave();
                }
                errno = e;
                return NULL;
            }
            if (q == p) return got.addr ? carry(p, n, site, &got) : p;   /* mremap grew it in place */
            if (got.addr && got.stack) _ms_prof_free_sample(got.stack, p, got.w, got.nb, got.tid);
            return drew(q, n, site);
        }
        forget(p, pg);
    }
    void *q = _ms_realloc(p, n);
    return q == p ? q : drew(q, n, site);
}

void _ms_sample_init(void)
{
    if (!_ms_opt.track && _ms_opt.sample) {
        _ms_unwind_init();
        _ms_sampling = 1;
    }
    __atomic_store_n(&settled, 1, __ATOMIC_RELAXED);
}

void _ms_sample_lock(void) { table_enter(); }          /* fork: init.c */
void _ms_sample_unlock(bool child)
{
    if (!child) { table_leave(); return; }
    lock = (pthread_mutex_t)PTHREAD_ADAPTIVE_MUTEX_INITIALIZER_NP;
    tl_in = 0;                         /* releases left for later: the child's next table_leave */
}
