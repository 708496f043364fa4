/* graph.c - build a large linked graph, walk it, free it all.
 *
 *   graph [nodes]              default: 1000000
 *
 * Every node is its own malloc (48 bytes) with its own edge array (a malloc
 * of 1-12 pointers, grown with realloc as edges are added), plus a name
 * string (malloc of 8-40 bytes) for one node in four: about 2.3 million
 * blocks for the default million nodes.  Each new node gets 0-4 edges to
 * random earlier nodes, each stored both ways, so edge arrays keep growing
 * long after their node's birth and allocations of different lifetimes
 * interleave.  Then a breadth-first
 * walk from node 0 counts the reachable nodes, and everything is freed in a
 * random order (as when a program tears down a graph through a hash table).
 * Prints a checksum. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct node_s {
    struct node_s **edges;
    uint32_t nedges, cap;
    uint64_t id;
    char *name;
    uint64_t mark;
    uint64_t weight;
} node_t;

static uint64_t rng = 0xD1B54A32D192ED03ull;
static inline uint64_t next(void)
{
    rng ^= rng << 13; rng ^= rng >> 7; rng ^= rng << 17;
    return rng;
}

static void *xmalloc(size_t n)
{
    void *p = malloc(n);
    if (!p) { perror("malloc"); exit(1); }
    return p;
}

static void add_edge(node_t *a, node_t *b)
{
    if (a->nedges == a->cap) {
        a->cap = a->cap ? a->cap * 2 : 1 + (uint32_t)(next() % 3);
        a->edges = realloc(a->edges, a->cap * sizeof *a->edges);
        if (!a->edges) { perror("realloc"); exit(1); }
    }
    a->edges[a->nedges++] = b;
}

int main(int argc, char **argv)
{
    size_t n = argc > 1 ? (size_t)atol(argv[1]) : 1000000;
    if (n < 2) n = 2;
    node_t **all = xmalloc(n * sizeof *all);
    for (size_t i = 0; i < n; i++) {
        node_t *v = xmalloc(sizeof *v);
        memset(v, 0, sizeof *v);
        v->id = i;
        v->weight = next() & 0xffff;
        if ((next() & 3) == 0) {
            size_t len = 8 + next() % 33;
            v->name = xmalloc(len);
            memset(v->name, 'a' + (int)(i % 26), len - 1);
            v->name[len - 1] = 0;
        }
        all[i] = v;
        if (i) {
            unsigned k = (unsigned)(next() % 5);       /* 0-4 edges, 2 on average */
            if (i == 1) k = 1;
            for (unsigned e = 0; e < k; e++) {
                node_t *w = all[next() % i];
                add_edge(v, w);
                add_edge(w, v);
            }
        }
    }

    /* breadth-first walk from node 0 */
    node_t **queue = xmalloc(n * sizeof *queue);
    size_t qh = 0, qt = 0;
    uint64_t sum = 0;
    all[0]->mark = 1;
    queue[qt++] = all[0];
    while (qh < qt) {
        node_t *v = queue[qh++];
        sum += v->weight + (v->name ? (unsigned char)v->name[0] : 0);
        for (uint32_t e = 0; e < v->nedges; e++)
            if (!v->edges[e]->mark) { v->edges[e]->mark = 1; queue[qt++] = v->edges[e]; }
    }
    free(queue);

    /* free in a random order */
    for (size_t i = n - 1; i > 0; i--) {
        size_t j = next() % (i + 1);
        node_t *t = all[i]; all[i] = all[j]; all[j] = t;
    }
    for (size_t i = 0; i < n; i++) {
        free(all[i]->name);
        free(all[i]->edges);
        free(all[i]);
    }
    free(all);
    printf("graph: nodes=%zu reachable=%zu checksum=%016llx\n", n, qt, (unsigned long long)sum);
    return 0;
}
