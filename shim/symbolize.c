/* symbolize.c - turn a code address into function, file:line and module.
 *
 * elfutils' libdw reads the DWARF line tables and symbol tables of every
 * module mapped in the process.  It is loaded with dlopen(RTLD_LOCAL) the
 * first time a report needs it, so a program that never reports pays
 * nothing and none of libdw's or libelf's symbols can interpose the
 * program's own.  Without libdw, dladdr() still gives exported function
 * names and module+offset.  C++ names are demangled when libstdc++ is
 * loaded.  Results are cached per address.  Runs only outside the
 * allocator's locks (it allocates, with _ms_busy set so its own blocks get
 * no stacks).
 *
 * Fork: every call into libdw, libelf and the demangler is made under
 * sym_lock, and fork's prepare handler (init.c) takes sym_lock before the
 * allocator's locks.  So no thread is inside libdw when the process forks:
 * the child finds the Dwfl, the cache and libdw's own state consistent,
 * re-initialises sym_lock and goes on with them (its exit report needs
 * them).
 *
 * The loader: dladdr, dlsym and dlopen take the dynamic loader's lock,
 * which a thread running a library's constructor (inside dlopen) holds
 * already; a constructor that closes a library memshim watches comes here
 * for sym_lock (_ms_symbolize_keep).  So no thread calls the loader while
 * it holds sym_lock: a profile dump asking dladdr under it, while another
 * thread loaded a library whose constructor closed a plugin, waited for
 * the loader's lock while the constructor waited for sym_lock, for ever.
 * libdw itself is loaded once, under load_lock, which others wait for a
 * bounded time only (libdw_ready). */
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <elfutils/libdwfl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "dwline.h"
#include "shim.h"
#include "table.h"

static pthread_mutex_t sym_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_mutex_t load_lock = PTHREAD_MUTEX_INITIALIZER;  /* libdw's one load; before sym_lock */
static int tried;                 /* libdw's load was tried (atomic; set under both locks) */
static int load_held;             /* fork: fork_prepare got load_lock */
static unsigned naming;           /* threads between _ms_symbolize_begin and _end (sym_lock) */
static unsigned refreshes;        /* sym_lock: libdw's module list made anew (its names gone) */
static Dwfl *dwfl;
static int module_gone(Dwfl_Module *mod, void *ud, const char *name, Dwarf_Addr base, void *arg);
static Dwfl_Module *(*p_addrmodule)(Dwfl *, Dwarf_Addr);
static const char *(*p_addrname)(Dwfl_Module *, GElf_Addr);
static Dwfl_Line *(*p_getsrc)(Dwfl_Module *, Dwarf_Addr);
static const char *(*p_lineinfo)(Dwfl_Line *, Dwarf_Addr *, int *, int *, Dwarf_Word *, Dwarf_Word *);
static const char *(*p_modinfo)(Dwfl_Module *, void ***, Dwarf_Addr *, Dwarf_Addr *, Dwarf_Addr *,
                                Dwarf_Addr *, const char **, const char **);
static const char *(*p_addrinfo)(Dwfl_Module *, GElf_Addr, GElf_Off *, GElf_Sym *, GElf_Word *, Elf **,
                                 Dwarf_Addr *);
static int (*p_getsymtab)(Dwfl_Module *);
static ptrdiff_t (*p_getmodules)(Dwfl *, int (*)(Dwfl_Module *, void **, const char *, Dwarf_Addr, void *),
                                 void *, ptrdiff_t);
static Dwarf *(*p_getdwarf)(Dwfl_Module *, Dwarf_Addr *);
static const char *(*p_getsym_info)(Dwfl_Module *, int, GElf_Sym *, GElf_Addr *, GElf_Word *, Elf **,
                                    Dwarf_Addr *);

typedef struct { uintptr_t ip; ms_frame_t f; uint8_t level; } sym_ent;   /* ip: the key; level: how f was found */
static const ms_table_kind_t sym_kind = MS_TABLE_KIND(sym_ent, ip, 1024, _ms_meta_alloc, _ms_meta_free);
static ms_table_t *cache;         /* sym_lock: frames by code address (table.h) */

static void (*p_report_begin)(Dwfl *);
static int (*p_proc_report)(Dwfl *, pid_t);
static int (*p_maps_report)(Dwfl *, FILE *);
static int (*p_report_end)(Dwfl *, int (*)(Dwfl_Module *, void *, const char *, Dwarf_Addr, void *), void *);

/* load_lock, waiting at most LOAD_PATIENCE_MS for it (`wait`; else not
 * at all): its holder may be inside dlopen, waiting for the loader's lock
 * that this thread holds (a constructor's dlclose).  False: not taken. */
#define LOAD_PATIENCE_MS 2000
static bool load_lock_take(bool wait)
{
    struct timespec until;
    clock_gettime(CLOCK_REALTIME, &until);
    until.tv_sec += LOAD_PATIENCE_MS / 1000;
    _ms_held_add(&load_lock);
    if ((wait ? pthread_mutex_timedlock(&load_lock, &until) : pthread_mutex_trylock(&load_lock)) == 0) return true;
    _ms_held_drop(&load_lock);
    return false;
}

void _ms_symbolize_lock(void)
{
    load_held = load_lock_take(true);
    _ms_lock(&sym_lock);
}
void _ms_symbolize_unlock(bool child)
{
    if (child) {
        pthread_mutex_init(&sym_lock, NULL);
        pthread_mutex_init(&load_lock, NULL);
        naming = 0;                   /* the threads naming are the parent's */
        return;
    }
    _ms_unlock(&sym_lock);
    if (load_held) _ms_unlock(&load_lock);
}

static void load_libdw(void);
static int demangler_looked;      /* since the last refresh, when none was found */

/* libdw loaded, or its load tried (then dwfl says whether it worked); false
 * when another thread has been loading it for longer than this thread
 * waits: the caller goes without it this time, and the thread waits no
 * more until the load is done.  Not under sym_lock. */
static __thread bool load_waited __attribute__((tls_model("initial-exec")));
static bool libdw_ready(void)
{
    if (__atomic_load_n(&tried, __ATOMIC_ACQUIRE)) return true;
    /* dlopen waits for the loader's write lock, which a thread of the
     * program inside dl_iterate_phdr holds (unwind.c) */
    if (_ms_program_iterating()) return false;
    if (!load_lock_take(!load_waited)) {
        load_waited = true;
        return false;
    }
    if (!tried) load_libdw();
    _ms_unlock(&load_lock);
    return true;
}

/* The C++ demangler, once libstdc++ is loaded: looked for at most once
 * between two refreshes (a failed dlsym searches every module).  Not
 * under sym_lock. */
static char *(*p_demangle)(const char *, char *, size_t *, int *);
static void demangler_find(void)
{
    if (__atomic_load_n(&p_demangle, __ATOMIC_ACQUIRE) || __atomic_exchange_n(&demangler_looked, 1, __ATOMIC_RELAXED))
        return;
    void *d = dlsym(RTLD_DEFAULT, "__cxa_demangle");
    if (d) __atomic_store_n((void **)&p_demangle, d, __ATOMIC_RELEASE);
}

/* The modules mapped now reported to d (_ms_busy): libdw reads
 * /proc/TID/maps (the leader may be gone), and first /proc/TID/auxv for
 * the vDSO, which a process that is not dumpable may not open: after
 * PR_SET_DUMPABLE 0 (ssh-agent, gpg-agent, a program hiding its secrets)
 * or a change of ids, its /proc files are root's, and auxv is 0400.  libdw
 * then reported no module at all, and every frame of every report was
 * "???".  Then the maps alone (mode 0444), without the vDSO's name. */
static bool report_mapped(Dwfl *d)
{
    if (p_proc_report(d, _ms_os_gettid()) == 0) return true;
    int fd = p_maps_report ? _ms_os_proc_open("maps", O_RDONLY) : -1;
    FILE *f = fd >= 0 ? _ms_fd_stream(fd) : NULL;      /* fclose: memshim's close */
    if (!f) return false;
    bool ok = p_maps_report(d, f) == 0;
    fclose(f);
    return ok;
}

/* Modules may have come and gone since the last report: look again, and
 * keep the names given from here to _ms_symbolize_end valid.  A refresh
 * frees what libdw gave before it (its modules, their mapped ELF files),
 * and names are used after sym_lock is let go: a heap profile encoded in
 * one thread while another's dlclose refreshed compared freed strings
 * (SIGSEGV in strcmp, once in 40 runs of a test).  While any thread is
 * between begin and end, a refresh is skipped: libdw then does not know
 * the modules loaded since, and their frames get the loader's names. */
/* libdw's modules made anew (sym_lock, dwfl, no thread naming): those
 * mapped now if `look`, else none (their files closed). */
static void modules_anew(bool look)
{
    _ms_busy++;
    p_report_begin(dwfl);
    if (look) report_mapped(dwfl);
    p_report_end(dwfl, module_gone, NULL);            /* those not reported go */
    ms_table_clear(cache, &sym_kind);                 /* their names went with them */
    refreshes++;
    _ms_busy--;
}

void _ms_symbolize_begin(void)
{
    __atomic_store_n(&demangler_looked, 0, __ATOMIC_RELAXED);
    _ms_lock(&sym_lock);
    naming++;
    if (dwfl && naming == 1) modules_anew(true);
    _ms_unlock(&sym_lock);
}

/* libdw's modules dropped, and with them the files it keeps open (the
 * program's, its libraries', their debug files), when no thread is naming
 * frames; the next _ms_symbolize_begin reports them again.  For a caller
 * short of descriptors: under a low limit on them, those files sit on the
 * few the program left free (hook.c cannot move them out of its way), and
 * the leak scan after a heap profile found none for /proc/self/maps.
 * True if anything was dropped. */
bool _ms_symbolize_release(void)
{
    bool dropped = false;
    _ms_lock(&sym_lock);
    if (dwfl && naming == 0) {
        modules_anew(false);
        dropped = true;
    }
    _ms_unlock(&sym_lock);
    return dropped;
}

/* A session without the refresh: a heap-misuse message names a few frames
 * and prints each at once; another thread's refresh in between freed the
 * names it was printing. */
void _ms_symbolize_hold(void)
{
    _ms_lock(&sym_lock);
    naming++;
    _ms_unlock(&sym_lock);
}

void _ms_symbolize_end(void)
{
    _ms_lock(&sym_lock);
    if (naming) naming--;             /* 0: begun before a fork, in the parent */
    _ms_unlock(&sym_lock);
}

/* Before the program's chroot() (override.c): libdw loaded, and every
 * module's file and debugging information opened, while their names still
 * lead to them.  Inside the new root neither libdw nor those files may be
 * found, and a daemon's privilege-separated child also gives up the root
 * that /proc/self/map_files needs (find_elf, below): every frame read
 * "???".  Only where names will be wanted (tracking or a heap profile). */
static int open_module(Dwfl_Module *mod, void **ud, const char *name, Dwarf_Addr start, void *arg)
{
    Dwarf_Addr bias;
    p_getdwarf(mod, &bias);                 /* its ELF file first, then its debugging information */
    return DWARF_CB_OK;
}

void _ms_symbolize_before_chroot(void)
{
    /* not in a vfork child (its parent's memory), nor in a handler that
     * came in while its thread was inside memshim (the loader's or
     * symbolizer's lock may be that thread's) */
    if ((!_ms_track_on && !_ms_profiling()) || _ms_shares_memory_with_home() || _ms_inside_memshim()) return;
    int saved = errno;
    if (!libdw_ready()) { errno = saved; return; }
    _ms_symbolize_begin();                  /* the modules mapped now */
    _ms_lock(&sym_lock);
    if (dwfl && p_getmodules && p_getdwarf) {
        _ms_busy++;
        p_getmodules(dwfl, open_module, NULL, 0);
        _ms_busy--;
    }
    _ms_unlock(&sym_lock);
    _ms_symbolize_end();
    errno = saved;
}

/* libdw's finder of a module's file (dwfl_linux_proc_find_elf, which opens
 * it by name), and, where that fails, the mapped file itself: the mapping
 * holding the module's first address, /proc/self/map_files/START-END
 * (opened through the /proc/self memshim keeps, prim_linux.c), which holds
 * its symbols and debugging information whatever became of its name.
 * Every frame in such a module read "???":
 *   - a file removed or replaced since it was mapped (the maps say "PATH
 *     (deleted)"): a library a package upgrade replaced under a running
 *     server, a binary rebuilt or unlinked while it ran, a memfd's;
 *   - a process that chroot()ed (a daemon's privilege-separated child): its
 *     libraries' names lead nowhere inside the new root.
 * The kernel lets a process open map_files only with CAP_CHECKPOINT_RESTORE
 * (root).  Under sym_lock. */
static int (*p_find_elf)(Dwfl_Module *, void **, const char *, Dwarf_Addr, char **, Elf **);

typedef struct { uintptr_t addr; char *file; size_t cap; } mapped_at_t;

static bool mapping_at(char *line, void *arg)
{
    mapped_at_t *m = arg;
    char *end;
    uintptr_t lo = (uintptr_t)strtoull(line, &end, 16);
    if (*end != '-') return false;
    uintptr_t hi = (uintptr_t)strtoull(end + 1, NULL, 16);
    if (m->addr < lo || m->addr >= hi) return false;
    size_t span = strcspn(line, " ");                  /* START-END, as the maps write it */
    if (span + 11 <= m->cap) {
        memcpy(m->file, "map_files/", 10);
        memcpy(m->file + 10, line, span);
        m->file[10 + span] = 0;
    }
    return true;
}

static int find_elf(Dwfl_Module *mod, void **userdata, const char *name, Dwarf_Addr base, char **file_name,
                    Elf **elfp)
{
    int fd = p_find_elf(mod, userdata, name, base, file_name, elfp);
    if (fd >= 0 || *elfp) return fd;
    Dwarf_Addr low = 0;
    p_modinfo(mod, NULL, &low, NULL, NULL, NULL, NULL, NULL);
    char file[64] = "";
    if (!low || _ms_proc_lines("maps", mapping_at, &(mapped_at_t){ (uintptr_t)low, file, sizeof file }) != 1 ||
        !file[0])
        return fd;
    int f = _ms_hook_dw_open_self(file);
    return f >= 0 ? f : fd;
}

/* load_lock held, sym_lock not: the loader's part (dlopen, dlsym) first,
 * then libdw's under sym_lock. */
static void load_libdw(void)
{
    _ms_busy++;
    demangler_find();
    void *h = dlopen("libdw.so.1", RTLD_NOW | RTLD_LOCAL);
    if (!h) {
        __atomic_store_n(&tried, 1, __ATOMIC_RELEASE);
        _ms_busy--;
        return;
    }
    _ms_hook_libdw(h);                     /* its files close-on-exec and high (hook.c) */
    Dwfl *(*begin)(const Dwfl_Callbacks *) = dlsym(h, "dwfl_begin");
    p_proc_report = dlsym(h, "dwfl_linux_proc_report");
    p_maps_report = dlsym(h, "dwfl_linux_proc_maps_report");
    int (*report_end)(Dwfl *, int (*)(Dwfl_Module *, void *, const char *, Dwarf_Addr, void *), void *) =
        p_report_end = dlsym(h, "dwfl_report_end");
    p_report_begin = dlsym(h, "dwfl_report_begin");
    static Dwfl_Callbacks cb;
    p_find_elf = dlsym(h, "dwfl_linux_proc_find_elf");
    cb.find_elf = find_elf;
    /* Not dwfl_standard_find_debuginfo: it may start a debuginfod client,
     * which loads libcurl and goes to the network from inside a program's
     * exit.  Build-id lookup under /usr/lib/debug is local. */
    cb.find_debuginfo = dlsym(h, "dwfl_build_id_find_debuginfo");
    p_addrmodule = dlsym(h, "dwfl_addrmodule");
    p_addrname = dlsym(h, "dwfl_module_addrname");
    p_getsrc = dlsym(h, "dwfl_module_getsrc");
    p_lineinfo = dlsym(h, "dwfl_lineinfo");
    p_modinfo = dlsym(h, "dwfl_module_info");
    p_addrinfo = dlsym(h, "dwfl_module_addrinfo");
    p_getsymtab = dlsym(h, "dwfl_module_getsymtab");
    p_getsym_info = dlsym(h, "dwfl_module_getsym_info");
    p_getmodules = dlsym(h, "dwfl_getmodules");
    p_getdwarf = dlsym(h, "dwfl_module_getdwarf");
    _ms_dwline_init(h);                    /* else libdw reads every line */
    bool all = begin && p_proc_report && report_end && p_report_begin && p_find_elf && cb.find_debuginfo &&
               p_addrmodule && p_addrname && p_getsrc && p_lineinfo && p_modinfo;
    _ms_lock(&sym_lock);
    Dwfl *d = all ? begin(&cb) : NULL;
    if (d && report_mapped(d) && report_end(d, NULL, NULL) == 0) dwfl = d;
    __atomic_store_n(&tried, 1, __ATOMIC_RELEASE);
    _ms_unlock(&sym_lock);
    _ms_busy--;
}

/* Names demangled, by their mangled name's hash and length: a profile
 * or report names many addresses in one function, and each was demangled
 * anew (a tracked gcc -O2's heap profile: 102,160 calls of
 * __cxa_demangle, 3,600 instructions each, for its 99,000 frames).  The
 * demangled strings (the demangler's, from malloc under _ms_busy: internal
 * blocks) live as long as the process, across refreshes, which free the
 * mangled names libdw gave but not these.  A 64-bit hash with the length
 * tells names apart as the stack table's hash tells stacks (stacks.c).
 * sym_lock. */
typedef struct { uint64_t key; const char *demangled; } dem_ent;    /* demangled NULL: not C++ */
static const ms_table_kind_t dem_kind = MS_TABLE_KIND(dem_ent, key, 1024, _ms_meta_alloc, _ms_meta_free);
static ms_table_t *demangled;

static uint64_t name_key(const char *name)
{
    size_t n;
    uint64_t h = (_ms_str_hash(name, &n) ^ n) * 0x9E3779B97F4A7C15ULL;
    return h ? h : 1;
}

static const char *demangle(const char *name)
{
    if (!name || name[0] != '_' || name[1] != 'Z') return name;
    char *(*dm)(const char *, char *, size_t *, int *) = __atomic_load_n(&p_demangle, __ATOMIC_ACQUIRE);
    if (!dm) return name;
    uint64_t key = name_key(name);
    dem_ent *e = ms_table_find(demangled, &dem_kind, key, NULL, NULL);
    if (e) return e->demangled ? e->demangled : name;
    int status = -1;
    char *d = dm(name, NULL, NULL, &status);
    if (status != 0) d = NULL;
    if (ms_table_room(&demangled, &dem_kind)) ms_table_add(demangled, &dem_kind, &(dem_ent){ key, d });
    return d ? d : name;
}

/* ---- frames of unloaded modules (modules.c) ---------------------------------
 * Addresses of a module about to be dlclose'd are symbolized while it is
 * mapped, and kept, strings copied into memshim's memory, under a tag that
 * stack entries carry once the module is gone.  sym_lock. */
typedef struct { uintptr_t tagged; ms_frame_t f; } kept_t;
static kept_t  *kept;
static size_t   nkept, kept_cap;
static unsigned next_tag = 1;

static const char *keep_str(const char *s)
{
    if (!s) return NULL;
    size_t n = strlen(s) + 1;
    char *c = _ms_meta_alloc(n);
    if (c) memcpy(c, s, n);
    return c;
}

/* How much a frame is looked up for: the loader's dynamic symbols alone,
 * libdw's symbol tables, or those and the line (which loads the module's
 * DWARF, decompressing it: tens of milliseconds for the C library's). */
enum { SYM_DLADDR, SYM_NAMES, SYM_LINES };
static void symbolize(uintptr_t ip, ms_frame_t *f, int level, bool copy);

/* Frames of a loaded module's addresses that a dlclose kept and that the
 * module kept meaning (it stayed loaded): the next dlclose of it takes
 * them from here rather than symbolizing and copying them again (a plugin
 * opened and closed in a loop grew memshim's memory by a megabyte each
 * time).  One entry per address, sorted; `owner` names the module (its
 * name's hash and its base), whose unload drops its entries.  sym_lock. */
typedef struct { uintptr_t ip; uint64_t owner; ms_frame_t f; } standby_t;
static standby_t *standby;
static size_t     nstandby, standby_cap;

static uint64_t owner_of(const char *module, uintptr_t base)
{
    return _ms_str_hash(module, NULL) ^ base;
}

static standby_t *standby_find(uintptr_t ip, size_t nsorted)
{
    size_t lo = 0, hi = nsorted;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        if (standby[mid].ip < ip) lo = mid + 1;
        else hi = mid;
    }
    return lo < nsorted && standby[lo].ip == ip ? &standby[lo] : NULL;
}

#define MS_SORT_NAME standby_sort          /* by address */
#define MS_SORT_TYPE standby_t
#define MS_SORT_BEFORE(x, y) ((x)->ip < (y)->ip)
#include "sort.h"

/* got[i] for i in fresh (n of them) joins the entries (sym_lock). */
static void standby_add(const kept_t *got, const size_t *fresh, size_t n, uint64_t owner)
{
    standby_t *room = n ? _ms_meta_grow(standby, &standby_cap, nstandby, nstandby + n, sizeof *standby) : NULL;
    if (!room) return;
    standby = room;
    size_t sorted = nstandby;
    for (size_t i = 0; i < n; i++) {
        standby_t *e = standby_find(got[fresh[i]].tagged, sorted);
        if (e) { e->owner = owner; e->f = got[fresh[i]].f; continue; }   /* another module's, before */
        standby[nstandby++] = (standby_t){ got[fresh[i]].tagged, owner, got[fresh[i]].f };
    }
    standby_sort(standby, nstandby);
}

/* The module is gone (modules.c): its addresses may be another's next. */
void _ms_symbolize_unloaded(const ms_range_t *code, unsigned n)
{
    _ms_lock(&sym_lock);
    size_t j = 0;
    for (size_t i = 0; i < nstandby; i++)
        if (!_ms_in_ranges(standby[i].ip, code, n)) standby[j++] = standby[i];
    nstandby = j;
    _ms_unlock(&sym_lock);
}

/* The module's addresses, symbolized while it is still mapped, go in
 * `kept` under a new tag.  Possibly inside dlopen, holding the loader's
 * lock (a constructor's dlclose): sym_lock is taken only for libdw's and
 * the tables' part, and libdw's first load not waited for long (then its
 * frames get the loader's names). */
uintptr_t _ms_symbolize_keep(const char *module, uintptr_t base, const ms_range_t *code, unsigned n)
{
    enum { MAX_IPS = 1 << 16 };
    uintptr_t *ips = _ms_meta_alloc(MAX_IPS * sizeof *ips);
    if (!ips) return 0;
    size_t k = _ms_stack_ips_in(code, n, ips, MAX_IPS);
    if (k > MAX_IPS) k = MAX_IPS;
    uintptr_t tag = 0;
    uint64_t owner = owner_of(module, base);
    kept_t *got = k && next_tag < (1u << (63 - MS_IP_TAG_SHIFT)) ? _ms_meta_alloc(k * sizeof *got) : NULL;
    size_t *fresh = got ? _ms_meta_alloc(k * sizeof *fresh) : NULL;
    if (got && fresh) {
        int saved = errno;
        size_t nfresh = 0;
        _ms_busy++;
        _ms_lock(&sym_lock);
        for (size_t i = 0; i < k; i++) {
            const standby_t *e = standby_find(ips[i], nstandby);
            if (e && e->owner == owner) got[i] = (kept_t){ ips[i], e->f };
            else fresh[nfresh++] = i;
        }
        _ms_unlock(&sym_lock);
        if (nfresh) {
            libdw_ready();
            _ms_symbolize_begin();               /* libdw must know the module */
            for (size_t x = 0; x < nfresh; x++) {
                ms_frame_t f;
                symbolize(ips[fresh[x]], &f, SYM_LINES, true);
                got[fresh[x]] = (kept_t){ ips[fresh[x]], f };
            }
            _ms_symbolize_end();
        }
        _ms_lock(&sym_lock);
        standby_add(got, fresh, nfresh, owner);
        tag = (uintptr_t)next_tag++ << MS_IP_TAG_SHIFT;
        kept_t *room = _ms_meta_grow(kept, &kept_cap, nkept, nkept + k, sizeof *kept);
        if (room) kept = room;                   /* else as many as fit */
        for (size_t i = 0; i < k && nkept < kept_cap; i++) {
            got[i].tagged |= tag;
            kept[nkept++] = got[i];
        }
        _ms_unlock(&sym_lock);
        _ms_busy--;
        errno = saved;
    }
    if (fresh) _ms_meta_free(fresh, k * sizeof *fresh);
    if (got) _ms_meta_free(got, k * sizeof *got);
    _ms_meta_free(ips, MAX_IPS * sizeof *ips);
    return tag;
}

/* The module stayed loaded: its addresses keep their meaning, and their
 * frames stay in standby for its next dlclose; the tag is taken back when
 * it was the last one given. */
void _ms_symbolize_keep_cancel(uintptr_t tag)
{
    _ms_lock(&sym_lock);
    size_t j = 0;
    for (size_t i = 0; i < nkept; i++)
        if ((kept[i].tagged & ~MS_IP_MASK) != tag) kept[j++] = kept[i];
    nkept = j;
    if (tag >> MS_IP_TAG_SHIFT == next_tag - 1) next_tag--;
    _ms_unlock(&sym_lock);
}

/* `full`: libdw's names and file:line (report time); otherwise dladdr only,
 * which is cheap enough for a heap-misuse message. */
void _ms_symbolize(uintptr_t ip, ms_frame_t *f, bool full)
{
    int saved = errno;
    _ms_busy++;
    symbolize(ip, f, full ? SYM_LINES : SYM_DLADDR, false);
    _ms_busy--;
    errno = saved;
}

/* Function and module as libdw's symbol tables know them, without file
 * and line: enough to match suppressions by function. */
void _ms_symbolize_name(uintptr_t ip, ms_frame_t *f)
{
    int saved = errno;
    _ms_busy++;
    symbolize(ip, f, SYM_NAMES, false);
    _ms_busy--;
    errno = saved;
}

/* ---- function names: a sorted index per module ------------------------------------ *
 * libdw finds an address's symbol by searching the module's whole symbol
 * table: a big program's profile (tens of thousands of addresses in a
 * module of tens of thousands of symbols) spent seconds there.  Each
 * module's functions are sorted once, kept in the module's user data, and
 * searched by bisection; at one address the global name wins, then weak,
 * then local, as libdw chooses. */
typedef struct { uintptr_t addr, size; const char *name; int rank; uint32_t index; } fsym_t;   /* index: in the table */
typedef struct { size_t n, bytes; fsym_t s[]; } fsyms_t;
#define FSYMS_NONE ((fsyms_t *)1)              /* no symbol table: libdw's search */

/* What memshim keeps of a module, in its user data slot: its functions,
 * and what was read of its line tables (dwline.c).  Let go when libdw lets
 * the module go (module_gone). */
typedef struct { fsyms_t *fsyms; void *lines; } modkeep_t;

static modkeep_t *kept_of(Dwfl_Module *mod)
{
    void **ud = NULL;
    p_modinfo(mod, &ud, NULL, NULL, NULL, NULL, NULL, NULL);
    if (ud && !*ud) *ud = _ms_meta_alloc(sizeof(modkeep_t));       /* zeroed */
    return ud ? *ud : NULL;
}

/* dwfl_report_end's callback for a module no longer mapped: `ud` is the
 * address of its user data slot (libdwfl's MODCB_ARGS), not the data. */
static int module_gone(Dwfl_Module *mod, void *ud, const char *name, Dwarf_Addr base, void *arg)
{
    (void)mod, (void)name, (void)base, (void)arg;
    void **slot = ud;
    modkeep_t *k = slot ? *slot : NULL;
    if (!k) return DWARF_CB_OK;
    *slot = NULL;
    if (k->fsyms && k->fsyms != FSYMS_NONE) _ms_meta_free(k->fsyms, k->fsyms->bytes);
    _ms_dwline_free(k->lines);
    _ms_meta_free(k, sizeof *k);
    return DWARF_CB_OK;
}

/* By address, the best rank first, then the table's order */
#define MS_SORT_NAME fsym_sort
#define MS_SORT_TYPE fsym_t
#define MS_SORT_BEFORE(x, y) ((x)->addr != (y)->addr ? (x)->addr < (y)->addr : \
                              (x)->rank != (y)->rank ? (x)->rank > (y)->rank : (x)->index < (y)->index)
#include "sort.h"

static fsyms_t *fsyms_build(Dwfl_Module *mod)
{
    int n = p_getsymtab && p_getsym_info ? p_getsymtab(mod) : -1;
    if (n <= 1) return FSYMS_NONE;
    size_t bytes = sizeof(fsyms_t) + (size_t)n * sizeof(fsym_t);
    fsyms_t *t = _ms_meta_alloc(bytes);
    if (!t) return FSYMS_NONE;
    t->bytes = bytes;
    for (int i = 1; i < n; i++) {                 /* 0 is the null symbol */
        GElf_Sym sym;
        GElf_Addr addr = 0;
        GElf_Word shndx = 0;
        const char *name = p_getsym_info(mod, i, &sym, &addr, &shndx, NULL, NULL);
        int type = GELF_ST_TYPE(sym.st_info), bind = GELF_ST_BIND(sym.st_info);
        if (!name || !*name || sym.st_shndx == SHN_UNDEF || (type != STT_FUNC && type != STT_GNU_IFUNC)) continue;
        t->s[t->n++] = (fsym_t){ addr, sym.st_size, name, bind == STB_GLOBAL ? 2 : bind == STB_WEAK ? 1 : 0, (uint32_t)i };
    }
    fsym_sort(t->s, t->n);
    return t;
}

/* The function holding ip in mod, or NULL; *all: every symbol the module
 * has was looked at (the loader's dladdr would find no other). */
static const char *function_at(Dwfl_Module *mod, uintptr_t ip, bool *all)
{
    modkeep_t *k = kept_of(mod);
    *all = false;
    if (!k) return p_addrname(mod, ip);
    if (!k->fsyms) k->fsyms = fsyms_build(mod);
    const fsyms_t *t = k->fsyms;
    if (t == FSYMS_NONE) return p_addrname(mod, ip);
    *all = true;
    size_t lo = 0, hi = t->n;                     /* the first symbol above ip */
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        if (t->s[mid].addr <= ip) lo = mid + 1;
        else hi = mid;
    }
    if (!lo) return NULL;
    size_t i = lo - 1;
    while (i > 0 && t->s[i - 1].addr == t->s[i].addr) i--;   /* the best-ranked alias */
    const fsym_t *f = &t->s[i];
    return f->size == 0 || ip < f->addr + f->size ? f->name : NULL;
}

/* f's file and line, from the module's line table (its DWARF, loaded the
 * first time).  Not in the C library and the dynamic loader: their DWARF
 * is in separate debug files (when installed at all), tens of MB of
 * compressed sections; reading it for the frames of printf's buffer or
 * pthread_create's thread-local storage cost a short threaded program
 * ~80 ms and ~19 MB at exit, for lines in glibc's sources.  Their frames
 * keep their function names. */
static void add_line(Dwfl_Module *mod, uintptr_t ip, ms_frame_t *f)
{
    Dwarf_Addr start = 0;
    p_modinfo(mod, NULL, &start, NULL, NULL, NULL, NULL, NULL);
    if (_ms_runtime_at((uintptr_t)start) != MS_RT_NONE) return;
    modkeep_t *k = kept_of(mod);
    const char *file = NULL;
    int ln = 0;
    if (_ms_dwline_find(mod, k ? &k->lines : NULL, ip, &file, &ln) < 0) {   /* left to libdw */
        Dwfl_Line *line = p_getsrc(mod, ip);
        file = line ? p_lineinfo(line, NULL, &ln, NULL, NULL, NULL) : NULL;
    }
    if (file) { f->file = file; f->line = ln; }
}

/* What is known of ip at level, or found now (sym_lock held).  True: the
 * loader must be asked too (dladdr, not under sym_lock), and f stored
 * after (store_locked); false: f is complete (level lowered to what was
 * found). */
static bool lookup_locked(uintptr_t ip, ms_frame_t *f, int *level)
{
    bool full = *level > SYM_DLADDR;
    memset(f, 0, sizeof *f);
    f->ip = ip;
    if (ip & ~MS_IP_MASK) {                  /* an address of an unloaded module */
        for (size_t i = 0; i < nkept; i++)
            if (kept[i].tagged == ip) { *f = kept[i].f; break; }
        f->ip = ip & MS_IP_MASK;
        return false;
    }
    if (!ip) return false;                   /* no frame; and 0 is no key of the cache */
    sym_ent *e = ms_table_find(cache, &sym_kind, ip, NULL, NULL);
    if (e && (e->level >= *level || e->f.file || !dwfl)) {
        *f = e->f;
        return false;
    }
    if (e && e->level >= SYM_NAMES) {        /* named by libdw before: only the line to add */
        *f = e->f;
        Dwfl_Module *mod = p_addrmodule(dwfl, ip);
        if (mod) add_line(mod, ip, f);
        e->f = *f;
        e->level = (uint8_t)*level;
        return false;
    }
    bool named = false;                      /* no need to ask dladdr for a function */
    if (full && dwfl) {
        Dwfl_Module *mod = p_addrmodule(dwfl, ip);
        if (mod) {
            Dwarf_Addr start = 0;
            const char *mainfile = NULL;
            const char *modname = p_modinfo(mod, NULL, &start, NULL, NULL, NULL, &mainfile, NULL);
            f->module = mainfile ? mainfile : modname;
            f->offset = ip - start;
            f->function = demangle(function_at(mod, ip, &named));
            if (*level == SYM_LINES) add_line(mod, ip, f);
        }
    }
    if (!dwfl) *level = SYM_DLADDR;          /* what was found, not what was asked */
    return (!f->function && !named) || !f->module;
}

static void store_locked(uintptr_t ip, const ms_frame_t *f, int level)
{
    sym_ent *e = ms_table_find(cache, &sym_kind, ip, NULL, NULL);
    if (e) {                                 /* another thread's, meanwhile: the better stays */
        if (e->level <= level && !e->f.file) { e->f = *f; e->level = (uint8_t)level; }
    } else if (ms_table_room(&cache, &sym_kind)) {
        ms_table_add(cache, &sym_kind, &(sym_ent){ ip, *f, (uint8_t)level });
    }
}

/* ip's frame at level (SYM_*), from the cache, libdw and the loader, its
 * strings copied into memshim's memory if `copy` (libdw's are gone at the
 * next refresh, which another thread may make as soon as sym_lock is
 * free).  Not under sym_lock (the file's head: the loader): a refresh
 * made while the loader was asked (`refreshes` moved) means the names
 * libdw gave before it are gone, and ip is looked up again. */
static void symbolize(uintptr_t ip, ms_frame_t *f, int level, bool copy)
{
    if (level > SYM_DLADDR) libdw_ready();
    demangler_find();
    _ms_runtime_at(0);                       /* its first call asks dladdr: not under sym_lock (add_line) */
    for (;;) {
        int found = level;
        _ms_lock(&sym_lock);
        if (!lookup_locked(ip, f, &found)) break;
        unsigned seen = refreshes;
        _ms_unlock(&sym_lock);
        Dl_info di;
        bool known = dladdr((void *)ip, &di) != 0;
        _ms_lock(&sym_lock);
        if (refreshes != seen) { _ms_unlock(&sym_lock); continue; }
        if (known) {
            if (!f->function && di.dli_sname) f->function = demangle(di.dli_sname);
            if (!f->module) { f->module = di.dli_fname; f->offset = ip - (uintptr_t)di.dli_fbase; }
        }
        store_locked(ip, f, found);
        break;
    }
    if (copy) {
        f->function = keep_str(f->function);
        f->file = keep_str(f->file);
        f->module = keep_str(f->module);
    }
    _ms_unlock(&sym_lock);
}

/* ---- data addresses: the roots of retention paths ------------------------------ */

static const char *module_of_locked(Dwfl_Module *mod)
{
    const char *mainfile = NULL;
    const char *modname = p_modinfo(mod, NULL, NULL, NULL, NULL, NULL, &mainfile, NULL);
    return mainfile ? mainfile : modname;
}

void _ms_symbolize_data(uintptr_t addr, const char **sym, uintptr_t *off, const char **module)
{
    int saved = errno;
    *sym = NULL;
    *off = 0;
    *module = NULL;
    _ms_busy++;
    libdw_ready();
    demangler_find();
    _ms_lock(&sym_lock);
    Dwfl_Module *mod = dwfl ? p_addrmodule(dwfl, addr) : NULL;
    if (mod) {
        *module = module_of_locked(mod);
        GElf_Off o = 0;
        GElf_Sym es;
        const char *name = p_addrinfo ? p_addrinfo(mod, addr, &o, &es, NULL, NULL, NULL) : NULL;
        if (name && (es.st_size == 0 || o < es.st_size)) { *sym = demangle(name); *off = o; }
    }
    /* libdw counts an anonymous mapping that follows a module's data as its
     * bss, whole; the loader knows where the module's segments end (an
     * mmap the kernel merged with libunwind's bss was named its data). */
    _ms_unlock(&sym_lock);
    Dl_info di;
    if (!dladdr((void *)addr, &di)) *module = *sym = NULL;
    else if (!*module) *module = di.dli_fname;
    _ms_busy--;
    errno = saved;
}

void _ms_symbolize_tls(uintptr_t probe, uintptr_t tls_off, const char **sym, uintptr_t *off, const char **module)
{
    int saved = errno;
    *sym = NULL;
    *off = 0;
    *module = NULL;
    _ms_busy++;
    libdw_ready();
    demangler_find();
    _ms_lock(&sym_lock);
    Dwfl_Module *mod = dwfl && probe ? p_addrmodule(dwfl, probe) : NULL;
    if (mod) {
        *module = module_of_locked(mod);
        int n = p_getsymtab && p_getsym_info ? p_getsymtab(mod) : -1;
        for (int i = 1; i < n; i++) {
            GElf_Sym es;
            const char *name = p_getsym_info(mod, i, &es, NULL, NULL, NULL, NULL);
            if (!name || GELF_ST_TYPE(es.st_info) != STT_TLS) continue;
            if (tls_off >= es.st_value && tls_off < es.st_value + (es.st_size ? es.st_size : 1)) {
                *sym = demangle(name);
                *off = tls_off - es.st_value;
                break;
            }
        }
    }
    _ms_unlock(&sym_lock);
    if (!*module && probe) {
        Dl_info di;
        if (dladdr((void *)probe, &di)) *module = di.dli_fname;
    }
    _ms_busy--;
    errno = saved;
}
