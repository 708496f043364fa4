/* freetree.c - a free-heavy loop whose frees all have different stacks, for
 * instruction counting under callgrind: each round builds a binary tree of
 * 2^12 - 1 nodes and frees it recursively, left then right, so the call
 * chain of every malloc and every free differs (the stack cache cannot hit).
 *
 *   freetree [rounds]      default 100
 *
 *   LD_PRELOAD=build/libmemshim.so valgrind --tool=callgrind build/bench/freetree 0
 *   LD_PRELOAD=build/libmemshim.so valgrind --tool=callgrind build/bench/freetree 50
 * and (Ir with 50 - Ir with 0) / (50 * 4095) is the cost of one node's
 * malloc and free, tracking included. */
#include <stdlib.h>

typedef struct node { struct node *l, *r; } node;

static node *build(int d)
{
    if (!d) return NULL;
    node *n = malloc(sizeof *n);
    if (!n) abort();
    n->l = build(d - 1);
    n->r = build(d - 1);
    return n;
}

static void drop(node *n)
{
    if (!n) return;
    drop(n->l);
    drop(n->r);
    free(n);
}

int main(int argc, char **argv)
{
    long rounds = argc > 1 ? atol(argv[1]) : 100;
    for (long i = 0; i < rounds; i++) drop(build(12));
    return 0;
}
