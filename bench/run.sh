#!/usr/bin/env bash
# bench/run.sh - run every workload under every allocator configuration and
# print median wall time and peak RSS as ratios to the baseline (glibc).
#
#   bench/run.sh [BUILD_DIR]            what `make bench` runs (BUILD_DIR: build)
#   bench/run.sh --list-configs [BUILD_DIR]
#                                       print the available configurations as
#                                       NAME<TAB>ENV<TAB>WRAPPER (bench/callgrind.sh uses it)
#
# Environment:
#   BENCH_RUNS=5         runs of each (workload, configuration) pair; medians are taken
#   BENCH_WORKLOADS=...  only these workloads (space-separated names)
#   BENCH_CONFIGS=...    only these configurations (the baseline is always run)
#   BENCH_TIMEOUT=120    seconds before one run is killed and counted as failed
#   BENCH_PYTHON=...     the CPython interpreter to use (default: the real binary
#                        behind `python3`, never a pyenv shim script)
#
# Each measured run goes through build/bench/runner, which forks, sets the
# configuration's environment (LD_PRELOAD=...) in the child only, and reports
# wall time, ru_maxrss and CPU time.  The allocators are interleaved: run r of every
# configuration is done before run r+1 of any, starting each round with a
# different configuration.  Raw numbers go to BUILD_DIR/bench/raw.tsv, the
# table to standard output and to BUILD_DIR/bench/results.md.
# shellcheck disable=SC2016,SC2034  # the tables hold unexpanded strings, eval'd per run
set -u
unset LD_PRELOAD          # nothing of the harness itself runs on a preloaded allocator

BENCH_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
MODE=run
if [ "${1:-}" = --list-configs ]; then MODE=list; shift; fi
BUILD=$(cd "${1:-build}" 2>/dev/null && pwd) || { echo "run.sh: no build directory ${1:-build}" >&2; exit 2; }
BIN=$BUILD/bench                 # the compiled bench/*.c
WORK=$BIN/work                   # generated inputs, outputs of the runs
SYSLIB=/usr/lib/x86_64-linux-gnu
RUNS=${BENCH_RUNS:-5}
TIMEOUT=${BENCH_TIMEOUT:-120}

# =============================================================================
# Configurations: the columns.  The first one is the baseline of the ratios.
#
#   config NAME 'ENV' ['WRAPPER']
#
# ENV: VAR=VALUE words, set only in the measured process (runner -E).
# WRAPPER: a command prefix, e.g. 'valgrind --tool=memcheck -q'.
# Both are expanded when a run starts (so they may use $WORK, $BUILD, $SYSLIB
# and $RUN_TAG, a name unique to the run, for per-run output files) and may
# use shell quoting.  A configuration whose LD_PRELOAD file or wrapper command
# is missing is skipped with a note.
# =============================================================================
CONFIGS=()
declare -A CFG_ENV CFG_WRAP
config() { CONFIGS+=("$1"); CFG_ENV[$1]=$2; CFG_WRAP[$1]=${3:-}; }

config glibc         ''
config memshim       'LD_PRELOAD=$BUILD/libmemshim.so MEMSHIM_TRACK=0'   # the allocator alone
config memshim+track 'LD_PRELOAD=$BUILD/libmemshim.so MEMSHIM_TRACK=1'   # with leak tracking (the default)
config mimalloc      'LD_PRELOAD=$SYSLIB/libmimalloc.so.2'
config jemalloc      'LD_PRELOAD=$SYSLIB/libjemalloc.so.2'
config tcmalloc      'LD_PRELOAD=$SYSLIB/libtcmalloc_minimal.so.4'
# For instance, still to come:
#   config memshim+sample 'LD_PRELOAD=$BUILD/libmemshim.so MEMSHIM_TRACK=1 MEMSHIM_SAMPLE=65536'
#   config heaptrack     ''  'heaptrack -o $WORK/heaptrack.$RUN_TAG'
#   config lsan          'LD_PRELOAD=$SYSLIB/liblsan.so.0'
#   config memcheck      ''  'valgrind --tool=memcheck -q'

# The ratio printed under the tables: first's time geomean over second's.
COMPARE=(memshim mimalloc)

# =============================================================================
# Workloads: the rows.
#
#   workload NAME 'COMMAND' [SETUP]
#
# COMMAND is expanded when a run starts, like ENV above.  SETUP, if given, is
# a shell function run once before the workload's first run (untimed); it may
# set variables the command uses, and a non-zero status skips the row, with
# the function's last line of output as the note.  Every run's standard output
# is compared with the baseline's: a difference is flagged in the table.
# =============================================================================
WORKLOADS=()
declare -A WL_CMD WL_SETUP
workload() { WORKLOADS+=("$1"); WL_CMD[$1]=$2; WL_SETUP[$1]=${3:-}; }

need_bin() {   # the workload's program was built from bench/NAME.c
    [ -x "$BIN/$1" ] || { echo "$BIN/$1 not built (make bench builds it)"; return 1; }
}
setup_python() {
    local p=${BENCH_PYTHON:-}
    if [ -z "$p" ] && command -v python3 >/dev/null 2>&1; then
        p=$(python3 -c 'import sys; print(sys.executable)' 2>/dev/null)
    fi
    [ -z "$p" ] && [ -x /usr/bin/python3 ] && p=/usr/bin/python3
    [ -n "$p" ] || { echo "no python3"; return 1; }
    p=$(readlink -f "$p")
    # A pyenv shim is a bash script: timing it would time bash, on the preloaded allocator too.
    [ "$(head -c 4 "$p" 2>/dev/null | od -An -c | tr -d ' ')" = '177ELF' ] ||
        { echo "$p is not an ELF binary (a shim script?): set BENCH_PYTHON"; return 1; }
    PYTHON=$p
}
setup_sqlite() {
    SQLITE=$(command -v sqlite3) || { echo "no sqlite3 (apt-get install sqlite3)"; return 1; }
}
setup_gcc() {
    need_bin gencode || return 1
    CC_BENCH=$(command -v "${BENCH_CC:-gcc}") || { echo "no gcc"; return 1; }
    "$BIN/gencode" > "$WORK/big.c" || { echo "gencode failed"; return 1; }
}

workload churn   '$BIN/churn'   'need_bin churn'
workload realloc '$BIN/realloc' 'need_bin realloc'
workload xthread '$BIN/xthread' 'need_bin xthread'
workload graph   '$BIN/graph'   'need_bin graph'
workload python3 '$PYTHON $BENCH_DIR/alloc_heavy.py' setup_python
workload sqlite3 '$SQLITE :memory: ".read $BENCH_DIR/sqlite.sql"' setup_sqlite
workload gcc     '$CC_BENCH -O2 -c $WORK/big.c -o $WORK/big.$RUN_TAG.o' setup_gcc

# =============================================================================
# Machinery.  Nothing below needs to change to add a row or a column.
# =============================================================================
RUN_TAG=x

# Expand a table entry into the array named by $1 (quoting in the entry is honoured).
expand() { local __s=$2; eval "$1=($__s)"; }

# Why configuration $1 cannot run here, or nothing.
config_missing() {
    local env wrap kv
    expand env "${CFG_ENV[$1]}"
    expand wrap "${CFG_WRAP[$1]}"
    for kv in "${env[@]}"; do
        case $kv in
        LD_PRELOAD=*)
            local f
            for f in ${kv#LD_PRELOAD=}; do [ -e "$f" ] || { echo "$f not found"; return; }; done ;;
        esac
    done
    if [ ${#wrap[@]} -gt 0 ] && ! command -v "${wrap[0]}" >/dev/null 2>&1; then
        echo "${wrap[0]} not found"
    fi
}

if [ "$MODE" = list ]; then
    for c in "${CONFIGS[@]}"; do
        [ -n "$(config_missing "$c")" ] && continue
        expand env "${CFG_ENV[$c]}"
        expand wrap "${CFG_WRAP[$c]}"
        printf '%s\t%s\t%s\n' "$c" "${env[*]}" "${wrap[*]}"
    done
    exit 0
fi

[ -x "$BIN/runner" ] || { echo "run.sh: $BIN/runner missing: run 'make bench'" >&2; exit 2; }
case $RUNS in ''|*[!0-9]*|0) echo "run.sh: BENCH_RUNS must be a positive integer" >&2; exit 2 ;; esac
rm -rf "$WORK"
mkdir -p "$WORK"
RAW=$BIN/raw.tsv
RESULTS=$BIN/results.md
NOTES=()

in_list() { local x; for x in $2; do [ "$x" = "$1" ] && return 0; done; return 1; }

# Columns actually run.
ACTIVE=()
BASE=${CONFIGS[0]}
for c in "${CONFIGS[@]}"; do
    if [ -n "${BENCH_CONFIGS:-}" ] && [ "$c" != "$BASE" ] && ! in_list "$c" "$BENCH_CONFIGS"; then continue; fi
    why=$(config_missing "$c")
    if [ -n "$why" ]; then
        [ "$c" = "$BASE" ] && { echo "run.sh: baseline $c cannot run: $why" >&2; exit 2; }
        NOTES+=("column $c skipped: $why")
        continue
    fi
    ACTIVE+=("$c")
done

# One measured run: run_one WORKLOAD CONFIG RUN -> appends a line to $RAW.
run_one() {
    local w=$1 c=$2 r=$3 env wrap cmd kv args=()
    RUN_TAG="$w.$c.$r"
    expand env "${CFG_ENV[$c]}"
    expand wrap "${CFG_WRAP[$c]}"
    expand cmd "${WL_CMD[$w]}"
    for kv in "${env[@]}"; do args+=(-E "$kv"); done
    local res
    res=$("$BIN/runner" -t "$TIMEOUT" -o "$WORK/$RUN_TAG.out" -e "$WORK/$RUN_TAG.err" \
          "${args[@]}" -- "${wrap[@]}" "${cmd[@]}") || res="0 0 255 0"
    # shellcheck disable=SC2086  # four words: wall rss status cpu
    set -- $res
    local same=1
    [ -f "$WORK/$w.expected" ] && ! cmp -s "$WORK/$w.expected" "$WORK/$RUN_TAG.out" && same=0
    printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$w" "$c" "$r" "$1" "$2" "$3" "$same" "$4" >> "$RAW"
    echo "$3"
}

printf 'workload\tconfig\trun\twall_s\tmaxrss_kib\tstatus\tsame_output\tcpu_s\n' > "$RAW"
START=$(date +%s)
echo "bench: ${#ACTIVE[@]} configurations (${ACTIVE[*]}), $RUNS runs each, interleaved" >&2
ROWS=()
for w in "${WORKLOADS[@]}"; do
    if [ -n "${BENCH_WORKLOADS:-}" ] && ! in_list "$w" "$BENCH_WORKLOADS"; then continue; fi
    # In this shell (not a subshell), so that the variables it sets stay set.
    if [ -n "${WL_SETUP[$w]}" ] && ! eval "${WL_SETUP[$w]}" > "$WORK/$w.setup" 2>&1; then
        NOTES+=("row $w skipped: $(tail -n 1 "$WORK/$w.setup")")
        continue
    fi
    ROWS+=("$w")
    printf 'bench: %-8s ' "$w" >&2
    # Untimed warm-up on the baseline (page cache, lazy binding); its output is the reference.
    st=$(run_one "$w" "$BASE" 0)
    if [ "$st" = 0 ]; then cp "$WORK/$w.$BASE.0.out" "$WORK/$w.expected"
    else NOTES+=("$w: the warm-up run on $BASE failed (status $st): see $WORK/$w.$BASE.0.err"); fi
    n=${#ACTIVE[@]}
    for ((r = 1; r <= RUNS; r++)); do
        for ((k = 0; k < n; k++)); do
            c=${ACTIVE[$(( (r - 1 + k) % n ))]}
            st=$(run_one "$w" "$c" "$r")
            if [ "$st" = 0 ]; then printf . >&2; else printf '!' >&2; fi
        done
    done
    printf ' %ds\n' $(( $(date +%s) - START )) >&2
done

# -----------------------------------------------------------------------------
# The report.  awk reads the raw runs (run 0 is the warm-up) and prints two
# markdown tables; the baseline column holds absolute values, the others ratios.
report() {
    echo "## memshim benchmark"
    echo
    echo "$(date -u '+%Y-%m-%d %H:%M UTC'), $(uname -m), $(nproc) CPUs, kernel $(uname -r);" \
         "median of $RUNS runs per cell, allocators interleaved; total $(( $(date +%s) - START )) s."
    local rev
    rev=$(git -C "$BENCH_DIR" describe --always --dirty 2>/dev/null) && echo "memshim at commit $rev."
    echo
    awk -F'\t' -v base="$BASE" -v cols="${ACTIVE[*]}" -v rows="${ROWS[*]}" \
        -v cmp_a="${COMPARE[0]}" -v cmp_b="${COMPARE[1]}" '
    function median(arr, n,    i, j, t) {
        for (i = 2; i <= n; i++) { t = arr[i]; for (j = i - 1; j >= 1 && arr[j] > t; j--) arr[j + 1] = arr[j]; arr[j + 1] = t }
        return n % 2 ? arr[(n + 1) / 2] : (arr[n / 2] + arr[n / 2 + 1]) / 2
    }
    function table(title, metric, unit,    i, j, w, c, v, cell, width, line, sep, sum, cnt, ratio) {
        print "### " title
        print ""
        # cells[i, j]: row i (0 = header, nr + 1 = geomean), column j (0 = workload)
        cell[0, 0] = "workload"
        for (j = 1; j <= nc; j++) cell[0, j] = col[j] (col[j] == base ? " (" unit ")" : "")
        for (j = 1; j <= nc; j++) { sum[j] = 0; cnt[j] = 0 }
        for (i = 1; i <= nr; i++) {
            w = row[i]
            cell[i, 0] = w
            for (j = 1; j <= nc; j++) {
                c = col[j]
                if (!((w, c) in ok)) { cell[i, j] = "-"; continue }
                if (ok[w, c] != "") { cell[i, j] = ok[w, c]; continue }
                v = med[metric, w, c]
                if (c == base) { cell[i, j] = sprintf(metric == "m" ? "%.1f" : "%.3f", v); continue }
                if (!((w, base) in ok) || ok[w, base] != "" || med[metric, w, base] <= 0) { cell[i, j] = "n/a"; continue }
                ratio = v / med[metric, w, base]
                cell[i, j] = sprintf("%.2f", ratio) (((w, c) in diff) ? " *" : "")
                sum[j] += log(ratio); cnt[j]++
            }
        }
        cell[nr + 1, 0] = "geomean"
        for (j = 1; j <= nc; j++) {
            if (col[j] == base) cell[nr + 1, j] = "1.00"
            else cell[nr + 1, j] = cnt[j] ? sprintf("%.2f", exp(sum[j] / cnt[j])) : "-"
            if (metric == "t" && cnt[j]) geo[col[j]] = exp(sum[j] / cnt[j])
        }
        geo[base] = 1
        for (j = 0; j <= nc; j++) {
            width[j] = 3
            for (i = 0; i <= nr + 1; i++) if (length(cell[i, j]) > width[j]) width[j] = length(cell[i, j])
        }
        for (i = 0; i <= nr + 1; i++) {
            line = sprintf("| %-" width[0] "s |", cell[i, 0])
            for (j = 1; j <= nc; j++) line = line sprintf(" %" width[j] "s |", cell[i, j])
            print line
            if (i == 0) {
                sep = "|" sprintf("%" (width[0] + 2) "s", "") "|"
                gsub(/ /, "-", sep)
                for (j = 1; j <= nc; j++) { line = sprintf("%" (width[j] + 1) "s", ""); gsub(/ /, "-", line); sep = sep line ":|" }
                print sep
            }
        }
        print ""
    }
    NR > 1 && $3 > 0 {
        k = $1 SUBSEP $2
        n[k]++
        t[k, n[k]] = $4; m[k, n[k]] = $5 / 1024; u[k, n[k]] = $8
        if ($6 != 0 && !(k in bad)) bad[k] = $6 + 0     # the first failure
        if ($7 == 0) diff[k] = 1
    }
    END {
        nc = split(cols, col, " "); nr = split(rows, row, " ")
        for (k in n) {
            if (k in bad) { ok[k] = (bad[k] == 124 ? "timeout" : bad[k] > 128 ? "sig " (bad[k] - 128) : "exit " bad[k]); continue }
            ok[k] = ""
            for (i = 1; i <= n[k]; i++) { a[i] = t[k, i]; b[i] = m[k, i]; d[i] = u[k, i] }
            med["t", k] = median(a, n[k]); med["m", k] = median(b, n[k]); med["u", k] = median(d, n[k])
        }
        table("Wall time: " base " in seconds, others as a ratio to " base " (lower is better)", "t", "s")
        table("Peak RSS: " base " in MiB, others as a ratio to " base " (lower is better)", "m", "MiB")
        table("CPU time (user + system, all threads and child processes): " base " in seconds, others as a ratio", "u", "s")
        if ((cmp_a in geo) && (cmp_b in geo))
            printf "%s / %s, geomean of time ratios: %.2f\n\n", cmp_a, cmp_b, geo[cmp_a] / geo[cmp_b]
        for (k in diff) { split(k, p, SUBSEP); flagged = flagged sprintf("%s/%s ", p[1], p[2]) }
        if (flagged != "") printf "`*`: standard output differed from %s (%s)\n\n", base, flagged
    }' "$RAW"
    if [ ${#NOTES[@]} -gt 0 ]; then
        echo "Notes:"
        for note in "${NOTES[@]}"; do echo "- $note"; done
        echo
    fi
    echo "Raw runs: ${RAW#"$PWD"/}. Each run's output: ${WORK#"$PWD"/}/WORKLOAD.CONFIG.RUN.{out,err}."
}

# Failed runs: show what they said.
awk -F'\t' 'NR > 1 && $6 != 0 { print $1 "." $2 "." $3 }' "$RAW" | head -n 5 | while read -r tag; do
    echo "bench: $tag failed; its stderr ends with:" >&2
    tail -n 3 "$WORK/$tag.err" 2>/dev/null | sed 's/^/    /' >&2
done

echo >&2
report | tee "$RESULTS"
