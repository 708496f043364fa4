#!/bin/sh
# demo.sh - `make demo`: preload memshim into real programs from Debian
# packages and show what it does: serve their heap, report their leaks,
# count their memory.
set -e
B=${1:-build}
B=$(cd "$B" && pwd)
LIB=$B/libmemshim.so
PY=/usr/bin/python3
[ -x "$PY" ] || PY=$(command -v python3)
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
say() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

say "1. sqlite3 builds and queries a 200,000-row table on memshim's pools"
echo "   \$ LD_PRELOAD=$LIB MEMSHIM_STATS=stderr sqlite3 :memory: ..."
LD_PRELOAD=$LIB MEMSHIM_STATS=$tmp/sql.stats sqlite3 :memory: '
CREATE TABLE t(id INTEGER PRIMARY KEY, k TEXT, v REAL);
WITH RECURSIVE c(i) AS (SELECT 1 UNION ALL SELECT i+1 FROM c WHERE i < 200000)
INSERT INTO t SELECT i, printf("key%05d", i % 5000), i * 0.5 FROM c;
CREATE INDEX tk ON t(k);
SELECT "   sqlite3 says: " || count(*) || " groups, max sum " || max(s) FROM (SELECT k, sum(v) s FROM t GROUP BY k);'
echo "   memshim's statistics at its exit (the busiest size classes, then totals):"
sed -n '1,2p' "$tmp/sql.stats" | sed 's/^/   /'
grep -E '^ +[0-9]+ +[0-9]+ ' "$tmp/sql.stats" | sort -k4 -n -r | head -6 | sed 's/^/   /'
grep -E 'in use:|peak|huge|segments|rss' "$tmp/sql.stats" | sed 's/^/   /'

say "2. A program that leaks: the report at its exit, as valgrind would give it"
echo "   \$ LD_PRELOAD=$LIB $B/fixtures/leak_kinds"
if [ -x "$B/fixtures/leak_kinds" ]; then
    LD_PRELOAD=$LIB "$B/fixtures/leak_kinds" 2>&1 | sed 's/^/   /'
fi

say "3. python3 (PYTHONMALLOC=malloc) with 300,000 strings: time and peak memory"
cat > "$tmp/work.py" <<'PYEOF'
d = {i: "x" * (i % 200) for i in range(300000)}
words = sorted(str(i * 7919 % 100003) for i in range(200000))
print("   python3 says: %d keys, %d words" % (len(d), len(words)))
PYEOF
for mode in glibc memshim; do
    if [ $mode = glibc ]; then pre=""; else pre=$LIB; fi
    start=$(date +%s%N)
    LD_PRELOAD=$pre MEMSHIM_TRACK=0 MEMSHIM_STATS=$tmp/py.$mode PYTHONMALLOC=malloc "$PY" "$tmp/work.py"
    end=$(date +%s%N)
    echo "   $mode: $(( (end - start) / 1000000 )) ms"
done
grep -E 'peak rss' "$tmp/py.memshim" | sed 's/^/   memshim: /'

if [ -x "$B/memshim" ]; then
    say "4. The memshim command does the same without environment variables"
    echo "   \$ $B/memshim run --report $tmp/leaks.json -- $B/fixtures/leak_kinds"
    "$B/memshim" run --report "$tmp/leaks.json" -- "$B/fixtures/leak_kinds" 2>&1 | sed 's/^/   /' || true
    echo "   \$ $B/memshim report $tmp/leaks.json --top 3"
    "$B/memshim" report "$tmp/leaks.json" --top 3 2>&1 | sed 's/^/   /' || true
fi

if [ -x "$B/memshim" ] && [ -x "$B/fixtures/gc_cycle" ] && command -v dot >/dev/null; then
    say "5. Collector objects left in reference cycles, drawn with Graphviz"
    echo "   \$ $B/memshim run --report cycles.json -- $B/fixtures/gc_cycle"
    "$B/memshim" run --report "$tmp/cycles.json" -- "$B/fixtures/gc_cycle" >/dev/null 2>&1 || true
    out=$B/demo-cycles.svg
    echo "   \$ $B/memshim graph cycles.json -o $out"
    "$B/memshim" graph "$tmp/cycles.json" -o "$out" 2>&1 | sed 's/^/   /' || true
fi

say "Your own program"
echo "   LD_PRELOAD=$LIB MEMSHIM_STATS=stderr ./your-program      # leaks and statistics at exit"
echo "   See README.md, man -l man/memshim.7 (environment, report formats)."
