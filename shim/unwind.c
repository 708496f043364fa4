/* unwind.c - allocation stacks with libunwind.
 *
 * libunwind is loaded with dlopen(RTLD_LOCAL) in the constructor, never
 * linked: linked into a preload library its _Unwind_* and backtrace symbols
 * would interpose the program's own, and C++ exceptions then cost ~100x.
 * We use unw_backtrace(), which walks cached DWARF unwind rules (~110 ns for
 * ten frames here) rather than the unw_step loop (~3 us a frame), except
 * for a thread's first unwinds (step_backtrace, below).  Before
 * the constructor, and while memshim itself runs (the TLS guard), stacks
 * are not taken. */
#include <dlfcn.h>
#include <errno.h>
#include <stdlib.h>
#include <sys/auxv.h>
#include <sys/resource.h>
#include <ucontext.h>
#include <link.h>
#include <search.h>
#include <string.h>
#include <unistd.h>
#include "shim.h"

__thread int _ms_busy __attribute__((tls_model("initial-exec")));
__thread int _ms_no_unwind __attribute__((tls_model("initial-exec")));

static int (*p_backtrace)(void **, int);
/* The unw_step loop (x86-64): step_backtrace and the exit frame */
static int (*p_getcontext)(void *);
static int (*p_init_local)(void *, void *);
static int (*p_step)(void *);
static int (*p_get_reg)(void *, int, uintptr_t *);
static int (*p_is_signal_frame)(void *);
static size_t unw_tls_module;           /* libunwind's module of thread-local storage; 0: none */
static uintptr_t self_lo, self_hi;      /* memshim's own code: frames to hide */
static uintptr_t ldso_lo, ldso_hi;      /* the dynamic loader's code */

/* The code of the shared object mapped at eh (its ELF header, at its load
 * address), from its program headers: read in place, without the loader's
 * locks.  [*lo, *hi) stays as it was if eh is no ELF header. */
static void code_of(const ElfW(Ehdr) *eh, uintptr_t *lo, uintptr_t *hi)
{
    if (!eh || memcmp(eh->e_ident, ELFMAG, SELFMAG) != 0) return;
    const ElfW(Phdr) *ph = (const ElfW(Phdr) *)((const char *)eh + eh->e_phoff);
    for (unsigned i = 0; i < eh->e_phnum; i++)
        if (ph[i].p_type == PT_LOAD && (ph[i].p_flags & PF_X)) {
            *lo = (uintptr_t)eh + ph[i].p_vaddr;
            *hi = *lo + ph[i].p_memsz;
        }
}

/* The dynamic loader's code (AT_BASE). */
static void find_loader(void) { code_of((const ElfW(Ehdr) *)getauxval(AT_BASE), &ldso_lo, &ldso_hi); }

bool _ms_loader_code(uintptr_t a) { return a >= ldso_lo && a < ldso_hi; }

static void find_libc(void);

#define program_iterating _ms_program_iterating

void _ms_unwind_init(void)
{
    if (p_backtrace || _ms_confined) return;     /* libunwind probes memory with mincore */
    _ms_busy++;
    find_loader();
    self_lo = _ms_self()->code.start;
    self_hi = _ms_self()->code.end;
    int saved = errno;
    find_libc();
    _ms_unw_own = 1;                       /* memshim's own open: not the program's use (hook.c) */
    void *h = dlopen("libunwind.so.8", RTLD_NOW | RTLD_LOCAL);
    _ms_unw_own = 0;
    if (h) {
        _ms_hook_libunwind(h);             /* no pipe, no descriptor of the program's (hook.c) */
        /* Per-thread caches make unw_backtrace lock-free (where libunwind
         * was built with them: not Debian's, which falls back to one global
         * cache behind a lock, hook.c). */
        int (*set_policy)(void *, int) = (int (*)(void *, int))dlsym(h, "_ULx86_64_set_caching_policy");
        void **as = dlsym(h, "_ULx86_64_local_addr_space");
        if (set_policy && as) set_policy(*as, 2 /* UNW_CACHE_PER_THREAD */);
        p_backtrace = (int (*)(void **, int))dlsym(h, "unw_backtrace");
        if (p_backtrace && dlinfo(h, RTLD_DI_TLS_MODID, &unw_tls_module) != 0) unw_tls_module = 0;
#if defined(__x86_64__)
        p_getcontext = (int (*)(void *))dlsym(h, "_Ux86_64_getcontext");
        p_init_local = (int (*)(void *, void *))dlsym(h, "_ULx86_64_init_local");
        p_step = (int (*)(void *))dlsym(h, "_ULx86_64_step");
        p_get_reg = (int (*)(void *, int, uintptr_t *))dlsym(h, "_ULx86_64_get_reg");
        p_is_signal_frame = (int (*)(void *))dlsym(h, "_ULx86_64_is_signal_frame");
        if (!p_getcontext || !p_init_local || !p_get_reg || !p_is_signal_frame) p_step = NULL;
#endif
    }
    if (!p_backtrace)
        _ms_message("libunwind.so.8 not found (%s): leak reports will have no stacks",
                    dlerror() ? "dlopen failed" : "no unw_backtrace");
    _ms_busy--;
    errno = saved;
}

/* ---- a thread's first unwinds ------------------------------------------------ *
 * unw_backtrace keeps a trace cache for each thread that calls it: 256 KiB
 * mapped and written whole at the thread's first call, unmapped when the
 * thread ends.  Most threads unwind a few times only: the stack cache and
 * the frame sizes learnt (below) find their stacks without libunwind once
 * the process has seen them.  So a thread's first FEW_WALKS unwinds step
 * frame by frame (unw_step, with libunwind's per-thread cache of DWARF
 * rules, which lives in its thread-local storage), and only a thread that
 * keeps unwinding gets unw_backtrace and its trace cache.  A tracked
 * `sleep` or a program of short threads no longer maps 256 KiB a thread
 * for it.  Both give the same frames: the return addresses from the
 * caller's out, the first being the caller's own. */
#define FEW_WALKS 32
static __thread unsigned tl_walks __attribute__((tls_model("initial-exec")));

/* unw_backtrace also keeps a word of thread-local storage (its trace
 * cache's address).  libunwind, loaded with dlopen, has no place in the
 * threads' static TLS: glibc makes a thread's block of it at the thread's
 * first use, with malloc, and that first use must come from the thread
 * itself, outside a signal handler and outside the loader:
 *   - a handler's allocation that came in the middle of its thread's
 *     inline pop or push of a bin (which marks nothing: shim.h) had glibc's
 *     malloc take the block the thread was handing out, which the program
 *     then wrote and freed: libunwind read the free key as its cache's
 *     address and crashed (a 20 kHz timer's handler allocating amid main's
 *     mallocs, 2 runs in 450);
 *   - the loader bringing the thread's dynamic TLS up to date would start
 *     the same update again inside us (_ms_capture_miss_release).
 * So a thread keeps stepping past FEW_WALKS until a walk of its whole
 * stack meets neither a signal frame nor the loader's code; that walk
 * makes the block (tl_unw_ready) and the next ones use unw_backtrace. */
static __thread bool tl_unw_ready __attribute__((tls_model("initial-exec")));

#if defined(__x86_64__)
#define UNW_LOCAL_ONLY
#include <libunwind.h>

/* Up to `want` return addresses; with `unsafe`, the walk goes on to the
 * stack's end (at most 1,024 frames) and says whether a frame was a signal
 * handler's return or the loader's code. */
static MS_NOINLINE int step_backtrace(void **raw, int want, bool *unsafe)
{
    unw_context_t ctx;
    unw_cursor_t cur;
    int n = 0;
    if (p_getcontext(&ctx) != 0 || p_init_local(&cur, &ctx) != 0) return 0;
    for (int depth = 0; (n < want || (unsafe && depth < 1024)) && p_step(&cur) > 0; depth++) {
        uintptr_t a = 0;
        if (p_get_reg(&cur, UNW_REG_IP, &a) < 0) break;
        if (n < want) raw[n++] = (void *)a;
        if (unsafe && (_ms_loader_code(a) || p_is_signal_frame(&cur) > 0)) {
            *unsafe = true;
            unsafe = NULL;
        }
    }
    return n;
}

/* The calling thread's block of libunwind's storage, made (see above). */
extern void *__tls_get_addr(void *);
static void unw_storage_make(void)
{
    struct { size_t module, offset; } at = { unw_tls_module, 0 };
    if (unw_tls_module) (void)__tls_get_addr(&at);
}
#else
static int step_backtrace(void **raw, int want, bool *unsafe) { (void)raw; (void)want; (void)unsafe; return 0; }
static void unw_storage_make(void) { }
#endif

/* The caller's stack, memshim's own frames dropped, return addresses
 * moved back by one so that they name the call instruction's line. */
unsigned _ms_unwind(uintptr_t *ip, unsigned max)
{
    /* Frames are asked for as many as wanted plus memshim's own (their
     * number is learnt: unwinding costs ~90 instructions a frame, so frames
     * unwound only to be dropped are not cheap); when memshim's turn out
     * deeper than thought and the program's were cut short, once more. */
    static unsigned self_frames = 4;
    enum { CAP = MS_MAX_STACK + 16 };
    if (!p_backtrace || _ms_busy || __atomic_load_n(&_ms_confined, __ATOMIC_RELAXED) || program_iterating())
        return 0;
    void *raw[CAP];
    int saved = errno;                     /* libunwind's calls may set it */
    int n, skip, want;
    _ms_busy++;
    _ms_loader_enter();
    _ms_unw_nomask = _ms_unw_unshared();
    bool stepping = p_step && (tl_walks < FEW_WALKS || !tl_unw_ready);
    bool trial = stepping && tl_walks >= FEW_WALKS && !_ms_no_unwind, unsafe = false;
    for (;;) {
        unsigned hint = __atomic_load_n(&self_frames, __ATOMIC_RELAXED);
        want = (int)(max + hint < CAP ? max + hint : CAP);
        n = stepping ? step_backtrace(raw, want, trial ? &unsafe : NULL) : p_backtrace(raw, want);
        for (skip = 0; skip < n && (uintptr_t)raw[skip] >= self_lo && (uintptr_t)raw[skip] < self_hi;) skip++;
        if (n < want || (unsigned)skip <= hint || want == CAP) break;
        __atomic_store_n(&self_frames, (unsigned)skip, __ATOMIC_RELAXED);
    }
    if (trial && !unsafe) {                /* the thread's own, all of it: libunwind's storage now */
        unw_storage_make();
        tl_unw_ready = true;
    }
    _ms_unw_nomask = 0;
    _ms_loader_leave();
    _ms_busy--;
    tl_walks++;
    errno = saved;
    unsigned out = 0;
    for (int i = skip; i < n && out < max; i++) {
        uintptr_t a = (uintptr_t)raw[i];
        if (a < 4096) break;                   /* a bogus trailing frame */
        if (_ms_main_caller(a)) break;         /* main's caller: the C library's start-up below */
        ip[out++] = a - 1;
    }
    return out;
}


/* ---- the per-thread stack cache -------------------------------------------- *
 * A loop that allocates from one place asks for the same stack again and
 * again.  Each thread keeps the stacks it saw last, keyed by the return
 * address into malloc's caller and that caller's stack pointer, with the
 * stack slot where every later frame's return address was found.  A hit is
 * accepted only if each of those slots still holds the same return address:
 * then unwinding would walk the same chain, and ~100 ns of unwinding become
 * ~10 ns of comparisons.  Only a call made on the thread's own stack is
 * cached (not one in a handler on a sigaltstack), and every slot read lies
 * between its stack pointer and the thread's stack top (its TCB, or
 * __libc_stack_end for the main thread), so nothing outside the stack is
 * ever read.  A stack the cache does not hold is looked for next with the
 * frame sizes learnt (walk() below), and unwound by libunwind only when
 * that fails. */

#define SC_SPAN    4096              /* words from one frame's return slot to the next */
__thread ms_stack_cache_t *_ms_sc __attribute__((tls_model("initial-exec")));
extern void *__libc_stack_end;

/* The top of the calling thread's stack: its TCB (glibc puts it at the top
 * of the thread's stack mapping), or __libc_stack_end for the main thread. */
uintptr_t _ms_stack_top(void)
{
    return _ms_on_main_thread() ? (uintptr_t)__libc_stack_end : _ms_thread_pointer();
}

/* ---- memshim's own stack ------------------------------------------------------ *
 * A report is written on the stack of whichever thread asks for it: the one
 * that exits, calls memshim_leak_check() or frees a block twice.  That
 * stack may be a coroutine's (makecontext, often 64 KiB or less), a signal
 * handler's sigaltstack, or a thread's made small on purpose, and writing a
 * report takes more than that (/proc/self/maps read 64 KiB at a time,
 * symbolizing, buffers): exit() from a coroutine overflowed it.  So the
 * writing runs on a stack of memshim's own, mapped for the call from meta
 * memory (which the leak scan never takes for a root) with a guard page
 * below, and the two contexts at its top. */
#define OWN_STACK ((size_t)1 << 20)
typedef struct {
    ucontext_t back, there;
    int (*fn)(void *);
    void *arg;
    int rc, err;                                     /* fn's result, and errno as it left it */
} hop_t;

static void hop_entry(unsigned hi, unsigned lo)      /* makecontext passes ints */
{
    hop_t *h = (hop_t *)((uintptr_t)hi << 32 | lo);
    h->rc = h->fn(h->arg);
    h->err = errno;
}                                                    /* back to h->back (uc_link) */

int _ms_on_own_stack(int (*fn)(void *), void *arg)
{
    uint8_t *map = _ms_meta_alloc(OWN_STACK);
    hop_t *h = map ? (hop_t *)(map + OWN_STACK - ((sizeof(hop_t) + 63) & ~(size_t)63)) : NULL;
    if (!h || !_ms_os_guard(map, MS_OS_PAGE) || getcontext(&h->there) != 0) {
        if (map) _ms_meta_free(map, OWN_STACK);
        return fn(arg);                              /* out of memory: the program's stack it is */
    }
    h->fn = fn;
    h->arg = arg;
    h->err = errno;
    h->there.uc_stack.ss_sp = map + MS_OS_PAGE;
    h->there.uc_stack.ss_size = (size_t)((uint8_t *)h - map) - MS_OS_PAGE;
    h->there.uc_link = &h->back;
    makecontext(&h->there, (void (*)(void))hop_entry, 2, (unsigned)((uintptr_t)h >> 32), (unsigned)(uintptr_t)h);
    if (swapcontext(&h->back, &h->there) != 0) {
        _ms_meta_free(map, OWN_STACK);
        return fn(arg);
    }
    int rc = h->rc, err = h->err;
    _ms_meta_free(map, OWN_STACK);
    errno = err;
    return rc;
}

/* A thread's cache is ~34 KiB, a mapping of its own: unmapping it at every
 * thread's end costs the whole process a TLB shootdown, so the caches of
 * threads gone wait on a list for the next threads.  Their entries stay:
 * one matches only where the stack holds the very return addresses it
 * names (a new thread often runs on the old one's stack, glibc reusing
 * them), and its id, from the shared trace table, is then right. */
static pthread_mutex_t spare_lock = PTHREAD_MUTEX_INITIALIZER;
static ms_stack_cache_t  *spare;              /* linked through e[0].ra (spare_lock) */

/* The lowest address of the calling thread's own stack, below `top`:
 * glibc's record of a thread's stack (which pthread_getattr_np reads, with
 * an allocation of its own), and for the main thread its stack limit.  A
 * signal handler on an alternate stack runs below it; from there the
 * words up to the top cross other mappings, unreadable ones among them. */
static uintptr_t stack_low(uintptr_t top)
{
    int saved = errno;
    uintptr_t lo = top;                              /* not known: nothing cached */
    if (_ms_on_main_thread()) {
        struct rlimit r;
        size_t max = (size_t)8 << 20;
        if (getrlimit(RLIMIT_STACK, &r) == 0 && r.rlim_cur != RLIM_INFINITY && r.rlim_cur < ((rlim_t)1 << 32))
            max = (size_t)r.rlim_cur;
        lo = top > max ? top - max : 0;
    } else {
        pthread_attr_t a;
        void *addr = NULL;
        size_t size = 0;
        _ms_busy++;
        if (pthread_getattr_np(pthread_self(), &a) == 0) {
            if (pthread_attr_getstack(&a, &addr, &size) != 0) addr = NULL;
            pthread_attr_destroy(&a);
        }
        _ms_busy--;
        if (addr && (uintptr_t)addr < top) lo = (uintptr_t)addr;
    }
    errno = saved;
    return lo;
}

/* glibc's pthread_getattr_np holds the thread's own lock while it
 * allocates (the cpu set it reallocates, the attribute's extension it
 * callocs).  A thread whose first allocation is made in there must not ask
 * pthread_getattr_np for its stack (stack_low): it would wait for itself,
 * for ever.  So a thread's cache is made at its first stack taken from a
 * call outside the C library's code, or from the C library's code (strdup,
 * fopen...) once that stack, unwound without a cache, does not pass
 * through pthread_getattr_np.  The C library's code (from its program
 * headers) and pthread_getattr_np's (from its symbol) are found once, at
 * start-up. */
static uintptr_t libc_lo, libc_hi, getattr_lo, getattr_hi;

/* glibc's pthread_setspecific: the second-level arrays it allocates hold
 * the values of 32 keys each, memshim's libraries' and the program's
 * alike; one made for libunwind's key while memshim ran is the program's
 * too (track.c). */
static uintptr_t setspecific_lo, setspecific_hi;
bool _ms_tsd_array_site(uintptr_t ra) { return ra - setspecific_lo < setspecific_hi - setspecific_lo; }

/* glibc's tsearch(3): the nodes of its trees (setenv's among them) are the
 * blocks it allocates itself (the leak scan's tagged links, scan.c). */
static uintptr_t tsearch_lo, tsearch_hi;
bool _ms_tsearch_code(uintptr_t a) { return a - tsearch_lo < tsearch_hi - tsearch_lo; }

/* [*lo, *hi): the code of the C library's function at fn, from its symbol. */
static void function_of(const void *fn, uintptr_t *lo, uintptr_t *hi)
{
    Dl_info info;
    const ElfW(Sym) *sym = NULL;
    if (dladdr1(fn, &info, (void **)&sym, RTLD_DL_SYMENT) && sym && info.dli_saddr) {
        *lo = (uintptr_t)info.dli_saddr;
        *hi = *lo + (sym->st_size ? sym->st_size : 1);
    }
}

/* Whether a is in the C library's code: its range, once found; the loader
 * otherwise (dladdr scans a module's symbols: a program exporting 29,000,
 * as gcc's cc1 does, took 0.7 s over a profile's stacks). */
bool _ms_libc_code(uintptr_t a)
{
    if (libc_hi) return a - libc_lo < libc_hi - libc_lo;
    Dl_info di;
    return dladdr((void *)a, &di) && _ms_runtime_at((uintptr_t)di.dli_fbase) == MS_RT_LIBC;
}

static void find_libc(void)
{
    function_of((const void *)&pthread_setspecific, &setspecific_lo, &setspecific_hi);
    function_of((const void *)&tsearch, &tsearch_lo, &tsearch_hi);
    function_of((const void *)&pthread_getattr_np, &getattr_lo, &getattr_hi);
    Dl_info info;
    if (dladdr((const void *)&pthread_getattr_np, &info) && info.dli_fbase)
        code_of((const ElfW(Ehdr) *)info.dli_fbase, &libc_lo, &libc_hi);
}

/* spare_lock held by this thread (a fork from a handler must not wait for it:
 * init.c). */
__thread int _ms_unwind_in __attribute__((tls_model("initial-exec")));
static void spare_take(void) { _ms_unwind_in = 1; __atomic_signal_fence(__ATOMIC_SEQ_CST); pthread_mutex_lock(&spare_lock); }
static void spare_give(void)
{
    pthread_mutex_unlock(&spare_lock);
    __atomic_signal_fence(__ATOMIC_SEQ_CST);
    _ms_unwind_in = 0;
    _ms_signals_due();
}

static ms_stack_cache_t *cache_make(void)
{
    ms_stack_cache_t *c;
    _ms_sc = MS_SC_DEAD;               /* while it is made: stack_low() allocates */
    spare_take();
    if ((c = spare) != NULL) {
        spare = (ms_stack_cache_t *)c->e[0].ra;
        c->e[0] = (ms_sc_ent_t){ 0 };
        c->probing = 0;             /* its thread may have left from a handler inside a probe */
    }
    spare_give();
    if (!c && !(c = _ms_meta_alloc(sizeof *c))) { _ms_sc = NULL; return NULL; }
    c->top = _ms_stack_top();
    c->lo = stack_low(c->top);
    /* The chains it keeps from a thread gone whose slots do not all lie
     * below this thread's top are dropped: the probe reads a chain's slots
     * unchecked (shim.h, _ms_sc_chain_holds), and that thread's stack may
     * have reached higher, or been elsewhere. */
    for (unsigned i = 0; i < MS_SC_ENTRIES; i++) {
        ms_sc_ent_t *e = &c->e[i];
        if (e->depth >= 2 && e->sp + (uintptr_t)e->off[e->depth - 1] * 8 > c->top - 8) {
            e->id = 0;
            e->depth = 0;
        }
    }
    _ms_sc = c;
    return c;
}

void _ms_unwind_thread_exit(void)
{
    ms_stack_cache_t *c = _ms_sc;
    _ms_sc = MS_SC_DEAD;                 /* a dying thread does not make a new one */
    if (!c || c == MS_SC_DEAD) return;
    spare_take();
    c->e[0] = (ms_sc_ent_t){ .ra = (uintptr_t)spare };
    spare = c;
    spare_give();
}

void _ms_unwind_lock(void) { pthread_mutex_lock(&spare_lock); }       /* fork (init.c) */
static int frame_growing;              /* the frame-size table is being doubled (below) */
void _ms_unwind_unlock(bool child)
{
    if (child) {
        pthread_mutex_init(&spare_lock, NULL);
        frame_growing = 0;                  /* by a thread the child does not have */
    } else {
        pthread_mutex_unlock(&spare_lock);
    }
}

/* The set's entry to fill: an empty one, else the least recently used,
 * never `keep`. */
static ms_sc_ent_t *sc_victim(ms_sc_ent_t *set, const ms_sc_ent_t *keep)
{
    ms_sc_ent_t *v = NULL;
    for (unsigned w = 0; w < MS_SC_WAYS; w++) {
        ms_sc_ent_t *e = &set[w];
        if (e == keep) continue;
        if (!e->ra) return e;
        if (!v || e->used < v->used) v = e;
    }
    return v;
}

/* ---- frame sizes, learnt ---------------------------------------------------- *
 * At a given return address a function's frame has one size (unless it
 * uses alloca): the distance from the stack slot holding that return
 * address to the slot holding the next one out.  Each unwind teaches them
 * (locate() below), and the return address at which libunwind stopped is
 * marked as the outermost (FRAME_END).  A size is the last one found: the
 * search may also stop at a stale copy of the return address in the
 * frame's locals, so a size that changes does not tell alloca apart
 * (never walking through such return addresses made a tracked gcc -O2
 * 22% slower).  A table of (address << 16 | words) words in sets of four,
 * shared by all threads; a racing write loses one size, never a stack:
 * what the sizes give is only ever checked against the unwinder's word
 * (locate) or against a stack it gave before (walk).  A tracked gcc -O2
 * learns ~8,000 return addresses: in a direct-mapped table of 64 Ki words
 * (512 KiB) they pushed each other out, and 108,000 of its stacks went to
 * libunwind; in this one of 16 Ki (128 KiB), 71,000. */
#define FRAME_SETS 4096              /* 4 ways each: 128 KiB of .bss at most */
#define FRAME_WAYS 4
#define FRAME_END   MS_FRAME_END     /* libunwind's walk ends at this return address */
static uint64_t frame_sizes[FRAME_SETS][FRAME_WAYS] __attribute__((aligned(32)));

/* The table is used from its start, FRAME_FIRST sets (2 KiB) at first,
 * doubling when a quarter of its ways are taken (a set is then seldom
 * full, an entry seldom pushed out).  Hashed over all of it from the
 * start, the few hundred return addresses of a small program touched 108
 * of its 128 KiB, in every tracked process.  A return address's set is
 * the low bits of a 12-bit hash, so doubling moves an entry from set s to
 * s + n or leaves it.  Lookups racing with the move may miss an entry (the
 * stack is then unwound and the size learnt again), never read a wrong
 * one: an entry names its return address. */
#define FRAME_FIRST 64
static unsigned frame_nsets = FRAME_FIRST;     /* sets in use: a power of two (relaxed) */
static unsigned frame_filled;                  /* ways taken, all sets (relaxed) */

static inline unsigned frame_hash(uintptr_t ra) { return (unsigned)((ra * 0x9E3779B97F4A7C15ULL) >> 52); }

static inline uint64_t *frame_set(uintptr_t ra)
{
    return frame_sizes[frame_hash(ra) & (__atomic_load_n(&frame_nsets, __ATOMIC_RELAXED) - 1)];
}

static MS_NOINLINE void frame_grow(void)
{
    if (__atomic_exchange_n(&frame_growing, 1, __ATOMIC_ACQUIRE)) return;   /* another thread does it */
    unsigned n = __atomic_load_n(&frame_nsets, __ATOMIC_RELAXED);
    if (n < FRAME_SETS && __atomic_load_n(&frame_filled, __ATOMIC_RELAXED) > n * FRAME_WAYS / 4) {
        for (unsigned i = 0; i < n; i++)
            for (unsigned w = 0; w < FRAME_WAYS; w++) {
                uint64_t v = __atomic_load_n(&frame_sizes[i][w], __ATOMIC_RELAXED);
                uintptr_t ra = (uintptr_t)(v >> 16);     /* its return address (user space: 48 bits) */
                if (!v || !(frame_hash(ra) & n)) continue;
                __atomic_store_n(&frame_sizes[i + n][w], v, __ATOMIC_RELAXED);
                __atomic_store_n(&frame_sizes[i][w], 0, __ATOMIC_RELAXED);
            }
        __atomic_store_n(&frame_nsets, n * 2, __ATOMIC_RELAXED);
    }
    __atomic_store_n(&frame_growing, 0, __ATOMIC_RELEASE);
}

/* The entry saying that ra's frame is `words` words (or FRAME_END). */
static inline uint64_t frame_entry(uintptr_t ra, unsigned words)
{
    return (uint64_t)(ra & 0xffffffffffffULL) << 16 | (words & 0xffff);
}

/* (Whether entry v is return address ra's: _ms_frame_of, shim.h.) */

/* Words from the slot of return address ra to the next frame's, FRAME_END,
 * or 0: not known. */
static inline unsigned frame_words(uintptr_t ra)
{
    const uint64_t *set = frame_set(ra);
    uint64_t got = 0;                    /* the ways compared without a branch: which one */
#pragma GCC unroll 4                     /* holds ra is a coin toss a branch mispredicts */
    for (unsigned w = 0; w < FRAME_WAYS; w++) {
        uint64_t v = __atomic_load_n(&set[w], __ATOMIC_RELAXED);
        got |= v & -(uint64_t)_ms_frame_of(v, ra);
    }
    return (unsigned)(got & 0xffff);
}

/* The thread's own copy of the sizes its walks met last (its stack cache's
 * `frames`, direct-mapped): a walk reads one word a frame there, where the
 * shared table, four ways in sets all over its 128 KiB, stalled each frame
 * of a tracked gcc -O2 on a load from beyond the first-level cache.  What
 * the thread learns goes to both (frame_learn); what another thread learns
 * reaches this one's copy only when a walk through the old size fails and
 * the unwinder's stack is located again.  (Its slot: _ms_sc_frame_slot,
 * shim.h, where the cache's second probe reads it too.) */
static inline unsigned frame_words_at(ms_stack_cache_t *c, uintptr_t ra)
{
    uint64_t *slot = &c->frames[_ms_sc_frame_slot(ra)], v = *slot;
    if (MS_LIKELY(_ms_frame_of(v, ra))) return (unsigned)(v & 0xffff);
    unsigned g = frame_words(ra);
    if (g) *slot = frame_entry(ra, g);
    return g;
}

static inline void frame_learn_shared(uintptr_t ra, unsigned words)
{
    uint64_t *set = frame_set(ra), v = frame_entry(ra, words);
    unsigned w = 0;
    uint64_t o = 0;
    for (; w < FRAME_WAYS; w++) {
        o = __atomic_load_n(&set[w], __ATOMIC_RELAXED);
        if (!o || _ms_frame_of(o, ra)) break;
    }
    if (w == FRAME_WAYS) w = (unsigned)(ra >> 4) & (FRAME_WAYS - 1);   /* a full set: one goes */
    __atomic_store_n(&set[w], v, __ATOMIC_RELAXED);
    if (!o && __atomic_add_fetch(&frame_filled, 1, __ATOMIC_RELAXED) >
                  __atomic_load_n(&frame_nsets, __ATOMIC_RELAXED) * FRAME_WAYS / 4)
        frame_grow();
}

static inline void frame_learn(ms_stack_cache_t *c, uintptr_t ra, unsigned words)
{
    frame_learn_shared(ra, words);
    c->frames[_ms_sc_frame_slot(ra)] = frame_entry(ra, words);
}

/* The stack slot of each of the n frames' return addresses (the unwinder's
 * ip[i] + 1), pos[i]: where the frame sizes learnt put it, else searched
 * for within SC_SPAN words above the one before (frames of more than
 * 32 KiB are not followed, and a frame not on this stack, a signal
 * trampoline's, ends the search early) and its size learnt.  How many
 * frames were found: n, or fewer. */
static unsigned locate(const ms_site_t *site, ms_stack_cache_t *c, const uintptr_t *ip, unsigned n,
                       uintptr_t *pos)
{
    pos[0] = site->sp - 8;
    for (unsigned i = 1; i < n; i++) {
        uintptr_t want = ip[i] + 1, prev = pos[i - 1], at = prev;
        unsigned g = frame_words_at(c, ip[i - 1] + 1);      /* the walk's view: a stale size is learnt again */
        if (g && g != FRAME_END) at = prev + (uintptr_t)g * 8;
        if (at == prev || at + 8 > c->top || *(const uintptr_t *)at != want) {
            uintptr_t end = c->top - prev > SC_SPAN * 8 ? prev + SC_SPAN * 8 : c->top;
            for (at = prev + 8; at + 8 <= end && *(const uintptr_t *)at != want; at += 8) {}
            if (at + 8 > end) return i;
            frame_learn(c, ip[i - 1] + 1, (unsigned)((at - prev) / 8));
        }
        pos[i] = at;
    }
    return n;
}

/* The stack as the frame sizes learnt give it, without the unwinder: from
 * the caller's return address, each next one where its frame's size puts
 * it, up to max frames or one marked outermost.  Its frames (as
 * _ms_unwind() gives them: return addresses less one), slots and hash
 * (_ms_ips_hash_add, taken as it goes), or 0 when a size is not known or
 * leads off the stack.  Only a stack the unwinder gave before is taken
 * (the caller looks its hash up): words that merely look like return
 * addresses (alloca'd space, a stale frame) would have to spell out a
 * whole known stack, to its 64-bit hash. */
static unsigned walk(const ms_site_t *site, ms_stack_cache_t *c, uintptr_t *ip, uintptr_t *pos,
                     unsigned max, uint64_t *hash)
{
    const uintptr_t last = c->top - 8;           /* a local: the stores below may alias c */
    uintptr_t at = site->sp - 8, ra = site->ra;
    uint64_t h = MS_IPS_HASH0;
    unsigned i = 0;
    for (;;) {
        ip[i] = ra - 1;
        pos[i] = at;
        h = _ms_ips_hash_add(h, ra - 1);
        if (++i == max) break;
        unsigned g = frame_words_at(c, ra);
        if (MS_UNLIKELY(g - 1 >= FRAME_END - 1)) {             /* not known, or the outermost */
            if (g == FRAME_END) break;
            return 0;
        }
        at += (uintptr_t)g * 8;
        if (at > last) return 0;
        ra = *(const uintptr_t *)at;
    }
    *hash = _ms_ips_hash_end(h, i);
    return i;
}

/* The id of the stored stack of hash h, or 0: from the thread's own
 * direct-mapped memory of the stacks its walks found, else from the stack
 * table, whose answer it keeps.  A hash names one stack for good, so what
 * it holds never goes stale.  A site reached by many chains of callers
 * (cfrac's allocator, called from every arithmetic routine; espresso's
 * recursion) is walked at many calls, and the stack table (8 MiB of
 * slots for espresso's 332,000 stacks) missed the processor's caches at
 * each.  A memory of 8,192 instead of 1,024 took espresso's lookups in the
 * table from 19.5 M to 11.7 M but not its time (9.78 s against 9.81 s,
 * medians of 5 paired runs), and would cost each thread 112 KiB more. */
static inline uint32_t known(ms_stack_cache_t *c, uint64_t h)
{
    ms_sc_known_t *k = &c->known[(h ^ h >> 29) & (MS_SC_KNOWN - 1)];
    if (k->hash == h) return (uint32_t)k->id;
    uint32_t id = _ms_stack_find(h);
    if (id) *k = (ms_sc_known_t){ h, id };
    return id;
}

/* Stack libunwind may take (its cursor, DWARF state and the loader's
 * callbacks: ~10 KiB seen): a thread with less left below the call, such as
 * one made with PTHREAD_STACK_MIN (16 KiB), records the call site alone
 * rather than overflow the stack the program sized for itself. */
#define UNWIND_ROOM ((uintptr_t)16 << 10)

/* The capture under way found its stack by the frame sizes learnt, with
 * neither libunwind nor anything else that goes deep: what it leaves below
 * its caller is shallow (SCRUB_SHALLOW, below). */
static __thread bool walked __attribute__((tls_model("initial-exec")));

/* The slow half: the stack from the learnt frame sizes if it is one seen
 * before, else from libunwind (interned, and its frame sizes learnt); then
 * remembered in the cache, so that the next call from here is checked
 * cheaply. */
static MS_NOINLINE uint32_t capture_miss(const ms_site_t *site, ms_stack_cache_t *c, bool cacheable)
{
    uintptr_t ip[MS_MAX_STACK], pos[MS_MAX_STACK];
    unsigned max = _ms_opt.stack_depth, n;
    uint32_t id = 0;
    uint64_t h = 0;
    ip[0] = 0;                                      /* read only when n > 0; says so to GCC */
    if (cacheable && !_ms_busy && (n = walk(site, c, ip, pos, max, &h)) && (id = known(c, h))) {
        /* a stack seen before, found again in ~20 ns a frame less */
        walked = true;
    } else if (_ms_no_unwind || program_iterating() ||  /* the call site alone (_ms_capture_miss_release) */
               (cacheable && site->sp - c->lo < UNWIND_ROOM)) {   /* no room left for libunwind */
        uintptr_t at = site->ra - 1;
        return _ms_stack_intern(&at, 1);
    } else {
        n = _ms_unwind(ip, max);
        id = _ms_stack_intern(ip, n);
        if (!cacheable || !id || !n || ip[0] + 1 != site->ra) return id;
        if (locate(site, c, ip, n, pos) < n) return id;     /* not on this stack: not cacheable */
        if (n < max) frame_learn(c, ip[n - 1] + 1, FRAME_END);
    }
    /* A handler that came while its thread read the cache (shim.h,
     * _ms_sc_probe) writes nothing there. */
    if (n > MS_SC_DEPTH || c->probing) return id;
    ms_sc_ent_t *set = _ms_sc_set(c, site->ra, site->sp), *m = NULL;
    for (unsigned w = 0; w < MS_SC_WAYS && !m; w++)
        if (set[w].ra == site->ra && set[w].sp == site->sp) m = &set[w];
    if (!m) {
        /* A site not seen lately.  Most such sites are met once (a free deep
         * in a recursive walk, a one-off allocation in start-up code): they
         * get an entry only when they come back. */
        ms_sc_ent_t *e = sc_victim(set, NULL);
        e->ra = site->ra;             /* its header only: no chain (id 0), so off[] and want[] are unread */
        e->sp = site->sp;
        e->id = 0;
        e->depth = 0;
        e->fails = 1;
        e->used = ++c->clock;
        return id;
    }
    /* This very site again, reached through another chain of callers (or
     * not cacheable last time).  The chain goes in the site's entry if that
     * holds none yet (or one from before a module was unloaded), else in
     * the site's second set, chosen by the chain's caller (_ms_sc_set2): a
     * site called from many places, as an allocator's wrapper is, keeps
     * their chains there, spread over the cache.  A site with one frame
     * has no caller to tell its chains apart by: its own set takes the
     * chain at its 2nd, 4th ... 64th miss, then at every 64th (a site
     * whose stacks keep changing would be refilled for nothing). */
    unsigned f = ++m->fails;
    /* each offset must fit its 16 bits: the slots rise frame by frame (walk
     * and locate step up the stack), so the last is the farthest */
    if (n > 1 && (pos[n - 1] - site->sp) / 8 > UINT16_MAX) return id;
    ms_sc_ent_t *e;
    if (!m->id || m->epoch != __atomic_load_n(&_ms_module_epoch, __ATOMIC_RELAXED)) e = m;
    else if (n >= 2) e = sc_victim(_ms_sc_set2(c, site, ip[1] + 1), m);
    else if ((f & (f - 1)) && (f & 63)) return id;
    else e = sc_victim(set, m);
    if (e != m) e->fails = m->fails;
    e->ra = site->ra;
    e->sp = site->sp;
    e->used = ++c->clock;
    for (unsigned i = 1; i < n; i++) {
        e->off[i] = (uint16_t)((pos[i] - site->sp) / 8);
        e->want[i] = ip[i] + 1;
    }
    e->depth = (uint16_t)n;
    e->epoch = __atomic_load_n(&_ms_module_epoch, __ATOMIC_ACQUIRE);
    e->id = id;
    return id;
}

/* A call of a thread without a cache yet (see find_libc).  Not while
 * memshim itself allocates (libunwind's thread-local data, which the loader
 * allocates inside an unwind), nor for the loader's calls (_ms_no_unwind),
 * nor under a seccomp filter that may kill (init.c; pthread_getattr_np asks
 * the kernel for the thread's cpu set): those are taken without one, and
 * the cache waits. */
static MS_NOINLINE uint32_t first_capture(const ms_site_t *site)
{
    if (_ms_busy || _ms_no_unwind || __atomic_load_n(&_ms_confined, __ATOMIC_RELAXED))
        return capture_miss(site, NULL, false);
    if (site->ra - libc_lo >= libc_hi - libc_lo) {          /* the program's call */
        ms_stack_cache_t *c = cache_make();
        return capture_miss(site, c, c && _ms_sc_covers(c, site));
    }
    uintptr_t ip[MS_MAX_STACK];
    unsigned n = _ms_unwind(ip, _ms_opt.stack_depth);
    bool in_getattr = false;
    for (unsigned i = 0; i < n; i++) in_getattr |= ip[i] + 1 - getattr_lo < getattr_hi - getattr_lo;
    if (n && !in_getattr) cache_make();                     /* for the next call */
    return _ms_stack_intern(ip, n);
}

/* What the inline hit path (shim.h) did not find.  A signal handler that
 * allocates while its thread is in here, or holds one of the allocator's
 * locks (_ms_held, shim.h), goes without a stack (id 0): a fork in another
 * thread, taking every lock, would wait for the thread while the handler
 * waited for the fork in the loader guard or the stack table's lock (a
 * daemon whose SIGCHLD handler logs while another thread forks). */
static __thread int capturing __attribute__((tls_model("initial-exec")));
__thread int _ms_held;                    /* shim.h: the allocator's locks this thread holds */
__thread ms_held_t _ms_held_set;          /* shim.h: which */

/* What a walk leaves below its caller's frame: libunwind's context and
 * cursor, and the callee-saved registers its functions pushed, among them
 * the address of the block being recorded, which the allocator keeps in
 * one while it takes the stack.  The program's frames may later lie there,
 * with slots they never write (a buffer given to read(), say): a thread
 * stopped in such a frame by the leak scan showed its lost block as
 * reachable from "_ms_capture_miss", every time; the main thread waiting
 * in exit() for a worker's, in 40 runs of 300.  So what the walk used is
 * cleared as it returns, its own frame's saved registers included, where
 * the thread's stack has room.  How deep depends on the path: with
 * libunwind, SCRUB_DEEP (a walk went 6.9 KiB deep at most, measured on
 * gcc, perl, git, python3, sqlite3 and the tests' programs; libunwind is
 * given UNWIND_ROOM; its context holds every register); without it (the
 * frame sizes learnt, the stack table, the cache), SCRUB_SHALLOW: on
 * x86-64 nothing, the stub around the walk having saved the callee-saved
 * registers in its frame and zeroed them (the walk itself reads only return
 * addresses and memshim's tables), elsewhere 2 KiB (1.2 KiB was the most
 * measured on the same programs).  Clearing 8 KiB at every miss was 7% of
 * a tracked gcc -O2's time, 2 KiB 15% of a tracked cfrac's.  The fixture
 * stale_below checks both paths (its walked- modes).  On x86-64 the stub
 * clears; elsewhere a function called after the walk, which leaves the
 * walk's own frame, and clears SCRUB_DEEP always. */
#define SCRUB_DEEP    ((uintptr_t)8 << 10)
#if defined(__x86_64__)
#define SCRUB_SHALLOW ((uintptr_t)0)     /* the stub below: nothing of the program's there */
#else
#define SCRUB_SHALLOW ((uintptr_t)2 << 10)
#endif

static uint64_t scrub_words(void)
{
    const ms_stack_cache_t *c = _ms_sc;
    uintptr_t here = (uintptr_t)__builtin_frame_address(0);
    if ((uintptr_t)c > (uintptr_t)MS_SC_DEAD && here < c->top && here > c->lo + SCRUB_DEEP + UNWIND_ROOM / 4)
        return (walked ? SCRUB_SHALLOW : SCRUB_DEEP) / 8;
    return 0;
}

/* The walk: the stack id in the low half, words to clear in the high. */
MS_HIDDEN MS_NOINLINE uint64_t _ms_capture_miss_walk(const ms_site_t *site)
{
    if (capturing || _ms_held) return 0;
    capturing = 1;
    walked = false;
    __atomic_signal_fence(__ATOMIC_SEQ_CST);
    ms_stack_cache_t *c = _ms_sc;
    uint32_t id;
    if (MS_UNLIKELY(c == NULL)) id = first_capture(site);
    else {
        if (c == MS_SC_DEAD) c = NULL;
        id = capture_miss(site, c, c && _ms_sc_covers(c, site));
    }
    uint64_t words = scrub_words();
    __atomic_signal_fence(__ATOMIC_SEQ_CST);
    capturing = 0;
    return words << 32 | id;
}

#if defined(__x86_64__)
/* The stub keeps a frame pointer, so that its CFI holds while the stack
 * pointer moves by the walk's answer.  The block's address reaches the
 * walk's frames only in the callee-saved registers its functions push (the
 * allocator keeps it in one while it takes the stack); the stub saves them
 * in its own frame and zeroes them for the walk, so that a walk that needs
 * no libunwind leaves nothing of the program's below (SCRUB_SHALLOW 0:
 * clearing 2 KiB at each such walk was 15% of a tracked cfrac's time).
 * After the call the registers come back and the save area is cleared with
 * whatever the walk asks for: the stack pointer first goes down over it,
 * since below the stack pointer it would not be stack to valgrind, which
 * grows a thread's stack only down to it (a program run preloaded under
 * valgrind was killed by the write).  The slot where rbp was saved is
 * cleared last, just below the caller's stack pointer. */
__asm__(".pushsection .text\n"
        ".globl _ms_capture_miss\n"
        ".hidden _ms_capture_miss\n"
        ".type _ms_capture_miss, @function\n"
        "_ms_capture_miss:\n"
        ".cfi_startproc\n"
        "    push %rbp\n"
        ".cfi_adjust_cfa_offset 8\n"
        ".cfi_offset %rbp, -16\n"
        "    mov %rsp, %rbp\n"
        ".cfi_def_cfa_register %rbp\n"
        "    push %rbx\n"
        ".cfi_offset %rbx, -24\n"
        "    push %r12\n"
        ".cfi_offset %r12, -32\n"
        "    push %r13\n"
        ".cfi_offset %r13, -40\n"
        "    push %r14\n"
        ".cfi_offset %r14, -48\n"
        "    push %r15\n"
        ".cfi_offset %r15, -56\n"
        "    sub $8, %rsp\n"
        "    xor %ebx, %ebx\n"
        "    xor %r12d, %r12d\n"
        "    xor %r13d, %r13d\n"
        "    xor %r14d, %r14d\n"
        "    xor %r15d, %r15d\n"
        "    call _ms_capture_miss_walk\n"
        "    mov -8(%rbp), %rbx\n"
        ".cfi_restore %rbx\n"
        "    mov -16(%rbp), %r12\n"
        ".cfi_restore %r12\n"
        "    mov -24(%rbp), %r13\n"
        ".cfi_restore %r13\n"
        "    mov -32(%rbp), %r14\n"
        ".cfi_restore %r14\n"
        "    mov -40(%rbp), %r15\n"
        ".cfi_restore %r15\n"
        "    mov %rax, %rcx\n"
        "    shr $32, %rcx\n"
        "    add $6, %rcx\n"              /* and the save area */
        "    mov %eax, %edx\n"
        "    lea (,%rcx,8), %rsi\n"
        "    mov %rbp, %rsp\n"
        "    sub %rsi, %rsp\n"
        "    mov %rsp, %rdi\n"
        "    xor %eax, %eax\n"
        "    rep stosq\n"
        "    mov %rbp, %rsp\n"
        "    pop %rbp\n"
        ".cfi_def_cfa %rsp, 8\n"
        ".cfi_restore %rbp\n"
        "    movq $0, -8(%rsp)\n"
        "    mov %edx, %eax\n"
        "    ret\n"
        ".cfi_endproc\n"
        ".size _ms_capture_miss, .-_ms_capture_miss\n"
        ".popsection\n");
#else
static MS_NOINLINE void scrub_below(void)
{
    char a[SCRUB_DEEP];
    memset(a, 0, sizeof a);
    __asm__ volatile("" : : "r"(a) : "memory");     /* the stores are the point */
}

uint32_t _ms_capture_miss(const ms_site_t *site)
{
    uint64_t r = _ms_capture_miss_walk(site);
    if (r >> 32) scrub_below();
    return (uint32_t)r;
}
#endif

/* The same for the stack of a free or realloc.  When the dynamic loader
 * makes that call it may be bringing the thread's dynamic TLS up to date
 * (_dl_update_slotinfo: the vector resized by realloc, the blocks of
 * unloaded modules freed), and libunwind's own thread-local data, reached
 * through __tls_get_addr, would have it start the same update again inside
 * us: the same block reallocated or freed twice, and the program aborted.
 * Its stack is then only what the cache and the walk know, else its call
 * site alone. */
uint32_t _ms_capture_miss_release(const ms_site_t *site)
{
    if (!_ms_loader_code(site->ra)) return _ms_capture_miss(site);
    _ms_no_unwind++;
    uint32_t id = _ms_capture_miss(site);
    _ms_no_unwind--;
    return id;
}

/* ---- the program's frame under exit() ---------------------------------------- *
 * At exit memshim runs as a destructor, called by the dynamic loader's
 * _dl_fini from libc's exit().  The live part of this thread's stack is the
 * program's: from the first frame, walking out, whose code is neither
 * memshim's, libc's nor the loader's (the function that called exit(), or
 * _start when main returned).  Its stack pointer and the callee-saved
 * registers as restored for it are what the leak scan takes as roots. */
#if defined(__x86_64__)
/* Whether code address a is memshim's, the C library's or the loader's:
 * their code ranges, found at start-up; dladdr only for what they miss
 * (it searches the module's symbols: the twelve frames of a small
 * program's exit took 0.4 M instructions, its start-up 0.7 M). */
static bool runtime_code(uintptr_t a)
{
    if (a >= self_lo && a < self_hi) return true;
    if (libc_hi && ldso_hi) return _ms_libc_code(a) || _ms_loader_code(a);
    Dl_info di;
    return dladdr((void *)a, &di) && _ms_runtime_at((uintptr_t)di.dli_fbase) != MS_RT_NONE;
}

bool _ms_unwind_exit_frame(ms_scan_self_t *self)
{
    /* the unw_step loop's functions (_ms_unwind_init); libunwind would wait for the loader */
    if (!p_step || program_iterating()) return false;
    static const int saved[] = { UNW_X86_64_RBX, UNW_X86_64_RBP, UNW_X86_64_R12,
                                 UNW_X86_64_R13, UNW_X86_64_R14, UNW_X86_64_R15 };
    unw_context_t ctx;
    unw_cursor_t cur;
    bool ok = false;
    _ms_busy++;
    _ms_loader_enter();
    if (p_getcontext(&ctx) == 0 && p_init_local(&cur, &ctx) == 0) {
        for (unsigned depth = 0; depth < 512; depth++) {
            unw_word_t ip = 0, sp = 0;
            if (p_get_reg(&cur, UNW_REG_IP, &ip) < 0 || p_get_reg(&cur, UNW_REG_SP, &sp) < 0) break;
            self->sp = sp;
            self->pc = ip;
            ok = true;
            bool exit_path = ip && runtime_code(ip - 1);
            if (!exit_path) {
                self->nregs = 0;
                for (unsigned i = 0; i < sizeof saved / sizeof *saved; i++) {
                    unw_word_t v = 0;
                    if (p_get_reg(&cur, saved[i], &v) == 0) self->regs[self->nregs++] = v;
                }
                break;
            }
            if (p_step(&cur) <= 0) break;      /* outermost: nothing of the program here */
        }
    }
    _ms_loader_leave();
    _ms_busy--;
    return ok;
}
#else
bool _ms_unwind_exit_frame(ms_scan_self_t *self) { (void)self; return false; }
#endif
