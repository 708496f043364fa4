/* runner.c - run one command and measure it: wall time and peak RSS.
 *
 *   runner [-E VAR=VALUE]... [-U VAR]... [-i IN] [-o OUT] [-e ERR] [-t SECS] -- cmd [arg...]
 *
 * fork()s, sets the environment only in the child (so an LD_PRELOAD given
 * with -E never touches the harness), exec()s cmd (looked up in PATH), waits
 * with wait4() and prints one line on standard output:
 *
 *   <wall seconds> <peak RSS in KiB> <status> <CPU seconds, user + system>
 *
 * status is the exit code, or 128+N for death by signal N, 127 if the
 * command could not be executed, or 124 if it ran longer than -t seconds
 * (the child runs in a process group of its own, which is then killed, as it
 * is when the runner gets SIGINT or SIGTERM).  Peak RSS is the child's ru_maxrss, which
 * the kernel folds together with that of the descendants it reaped (gcc's
 * cc1, as, ld), i.e. the largest single process in the tree.
 * LD_PRELOAD is removed from the child's environment before the -E
 * assignments are applied, so a run without -E LD_PRELOAD=... is a clean
 * glibc run even if the caller's environment had one.  The child's standard
 * input is /dev/null unless -i is given; its standard output and error go
 * to the files given with -o and -e (default: inherited). */
#include <errno.h>
#include <signal.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define MAX_ENV 64

static volatile sig_atomic_t child_pid, timed_out, interrupted;

static void usage(void)
{
    fprintf(stderr, "usage: runner [-E VAR=VALUE]... [-U VAR]... [-i IN] [-o OUT] [-e ERR] [-t SECS] -- cmd [arg...]\n");
    exit(2);
}

static void on_signal(int sig)
{
    if (sig == SIGALRM) timed_out = 1; else interrupted = sig;
    if (child_pid > 0) kill(-child_pid, SIGKILL);
}

static void redirect(const char *path, int fd, int flags)
{
    int f = open(path, flags, 0644);
    if (f < 0) { fprintf(stderr, "runner: %s: %s\n", path, strerror(errno)); _exit(127); }
    if (f != fd) { dup2(f, fd); close(f); }
}

int main(int argc, char **argv)
{
    const char *set[MAX_ENV], *unset[MAX_ENV];
    int nset = 0, nunset = 0, opt;
    unsigned timeout = 0;
    const char *in = "/dev/null", *out = NULL, *err = NULL;

    while ((opt = getopt(argc, argv, "+E:U:i:o:e:t:")) != -1) {
        switch (opt) {
        case 'E':
            if (nset == MAX_ENV || !strchr(optarg, '=')) usage();
            set[nset++] = optarg;
            break;
        case 'U':
            if (nunset == MAX_ENV) usage();
            unset[nunset++] = optarg;
            break;
        case 'i': in = optarg; break;
        case 'o': out = optarg; break;
        case 'e': err = optarg; break;
        case 't': timeout = (unsigned)atoi(optarg); break;
        default: usage();
        }
    }
    if (optind >= argc) usage();
    char **cmd = argv + optind;

    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigaction(SIGALRM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGHUP, &sa, NULL);

    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    pid_t pid = fork();
    if (pid < 0) { perror("runner: fork"); return 2; }
    if (pid == 0) {
        setpgid(0, 0);
        signal(SIGALRM, SIG_DFL);
        signal(SIGINT, SIG_DFL);
        signal(SIGTERM, SIG_DFL);
        signal(SIGHUP, SIG_DFL);
        unsetenv("LD_PRELOAD");
        for (int i = 0; i < nunset; i++) unsetenv(unset[i]);
        for (int i = 0; i < nset; i++) {
            char *eq = strchr(set[i], '=');
            char name[256];
            size_t len = (size_t)(eq - set[i]);
            if (len >= sizeof name) _exit(127);
            memcpy(name, set[i], len);
            name[len] = 0;
            setenv(name, eq + 1, 1);
        }
        redirect(in, 0, O_RDONLY);
        if (out) redirect(out, 1, O_WRONLY | O_CREAT | O_TRUNC);
        if (err) redirect(err, 2, O_WRONLY | O_CREAT | O_TRUNC);
        execvp(cmd[0], cmd);
        fprintf(stderr, "runner: %s: %s\n", cmd[0], strerror(errno));
        _exit(127);
    }
    setpgid(pid, pid);              /* also here: no race with the kill */
    child_pid = pid;
    if (timeout) alarm(timeout);
    int status;
    struct rusage ru;
    while (wait4(pid, &status, 0, &ru) < 0) {
        if (errno != EINTR) { perror("runner: wait4"); return 2; }
    }
    clock_gettime(CLOCK_MONOTONIC, &t1);
    double wall = (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9;
    alarm(0);
    int code = WIFEXITED(status) ? WEXITSTATUS(status)
             : WIFSIGNALED(status) ? 128 + WTERMSIG(status) : 255;
    if (timed_out) code = 124;
    double cpu = (double)(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec)
               + (double)(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e6;
    printf("%.6f %ld %d %.6f\n", wall, (long)ru.ru_maxrss, code, cpu);
    if (interrupted) { fflush(stdout); signal(interrupted, SIG_DFL); raise(interrupted); }
    return 0;
}
