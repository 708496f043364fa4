/* forkkill.c GO - two forked children, as a debugger makes them: the first
 * is killed (SIGKILL) 200 ms after the fork, as gdb kills the child it
 * forks to probe ptrace; the second lives until the file GO exists, then
 * exits.  Prints "killed PID" and "lives PID" as each is known. */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static void nap(long ms) { struct timespec ts = { ms / 1000, (ms % 1000) * 1000000 }; nanosleep(&ts, NULL); }

int main(int argc, char **argv)
{
    if (argc != 2) return 2;
    free(malloc(100));
    pid_t a = fork();
    if (a < 0) return 2;
    if (a == 0) {
        for (;;) pause();
    }
    nap(200);
    kill(a, SIGKILL);
    waitpid(a, NULL, 0);
    printf("killed %d\n", (int)a);
    fflush(stdout);
    pid_t b = fork();
    if (b < 0) return 2;
    if (b == 0) {
        while (access(argv[1], F_OK) != 0) nap(20);
        exit(0);
    }
    printf("lives %d\n", (int)b);
    fflush(stdout);
    int st;
    waitpid(b, &st, 0);
    return WIFEXITED(st) ? WEXITSTATUS(st) : 3;
}
