/* leak.c - when leak reports are made: at exit, on demand through
 * memshim_leak_check(), and on MEMSHIM_REPORT_SIGNAL.  Also the heap-misuse
 * report (double free, free of a block never handed out) with its stacks.
 *
 * MEMSHIM_REPORT_SIGNAL's handler only wakes memshim's helper thread
 * (sampler.c), which makes the report: the scan never runs inside an
 * arbitrary interrupted frame (which might hold an allocator lock). */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "shim.h"
#include "../include/memshim.h"

static ms_heap_err_t heap_errs[MS_HEAP_ERR_MAX];     /* heap misuse for the report (below) */
static unsigned heap_errs_n;

/* This and _ms_leak_at_exit's test run in every process: `hot` puts them
 * at the front of the text, with the allocator (as profile.c's). */
__attribute__((hot)) void _ms_leak_init(void)
{
    if (!_ms_opt.track) {
        _ms_track_on = 0;
        return;
    }
    _ms_unwind_init();
    _ms_scan_init();
}

/* A forked child leaves the blocks its parent allocated before fork() to
 * the parent's report.  A parent that ends without one (daemon(3) and the
 * double fork of daemons end it with _exit) would leave them to no report:
 * a page shared with its children says whether its exit report was made,
 * and a child whose parent has ended without one counts them itself. */
static struct { int reported; } *my_note, *parent_note;
static int fork_pid, parent_pid;

void _ms_leak_before_fork(void)
{
    if (_ms_track_on && !my_note) my_note = _ms_os_map_shared(MS_OS_PAGE);
    fork_pid = (int)getpid();
}

bool _ms_leak_parent_counts(void)
{
    if (!parent_note || __atomic_load_n(&parent_note->reported, __ATOMIC_ACQUIRE)) return true;
    return getppid() == parent_pid;     /* not reparented: it may report yet (a zombie would not) */
}

/* The note pages mapped here (shared memory, which the scan takes for
 * roots): memshim's own, into `out` (two at most). */
unsigned _ms_leak_note_ranges(ms_range_t *out)
{
    unsigned n = 0;
    if (my_note) out[n++] = (ms_range_t){ (uintptr_t)my_note, (uintptr_t)my_note + MS_OS_PAGE };
    if (parent_note) out[n++] = (ms_range_t){ (uintptr_t)parent_note, (uintptr_t)parent_note + MS_OS_PAGE };
    return n;
}

void _ms_leak_after_fork_child(void)
{
    parent_note = my_note;              /* the parent's; ours is made at our first fork */
    parent_pid = fork_pid;
    my_note = NULL;
    _ms_leak_forked = 1;
    _ms_fork_own_reset();
    _ms_leak_report_fork_child();
    heap_errs_n = 0;                        /* the parent's misuse is in the parent's report */
}

static MS_NOINLINE void leak_at_exit(void);
__attribute__((hot)) void _ms_leak_at_exit(void)
{
    if (_ms_track_on) leak_at_exit();
}

static MS_NOINLINE void leak_at_exit(void)
{
    if (_ms_corrupt_pending) _ms_corrupt_report();
    /* The scan maps scratch memory: free pages and huge mappings kept for
     * reuse (MEMSHIM_DECAY) are of no more use, so they go first, and the
     * process's peak is not the two together. */
    _ms_segment_purge_all();
    _ms_huge_trim();
    /* Scan the exiting thread's stack from where the program called exit()
     * (or returned from main): exit's frames and everything below hold
     * only dead copies.  Without an unwinder, from here. */
    ms_scan_self_t self;
    memset(&self, 0, sizeof self);
    if (!_ms_exit_signal_frame(&self) && !_ms_unwind_exit_frame(&self)) {
        MS_SAVE_CALLEE_SAVED(self.regs);
        self.nregs = MS_NSAVED;
        self.sp = (uintptr_t)__builtin_frame_address(0);
        self.pc = 0;
    }
    int leaks = _ms_leak_report(1, &self);
    if (my_note) __atomic_store_n(&my_note->reported, 1, __ATOMIC_RELEASE);
    if ((leaks > 0 || __atomic_load_n(&heap_errs_n, __ATOMIC_RELAXED)) && _ms_opt.exitcode >= 0 &&
        !_ms_exit_signal()) {                /* a signal ends it, killed by the signal */
        _ms_messages_at_exit();             /* the destructor's last words, said before _exit */
        if (!__atomic_load_n(&_ms_exit_unflushed, __ATOMIC_ACQUIRE))
            fflush(NULL);                   /* the program's buffered output first (not at its _exit) */
        _exit(_ms_opt.exitcode);
    }
}

MS_EXPORT MS_NOINLINE int memshim_leak_check(void)
{
    ms_scan_self_t self;
    MS_CALLER_FRAME(self);
    if (!_ms_track_on) { errno = ENOTSUP; return -1; }     /* as memshim_why */
    return _ms_leak_report(0, &self);
}

/* The retention path of the block holding ptr, written to fd: a scan as
 * memshim_leak_check makes, from the caller's frame. */
MS_EXPORT MS_NOINLINE int memshim_why(const void *ptr, int fd)
{
    ms_scan_self_t self;
    MS_CALLER_FRAME(self);
    return _ms_why(ptr, fd, &self);
}

/* ---- heap misuse ------------------------------------------------------------- */

/* Every misuse message is also kept, with its stacks, for the leak report
 * (its "heap errors" section): in memshim's static memory, never the
 * program's heap; a forked child starts with none. */

void _ms_heap_err_note(const char *what, const void *p, const char *is,
                       const char *const *titles, const uint32_t *stacks, unsigned nstacks)
{
    unsigned i = __atomic_fetch_add(&heap_errs_n, 1, __ATOMIC_RELAXED);
    if (i >= MS_HEAP_ERR_MAX) return;
    ms_heap_err_t *e = &heap_errs[i];
    e->what = what;
    size_t n = is ? strnlen(is, sizeof e->is - 1) : 0;
    if (n) memcpy(e->is, is, n);
    e->is[n] = 0;
    e->p = p;
    e->tid = _ms_os_gettid();
    e->nstacks = nstacks < 3 ? nstacks : 3;
    for (unsigned k = 0; k < e->nstacks; k++) { e->titles[k] = titles[k]; e->stacks[k] = stacks[k]; }
    __atomic_store_n(&e->ready, 1, __ATOMIC_RELEASE);
}

const ms_heap_err_t *_ms_heap_errors(unsigned *shown, unsigned *total)
{
    unsigned n = __atomic_load_n(&heap_errs_n, __ATOMIC_ACQUIRE), k = 0;
    while (k < n && k < MS_HEAP_ERR_MAX && __atomic_load_n(&heap_errs[k].ready, __ATOMIC_ACQUIRE)) k++;
    *shown = k;
    *total = n;
    return heap_errs;
}

static void misuse_stack(ms_buf_t *b, const char *title, const uintptr_t *ip, unsigned n)
{
    _ms_bprintf(b, "    %s:\n", title);
    if (!n) { _ms_bprintf(b, "        (not recorded)\n"); return; }
    _ms_symbolize_hold();              /* each name printed before another thread may free it */
    for (unsigned i = 0; i < n; i++) {
        ms_frame_t f;
        _ms_symbolize(ip[i], &f, true);
        _ms_bprintf(b, "        #%u %p ", i, (void *)f.ip);
        _ms_frame_text(b, &f);
        _ms_bprintf(b, "\n");
    }
    _ms_symbolize_end();
}

/* Stored stacks under their titles ("allocated at", "freed at"...). */
static void misuse_stacks(ms_buf_t *b, const char *const *titles, const uint32_t *stacks, unsigned n)
{
    for (unsigned i = 0; i < n; i++) {
        uintptr_t ip[MS_MAX_STACK];
        unsigned k = _ms_stack_get(stacks[i], ip);
        misuse_stack(b, titles[i], ip, k);
    }
}

/* One heap-misuse report: "memshim: WHAT: P is IS", then, while tracking,
 * the stacks given (a title and a stack id each, 0 if none was recorded)
 * and the stack of the call now.  Without tracking there are no stacks:
 * the line is the whole report.  A message of WHAT's kind (out.c): the
 * first few are written, the rest counted (a program that goes on with
 * MEMSHIM_ON_ERROR=continue may repeat its mistake in a loop), and noted
 * for the leak report, with stacks while it keeps them; then the process
 * aborts unless MEMSHIM_ON_ERROR=continue. */
typedef struct {
    const char *what;
    const void *p;
    const char *is;
    const char *const *titles;
    const uint32_t *stacks;
    unsigned nstacks;
    const uintptr_t *now;
    unsigned nnow;
} misuse_msg_t;

static int misuse_print(void *arg)
{
    const misuse_msg_t *m = arg;
    _ms_busy++;                        /* symbolizing allocates: those blocks are memshim's */
    char mem[4096];
    ms_buf_t b;
    _ms_buf_init(&b, mem, sizeof mem, _ms_err_fd());
    _ms_bprintf(&b, "memshim: %s: %p is %s%s\n", m->what, m->p, m->is,
                _ms_opt.on_error == MS_ON_ERROR_ABORT ? "; aborting (MEMSHIM_ON_ERROR=continue to go on)" : "");
    if (_ms_track_on) {
        misuse_stacks(&b, m->titles, m->stacks, m->nstacks);
        misuse_stack(&b, "now at", m->now, m->nnow);
    }
    _ms_buf_flush(&b);
    _ms_busy--;
    return 0;
}

void _ms_misuse_report(const char *what, const void *p, const char *is,
                       const char *const *titles, const uint32_t *stacks, unsigned nstacks)
{
    bool shown = _ms_message_gate(what);
    bool kept = __atomic_load_n(&heap_errs_n, __ATOMIC_RELAXED) < MS_HEAP_ERR_MAX;
    uintptr_t now[MS_MAX_STACK];
    unsigned nnow = _ms_track_on && (shown || kept) ? _ms_unwind(now, _ms_opt.stack_depth) : 0;
    if (_ms_track_on && kept) {        /* for the report: the stacks given, then "now at" */
        const char *t[3] = { "now at", "now at", "now at" };
        uint32_t st[3] = { 0, 0, 0 };
        unsigned k = 0;
        for (; k < nstacks && k < 2; k++) { t[k] = titles[k]; st[k] = stacks[k]; }
        st[k] = nnow ? _ms_stack_intern(now, nnow) : 0;
        _ms_heap_err_note(what, p, is, t, st, k + 1);
    } else _ms_heap_err_note(what, p, is, NULL, NULL, 0);
    if (shown) {
        misuse_msg_t m = { what, p, is, titles, stacks, nstacks, now, nnow };
        _ms_on_own_stack(misuse_print, &m);        /* symbolizing takes stack */
    }
    if (_ms_opt.on_error == MS_ON_ERROR_ABORT) _ms_abort();
}

/* ---- writes after free ------------------------------------------------------- *
 * While tracking, a free-list link the program overwrote after freeing the
 * block is found where a list is walked (pool.c, tcache.c), often with a
 * lock held: the list is cut there, the block noted with a copy of its
 * record, and the message printed at the next safe point (the end of the
 * tracked call, or exit).  The program goes on: the blocks past the cut are
 * never handed out again, which costs memory, not correctness. */
#define CORRUPT_MAX 16
static struct { const void *blk; ms_meta_t m; int ready; } corrupt[CORRUPT_MAX];
static unsigned corrupt_n, corrupt_done;
int _ms_corrupt_pending;

void _ms_corrupt_note(const void *blk)
{
    unsigned j = __atomic_load_n(&corrupt_n, __ATOMIC_RELAXED);
    if (j && j <= CORRUPT_MAX && corrupt[j - 1].blk == blk) return;   /* seen by both walks of a chain */
    unsigned i = __atomic_fetch_add(&corrupt_n, 1, __ATOMIC_RELAXED);
    if (i < CORRUPT_MAX) {
        const ms_meta_t *m = _ms_meta_of(blk);
        corrupt[i].blk = blk;
        if (m) corrupt[i].m = *m;
        __atomic_store_n(&corrupt[i].ready, 1, __ATOMIC_RELEASE);
    }
    __atomic_store_n(&_ms_corrupt_pending, 1, __ATOMIC_RELEASE);
}

static int corrupt_report(void *unused);
void _ms_corrupt_report(void)
{
    if (!_ms_busy) _ms_on_own_stack(corrupt_report, NULL);     /* symbolizing takes stack */
}

static int corrupt_report(void *unused)
{
    (void)unused;
    static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
    if (_ms_busy || pthread_mutex_trylock(&lock) != 0) return 0;
    __atomic_store_n(&_ms_corrupt_pending, 0, __ATOMIC_RELAXED);
    unsigned n = __atomic_load_n(&corrupt_n, __ATOMIC_ACQUIRE);
    for (; corrupt_done < n && corrupt_done < CORRUPT_MAX; corrupt_done++) {
        if (!__atomic_load_n(&corrupt[corrupt_done].ready, __ATOMIC_ACQUIRE)) {
            __atomic_store_n(&_ms_corrupt_pending, 1, __ATOMIC_RELAXED);   /* still being noted */
            break;
        }
        const ms_meta_t *m = &corrupt[corrupt_done].m;
        _ms_busy++;
        char mem[4096];
        ms_buf_t b;
        _ms_buf_init(&b, mem, sizeof mem, _ms_message_gate("write to freed block") ? _ms_err_fd() : -1);
        _ms_bprintf(&b, "memshim: write to freed block %p: its free-list link was overwritten after "
                    "free (use after free); the list is cut there and the program goes on\n",
                    corrupt[corrupt_done].blk);
        static const char *const titles[] = { "allocated at", "freed at" };
        misuse_stacks(&b, titles, (const uint32_t[]){ m->stack, m->free_stack }, 2);
        _ms_heap_err_note("write to freed block", corrupt[corrupt_done].blk,
                          "a freed block whose free-list link was overwritten (use after free)", titles,
                          (const uint32_t[]){ m->stack, m->free_stack }, 2);
        _ms_buf_flush(&b);
        _ms_busy--;
    }
    if (n > CORRUPT_MAX && corrupt_done == CORRUPT_MAX) {
        _ms_message("%u more writes to freed blocks not shown", n - CORRUPT_MAX);
        corrupt_done++;
    }
    pthread_mutex_unlock(&lock);
    return 0;
}

/* A double free, or the free of a block's record that was never handed out. */
void _ms_misuse(const char *what, const void *p, const ms_meta_t *mp)
{
    const ms_meta_t m = *mp;           /* a copy: symbolizing may be handed this very block */
    static const char *const titles[] = { "allocated at", "first freed at" };
    const uint32_t stacks[] = { m.stack, m.free_stack };
    bool freed = m.state == MS_BLK_FREED;
    _ms_misuse_report(what, p, freed ? "a block already freed" : "not a block memshim handed out",
                      titles, stacks, freed ? 2 : 0);
}
