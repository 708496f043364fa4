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
#include <link.h>
#include <string.h>
#include "shim.h"

__thread int _ms_busy __attribute__((tls_model("initial-exec")));

static int (*p_backtrace)(void **, int);
static uintptr_t self_lo, self_hi;      /* memshim's own code: frames to hide */

static int find_self(struct dl_phdr_info *info, size_t size, void *arg)
{
    (void)size;
    uintptr_t probe = (uintptr_t)arg;
    for (int i = 0; i < info->dlpi_phnum; i++) {
        const ElfW(Phdr) *ph = &info->dlpi_phdr[i];
        if (ph->p_type != PT_LOAD || !(ph->p_flags & PF_X)) continue;
        uintptr_t lo = info->dlpi_addr + ph->p_vaddr, hi = lo + ph->p_memsz;
        if (probe >= lo && probe < hi) { self_lo = lo; self_hi = hi; return 1; }
    }
    return 0;
}

void _ms_unwind_init(void)
{
    if (p_backtrace) return;
    _ms_busy++;
    dl_iterate_phdr(find_self, (void *)(uintptr_t)&_ms_unwind_init);
    void *h = dlopen("libunwind.so.8", RTLD_NOW | RTLD_LOCAL);
    if (h) {
        /* Per-thread caches make unw_backtrace lock-free. */
        int (*set_policy)(void *, int) = (int (*)(void *, int))dlsym(h, "_ULx86_64_set_caching_policy");
        void **as = dlsym(h, "_ULx86_64_local_addr_space");
        if (set_policy && as) set_policy(*as, 2 /* UNW_CACHE_PER_THREAD */);
        p_backtrace = (int (*)(void **, int))dlsym(h, "unw_backtrace");
    }
    if (!p_backtrace)
        _ms_message("libunwind.so.8 not found (%s): leak reports will have no stacks",
                    dlerror() ? "dlopen failed" : "no unw_backtrace");
    _ms_busy--;
}

bool _ms_unwind_ready(void) { return p_backtrace != NULL; }

/* The caller's stack, memshim's own frames dropped, return addresses
 * moved back by one so that they name the call instruction's line. */
unsigned _ms_unwind(uintptr_t *ip, unsigned max)
{
    if (!p_backtrace || _ms_busy) return 0;
    void *raw[MS_MAX_STACK + 8];
    _ms_busy++;
    int n = p_backtrace(raw, (int)(max + 8 < MS_MAX_STACK + 8 ? max + 8 : MS_MAX_STACK + 8));
    _ms_busy--;
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

bool _ms_ip_is_self(uintptr_t ip) { return ip >= self_lo && ip < self_hi; }
