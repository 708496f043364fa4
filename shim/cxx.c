/* cxx.c - who defines the allocation functions the process uses, and what
 * C++ needs of memshim beyond the malloc family (override.c defines the
 * operators themselves, by their mangled names):
 *
 *   the owners.  The program's executable comes before LD_PRELOAD in the
 *   symbol search: one that defines malloc (a statically linked jemalloc,
 *   say) or operator new keeps it, and memshim says so.
 *
 *   operator new's failure path.  The throwing forms call the installed
 *   new_handler (std::get_new_handler) and try again, for as long as there
 *   is one, then throw std::bad_alloc.  C cannot throw: memshim calls the C++
 *   runtime's own std::__throw_bad_alloc, looked up when needed, so an
 *   exception is only ever thrown where a C++ runtime is loaded.  The nothrow
 *   forms return NULL when no handler is installed; with one, they go
 *   through the runtime's own nothrow operator, which calls memshim's
 *   throwing one and turns what the handler throws into NULL (libstdc++ 9
 *   and later; this is the only way for C to catch).  Without such an
 *   operator, memshim calls the handler itself, and what it throws goes
 *   through to the caller.
 *
 *   mismatches.  While tracking, each block's record says how it was
 *   allocated (MS_ALLOC_*, types.h); a free, delete or delete[] that does not
 *   match is reported as memcheck does, "Mismatched free() / delete /
 *   delete []".  Only when every operator of the family is memshim's: a
 *   program that defines its own operator new (over malloc, say) but not
 *   its own delete would otherwise have every delete reported.  And not
 *   for one half of a library's own pair (in_foreign_operator). */
#include <dlfcn.h>
#include <errno.h>
#include <link.h>
#include <stdlib.h>
#include <string.h>
#include "shim.h"

int _ms_cxx_checks;

/* Every operator memshim defines (override.c), as libstdc++ exports them. */
static const char *const family[] = {
    "_Znwm", "_Znam", "_ZnwmRKSt9nothrow_t", "_ZnamRKSt9nothrow_t",
    "_ZnwmSt11align_val_t", "_ZnamSt11align_val_t",
    "_ZnwmSt11align_val_tRKSt9nothrow_t", "_ZnamSt11align_val_tRKSt9nothrow_t",
    "_ZdlPv", "_ZdaPv", "_ZdlPvm", "_ZdaPvm", "_ZdlPvRKSt9nothrow_t", "_ZdaPvRKSt9nothrow_t",
    "_ZdlPvSt11align_val_t", "_ZdaPvSt11align_val_t", "_ZdlPvmSt11align_val_t", "_ZdaPvmSt11align_val_t",
    "_ZdlPvSt11align_val_tRKSt9nothrow_t", "_ZdaPvSt11align_val_tRKSt9nothrow_t",
};

/* The object defining name for the process (the first in the symbol
 * search: the program, then LD_PRELOAD's, then the rest) when that is not
 * memshim: its file name; NULL when memshim's definition is the one used
 * (or none is).  An executable that takes a function's address without
 * defining it (a non-PIE program storing &malloc) has a stub in its own
 * procedure linkage table that dlsym gives as the address: no definition
 * of that name is there (dladdr finds the undefined symbol, or none at
 * that address), and calls still reach memshim.  A definition may have
 * other names at its address, and dladdr gives any of them: Chromium's
 * and tcmalloc's malloc is also their __libc_malloc (compared by name,
 * Chromium's crash handler was said to define free, not malloc, and a
 * program whose four had such names drew no word at all). */
static const char *defined_elsewhere(const char *name)
{
    ms_range_t own = _ms_self()->image;
    uintptr_t f = (uintptr_t)dlsym(RTLD_DEFAULT, name);
    if (!f || !own.end || (f >= own.start && f < own.end)) return NULL;
    Dl_info di;
    const ElfW(Sym) *sym = NULL;
    if (!dladdr1((void *)f, &di, (void **)&sym, RTLD_DL_SYMENT) || !sym ||
        (uintptr_t)di.dli_saddr != f || sym->st_shndx == SHN_UNDEF)
        return NULL;                                     /* a stub, not a definition */
    return di.dli_fname && di.dli_fname[0] ? di.dli_fname : "the program";
}

/* Does the process use memshim's operators, or did the program (which
 * comes before memshim in the symbol search) define some of its own? */
static bool family_is_ours(void)
{
    for (size_t i = 0; i < sizeof family / sizeof *family; i++) {
        const char *by = defined_elsewhere(family[i]);
        if (by) {
            char shown[512];
            if (_ms_opt.verbose)
                _ms_message("%s is defined by %s: the program replaces operator new or delete; "
                            "mismatched free/delete/delete[] are not reported", family[i],
                            _ms_name_shown(by, shown, sizeof shown));
            return false;
        }
    }
    return true;
}

/* In the constructor.  A program whose own executable (or a library before
 * memshim in the search) defines malloc keeps its allocator: memshim then
 * sees none of its blocks (or only those it passes on), and its silence
 * must not read as "no leaks".  Only tracking records how blocks were
 * allocated: without it there are no C++ checks to make. */
void _ms_cxx_init(void)
{
    int saved = errno;
    static const char *const c_family[] = { "malloc", "free", "calloc", "realloc" };
    for (size_t i = 0; i < sizeof c_family / sizeof *c_family; i++) {
        const char *by = defined_elsewhere(c_family[i]);
        if (!by) continue;
        char shown[512];
        _ms_message("%s is defined by %s, which comes before memshim in the symbol search: memshim's "
                    "leak report, statistics and profile cover only the blocks that allocator asks memshim for",
                    c_family[i], _ms_name_shown(by, shown, sizeof shown));
        break;
    }
    if (_ms_opt.track) _ms_cxx_checks = family_is_ours();
    errno = saved;
}

/* ---- operator new's failure path ---------------------------------------------- */

typedef void (*new_handler_t)(void);

static void *runtime_symbol(void *handle, const char *name)
{
    return dlsym(handle, name);          /* rare path: allocates only for dlerror() */
}

static new_handler_t current_handler(void)
{
    new_handler_t (*get)(void) = (new_handler_t (*)(void))runtime_symbol(RTLD_DEFAULT, "_ZSt15get_new_handlerv");
    return get ? get() : NULL;
}

static __attribute__((noreturn)) void throw_bad_alloc(size_t n)
{
    void (*thr)(void) = (void (*)(void))runtime_symbol(RTLD_DEFAULT, "_ZSt17__throw_bad_allocv");  /* libstdc++ */
    if (!thr) thr = (void (*)(void))runtime_symbol(RTLD_DEFAULT, "_ZNSt3__117__throw_bad_allocEv"); /* libc++ */
    if (thr) thr();
    _ms_message("operator new(%zu): out of memory, and no C++ runtime to throw std::bad_alloc; aborting", n);
    _ms_abort();
}

/* The runtime's own nothrow operator of the same form. */
static void *nothrow_through_runtime(size_t n, size_t align, unsigned how, bool *found)
{
    static const char nothrow_object = 0;              /* stands for std::nothrow */
    const char *name = how == MS_ALLOC_NEW ? "_ZnwmRKSt9nothrow_t"
                     : how == MS_ALLOC_NEW_ARRAY ? "_ZnamRKSt9nothrow_t"
                     : how == (MS_ALLOC_NEW | MS_ALLOC_ALIGNED) ? "_ZnwmSt11align_val_tRKSt9nothrow_t"
                     : "_ZnamSt11align_val_tRKSt9nothrow_t";
    void *f = runtime_symbol(RTLD_NEXT, name);
    *found = f != NULL;
    if (!f) return NULL;
    if (how & MS_ALLOC_ALIGNED)
        return ((void *(*)(size_t, size_t, const void *))f)(n, align, &nothrow_object);
    return ((void *(*)(size_t, const void *))f)(n, &nothrow_object);
}

void *_ms_new_failed(size_t n, size_t align, unsigned how, bool nothrow, const ms_site_t *site)
{
    if (!(align & (align - 1))) {               /* an alignment that is no power of two fails at once */
        for (new_handler_t h; (h = current_handler()) != NULL; ) {
            if (nothrow) {
                bool found;
                void *p = nothrow_through_runtime(n, align, how, &found);
                if (found) return p;
            }
            h();                                 /* frees memory, or throws, or ends the program */
            void *p = _ms_track_on ? _ms_tracked_new(n, align, how, site) : _ms_new(n, align);
            if (p) return p;
        }
    }
    if (nothrow) return NULL;
    throw_bad_alloc(n);
}

/* ---- mismatches --------------------------------------------------------------- */

/* How a block was allocated and the call that releases it, by MS_ALLOC_*. */
static const struct { unsigned how; const char *alloc, *dealloc; } call_names[] = {
    { MS_ALLOC_MALLOC,                        "malloc()",                 "free()" },
    { MS_ALLOC_NEW,                           "operator new",             "operator delete" },
    { MS_ALLOC_NEW_ARRAY,                     "operator new[]",           "operator delete[]" },
    { MS_ALLOC_NEW | MS_ALLOC_ALIGNED,        "operator new (aligned)",   "operator delete (aligned)" },
    { MS_ALLOC_NEW_ARRAY | MS_ALLOC_ALIGNED,  "operator new[] (aligned)", "operator delete[] (aligned)" },
};

static const char *call_name(unsigned how, bool release)
{
    for (size_t i = 0; i < sizeof call_names / sizeof *call_names; i++)
        if (call_names[i].how == how) return release ? call_names[i].dealloc : call_names[i].alloc;
    return "?";
}

const char *_ms_alloc_name(unsigned how) { return call_name(how, false); }
const char *_ms_dealloc_name(unsigned how) { return call_name(how, true); }

/* Whether code address a is in an operator new (`want_new`) or delete of
 * another object than memshim: a library's own operators.  LLVM's (linked
 * -Bsymbolic, its operators versioned) calls its own operator new, which
 * takes the block from malloc, while the programs built on it release
 * that block through memshim's operator delete: the pair is theirs and
 * matches, but memshim sees one half of it.  Also the reverse. */
static bool in_foreign_operator(uintptr_t a, bool want_new)
{
    ms_range_t own = _ms_self()->image;
    Dl_info di;
    if (!a || (a >= own.start && a < own.end) || !dladdr((void *)a, &di) || !di.dli_sname) return false;
    const char *s = di.dli_sname;
    return want_new ? strncmp(s, "_Znw", 4) == 0 || strncmp(s, "_Zna", 4) == 0
                    : strncmp(s, "_Zdl", 4) == 0 || strncmp(s, "_Zda", 4) == 0;
}

void _ms_mismatch(const void *p, const ms_meta_t *mp, const char *released_by, uintptr_t caller)
{
    const ms_meta_t m = *mp;               /* a copy: symbolizing may be handed this very block */
    uintptr_t site = _ms_stack_site(m.stack);
    if ((site && in_foreign_operator(site, true)) || in_foreign_operator(caller - 1, false))
        return;                            /* one half of a library's own pair */
    /* A block from malloc that MEMSHIM_SAMPLE left without a stack: who
     * called malloc is unknown, and may be a library's own operator new
     * (rust-lld aborted on such a block, sampled or not by chance). */
    if (m.alloc == MS_ALLOC_MALLOC && !(m.flags & MS_META_SAMPLED)) return;
    char is[160];
    ms_buf_t b;
    _ms_buf_init(&b, is, sizeof is - 1, -1);
    _ms_bprintf(&b, "a block from %s, released by %s", _ms_alloc_name(m.alloc), released_by);
    is[b.len] = 0;
    static const char *const titles[] = { "allocated at" };
    const uint32_t stacks[] = { m.stack };
    _ms_misuse_report("Mismatched free() / delete / delete []", p, is, titles, stacks, 1);
}
