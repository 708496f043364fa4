/* fleet.c - programs for the exporter's tests (tests/tools/export.sh).
 *   fleet grow READY        allocate 1 MiB (untouched) every 50 ms, up to
 *                           1 GiB, creating READY after the first; then wait
 *   fleet leaky READY QUIT  lose 3 blocks of 1000 bytes; collect cycles of
 *                           the collector (automatic collection off):
 *                           generation 0 twice, 1 once, 2 once; make one
 *                           leak report (memshim_leak_check); create READY,
 *                           then exit normally once QUIT exists
 *   fleet forks N READY QUIT  fork N children, 2 ms apart, each waiting
 *                           for QUIT; write their pids to READY (one line),
 *                           then wait for them; 0 when all exited with 0
 * The library's functions are looked up with dlsym: the program runs
 * preloaded without linking it. */
#include <dlfcn.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include "memshim.h"

static void *volatile sink;
static void *(*volatile v_malloc)(size_t) = malloc;

static void nap(long ms) { struct timespec ts = { ms / 1000, (ms % 1000) * 1000000 }; nanosleep(&ts, NULL); }
static void touch(const char *path) { int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644); if (fd >= 0) close(fd); }

static __attribute__((noinline)) void lose(size_t n)
{
    char *p = v_malloc(n);
    memset(p, 1, n);
    sink = p;
    sink = NULL;
}

/* The dead part of the stack, where lost pointers may linger. */
static __attribute__((noinline)) void scrub_stack(void)
{
    volatile char junk[32768];
    memset((char *)junk, 0, sizeof junk);
    __asm__ volatile("" ::: "memory");
}

typedef struct { void *next; } node;
static int traverse(void *obj, memshim_visit_fn visit, void *arg)
{
    node *n = obj;
    return n->next ? visit(n->next, arg) : 0;
}

#define SYM(name) __typeof__(&name) p_##name = (__typeof__(&name))dlsym(RTLD_DEFAULT, #name)

static int leaky(const char *ready, const char *quit)
{
    SYM(memshim_new); SYM(memshim_incref); SYM(memshim_decref); SYM(memshim_gc_disable);
    SYM(memshim_gc_collect); SYM(memshim_leak_check);
    if (!p_memshim_new || !p_memshim_leak_check) { fprintf(stderr, "fleet: not preloaded\n"); return 2; }
    for (int i = 0; i < 3; i++) lose(1000);
    static const memshim_type Node = { .name = "Node", .traverse = traverse };
    p_memshim_gc_disable();
    for (int i = 0; i < 4; i++) {
        node *a = p_memshim_new(&Node, sizeof(node)), *b = p_memshim_new(&Node, sizeof(node));
        a->next = b; b->next = a;
        p_memshim_incref(a); p_memshim_incref(b);
        p_memshim_decref(a); p_memshim_decref(b);       /* a cycle, garbage now */
        p_memshim_gc_collect(i < 2 ? 0 : i - 1);        /* 0, 0, 1, 2 */
    }
    scrub_stack();
    p_memshim_leak_check();
    touch(ready);
    while (access(quit, F_OK) != 0) nap(10);
    return 0;
}

static int forks(int n, const char *ready, const char *quit)
{
    pid_t kids[256];
    struct stat st;
    if (n < 1 || n > 256) return 2;
    for (int i = 0; i < n; i++) {
        sink = malloc(100);
        if ((kids[i] = fork()) == 0) {
            while (stat(quit, &st) != 0) nap(10);
            _exit(0);
        }
        if (kids[i] < 0) return 1;
        nap(2);
    }
    char tmp[4096];
    snprintf(tmp, sizeof tmp, "%s.tmp", ready);
    FILE *f = fopen(tmp, "w");
    if (!f) return 1;
    for (int i = 0; i < n; i++) fprintf(f, "%d ", (int)kids[i]);
    fprintf(f, "\n");
    if (fclose(f) != 0 || rename(tmp, ready) != 0) return 1;
    int bad = 0, status;
    for (int i = 0; i < n; i++)
        if (waitpid(kids[i], &status, 0) != kids[i] || !WIFEXITED(status) || WEXITSTATUS(status)) bad++;
    return bad != 0;
}

int main(int argc, char **argv)
{
    if (argc == 5 && strcmp(argv[1], "forks") == 0) return forks(atoi(argv[2]), argv[3], argv[4]);
    if (argc == 3 && strcmp(argv[1], "grow") == 0) {
        for (int i = 0; i < 1024; i++) {
            sink = malloc(1 << 20);
            if (i == 0) touch(argv[2]);
            nap(50);
        }
        for (;;) pause();
    }
    if (argc == 4 && strcmp(argv[1], "leaky") == 0) return leaky(argv[2], argv[3]);
    fprintf(stderr, "usage: fleet grow READY | fleet leaky READY QUIT | fleet forks N READY QUIT\n");
    return 2;
}
