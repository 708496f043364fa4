#!/bin/sh
# demo.sh - `make demo`: preload memshim into real programs and show what it did.
set -e
B=${1:-build}
LIB=$(cd "$B" && pwd)/libmemshim.so
PY=/usr/bin/python3
[ -x "$PY" ] || PY=$(command -v python3)
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

echo "== 1. python3 builds a dictionary of 300,000 strings on memshim's pools"
echo "   LD_PRELOAD=$LIB PYTHONMALLOC=malloc MEMSHIM_STATS=stderr $PY -c ..."
LD_PRELOAD=$LIB PYTHONMALLOC=malloc MEMSHIM_STATS=$tmp/py.stats "$PY" -c '
d = {i: "x" * (i % 200) for i in range(300000)}
words = sorted(str(i * 7919 % 100003) for i in range(200000))
print("   python3 says: %d keys, %d words, first %s" % (len(d), len(words), words[0]))
'
sed 's/^/   /' "$tmp/py.stats"

echo
echo "== 2. sqlite3 builds and queries a 200,000-row table"
LD_PRELOAD=$LIB MEMSHIM_STATS=$tmp/sql.stats sqlite3 :memory: '
CREATE TABLE t(id INTEGER PRIMARY KEY, k TEXT, v REAL);
WITH RECURSIVE c(i) AS (SELECT 1 UNION ALL SELECT i+1 FROM c WHERE i < 200000)
INSERT INTO t SELECT i, printf("key%05d", i % 5000), i * 0.5 FROM c;
CREATE INDEX tk ON t(k);
SELECT "   sqlite3 says: " || count(*) || " groups, max sum " || max(s) FROM (SELECT k, sum(v) s FROM t GROUP BY k);'
grep -E "small blocks|huge|segments|rss" "$tmp/sql.stats" | sed 's/^/   /'

echo
echo "Preload memshim into your own program the same way:"
echo "   LD_PRELOAD=$LIB MEMSHIM_STATS=stderr ./your-program"
