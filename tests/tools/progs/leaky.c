/* leaky.c - leaks ten 48-byte nodes (definitely lost) and keeps 1000 bytes
 * reachable; exits 0, or with --term ends on a SIGTERM left to its default
 * action.  Built with -O0 so the compiler keeps every malloc. */
#include <signal.h>
#include <stdlib.h>
#include <string.h>
struct node { struct node *next; char pad[40]; };
void *keep;
void *volatile sink;
__attribute__((noinline)) static void make_nodes(void)
{
    for (int i = 0; i < 10; i++) { struct node *n = malloc(sizeof *n); n->next = 0; sink = n; }
    sink = 0;
}
int main(int argc, char **argv)
{
    make_nodes();
    keep = malloc(1000);
    if (argc > 1 && strcmp(argv[1], "--term") == 0) raise(SIGTERM);
    return 0;
}
