/* gc_bench.c - the collector's benchmark: (a) a full collection finding
 * 1,000,000 unreachable objects in cycles (rings of 10) and freeing them,
 * (b) a full collection over 1,000,000 objects reachable from a root (one
 * linked list) that finds nothing, (c) that list's life outside the
 * collector: its objects made and linked, then freed by counting when the
 * root goes (a million-long chain of deaths).  Prints nanoseconds per
 * object, the best of 3 runs each:
 *
 *   gc_unreachable_ns_per_obj 12.3
 *   gc_reachable_ns_per_obj 4.5
 *   gc_life_ns_per_obj 30.1
 *
 * bench/gc_bench.py does the same in CPython (objects of a class with
 * __slots__ = ('ref',), gc.collect()) and prints the same keys.
 *
 * Arguments, for profiling (callgrind): `gc_bench [OBJECTS [RUNS]]`, by
 * default 1000000 and 3 (OBJECTS rounded down to a multiple of 10).  The
 * Makefile does not link it with libmemshim: it
 * dlopens $MEMSHIM_LIBRARY (default build/libmemshim.so).  Loaded that way the
 * objects come from the C library's malloc; run it with
 * LD_PRELOAD=build/libmemshim.so to put them on memshim's pools. */
#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include "memshim.h"

#define RING  10

static long N = 1000000;
static int  RUNS = 3;

static void *(*p_new)(const memshim_type *, size_t);
static void  (*p_incref)(void *);
static void  (*p_decref)(void *);
static long  (*p_collect)(int);
static void  (*p_disable)(void);
static int   (*p_root_add)(void *);
static int   (*p_root_remove)(void *);

typedef struct node { void *ref; } node;

static int node_traverse(void *obj, memshim_visit_fn visit, void *arg)
{
    node *n = obj;
    return n->ref ? visit(n->ref, arg) : 0;
}

static void node_clear(void *obj)
{
    node *n = obj;
    void *r = n->ref;
    n->ref = NULL;
    p_decref(r);
}

static void node_dealloc(void *obj) { p_decref(((node *)obj)->ref); }

static const memshim_type node_type = {
    .name = "node", .traverse = node_traverse, .clear = node_clear, .dealloc = node_dealloc,
};

static double now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e9 + ts.tv_nsec;
}

static node *make(void)
{
    node *n = p_new(&node_type, sizeof(node));
    if (!n) { perror("memshim_new"); exit(1); }
    return n;
}

/* (a): rings of RING objects, no outside reference left. */
static double unreachable_run(void)
{
    for (long i = 0; i < N / RING; i++) {
        node *first = make(), *prev = first;
        for (int k = 1; k < RING; k++) {
            node *n = make();
            prev->ref = n;           /* the reference from new() moves into prev */
            prev = n;
        }
        prev->ref = first;
        p_incref(first);
        p_decref(first);             /* our own reference to the ring */
    }
    double t = now_ns();
    long found = p_collect(2);
    t = now_ns() - t;
    if (found != N) fprintf(stderr, "gc_bench: unreachable: found %ld, expected %ld\n", found, N);
    return t / N;
}

/* (b): one list of N objects held by a root. */
/* (b), and (c) in *life. */
static double reachable_run(double *life)
{
    double t0 = now_ns();
    node *head = make(), *prev = head;
    for (long i = 1; i < N; i++) {
        node *n = make();
        prev->ref = n;
        prev = n;
    }
    p_root_add(head);
    p_decref(head);                  /* the root holds it now */
    double built = now_ns();
    long found = p_collect(2);
    double t = now_ns() - built;
    if (found != 0) fprintf(stderr, "gc_bench: reachable: found %ld, expected 0\n", found);
    double t1 = now_ns();
    p_root_remove(head);             /* frees the list: a million-long chain */
    *life = (built - t0 + now_ns() - t1) / N;
    return t / N;
}

#define SYM(var, name) do { *(void **)&var = dlsym(lib, name); \
    if (!var) { fprintf(stderr, "gc_bench: %s: %s\n", name, dlerror()); return 1; } } while (0)

int main(int argc, char **argv)
{
    if (argc > 1) N = atol(argv[1]) / RING * RING;
    if (argc > 2) RUNS = atoi(argv[2]);
    if (N < RING || RUNS < 1) { fprintf(stderr, "usage: gc_bench [OBJECTS [RUNS]]\n"); return 2; }
    const char *path = getenv("MEMSHIM_LIBRARY");
    if (!path || !*path) path = "build/libmemshim.so";
    void *lib = dlopen(path, RTLD_NOW | RTLD_LOCAL);
    if (!lib) { fprintf(stderr, "gc_bench: %s\n", dlerror()); return 1; }
    SYM(p_new, "memshim_new");
    SYM(p_incref, "memshim_incref");
    SYM(p_decref, "memshim_decref");
    SYM(p_collect, "memshim_gc_collect");
    SYM(p_disable, "memshim_gc_disable");
    SYM(p_root_add, "memshim_root_add");
    SYM(p_root_remove, "memshim_root_remove");

    p_disable();                     /* as gc.disable() in the Python version */
    double best_u = 1e30, best_r = 1e30, best_l = 1e30;
    for (int r = 0; r < RUNS; r++) {
        double u = unreachable_run();
        double l, v = reachable_run(&l);
        if (l < best_l) best_l = l;
        if (u < best_u) best_u = u;
        if (v < best_r) best_r = v;
    }
    printf("gc_unreachable_ns_per_obj %.1f\n", best_u);
    printf("gc_reachable_ns_per_obj %.1f\n", best_r);
    printf("gc_life_ns_per_obj %.1f\n", best_l);
    return 0;
}
