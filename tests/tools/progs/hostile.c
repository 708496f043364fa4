/* hostile.c - a program that is rough with its descriptors and environment,
 * for the checks that memshim never harms its host (issue 9).  argv[1]:
 *   steal DIR      close every descriptor from 3, open DIR/f0..f199 (one of
 *                  them lands where memshim kept its copy of stderr), lose
 *                  100 bytes, exit
 *   steal2 DIR     the same, then put DIR/f7 on descriptor 2 as well
 *   wipeenv        lose 100 bytes in lost_here() and 200 in keep_quiet(),
 *                  then overwrite every environment string in place (as
 *                  setproctitle does), exit
 *   closeall DIR   run 50 ms, close every descriptor from 3, open
 *                  DIR/f0..f19, run 500 ms more, exit (for the RSS log)
 *   checkers N     two threads call memshim_leak_check() N times each
 *   plant PATH     create FIFOs at PATH.tmp.PID and at the names a
 *                  pid.tid.counter scheme would pick first, then exit
 *   fork           lose 100 bytes, fork a child that loses 50 and exits,
 *                  wait for it, exit */
#include <dlfcn.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

extern char **environ;
static void *volatile sink;
static void *(*volatile v_malloc)(size_t) = malloc;

static void nap(long ms) { struct timespec ts = { ms / 1000, (ms % 1000) * 1000000 }; nanosleep(&ts, NULL); }

static __attribute__((noinline)) void lost_here(size_t n)
{
    char *p = v_malloc(n);
    memset(p, 1, n);
    sink = p;
    sink = NULL;
}
static __attribute__((noinline)) void keep_quiet(size_t n) { lost_here(n); }

/* Overwrite the dead part of the stack, where lost pointers may linger and
 * be found by the exit-time scan inside frames that reuse it. */
static __attribute__((noinline)) void scrub_stack(void)
{
    volatile char junk[32768];
    memset((char *)junk, 0, sizeof junk);
    __asm__ volatile("" ::: "memory");
}

static void close_from_3(void) { for (int fd = 3; fd < 1024; fd++) close(fd); }

static int open_files(const char *dir, int n)
{
    char path[4096];
    for (int i = 0; i < n; i++) {
        snprintf(path, sizeof path, "%s/f%d", dir, i);
        if (open(path, O_RDWR | O_CREAT | O_TRUNC, 0644) < 0) return -1;   /* kept open */
    }
    return 0;
}

static int (*check_fn)(void);
static void *checker(void *arg)
{
    for (long i = 0; i < (long)arg; i++) check_fn();
    return NULL;
}

int main(int argc, char **argv)
{
    const char *mode = argc > 1 ? argv[1] : "";
    if (!strcmp(mode, "steal") || !strcmp(mode, "steal2")) {
        if (argc < 3) return 2;
        close_from_3();
        if (open_files(argv[2], 200)) return 3;
        if (!strcmp(mode, "steal2")) {
            char path[4096];
            snprintf(path, sizeof path, "%s/f7", argv[2]);
            int fd = open(path, O_RDWR);
            if (fd < 0 || dup2(fd, 2) != 2) return 3;
            close(fd);
        }
        lost_here(100);
        scrub_stack();
    } else if (!strcmp(mode, "wipeenv")) {
        lost_here(100);
        keep_quiet(200);
        scrub_stack();
        for (char **e = environ; *e; e++) memset(*e, 'X', strlen(*e));
    } else if (!strcmp(mode, "closeall")) {
        if (argc < 3) return 2;
        nap(50);
        close_from_3();
        if (open_files(argv[2], 20)) return 3;
        nap(500);
    } else if (!strcmp(mode, "checkers")) {
        check_fn = (int (*)(void))dlsym(RTLD_DEFAULT, "memshim_leak_check");
        if (!check_fn || argc < 3) return 2;
        lost_here(100);
        pthread_t t[2];
        for (int i = 0; i < 2; i++) pthread_create(&t[i], NULL, checker, (void *)atol(argv[2]));
        for (int i = 0; i < 2; i++) pthread_join(t[i], NULL);
    } else if (!strcmp(mode, "plant")) {
        if (argc < 3) return 2;
        char path[4096];
        int pid = (int)getpid();
        snprintf(path, sizeof path, "%s.tmp.%d", argv[2], pid);
        if (mkfifo(path, 0600)) return 3;
        for (int c = 0; c < 4; c++) {
            snprintf(path, sizeof path, "%s.tmp.%d.%d.%d", argv[2], pid, pid, c);
            if (mkfifo(path, 0600)) return 3;
        }
    } else if (!strcmp(mode, "fork")) {
        lost_here(100);
        fflush(NULL);
        pid_t pid = fork();
        if (pid < 0) return 3;
        if (pid == 0) { lost_here(50); exit(0); }
        int st;
        waitpid(pid, &st, 0);
        if (!WIFEXITED(st) || WEXITSTATUS(st)) return 4;
    } else {
        return 2;
    }
    return 0;
}
