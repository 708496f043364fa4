#!/usr/bin/env python3
"""gc_bench.py - CPython's side of bench/gc_bench.c (run it with CPython 3.11).

(a) gc.collect() finding 1,000,000 unreachable objects in cycles (rings of
10) and freeing them; (b) gc.collect() over 1,000,000 objects reachable from
a root (one linked list) that finds nothing; (c) that list made, and freed
by reference counting when its head goes.  The objects are instances of a
class with __slots__ = ('ref',), the nearest thing to gc_bench.c's
one-pointer struct.  Prints nanoseconds per object, best of 3 runs, with the
same keys as gc_bench.c:

    gc_unreachable_ns_per_obj 68.8
    gc_reachable_ns_per_obj 35.3
    gc_life_ns_per_obj 60.2
"""
import gc
import sys
import time

N = 1_000_000
RING = 10
RUNS = 3


class Node:
    __slots__ = ('ref',)


def unreachable_run():
    for _ in range(N // RING):
        first = Node()
        prev = first
        for _ in range(RING - 1):
            n = Node()
            prev.ref = n
            prev = n
        prev.ref = first
    del first, prev, n
    t = time.perf_counter_ns()
    found = gc.collect()
    t = time.perf_counter_ns() - t
    if found != N:
        print(f"gc_bench.py: unreachable: found {found}, expected {N}", file=sys.stderr)
    return t / N


def reachable_run():
    """(b); and (c), the list's making and freeing, as the second value."""
    t0 = time.perf_counter_ns()
    head = Node()
    prev = head
    for _ in range(N - 1):
        n = Node()
        prev.ref = n
        prev = n
    prev.ref = None
    del prev, n
    built = time.perf_counter_ns()
    found = gc.collect()
    t = time.perf_counter_ns() - built
    if found != 0:
        print(f"gc_bench.py: reachable: found {found}, expected 0", file=sys.stderr)
    # Dropping head frees the list; CPython's trashcan keeps the stack bounded.
    t1 = time.perf_counter_ns()
    del head
    life = (built - t0 + time.perf_counter_ns() - t1) / N
    return t / N, life


def main():
    if sys.version_info[:2] != (3, 11):
        print(f"gc_bench.py: note: this is Python {sys.version.split()[0]}, "
              "the comparison is meant for 3.11", file=sys.stderr)
    gc.disable()
    gc.collect()
    best_u = best_r = best_l = float("inf")
    for _ in range(RUNS):
        best_u = min(best_u, unreachable_run())
        r, life = reachable_run()
        best_r = min(best_r, r)
        best_l = min(best_l, life)
    print(f"gc_unreachable_ns_per_obj {best_u:.1f}")
    print(f"gc_reachable_ns_per_obj {best_r:.1f}")
    print(f"gc_life_ns_per_obj {best_l:.1f}")


if __name__ == "__main__":
    main()
