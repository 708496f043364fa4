/* helpers.h - shared by the preload tests (tests/preload/test_*.c).
 *
 * These tests are linked with -lmemshim, so the whole test process runs on
 * memshim's malloc.  The helpers here: the build directory, the size classes
 * as the design essay (shim/types.h) describes them, deterministic patterns
 * for block contents, and running a fixture program under LD_PRELOAD with its
 * output captured and a hang guard. */
#ifndef MS_PRELOAD_HELPERS_H
#define MS_PRELOAD_HELPERS_H

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <malloc.h>
#include "runenv.h"



/* The allocation functions through volatile pointers: the compiler knows
 * malloc's semantics and may drop or fold a call whose result is only
 * compared with NULL; a call through these always happens. */
#define H_UNUSED __attribute__((unused))
static void *(*volatile v_malloc)(size_t) H_UNUSED = malloc;
static void (*volatile v_free)(void *) H_UNUSED = free;
static void *(*volatile v_calloc)(size_t, size_t) H_UNUSED = calloc;
static void *(*volatile v_realloc)(void *, size_t) H_UNUSED = realloc;
static void *(*volatile v_reallocarray)(void *, size_t, size_t) H_UNUSED = reallocarray;
static int (*volatile v_posix_memalign)(void **, size_t, size_t) H_UNUSED = posix_memalign;
static void *(*volatile v_aligned_alloc)(size_t, size_t) H_UNUSED = aligned_alloc;
static void *(*volatile v_memalign)(size_t, size_t) H_UNUSED = memalign;
static void *(*volatile v_valloc)(size_t) H_UNUSED = valloc;
static void *(*volatile v_pvalloc)(size_t) H_UNUSED = pvalloc;
static size_t (*volatile v_usable)(void *) H_UNUSED = malloc_usable_size;

#define KiB ((size_t)1024)
#define MiB ((size_t)1024 * 1024)
#define MS_MAX_SMALL_BYTES (512 * KiB)

/* ---- deterministic PRNG (splitmix64) ---------------------------------- */
static inline uint64_t h_mix(uint64_t *s)
{
    uint64_t z = (*s += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

/* ---- block contents ------------------------------------------------------
 * Word i of a block filled with `seed` is seed*K1 + i*K2 (little-endian bytes
 * for a partial last word, so a prefix of a filled block matches the pattern
 * of the shorter length).  Two blocks with different seeds never agree on a
 * word, so overlap, a stale copy or a clobbered free-list link shows up. */
static inline uint64_t h_word(uint64_t seed, size_t i)
{
    return seed * 0x9e3779b97f4a7c15ULL + (uint64_t)i * 0xd1b54a32d192ed03ULL + 1;
}

static inline void h_fill(void *p, size_t n, uint64_t seed)
{
    uint8_t *b = p;
    size_t words = n / 8;
    for (size_t i = 0; i < words; i++) {
        uint64_t w = h_word(seed, i);
        memcpy(b + i * 8, &w, 8);
    }
    uint64_t last = h_word(seed, words);
    for (size_t j = words * 8; j < n; j++) b[j] = (uint8_t)(last >> (8 * (j % 8)));
}

/* Offset of the first byte that differs from the pattern, or (size_t)-1. */
static inline size_t h_check(const void *p, size_t n, uint64_t seed)
{
    const uint8_t *b = p;
    size_t words = n / 8;
    for (size_t i = 0; i < words; i++) {
        uint64_t w = h_word(seed, i), got;
        memcpy(&got, b + i * 8, 8);
        if (got != w) {
            for (size_t j = 0; j < 8; j++)
                if ((uint8_t)(got >> (8 * j)) != (uint8_t)(w >> (8 * j))) return i * 8 + j;
        }
    }
    uint64_t last = h_word(seed, words);
    for (size_t j = words * 8; j < n; j++)
        if (b[j] != (uint8_t)(last >> (8 * (j % 8)))) return j;
    return (size_t)-1;
}

static inline int h_all_zero(const void *p, size_t n)
{
    const uint8_t *b = p;
    for (size_t i = 0; i < n; i++)
        if (b[i]) return 0;
    return 1;
}

/* ---- size classes (shim/types.h): 16..128 step 16, four per power of two
 * up to 1 KiB, eight per power of two up to 512 KiB, and from 1 KiB to
 * 8 KiB each power of two plus 16 bytes; huge above -------------------- */
static inline unsigned h_nclasses(void) { return 8 + 4 * 3 + 8 * 9 + 4; }   /* 96 */

/* Class c's block size: the sizes above, written out in order. */
static inline size_t h_class_size(unsigned c)
{
    unsigned n = 0;
    for (size_t s = 16; s <= 128; s += 16)
        if (n++ == c) return s;
    for (size_t p = 128; p < 1024; p *= 2)
        for (size_t j = 1; j <= 4; j++)
            if (n++ == c) return p + j * p / 4;
    for (size_t p = 1024; p < 512 * 1024; p *= 2) {
        if (p <= 8192 && n++ == c) return p + 16;
        for (size_t j = 1; j <= 8; j++)
            if (n++ == c) return p + j * p / 8;
    }
    return 0;
}

/* The block size memshim should use for a request of n bytes (n <= 512 KiB). */
static inline size_t h_expected_block(size_t n)
{
    for (unsigned c = 0; c < h_nclasses(); c++)
        if (h_class_size(c) >= n) return h_class_size(c);
    return 0;
}

/* ---- where the build lives ------------------------------------------------ */
static inline const char *h_build_dir(void)
{
    static char dir[PATH_MAX];
    if (dir[0]) return dir;
    const char *env = getenv("MS_TEST_BUILD");
    if (env && *env) {
        snprintf(dir, sizeof dir, "%s", env);
        return dir;
    }
    /* build/tests/test_x -> build */
    ssize_t n = readlink("/proc/self/exe", dir, sizeof dir - 1);
    if (n <= 0) { snprintf(dir, sizeof dir, "build"); return dir; }
    dir[n] = 0;
    for (int up = 0; up < 2; up++) {
        char *slash = strrchr(dir, '/');
        if (slash) *slash = 0;
    }
    return dir;
}

static inline const char *h_path(const char *fmt, ...)
{
    static char bufs[4][2 * PATH_MAX + 2];
    static int next;
    char *out = bufs[next++ & 3];
    char rel[PATH_MAX];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(rel, sizeof rel, fmt, ap);
    va_end(ap);
    snprintf(out, sizeof bufs[0], "%s/%s", h_build_dir(), rel);
    return out;
}

/* ---- running a program --------------------------------------------------- */
typedef struct {
    int status;          /* from waitpid; -1 if it could not be run */
    int timed_out;       /* killed by the hang guard */
    char out[65536];     /* standard output */
    char err[65536];     /* standard error */
} h_run_t;

static inline void h_slurp(int fd, char *buf, size_t cap)
{
    size_t len = 0;
    ssize_t r;
    lseek(fd, 0, SEEK_SET);
    while (len + 1 < cap && (r = read(fd, buf + len, cap - 1 - len)) > 0) len += (size_t)r;
    buf[len] = 0;
}

static inline int h_tmpfile(void)
{
    char name[] = "/tmp/memshim-test-XXXXXX";
    int fd = mkstemp(name);
    if (fd >= 0) unlink(name);
    return fd;
}

/* A process that did not end in its time: the stacks of its threads, and of
 * its children's, on our standard error (what the run's log keeps), before
 * it is killed, so that a hang seen once (in CI) can be told from a slow
 * run and understood.  With gdb (tools/install-deps.sh installs it) and the
 * right to attach (root, or ptrace_scope 0); else one line saying so. */
static inline void h_dump_stacks(pid_t pid)
{
    if (access("/usr/bin/gdb", X_OK) != 0) {
        fprintf(stderr, "process %d did not end in its time (no gdb here for its stacks)\n", (int)pid);
        return;
    }
    char cmd[512];
    snprintf(cmd, sizeof cmd,
             "for p in %d $(cat /proc/%d/task/*/children 2>/dev/null); do echo \"== process $p ($(cat /proc/$p/comm 2>/dev/null)) did not "
             "end in its time; its threads:\"; timeout 60 /usr/bin/gdb -p $p -batch -nx -ex 'thread apply all bt 40' "
             "2>&1 | grep -E '^(Thread |#)'; done >&2",
             (int)pid, (int)pid);
    fflush(NULL);
    if (system(cmd) != 0) fprintf(stderr, "(the stacks of process %d could not all be taken)\n", (int)pid);
}

/* Wait for pid for up to `seconds`; past that, its stacks (h_dump_stacks),
 * then kill it and report timed_out. */
static inline int h_wait(pid_t pid, int seconds, int *timed_out)
{
    int status = -1;
    *timed_out = 0;
    long waited_us = 0, step = 50;
    for (;;) {
        pid_t r = waitpid(pid, &status, WNOHANG);
        if (r == pid) return status;
        if (r < 0 && errno != EINTR) return -1;
        if (waited_us >= (long)seconds * 1000000) {
            h_dump_stacks(pid);
            kill(pid, SIGKILL);
            waitpid(pid, &status, 0);
            *timed_out = 1;
            return status;
        }
        struct timespec ts = { 0, step * 1000 };
        nanosleep(&ts, NULL);
        waited_us += step;
        if (step < 10000) step *= 2;           /* poll often at first, then every 10 ms */
    }
}

/* Run argv (argv[0] a path) with `env` ("NAME=value" strings, NULL-terminated,
 * added to ours; "NAME=" with nothing after unsets NAME), capturing both
 * outputs, killed after `seconds`. */
static inline void h_run(h_run_t *r, char *const argv[], const char *const env[], int seconds)
{
    memset(r, 0, sizeof *r);
    r->status = -1;
    int ofd = h_tmpfile(), efd = h_tmpfile();
    if (ofd < 0 || efd < 0) return;
    fflush(NULL);
    pid_t pid = fork();
    if (pid == 0) {
        dup2(ofd, 1);
        dup2(efd, 2);
        clear_memshim_env();
        for (const char *const *e = env; e && *e; e++) {
            if (!**e) continue;
            char name[256];
            const char *eq = strchr(*e, '=');
            size_t len = eq ? (size_t)(eq - *e) : strlen(*e);
            if (len >= sizeof name) continue;
            memcpy(name, *e, len);
            name[len] = 0;
            if (eq && eq[1]) setenv(name, eq + 1, 1);
            else unsetenv(name);
        }
        execv(argv[0], argv);
        fprintf(stderr, "exec %s: %s\n", argv[0], strerror(errno));
        _exit(127);
    }
    if (pid > 0) r->status = h_wait(pid, seconds, &r->timed_out);
    h_slurp(ofd, r->out, sizeof r->out);
    h_slurp(efd, r->err, sizeof r->err);
    close(ofd);
    close(efd);
}

/* Run a fixture from build/fixtures/ with libmemshim.so preloaded, memshim's
 * settings at their defaults except for the (up to two) extra ones given. */
static inline void h_run_fixture2(h_run_t *r, const char *name, const char *arg,
                                  const char *env1, const char *env2, int seconds)
{
    char prog[2 * PATH_MAX + 2], preload[2 * PATH_MAX + 16];
    snprintf(prog, sizeof prog, "%s", h_path("fixtures/%s", name));
    snprintf(preload, sizeof preload, "LD_PRELOAD=%s", h_path("libmemshim.so"));
    const char *env[] = { preload, "MEMSHIM_ON_ERROR=", "MEMSHIM_STATS=", "MEMSHIM_VERBOSE=",
                          "MEMSHIM_TRACK=", env1 ? env1 : "", env2 ? env2 : "", NULL };
    char *argv[] = { prog, (char *)arg, NULL };
    h_run(r, argv, env, seconds);
}

static inline void h_run_fixture(h_run_t *r, const char *name, const char *arg,
                                 const char *extra_env, int seconds)
{
    h_run_fixture2(r, name, arg, extra_env, NULL, seconds);
}

/* A private directory for a fixture's leak reports: *env becomes
 * "MEMSHIM_REPORT=DIR/r.%p.txt" (room for PATH_MAX + 32), dir holds DIR
 * (room for 32); h_report_dir_remove takes it away with what is in it. */
static inline int h_report_dir(char *dir, char *env)
{
    strcpy(dir, "/tmp/msrepXXXXXX");
    if (!mkdtemp(dir)) return -1;
    snprintf(env, PATH_MAX + 32, "MEMSHIM_REPORT=%s/r.%%p.txt", dir);
    return 0;
}
static inline void h_report_dir_remove(const char *dir)
{
    char cmd[64];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", dir);
}

/* Count lines of s (each ended by '\n', or a last unterminated one). */
static inline int h_count_lines(const char *s)
{
    int n = 0;
    for (const char *p = s; *p; p++)
        if (*p == '\n' || p[1] == 0) n++;
    return n;
}

/* memshim writes its messages to its own close-on-exec copy of standard
 * error, taken at start-up, or to fd 2 while that is still the same file;
 * never to a file the program put there later.  In a forked child about to
 * be captured, close such copies (descriptors above 2 open on the same file
 * as fd 2) so that nothing reaches the terminal: its messages are dropped. */
static inline void h_close_stderr_copies(void)
{
    struct stat e, o;
    if (fstat(2, &e) != 0) return;
    for (int fd = 3; fd < 1024; fd++) {
        int fl = fcntl(fd, F_GETFD);
        if (fl < 0 || !(fl & FD_CLOEXEC) || fstat(fd, &o) != 0) continue;
        if (o.st_dev == e.st_dev && o.st_ino == e.st_ino && o.st_rdev == e.st_rdev) close(fd);
    }
}

/* Fork, run fn in the child with stdout and stderr captured, and wait (hang
 * guard).  The child ends with _exit(fn's return value) unless it dies. */
static inline void h_fork_run(h_run_t *r, int (*fn)(void *), void *arg, int seconds)
{
    memset(r, 0, sizeof *r);
    r->status = -1;
    int ofd = h_tmpfile(), efd = h_tmpfile();
    if (ofd < 0 || efd < 0) return;
    fflush(NULL);
    pid_t pid = fork();
    if (pid == 0) {
        h_close_stderr_copies();
        dup2(ofd, 1);
        dup2(efd, 2);
        int rc = fn(arg);
        fflush(NULL);
        _exit(rc);
    }
    if (pid > 0) r->status = h_wait(pid, seconds, &r->timed_out);
    h_slurp(ofd, r->out, sizeof r->out);
    h_slurp(efd, r->err, sizeof r->err);
    close(ofd);
    close(efd);
}

#endif
