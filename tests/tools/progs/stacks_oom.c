/* stacks_oom.c [thread] - memshim's memory for allocation stacks runs out
 * while the program goes on.  The program first allocates and frees 20,000 blocks of
 * 32 bytes (the pools then hold free blocks of that size), caps its address
 * space (RLIMIT_AS) at what it uses now plus 256 KiB, and allocates 32
 * bytes from each of 32,768 distinct call chains (walk(): five levels, each
 * calling down from one of eight call sites): the trace table cannot grow
 * that far, and later blocks have the stack "out of memory".  It then
 * lifts the cap (its hard limit stays unlimited), frees every block and
 * prints "blocks N" (the allocations that succeeded) and exits 0.  With
 * "thread", a thread is started and joined first: the process is no longer
 * single-threaded (glibc's __libc_single_threaded stays false), so memshim
 * counts the profile through its per-thread slots. */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

#define LEVELS 5
#define CHAINS (1u << (3 * LEVELS))

static void *kept[CHAINS];
static unsigned nkept;
static volatile unsigned sink;

__attribute__((noinline)) static void leaf(void)
{
    void *p = malloc(32);
    if (p) {
        memset(p, 1, 32);
        kept[nkept++] = p;
    }
    __asm__ volatile("" ::: "memory");      /* a call, not a jump: its frame stays */
}

/* Each case calls from its own site (its own return address); -O0 keeps
 * the cases apart. */
__attribute__((noinline, optimize("O0"))) static void walk(int depth, unsigned bits)
{
    if (!depth) { leaf(); sink = 8; return; }
    switch (bits & 7) {
    case 0: walk(depth - 1, bits >> 3); sink = 0; break;
    case 1: walk(depth - 1, bits >> 3); sink = 1; break;
    case 2: walk(depth - 1, bits >> 3); sink = 2; break;
    case 3: walk(depth - 1, bits >> 3); sink = 3; break;
    case 4: walk(depth - 1, bits >> 3); sink = 4; break;
    case 5: walk(depth - 1, bits >> 3); sink = 5; break;
    case 6: walk(depth - 1, bits >> 3); sink = 6; break;
    default: walk(depth - 1, bits >> 3); sink = 7; break;
    }
}

static long vm_size_kb(void)
{
    FILE *f = fopen("/proc/self/status", "r");
    char line[256];
    long kb = -1;
    while (f && fgets(line, sizeof line, f))
        if (sscanf(line, "VmSize: %ld kB", &kb) == 1) break;
    if (f) fclose(f);
    return kb;
}

static void *idle(void *arg) { return arg; }

int main(int argc, char **argv)
{
    if (argc > 1 && strcmp(argv[1], "thread") == 0) {
        pthread_t t;
        if (pthread_create(&t, NULL, idle, NULL) != 0 || pthread_join(t, NULL) != 0) return 2;
    }
    static void *warm[20000];
    for (int i = 0; i < 20000; i++) warm[i] = malloc(32);
    for (int i = 0; i < 20000; i++) free(warm[i]);

    long kb = vm_size_kb();
    if (kb < 0) { fprintf(stderr, "no VmSize\n"); return 2; }
    struct rlimit rl;
    getrlimit(RLIMIT_AS, &rl);
    rlim_t hard = rl.rlim_max;
    rl.rlim_cur = (rlim_t)(kb + 256) * 1024;
    if (setrlimit(RLIMIT_AS, &rl) != 0) { perror("setrlimit"); return 2; }

    for (unsigned bits = 0; bits < CHAINS; bits++) walk(LEVELS, bits);

    rl.rlim_cur = hard;
    if (setrlimit(RLIMIT_AS, &rl) != 0) { perror("setrlimit"); return 2; }
    printf("blocks %u\n", nkept);
    for (unsigned i = 0; i < nkept; i++) free(kept[i]);
    return 0;
}
