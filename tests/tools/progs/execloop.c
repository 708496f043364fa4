/* execloop.c - a program that replaces itself by exec, again and again,
 * through each of the C library's nine exec functions in turn, at times
 * that fall anywhere in memshim's writing of a metrics file.
 *
 *   execloop N [US]   allocates, waits 0 to US microseconds (default
 *                     1500), then execs itself as `execloop N-1 US`;
 *                     at 0: an exec that fails (ENOENT) and one of fd -1
 *                     (EINVAL), with the program going on; then, if
 *                     EXECLOOP_METRICS is set, waits for the file
 *                     EXECLOOP_METRICS.PID.prom to be there again (1 s at
 *                     most); then execs `sh -c 'exit 0'` with an
 *                     environment without LD_PRELOAD.
 * Each image checks that its arguments and EXECLOOP_ENV ("kept") came
 * through; exit status 1 with a line otherwise. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

extern char **environ;

static void fail(const char *what)
{
    fprintf(stderr, "execloop: %s\n", what);
    exit(1);
}

static void pause_us(long us)
{
    struct timespec t = { us / 1000000, (us % 1000000) * 1000 };
    nanosleep(&t, NULL);
}

int main(int argc, char **argv)
{
    if (argc < 2) fail("usage: execloop N [US]");
    const char *env = getenv("EXECLOOP_ENV");
    if (!env || strcmp(env, "kept") != 0) fail("EXECLOOP_ENV did not come through");
    int n = atoi(argv[1]);
    long us = argc > 2 ? atol(argv[2]) : 1500;
    if (argc > 3) fail("too many arguments came through");

    static void *keep[256];
    for (int i = 0; i < 256; i++) keep[i] = malloc(16 + (size_t)i * 8);
    if (!keep[255]) fail("out of memory");

    if (n == 0) {
        char *none[] = { "memshim-execloop-no-such-program", NULL };
        errno = 0;
        if (execvp(none[0], none) != -1 || errno != ENOENT) fail("execvp of a missing program: not ENOENT");
        errno = 0;
        if (fexecve(-1, none, environ) != -1 || errno != EINVAL) fail("fexecve(-1): not EINVAL");
        const char *m = getenv("EXECLOOP_METRICS");
        if (m) {
            char path[4096];
            snprintf(path, sizeof path, "%s.%d.prom", m, (int)getpid());
            int waited = 0;
            while (access(path, F_OK) != 0 && waited++ < 100) pause_us(10000);
            if (access(path, F_OK) != 0) fail("no metrics file after the failed execs");
        }
        char *clean[] = { "EXECLOOP_ENV=kept", NULL };
        execle("/bin/sh", "sh", "-c", "exit 0", (char *)NULL, clean);
        fail("execle /bin/sh failed");
    }
    pause_us(us ? (long)((unsigned)n * 2654435761u % (unsigned)us) : 0);

    char next[16], spell[24];
    snprintf(next, sizeof next, "%d", n - 1);
    snprintf(spell, sizeof spell, "%ld", us);
    char *args[] = { argv[0], next, spell, NULL };
    const char *self = "/proc/self/exe";
    switch (n % 9) {
    case 0: execve(self, args, environ); break;
    case 1: execv(self, args); break;
    case 2: execvp(self, args); break;
    case 3: execvpe(self, args, environ); break;
    case 4: execl(self, argv[0], next, spell, (char *)NULL); break;
    case 5: execlp(self, argv[0], next, spell, (char *)NULL); break;
    case 6: execle(self, argv[0], next, spell, (char *)NULL, environ); break;
    case 7: {
        int fd = open(self, O_RDONLY | O_CLOEXEC);
        if (fd >= 0) fexecve(fd, args, environ);
        break;
    }
    case 8: execveat(AT_FDCWD, self, args, environ, 0); break;
    }
    fail("an exec of itself failed");
}
