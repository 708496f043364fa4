/* hook.c - keep the descriptors of memshim's libraries out of the program's
 * way.
 *
 * libunwind and libdw are dlopen'ed (unwind.c, symbolize.c) and make system
 * calls of their own.  Two of their habits harm the host program:
 *
 *  - libunwind validates memory by writing one byte from the address into a
 *    pipe it opens at its first unwind, which lands on the lowest free
 *    descriptors (3 and 4).  A program that closes every descriptor and
 *    opens files gets those numbers back; libunwind then reads from the
 *    program's file, and when that read fails closes "its" pipe (the
 *    program's files) and opens a new one in their place.
 *  - libunwind, libdw and libelf open files without O_CLOEXEC, on the lowest
 *    free numbers, where a concurrent fork+exec in the program hands them to
 *    a child.
 *
 * So memshim redirects a few entries of those libraries' own global offset
 * tables (their calls of pipe2, read, close, syscall, open, dup, fopen,
 * libdw's and libelf's mmap family, libunwind's sigprocmask; nobody
 * else's calls change):
 *
 *  - libunwind's pipe is never made: pipe2 hands back two numbers that are
 *    not descriptors, read on the first says "empty" (EAGAIN), close on
 *    either does nothing, and the write of validation (SYS_write through
 *    libc's variadic system-call entry) becomes a descriptor-free check
 *    that the byte is readable (_ms_os_can_read: process_vm_readv on
 *    ourselves).
 *  - every file they open (or dup) is born memshim's (fds.c: registered
 *    from before the open, so the program's closes leave it alone),
 *    O_CLOEXEC, at a number of at least MS_FD_MIN, out of the range
 *    programs reuse; their closes come to _ms_fd_close, which drops the
 *    number from the registry; libdw's closes of the files it keeps open
 *    check first that the number still holds the file it opened (a dup2
 *    of the program's, or a close by its own system call, may have
 *    replaced it).  fclose and closedir close inside the C library: libdw's
 *    fopen gets a stream of memshim's own (_ms_fd_stream), whose close is
 *    _ms_fd_close, and its closedir comes to _ms_fd_closedir.  (fopen to
 *    write, which they do not, is the C library's, close-on-exec.)
 *  - what libdw and libelf map is noted, for the leak scan to leave out:
 *    libelf maps the files it reads writable, which made them roots.
 *  - libunwind's signal masking is skipped in memshim's own unwinds while
 *    the program does not use libunwind itself (below).
 *
 * Entries are found through the dynamic section of the library's link map
 * (JUMP_SLOT and GLOB_DAT relocations by symbol name); an entry under RELRO
 * is made writable for the moment of the store. */
#include <dirent.h>
#include <dlfcn.h>
#include <elf.h>
#include <errno.h>
#include <signal.h>
#include <fcntl.h>
#include <link.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>
#include "shim.h"

#define FAKE_RD (-4242)                 /* libunwind's "pipe": never descriptors */
#define FAKE_WR (-4243)

/* ---- what the libraries call instead ------------------------------------------- */

static int h_pipe2(int fds[2], int flags)
{
    (void)flags;
    fds[0] = FAKE_RD;
    fds[1] = FAKE_WR;
    return 0;
}

static int h_pipe(int fds[2]) { return h_pipe2(fds, 0); }

static ssize_t h_read(int fd, void *buf, size_t n)
{
    if (fd == FAKE_RD) { errno = EAGAIN; return -1; }   /* an empty pipe */
    return read(fd, buf, n);
}

static int h_close(int fd)
{
    if (fd == FAKE_RD || fd == FAKE_WR) return 0;
    return _ms_fd_close(fd);
}

static ssize_t h_write(int fd, const void *buf, size_t n)
{
    if (fd == FAKE_WR) {
        if (_ms_os_can_read(buf)) return 1;
        errno = EFAULT;
        return -1;
    }
    return write(fd, buf, n);
}

/* The system-call entry is variadic; libunwind uses it only for SYS_write, anything
 * else is passed on with six argument words (what the kernel takes). */
static long h_syscall(long nr, ...)
{
    va_list ap;
    va_start(ap, nr);
    long a[6];
    for (int i = 0; i < 6; i++) a[i] = va_arg(ap, long);
    va_end(ap);
    if (nr == SYS_write && (int)a[0] == FAKE_WR) return h_write(FAKE_WR, (const void *)a[1], 1);
    return _ms_os_syscall6(nr, a[0], a[1], a[2], a[3], a[4], a[5]);
}

/* open(2)'s mode, present only when the flags create a file. */
#define OPEN_MODE(flags, mode) do {                                  \
        if ((flags) & (O_CREAT | __O_TMPFILE)) {                     \
            va_list ap_;                                             \
            va_start(ap_, flags);                                    \
            mode = va_arg(ap_, unsigned);                            \
            va_end(ap_);                                             \
        }                                                            \
    } while (0)

/* Born memshim's (fds.c): the libraries close them through their close
 * entry, which comes to _ms_fd_close. */
static int h_open(const char *path, int flags, ...)
{
    unsigned mode = 0;
    OPEN_MODE(flags, mode);
    return _ms_fd_open(AT_FDCWD, path, flags, mode);
}

/* libdw keeps the files of the modules it read open while its Dwfl lives,
 * and closes them when a module goes.  The program may have closed one of
 * them meanwhile and opened a file of its own on the number: libdw's close
 * must then leave that file alone.  (All calls into libdw are made under
 * the symbolizer's lock: no lock needed here.) */
#define DW_FILES 256
static struct { int fd; dev_t dev; ino_t ino; } dw_files[DW_FILES];
static unsigned dw_nfiles;

/* fd, just opened for libdw: its file noted for libdw's close. */
static int dw_kept(int fd)
{
    struct stat st;
    if (fd >= 0 && dw_nfiles < DW_FILES && fstat(fd, &st) == 0) {
        dw_files[dw_nfiles].fd = fd;
        dw_files[dw_nfiles].dev = st.st_dev;
        dw_files[dw_nfiles].ino = st.st_ino;
        dw_nfiles++;
    }
    return fd;
}

static int h_dw_open(const char *path, int flags, ...)
{
    unsigned mode = 0;
    OPEN_MODE(flags, mode);
    return dw_kept(h_open(path, flags, mode));
}

int _ms_hook_dw_open_self(const char *file) { return dw_kept(_ms_os_self_open(file, O_RDONLY)); }

static int h_dw_close(int fd)
{
    for (unsigned i = 0; i < dw_nfiles; i++) {
        if (dw_files[i].fd != fd) continue;
        bool ours = _ms_os_same_file(fd, dw_files[i].dev, dw_files[i].ino);
        dw_files[i] = dw_files[--dw_nfiles];
        if (ours) return _ms_fd_close(fd);
        _ms_fd_forget(fd);                  /* the program's now: forgotten, not closed */
        return 0;
    }
    return _ms_fd_close(fd);
}

/* libelf maps the files it reads (ELF images and their debug files)
 * private and writable, and keeps them while the Dwfl lives: memshim's
 * memory, which the leak scan would take for roots (rw-p mappings are)
 * and read through -- megabytes of debug information at every scan after
 * the first report or profile, with whatever in them looks like a
 * pointer keeping a lost block reachable.  Their ranges are kept here for
 * the scan to leave out (_ms_hook_maps).  A range enters the table after
 * its mapping and leaves before its unmapping: a scan in between reads it
 * for nothing, and never leaves out memory that is no longer memshim's.
 * (Calls into libdw are made under the symbolizer's lock; a scan runs
 * with the writer stopped, seeing the count after the entries.) */
#define DW_MAPS 512
static ms_range_t dw_maps[DW_MAPS];
static unsigned dw_nmaps;

static void dw_map_add(void *p, size_t len)
{
    unsigned n = dw_nmaps;
    if (p == MAP_FAILED || !len || n == DW_MAPS) return;
    dw_maps[n] = (ms_range_t){ (uintptr_t)p, (uintptr_t)p + len };
    __atomic_store_n(&dw_nmaps, n + 1, __ATOMIC_RELEASE);
}

static void dw_map_drop(void *p, size_t len)        /* every range meeting [p, p + len) */
{
    uintptr_t lo = (uintptr_t)p, hi = lo + len;
    for (unsigned i = 0; i < dw_nmaps;) {
        if (dw_maps[i].start < hi && lo < dw_maps[i].end) {
            unsigned last = dw_nmaps - 1;
            __atomic_store_n(&dw_nmaps, last, __ATOMIC_RELEASE);   /* the last, copied below, is the same range */
            dw_maps[i] = dw_maps[last];
        } else {
            i++;
        }
    }
}

static void *h_dw_mmap(void *addr, size_t len, int prot, int flags, int fd, off_t off)
{
    void *p = (void *)_ms_os_syscall6(SYS_mmap, (long)addr, (long)len, prot, flags, fd, (long)off);
    dw_map_add(p, len);
    return p;
}

static int h_dw_munmap(void *addr, size_t len)
{
    dw_map_drop(addr, len);
    return (int)_ms_os_syscall6(SYS_munmap, (long)addr, (long)len, 0, 0, 0, 0);
}

static void *h_dw_mremap(void *old, size_t old_len, size_t new_len, int flags, ...)
{
    void *want = NULL;
    if (flags & MREMAP_FIXED) {
        va_list ap;
        va_start(ap, flags);
        want = va_arg(ap, void *);
        va_end(ap);
    }
    dw_map_drop(old, old_len);
    void *p = (void *)_ms_os_syscall6(SYS_mremap, (long)old, (long)old_len, (long)new_len, flags, (long)want, 0);
    dw_map_add(p == MAP_FAILED ? old : p, p == MAP_FAILED ? old_len : new_len);
    return p;
}

unsigned _ms_hook_maps(ms_range_t *out, unsigned max)
{
    unsigned n = __atomic_load_n(&dw_nmaps, __ATOMIC_ACQUIRE);
    if (n > max) n = max;
    memcpy(out, dw_maps, n * sizeof *out);
    return n;
}

static int h_dup(int fd)
{
    ms_birth_t b;
    _ms_fd_birth_begin(&b, 1);
    int n = fcntl(fd, F_DUPFD_CLOEXEC, MS_FD_MIN);
    if (n < 0 && errno == EINVAL) n = fcntl(fd, F_DUPFD_CLOEXEC, 0);
    _ms_fd_born(&b, &n, 1);
    return n;
}

/* Streams and directories: fclose and closedir close their descriptors
 * inside the C library, where no close of memshim's sees them.  A stream
 * read is memshim's own (_ms_fd_stream), whose close comes to
 * _ms_fd_close; closedir is redirected (_ms_fd_closedir). */
static FILE *h_fopen(const char *path, const char *mode)
{
    if (strcmp(mode, "r") == 0 || strcmp(mode, "rb") == 0) {
        int fd = _ms_fd_open(AT_FDCWD, path, O_RDONLY, 0);
        return fd >= 0 ? _ms_fd_stream(fd) : NULL;
    }
    char m[16];
    size_t n = strlen(mode);
    if (n + 2 > sizeof m) return fopen(path, mode);
    memcpy(m, mode, n);
    m[n] = 'e';                             /* glibc: O_CLOEXEC */
    m[n + 1] = 0;
    return fopen(path, m);
}

static DIR *h_opendir(const char *path)
{
    int fd = _ms_fd_open(AT_FDCWD, path, O_RDONLY | O_DIRECTORY, 0);
    DIR *d = fd >= 0 ? fdopendir(fd) : NULL;
    if (fd >= 0 && !d) {
        int e = errno;
        _ms_fd_close(fd);
        errno = e;
    }
    return d;
}

static int h_closedir(DIR *d) { return _ms_fd_closedir(d); }

/* ---- patching a library's global offset table ---------------------------------- */

#if defined(__x86_64__)
#define R_JUMP_SLOT R_X86_64_JUMP_SLOT
#define R_GLOB_DAT  R_X86_64_GLOB_DAT
#define R_ABS64     R_X86_64_64
#elif defined(__aarch64__)
#define R_JUMP_SLOT R_AARCH64_JUMP_SLOT
#define R_GLOB_DAT  R_AARCH64_GLOB_DAT
#define R_ABS64     R_AARCH64_ABS64
#endif

typedef struct { const char *name; void *fn; } hook_t;

/* The address a dynamic entry d of the object loaded at base points at:
 * the loader relocates the dynamic section in place, except where it is
 * read-only (then the entry is still an offset). */
static uintptr_t dyn_addr(const ElfW(Dyn) *d, uintptr_t base)
{
    uintptr_t p = d->d_un.d_ptr;
    return p && p < base ? p + base : p;
}

typedef struct { uintptr_t base; uintptr_t relro_lo, relro_hi; } relro_arg;

static int find_relro(struct dl_phdr_info *info, size_t size, void *arg)
{
    (void)size;
    relro_arg *r = arg;
    if (info->dlpi_addr != r->base) return 0;
    for (int i = 0; i < info->dlpi_phnum; i++)
        if (info->dlpi_phdr[i].p_type == PT_GNU_RELRO) {
            r->relro_lo = info->dlpi_addr + info->dlpi_phdr[i].p_vaddr;
            r->relro_hi = r->relro_lo + info->dlpi_phdr[i].p_memsz;
        }
    return 1;
}

static void store(void **slot, void *fn, const relro_arg *rr)
{
    uintptr_t a = (uintptr_t)slot;
    if (a >= rr->relro_lo && a < rr->relro_hi) {
        uintptr_t page = a & ~(uintptr_t)(MS_OS_PAGE - 1);
        if (!_ms_os_protect((void *)page, MS_OS_PAGE, true)) return;
        __atomic_store_n(slot, fn, __ATOMIC_RELEASE);
        _ms_os_protect((void *)page, MS_OS_PAGE, false);
        return;
    }
    __atomic_store_n(slot, fn, __ATOMIC_RELEASE);
}

/* Each entry holding a symbol's address in the object loaded at base with
 * dynamic section dyn -- a JUMP_SLOT or GLOB_DAT entry of its offset
 * tables, or a word of its data holding the address itself (`data`: an
 * ABS64 relocation, as a table of functions has) -- fn(arg, the symbol's
 * name and entry, the slot, data, the object's RELRO) adds to the count
 * returned (of entries changed). */
typedef unsigned (*slot_fn)(void *arg, const char *name, const ElfW(Sym) *sym, void **slot, bool data,
                            const relro_arg *rr);
static unsigned each_slot(uintptr_t base, const ElfW(Dyn) *dyn, slot_fn fn, void *arg)
{
#if defined(R_JUMP_SLOT)
    if (!dyn) return 0;
    const ElfW(Sym) *symtab = NULL;
    const char *strtab = NULL;
    const ElfW(Rela) *rels[2] = { NULL, NULL };
    size_t relsz[2] = { 0, 0 };
    for (const ElfW(Dyn) *d = dyn; d->d_tag != DT_NULL; d++) {
        uintptr_t p = dyn_addr(d, base);
        switch (d->d_tag) {
        case DT_SYMTAB:   symtab = (const ElfW(Sym) *)p; break;
        case DT_STRTAB:   strtab = (const char *)p; break;
        case DT_JMPREL:   rels[0] = (const ElfW(Rela) *)p; break;
        case DT_PLTRELSZ: relsz[0] = d->d_un.d_val; break;
        case DT_RELA:     rels[1] = (const ElfW(Rela) *)p; break;
        case DT_RELASZ:   relsz[1] = d->d_un.d_val; break;
        }
    }
    if (!symtab || !strtab) return 0;
    relro_arg rr = { base, 0, 0 };
    _ms_iterate_phdr(find_relro, &rr);
    unsigned changed = 0;
    for (int k = 0; k < 2; k++) {
        if (!rels[k]) continue;
        for (size_t i = 0; i < relsz[k] / sizeof(ElfW(Rela)); i++) {
            const ElfW(Rela) *r = &rels[k][i];
            unsigned type = (unsigned)ELF64_R_TYPE(r->r_info);
            if (type != R_JUMP_SLOT && type != R_GLOB_DAT && (type != R_ABS64 || r->r_addend)) continue;
            if (!ELF64_R_SYM(r->r_info)) continue;
            const ElfW(Sym) *sym = &symtab[ELF64_R_SYM(r->r_info)];
            changed += fn(arg, strtab + sym->st_name, sym, (void **)(base + r->r_offset), type == R_ABS64, &rr);
        }
    }
    return changed;
#else
    (void)base; (void)dyn; (void)fn; (void)arg;
    return 0;
#endif
}

typedef struct { const hook_t *hooks; unsigned n; } hooks_arg;

static unsigned hook_slot(void *arg, const char *name, const ElfW(Sym) *sym, void **slot, bool data,
                          const relro_arg *rr)
{
    (void)sym;
    const hooks_arg *h = arg;
    if (data) return 0;
    for (unsigned i = 0; i < h->n; i++)
        if (strcmp(name, h->hooks[i].name) == 0) {
            store(slot, h->hooks[i].fn, rr);
            return 1;
        }
    return 0;
}

/* Redirect the library's own calls of each hooked name; returns how many
 * entries were changed. */
static unsigned hook_library(void *handle, const hook_t *hooks, unsigned nhooks)
{
    struct link_map *lm = NULL;
    if (!handle || dlinfo(handle, RTLD_DI_LINKMAP, &lm) != 0 || !lm) return 0;
    hooks_arg h = { hooks, nhooks };
    return each_slot(lm->l_addr, lm->l_ld, hook_slot, &h);
}

/* ---- libraries opened with RTLD_DEEPBIND ------------------------------------------ *
 * Such a library, and every library its dlopen brought in, look symbols up
 * first in its own dependencies, where the C library's malloc comes before
 * memshim's.  Each of their entries for a function memshim defines (and
 * exports: the C library's and C++'s allocation functions, exit, dlopen,
 * dlclose, the calls that change ids) is pointed at memshim's, when the
 * library's own lookup gives the very definition memshim takes over in
 * the global scope (dlsym(handle) = dlsym(RTLD_NEXT)) and the library does
 * not define the name itself: a library bringing its own allocator keeps
 * it.  What memshim exports is read from its own dynamic symbol table. */
typedef struct {
    const ElfW(Sym) *symtab;
    const char      *strtab;
    const uint32_t  *gnu_hash;
    uintptr_t        base;
} self_syms_t;
static self_syms_t self_syms;
static pthread_once_t self_syms_once = PTHREAD_ONCE_INIT;

static void self_syms_find(void)
{
    Dl_info di;
    struct link_map *lm = NULL;
    if (!dladdr1((void *)(uintptr_t)&_ms_hook_deepbind, &di, (void **)&lm, RTLD_DL_LINKMAP) || !lm || !lm->l_ld)
        return;
    self_syms_t s = { .base = lm->l_addr };
    for (const ElfW(Dyn) *d = lm->l_ld; d->d_tag != DT_NULL; d++) {
        uintptr_t p = dyn_addr(d, s.base);
        if (d->d_tag == DT_SYMTAB) s.symtab = (const ElfW(Sym) *)p;
        else if (d->d_tag == DT_STRTAB) s.strtab = (const char *)p;
        else if (d->d_tag == DT_GNU_HASH) s.gnu_hash = (const uint32_t *)p;
    }
    if (s.symtab && s.strtab && s.gnu_hash) self_syms = s;
}

void _ms_hook_init(void) { pthread_once(&self_syms_once, self_syms_find); }   /* _ms_modules_init */

/* memshim's own exported function called name (not its API's), or NULL;
 * looked up as the loader does, through the GNU hash table. */
void *_ms_self_function(const char *name)
{
    pthread_once(&self_syms_once, self_syms_find);
    const self_syms_t *s = &self_syms;
    if (!s->gnu_hash || strncmp(name, "memshim_", 8) == 0) return NULL;
    uint32_t h = 5381;
    for (const unsigned char *c = (const unsigned char *)name; *c; c++) h = h * 33 + *c;
    uint32_t nbuckets = s->gnu_hash[0], symoffset = s->gnu_hash[1], bloom_words = s->gnu_hash[2];
    const uint32_t *buckets = (const uint32_t *)((const ElfW(Addr) *)(s->gnu_hash + 4) + bloom_words);
    const uint32_t *chain = buckets + nbuckets;
    if (!nbuckets) return NULL;
    uint32_t i = buckets[h % nbuckets];
    if (i < symoffset) return NULL;
    for (;; i++) {
        uint32_t h2 = chain[i - symoffset];
        const ElfW(Sym) *sym = &s->symtab[i];
        if ((h | 1) == (h2 | 1) && strcmp(name, s->strtab + sym->st_name) == 0)
            return sym->st_shndx != SHN_UNDEF && ELF64_ST_TYPE(sym->st_info) == STT_FUNC ?
                   (void *)(s->base + sym->st_value) : NULL;
        if (h2 & 1) return NULL;
    }
}

static unsigned deep_slot(void *arg, const char *name, const ElfW(Sym) *sym, void **slot, bool data,
                          const relro_arg *rr)
{
    if (sym->st_shndx != SHN_UNDEF) return 0;           /* its own definition */
    void *mine = _ms_self_function(name), *now = __atomic_load_n(slot, __ATOMIC_ACQUIRE);
    if (!mine || now == mine) return 0;
    /* the C library's dlsym: memshim's own would answer memshim's */
    void *deep = _ms_real_dlsym ? _ms_real_dlsym(arg, name) : NULL, *next = dlsym(RTLD_NEXT, name);
    if (!deep || deep != next) return 0;
    /* A word of data: only while it holds what the loader put there (the
     * library may have stored another function since).  A lazy PLT slot
     * holds the PLT's own address until its first call: changed anyway. */
    if (data && now != deep) return 0;
    store(slot, mine, rr);
    return 1;
}

/* The objects loaded from the one at `from` on (in the loader's order: it
 * and what came after it), collected under the loader's lock, where no
 * dlclose takes them away; dlsym, which takes the loader's other lock
 * (before that one, in dlopen), is called after. */
#define DEEP_OBJECTS 256
typedef struct {
    uintptr_t from;
    bool      seen;
    unsigned  n;
    struct { uintptr_t base; const ElfW(Dyn) *dyn; } obj[DEEP_OBJECTS];
} objects_arg;

static int collect_objects(struct dl_phdr_info *info, size_t size, void *arg)
{
    (void)size;
    objects_arg *o = arg;
    if (info->dlpi_addr == o->from) o->seen = true;
    if (!o->seen || o->n == DEEP_OBJECTS) return 0;
    for (int i = 0; i < info->dlpi_phnum; i++)
        if (info->dlpi_phdr[i].p_type == PT_DYNAMIC) {
            o->obj[o->n].base = info->dlpi_addr;
            o->obj[o->n].dyn = (const ElfW(Dyn) *)(info->dlpi_addr + info->dlpi_phdr[i].p_vaddr);
            o->n++;
        }
    return 0;
}

unsigned _ms_hook_deepbind(void *handle)
{
    struct link_map *lm = NULL;
    if (!handle || dlinfo(handle, RTLD_DI_LINKMAP, &lm) != 0 || !lm || !lm->l_addr) return 0;
    _ms_dlsym_resolve();
    objects_arg o = { .from = lm->l_addr };
    _ms_iterate_phdr(collect_objects, &o);
    unsigned changed = 0;
    for (unsigned i = 0; i < o.n; i++) changed += each_slot(o.obj[i].base, o.obj[i].dyn, deep_slot, handle);
    return changed;
}

/* ---- libunwind's signal masking ------------------------------------------------ *
 * libunwind blocks every signal around its locked sections -- its global
 * cache of register states (this build has no per-thread one) and its
 * walk of the loaded objects for each frame's unwind table -- so that a
 * signal handler of the same thread cannot re-enter it and wait for a lock
 * the thread holds.  Two system calls of ~0.5 us a section, several a
 * frame: 24,500 in a tracked cc1 compiling an empty file (a third of what
 * tracking adds to it), 127,000 compiling a file of 3,000 lines.  memshim
 * never re-enters it (_ms_busy through every unwind: an allocation in a
 * handler meanwhile takes no stack), so its own unwinds skip the masking
 * (_ms_unw_nomask, set by unwind.c) while libunwind is memshim's alone.
 * Once the program uses it too (an object it loaded needs libunwind, seen
 * at memshim's first unwind and after each load, or it opened libunwind
 * itself: gperftools' profiler unwinds in its SIGPROF handler), a handler
 * of the program could come into libunwind while memshim's unwind holds
 * its lock: every mask is then made again. */
__thread int _ms_unw_nomask __attribute__((tls_model("initial-exec")));
static int unw_shared;                    /* the program uses libunwind too: for good */

static int h_unw_sigprocmask(int how, const sigset_t *set, sigset_t *old)
{
    if (_ms_unw_nomask) {                 /* a pair, save and restore, within one unwind */
        if (old) sigemptyset(old);
        return 0;
    }
    return sigprocmask(how, set, old);
}

/* Whether an object of the program's needs libunwind (DT_NEEDED "libunwind..."). */
static int needs_libunwind(struct dl_phdr_info *info, size_t size, void *arg)
{
    (void)size;
    bool *found = arg;
    for (int i = 0; i < info->dlpi_phnum && !*found; i++) {
        if (info->dlpi_phdr[i].p_type != PT_DYNAMIC) continue;
        const ElfW(Dyn) *dyn = (const ElfW(Dyn) *)(info->dlpi_addr + info->dlpi_phdr[i].p_vaddr);
        const char *strtab = NULL;
        for (const ElfW(Dyn) *d = dyn; d->d_tag != DT_NULL; d++)
            if (d->d_tag == DT_STRTAB) strtab = (const char *)dyn_addr(d, info->dlpi_addr);
        for (const ElfW(Dyn) *d = dyn; strtab && d->d_tag != DT_NULL && !*found; d++)
            if (d->d_tag == DT_NEEDED && strncmp(strtab + d->d_un.d_val, "libunwind", 9) == 0) *found = true;
    }
    return *found;
}

static int first_object(struct dl_phdr_info *info, size_t size, void *arg)
{
    (void)size;
    *(unsigned long long *)arg = info->dlpi_adds;
    return 1;
}

/* Whether memshim's unwinds may skip libunwind's masking now: the loaded
 * objects looked at again when one was loaded since the last look (the
 * loader's count of loads; the caller holds _ms_loader_enter). */
bool _ms_unw_unshared(void)
{
    static unsigned long long seen;
    if (__atomic_load_n(&unw_shared, __ATOMIC_RELAXED)) return false;
    unsigned long long adds = 0;
    _ms_iterate_phdr(first_object, &adds);
    if (adds != __atomic_load_n(&seen, __ATOMIC_RELAXED)) {
        bool found = false;
        _ms_iterate_phdr(needs_libunwind, &found);
        if (found) __atomic_store_n(&unw_shared, 1, __ATOMIC_RELAXED);
        __atomic_store_n(&seen, adds, __ATOMIC_RELAXED);
    }
    return !__atomic_load_n(&unw_shared, __ATOMIC_RELAXED);
}

/* The program opens libunwind by name (dlopen): shared from now on.
 * memshim's own opens of it are made with _ms_unw_own set. */
__thread int _ms_unw_own __attribute__((tls_model("initial-exec")));
void _ms_unw_opened(const char *file)
{
    if (!_ms_unw_own && file && strstr(file, "libunwind")) __atomic_store_n(&unw_shared, 1, __ATOMIC_RELAXED);
}

/* Before libunwind's first unwind (its pipe is made then). */
void _ms_hook_libunwind(void *handle)
{
    static const hook_t hooks[] = {
        { "pipe2", (void *)h_pipe2 }, { "pipe", (void *)h_pipe }, { "read", (void *)h_read },
        { "close", (void *)h_close }, { "write", (void *)h_write }, { "syscall", (void *)h_syscall },
        { "open", (void *)h_open }, { "open64", (void *)h_open }, { "sigprocmask", (void *)h_unw_sigprocmask },
    };
    int saved = errno;
    hook_library(handle, hooks, sizeof hooks / sizeof *hooks);
    errno = saved;
}

/* libdw and the libelf it brought in: files close-on-exec and out of the way. */
void _ms_hook_libdw(void *handle)
{
    static const hook_t hooks[] = {
        { "open", (void *)h_dw_open }, { "open64", (void *)h_dw_open }, { "dup", (void *)h_dup },
        { "close", (void *)h_dw_close }, { "fopen", (void *)h_fopen }, { "fopen64", (void *)h_fopen },
        { "opendir", (void *)h_opendir }, { "closedir", (void *)h_closedir },
        { "mmap", (void *)h_dw_mmap }, { "mmap64", (void *)h_dw_mmap }, { "munmap", (void *)h_dw_munmap },
        { "mremap", (void *)h_dw_mremap },
    };
    int saved = errno;
    hook_library(handle, hooks, sizeof hooks / sizeof *hooks);
    void *elf = dlopen("libelf.so.1", RTLD_NOW | RTLD_LOCAL | RTLD_NOLOAD);
    if (elf) {
        hook_library(elf, hooks, sizeof hooks / sizeof *hooks);
        dlclose(elf);
    }
    errno = saved;
}
