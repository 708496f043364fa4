/* sampler.c - the reporter thread: memshim's one helper thread, started
 * only when a reporting option asks for it, that
 *   - appends a line to the RSS log every MEMSHIM_RSS_INTERVAL ms
 *     (time, then MS_RSS_LOG_FIGURES: rss, peak rss, heap bytes in use,
 *     heap bytes mapped), and
 *     when tracking, the top allocation sites' live bytes (profile.c),
 *   - rewrites the live region every MEMSHIM_LIVE_INTERVAL ms (live.c),
 *   - rewrites the MEMSHIM_METRICS file every MEMSHIM_METRICS_INTERVAL ms
 *     (metrics.c), removed at exit,
 *   - writes the statistics when MEMSHIM_STATS_SIGNAL arrives,
 *   - makes a leak report when MEMSHIM_REPORT_SIGNAL arrives (leak.c),
 *   - writes a heap profile when MEMSHIM_PROFILE_SIGNAL arrives, and every
 *     MEMSHIM_PROFILE_INTERVAL ms (profile.c),
 *   - and, whenever it wakes, gives back freed memory past MEMSHIM_DECAY
 *     (segment.c, huge.c), as the allocation path does when it runs.
 *
 * It never calls malloc: lines are formatted in a stack buffer and written
 * with one write(2) each, so a crash loses at most the interval under way.
 * (glibc's pthread_create itself makes one small calloc for the new thread's
 * TLS vector, memshim's own block; that is the thread's whole footprint on
 * the heap.)  It blocks
 * every signal, so the program's handlers never run on it.  It waits on a
 * semaphore with a CLOCK_MONOTONIC deadline: the signal handler and exit post
 * the semaphore (sem_post is async-signal-safe) to wake it early.
 *
 * Fork: the thread does not survive in the child.  The child's atfork
 * handler (init.c) closes the parent's log and live region without touching
 * them, then starts a thread of its own when it has something to do: a live
 * region for its own pid (MEMSHIM_LIVE), the stats signal, or an RSS log or
 * metrics file whose name contains %p and so names a file of its own.  An
 * RSS log or metrics file without %p stays the parent's alone.
 *
 * Exit: _ms_reporter_stop (from stats.c's exit hook) asks the thread for a
 * last sample and waits for it at most two seconds. */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <semaphore.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include "shim.h"

#define STACK_SIZE ((size_t)1 << 20)        /* a leak report's scan and symbolization */

static struct {
    pthread_t thread;
    bool      running;       /* a thread was started and not yet stopped */
    sem_t     wake, done;
    int       stop, dump, leak;  /* requests, set before posting `wake` (stop: STOP_*) */
    int       tid;           /* the thread's, while it runs */
    int       pid;           /* the process it was started in */
    int       profile;       /* MEMSHIM_PROFILE_SIGNAL arrived: write a heap profile */
    int       leader_left;   /* main() left by pthread_exit: the last thread ends the process */
    bool      ending;        /* the reporter itself calls exit(): _ms_reporter_stop */
    bool      profiling;     /* heap profiles every MEMSHIM_PROFILE_INTERVAL ms */
    bool      logging;       /* an RSS log is kept (log_out) */
    bool      metrics;       /* a MEMSHIM_METRICS file is kept (metrics.c) */
    bool      forked;        /* started in a forked child: its metrics file waits an
                              * interval (reporter_main) */
    uint64_t  t0;            /* CLOCK_MONOTONIC ns at the first sample */
    uint64_t  samples;
    uint64_t  peak;          /* the highest peak_rss logged so far */
} rep;
static ms_out_t log_out;     /* the RSS log: out.c checks and reopens its descriptor */
enum { STOP_NONE, STOP_END, STOP_HOLD };   /* STOP_HOLD: to be started again, no trailer */

static uint64_t now_ns(void) { return _ms_os_now_ns(); }

/* ---- the RSS log ---------------------------------------------------------- */

static void log_write(ms_buf_t *b)
{
    b->fd = rep.logging ? _ms_out_fd(&log_out) : -1;
    if (log_out.kind == MS_OUT_NONE) rep.logging = false;    /* gone for good, said once */
    _ms_buf_flush(b);
}

static bool log_open(void)
{
    return _ms_out_open(&log_out, "MEMSHIM_RSS_LOG", _ms_ropt.rss_log, MS_OUT_STREAM);
}

static void log_close(void)
{
    if (rep.logging) _ms_out_commit(&log_out);
    rep.logging = false;
}

static void log_header(void)
{
    char mem[1024], prog[512];
    ms_buf_t b;
    _ms_buf_init(&b, mem, sizeof mem, -1);
    _ms_program_name(prog, sizeof prog);
    for (char *p = prog; *p; p++) if (*p == '\n') *p = ' ';
    struct timespec rt;
    clock_gettime(CLOCK_REALTIME, &rt);
    _ms_bprintf(&b, "# memshim rss-log 1\n# pid %d interval_ms %u start_unix_ms %llu\n# program %s\n# time_ms",
                (int)getpid(), _ms_ropt.rss_interval_ms,
                (unsigned long long)rt.tv_sec * 1000 + (unsigned long long)rt.tv_nsec / 1000000, prog);
#define COLUMN_NAME(m) _ms_bprintf(&b, " " #m);
    MS_RSS_LOG_FIGURES(COLUMN_NAME)
    _ms_bprintf(&b, "\n");
    log_write(&b);
    _ms_prof_sites_reset();
}

/* One line: milliseconds since the first sample, then the byte counts of
 * MS_RSS_LOG_FIGURES. */
static void sample(uint64_t now)
{
    ms_stats_t st;                    /* one /proc/self/status read, each lock briefly */
    _ms_stats_collect(&st);
    /* VmHWM is not monotonic: the kernel folds the current RSS into it only
     * on some paths (munmap, exit), not on MADV_DONTNEED.  Keep our own max. */
    if (st.peak_rss < st.rss) st.peak_rss = st.rss;
    if (st.peak_rss < rep.peak) st.peak_rss = rep.peak;
    rep.peak = st.peak_rss;
#define ONE_MORE(m) + 1
    char mem[21 * (1 MS_RSS_LOG_FIGURES(ONE_MORE)) + 1];   /* whole: one write(2) */
    ms_buf_t b;
    _ms_buf_init(&b, mem, sizeof mem, -1);
    _ms_bprintf(&b, "%llu", (unsigned long long)((now - rep.t0) / 1000000));
#define COLUMN(m) _ms_bprintf(&b, " %llu", (unsigned long long)st.m);
    MS_RSS_LOG_FIGURES(COLUMN)
    _ms_bprintf(&b, "\n");
    log_write(&b);
    rep.samples++;
    char smem[16384];                 /* the top sites: at most 8 names of < 1 KiB */
    _ms_buf_init(&b, smem, sizeof smem, -1);
    _ms_prof_sites_line(&b, (now - rep.t0) / 1000000, now);
    log_write(&b);
}

static void log_trailer(uint64_t now)
{
    struct timespec cpu;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &cpu);
    char mem[160];
    ms_buf_t b;
    _ms_buf_init(&b, mem, sizeof mem, -1);
    _ms_bprintf(&b, "# end samples %llu wall_ms %llu sampler_cpu_us %llu\n",
                (unsigned long long)rep.samples, (unsigned long long)((now - rep.t0) / 1000000),
                (unsigned long long)cpu.tv_sec * 1000000 + (unsigned long long)cpu.tv_nsec / 1000);
    log_write(&b);
}

/* ---- the thread ------------------------------------------------------------ */

/* Whether this thread (the reporter) is all that is left of the process:
 * the leader, gone by pthread_exit(), is a zombie, and the thread count is
 * it and us.  glibc's last thread calls exit(0); a program's last thread
 * ending left the reporter running for ever, the process with it. */
static bool last_thread(void)
{
    char st[1024];
    ssize_t n = _ms_os_read_proc("stat", st, sizeof st, true);   /* the leader's, zombie or not */
    if (n <= 0) return false;
    const char *p = strrchr(st, ')');
    if (!p || p[1] != ' ' || p[2] != 'Z') return false;
    p += 3;
    for (int field = 4; field < 20 && p; field++) p = strchr(p + 1, ' ');   /* to num_threads, field 20 */
    return p && strtol(p + 1, NULL, 10) == 2;
}

/* A thread of the program is ending (tcache.c): after the leader, the
 * reporter looks at each ending thread whether it was the last. */
void _ms_reporter_thread_left(void)
{
    if (!rep.running) return;
    if (_ms_os_gettid() == getpid()) __atomic_store_n(&rep.leader_left, 1, __ATOMIC_RELEASE);
    if (__atomic_load_n(&rep.leader_left, __ATOMIC_ACQUIRE)) sem_post(&rep.wake);
}

static void *reporter_main(void *arg)
{
    (void)arg;
    int before = rep.tid;                       /* 0, or the thread a hold ended */
    rep.tid = _ms_os_gettid();
    _ms_internal_thread_moved(before, rep.tid); /* the leak scan does not park us (scan.c) */
    _ms_os_status_keep();                       /* no descriptor opened at each tick (prim_linux.c) */
    uint64_t log_every = (uint64_t)_ms_ropt.rss_interval_ms * 1000000;
    uint64_t live_every = (uint64_t)_ms_ropt.live_interval_ms * 1000000;
    uint64_t metrics_every = (uint64_t)_ms_ropt.metrics_interval_ms * 1000000;
    /* A forked child's metrics file comes after one interval, not at once: a
     * child that execs at once, or is killed at once (gdb kills the child it
     * forks to probe ptrace), then leaves no file of a process gone. */
    uint64_t next_log = rep.t0, next_live = rep.t0 + live_every;
    uint64_t next_metrics = rep.t0 + (rep.forked ? metrics_every : 0);
    uint64_t profile_every = (uint64_t)(_ms_opt.profile_interval_ms < 100 ? 100 : _ms_opt.profile_interval_ms) * 1000000;
    uint64_t next_profile = rep.t0 + profile_every;
    for (;;) {
        uint64_t now = now_ns();
        if (__atomic_load_n(&_ms_confined, __ATOMIC_ACQUIRE)) {   /* a filter for every thread may refuse /proc */
            if (__atomic_load_n(&rep.stop, __ATOMIC_ACQUIRE)) break;
            sem_wait(&rep.wake);
            continue;
        }
        _ms_segment_decay(now);                  /* while it runs, freed memory decays */
        _ms_huge_decay(now);                     /* even in a program that stopped allocating */
        if (rep.logging && now >= next_log) {
            sample(now);
            next_log += log_every;
            if (next_log <= now) next_log = now + log_every;   /* fell behind: skip, don't burst */
        }
        if (_ms_ropt.live && now >= next_live) {
            _ms_live_publish();
            next_live += live_every;
            if (next_live <= now) next_live = now + live_every;
        }
        if (rep.metrics && now >= next_metrics) {
            _ms_metrics_write();
            next_metrics += metrics_every;
            if (next_metrics <= now) next_metrics = now + metrics_every;
        }
        if (rep.profiling && now >= next_profile) {
            _ms_profile_write(_ms_opt.profile, "interval");
            next_profile += profile_every;
            if (next_profile <= now) next_profile = now + profile_every;
        }
        if (__atomic_exchange_n(&rep.dump, 0, __ATOMIC_ACQ_REL))
            _ms_stats_write(_ms_opt.stats);
        if (__atomic_exchange_n(&rep.leak, 0, __ATOMIC_ACQ_REL))
            _ms_leak_report(0, NULL);          /* our own thread: no stack of the program */
        if (__atomic_exchange_n(&rep.profile, 0, __ATOMIC_ACQ_REL))
            _ms_profile_write(_ms_opt.profile, "signal");
        if (__atomic_load_n(&rep.stop, __ATOMIC_ACQUIRE)) break;
        bool leader_left = __atomic_load_n(&rep.leader_left, __ATOMIC_ACQUIRE);
        if (leader_left && last_thread()) {
            rep.ending = true;          /* exit's destructors stop us: this thread, no join */
            exit(0);
        }
        uint64_t deadline = UINT64_MAX;
        if (rep.logging) deadline = next_log;
        if (_ms_ropt.live && next_live < deadline) deadline = next_live;
        if (rep.metrics && next_metrics < deadline) deadline = next_metrics;
        if (rep.profiling && next_profile < deadline) deadline = next_profile;
        if (deadline == UINT64_MAX) deadline = now + (uint64_t)3600 * 1000000000;
        /* after the leader, look again every 50 ms (a read of /proc/self/stat):
         * the last thread may end without passing tcache.c */
        if (leader_left && deadline > now + 50000000) deadline = now + 50000000;
        struct timespec ts = { (time_t)(deadline / 1000000000), (long)(deadline % 1000000000) };
        while (sem_clockwait(&rep.wake, CLOCK_MONOTONIC, &ts) != 0 && errno == EINTR)
            ;
    }
    if (rep.logging && !__atomic_load_n(&_ms_confined, __ATOMIC_ACQUIRE) &&
        __atomic_load_n(&rep.stop, __ATOMIC_ACQUIRE) != STOP_HOLD) {
        uint64_t now = now_ns();
        sample(now);
        log_trailer(now);
    }
    sem_post(&rep.done);
    return NULL;
}

/* The handlers of MEMSHIM_STATS_SIGNAL and MEMSHIM_REPORT_SIGNAL: ask the
 * thread for a table or a report (both, if both are one signal). */
static void on_signal(int sig)
{
    int saved = errno;
    if (sig == _ms_ropt.stats_signal) __atomic_store_n(&rep.dump, 1, __ATOMIC_RELEASE);
    if (sig == _ms_opt.report_signal) __atomic_store_n(&rep.leak, 1, __ATOMIC_RELEASE);
    if (sig == _ms_opt.profile_signal) __atomic_store_n(&rep.profile, 1, __ATOMIC_RELEASE);
    sem_post(&rep.wake);
    errno = saved;
}

/* Whether the thread has anything to do, given the RSS log and the metrics
 * file it would keep (a forked child keeps them only when they are its own). */
static bool needed(bool with_log, bool with_metrics)
{
    return with_log || with_metrics || _ms_ropt.live || _ms_ropt.stats_signal || _ms_opt.report_signal ||
           _ms_opt.profile_signal || rep.profiling;
}

/* Ask the thread to end (STOP_END: after a last sample) and wait for it,
 * two seconds at most; true if it ended.  Its kept status file was its
 * own (/proc/thread-self); its slot among memshim's threads stays, for its
 * stack and for the thread a hold starts next. */
static bool end_thread(int how)
{
    __atomic_store_n(&rep.stop, how, __ATOMIC_RELEASE);
    sem_post(&rep.wake);
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    ts.tv_sec += 2;
    int rc;
    while ((rc = sem_clockwait(&rep.done, CLOCK_MONOTONIC, &ts)) != 0 && errno == EINTR)
        ;
    if (rc != 0) return false;
    pthread_join(rep.thread, NULL);
    _ms_os_status_forget();
    return true;
}

/* The thread made (0), or pthread_create's error.  What pthread_create
 * allocates for it (its TLS vector) is memshim's own (_ms_busy): counted
 * in the program's heap profile, it was a 304-byte block at
 * _ms_reporter_start in every profile of a run with the thread (found by a
 * helper). */
static int spawn(void)
{
    sigset_t old;
    _ms_os_signals_hold(&old);                    /* inherited by the new thread */
    _ms_busy++;
    pthread_attr_t attr;
    pthread_attr_init(&attr);
    pthread_attr_setstacksize(&attr, STACK_SIZE);
    int rc = pthread_create(&rep.thread, &attr, reporter_main, NULL);
    if (rc == EINVAL) rc = pthread_create(&rep.thread, NULL, reporter_main, NULL); /* big static TLS */
    pthread_attr_destroy(&attr);
    _ms_busy--;
    _ms_os_signals_restore(&old);
    if (rc == 0) pthread_setname_np(rep.thread, "memshim");
    return rc;
}

static void start(bool with_log, bool with_metrics)
{
    sem_init(&rep.wake, 0, 0);
    sem_init(&rep.done, 0, 0);
    rep.stop = rep.dump = rep.leak = rep.profile = 0;
    rep.samples = 0;
    rep.peak = 0;
    rep.logging = false;
    if (with_log && !log_open()) with_log = false;
    rep.logging = with_log;
    if (_ms_ropt.live && !_ms_live_open()) _ms_ropt.live = 0;
    rep.metrics = with_metrics;
    if (!needed(with_log, with_metrics)) return;
    rep.t0 = now_ns();
    rep.pid = (int)getpid();
    if (with_log) log_header();

    int rc = spawn();
    if (rc != 0) {
        _ms_message("cannot start the reporter thread (error %d): no RSS log, live figures, "
                    "metrics file, stats or report signal", rc);
        log_close();
        _ms_live_close();
        return;
    }
    rep.running = true;
}

static bool on(int sig)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sa.sa_flags = SA_RESTART;
    sigfillset(&sa.sa_mask);
    return _ms_sigaction(sig, &sa, NULL) == 0;
}

void _ms_reporter_start(void)
{
    int saved = errno;
    if (!_ms_opt.track) _ms_opt.report_signal = 0;     /* no tracking, no leak report */
    if (_ms_ropt.stats_signal && !on(_ms_ropt.stats_signal)) _ms_ropt.stats_signal = 0;
    if (_ms_opt.report_signal && !on(_ms_opt.report_signal)) _ms_opt.report_signal = 0;
    if (_ms_opt.profile_signal && !_ms_profiling()) {
        _ms_message("MEMSHIM_PROFILE_SIGNAL ignored: no heap profile with MEMSHIM_TRACK=0 unless MEMSHIM_SAMPLE is set");
        _ms_opt.profile_signal = 0;
    }
    if (_ms_opt.profile_signal && !on(_ms_opt.profile_signal)) _ms_opt.profile_signal = 0;
    rep.profiling = _ms_opt.profile && _ms_opt.profile_interval_ms && _ms_profiling();
    if (needed(_ms_ropt.rss_log != NULL, _ms_ropt.metrics != NULL))
        start(_ms_ropt.rss_log != NULL, _ms_ropt.metrics != NULL);
    errno = saved;
}

/* Holds: around setuid() and its kin, and unshare/setns into a user namespace (below). */
static pthread_mutex_t hold_lock = PTHREAD_MUTEX_INITIALIZER;
static unsigned holds;
static bool held;                        /* ended by a hold: to be started again */

void _ms_reporter_stop(void)
{
    int saved = errno;
    pthread_mutex_lock(&hold_lock);     /* a thread in setuid() meanwhile does not start it again */
    bool was_held = held;
    held = false;
    if (rep.running && rep.ending && pthread_equal(pthread_self(), rep.thread)) {  /* our own exit(0) */
        rep.running = false;
        if (rep.logging) {
            uint64_t now = now_ns();
            sample(now);
            log_trailer(now);
        }
        log_close();
        _ms_live_close();
        _ms_metrics_withdraw();
    } else if (rep.running) {
        rep.running = false;
        if (end_thread(STOP_END)) {     /* else it is stuck in a write: leave it be */
            log_close();
            _ms_live_close();
            _ms_metrics_withdraw();
        }
    } else if (was_held) {              /* ended by a hold: no last sample */
        log_close();
        _ms_live_close();
        _ms_metrics_withdraw();
    }
    pthread_mutex_unlock(&hold_lock);
    errno = saved;
}

/* ---- setuid() and its kin --------------------------------------------------------
 * glibc gives every thread of the process the new ids (a signal to each)
 * and aborts the process when one thread cannot take them.  A program that
 * keeps its capabilities across setuid (PR_SET_KEEPCAPS, a thread's own
 * setting) and raises them again in its own thread (capset: the same) then
 * calls setresgid, as setpriv, dnsmasq and chrony do, was aborted whenever
 * the reporter ran.  The reporter ends before such a call and starts again
 * after it, under the new ids; the RSS log, live region and metrics file
 * stay open meanwhile (override.c calls these). */
/* Not in a vfork child (another pid, the parent's memory): the thread
 * is the parent's, and one made there would be the child's. */
static bool ours(void) { return (int)getpid() == __atomic_load_n(&rep.pid, __ATOMIC_RELAXED); }

static void hold_locked(void)
{
    if (holds++ == 0 && rep.running && !pthread_equal(pthread_self(), rep.thread) && end_thread(STOP_HOLD)) {
        rep.running = false;
        held = true;
        /* joined is not yet gone: the kernel wakes the joiner before the
         * thread leaves the thread group, and unshare(CLONE_NEWUSER)
         * counts it till then (never seen in 400 tries, but a window);
         * waited for, 100 ms at most */
        for (int i = 0; i < 1000 && _ms_os_tgkill(getpid(), rep.tid, 0) == 0; i++) _ms_raw_nap_ns(100000);
    }
}

void _ms_reporter_hold(void)
{
    if (!ours()) return;
    int saved = errno;
    pthread_mutex_lock(&hold_lock);
    hold_locked();
    pthread_mutex_unlock(&hold_lock);
    errno = saved;
}

/* exec and its kin (override.c).  The new image replaces this thread
 * wherever it is: in the middle of a metrics file or an interval profile,
 * whose temporary file stayed beside it for good (unshare --user execs its
 * command just after the thread started again; found by CI).  The thread
 * ends first, and the metrics file goes: its figures are of an image that
 * is no more, and were read as the process's for as long as it ran (the
 * next image writes its own, if memshim is in it).  If the exec fails,
 * _ms_reporter_release starts the thread again, and it writes the file
 * again at once.  False, nothing done: another pid (a vfork child), a
 * signal handler's exec that came in while its thread was inside memshim,
 * or a hold under way (the thread is not running then). */
bool _ms_reporter_exec_hold(void)
{
    if (!ours() || _ms_inside_memshim()) return false;
    int saved = errno;
    if (pthread_mutex_trylock(&hold_lock) != 0) {
        errno = saved;
        return false;
    }
    hold_locked();
    if (held) _ms_metrics_withdraw();       /* its thread is gone: ours to call */
    pthread_mutex_unlock(&hold_lock);
    errno = saved;
    return true;
}

void _ms_reporter_release(void)
{
    if (!ours()) return;
    int saved = errno;
    pthread_mutex_lock(&hold_lock);
    if (holds && --holds == 0 && held) {
        held = false;
        __atomic_store_n(&rep.stop, STOP_NONE, __ATOMIC_RELEASE);
        if (spawn() == 0) rep.running = true;
        else _ms_message("cannot start the reporter thread again after a change of ids or of user namespace: "
                         "no more RSS log, live figures, metrics file, stats or report signal");
    }
    pthread_mutex_unlock(&hold_lock);
    errno = saved;
}

void _ms_reporter_fork_child(void)
{
    int saved = errno;
    _ms_os_status_forget();
    bool had = rep.running || held;
    rep.running = false;
    rep.tid = 0;
    holds = 0;                           /* the holder is not in the child */
    held = false;
    pthread_mutex_init(&hold_lock, NULL);
    rep.leader_left = 0;                 /* the child's leader is the thread that forked */
    if (had) {
        log_close();
        _ms_live_close();
        _ms_metrics_fork_child();
        bool own_log = _ms_ropt.rss_log && strstr(_ms_ropt.rss_log, "%p");
        bool own_metrics = _ms_ropt.metrics && strstr(_ms_ropt.metrics, "%p");
        if (needed(own_log, own_metrics)) {
            _ms_os_status_prime();
            rep.forked = true;
            start(own_log, own_metrics);
        }
    }
    errno = saved;
}
