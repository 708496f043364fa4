-- sqlite.sql - the sqlite3 workload of bench/run.sh: build a large table in
-- memory, index it, query it.  Run as: sqlite3 :memory: '.read bench/sqlite.sql'
-- The page cache and every row, index and sort buffer come from malloc.
PRAGMA cache_size = -200000;
CREATE TABLE t(id INTEGER PRIMARY KEY, grp INTEGER, name TEXT, payload TEXT, x REAL);
WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 300000)
INSERT INTO t(grp, name, payload, x)
  SELECT (i * 7919) % 1000, printf('name-%08d', (i * 104729) % 1000003),
         substr(hex(printf('%d.%d.%d', i * 2654435761, i * 40503, i * 97)) || hex(i * 69069), 1, 20 + (i % 60)), (i % 977) / 7.0
  FROM n;
CREATE INDEX t_grp ON t(grp);
CREATE INDEX t_name ON t(name);
SELECT count(*), sum(length(payload)) FROM t;
SELECT grp, count(*), round(avg(x), 3), max(name) FROM t GROUP BY grp ORDER BY 2 DESC, 1 LIMIT 3;
SELECT count(DISTINCT substr(name, 1, 9)) FROM t;
SELECT name FROM t ORDER BY payload LIMIT 1 OFFSET 1000;
UPDATE t SET payload = payload || payload WHERE grp % 3 = 0;
DELETE FROM t WHERE grp % 5 = 1;
SELECT count(*), sum(length(payload)) FROM t;
