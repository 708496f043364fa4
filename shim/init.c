/* init.c - start-up, fork and exit.
 *
 * memshim initialises itself on the first allocation, which may come from the
 * dynamic loader long before our constructor runs; nothing here calls a
 * function that allocates.  The environment is read in the constructor, when
 * `environ` is certainly set.  pthread_atfork is registered at that first
 * allocation, before any other library can register, so our `prepare` runs
 * last and our `parent`/`child` first: handlers of other libraries that
 * allocate never find our locks held. */
#include <string.h>
#include <sys/auxv.h>
#include <unistd.h>
#include "shim.h"

int _ms_inited;
static int initializing;

MS_HIDDEN void _ms_alloc_init(uintptr_t key);

static void fork_prepare(void)
{
    _ms_central_lock_all();      /* class locks, then the leaves: the nesting order */
    _ms_segment_lock();
    _ms_huge_lock();
    _ms_tcache_lock();
    _ms_meta_lock();
}

static void fork_release(bool child)
{
    _ms_meta_unlock(child);
    _ms_tcache_unlock(child);
    _ms_huge_unlock(child);
    _ms_segment_unlock(child);
    _ms_central_unlock_all(child);
}

static void fork_parent(void) { fork_release(false); }
static void fork_child(void)  { fork_release(true); }

void _ms_init(void)
{
    if (MS_LIKELY(__atomic_load_n(&_ms_inited, __ATOMIC_ACQUIRE))) return;
    if (__atomic_exchange_n(&initializing, 1, __ATOMIC_ACQ_REL)) {
        while (!__atomic_load_n(&_ms_inited, __ATOMIC_ACQUIRE)) sched_yield();
        return;
    }
    _ms_classes_init();
    _ms_segment_init();
    _ms_tcache_init();
    uintptr_t key = 0x9e3779b97f4a7c15u;
    const unsigned char *rnd = (const unsigned char *)getauxval(AT_RANDOM);
    if (rnd) memcpy(&key, rnd + 8, sizeof key);
    _ms_alloc_init(key);
    pthread_atfork(fork_prepare, fork_parent, fork_child);
    __atomic_store_n(&_ms_inited, 1, __ATOMIC_RELEASE);
}

__attribute__((constructor(101))) static void ms_constructor(void)
{
    _ms_init();
    _ms_options_load();
}

__attribute__((destructor(101))) static void ms_destructor(void)
{
    _ms_stats_at_exit();
}
