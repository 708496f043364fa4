/* modules.c - stacks through libraries the program unloads.
 *
 * A leak made by a plugin that is later dlclose'd keeps, in the trace
 * table, return addresses into code that is gone -- and that the next
 * library mapped there may reuse.  So dlclose (interposed in override.c)
 * looks at the module first: its path, load address and code ranges.  If
 * the trace table holds addresses in them, they are symbolized now, while
 * the module is mapped (symbolize.c keeps those frames, strings copied).
 * If the real dlclose then unloads the module, those addresses are retired:
 * rewritten in the trace table under a tag in their top bits (user
 * addresses use 47), which names the kept frames, and the per-thread stack
 * caches are invalidated (an epoch), so a stack through a library mapped
 * there later is a new stack with that library's names. */
#include <dlfcn.h>
#include <errno.h>
#include <link.h>
#include <stdlib.h>
#include <string.h>
#include <sys/auxv.h>
#include "shim.h"

#define MAX_RANGES 8
typedef struct {
    uintptr_t  base;
    char       name[1024];
    ms_range_t code[MAX_RANGES];
    unsigned   ncode;
    bool       found;
} module_t;

unsigned _ms_module_epoch;

static int find_module(struct dl_phdr_info *info, size_t size, void *arg)
{
    (void)size;
    module_t *m = arg;
    if (info->dlpi_addr != m->base || !info->dlpi_name || strcmp(info->dlpi_name, m->name) != 0)
        return 0;
    m->found = true;
    m->ncode = 0;
    for (int i = 0; i < info->dlpi_phnum && m->ncode < MAX_RANGES; i++) {
        const ElfW(Phdr) *ph = &info->dlpi_phdr[i];
        if (ph->p_type != PT_LOAD || !(ph->p_flags & PF_X)) continue;
        uintptr_t lo = info->dlpi_addr + ph->p_vaddr;
        m->code[m->ncode++] = (ms_range_t){ lo, lo + ph->p_memsz };
    }
    return 1;
}

/* memshim's own image, found once: its code (frames to hide from stacks),
 * its writable data and bss, page-rounded (never roots of the scan), and
 * its whole extent (what is defined by memshim itself). */
static ms_self_t self;
static pthread_once_t self_once = PTHREAD_ONCE_INIT;

static int find_self(struct dl_phdr_info *info, size_t size, void *arg)
{
    (void)size;
    uintptr_t probe = (uintptr_t)arg, lo = UINTPTR_MAX, hi = 0;
    for (int i = 0; i < info->dlpi_phnum; i++) {
        const ElfW(Phdr) *ph = &info->dlpi_phdr[i];
        if (ph->p_type != PT_LOAD) continue;
        uintptr_t a = info->dlpi_addr + ph->p_vaddr;
        if (a < lo) lo = a;
        if (a + ph->p_memsz > hi) hi = a + ph->p_memsz;
    }
    if (probe < lo || probe >= hi) return 0;
    self.image = (ms_range_t){ lo, hi };
    for (int i = 0; i < info->dlpi_phnum; i++) {
        const ElfW(Phdr) *ph = &info->dlpi_phdr[i];
        if (ph->p_type != PT_LOAD) continue;
        uintptr_t a = info->dlpi_addr + ph->p_vaddr;
        if ((ph->p_flags & PF_X) && probe >= a && probe < a + ph->p_memsz)
            self.code = (ms_range_t){ a, a + ph->p_memsz };
        if ((ph->p_flags & PF_W) && self.ndata < sizeof self.data / sizeof *self.data)
            self.data[self.ndata++] = (ms_range_t){ a & ~(uintptr_t)(MS_OS_PAGE - 1),
                                                    (a + ph->p_memsz + MS_OS_PAGE - 1) & ~(uintptr_t)(MS_OS_PAGE - 1) };
    }
    return 1;
}

static void self_find(void)
{
    _ms_loader_enter();
    _ms_iterate_phdr(find_self, (void *)(uintptr_t)&_ms_self);
    _ms_loader_leave();
}

const ms_self_t *_ms_self(void)
{
    pthread_once(&self_once, self_find);
    return &self;
}

/* ---- the C runtime's own objects ------------------------------------------- *
 * The C library and the dynamic loader, known by load address: the exit
 * path memshim's leak scan leaves out (unwind.c), a thread's start-up
 * below its function (report.c), the frames whose lines are not looked up
 * (symbolize.c). */
static uintptr_t libc_base, ldso_base;
static pthread_once_t runtime_once = PTHREAD_ONCE_INIT;

static void runtime_find(void)
{
    Dl_info di;
    /* a function of the C library's that memshim does not interpose
     * (&exit is memshim's own since override.c took exit over) */
    libc_base = dladdr((void *)(uintptr_t)&getpid, &di) ? (uintptr_t)di.dli_fbase : 0;
    ldso_base = (uintptr_t)getauxval(AT_BASE);
}

/* Found by the constructor (init.c), while the program's threads are yet
 * to come: each lookup takes the loader's lock inside pthread_once.  Left
 * to a first use, it hung a program whose constructor, run by dlopen with
 * the loader's lock held, closed a library while another thread took its
 * first symbolized stack: that thread, in the once, waited for the
 * loader's lock, the constructor's thread (dlclose, memshim's watch of
 * it) for the once (test host_loader::dlclose_in_a_constructor_while_
 * another_thread_writes_profiles, 2 hangs in 40 runs beside two busy
 * loops). */
void _ms_modules_init(void)
{
    _ms_self();
    pthread_once(&runtime_once, runtime_find);
    _ms_hook_init();
}

ms_runtime_t _ms_runtime_at(uintptr_t base)
{
    pthread_once(&runtime_once, runtime_find);
    if (!base) return MS_RT_NONE;
    return base == libc_base ? MS_RT_LIBC : base == ldso_base ? MS_RT_LDSO : MS_RT_NONE;
}

/* ---- dlopen with RTLD_DEEPBIND (override.c's stub) ------------------------------ */

void *(*_ms_real_dlopen)(const char *file, int mode);

/* Whether the object holding code address `caller` has a search path of its
 * own (DT_RPATH, DT_RUNPATH) for the names it opens; true when unknown. */
static bool searches_own_path(uintptr_t caller)
{
    Dl_info di;
    struct link_map *lm = NULL;
    if (!caller || !dladdr1((void *)caller, &di, (void **)&lm, RTLD_DL_LINKMAP) || !lm || !lm->l_ld) return true;
    for (const ElfW(Dyn) *d = lm->l_ld; d->d_tag != DT_NULL; d++)
        if (d->d_tag == DT_RPATH || d->d_tag == DT_RUNPATH) return true;
    return false;
}

/* A call of dlopen that memshim makes itself (1), or that goes on to the C
 * library's as the program made it (0).  Only RTLD_DEEPBIND calls are
 * memshim's, and of those only the ones the loader would look up the same
 * from memshim as from the caller: a path, or a name while the caller has
 * no search path of its own.  (A deep-bound library found through its
 * caller's RUNPATH keeps the C library's malloc, as without memshim; and
 * so does any under a seccomp filter, where memshim makes no system call
 * but the allocator's: init.c.) */
int _ms_dlopen_ours(const char *file, int mode, uintptr_t caller)
{
    _ms_unw_opened(file);                  /* the program's own use of libunwind (hook.c) */
    if (!__atomic_load_n(&_ms_real_dlopen, __ATOMIC_ACQUIRE)) {
        void *(*real)(const char *, int) = (void *(*)(const char *, int))dlsym(RTLD_NEXT, "dlopen");
        if (!real) return 1;               /* no C library dlopen: _ms_dlopen_deep answers NULL */
        __atomic_store_n(&_ms_real_dlopen, real, __ATOMIC_RELEASE);
    }
    if (!(mode & RTLD_DEEPBIND) || !file || __atomic_load_n(&_ms_confined, __ATOMIC_RELAXED)) return 0;
    return strchr(file, '/') || !searches_own_path(caller);
}

void *_ms_dlopen_deep(const char *file, int mode)
{
    void *(*real)(const char *, int) = __atomic_load_n(&_ms_real_dlopen, __ATOMIC_ACQUIRE);
    if (!real) return NULL;                /* dlerror() tells nothing: never seen */
    void *handle = real(file, mode);
    if (handle) {
        int saved = errno;
        _ms_hook_deepbind(handle);
        errno = saved;
    }
    return handle;
}

/* ---- dlsym in a handle (override.c's stub) ---------------------------------------- */

void *(*_ms_real_dlsym)(void *handle, const char *name);

void _ms_dlsym_resolve(void)
{
    if (__atomic_load_n(&_ms_real_dlsym, __ATOMIC_ACQUIRE)) return;
    void *r = dlvsym(RTLD_NEXT, "dlsym", "GLIBC_2.34");   /* dlsym itself would be memshim's */
    if (!r) r = dlvsym(RTLD_NEXT, "dlsym", "GLIBC_2.2.5");
    if (r) __atomic_store_n(&_ms_real_dlsym, (void *(*)(void *, const char *))r, __ATOMIC_RELEASE);
}

/* What the C library's dlsym finds in handle; memshim's function of that
 * name instead when it found the very definition memshim takes over in the
 * global scope (the C library's malloc, free...).  A library that defines
 * its own keeps it.  The caller does not matter to a handle's lookup. */
void *_ms_dlsym_handle(void *handle, const char *name)
{
    _ms_dlsym_resolve();
    void *(*real)(void *, const char *) = __atomic_load_n(&_ms_real_dlsym, __ATOMIC_ACQUIRE);
    if (!real) return NULL;
    void *r = real(handle, name);
    if (!r || !name) return r;
    void *mine = _ms_self_function(name);
    if (!mine || r == mine) return r;
    int saved = errno;
    void *next = real(RTLD_NEXT, name);           /* from here: the definition after memshim's */
    errno = saved;
    return r == next ? mine : r;
}

int _ms_dlclose(void *handle)
{
    static int (*real)(void *);
    if (!real) real = (int (*)(void *))dlsym(RTLD_NEXT, "dlclose");
    if (!real) return -1;
    int saved = errno;
    /* No lock of memshim's is held across the real dlclose, which takes the
     * loader's lock: a library's constructor, run by dlopen under that lock,
     * that closes another library waited for a watched dlclose in another
     * thread, which waited for the loader's lock (each module's watch is
     * its caller's own; the stack table and the symbolizer lock their own
     * data, briefly). */
    module_t m;
    static __thread int nested;           /* a destructor run by dlclose closing another library */
    struct link_map *lm = NULL;
    bool watch = _ms_track_on && !_ms_busy && !nested && handle &&
                 dlinfo(handle, RTLD_DI_LINKMAP, &lm) == 0 &&
                 lm && lm->l_name && lm->l_name[0] && strlen(lm->l_name) < sizeof m.name;
    uintptr_t tag = 0;
    if (watch) {
        memset(&m, 0, sizeof m);
        m.base = lm->l_addr;
        strcpy(m.name, lm->l_name);
        _ms_loader_enter();
        _ms_iterate_phdr(find_module, &m);
        _ms_loader_leave();
        if (m.found && m.ncode) tag = _ms_symbolize_keep(m.name, m.base, m.code, m.ncode);
    }
    errno = saved;
    nested++;
    int rc = real(handle);
    nested--;
    if (tag) {
        saved = errno;
        m.found = false;
        _ms_loader_enter();
        _ms_iterate_phdr(find_module, &m);
        _ms_loader_leave();
        if (!m.found) {                    /* unloaded: its addresses retire */
            _ms_stack_retag(m.code, m.ncode, tag);
            _ms_symbolize_unloaded(m.code, m.ncode);
            __atomic_add_fetch(&_ms_module_epoch, 1, __ATOMIC_RELEASE);
        } else {
            _ms_symbolize_keep_cancel(tag);
        }
        errno = saved;
    }
    return rc;
}
