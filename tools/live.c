/* live.c - `memshim stats PID` and `memshim top PID`: read the figures a
 * process running with MEMSHIM_LIVE=1 publishes (shim/live.h) without
 * stopping or signalling it.  The region is a memfd the process holds open;
 * we open it again through /proc/PID/fd, which the kernel allows to the
 * process's own user only. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <poll.h>
#include <signal.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>
#include "memshim.h"
#include "live.h"

static bool parse_pid(const char *cmd, const char *s, pid_t *out)
{
    uint64_t v;
    if (!ms_parse_u64(s, &v) || v == 0 || v > 4194304) {
        ms_usage_error("%s: '%s' is not a process id", cmd, s);
        return false;
    }
    *out = (pid_t)v;
    return true;
}

/* Whether pid has libmemshim mapped (its /proc/PID/maps names it). */
static bool runs_memshim(pid_t pid)
{
    char path[64], line[4352];  /* a mapping's line: its fields and a path of up to PATH_MAX */
    snprintf(path, sizeof path, "/proc/%d/maps", (int)pid);
    FILE *f = fopen(path, "re");
    if (!f) return false;
    bool found = false;
    while (!found && fgets(line, sizeof line, f)) found = strstr(line, "/libmemshim.so") != NULL;
    fclose(f);
    return found;
}

/* pid as the process itself knows it: in a pid namespace of its own (a
 * container), the last number of NSpid in /proc/PID/status; it names its
 * region with that number, and writes it in the region.  pid itself when
 * it has no other, or the line cannot be read. */
static pid_t own_pid(pid_t pid)
{
    char path[64], line[256];
    snprintf(path, sizeof path, "/proc/%d/status", (int)pid);
    FILE *f = fopen(path, "re");
    if (!f) return pid;
    pid_t own = pid;
    while (fgets(line, sizeof line, f)) {
        if (strncmp(line, "NSpid:", 6) != 0) continue;
        const char *last = strrchr(line, '\t');
        uint64_t v;
        char num[32];
        size_t n = last ? strcspn(last + 1, "\n") : 0;
        if (n && n < sizeof num) {
            memcpy(num, last + 1, n);
            num[n] = 0;
            if (ms_parse_u64(num, &v) && v > 0 && v <= 4194304) own = (pid_t)v;
        }
        break;
    }
    fclose(f);
    return own;
}

/* The descriptor of pid's live region, opened for reading, or -1 after
 * saying why not (unless quiet).  A process's memfd is found by its name
 * among its descriptors -- MS_LIVE_NAME and the pid the process knows
 * itself by (own_pid, asked only when a region's number is not pid) --;
 * whatever is found there is only trusted to be a regular file (a process
 * may name anything so in a namespace of its own). */
int ms_live_open(pid_t pid, bool quiet)
{
    char dir[64], link[384], want[64], target[256];
    snprintf(dir, sizeof dir, "/proc/%d/fd", (int)pid);
    snprintf(want, sizeof want, "/memfd:%s", MS_LIVE_NAME);
    DIR *d = opendir(dir);
    if (!d) {
        if (quiet) ;
        else if (errno == ENOENT) ms_warn("no process %d", (int)pid);
        else ms_warn("cannot look into process %d (%s): only its own user can", (int)pid, strerror(errno));
        return -1;
    }
    int fd = -1;
    pid_t own = 0;                                  /* not asked yet */
    struct dirent *e;
    size_t wl = strlen(want);
    while (fd < 0 && (e = readdir(d))) {
        if (e->d_name[0] == '.') continue;
        snprintf(link, sizeof link, "%s/%s", dir, e->d_name);
        ssize_t n = readlink(link, target, sizeof target - 1);
        if (n <= 0) continue;
        target[n] = 0;
        if (strncmp(target, want, wl) != 0) continue;
        char *num = target + wl, *end = num + strspn(num, "0123456789");
        if (end == num || (*end != 0 && *end != ' ')) continue;
        *end = 0;
        uint64_t v;
        if (!ms_parse_u64(num, &v) || (v != (uint64_t)pid && v != (uint64_t)(own ? own : (own = own_pid(pid)))))
            continue;
        struct stat st;
        fd = open(link, O_RDONLY | O_CLOEXEC | O_NONBLOCK | O_NOCTTY);
        if (fd >= 0 && (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode))) { close(fd); fd = -1; }
    }
    closedir(d);
    if (fd < 0 && !quiet && runs_memshim(pid))
        /* the region goes when the reporter thread stops, before the exit
         * report and statistics, which may take seconds */
        ms_warn("process %d runs memshim but publishes no figures: it was started without "
                "MEMSHIM_LIVE=1, or it is ending (its exit report and statistics)", (int)pid);
    else if (fd < 0 && !quiet)
        ms_warn("process %d publishes no memshim figures (start it with MEMSHIM_LIVE=1 "
                "and libmemshim preloaded, or under 'memshim run')", (int)pid);
    return fd;
}

/* What is wrong with a consistent copy of pid's region, or NULL: anything
 * a reader relies on (the process may write garbage there). */
static const char *region_wrong(const ms_live_t *l, pid_t pid)
{
    if (l->pid != (int32_t)pid && l->pid != (int32_t)own_pid(pid)) return "it names another process";
    if (l->updates == 0) return "it was never filled";
    if (l->interval_ms < 10 || l->interval_ms > 3600000) return "its refresh interval is out of range";
    if (l->nclasses > MS_LIVE_MAX_CLASSES) return "it has too many size classes";
    for (unsigned i = 0; i < l->nclasses; i++)
        if (l->cls[i].size == 0 || l->cls[i].size > ((uint64_t)1 << 20) ||
            (i && l->cls[i].size <= l->cls[i - 1].size))
            return "its size classes are out of order";
    return NULL;
}

/* A consistent copy of the region (seqlock), checked, or false after
 * saying why (unless quiet).  attempts: how many times to try while the
 * writer is in the middle of a refresh, or has not yet written the region
 * it just made (the memfd shows in /proc/PID/fd, all zeros, before its
 * header and first figures are written: a reader that came then said
 * "unknown format (version 0)"), 1 ms apart.  The copy's pid is pid, the
 * number this host knows the process by, whatever its container calls it. */
bool ms_live_read(int fd, pid_t pid, ms_live_t *out, unsigned attempts, bool quiet)
{
    struct timespec ms = { 0, 1000000 };
    for (unsigned attempt = 0; attempt < attempts; attempt++) {
        bool last = attempt + 1 == attempts;
        ssize_t n = pread(fd, out, sizeof *out, 0);
        if (n < (ssize_t)offsetof(ms_live_t, pid)) {
            if (!quiet) ms_warn("process %d: live region unreadable", (int)pid);
            return false;
        }
        if (out->magic == 0 && !last) {                 /* being made */
            nanosleep(&ms, NULL);
            continue;
        }
        if (out->magic != MS_LIVE_MAGIC || out->version != MS_LIVE_VERSION) {
            if (!quiet)
                ms_warn("process %d: live region of an unknown format (version %u; this memshim reads %d)",
                        (int)pid, out->version, MS_LIVE_VERSION);
            return false;
        }
        if (n < (ssize_t)sizeof *out || out->size != sizeof *out) {
            if (!quiet) ms_warn("process %d: live region of an unexpected size", (int)pid);
            return false;
        }
        uint64_t seq;
        if ((out->seq & 1) == 0 && pread(fd, &seq, sizeof seq, offsetof(ms_live_t, seq)) == sizeof seq &&
            seq == out->seq) {
            out->program[sizeof out->program - 1] = 0;
            if (out->updates == 0 && !last) {           /* not filled yet */
                nanosleep(&ms, NULL);
                continue;
            }
            const char *wrong = region_wrong(out, pid);
            if (wrong && !quiet) ms_warn("process %d: live region not usable: %s", (int)pid, wrong);
            out->pid = (int32_t)pid;            /* as we know it, not as its container does */
            return !wrong;
        }
        nanosleep(&ms, NULL);
    }
    if (!quiet) ms_warn("process %d: live region kept changing while being read", (int)pid);
    return false;
}

/* Whether pid runs the memshim command (a 'memshim run'). */
static bool is_memshim(pid_t pid)
{
    char path[64], comm[32] = "";
    snprintf(path, sizeof path, "/proc/%d/comm", (int)pid);
    FILE *f = fopen(path, "r");
    if (!f) return false;
    bool yes = fgets(comm, sizeof comm, f) && strcmp(comm, "memshim\n") == 0;
    fclose(f);
    return yes;
}

/* A child of pid that publishes figures (the program a 'memshim run'
 * runs): its region, its pid in *child; -1 if none does. */
static int child_region(pid_t pid, pid_t *child)
{
    DIR *d = opendir("/proc");
    if (!d) return -1;
    int fd = -1;
    struct dirent *e;
    while (fd < 0 && (e = readdir(d))) {
        char path[300], buf[512];
        uint64_t c;
        if (!ms_parse_u64(e->d_name, &c)) continue;
        snprintf(path, sizeof path, "/proc/%s/stat", e->d_name);
        FILE *f = fopen(path, "r");
        if (!f) continue;
        size_t n = fread(buf, 1, sizeof buf - 1, f);
        fclose(f);
        buf[n] = 0;
        const char *r = strrchr(buf, ')');        /* the name may hold spaces and parentheses */
        int ppid;
        if (r && sscanf(r + 1, " %*c %d", &ppid) == 1 && ppid == (int)pid &&
            (fd = ms_live_open((pid_t)c, true)) >= 0) *child = (pid_t)c;
    }
    closedir(d);
    return fd;
}

/* pid's live region, or, when pid is a 'memshim run', its program's (waited
 * for a few seconds: 'memshim run ... & memshim top $!' asks at once); *pid
 * becomes the process followed.  -1 after saying why not. */
static int open_region(pid_t *pid)
{
    int fd = ms_live_open(*pid, true);
    /* Just started with `&`, the process may not have exec'd memshim yet:
     * a moment for it to become a 'memshim run' (or publish itself). */
    for (int i = 0; i < 20 && fd < 0 && !is_memshim(*pid) && kill(*pid, 0) == 0; i++) {
        usleep(50000);
        fd = ms_live_open(*pid, true);
    }
    if (fd >= 0 || !is_memshim(*pid)) return fd >= 0 ? fd : ms_live_open(*pid, false);
    pid_t child = 0;
    for (int i = 0; i < 100 && fd < 0 && kill(*pid, 0) == 0; i++)
        if ((fd = child_region(*pid, &child)) < 0) usleep(50000);
    if (fd < 0) return ms_live_open(*pid, false);
    fprintf(stderr, "%s: following process %d, the program 'memshim run' %d runs\n", ms_prog,
            (int)child, (int)*pid);
    *pid = child;
    return fd;
}

static uint64_t unix_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static void print_text(FILE *o, const ms_live_t *l, unsigned max_rows, const ms_live_t *prev)
{
    double dt = prev ? (double)(l->updated_unix_ms - prev->updated_unix_ms) / 1000.0 : 0;
    char a[32], b[32], c[32], d[32];
    uint64_t now = unix_ms();
    uint64_t age = now > l->updated_unix_ms ? now - l->updated_unix_ms : 0;
    fprintf(o, "memshim: pid %d  ", l->pid);
    ms_text(o, l->program);                     /* a command line may hold newlines */
    fputc('\n', o);
    fprintf(o, "figures from %llu ms ago (refreshed every %llu ms, %llu times)\n",
            (unsigned long long)age, (unsigned long long)l->interval_ms, (unsigned long long)l->updates);
    fprintf(o, "rss %s, peak rss %s, virtual %s\n", ms_human(l->rss, a, sizeof a),
            ms_human(l->peak_rss, b, sizeof b), ms_human(l->vms, c, sizeof c));
    fprintf(o, "heap in use %s, heap peak %s (thread caches included), heap mapped %s\n", ms_human(l->heap_in_use, a, sizeof a),
            ms_human(l->heap_peak, b, sizeof b), ms_human(l->heap_mapped, c, sizeof c));
    fprintf(o, "small blocks in use %s of %s in pools; huge blocks %llu, %s (+ %s cached)\n",
            ms_human(l->small_in_use, a, sizeof a), ms_human(l->small_pooled, b, sizeof b),
            (unsigned long long)l->huge_blocks, ms_human(l->huge_bytes, c, sizeof c),
            ms_human(l->huge_cached, d, sizeof d));
    fprintf(o, "segments %llu (%s); mapped %s and returned %s to the OS in all; threads %llu\n",
            (unsigned long long)l->segments, ms_human(l->segment_bytes, a, sizeof a),
            ms_human(l->os_mapped_total, b, sizeof b), ms_human(l->os_returned_total, c, sizeof c),
            (unsigned long long)l->threads);
    if (l->gc_ran)
        fprintf(o, "collector: %llu collections, %llu tracked, %llu collected, %llu uncollectable\n",
                (unsigned long long)l->gc_collections, (unsigned long long)l->gc_tracked,
                (unsigned long long)l->gc_collected, (unsigned long long)l->gc_uncollectable);
    if (prev && dt > 0) {
        uint64_t da = 0, df = 0;
        for (unsigned i = 0; i < l->nclasses; i++) {
            da += l->cls[i].allocs - prev->cls[i].allocs;
            df += l->cls[i].frees - prev->cls[i].frees;
        }
        fprintf(o, "size-class allocations %.0f/s, frees %.0f/s\n", (double)da / dt, (double)df / dt);
    }
    /* Classes by bytes in use, largest first. */
    unsigned idx[MS_LIVE_MAX_CLASSES], n = 0;
    for (unsigned i = 0; i < l->nclasses; i++)
        if (l->cls[i].pools || l->cls[i].allocs) idx[n++] = i;
    for (unsigned i = 1; i < n; i++)
        for (unsigned j = i; j > 0; j--) {
            const ms_live_class_t *x = &l->cls[idx[j]], *y = &l->cls[idx[j - 1]];
            if (x->in_use * x->size <= y->in_use * y->size) break;
            unsigned t = idx[j]; idx[j] = idx[j - 1]; idx[j - 1] = t;
        }
    fprintf(o, "\n%5s %8s %6s %12s %12s %14s %6s %14s\n",
            "class", "size", "pools", "in use", "free", "bytes in use", "frag%", "allocs");
    for (unsigned k = 0; k < n && k < max_rows; k++) {
        const ms_live_class_t *x = &l->cls[idx[k]];
        uint64_t cap = x->in_use + x->free;
        fprintf(o, "%5u %8llu %6llu %12llu %12llu %14llu %5u%% %14llu\n", idx[k],
                (unsigned long long)x->size, (unsigned long long)x->pools,
                (unsigned long long)x->in_use, (unsigned long long)x->free,
                (unsigned long long)(x->in_use * x->size),
                cap ? (unsigned)(x->free * 100 / cap) : 0, (unsigned long long)x->allocs);
    }
    if (n > max_rows) fprintf(o, "  ... %u more classes\n", n - max_rows);
}

static int print_json(const ms_live_t *l)
{
    char program[3 * sizeof l->program];        /* room for every byte as U+FFFD */
    ms_utf8_repair(l->program, program, sizeof program);   /* an argument in Latin-1 */
    json_t *classes = json_array();
    for (unsigned i = 0; i < l->nclasses; i++) {
        const ms_live_class_t *x = &l->cls[i];
        if (!x->pools && !x->allocs) continue;
        uint64_t cap = x->in_use + x->free;
        json_array_append_new(classes, json_pack("{s:I,s:I,s:I,s:I,s:I,s:I,s:f,s:I,s:I}",
            "class", (json_int_t)i, "size", (json_int_t)x->size, "pools", (json_int_t)x->pools,
            "blocks_in_use", (json_int_t)x->in_use, "blocks_free", (json_int_t)x->free,
            "bytes_in_use", (json_int_t)(x->in_use * x->size),
            "fragmentation_pct", cap ? (double)x->free * 100.0 / (double)cap : 0.0,
            "allocs", (json_int_t)x->allocs, "frees", (json_int_t)x->frees));
    }
    json_t *gc = l->gc_ran ? json_pack("{s:I,s:I,s:I,s:I,s:I}", "collections", (json_int_t)l->gc_collections,
                                       "tracked", (json_int_t)l->gc_tracked, "collected", (json_int_t)l->gc_collected,
                                       "uncollectable", (json_int_t)l->gc_uncollectable,
                                       "time_ns", (json_int_t)l->gc_time_ns)
                           : json_null();
    json_t *root = json_pack("{s:s,s:i,s:i,s:s,s:I,s:I,s:o,s:{s:I,s:I},s:{s:I,s:I,s:I},s:{s:I,s:I,s:I},"
                             "s:{s:I,s:I,s:I,s:I},s:I,s:{s:I,s:I,s:I},s:o}",
        "format", "memshim-stats", "version", 1, "pid", (int)l->pid, "program", program,
        "updated_unix_ms", (json_int_t)l->updated_unix_ms, "interval_ms", (json_int_t)l->interval_ms,
        "classes", classes,
        "small", "bytes_in_use", (json_int_t)l->small_in_use, "bytes_pooled", (json_int_t)l->small_pooled,
        "huge", "blocks", (json_int_t)l->huge_blocks, "bytes", (json_int_t)l->huge_bytes,
                "cached_bytes", (json_int_t)l->huge_cached,
        "heap", "bytes_in_use", (json_int_t)l->heap_in_use, "peak_bytes", (json_int_t)l->heap_peak,
                "mapped_bytes", (json_int_t)l->heap_mapped,
        "os", "segments", (json_int_t)l->segments, "segment_bytes", (json_int_t)l->segment_bytes,
              "mapped_total", (json_int_t)l->os_mapped_total, "returned_total", (json_int_t)l->os_returned_total,
        "threads", (json_int_t)l->threads,
        "process", "rss", (json_int_t)l->rss, "peak_rss", (json_int_t)l->peak_rss, "vms", (json_int_t)l->vms,
        "collector", gc);
    if (!root) { ms_warn("cannot build the JSON output"); return 1; }
    json_dumpf(root, stdout, JSON_INDENT(1) | JSON_PRESERVE_ORDER);
    putchar('\n');
    json_decref(root);
    return 0;
}

/* An argument of stats or top that is not one of its options: the process id. */
static void take_pid(const char *cmd, const char *a, const char **pid_s)
{
    if (a[0] == '-') ms_unknown_option(cmd, a);
    if (*pid_s) ms_usage_error("%s: one process at a time ('%s' is one too many)", cmd, a);
    *pid_s = a;
}

/* The live region of the process pid_s names (open_region: a 'memshim run'
 * is followed to its program), or -1 after saying why. */
static int open_target(const char *cmd, const char *pid_s, pid_t *pid)
{
    if (!pid_s) ms_usage_error("%s: no process id given (memshim %s PID)", cmd, cmd);
    parse_pid(cmd, pid_s, pid);
    return open_region(pid);
}

int cmd_stats(int argc, char **argv)
{
    const char *pid_s = NULL;
    bool json = false;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--json") == 0) json = true;
        else take_pid("stats", argv[i], &pid_s);
    }
    pid_t pid;
    int fd = open_target("stats", pid_s, &pid);
    if (fd < 0) return 1;
    ms_live_t l;
    bool ok = ms_live_read(fd, pid, &l, 200, false);
    close(fd);
    if (!ok) return 1;
    if (json) return print_json(&l);
    print_text(stdout, &l, MS_LIVE_MAX_CLASSES, NULL);
    return 0;
}

/* ---- top ------------------------------------------------------------------------ */

static volatile sig_atomic_t top_quit;
static struct termios saved_tty;
static bool tty_raw;

static void on_quit(int sig) { (void)sig; top_quit = 1; }
static void restore_tty(void) { if (tty_raw) tcsetattr(0, TCSANOW, &saved_tty); tty_raw = false; }

int cmd_top(int argc, char **argv)
{
    const char *pid_s = NULL, *v;
    double delay = 1.0;
    uint64_t count = 0;                         /* 0: until q, ^C or the process ends */
    for (int i = 1; i < argc; i++) {
        if ((v = ms_opt_value(argc, argv, &i, "-d")) || (v = ms_opt_value(argc, argv, &i, "--delay"))) {
            char *end;
            delay = strtod(v, &end);
            if (*end || !(delay >= 0.05 && delay <= 3600))
                ms_usage_error("top -d %s: expected seconds, 0.05 to 3600", v);
        } else if ((v = ms_opt_value(argc, argv, &i, "-n")) || (v = ms_opt_value(argc, argv, &i, "--count"))) {
            if (!ms_parse_u64(v, &count) || count == 0)
                ms_usage_error("top -n %s: expected a positive number of refreshes", v);
        } else take_pid("top", argv[i], &pid_s);
    }
    pid_t pid;
    int fd = open_target("top", pid_s, &pid);
    if (fd < 0) return 1;

    bool screen = isatty(1);
    if (screen && isatty(0) && tcgetattr(0, &saved_tty) == 0) {
        struct termios raw = saved_tty;
        raw.c_lflag &= ~(tcflag_t)(ICANON | ECHO);
        raw.c_cc[VMIN] = 0;
        raw.c_cc[VTIME] = 0;
        if (tcsetattr(0, TCSANOW, &raw) == 0) { tty_raw = true; atexit(restore_tty); }
    }
    struct sigaction sa = { .sa_handler = on_quit };
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);

    ms_live_t cur, prev;
    bool have_prev = false;
    int rc = 0;
    for (uint64_t n = 0; !top_quit && (count == 0 || n < count); n++) {
        if (kill(pid, 0) != 0 && errno == ESRCH) {
            fprintf(stderr, "%s: process %d has exited\n", ms_prog, (int)pid);
            break;
        }
        if (!ms_live_read(fd, pid, &cur, 200, false)) { rc = 1; break; }
        unsigned rows = 40;
        if (screen) {
            struct winsize ws;
            if (ioctl(1, TIOCGWINSZ, &ws) == 0 && ws.ws_row > 14) rows = ws.ws_row - 14u;
            fputs("\033[H\033[2J", stdout);
        } else if (n) {
            putchar('\n');
        }
        print_text(stdout, &cur, rows, have_prev && cur.updates != prev.updates ? &prev : NULL);
        if (screen) printf("\n(q quits; refreshed every %.1f s)", delay);
        fflush(stdout);
        if (!have_prev || cur.updates != prev.updates) { prev = cur; have_prev = true; }
        if (count && n + 1 >= count) break;
        struct pollfd p = { .fd = 0, .events = POLLIN };
        int ms = (int)(delay * 1000);
        if (tty_raw && poll(&p, 1, ms) > 0) {
            char ch;
            if (read(0, &ch, 1) == 1 && (ch == 'q' || ch == 'Q')) break;
        } else if (!tty_raw) {
            struct timespec ts = { (time_t)delay, (long)((delay - (double)(time_t)delay) * 1e9) };
            nanosleep(&ts, NULL);
        }
    }
    if (screen) putchar('\n');
    restore_tty();
    close(fd);
    return rc;
}
