/* unwind.c - allocation stacks with libunwind.
 *
 * libunwind is loaded with dlopen(RTLD_LOCAL) in the constructor, never
 * linked: linked into a preload library its _Unwind_* and backtrace symbols
 * would interpose the program's own, and C++ exceptions then cost ~100x.
 * We use unw_backtrace(), which walks cached DWARF unwind rules (~110 ns for
 * ten frames here) rather than the unw_step loop (~3 us a frame).  Before
 * the constructor, and while memshim itself runs (the TLS guard), stacks
 * are not taken. */
#include <dlfcn.h>
#include <errno.h>
#include <stdlib.h>
#include <sys/auxv.h>
#include <link.h>
#include <string.h>
#include <unistd.h>
#include "shim.h"

__thread int _ms_busy __attribute__((tls_model("initial-exec")));

static int (*p_backtrace)(void **, int);
static void *unw_lib;                   /* libunwind's handle, for the exit frame */
static uintptr_t self_lo, self_hi;      /* memshim's own code: frames to hide */

void _ms_unwind_init(void)
{
    if (p_backtrace) return;
    _ms_busy++;
    self_lo = _ms_self()->code.start;
    self_hi = _ms_self()->code.end;
    int saved = errno;
    void *h = dlopen("libunwind.so.8", RTLD_NOW | RTLD_LOCAL);
    if (h) {
        _ms_hook_libunwind(h);             /* no pipe, no descriptor of the program's (hook.c) */
        /* Per-thread caches make unw_backtrace lock-free. */
        int (*set_policy)(void *, int) = (int (*)(void *, int))dlsym(h, "_ULx86_64_set_caching_policy");
        void **as = dlsym(h, "_ULx86_64_local_addr_space");
        if (set_policy && as) set_policy(*as, 2 /* UNW_CACHE_PER_THREAD */);
        p_backtrace = (int (*)(void **, int))dlsym(h, "unw_backtrace");
        unw_lib = h;
    }
    if (!p_backtrace)
        _ms_message("libunwind.so.8 not found (%s): leak reports will have no stacks",
                    dlerror() ? "dlopen failed" : "no unw_backtrace");
    _ms_busy--;
    errno = saved;
}

/* ---- the loader's lock and fork ------------------------------------------------ *
 * glibc's dl_iterate_phdr holds the loader's write lock, which fork() does
 * not reset in the child: a thread inside it while another thread forks
 * leaves the child a lock nobody will release, and the child hangs at its
 * first unwind.  Every call memshim makes that may iterate the loaded
 * objects -- libunwind's unwinding, the scan's look-up of thread-local
 * storage, dlclose's look-up of the module -- holds this guard shared; fork's
 * prepare handler (init.c) takes it exclusively, so none is under way when
 * the process forks.  Writers are preferred, so a steady stream of unwinding
 * threads cannot hold a fork off. */
static pthread_rwlock_t loader_guard;
static pthread_once_t   loader_once = PTHREAD_ONCE_INIT;

static void loader_guard_init(void)
{
    pthread_rwlockattr_t a;
    pthread_rwlockattr_init(&a);
    pthread_rwlockattr_setkind_np(&a, PTHREAD_RWLOCK_PREFER_WRITER_NONRECURSIVE_NP);
    pthread_rwlock_init(&loader_guard, &a);
    pthread_rwlockattr_destroy(&a);
}

void _ms_loader_enter(void) { pthread_once(&loader_once, loader_guard_init); pthread_rwlock_rdlock(&loader_guard); }
void _ms_loader_leave(void) { pthread_rwlock_unlock(&loader_guard); }
void _ms_loader_lock(void)  { pthread_once(&loader_once, loader_guard_init); pthread_rwlock_wrlock(&loader_guard); }
void _ms_loader_unlock(bool child)
{
    if (child) loader_guard_init();
    else pthread_rwlock_unlock(&loader_guard);
}

/* The caller's stack, memshim's own frames dropped, return addresses
 * moved back by one so that they name the call instruction's line. */
unsigned _ms_unwind(uintptr_t *ip, unsigned max)
{
    if (!p_backtrace || _ms_busy) return 0;
    void *raw[MS_MAX_STACK + 8];
    int saved = errno;                     /* libunwind's calls may set it */
    _ms_busy++;
    _ms_loader_enter();
    int n = p_backtrace(raw, (int)(max + 8 < MS_MAX_STACK + 8 ? max + 8 : MS_MAX_STACK + 8));
    _ms_loader_leave();
    _ms_busy--;
    errno = saved;
    int skip = 0;
    while (skip < n && (uintptr_t)raw[skip] >= self_lo && (uintptr_t)raw[skip] < self_hi) skip++;
    unsigned out = 0;
    for (int i = skip; i < n && out < max; i++) {
        uintptr_t a = (uintptr_t)raw[i];
        if (a < 4096) break;                   /* a bogus trailing frame */
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
 * ~10 ns of comparisons.  Slots are searched between the caller's stack
 * pointer and the thread's stack top (its TCB, or __libc_stack_end for the
 * main thread), so nothing outside the stack is ever read. */

#define SC_ENTRIES 128
#define SC_DEPTH   24                /* deeper stacks are not cached */
typedef struct {
    uintptr_t ra, sp;
    uint32_t  id;
    uint16_t  depth;
    uint16_t  fails;                 /* misses at this very site since it was new */
    unsigned  epoch;                 /* _ms_module_epoch when cached */
    uint16_t  off[SC_DEPTH];         /* slot of frame i, in words above sp */
    uintptr_t want[SC_DEPTH];        /* the return address expected there */
} sc_ent;
typedef struct {
    sc_ent    e[SC_ENTRIES];
    uintptr_t top;                 /* highest stack address we may read */
} stack_cache_t;

#define SC_DEAD ((stack_cache_t *)1)
static __thread stack_cache_t *tl_sc __attribute__((tls_model("initial-exec")));
extern void *__libc_stack_end;

/* The top of the calling thread's stack: its TCB (glibc puts it at the top
 * of the thread's stack mapping), or __libc_stack_end for the main thread. */
uintptr_t _ms_stack_top(void)
{
    return _ms_os_gettid() == getpid() ? (uintptr_t)__libc_stack_end : _ms_thread_pointer();
}

static stack_cache_t *cache_get(void)
{
    stack_cache_t *c = tl_sc;
    if (MS_LIKELY(c != NULL)) return c == SC_DEAD ? NULL : c;
    c = _ms_meta_alloc(sizeof *c);
    if (!c) return NULL;
    c->top = _ms_stack_top();
    tl_sc = c;
    return c;
}

void _ms_unwind_thread_exit(void)
{
    stack_cache_t *c = tl_sc;
    tl_sc = SC_DEAD;                 /* a dying thread does not make a new one */
    if (c && c != SC_DEAD) _ms_meta_free(c, sizeof *c);
}

static size_t sc_hash(uintptr_t ra, uintptr_t sp)
{
    return (size_t)(((ra ^ (sp << 7)) * 0x9E3779B97F4A7C15ULL) >> 57) & (SC_ENTRIES - 1);
}

/* The slow half: unwind, intern, and remember where each frame's return
 * address lies so the next call from here can be checked cheaply. */
static MS_NOINLINE uint32_t capture_miss(const ms_site_t *site, stack_cache_t *c, bool cacheable)
{
    uintptr_t ip[MS_MAX_STACK];
    ip[0] = 0;                                      /* read only when n > 0; says so to GCC */
    unsigned n = _ms_unwind(ip, _ms_opt.stack_depth);
    uint32_t id = _ms_stack_intern(ip, n);
    if (!cacheable || !id || !n || n > SC_DEPTH || ip[0] + 1 != site->ra) return id;
    sc_ent *e = &c->e[sc_hash(site->ra, site->sp)];
    if (e->ra == site->ra && e->sp == site->sp) {
        /* This very site, reached through another chain of callers (or not
         * cacheable last time).  A site whose stacks keep changing (the
         * frees of a recursive walk over a tree) would have its slots
         * searched again at every call for nothing: search again only at
         * its 1st, 2nd, 4th ... 64th miss, then at every 64th. */
        unsigned f = ++e->fails;
        if ((f & (f - 1)) && (f & 63)) return id;
    } else {
        e->ra = site->ra;
        e->sp = site->sp;
        e->fails = 0;
    }
    uintptr_t pos = site->sp;
    e->id = 0;
    for (unsigned i = 1; i < n; i++) {              /* in order, below the stack top */
        while (pos + 8 <= c->top && *(const uintptr_t *)pos != ip[i] + 1) pos += 8;
        if (pos + 8 > c->top || (pos - site->sp) / 8 > UINT16_MAX) return id;   /* not cacheable */
        e->off[i] = (uint16_t)((pos - site->sp) / 8);
        e->want[i] = ip[i] + 1;
        pos += 8;
    }
    e->depth = n;
    e->epoch = __atomic_load_n(&_ms_module_epoch, __ATOMIC_ACQUIRE);
    e->id = id;
    return id;
}

uint32_t _ms_capture(const ms_site_t *site)
{
    stack_cache_t *c = cache_get();
    bool cacheable = c && site->sp < c->top && c->top - site->sp < ((size_t)8 << 20);
    if (MS_LIKELY(cacheable)) {
        const sc_ent *e = &c->e[sc_hash(site->ra, site->sp)];
        if (e->ra == site->ra && e->sp == site->sp && e->id &&
            e->epoch == __atomic_load_n(&_ms_module_epoch, __ATOMIC_RELAXED)) {
            unsigned i = 1, n = e->depth;
            for (; i < n; i++)
                if (*(const uintptr_t *)(site->sp + (uintptr_t)e->off[i] * 8) != e->want[i]) break;
            if (i == n) return e->id;
        }
    }
    return capture_miss(site, c, cacheable);
}

/* ---- the program's frame under exit() ---------------------------------------- *
 * At exit memshim runs as a destructor, called by the dynamic loader's
 * _dl_fini from libc's exit().  The live part of this thread's stack is the
 * program's: from the first frame, walking out, whose code is neither
 * memshim's, libc's nor the loader's (the function that called exit(), or
 * _start when main returned).  Its stack pointer and the callee-saved
 * registers as restored for it are what the leak scan takes as roots. */
#if defined(__x86_64__)
#define UNW_LOCAL_ONLY
#include <libunwind.h>

bool _ms_unwind_exit_frame(ms_scan_self_t *self)
{
    if (!unw_lib) return false;
    int (*getcontext_)(unw_context_t *) = (int (*)(unw_context_t *))dlsym(unw_lib, "_Ux86_64_getcontext");
    int (*init)(unw_cursor_t *, unw_context_t *) =
        (int (*)(unw_cursor_t *, unw_context_t *))dlsym(unw_lib, "_ULx86_64_init_local");
    int (*step)(unw_cursor_t *) = (int (*)(unw_cursor_t *))dlsym(unw_lib, "_ULx86_64_step");
    int (*get_reg)(unw_cursor_t *, int, unw_word_t *) =
        (int (*)(unw_cursor_t *, int, unw_word_t *))dlsym(unw_lib, "_ULx86_64_get_reg");
    if (!getcontext_ || !init || !step || !get_reg) return false;
    Dl_info di;
    const void *libc = dladdr((void *)(uintptr_t)&exit, &di) ? di.dli_fbase : NULL;
    const void *ldso = (const void *)getauxval(AT_BASE);
    static const int saved[] = { UNW_X86_64_RBX, UNW_X86_64_RBP, UNW_X86_64_R12,
                                 UNW_X86_64_R13, UNW_X86_64_R14, UNW_X86_64_R15 };
    unw_context_t ctx;
    unw_cursor_t cur;
    bool ok = false;
    _ms_busy++;
    _ms_loader_enter();
    if (getcontext_(&ctx) == 0 && init(&cur, &ctx) == 0) {
        for (unsigned depth = 0; depth < 512; depth++) {
            unw_word_t ip = 0, sp = 0;
            if (get_reg(&cur, UNW_REG_IP, &ip) < 0 || get_reg(&cur, UNW_REG_SP, &sp) < 0) break;
            self->sp = sp;
            self->pc = ip;
            ok = true;
            const void *base = ip && dladdr((void *)(ip - 1), &di) ? di.dli_fbase : NULL;
            bool exit_path = (ip >= self_lo && ip < self_hi) || (base && (base == libc || base == ldso));
            if (!exit_path) {
                self->nregs = 0;
                for (unsigned i = 0; i < sizeof saved / sizeof *saved; i++) {
                    unw_word_t v = 0;
                    if (get_reg(&cur, saved[i], &v) == 0) self->regs[self->nregs++] = v;
                }
                break;
            }
            if (step(&cur) <= 0) break;        /* outermost: nothing of the program here */
        }
    }
    _ms_loader_leave();
    _ms_busy--;
    return ok;
}
#else
bool _ms_unwind_exit_frame(ms_scan_self_t *self) { (void)self; return false; }
#endif
