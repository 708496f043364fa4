#!/bin/bash
# tests/e2e/run.sh - end-to-end: preload libmemshim.so into real programs from
# Debian packages and compare their output with a run without memshim.
#
#   MS_TEST_BUILD=/abs/path/to/build tests/e2e/run.sh   (what `make e2e` does)
#
# Each case runs twice in fresh directories: once plain, once with
# LD_PRELOAD=$MS_TEST_BUILD/libmemshim.so and MEMSHIM_STATS=<file>.  A case
# passes when both runs exit 0, their standard outputs are identical, the
# memshim run wrote its statistics ("memshim: heap statistics": memshim really
# was the allocator) and memshim printed no complaint on standard error.
# Then the leak verdicts (perl, python, its os._exit and a SIGTERM, gcc's
# cc1, sort, GNU as and ld, groff, tar, iconv, jq and mawk killed by a
# SIGTERM as they wait for input, git): a program run with memshim in
# three stack layouts (the environment padded by 0, 1001 and 4099 bytes)
# and under valgrind --leak-check=full (again, up to three runs, while they
# differ: valgrind's verdict varies) must find the same blocks and bytes of
# each kind compared.
# Last, the exit scan of a tracked xz -9 must leave its untouched buffers
# alone (minor faults, counted by the kernel).
# Ends with one line "e2e: N passed, N failed"; exits non-zero on a failure.
set -u
unset LD_PRELOAD MEMSHIM_STATS MEMSHIM_ON_ERROR MEMSHIM_VERBOSE

B=${MS_TEST_BUILD:-}
if [ -z "$B" ]; then
    B=$(cd "$(dirname "$0")/../../build" 2>/dev/null && pwd)
fi
LIB=$B/libmemshim.so
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
pass=0
fail=0
if [ ! -f "$LIB" ]; then
    echo "FAIL setup: $LIB not found (set MS_TEST_BUILD)"
    echo "e2e: 0 passed, 1 failed"
    exit 1
fi
LIMIT=${E2E_TIMEOUT:-240}          # seconds per run: a hang fails instead of blocking

T=$(mktemp -d /tmp/memshim-e2e.XXXXXX)
if [ -n "${E2E_KEEP:-}" ]; then echo "e2e: keeping $T"; else trap 'rm -rf "$T"' EXIT; fi
export LIB T

# The real interpreter, not a pyenv shim (which would run bash in between).
if [ -x /usr/bin/python3 ]; then
    PY=/usr/bin/python3
else
    PY=$(python3 -c 'import sys; print(sys.executable)' 2>/dev/null)
fi
export PY

# ---- the cases: each runs in its own empty directory, $RUN before every
# ---- program under test (plain: nothing; memshim: env LD_PRELOAD=...).

case_python() {
    cat > alloc.py <<'EOF'
import collections, hashlib, json, random, sys
random.seed(12345)
d = {}
for i in range(150000):
    d["k%d" % random.randrange(10**9)] = [i, str(i) * (i % 7), (i, -i)]
for k in list(d)[::3]:
    del d[k]
lst = [random.random() for _ in range(250000)]
lst.sort()
words = ["".join(random.choice("abcdefghij") for _ in range(random.randrange(1, 12)))
         for _ in range(80000)]
cnt = collections.Counter(words)
top = sorted(cnt.items(), key=lambda kv: (-kv[1], kv[0]))[:8]
s = "-".join(words)
parts = s.split("a")
big = (s * 3).replace("ab", "XYZ").upper()
objs = [{"id": i, "tags": words[i:i + 5], "v": i * 0.5, "n": {"x": [i] * (i % 10)}}
        for i in range(40000)]
js = json.dumps(objs, sort_keys=True)
back = json.loads(js)
groups = collections.defaultdict(list)
for w in words:
    groups[len(w)].append(w[::-1])
srt = sorted(words, key=lambda w: (len(w), w))
ba = bytearray()
for i in range(20000):
    ba += bytes([i % 256]) * (i % 50)
print(len(d), sum(len(v[1]) for v in d.values()))
print("%.9f %.9f %.9f" % (lst[0], lst[len(lst) // 2], lst[-1]))
print(top)
print(len(parts), max(len(p) for p in parts), len(big), big[:40])
print(len(js), back[12345]["tags"], back[999]["n"])
print(sorted((k, len(v)) for k, v in groups.items()))
print(srt[:5], srt[-5:])
print(hashlib.sha256(js.encode()).hexdigest(), hashlib.sha256(bytes(ba)).hexdigest())
EOF
    PYTHONMALLOC=malloc PYTHONHASHSEED=0 $RUN "$PY" alloc.py
}

case_sqlite3() {
    cat > q.sql <<'EOF'
CREATE TABLE t(id INTEGER PRIMARY KEY, grp INTEGER, name TEXT, val REAL, pad BLOB);
WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 200000)
INSERT INTO t SELECT x, x % 97, 'name-' || (x * 7919 % 100003), (x * 37 % 1000) / 8.0,
                     zeroblob(x % 300) FROM c;
CREATE INDEX t_name ON t(name);
CREATE INDEX t_grp_val ON t(grp, val);
SELECT grp, count(*), sum(val), min(name), max(name) FROM t GROUP BY grp ORDER BY grp LIMIT 12;
SELECT count(DISTINCT name) FROM t;
SELECT name, count(*) AS c FROM t GROUP BY name ORDER BY c DESC, name LIMIT 5;
SELECT group_concat(id) FROM (SELECT id FROM t WHERE name = 'name-12345' ORDER BY id);
UPDATE t SET val = val * 2, name = upper(name) WHERE grp < 10;
DELETE FROM t WHERE id % 3 = 0;
SELECT count(*), total(val), sum(length(pad)) FROM t;
SELECT a.grp, count(*) FROM t a JOIN t b ON a.id = b.id + 1 WHERE a.grp = b.grp + 1
  GROUP BY a.grp ORDER BY a.grp LIMIT 5;
SELECT substr(group_concat(name, ','), 1, 80) FROM (SELECT name FROM t ORDER BY name DESC LIMIT 50);
VACUUM;
PRAGMA integrity_check;
EOF
    $RUN sqlite3 db.sqlite < q.sql
}

case_git() {
    export HOME=$PWD/home GIT_CONFIG_NOSYSTEM=1 GIT_TERMINAL_PROMPT=0
    export GIT_AUTHOR_NAME=E2E GIT_AUTHOR_EMAIL=e2e@example.invalid
    export GIT_COMMITTER_NAME=E2E GIT_COMMITTER_EMAIL=e2e@example.invalid
    mkdir -p home
    $RUN git init -q -b main repo || return 1
    cd repo || return 1
    for c in 1 2 3 4 5 6; do
        export GIT_AUTHOR_DATE="2020-01-0${c}T12:00:00Z" GIT_COMMITTER_DATE="2020-01-0${c}T12:00:00Z"
        mkdir -p dir0 dir1 dir2
        for f in $(seq 1 60); do
            seq $((f * c)) $((f * c + f * 20)) > "dir$((f % 3))/file$f.txt"
        done
        printf 'commit %d\n' "$c" >> CHANGES
        $RUN git add -A || return 1
        $RUN git commit -q -m "commit $c" || return 1
    done
    $RUN git log --stat --format='%H %an %ad %s' --date=iso-strict
    $RUN git gc -q --prune=now || return 1
    $RUN git fsck --full --strict || return 1
    $RUN git rev-parse HEAD HEAD~3
    $RUN git ls-tree -r HEAD | wc -l
    $RUN git diff --stat HEAD~4 HEAD
    $RUN git show HEAD~2:dir1/file7.txt | tail -3
    $RUN git blame -s CHANGES
    $RUN git count-objects -v | grep -E '^(count|in-pack|packs):'
}

case_gcc() {
    {
        echo '#include <stdio.h>'
        echo '#include <string.h>'
        for i in $(seq 1 200); do
            cat <<EOF
struct s$i { int a[$((i % 17 + 1))]; double d; const char *name; };
static unsigned long f$i(unsigned long x, int n)
{
    struct s$i v;
    memset(&v, 0, sizeof v);
    v.name = "function $i";
    for (int k = 0; k < n; k++) {
        switch ((x + k) % 5) {
        case 0: x = x * $((i * 2 + 1)) + $i; break;
        case 1: x ^= x >> $((i % 13 + 1)); break;
        case 2: v.a[k % $((i % 17 + 1))] += (int)x; break;
        case 3: v.d += (double)x / $((i + 1)).0; break;
        default: x += strlen(v.name) + (unsigned long)v.a[0];
        }
    }
    return x + (unsigned long)v.d;
}
EOF
        done
        echo 'int main(void) { unsigned long x = 1;'
        for i in $(seq 1 200); do echo "    x = f$i(x, $((i % 40 + 10)));"; done
        echo '    printf("%lu\n", x); return 0; }'
    } > prog.c
    $RUN gcc -O2 -Wall -o prog prog.c || return 1
    $RUN gcc -O2 -S -o prog.s prog.c || return 1
    ./prog
    sha256sum prog.s | cut -d' ' -f1
}

case_xz() {
    $RUN xz -T2 --block-size=1MiB -6 -c "$T/xz-data" > data.xz || return 1
    $RUN xz -T2 -d -c data.xz > back || return 1
    cmp "$T/xz-data" back && echo "round trip ok"
    sha256sum < data.xz | cut -d' ' -f1
    $RUN xz -l --robot data.xz | grep -E '^(totals|file)' | cut -f1-6
}

case_bash() {
    cat > s.sh <<'EOF'
declare -A count
declare -a arr
for ((i = 0; i < 40000; i++)); do
    w="w$(( (i * 7919) % 1000 ))"
    count[$w]=$(( ${count[$w]:-0} + 1 ))
    arr+=("$w-$i")
done
s=""
for ((i = 0; i < 3000; i++)); do s+="${arr[i]}:"; done
echo "${#arr[@]} ${#count[@]} ${#s}"
echo "${s:100:60}"
echo "${s//w1/W1}" | md5sum | cut -d' ' -f1
keys=$(printf '%s\n' "${!count[@]}" | sort | head -5 | tr '\n' ' ')
echo "$keys"
unset 'arr[5]' 'arr[17]'
arr=("${arr[@]}")
echo "${arr[5]} ${arr[16]} ${#arr[@]}"
f() { local x=$1; (( x <= 1 )) && { echo 1; return; }; echo $(( x * $(f $((x - 1))) )); }
echo "$(f 15)"
while read -r a b; do total=$(( ${total:-0} + a * b )); done < <(seq 1 2000 | paste - -)
echo "$total"
mapfile -t lines < <(seq 1 5000 | sed 's/$/ line/')
echo "${#lines[@]} ${lines[4999]}"
txt=$(for i in $(seq 1 2000); do printf '%s ' "$((i*i))"; done)
echo "${#txt}"
EOF
    $RUN bash s.sh
}

# php opens its extensions (ctype, tokenizer, pdo, phar...) with
# RTLD_DEEPBIND: their malloc and free must be memshim's too.
case_php() {
    cat > s.php <<'EOF'
<?php
$a = [];
for ($i = 0; $i < 60000; $i++) $a["k" . ($i * 7919 % 20000)][] = str_repeat(chr(65 + $i % 26), $i % 40);
ksort($a);
echo count($a), " ", strlen(json_encode(array_slice($a, 0, 50))), "\n";
$tokens = token_get_all('<?php function f($x) { return $x * 2; } echo f(21);');
echo count($tokens), " ", ctype_alpha("memshim") ? "alpha" : "no", "\n";
$s = "";
for ($i = 0; $i < 20000; $i++) $s .= dechex($i * $i) . ",";
echo md5($s), " ", preg_match_all('/[a-f]{3}/', $s), "\n";
echo implode(" ", array_map(fn($x) => $x ** 2, range(1, 12))), "\n";
echo extension_loaded('tokenizer') ? "tokenizer " : "", extension_loaded('ctype') ? "ctype\n" : "\n";
EOF
    $RUN php s.php
}

export -f case_python case_sqlite3 case_git case_gcc case_xz case_bash case_php

# ---- the harness ------------------------------------------------------------

# run_case CASE [VAR=value]: both runs (the memshim one with the extra
# setting, if given), then compare.
run_case() {
    local fn=$1 extra=${2:-} name=$1 mode rc_ref rc_ms
    [ -n "$extra" ] && name="$1[$extra]"
    local d="$T/${name//[^A-Za-z0-9_]/_}"
    mkdir -p "$d/ref" "$d/ms"
    local start=$SECONDS
    for mode in ref ms; do
        local run=""
        [ "$mode" = ms ] && run="env LD_PRELOAD=$LIB MEMSHIM_STATS=$d/memshim.stats $extra"
        (cd "$d/$mode" && RUN="$run" timeout -k 5 "$LIMIT" bash -c "case_$fn") \
            > "$d/$mode.out" 2> "$d/$mode.err"
        echo $? > "$d/$mode.rc"
    done
    rc_ref=$(cat "$d/ref.rc")
    rc_ms=$(cat "$d/ms.rc")
    if [ "$rc_ref" != 0 ]; then
        bad "$name" "the run without memshim failed (exit $rc_ref): $(tail -3 "$d/ref.err")"
    elif [ "$rc_ms" != 0 ]; then
        bad "$name" "the run with memshim failed (exit $rc_ms$( [ "$rc_ms" = 124 ] && echo ', timed out')): $(tail -5 "$d/ms.err")"
    elif ! cmp -s "$d/ref.out" "$d/ms.out"; then
        bad "$name" "output differs from the run without memshim:
$(diff "$d/ref.out" "$d/ms.out" | head -20)"
    elif [ ! -s "$d/ref.out" ]; then
        bad "$name" "no output at all"
    elif ! grep -q 'memshim: heap statistics' "$d/memshim.stats" 2>/dev/null; then
        bad "$name" "no statistics in MEMSHIM_STATS file: memshim was not active"
    elif grep -q 'memshim:' "$d/ms.err"; then
        bad "$name" "memshim complained: $(grep 'memshim:' "$d/ms.err" | head -3)"
    else
        ok "$name" "($((SECONDS - start)) s for both runs)"
    fi
}

ok()  { echo "PASS $1 ${2:-}"; pass=$((pass + 1)); }
bad() { echo "FAIL $1: $2"; fail=$((fail + 1)); }

# shared input for xz: a few MB of mixed text
{ seq 1 300000; seq 1 7 2100000 | rev; seq 5 3 600000 | sed 's/^/row /'; } > "$T/xz-data"

missing=""
for tool in sqlite3 git gcc xz bash php timeout; do
    command -v "$tool" >/dev/null || missing="$missing $tool"
done
[ -n "$PY" ] && [ -x "$PY" ] || missing="$missing python3"
if [ -n "$missing" ]; then
    bad setup "missing programs:$missing"
fi

for c in python sqlite3 git gcc xz bash php; do
    run_case "$c"
done
run_case php MEMSHIM_TRACK=0
# the bare allocator, without per-block tracking
run_case python MEMSHIM_TRACK=0
run_case sqlite3 MEMSHIM_TRACK=0

# MEMSHIM_STATS=stderr: the statistics arrive on standard error at exit.
if LD_PRELOAD=$LIB MEMSHIM_STATS=stderr "$PY" -c 'pass' 2>&1 >/dev/null | grep -q 'memshim: heap statistics'; then
    ok "stats-to-stderr"
else
    bad "stats-to-stderr" "MEMSHIM_STATS=stderr printed no statistics"
fi

# ---- leak verdicts against valgrind's ------------------------------------------
# verdict_case NAME "KIND..." CMD...: CMD (run in $T/verdict-NAME, an empty
# directory) under memshim in each stack layout and under valgrind; for
# each KIND (definitely, indirectly, possibly) the "KIND lost: N bytes in M
# blocks" line of memshim's report must equal valgrind's.  Still reachable
# is not compared: valgrind frees the C library's own blocks before its
# check (__libc_freeres), memshim leaves them to be found reachable.
# valgrind's run is taken again, up to three in all, while memshim's
# figures differ from it: its verdict on one program changes between runs
# (sort --parallel=2: in one e2e run of two on a loaded machine valgrind
# found a pointer to the 32-byte block it calls definitely lost in 16
# other runs, and said 0 bytes; memshim said 32 bytes in 1 block in every
# layout, as in every run of its own).  memshim's figures are not
# taken again: every layout's must equal one valgrind run's, exactly, as
# test_leaks's same_as_valgrind has them.
# VG_FLAGS: more options for valgrind.
summary_of() {   # summary_of FILE KIND: "N bytes in M blocks", or nothing
    grep -m1 " $2 lost: " "$1" 2>/dev/null | sed 's/.* lost: //; s/,//g; s/ blocks\?$/ blocks/'
}
# fed_then_killed INPUT CMD...: CMD with the file INPUT on its standard
# input through a FIFO that stays open, sent SIGTERM once it has read all of
# it and waits for more (its writer done, CMD blocked reading the FIFO): a
# program killed at a point that does not hang on timing.  LIMIT seconds at
# most, then SIGKILL.
fed_then_killed() {
    local input=$1 fifo feeder pid i
    shift
    fifo="$T/fifo.$BASHPID"
    rm -f "$fifo" && mkfifo "$fifo" || return 1
    { cat "$input"; exec sleep "$LIMIT"; } > "$fifo" &
    feeder=$!
    "$@" < "$fifo" &
    pid=$!
    for ((i = 0; i < LIMIT * 20; i++)); do
        kill -0 "$pid" 2>/dev/null || break
        if [ "$(cat "/proc/$feeder/comm" 2>/dev/null)" = sleep ] &&
            grep -q pipe_read "/proc/$pid/wchan" 2>/dev/null; then
            kill -TERM "$pid"
            break
        fi
        sleep 0.05
    done
    kill -0 "$pid" 2>/dev/null && [ "$i" -ge $((LIMIT * 20)) ] && kill -KILL "$pid"
    wait "$pid"
    local rc=$?
    kill "$feeder" 2>/dev/null
    wait "$feeder" 2>/dev/null
    rm -f "$fifo"
    return $rc
}
# verdict_case NAME KINDS CMD...: with VERDICT_INPUT set, CMD is fed that
# file and killed by SIGTERM once it waits for more (fed_then_killed).
verdict_case() {
    local name=$1 kinds=$2 d="$T/verdict-$1" k pad got want bad_one="" try
    shift 2
    mkdir -p "$d"
    local run=(timeout -k 5 "$LIMIT")
    [ -z "${VERDICT_INPUT:-}" ] || run=(fed_then_killed "$VERDICT_INPUT")
    for pad in 0 1001 4099; do
        rm -f "$d/ms.$pad.txt"
        # (the shell's own line on a program a signal ended, "Terminated", goes too)
        { (cd "$d" && PAD=$(head -c "$pad" /dev/zero | tr '\0' p) "${run[@]}" \
            env LD_PRELOAD="$LIB" MEMSHIM_REPORT="$d/ms.$pad.txt" "$@" >/dev/null 2>"$d/ms.err"); } 2>/dev/null
    done
    for try in 1 2 3; do
        rm -f "$d/vg.txt"
        # shellcheck disable=SC2086
        { (cd "$d" && "${run[@]}" valgrind --leak-check=full ${VG_FLAGS:-} --log-file="$d/vg.txt" "$@" >/dev/null 2>&1); } 2>/dev/null
        if ! grep -q "LEAK SUMMARY" "$d/vg.txt" 2>/dev/null; then
            bad "verdict-$name" "valgrind gave no leak summary: $(tail -3 "$d/vg.txt" 2>/dev/null)"
            return
        fi
        bad_one=""
        for pad in 0 1001 4099; do
            for k in $kinds; do
                want=$(summary_of "$d/vg.txt" "$k")
                got=$(summary_of "$d/ms.$pad.txt" "$k")
                if [ -z "$want" ] || [ "$got" != "$want" ]; then
                    bad_one="$k lost with $pad bytes of padding: memshim '${got:-no figure}', valgrind '${want:-no figure}' (valgrind run $try of 3)"
                    break 2
                fi
            done
        done
        [ -n "$bad_one" ] || break
    done
    if [ -n "$bad_one" ]; then bad "verdict-$name" "$bad_one"; else ok "verdict-$name" "(same as valgrind: $kinds; 3 stack layouts)"; fi
}

if command -v valgrind >/dev/null && command -v perl >/dev/null; then
    # perl frees its interpreter and not the arenas it pointed to: ~9 KB
    # definitely lost, their contents indirectly lost (and possibly lost
    # blocks whose count follows the environment's size, not compared).
    # Its hash seed fixed: with a random one (and `keys %h`, a list of
    # 30,000 pointers), valgrind once found that list lost and once not.
    PERL_HASH_SEED=0 PERL_PERTURB_KEYS=0 verdict_case perl "definitely indirectly" perl -e 'my %h; for my $i (1..30000) { $h{"k$i"} = [$i, "x" x ($i % 50)] } my $n = 0; while (my ($k, $v) = each %h) { $n += @$v } print "$n\n"'
    # CPython's blocks one by one: interior pointers only (possibly lost).
    PYTHONHASHSEED=0 PYTHONMALLOC=malloc verdict_case python "definitely indirectly possibly" "$PY" -c 'import json; print(len(json.dumps(list(range(1000)))))'
    # os._exit: no finalizer, no exit handler, and a report all the same, as
    # valgrind's: three blocks of 4 KiB from C's malloc, their addresses
    # dropped (definitely lost).  Possibly lost (the interpreter's objects,
    # behind their headers) follows the environment's size: not compared.
    PYTHONHASHSEED=0 PYTHONMALLOC=malloc verdict_case os-exit "definitely indirectly" "$PY" -c 'import os, ctypes; m = ctypes.CDLL(None).malloc; m.restype = ctypes.c_void_p; [m(4096) for i in range(3)]; print("lost", flush=True); os._exit(0)'
    # The same ended by a SIGTERM left to its default action (a timeout's, a
    # service manager's): the report comes before the signal ends the
    # process, with the same figures as valgrind's.
    PYTHONHASHSEED=0 PYTHONMALLOC=malloc verdict_case os-kill "definitely indirectly" "$PY" -c 'import os, signal, ctypes; m = ctypes.CDLL(None).malloc; m.restype = ctypes.c_void_p; [m(4096) for i in range(3)]; print("lost", flush=True); os.kill(os.getpid(), signal.SIGTERM)'
    # The same, then a recursion without end through __getattr__, which
    # overflows CPython's C stack (SIGSEGV at its default action): the
    # report on memshim's signal stack first (possibly lost follows the
    # depth the stack held: not compared).  No core dump.
    PYTHONHASHSEED=0 PYTHONMALLOC=malloc verdict_case os-overflow "definitely indirectly" "$PY" -c 'import sys, resource, ctypes; resource.setrlimit(resource.RLIMIT_CORE, (0, 0)); m = ctypes.CDLL(None).malloc; m.restype = ctypes.c_void_p; [m(4096) for i in range(3)]; print("lost", flush=True); sys.setrecursionlimit(10**7); A = type("A", (), {"__getattr__": lambda s, n: getattr(s, n)}); A().x'
    # gcc's compiler proper keeps pointers to malloc'd blocks in its own
    # garbage-collected heap, mmap'd pages (LeakSanitizer, which does not
    # scan them, reports 8 blocks lost; valgrind none, one possibly).
    printf 'struct s { int a[4]; struct s *n; };\nint f(struct s *p) { int t = 0; for (; p; p = p->n) t += p->a[1]; return t; }\n' > "$T/small.c"
    verdict_case cc1 "definitely indirectly possibly" "$(gcc -print-prog-name=cc1)" -quiet -O2 "$T/small.c" -o small.s
    # sort's threads: one small block lost.
    verdict_case sort "definitely indirectly possibly" sort --parallel=2 -n "$T/xz-data"
    # GNU as on cc1's output: 7 blocks lost, 2 more indirectly.
    verdict_case as "definitely indirectly possibly" as "$T/verdict-cc1/small.s" -o small.o
    # GNU ld linking that object: 319 blocks lost and 2 more indirectly
    # (5,689 and 192 bytes with Debian's binutils 2.40).
    verdict_case ld "definitely indirectly possibly" ld -o small -e 0 "$T/verdict-as/small.o"
    # groff's driver (its children, troff and grotty, write reports of their
    # own): 434 blocks lost.  The strings it gives putenv(3) are held by the
    # environment, still reachable; valgrind's __libc_freeres frees glibc's
    # copy of the environment first and then calls them lost (2 blocks
    # more), so valgrind is asked not to.
    VG_FLAGS=--run-libc-freeres=no verdict_case groff "definitely indirectly possibly" \
        groff -Tutf8 -man "$ROOT/man/memshim.3"
    # Two real leaks of programs nobody here wrote, each a block that holds
    # the only pointers to others (definitely lost, and indirectly behind
    # it): tar's 48 bytes in 1 block and 6 in 2; iconv's descriptor
    # (112 bytes) and its conversion state (32,856 bytes in 3 blocks).
    verdict_case tar "definitely indirectly possibly" tar cf - "$ROOT/man"
    verdict_case iconv "definitely indirectly possibly" iconv -f UTF-8 -t UTF-16 "$ROOT/README.md"
    # Killed while it waits for more input (SIGTERM at its default action,
    # the report first): jq, fed 3,000 objects, has lost one block of 608
    # bytes (its stack of frames, jq_start's) with Debian's jq 1.6; mawk,
    # fed 20,000 lines into an array, reaches 699 blocks (1,431,552 bytes)
    # only by pointers into their middle.
    for i in $(seq 1 3000); do echo "{\"k$i\": [$i, \"v$i\"]}"; done > "$T/objs.json"
    seq 1 20000 > "$T/lines.txt"
    VERDICT_INPUT="$T/objs.json" verdict_case jq-term "definitely indirectly possibly" jq -c .
    VERDICT_INPUT="$T/lines.txt" verdict_case mawk-term "definitely indirectly possibly" mawk '{ a[$1]++ }'
    # Interior pointers of a program nobody here wrote: git status keeps
    # blocks of 40 bytes reachable only through pointers into their middle
    # (possibly lost: 120 bytes in 3 blocks with Debian's git 2.39).  The
    # repository is made and its index settled first; GIT_OPTIONAL_LOCKS=0
    # keeps status from rewriting it, so that every run does the same.
    if command -v git >/dev/null; then
        mkdir -p "$T/gitrepo" && printf 'a\n' > "$T/gitrepo/a" && printf 'b\n' > "$T/gitrepo/b"
        if (cd "$T/gitrepo" && export HOME="$T" GIT_CONFIG_NOSYSTEM=1 && git init -q . && git add a b &&
            git -c user.email=e2e@memshim -c user.name=e2e commit -qm e2e && printf 'c\n' >> a && git status >/dev/null); then
            HOME="$T" GIT_CONFIG_NOSYSTEM=1 GIT_OPTIONAL_LOCKS=0 \
                verdict_case git "definitely indirectly possibly" git -C "$T/gitrepo" status
        else
            bad "verdict-git" "could not make a repository for git status"
        fi
    fi
else
    bad "verdicts" "valgrind or perl is missing"
fi

# xz -9 on a small file keeps its 674 MiB of dictionary and match finder,
# barely written, until it exits.  The exit scan reads blocks by their
# pages that hold data: it must not fault in the rest (the whole scan,
# read page by page, took 174,000 minor faults and 0.36 s; now about
# 2,400, as plain xz's 1,400 and the shim's own).  Counted by the kernel
# (getrusage of the child), never timed.
faults_of() {   # faults_of CMD...: minor page faults of CMD (its output dropped)
    "$PY" - "$@" <<'EOF2'
import resource, subprocess, sys
subprocess.run(sys.argv[1:], stdout=subprocess.DEVNULL, check=True)
print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_minflt)
EOF2
}
head -c 100000 "$T/xz-data" > "$T/xz-small"
xzf=$(faults_of env LD_PRELOAD="$LIB" MEMSHIM_REPORT="$T/xz-leaks.txt" xz -9 -c "$T/xz-small" 2>&1)
if [ -n "$xzf" ] && [ "$xzf" -lt 20000 ] 2>/dev/null && grep -q "definitely lost: 0 bytes" "$T/xz-leaks.txt"; then
    ok "untouched-buffers" "(tracked xz -9: $xzf minor faults, its report written)"
else
    bad "untouched-buffers" "tracked xz -9: '${xzf:-nothing}' minor faults (at most 20000), report: $(tail -3 "$T/xz-leaks.txt" 2>/dev/null)"
fi

echo "e2e: $pass passed, $fail failed"
[ "$fail" -eq 0 ]
