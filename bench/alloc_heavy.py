"""alloc_heavy.py - a fixed, allocation-heavy CPython workload for bench/run.sh.

Deterministic (seeded), no I/O besides one line of output: builds and drops
many small objects (dicts, tuples, instances, short strings), grows big lists,
strings and bytearrays, round-trips JSON, and sorts.  CPython serves objects
up to 512 bytes from its own arenas (pymalloc), so the allocator under test
sees the larger objects, the arenas themselves, and the buffers of lists,
dicts and strings as they grow.  Prints a checksum.
"""
import json
import random
import sys


class Node:
    __slots__ = ("key", "value", "children")

    def __init__(self, key, value):
        self.key = key
        self.value = value
        self.children = []


def tree(rng, n):
    nodes = [Node(i, str(i) * (1 + i % 7)) for i in range(n)]
    for i in range(1, n):
        nodes[rng.randrange(i)].children.append(nodes[i])
    total, stack = 0, [nodes[0]]
    while stack:
        v = stack.pop()
        total += len(v.value)
        stack.extend(v.children)
    return total


def records(rng, n):
    rows = []
    for i in range(n):
        rows.append({
            "id": i,
            "name": "user%06d" % rng.randrange(10**6),
            "tags": [rng.choice("abcdefgh") * rng.randrange(1, 40) for _ in range(rng.randrange(6))],
            "score": rng.random(),
        })
    text = json.dumps(rows)
    back = json.loads(text)
    back.sort(key=lambda r: (r["name"], r["id"]))
    by_tag = {}
    for r in back:
        for t in r["tags"]:
            by_tag.setdefault(t[:3], []).append(r["id"])
    return len(text) + sum(len(v) for v in by_tag.values())


def buffers(rng, n):
    total = 0
    for i in range(n):
        parts = []
        b = bytearray()
        for _ in range(rng.randrange(50, 400)):
            s = "x" * rng.randrange(1, 300)
            parts.append(s)
            b += s.encode()
        total += len("".join(parts)) + len(b)
    return total


def churn(rng, n):
    d = {}
    for i in range(n):
        k = rng.randrange(50000)
        if k in d:
            del d[k]
        else:
            d[k] = (i, str(i), [i] * (k % 13))
    return len(d)


def main():
    rng = random.Random(1234)
    scale = int(sys.argv[1]) if len(sys.argv) > 1 else 1
    out = 0
    for _ in range(scale):
        out += tree(rng, 150000)
        out += records(rng, 40000)
        out += buffers(rng, 1500)
        out += churn(rng, 400000)
    print("python: checksum=%d" % out)


main()
