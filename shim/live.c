/* live.c - the live region (layout and protocol in live.h): the process's
 * current figures, rewritten by the reporter thread (sampler.c) every
 * MEMSHIM_LIVE_INTERVAL ms, so that `memshim stats PID` can read them
 * without stopping or signalling the process.
 *
 * Why a memfd written with pwrite rather than a mapped /dev/shm file: it
 * leaves nothing behind when the process dies by a signal or execs, and it
 * needs no mapping of our own.  The region is touched only by the reporter
 * thread (and by the constructor before that thread exists), so no lock.
 * The memfd is registered as memshim's (fds.c): the program's closes leave
 * it alone.  Before each write the descriptor is checked to still be our
 * memfd: a program that replaced the number (dup2, or a close by its own
 * system call) must never find our bytes in its own file. */
#include <errno.h>
#include <fcntl.h>
#include <stddef.h>
#include <string.h>
#include <sys/mman.h>       /* memfd_create */
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include "shim.h"
#include "live.h"

/* The public arrays that mirror an internal count. */
_Static_assert(MS_NCLASSES <= MS_LIVE_MAX_CLASSES, "live region too small for the classes");
_Static_assert(MS_GC_NGEN == sizeof ((ms_live_t *)0)->gc_gen_collections / sizeof (uint64_t),
               "one figure per generation");
_Static_assert(MS_NKINDS == sizeof ((ms_live_t *)0)->leak_blocks / sizeof (uint64_t),
               "one figure per kind");

static int       live_fd = -1;
static dev_t     live_dev;
static ino_t     live_ino;
static ms_live_t live;           /* the writer's copy */

static uint64_t unix_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static bool still_ours(void) { return _ms_os_same_file(live_fd, live_dev, live_ino); }

static void put(const void *p, size_t n, off_t off) { _ms_out_write_at(live_fd, p, n, off); }

/* A region's fixed part: who publishes it, how often, in which layout
 * (the live region and the MEMSHIM_METRICS file start alike). */
void _ms_live_header(ms_live_t *l, unsigned interval_ms)
{
    memset(l, 0, sizeof *l);
    l->magic = MS_LIVE_MAGIC;
    l->version = MS_LIVE_VERSION;
    l->size = sizeof *l;
    l->pid = (int32_t)getpid();
    l->nclasses = MS_NCLASSES;
    l->interval_ms = interval_ms;
    _ms_program_name(l->program, sizeof l->program);
}

/* A new memfd for the region, moved out of the program's way; false (errno
 * set) if none can be made. */
static bool make_region(void)
{
    char name[48];
    ms_buf_t b;
    _ms_buf_init(&b, name, sizeof name - 1, -1);
    _ms_bprintf(&b, "%s%d", MS_LIVE_NAME, (int)getpid());
    name[b.len] = 0;
    ms_birth_t birth;
    _ms_fd_birth_begin(&birth, 1);
    int fd = memfd_create(name, MFD_CLOEXEC);
    _ms_fd_born(&birth, &fd, 1);
    struct stat st;
    bool fits = fd < 0 || _ms_out_fits(fd, 0, sizeof live);       /* no SIGXFSZ */
    if (!fits) errno = EFBIG;
    if (fd < 0 || !fits || fchmod(fd, 0600) != 0 || ftruncate(fd, sizeof live) != 0 || fstat(fd, &st) != 0) {
        int err = errno;
        if (fd >= 0) _ms_fd_close(fd);
        errno = err;
        return false;
    }
    live_fd = fd;
    live_dev = st.st_dev;
    live_ino = st.st_ino;
    return true;
}

static const char *region_error(int err)
{
    return err == ENOSYS ? "no memfd_create" : err == EFBIG ? "over RLIMIT_FSIZE" : "memfd";
}

bool _ms_live_open(void)
{
    int saved = errno;
    if (!make_region()) {
        _ms_message("MEMSHIM_LIVE: cannot create the live region (%s); not publishing", region_error(errno));
        errno = saved;
        return false;
    }
    _ms_live_header(&live, _ms_ropt.live_interval_ms);
    live.start_unix_ms = unix_ms();
    _ms_live_publish();
    errno = saved;
    return true;
}

/* The last leak report's totals, written under the report lock (report.c)
 * and read by the reporter thread: a seqlock, so that neither waits. */
static struct {
    uint64_t seq, checks, unix_ms;
    uint64_t blocks[MS_NKINDS], bytes[MS_NKINDS];
} leaks;

void _ms_live_note_leaks(const double blocks[MS_NKINDS], const double bytes[MS_NKINDS])
{
    __atomic_add_fetch(&leaks.seq, 1, __ATOMIC_ACQ_REL);            /* odd */
    for (unsigned k = 0; k < MS_NKINDS; k++) {
        __atomic_store_n(&leaks.blocks[k], (uint64_t)_ms_round(blocks[k]), __ATOMIC_RELAXED);
        __atomic_store_n(&leaks.bytes[k], (uint64_t)_ms_round(bytes[k]), __ATOMIC_RELAXED);
    }
    __atomic_store_n(&leaks.unix_ms, unix_ms(), __ATOMIC_RELAXED);
    __atomic_add_fetch(&leaks.checks, 1, __ATOMIC_RELAXED);
    __atomic_add_fetch(&leaks.seq, 1, __ATOMIC_ACQ_REL);            /* even */
}

static void copy_leaks(ms_live_t *l)
{
    for (int attempt = 0; attempt < 100; attempt++) {
        uint64_t seq = __atomic_load_n(&leaks.seq, __ATOMIC_ACQUIRE);
        if (seq & 1) { _ms_raw_nap_ns(10000); continue; }
        l->leak_checks = __atomic_load_n(&leaks.checks, __ATOMIC_RELAXED);
        l->leak_unix_ms = __atomic_load_n(&leaks.unix_ms, __ATOMIC_RELAXED);
        for (unsigned k = 0; k < MS_NKINDS; k++) {
            l->leak_blocks[k] = __atomic_load_n(&leaks.blocks[k], __ATOMIC_RELAXED);
            l->leak_bytes[k] = __atomic_load_n(&leaks.bytes[k], __ATOMIC_RELAXED);
        }
        if (__atomic_load_n(&leaks.seq, __ATOMIC_ACQUIRE) == seq) return;
    }
    l->leak_checks = 0;                   /* kept changing: none this time */
}

/* The figures as they are now, into everything of *l but its header (magic
 * to program, updates and the seq).  smaps: uss, pss and swap too, from
 * smaps_rollup (MEMSHIM_METRICS; the live region leaves that cost to its
 * reader). */
void _ms_live_fill(ms_live_t *l, bool smaps)
{
    ms_stats_t st;
    ms_rss_t rss;
    ms_gc_figures_t gc;
    _ms_stats_collect(&st);
    _ms_rss_read(&rss, smaps);
    memset(&gc, 0, sizeof gc);
    bool gc_ran = _ms_gc_figures(&gc) > 0 && gc.collections > 0;

    l->updated_unix_ms = unix_ms();
    l->have_smaps = smaps;
#define RSS(m, ...)                 l->m = rss.m;
#define RSS_NOT_LIVE(...)
    MS_RSS_FIGURES(RSS, RSS_NOT_LIVE)
#define HEAP(sec, key, m, f, ...)   l->f = st.m;
#define HEAP_NOT_LIVE(...)
    MS_HEAP_FIGURES(HEAP, HEAP_NOT_LIVE)
#define GC(m, ...)                  l->gc_##m = gc.m;
    MS_GC_FIGURES(GC)
    l->gc_ran = gc_ran;
    for (unsigned g = 0; g < MS_GC_NGEN; g++) {
#define GEN(m)              l->gc_gen_##m[g] = gc.gen_##m[g];
        MS_GC_GEN_FIGURES(GEN)
    }
#define CLASS(m, f, ...)            l->cls[c].f = st.cls[c].m;
#define DERIVED(...)
    for (unsigned c = 0; c < MS_NCLASSES; c++) { MS_CLASS_FIGURES(CLASS, DERIVED) }
    copy_leaks(l);
}

void _ms_live_publish(void)
{
    if (live_fd < 0) return;
    int saved = errno;
    /* A program that replaced the region's number (dup2, or a close by a
     * system call of its own): the region is made again, under the same
     * name, for `memshim stats PID` to find. */
    if (!still_ours() && !make_region()) {
        _ms_message("MEMSHIM_LIVE: the program closed the live region, which cannot be made again (%s); "
                    "not publishing", region_error(errno));
        live_fd = -1;
        errno = saved;
        return;
    }
    _ms_live_fill(&live, false);           /* our copy: the region's seq is still even */
    live.updates++;
    live.seq++;                                           /* odd: being rewritten */
    put(&live.seq, sizeof live.seq, offsetof(ms_live_t, seq));
    put(&live, sizeof live, 0);
    live.seq++;                                           /* even: consistent */
    put(&live.seq, sizeof live.seq, offsetof(ms_live_t, seq));
    errno = saved;
}

/* At exit the region goes with our descriptor.  In a fork child the
 * descriptor is the parent's region: close it without writing. */
void _ms_live_close(void)
{
    int saved = errno;
    if (live_fd >= 0 && still_ours()) _ms_fd_close(live_fd);
    live_fd = -1;
    errno = saved;
}
