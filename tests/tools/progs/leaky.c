/* leaky.c - leaks ten 48-byte nodes (definitely lost) and keeps 1000 bytes
 * reachable; exits 0, or with --term ends on a SIGTERM left to its default
 * action, or with --overflow overflows its stack (SIGSEGV, no core dump).
 * Built with -O0 so the compiler keeps every malloc and every call. */
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
struct node { struct node *next; char pad[40]; };
void *keep;
void *volatile sink;
__attribute__((noinline)) static void make_nodes(void)
{
    for (int i = 0; i < 10; i++) { struct node *n = malloc(sizeof *n); n->next = 0; sink = n; }
    sink = 0;
}
#pragma GCC diagnostic ignored "-Winfinite-recursion"
static int bottomless(int depth)
{
    volatile char frame[256];
    frame[depth & 255] = 1;
    return bottomless(depth + 1) + frame[0];
}
int main(int argc, char **argv)
{
    make_nodes();
    keep = malloc(1000);
    if (argc > 1 && strcmp(argv[1], "--term") == 0) raise(SIGTERM);
    if (argc > 1 && strcmp(argv[1], "--overflow") == 0) {
        struct rlimit none = { 0, 0 };
        setrlimit(RLIMIT_CORE, &none);
        return bottomless(0);
    }
    return 0;
}
