/* forker.c - fork once; the child allocates a little and exits after a
 * while, the parent waits for it.  For the fork policy of the reporter. */
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static void nap(long ms) { struct timespec ts = { ms / 1000, (ms % 1000) * 1000000 }; nanosleep(&ts, NULL); }

int main(void)
{
    char *a = malloc(1 << 20);
    memset(a, 1, 1 << 20);
    pid_t pid = fork();
    if (pid < 0) return 2;
    if (pid == 0) {
        char *b = malloc(2 << 20);
        memset(b, 2, 2 << 20);
        nap(300);
        free(b);
        exit(0);
    }
    int st;
    waitpid(pid, &st, 0);
    nap(100);
    free(a);
    return WIFEXITED(st) ? WEXITSTATUS(st) : 3;
}
