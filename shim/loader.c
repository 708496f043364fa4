/* loader.c - memshim's calls that may iterate the loaded objects, kept
 * apart from fork and from the program's own dl_iterate_phdr callbacks.
 * Every process runs this (the pools' start included), so it sits among
 * the code every process runs (Makefile: HOT_SRC), not with unwind.c. */
#include <dlfcn.h>
#include <link.h>
#include <pthread.h>
#include "shim.h"

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

/* A thread takes the guard once however deeply it enters: with writers
 * preferred, a second read lock taken by a thread that holds one (a signal
 * handler that allocates, interrupting an unwind) waits behind a fork's
 * prepare handler waiting for the first, for ever. */
static __thread int loader_depth __attribute__((tls_model("initial-exec")));
void _ms_loader_enter(void)
{
    if (loader_depth++) return;
    pthread_once(&loader_once, loader_guard_init);
    pthread_rwlock_rdlock(&loader_guard);
}
void _ms_loader_leave(void)
{
    if (--loader_depth) return;
    pthread_rwlock_unlock(&loader_guard);
    _ms_signals_due();
}
bool _ms_loader_mine(void) { return loader_depth != 0; }
void _ms_loader_lock(void)  { pthread_once(&loader_once, loader_guard_init); pthread_rwlock_wrlock(&loader_guard); }
void _ms_loader_unlock(bool child)
{
    if (child) loader_guard_init();
    else pthread_rwlock_unlock(&loader_guard);
}

/* ---- programs inside dl_iterate_phdr ------------------------------------------- *
 * A thread in a dl_iterate_phdr callback holds the loader's lock, which
 * libunwind takes too (through dl_iterate_phdr, for each frame's unwind
 * table) while it holds a lock of its own.  A callback that allocated
 * waited for libunwind's lock, held by another thread's unwind that waited
 * for the loader's (the lock order of LeakSanitizer's libdl_deadlock
 * test); a callback that waited for another thread kept that thread's
 * allocations waiting for the loader, for ever.  While a thread of the
 * program is inside one (override.c's dl_iterate_phdr), stacks are taken
 * without libunwind: the frame sizes learnt when they spell out a known
 * stack, else the call site alone.  memshim's own calls
 * (_ms_iterate_phdr) and libunwind's, made inside an unwind, do not count. */
static int (*real_iterate)(int (*)(struct dl_phdr_info *, size_t, void *), void *);
static int iterating;             /* threads of the program inside dl_iterate_phdr */

int _ms_iterate_phdr(int (*cb)(struct dl_phdr_info *, size_t, void *), void *arg)
{
    int (*real)(int (*)(struct dl_phdr_info *, size_t, void *), void *) =
        __atomic_load_n(&real_iterate, __ATOMIC_ACQUIRE);
    if (!real) {
        real = (int (*)(int (*)(struct dl_phdr_info *, size_t, void *), void *))dlsym(RTLD_NEXT, "dl_iterate_phdr");
        if (!real) return 0;
        __atomic_store_n(&real_iterate, real, __ATOMIC_RELEASE);
    }
    return real(cb, arg);
}

int _ms_program_iterate_phdr(int (*cb)(struct dl_phdr_info *, size_t, void *), void *arg)
{
    if (_ms_busy) return _ms_iterate_phdr(cb, arg);
    __atomic_add_fetch(&iterating, 1, __ATOMIC_ACQ_REL);
    int r = _ms_iterate_phdr(cb, arg);
    __atomic_sub_fetch(&iterating, 1, __ATOMIC_ACQ_REL);
    return r;
}

bool _ms_program_iterating(void) { return __atomic_load_n(&iterating, __ATOMIC_ACQUIRE) != 0; }
