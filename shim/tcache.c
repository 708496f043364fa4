/* tcache.c - per-thread caches: a LIFO list of free blocks per size class,
 * reached through one initial-exec TLS pointer (_ms_thread.tc).  When a
 * thread exits (pthread key destructor) its cache, blocks and all, waits
 * on a list for the next thread that starts, which takes it over as it is
 * (a few of them at most: the others are flushed to the central lists, and
 * one not taken within a look's interval too, below).  After that the
 * exiting thread uses `tc_dead`, whose limits are zero, so every
 * operation takes the slow path straight to the central lists. */
#include <string.h>
#include "shim.h"

__thread ms_thread_t _ms_thread __attribute__((tls_model("initial-exec")));   /* shim.h */

static pthread_key_t   tc_key;
static bool            tc_key_ok;
static pthread_mutex_t tc_lock = PTHREAD_MUTEX_INITIALIZER;
static ms_tcache_t    *tc_live;       /* tc_lock */
static ms_tcache_t    *tc_spare;      /* caches of exited threads, for reuse (tc_lock) */
static unsigned        tc_count;      /* tc_lock */
/* Of tc_spare, the caches that still hold their thread's blocks (tc_lock):
 * at most SPARE_FULL.  A program of short threads, each started as another
 * ends, hands each one's bins to the next: no flush at the exit (two system
 * calls to hold signals off, and a trip to the central list of each class
 * used) and no refills at the start.  bench `threads` (5,000 threads, 64
 * blocks each, 5 paired rounds): 1.33x glibc's time -> 1.02x; tracked,
 * 1.54x -> 1.22x. */
#define SPARE_FULL 4
static unsigned        tc_spare_full;
/* Calls that went central without a cache (a dead thread's, a class above
 * MS_TCACHE_MAX), and the counts of exited threads' caches. */
static uint64_t        direct_allocs[MS_NCLASSES], direct_frees[MS_NCLASSES]; /* tc_lock */
/* All limits 0: every call goes central.  Read-only, and shared: the
 * inline pop counts itself before it reads a bin (shim.h), but a count
 * one short of the look's turn sends it to the slow path first. */
static const ms_tcache_t tc_dead = { .bins = { [0 ... MS_NCLASSES - 1] = { .allocs = MS_LOOK_EVERY - 1 } } };

static void tcache_thread_exit(void *arg);
static void spares_flush(uint64_t before);

_Static_assert(offsetof(ms_tcache_t, bins) == 0 &&
               offsetof(ms_tcache_t, prev) == sizeof(((ms_tcache_t *)0)->bins),
               "_ms_tcache_get sets up the bins and zeroes all that follows them");

void _ms_tcache_init(void)
{
    tc_key_ok = pthread_key_create(&tc_key, tcache_thread_exit) == 0;
}

/* A signal handler that allocates in the middle of its thread's first
 * call, which makes the cache, gets the dead thread's sentinel for the
 * time being (its blocks go straight to the central lists): it neither
 * waits for tc_lock, which its thread may hold, nor makes a second cache
 * for the thread, which the first would replace. */
ms_tcache_t *_ms_tcache_get(void)
{
    ms_tcache_t *tc = _ms_thread.tc;
    if (tc) return tc;
    if (_ms_thread.in_bins) return (ms_tcache_t *)&tc_dead;
    _ms_init();
    _ms_bins_enter();
    _ms_lock(&tc_lock);
    tc = tc_spare;
    bool full = false;                   /* holding the blocks a thread gone left */
    if (tc) {
        tc_spare = tc->next;
        full = tc->left_ns != 0;
        if (full) tc_spare_full--;
    }
    _ms_unlock(&tc_lock);
    if (!tc) tc = _ms_meta_alloc(sizeof *tc);
    if (!tc) {
        _ms_bins_leave();
        return NULL;
    }
    /* A new thread's cache, new or reused, but for the blocks taken over. */
    memset(&tc->prev, 0, sizeof *tc - offsetof(ms_tcache_t, prev));
    static uint32_t ids;
    do tc->id = __atomic_add_fetch(&ids, 1, __ATOMIC_RELAXED); while (!tc->id);
    for (unsigned c = 0; c < MS_NCLASSES; c++) {
        ms_bin_t *b = &tc->bins[c];
        /* A bin's limit is set by its first refill (0 until then: a first
         * free takes the slow path, alloc.c's _ms_free_slow). */
        bool kept = full && b->count;
        *b = (ms_bin_t){ .head = kept ? b->head : NULL, .count = kept ? b->count : 0,
                         .limit = kept ? _ms_classes[c].limit : 0,
                         .want = _ms_classes[c].batch < MS_FIRST_BATCH ? _ms_classes[c].batch : MS_FIRST_BATCH };
    }
    _ms_lock(&tc_lock);
    tc->next = tc_live;
    if (tc_live) tc_live->prev = tc;
    tc_live = tc;
    tc_count++;
    _ms_unlock(&tc_lock);
    _ms_thread.tc = tc;   /* set before pthread_setspecific, which may itself allocate */
    _ms_bins_leave();
    if (tc_key_ok) pthread_setspecific(tc_key, tc);
    return tc;
}

bool _ms_tcache_caches(const ms_tcache_t *tc, unsigned cls)
{
    return tc != &tc_dead && _ms_classes[cls].limit;
}

/* A batch for tc's bin of class cls (one that caches) from the central
 * list, linked: the bin's limit set (0 until its first batch), its next
 * batch twice this one up to the class's batch, the bin marked refilled.
 * How many; 0 if none came. */
static unsigned take_batch(ms_tcache_t *tc, unsigned cls, ms_block_t **head, ms_block_t **tail)
{
    ms_bin_t *b = &tc->bins[cls];
    unsigned batch = _ms_classes[cls].batch, want = b->want ? b->want : batch;
    unsigned n = _ms_central_take(cls, head, tail, want, tc->id);
    if (!n) return 0;
    if (want < batch) b->want = (uint16_t)(want * 2 < batch ? want * 2 : batch);
    b->limit = _ms_classes[cls].limit;
    tc->dry[cls / 64] |= (uint64_t)1 << (cls % 64);
    return n;
}

/* Fetch a batch of class cls, return one, put the rest in front of what
 * the thread's bin holds: nothing when the thread's own malloc comes here,
 * but a signal handler that takes a larger class's block (alloc.c) finds
 * that bin as it is, and the handler's refill of a bin its thread is
 * refilling (its thread out of the class's lock, in unpark_idle) leaves it
 * filled.  (Written over, the bin counted blocks it no longer held, and
 * the next flush gave the central lists a NULL list.)
 * A thread's first batches of a class are small and double up to the
 * class's (tcmalloc's slow start): a short thread that allocates a few
 * blocks of many sizes carves, touches and at exit gives back a few blocks
 * of each, not half a cache of each (5,000 threads of 64 blocks faulted in
 * 3 MB and spent ~6% of their time in the central lists). */
void *_ms_tcache_refill(ms_tcache_t *tc, unsigned cls)
{
    ms_block_t *head, *tail;
    if (!_ms_tcache_caches(tc, cls)) {
        unsigned n = _ms_central_take(cls, &head, &tail, 1, tc->id);
        if (!n) return NULL;
        /* One block asked for may come with a parked batch's others: they
         * go back.  They were dropped, lost to reuse for good: a thread
         * whose key destructor allocated after memshim's own had run lost
         * a block of 3 KiB at each exit (gperftools' thread_dealloc test). */
        if (n > 1) _ms_central_give(cls, head->next, n - 1);
        __atomic_fetch_add(&direct_allocs[cls], 1, __ATOMIC_RELAXED);
        return head;
    }
    ms_bin_t *b = &tc->bins[cls];
    unsigned n = take_batch(tc, cls, &head, &tail);
    if (!n) return NULL;
    tail->next = b->head;
    b->head = head->next;
    b->count += n - 1;
    b->allocs++;
    return head;
}

/* The first free into a bin never filled (limit 0: alloc.c's
 * _ms_free_slow) of a block of another thread's span: a refill first, and
 * p under it, last to be reused.  Handed out again at once, p would have
 * the thread write beside its neighbours, which other threads may be
 * writing (passive false sharing; Hoard's cache-scratch: a thread given a
 * block by the main thread frees it and allocates its own).  The refill's
 * blocks come from spans the thread takes for itself: fresh ones are
 * carved after those of the threads before it.  False, nothing done, if
 * the bin could not hold a batch and p (a class's limit of 1: a batch,
 * even a parked one, is at most half the limit) or the central list gave
 * nothing. */
bool _ms_tcache_push_under(ms_tcache_t *tc, unsigned cls, void *p)
{
    ms_bin_t *b = &tc->bins[cls];
    ms_block_t *head, *tail;
    if (b->count || _ms_classes[cls].limit < 2) return false;
    unsigned n = take_batch(tc, cls, &head, &tail);
    if (!n) return false;
    _ms_bin_push(b, p);
    tail->next = b->head;
    b->head = head;
    b->count += n;
    return true;
}

/* The block p was just taken from this thread's bin: its link, now the
 * bin's head, must be sound (tracking only: alloc.c's tracked pop, track.c). */
void _ms_tcache_check_pop(const void *p, unsigned cls)
{
    ms_tcache_t *tc = _ms_thread.tc;
    if (!tc || tc == &tc_dead) return;
    /* A signal handler's pop in the middle of its thread's change of the
     * bins (a refill between its head and its count) sees the bin as it
     * is not: no judgement, no change. */
    if (_ms_thread.in_bins) return;
    ms_bin_t *b = &tc->bins[cls];
    _ms_bins_enter();
    if (!_ms_bin_sound(b, p, cls)) {
        _ms_corrupt_note(p);
        b->head = NULL;                   /* the rest of the list is lost to reuse */
        b->count = 0;
    }
    _ms_bins_leave();
}

/* Keep `keep` blocks of a class, return the rest: the most recently freed
 * go (as tcmalloc's do), so the blocks that stay need no walk to find the
 * cut: each given block's link is checked once, as it is given. */
void _ms_tcache_flush(ms_tcache_t *tc, unsigned cls, unsigned keep)
{
    ms_bin_t *b = &tc->bins[cls];
    _ms_bins_enter();
    if (b->count > keep && !_ms_central_mine(cls)) {   /* else the bin stays over its limit for now */
        ms_block_t *rest = _ms_central_give(cls, b->head, b->count - keep);
        b->head = rest;
        b->count = rest ? keep : 0;       /* cut short (written after free): the rest is lost to reuse */
    }
    _ms_bins_leave();
}

/* A free without a cache (a dead thread's, a class none holds): straight
 * to the central list. */
void _ms_tcache_free_direct(void *p, unsigned cls)
{
    if (_ms_central_mine(cls)) return;      /* a handler inside its thread's hold: the block is lost to reuse */
    ((ms_block_t *)p)->next = NULL;
    __atomic_fetch_add(&direct_frees[cls], 1, __ATOMIC_RELAXED);
    _ms_central_give(cls, p, 1);
}

void _ms_tcache_count_frees(unsigned cls, unsigned n)
{
    ms_tcache_t *tc = _ms_thread.tc;
    if (tc && tc != &tc_dead) tc->bins[cls].frees += n;
    else __atomic_fetch_add(&direct_frees[cls], n, __ATOMIC_RELAXED);
}

/* Every block of tc's bins to the central lists. */
static void empty_bins(ms_tcache_t *tc)
{
    for (unsigned c = 0; c < MS_NCLASSES; c++) _ms_tcache_flush(tc, c, 0);
}

/* The same with no handler's allocation in the middle (its thread may
 * hold a class's lock here). */
static void flush_all(ms_tcache_t *tc)
{
    sigset_t old;
    bool held = _ms_os_signals_defer(&old);
    empty_bins(tc);
    if (held) _ms_os_signals_restore(&old);
}

/* The exiting thread's cache: left whole for the next thread if fewer
 * than SPARE_FULL others wait so, else flushed.  Its thread no longer
 * uses it (tc_dead), so a handler of its that allocates goes central and
 * the blocks left are not touched. */
static void tcache_thread_exit(void *arg)
{
    ms_tcache_t *tc = arg;
    if (!tc || tc == &tc_dead) return;
    _ms_thread.tc = (ms_tcache_t *)&tc_dead;        /* later frees on this thread go central */
    __atomic_signal_fence(__ATOMIC_SEQ_CST);
    if (_ms_track_on || _ms_sampling) {    /* else none of those files' code runs (Makefile: HOT_SRC) */
        _ms_unwind_thread_exit();
        _ms_scan_thread_exit();
        _ms_prof_thread_exit();
    }
    _ms_reporter_thread_left();
    _ms_lock(&tc_lock);                    /* left in one hold of the lock: a fork finds it left or not */
    bool leave = tc_spare_full < SPARE_FULL;
    if (leave) {
        tc_spare_full++;
    } else {
        _ms_unlock(&tc_lock);
        flush_all(tc);                     /* a handler now goes central: not into a flush's lock */
        _ms_lock(&tc_lock);
    }
    for (unsigned c = 0; c < MS_NCLASSES; c++) {
        direct_allocs[c] += tc->bins[c].allocs;
        direct_frees[c] += tc->bins[c].frees;
        tc->bins[c].allocs = tc->bins[c].frees = 0;
    }
    tc->left_ns = leave ? _ms_os_now_ns() | 1 : 0;
    if (tc->prev) tc->prev->next = tc->next; else tc_live = tc->next;
    if (tc->next) tc->next->prev = tc->prev;
    tc_count--;
    tc->prev = NULL;
    tc->next = tc_spare;
    tc_spare = tc;
    _ms_unlock(&tc_lock);
}

/* ---- what a running thread keeps for nothing -------------------------------- *
 * Blocks kept for the next allocations, in a thread's bins and in parked
 * batches, each keep their span (64 KiB) from going back to the segment.
 * After a peak freed in random order the few hundred blocks that a class
 * keeps are in as many spans: 100 MiB of 48-byte blocks freed at random
 * left 640 blocks (30 KiB) holding 500 spans (31 MiB), for good, in a
 * program that went on allocating from its cache.  So every MS_LOOK_EVERY
 * allocations from one of its bins (shim.h), at most every eighth of
 * MEMSHIM_DECAY, a thread looks at what is kept: each of its bins not
 * refilled since the last look (it held more than the thread needed) gives
 * back half its blocks -- the bin whose turn it is, and the others that
 * were not used at all since (shim.h: a bin in use may be in the middle of
 * a change that a signal handler's look interrupted); the parked batches
 * of the classes that no thread took one from since the last look go to
 * their spans (pool.c); then pages free for longer than the delay are
 * purged and cached huge mappings expire, as when a page is taken or given
 * back.  A thread that allocates nothing does not look: its cache stays
 * until it exits. */
void _ms_tcache_look(ms_tcache_t *tc, unsigned own)
{
    /* a handler that came inside the allocator (a lock held, a bin being
     * changed: shim.h): later */
    if (_ms_held || _ms_thread.in_bins || tc == &tc_dead) return;
    uint64_t now = _ms_os_now_ns();
    if (now < tc->next_look) return;
    tc->next_look = now + _ms_look_interval_ns();
    sigset_t old;                         /* no handler's allocation in the middle of it */
    bool held = _ms_os_signals_defer(&old);
    for (unsigned c = 0; c < MS_NCLASSES; c++) {
        ms_bin_t *b = &tc->bins[c];
        uint64_t ops = b->allocs + b->frees;
        bool unused = ops == tc->seen[c];
        tc->seen[c] = ops;
        if (b->count > 1 && !(tc->dry[c / 64] >> (c % 64) & 1) && (c == own || unused))
            _ms_tcache_flush(tc, c, b->count / 2);
    }
    memset(tc->dry, 0, sizeof tc->dry);
    if (__atomic_load_n(&tc_spare_full, __ATOMIC_RELAXED))   /* left, and not taken since a look ago */
        spares_flush(now - _ms_look_interval_ns());
    _ms_central_look(now);
    _ms_segment_decay(now);
    _ms_huge_decay(now);
    if (held) _ms_os_signals_restore(&old);
}

/* The caches of threads gone that still hold blocks, left before
 * `before` (0: all of them): their blocks to the central lists.  Each is
 * off the list while it is flushed, since tc_lock is a leaf (the central
 * lists' locks are never taken under it); signals are held off by the
 * caller. */
static void spares_flush(uint64_t before)
{
    for (;;) {
        ms_tcache_t *tc = NULL;
        _ms_lock(&tc_lock);
        for (ms_tcache_t **at = &tc_spare; *at; at = &(*at)->next)
            if ((*at)->left_ns && (!before || (*at)->left_ns < before)) {
                tc = *at;
                *at = tc->next;
                tc_spare_full--;
                break;
            }
        _ms_unlock(&tc_lock);
        if (!tc) return;
        empty_bins(tc);
        tc->left_ns = 0;
        _ms_lock(&tc_lock);
        tc->next = tc_spare;
        tc_spare = tc;
        _ms_unlock(&tc_lock);
    }
}

/* Whether p is in a cache a thread gone left, in its list of class cls
 * (walked only as far as its links are sound while tracking): a double
 * free of a block that an ended thread freed (alloc.c).  Not asked by a
 * signal handler whose thread holds one of the allocator's locks (tc_lock
 * among them). */
bool _ms_tcache_left_holds(unsigned cls, const void *p)
{
    bool found = false;
    if (_ms_held) return false;
    _ms_lock(&tc_lock);
    for (ms_tcache_t *tc = tc_spare; tc && !found; tc = tc->next)
        found = tc->left_ns && _ms_chain_holds(tc->bins[cls].head, p, cls, tc->bins[cls].count);
    _ms_unlock(&tc_lock);
    return found;
}

/* malloc_trim: all of this thread's cache, unless a handler called it in
 * the middle of a slow path's change of the thread's bins (one in the
 * middle of an inline pop or push is not seen: memshim(7)), and what
 * threads gone left for the next ones. */
void _ms_tcache_flush_current(void)
{
    ms_tcache_t *tc = _ms_thread.tc;
    if (_ms_thread.in_bins) return;
    sigset_t old;
    bool held = _ms_os_signals_defer(&old);
    if (tc && tc != &tc_dead) empty_bins(tc);
    spares_flush(0);
    if (held) _ms_os_signals_restore(&old);
}

/* Sum the counters of every live thread and of the threads gone.  Other
 * threads' counters are read without stopping them: each is a plain word
 * written only by its owner, so a read sees some recent value. */
void _ms_tcache_stats(ms_thread_stat_t out[MS_NCLASSES], unsigned *threads)
{
    _ms_lock(&tc_lock);
    for (unsigned c = 0; c < MS_NCLASSES; c++) {
        out[c].allocs = __atomic_load_n(&direct_allocs[c], __ATOMIC_RELAXED);
        out[c].frees = __atomic_load_n(&direct_frees[c], __ATOMIC_RELAXED);
        out[c].cached = 0;
    }
    for (ms_tcache_t *tc = tc_live; tc; tc = tc->next)
        for (unsigned c = 0; c < MS_NCLASSES; c++) {
            ms_bin_t *b = &tc->bins[c];
            out[c].allocs += __atomic_load_n(&b->allocs, __ATOMIC_RELAXED);
            out[c].frees += __atomic_load_n(&b->frees, __ATOMIC_RELAXED);
            out[c].cached += __atomic_load_n(&b->count, __ATOMIC_RELAXED);
        }
    for (ms_tcache_t *tc = tc_spare; tc; tc = tc->next)     /* blocks left by threads gone */
        if (tc->left_ns)
            for (unsigned c = 0; c < MS_NCLASSES; c++) out[c].cached += tc->bins[c].count;
    if (threads) *threads = tc_count;
    _ms_unlock(&tc_lock);
}

void _ms_tcache_lock(void) { _ms_lock(&tc_lock); }

/* In a forked child only the forking thread lives on: drop the other caches
 * from the registry (their blocks stay allocated; they are few). */
void _ms_tcache_unlock(bool child)
{
    if (!child) { _ms_unlock(&tc_lock); return; }
    pthread_mutex_init(&tc_lock, NULL);
    ms_tcache_t *self = _ms_thread.tc;
    ms_tcache_t *tc = tc_live;
    while (tc) {
        ms_tcache_t *next = tc->next;
        if (tc != self) {
            for (unsigned c = 0; c < MS_NCLASSES; c++) {
                direct_allocs[c] += tc->bins[c].allocs;
                direct_frees[c] += tc->bins[c].frees;
            }
        }
        tc = next;
    }
    if (self && self != &tc_dead) {
        self->prev = self->next = NULL;
        tc_live = self;
        tc_count = 1;
    } else {
        tc_live = NULL;
        tc_count = 0;
    }
}
