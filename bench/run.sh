#!/usr/bin/env bash
# bench/run.sh - run every workload under every allocator configuration and
# print wall time, peak RSS and CPU time as ratios to the baseline (glibc):
# per cell, the median of the ratios of runs made in the same round, and
# (the Noise table) the lowest and highest of them.
#
#   bench/run.sh [BUILD_DIR]            what `make bench` runs (BUILD_DIR: build)
#   bench/run.sh --list-configs [BUILD_DIR]
#                                       print the available configurations as
#                                       NAME<TAB>ENV<TAB>WRAPPER (bench/callgrind.sh uses it)
#
# Environment:
#   BENCH_RUNS=5         runs (rounds) of each (workload, configuration) pair
#   BENCH_WORKLOADS=...  only these workloads (space-separated names)
#   BENCH_CONFIGS=...    only these configurations (the baseline is always run)
#   BENCH_TIMEOUT=120    seconds before one run is killed and counted as failed
#   BENCH_PARTS=...      the parts to run (default: alloc gc leak spike)
#   BENCH_PYTHON=...     the CPython interpreter to use (default: the real binary
#                        behind `python3`, never a pyenv shim script)
#   BENCH_BEFORE=LIB     another build's libmemshim.so: adds the columns `before`,
#                        `before+track`, `before+prof` and `before+psample`, paired
#                        with the others, to state a change's cost
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
PARTS=${BENCH_PARTS:-alloc gc leak spike}
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
declare -A CFG_ENV CFG_WRAP CFG_RUNS CFG_ROWS CFG_TIMEOUT CFG_AFTER CFG_FILTER
config() { CONFIGS+=("$1"); CFG_ENV[$1]=$2; CFG_WRAP[$1]=${3:-}; }

config glibc          ''
config memshim        'LD_PRELOAD=$BUILD/libmemshim.so MEMSHIM_TRACK=0'   # the allocator alone
config memshim+track  'LD_PRELOAD=$BUILD/libmemshim.so MEMSHIM_TRACK=1'   # with leak tracking (the default)
config memshim+leaks  'LD_PRELOAD=$BUILD/libmemshim.so MEMSHIM_TRACK=1 MEMSHIM_FREE_STACKS=0'  # tracking as LSan does it: no free stacks
config memshim+sample 'LD_PRELOAD=$BUILD/libmemshim.so MEMSHIM_TRACK=1 MEMSHIM_SAMPLE=524288'  # stacks for ~1 in 512 KiB
config memshim+prof   'LD_PRELOAD=$BUILD/libmemshim.so MEMSHIM_TRACK=1 MEMSHIM_PROFILE=$WORK/prof.$RUN_TAG.%p.pb.gz'  # heap profile, every block
config memshim+psample 'LD_PRELOAD=$BUILD/libmemshim.so MEMSHIM_TRACK=0 MEMSHIM_SAMPLE=524288 MEMSHIM_PROFILE=$WORK/psample.$RUN_TAG.%p.pb.gz'  # sampled heap profile alone
config pymalloc       'PYMALLOC=pymalloc'   # row python3m only: CPython's own allocator, on glibc
config mimalloc       'LD_PRELOAD=$SYSLIB/libmimalloc.so.2'
config jemalloc       'LD_PRELOAD=$SYSLIB/libjemalloc.so.2'
config tcmalloc       'LD_PRELOAD=$SYSLIB/libtcmalloc_minimal.so.4'
# Other leak trackers, for the tracking targets:
config heaptrack      ''  'heaptrack -o $WORK/heaptrack.$RUN_TAG'
# lsan: libstdc++ mallocs in its constructor, which initialises LSan before main(); without it
# LSan's signal() interceptor is still unset when sqlite3's main() (or gcc's `as`) calls it: SIGSEGV.
config lsan           'LD_PRELOAD=$SYSLIB/liblsan.so.0:$SYSLIB/libstdc++.so.6 LSAN_OPTIONS=exitcode=0:detect_leaks=1'
# lsan's default unwinder follows frame pointers: in code built without them (Debian's -O2, the
# suite's programs) its stacks end after the malloc's caller.  lsan+exact unwinds as memshim does,
# 16 exact frames of every allocation: the like-for-like comparison of stacks' cost.
config lsan+exact     'LD_PRELOAD=$SYSLIB/liblsan.so.0:$SYSLIB/libstdc++.so.6 LSAN_OPTIONS=exitcode=0:detect_leaks=1:fast_unwind_on_malloc=0:malloc_context_size=16'
config memcheck       ''  'valgrind --tool=memcheck --leak-check=full -q --error-exitcode=0'
config massif         ''  'valgrind --tool=massif --massif-out-file=$WORK/massif.$RUN_TAG'   # heap profiler
if [ -n "${BENCH_BEFORE:-}" ]; then    # the same library from another commit, side by side
    config before       'LD_PRELOAD=$BENCH_BEFORE MEMSHIM_TRACK=0'
    config before+track 'LD_PRELOAD=$BENCH_BEFORE MEMSHIM_TRACK=1'
    config before+prof  'LD_PRELOAD=$BENCH_BEFORE MEMSHIM_TRACK=1 MEMSHIM_PROFILE=$WORK/bprof.$RUN_TAG.%p.pb.gz'
    config before+psample 'LD_PRELOAD=$BENCH_BEFORE MEMSHIM_TRACK=0 MEMSHIM_SAMPLE=524288 MEMSHIM_PROFILE=$WORK/bpsample.$RUN_TAG.%p.pb.gz'
fi

# Optional settings of a configuration (all expanded like ENV):
#   limit NAME RUNS 'WORKLOADS' [TIMEOUT]   at most RUNS runs per cell (BENCH_RUNS caps it too),
#                                           only these rows ('' = all), TIMEOUT seconds per run
#   after NAME 'COMMAND'                    run after each of its runs, untimed
#   filter NAME 'SED-SCRIPT'                lines the wrapper adds to standard output,
#                                           removed before comparing with the baseline's
limit()  { CFG_RUNS[$1]=$2; CFG_ROWS[$1]=${3:-}; CFG_TIMEOUT[$1]=${4:-}; }
after()  { CFG_AFTER[$1]=$2; }
filter() { CFG_FILTER[$1]=$2; }

limit  heaptrack 3 'churn python3 sqlite3'
limit  memcheck  2 'churn python3 sqlite3' 400       # ~40 s per churn run on an idle core
limit  massif    2 'churn python3 sqlite3' 400
limit  lsan      5 'churn xthread graph python3 sqlite3 gcc cfrac espresso barnes'   # realloc: over 120 s (timeout) under lsan
limit  lsan+exact 2 'churn graph espresso' 400   # churn ~31 s, espresso ~90 s a run; cfrac 163 s: left out
limit  pymalloc  9 'python3m'
after  heaptrack 'rm -f $WORK/heaptrack.$RUN_TAG.*'  # up to ~80 MB per run (churn)
after  massif    'rm -f $WORK/massif.$RUN_TAG'
after  memshim+prof    'rm -f $WORK/prof.$RUN_TAG.*'
after  memshim+psample 'rm -f $WORK/psample.$RUN_TAG.*'
after  before+prof     'rm -f $WORK/bprof.$RUN_TAG.*'
after  before+psample  'rm -f $WORK/bpsample.$RUN_TAG.*'
filter heaptrack '/^heaptrack output will be written to /,/^starting application, this might take some time/d; /^Heaptrack finished!/,$d'

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
declare -A WL_IN
workload() { WORKLOADS+=("$1"); WL_CMD[$1]=$2; WL_SETUP[$1]=${3:-}; }
declare -A WL_VARY
stdin_of() { WL_IN[$1]=$2; }     # stdin_of NAME 'FILE': the workload reads FILE on its standard input
varies() { WL_VARY[$1]=$2; }     # varies NAME 'REGEX': output lines that differ run to run (times), not compared

need_bin() {   # the workload's program was built from bench/NAME.c
    [ -x "$BIN/$1" ] || { echo "$BIN/$1 not built (make bench builds it)"; return 1; }
}
SUITE=$BIN/suite
need_suite() {   # the suite's program, built by bench/suite.sh
    [ -x "$SUITE/$1" ] || { echo "$SUITE/$1 not built (bench/suite.sh builds it: see its first lines)"; return 1; }
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
# The same with every Python allocation a malloc call (PYTHONMALLOC=malloc):
# each column's allocator in pymalloc's place; column pymalloc, CPython's own.
workload python3m '$BENCH_DIR/pymalloc.sh $PYTHON $BENCH_DIR/alloc_heavy.py' setup_python
workload sqlite3 '$SQLITE :memory: ".read $BENCH_DIR/sqlite.sql"' setup_sqlite
workload gcc     '$CC_BENCH -O2 -c $WORK/big.c -o $WORK/big.$RUN_TAG.o' setup_gcc
workload large   '$BIN/large'   'need_bin large'     # big buffers alloc/free in turn (malloc-large)
workload mstress '$BIN/mstress' 'need_bin mstress'   # threads churning mixed sizes
workload threads '$BIN/threads' 'need_bin threads'   # 5000 short threads, 64 blocks each
workload simple  '$BIN/simple'  'need_bin simple'    # one thread, batches of one size (glibc-simple)
workload larson  '$BIN/larson'  'need_bin larson'    # server: threads hand their blocks to successors (larson)
workload thrash  '$BIN/falseshare thrash'  'need_bin falseshare'   # threads' blocks in one cache line? (cache-thrash)
workload scratch '$BIN/falseshare scratch' 'need_bin falseshare'   # freed blocks reused by the freeing thread (cache-scratch)
# mimalloc-bench's real programs, built from the suite's sources by bench/suite.sh:
workload cfrac    '$SUITE/cfrac 17545186520507317056371138836327483792789528' 'need_suite cfrac'   # factoring: bignums, many small blocks
workload espresso '$SUITE/espresso $SUITE/largest.espresso' 'need_suite espresso'               # logic minimizer: deep recursion, many stacks
workload barnes   '$SUITE/barnes' 'need_suite barnes'                                           # n-body: few allocations
stdin_of barnes   '$SUITE/barnes.in'
varies   barnes   'TIME|COMPUTESTART|COMPUTEEND'                                              # its clock readings

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
            local libs=${kv#LD_PRELOAD=}
            for f in ${libs//:/ }; do   # separated by spaces or colons, as ld.so takes them
                [ -e "$f" ] || { echo "$f not found"; return; }
            done ;;
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

# Runs of configuration $1 on workload $2 (printed); fails if it does not run there.
runs_of() {
    local n=${CFG_RUNS[$1]:-$RUNS}
    [ "$n" -le "$RUNS" ] || n=$RUNS
    if [ -n "${CFG_ROWS[$1]:-}" ] && ! in_list "$2" "${CFG_ROWS[$1]}"; then return 1; fi
    echo "$n"
}

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

# Slow configurations run fewer times, or on some rows only: say so under the table.
PARTIAL=""
for c in "${ACTIVE[@]}"; do
    [ -n "${CFG_RUNS[$c]:-}" ] || [ -n "${CFG_ROWS[$c]:-}" ] || continue
    n=${CFG_RUNS[$c]:-$RUNS}; [ "$n" -le "$RUNS" ] || n=$RUNS
    if [ -n "${CFG_ROWS[$c]:-}" ]; then
        PARTIAL+=" $c"
        NOTES+=("column $c (limited): median of $n runs, rows ${CFG_ROWS[$c]// /, } only (no geomean)")
    else
        NOTES+=("column $c (limited): median of $n runs")
    fi
done
[ -n "${CFG_AFTER[heaptrack]:-}" ] && in_list heaptrack "${ACTIVE[*]}" &&
    NOTES+=("heaptrack: its data files (${WORK#"$PWD"/}/heaptrack.*, up to ~80 MB a run) are deleted after each run; its peak RSS is that of the largest process, usually heaptrack_interpret; its own lines are removed from standard output before the comparison")
in_list memcheck "${ACTIVE[*]}" && NOTES+=("memcheck: peak RSS is valgrind's (the program and memcheck's shadow memory)")
in_list massif "${ACTIVE[*]}" && NOTES+=("massif: peak RSS is valgrind's; its output file is deleted after each run")

# run_in CONFIG CMD...: CMD once under configuration CONFIG (its environment
# and wrapper), its output in $WORK/$RUN_TAG.{out,err}, then the
# configuration's clean-up.  Prints the runner's "wall rss status cpu"
# (status 255: it did not run).
run_in() {
    local c=$1 env wrap kv args=() res post
    shift
    expand env "${CFG_ENV[$c]}"
    expand wrap "${CFG_WRAP[$c]}"
    for kv in "${env[@]}"; do args+=(-E "$kv"); done
    [ -n "${RUN_IN:-}" ] && args+=(-i "$RUN_IN")
    res=$("$BIN/runner" -t "${CFG_TIMEOUT[$c]:-$TIMEOUT}" -o "$WORK/$RUN_TAG.out" -e "$WORK/$RUN_TAG.err" \
          "${args[@]}" -- "${wrap[@]}" "$@") || res="0 0 255 0"
    if [ -n "${CFG_AFTER[$c]:-}" ]; then
        expand post "${CFG_AFTER[$c]}"
        "${post[@]}" >> "$WORK/$RUN_TAG.err" 2>&1
    fi
    echo "$res"
}

# One measured run: run_one WORKLOAD CONFIG RUN -> appends a line to $RAW.
run_one() {
    local w=$1 c=$2 r=$3 cmd res
    RUN_TAG="$w.$c.$r"
    expand cmd "${WL_CMD[$w]}"
    local inp=()
    [ -n "${WL_IN[$w]:-}" ] && expand inp "${WL_IN[$w]}"
    local RUN_IN=${inp[0]:-}         # run_in reads it (dynamic scope)
    res=$(run_in "$c" "${cmd[@]}")
    if [ -n "${CFG_FILTER[$c]:-}" ]; then   # keep the wrapper's own lines apart
        mv "$WORK/$RUN_TAG.out" "$WORK/$RUN_TAG.out.raw"
        sed -e "${CFG_FILTER[$c]}" "$WORK/$RUN_TAG.out.raw" > "$WORK/$RUN_TAG.out"
    fi
    if [ -n "${WL_VARY[$w]:-}" ]; then      # the workload's own clock readings
        mv "$WORK/$RUN_TAG.out" "$WORK/$RUN_TAG.out.all"
        grep -Ev "${WL_VARY[$w]}" "$WORK/$RUN_TAG.out.all" > "$WORK/$RUN_TAG.out"
    fi
    # shellcheck disable=SC2086  # four words: wall rss status cpu
    set -- $res
    local same=1
    [ -f "$WORK/$w.expected" ] && ! cmp -s "$WORK/$w.expected" "$WORK/$RUN_TAG.out" && same=0
    printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$w" "$c" "$r" "$1" "$2" "$3" "$same" "$4" >> "$RAW"
    echo "$3"
}

printf 'workload\tconfig\trun\twall_s\tmaxrss_kib\tstatus\tsame_output\tcpu_s\n' > "$RAW"
START=$(date +%s)
ROWS=()
ALLOC_ROWS=()
if in_list alloc "$PARTS"; then
    ALLOC_ROWS=("${WORKLOADS[@]}")
    echo "bench: ${#ACTIVE[@]} configurations (${ACTIVE[*]}), $RUNS runs each, interleaved" >&2
fi
for w in "${ALLOC_ROWS[@]}"; do
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
            nr=$(runs_of "$c" "$w") || continue
            [ "$r" -le "$nr" ] || continue
            st=$(run_one "$w" "$c" "$r")
            if [ "$st" = 0 ]; then printf . >&2; else printf '!' >&2; fi
        done
    done
    printf ' %ds\n' $(( $(date +%s) - START )) >&2
done

# -----------------------------------------------------------------------------
# The collector: build/bench/gc_bench (memshim's collector; it dlopens
# $MEMSHIM_LIBRARY, and with LD_PRELOAD its objects are on memshim's pools) and
# bench/gc_bench.py under CPython, RUNS times each, interleaved.  Each run
# prints its best of 3 collections in ns per object; we take the median.
GC_VARIANTS=(track notrack dlopen cpython)
declare -A GC_DESC GC_ENV
GC_DESC[track]='memshim, preloaded (MEMSHIM_TRACK=1, the default)'
GC_DESC[notrack]='memshim, preloaded, MEMSHIM_TRACK=0'
GC_DESC[dlopen]="memshim, dlopen'd only (objects on glibc malloc)"
GC_ENV[track]='LD_PRELOAD=$BUILD/libmemshim.so MEMSHIM_TRACK=1 MEMSHIM_LIBRARY=$BUILD/libmemshim.so'
GC_ENV[notrack]='LD_PRELOAD=$BUILD/libmemshim.so MEMSHIM_TRACK=0 MEMSHIM_LIBRARY=$BUILD/libmemshim.so'
GC_ENV[dlopen]='MEMSHIM_LIBRARY=$BUILD/libmemshim.so'
GC_ENV[cpython]=''
GC_RAW=$BIN/gc.tsv
GC_NOTE=""
gc_part() {
    local py=${BENCH_GC_PYTHON:-/usr/bin/python3}
    py=$(readlink -f "$py" 2>/dev/null)
    if [ ! -x "$BIN/gc_bench" ]; then GC_NOTE="$BIN/gc_bench not built (make bench builds it)"; return; fi
    if [ -z "$py" ] || [ "$(head -c 4 "$py" 2>/dev/null | od -An -c | tr -d ' ')" != '177ELF' ]; then
        GC_NOTE="no CPython binary at ${BENCH_GC_PYTHON:-/usr/bin/python3} (set BENCH_GC_PYTHON)"; return
    fi
    GC_PY=$py
    GC_PYVER=$("$py" -c 'import sys; print(sys.version.split()[0])' 2>/dev/null)
    GC_DESC[cpython]="CPython $GC_PYVER ($py), gc_bench.py"
    printf 'variant\trun\tunreachable_ns\treachable_ns\tstatus\twarning\tlife_ns\n' > "$GC_RAW"
    printf 'bench: %-8s ' collector >&2
    local r k v n=${#GC_VARIANTS[@]} env args kv res tag st
    for ((r = 1; r <= RUNS; r++)); do
        for ((k = 0; k < n; k++)); do
            v=${GC_VARIANTS[$(( (r - 1 + k) % n ))]}
            tag=gc.$v.$r
            args=()
            expand env "${GC_ENV[$v]}"
            for kv in "${env[@]}"; do args+=(-E "$kv"); done
            if [ "$v" = cpython ]; then set -- "$py" "$BENCH_DIR/gc_bench.py"; else set -- "$BIN/gc_bench"; fi
            res=$("$BIN/runner" -t "$TIMEOUT" -o "$WORK/$tag.out" -e "$WORK/$tag.err" "${args[@]}" -- "$@") ||
                res="0 0 255 0"
            # shellcheck disable=SC2086
            set -- $res
            st=$3
            printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$v" "$r" \
                "$(awk '$1 == "gc_unreachable_ns_per_obj" { print $2 }' "$WORK/$tag.out")" \
                "$(awk '$1 == "gc_reachable_ns_per_obj" { print $2 }' "$WORK/$tag.out")" "$st" \
                "$(grep -c 'expected' "$WORK/$tag.err")" \
                "$(awk '$1 == "gc_life_ns_per_obj" { print $2 }' "$WORK/$tag.out")" >> "$GC_RAW"
            if [ "$st" = 0 ]; then printf . >&2; else printf '!' >&2; fi
        done
    done
    printf ' %ds\n' $(( $(date +%s) - START )) >&2
}

gc_report() {
    echo "### Collector: nanoseconds per object of a full collection, 1,000,000 objects (lower is better)"
    echo
    if [ -n "$GC_NOTE" ]; then echo "Not run: $GC_NOTE"; echo; return; fi
    local v
    for v in "${GC_VARIANTS[@]}"; do printf '%s\t%s\n' "$v" "${GC_DESC[$v]}"; done |
    awk -F'\t' -v runs="$RUNS" '
    function median(arr, n,    i, j, t) {
        for (i = 2; i <= n; i++) { t = arr[i]; for (j = i - 1; j >= 1 && arr[j] > t; j--) arr[j + 1] = arr[j]; arr[j + 1] = t }
        return n % 2 ? arr[(n + 1) / 2] : (arr[n / 2] + arr[n / 2 + 1]) / 2
    }
    FNR == 1 { file++ }
    file == 1 { order[++nv] = $1; desc[$1] = $2; next }
    FNR > 1 {
        if ($5 != 0 || $3 == "" || $4 == "") { bad[$1] = ($5 == 124 ? "timeout" : $5 > 128 ? "sig " ($5 - 128) : "exit " $5); next }
        k = ++n[$1]; u[$1, k] = $3; q[$1, k] = $4; l[$1, k] = $7
        if ($6 > 0) warn[$1] = 1
    }
    END {
        for (i = 1; i <= nv; i++) {
            v = order[i]
            if (!n[v]) continue
            for (k = 1; k <= n[v]; k++) { a[k] = u[v, k]; b[k] = q[v, k]; c[k] = l[v, k] }
            mu[v] = median(a, n[v]); mr[v] = median(b, n[v]); ml[v] = median(c, n[v])
        }
        hdr = "| collector | runs | unreachable (ns/obj) | reachable (ns/obj) | unreachable / CPython | reachable / CPython | made and freed (ns/obj) | made and freed / CPython |"
        print hdr
        print "|-----------|-----:|---------------------:|-------------------:|----------------------:|--------------------:|------------------------:|-------------------------:|"
        for (i = 1; i <= nv; i++) {
            v = order[i]
            if (!n[v]) { printf "| %s | 0 | %s | | | | | |\n", desc[v], (v in bad) ? bad[v] : "-"; continue }
            ru = ("cpython" in mu) && mu["cpython"] > 0 ? sprintf("%.2f", mu[v] / mu["cpython"]) : "n/a"
            rr = ("cpython" in mr) && mr["cpython"] > 0 ? sprintf("%.2f", mr[v] / mr["cpython"]) : "n/a"
            rl = ("cpython" in ml) && ml["cpython"] > 0 ? sprintf("%.2f", ml[v] / ml["cpython"]) : "n/a"
            printf "| %s | %d%s | %.1f%s | %.1f | %s | %s | %.1f | %s |\n", desc[v], n[v], (v in bad) ? " (" bad[v] " in one)" : "",
                mu[v], (v in warn) ? " !" : "", mr[v], ru, rr, ml[v], rl
        }
        print ""
        printf "Median of %d runs (each run: best of 3), interleaved.  Target (issue 12): memshim / CPython at most 0.33 for both collections.  \"Made and freed\": the reachable list built, then freed by counting when its root goes (no target; tracking records a stack at each).\n", runs
        if (("cpython" in mu) && ("track" in mu)) {
            printf "memshim as deployed (preloaded, tracking on): unreachable %.2f (%s), reachable %.2f (%s).\n",
                mu["track"] / mu["cpython"], mu["track"] / mu["cpython"] <= 0.33 ? "met" : "**not met**",
                mr["track"] / mr["cpython"], mr["track"] / mr["cpython"] <= 0.33 ? "met" : "**not met**"
            if ("notrack" in mu)
                printf "Allocator alone (MEMSHIM_TRACK=0): unreachable %.2f (%s), reachable %.2f (%s).\n",
                    mu["notrack"] / mu["cpython"], mu["notrack"] / mu["cpython"] <= 0.33 ? "met" : "**not met**",
                    mr["notrack"] / mr["cpython"], mr["notrack"] / mr["cpython"] <= 0.33 ? "met" : "**not met**"
        }
        for (v in warn) { print "`!`: the collector did not find the expected number of objects (see the .err files)"; break }
        print ""
    }' - "$GC_RAW"
}

# -----------------------------------------------------------------------------
# The leak report: build/fixtures/leak_modes stacks loses 100,000 blocks of
# 32 B from 1,000 distinct stacks; the report is written at exit.  Its cost
# is the run's time with tracking and the report minus the same run with
# MEMSHIM_TRACK=0 (no report); medians of RUNS runs, interleaved.  The
# difference also holds the tracking of the program's 100,000 allocations.
# `leak_modes reachable` keeps the same 100,000 blocks reachable through one
# list from a global: with MEMSHIM_SHOW=all its 1,000 records are shown,
# each with its retention path (up to 1,000 blocks long), and without paths
# (MEMSHIM_WHY_DEPTH=0); the cost of paths is the difference.
LEAK_RAW=$BIN/leak.tsv
LEAK_NOTE=""
leak_part() {
    local prog=$BUILD/fixtures/leak_modes r v st res
    if [ ! -x "$prog" ]; then LEAK_NOTE="$prog not built (make bench builds it)"; return; fi
    printf 'variant\trun\twall_s\tstatus\n' > "$LEAK_RAW"
    printf 'bench: %-8s ' leakrep >&2
    "$BIN/runner" -o /dev/null -e /dev/null -- "$prog" stacks > /dev/null   # warm-up: page cache
    local vs=(untracked report untracked_r paths nopaths) k n=5 args
    for ((r = 1; r <= RUNS; r++)); do
        for ((k = 0; k < n; k++)); do
            v=${vs[$(( (r - 1 + k) % n ))]}
            args=(-E LD_PRELOAD="$BUILD/libmemshim.so")
            case $v in
            untracked)   args+=(-E MEMSHIM_TRACK=0 -- "$prog" stacks) ;;
            report)      rm -f "$WORK/leaks.txt"
                         args+=(-E MEMSHIM_TRACK=1 -E MEMSHIM_REPORT="$WORK/leaks.txt" -- "$prog" stacks) ;;
            untracked_r) args+=(-E MEMSHIM_TRACK=0 -- "$prog" reachable) ;;
            paths)       rm -f "$WORK/paths.txt"
                         args+=(-E MEMSHIM_TRACK=1 -E MEMSHIM_SHOW=all -E MEMSHIM_REPORT="$WORK/paths.txt" -- "$prog" reachable) ;;
            nopaths)     args+=(-E MEMSHIM_TRACK=1 -E MEMSHIM_SHOW=all -E MEMSHIM_WHY_DEPTH=0
                                -E MEMSHIM_REPORT="$WORK/nopaths.txt" -- "$prog" reachable) ;;
            esac
            res=$("$BIN/runner" -t "$TIMEOUT" -o "$WORK/leak.$v.$r.out" -e "$WORK/leak.$v.$r.err" "${args[@]}") ||
                res="0 0 255 0"
            # shellcheck disable=SC2086
            set -- $res
            st=$3
            printf '%s\t%s\t%s\t%s\n' "$v" "$r" "$1" "$st" >> "$LEAK_RAW"
            if [ "$st" = 0 ]; then printf . >&2; else printf '!' >&2; fi
        done
    done
    printf ' %ds\n' $(( $(date +%s) - START )) >&2
}

leak_report() {
    echo "### Leak report: \`leak_modes stacks\` (100,000 blocks of 32 B lost from 1,000 distinct stacks)"
    echo
    if [ -n "$LEAK_NOTE" ]; then echo "Not run: $LEAK_NOTE"; echo; return; fi
    local summary records paths
    summary=$(sed -n 's/^==[0-9]*== *definitely lost: //p' "$WORK/leaks.txt" 2>/dev/null | head -n 1)
    records=$(grep -c 'are definitely lost in loss record' "$WORK/leaks.txt" 2>/dev/null)
    paths=$(grep -c 'kept alive by: ' "$WORK/paths.txt" 2>/dev/null)
    awk -F'\t' -v runs="$RUNS" -v summary="${summary:-no report written}" -v records="${records:-0}" -v paths="${paths:-0}" '
    function median(arr, n,    i, j, t) {
        for (i = 2; i <= n; i++) { t = arr[i]; for (j = i - 1; j >= 1 && arr[j] > t; j--) arr[j + 1] = arr[j]; arr[j + 1] = t }
        return n % 2 ? arr[(n + 1) / 2] : (arr[n / 2] + arr[n / 2 + 1]) / 2
    }
    NR > 1 && $4 == 0 { k = ++n[$1]; t[$1, k] = $3; if (k == 1 || $3 < lo[$1]) lo[$1] = $3; if ($3 > hi[$1]) hi[$1] = $3 }
    NR > 1 && $4 != 0 { bad[$1]++ }
    END {
        for (v in n) { for (k = 1; k <= n[v]; k++) a[k] = t[v, k]; m[v] = median(a, n[v]) }
        print "| run (LD_PRELOAD=libmemshim.so) | runs | median wall (s) | range (s) |"
        print "|--------------------------------|-----:|----------------:|----------:|"
        split("untracked report untracked_r nopaths paths", vs, " ")
        desc["untracked"] = "`stacks`, MEMSHIM_TRACK=0: no tracking, no report"
        desc["report"] = "`stacks`, MEMSHIM_TRACK=1, MEMSHIM_REPORT=file"
        desc["untracked_r"] = "`reachable`, MEMSHIM_TRACK=0"
        desc["nopaths"] = "`reachable`, MEMSHIM_SHOW=all, MEMSHIM_WHY_DEPTH=0"
        desc["paths"] = "`reachable`, MEMSHIM_SHOW=all, retention paths (depth 8)"
        for (i = 1; i <= 5; i++) {
            v = vs[i]
            if (!n[v]) { printf "| %s | 0 | failed | |\n", desc[v]; continue }
            printf "| %s | %d%s | %.3f | %.3f-%.3f |\n", desc[v], n[v], bad[v] ? " (+" bad[v] " failed)" : "", m[v], lo[v], hi[v]
        }
        if (n["untracked"] && n["report"]) {
            d = m["report"] - m["untracked"]
            printf "| **the report** (difference of the medians) | | **%.3f** | |\n", d
            print ""
            printf "Target: under 1 s for the report, symbolization included: %s.  ", d < 1 ? "met" : "**not met**"
        } else print ""
        printf "The difference also holds the tracking of the 100,000 allocations.  Last report: %s loss records, definitely lost: %s.\n\n", records, summary
        if (n["untracked_r"] && n["paths"] && n["nopaths"]) {
            dp = m["paths"] - m["untracked_r"]; dn = m["nopaths"] - m["untracked_r"]
            printf "`leak_modes reachable` (the same 100,000 blocks and 1,000 stacks, kept reachable through one list): the report of its 1,000 records takes **%.3f s** with retention paths, %.3f s without (paths: %+.3f s; %s records with a path in the last report).  Target: under 0.5 s with paths: %s.\n\n", dp, dn, dp - dn, paths, dp < 0.5 ? "met" : "**not met**"
        }
    }' "$LEAK_RAW"
}

# -----------------------------------------------------------------------------
# After a spike: build/bench/spike allocates 100 MiB in blocks of one size,
# frees them in random order and runs on a ring of small blocks for 2 s.
# Its resident set then, under each configuration that preloads without a
# wrapper (one run each: no timing is taken), is what a server keeps of a
# past peak while it goes on with its steady load.
SPIKE_RAW=$BIN/spike.tsv
SPIKE_NOTE=""
spike_part() {
    if [ ! -x "$BIN/spike" ]; then SPIKE_NOTE="$BIN/spike not built (make bench builds it)"; return; fi
    printf 'size\tconfig\tpeak_kib\tafter_kib\n' > "$SPIKE_RAW"
    printf 'bench: %-8s ' spike >&2
    local sz c res
    for sz in 48 4000 100000; do
        for c in "${ACTIVE[@]}"; do
            [ -z "${CFG_WRAP[$c]}" ] || continue
            RUN_TAG="spike.$sz.$c"
            res=$(run_in "$c" "$BIN/spike" "$sz")
            # shellcheck disable=SC2086
            set -- $res
            if [ "$3" = 0 ]; then
                printf '%s\t%s\t%s\n' "$sz" "$c" \
                    "$(awk '/^peak_kib/ { p = $2 } /^after_kib/ { a = $2 } END { print p "\t" a }' "$WORK/$RUN_TAG.out")" >> "$SPIKE_RAW"
                printf . >&2
            else
                printf '!' >&2
            fi
        done
    done
    printf ' %ds\n' $(( $(date +%s) - START )) >&2
}

spike_report() {
    echo "### After a spike: resident MiB 2 s after 100 MiB of blocks were freed in random order (at the peak)"
    echo
    if [ -n "$SPIKE_NOTE" ]; then echo "Not run: $SPIKE_NOTE"; echo; return; fi
    awk -F'\t' '
    NR > 1 { if (!($2 in seen)) { seen[$2] = 1; cols[++nc] = $2 }
             if (!($1 in sseen)) { sseen[$1] = 1; sizes[++ns] = $1 }
             peak[$1, $2] = $3; after[$1, $2] = $4 }
    END {
        if (!nc) { print "No run finished."; print ""; exit }
        h = "| block size |"; d = "|-----------:|"
        for (i = 1; i <= nc; i++) { h = h " " cols[i] " |"; d = d "------:|" }
        print h; print d
        for (j = 1; j <= ns; j++) {
            line = "| " sizes[j] " B |"
            for (i = 1; i <= nc; i++) {
                k = sizes[j] SUBSEP cols[i]
                line = line ((k in after) ? sprintf(" %.1f (%.0f) |", after[k] / 1024, peak[k] / 1024) : " - |")
            }
            print line
        }
        print ""
    }' "$SPIKE_RAW"
}

in_list gc "$PARTS" && gc_part
in_list leak "$PARTS" && leak_part
in_list spike "$PARTS" && spike_part

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
    if in_list alloc "$PARTS"; then alloc_report; fi
    if in_list gc "$PARTS"; then gc_report; fi
    if in_list leak "$PARTS"; then leak_report; fi
    if in_list spike "$PARTS"; then spike_report; fi
    if [ ${#NOTES[@]} -gt 0 ]; then
        echo "Notes:"
        for note in "${NOTES[@]}"; do echo "- $note"; done
        echo
    fi
    local raws=${RAW#"$PWD"/}
    in_list gc "$PARTS" && [ -z "$GC_NOTE" ] && raws+=", ${GC_RAW#"$PWD"/}"
    in_list leak "$PARTS" && [ -z "$LEAK_NOTE" ] && raws+=", ${LEAK_RAW#"$PWD"/}"
    in_list spike "$PARTS" && [ -z "$SPIKE_NOTE" ] && raws+=", ${SPIKE_RAW#"$PWD"/}"
    echo "Raw runs: $raws. Each run's output: ${WORK#"$PWD"/}/WORKLOAD.CONFIG.RUN.{out,err} (gc.VARIANT.RUN, leak.VARIANT.RUN)."
}

alloc_report() {
    awk -F'\t' -v base="$BASE" -v cols="${ACTIVE[*]}" -v rows="${ROWS[*]}" \
        -v cmp_a="${COMPARE[0]}" -v cmp_b="${COMPARE[1]}" -v partial="$PARTIAL" '
    function median(arr, n,    i, j, t) {
        for (i = 2; i <= n; i++) { t = arr[i]; for (j = i - 1; j >= 1 && arr[j] > t; j--) arr[j + 1] = arr[j]; arr[j + 1] = t }
        return n % 2 ? arr[(n + 1) / 2] : (arr[n / 2] + arr[n / 2 + 1]) / 2
    }
    function table(title, metric, unit,    i, j, w, c, v, cell, width, line, sep, sum, cnt, ratio, last) {
        print "### " title
        print ""
        # cells[i, j]: row i (0 = header, nr + 1 = geomean), column j (0 = workload)
        cell[0, 0] = "workload"
        for (j = 1; j <= nc; j++) cell[0, j] = col[j] (col[j] == base && unit != "" ? " (" unit ")" : "")
        for (j = 1; j <= nc; j++) { sum[j] = 0; cnt[j] = 0 }
        for (i = 1; i <= nr; i++) {
            w = row[i]
            cell[i, 0] = w
            for (j = 1; j <= nc; j++) {
                c = col[j]
                if (!((w, c) in ok)) { cell[i, j] = "-"; continue }
                if (ok[w, c] != "") { cell[i, j] = ok[w, c]; continue }
                v = med[metric, w, c]
                if (c == base && metric != "s") { cell[i, j] = sprintf(metric == "m" ? "%.1f" : "%.3f", v); continue }
                if (c == base) { cell[i, j] = "-"; continue }
                if ((ratio = r(metric == "s" ? "t" : metric, w, c, base)) < 0) { cell[i, j] = "n/a"; continue }
                if (metric == "s") {                    # the spread of the paired ratios
                    cell[i, j] = sprintf("%.2f-%.2f", lo, hi)
                    continue
                }
                cell[i, j] = sprintf("%.2f", ratio) (((w, c) in diff) ? " *" : "")
                sum[j] += log(ratio); cnt[j]++
            }
        }
        cell[nr + 1, 0] = "geomean"
        for (j = 1; j <= nc && metric != "s"; j++) {
            if (col[j] == base) cell[nr + 1, j] = "1.00"
            else if (index(" " partial " ", " " col[j] " ")) cell[nr + 1, j] = "-"   # some rows only
            else cell[nr + 1, j] = cnt[j] ? sprintf("%.2f", exp(sum[j] / cnt[j])) : "-"
            if (metric == "t" && cnt[j]) geo[col[j]] = exp(sum[j] / cnt[j])
        }
        geo[base] = 1
        last = metric == "s" ? nr : nr + 1               # the noise table has no geomean
        for (j = 0; j <= nc; j++) {
            width[j] = 3
            for (i = 0; i <= last; i++) if (length(cell[i, j]) > width[j]) width[j] = length(cell[i, j])
        }
        for (i = 0; i <= last; i++) {
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
        x["t", k, $3] = $4; x["m", k, $3] = $5 / 1024; x["u", k, $3] = $8   # by round, for the pairs
        if ($3 + 0 > rounds) rounds = $3 + 0
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
        table("Noise: the lowest and highest of the per-round wall-time ratios above", "s", "")
        if ((cmp_a in geo) && (cmp_b in geo))
            printf "%s / %s, geomean of time ratios: %.2f\n\n", cmp_a, cmp_b, geo[cmp_a] / geo[cmp_b]
        for (k in diff) { split(k, p, SUBSEP); flagged = flagged sprintf("%s/%s ", p[1], p[2]) }
        if (flagged != "") printf "`*`: standard output differed from %s (%s)\n\n", base, flagged
        targets()
    }
    # Configuration a over b on workload w for metric: the median of the
    # ratios of the runs made in one round (interleaved, so minutes apart at
    # most), which a machine whose load drifts over the whole run moves less
    # than the ratio of the two medians; -1 if not measured.  Sets lo and hi
    # to the lowest and highest of those ratios.
    function r(metric, w, a, b,    q, i, k, nq) {
        if (!((w, a) in ok) || !((w, b) in ok) || ok[w, a] != "" || ok[w, b] != "") return -1
        nq = 0
        for (i = 1; i <= rounds; i++)
            if (((metric, w, a, i) in x) && ((metric, w, b, i) in x) && x[metric, w, b, i] > 0)
                q[++nq] = x[metric, w, a, i] / x[metric, w, b, i]
        if (!nq) return -1
        k = median(q, nq)                        # sorts q
        lo = q[1]; hi = q[nq]
        return k
    }
    function verdict(ok_) { return ok_ ? "met" : "**not met**" }
    # a / b over the rows both ran, wall then CPU time: geomean, each row, and
    # the target (at most `most` times b)
    function versus(a, b, most,    ms, i, s, n, lst, w, v) {
        split("t u", ms, " ")
        for (i = 1; i <= 2; i++) {
            s = 0; n = 0; lst = ""
            for (w = 1; w <= nr; w++) {
                v = r(ms[i], row[w], a, b)
                if (v < 0) continue
                s += log(v); n++; lst = lst sprintf("%s%s %.2f", lst == "" ? "" : ", ", row[w], v)
            }
            if (!n) { if (i == 1) printf "- %s / %s: not measured\n", a, b; break }
            printf "- %s / %s, %s time: geomean %.3f over %d rows (%s) (target at most %.2fx: %s)\n",
                a, b, i == 1 ? "wall" : "CPU", exp(s / n), n, lst, most, verdict(exp(s / n) <= most)
        }
    }
    # The same for the time each adds to the baseline, (a - base) / (b - base):
    # the cost of one profiler against that of another, whatever the time of
    # the program itself.  Rows where b adds nothing are left out; an a that
    # adds nothing counts 0.01.
    function versus_added(a, b, most,    ms, i, s, n, lst, w, x, y, v) {
        split("t u", ms, " ")
        for (i = 1; i <= 2; i++) {
            s = 0; n = 0; lst = ""
            for (w = 1; w <= nr; w++) {
                x = r(ms[i], row[w], a, base); y = r(ms[i], row[w], b, base)
                if (x < 0 || y <= 1) continue
                v = (x - 1) / (y - 1); if (v < 0.01) v = 0.01
                s += log(v); n++; lst = lst sprintf("%s%s %.2f", lst == "" ? "" : ", ", row[w], v)
            }
            if (!n) { if (i == 1) printf "- %s / %s, time added: not measured\n", a, b; break }
            printf "- %s / %s, %s time added to %s: geomean %.3f over %d rows (%s) (target at most %.2fx: %s)\n",
                a, b, i == 1 ? "wall" : "CPU", base, exp(s / n), n, lst, most, verdict(exp(s / n) <= most)
        }
    }
    # the time of a below that of b, row by row, where both ran
    function below(a, b,    w, x, y, n, k, over) {
        n = 0; k = 0; over = ""
        for (w = 1; w <= nr; w++) {
            x = r("t", row[w], a, base); y = r("t", row[w], b, base)
            if (x < 0 || y < 0) continue
            n++
            if (x < y) k++
            else over = over sprintf("%s%s %.2f against %.2f", over == "" ? "" : ", ", row[w], x, y)
        }
        if (!n) { printf "- %s against %s: not measured\n", a, b; return }
        printf "- %s below %s on %d of %d rows%s (target every row: %s)\n", a, b, k, n,
            over == "" ? "" : "; not below: " over, verdict(k == n)
    }
    # peak RSS of a over that of the baseline, row by row: geomean, and the rows above `most`
    function rss_cap(a, most,    w, v, s, n, over, parts) {
        s = 0; n = 0; over = ""
        for (w = 1; w <= nr; w++) {
            v = r("m", row[w], a, base)
            if (v < 0) continue
            s += log(v); n++
            if (v > most) over = over sprintf("%s%s %.2f", over == "" ? "" : ", ", row[w], v)
        }
        if (n) printf "- %s peak RSS / %s: geomean %.2f; at most %.2fx on %d of %d rows%s (target at most %.2fx: %s)\n",
            a, base, exp(s / n), most, n - split(over, parts, ","), n, over == "" ? "" : "; above: " over, most,
            verdict(over == "")
        else printf "- %s peak RSS / %s: not measured\n", a, base
    }
    # The targets of the issues, from the paired ratios above.
    function targets(    x, h, l, w, v, s, over, n, parts, c, others, i, xl, xh) {
        print "Targets (from the ratios above, medians of per-round ratios; the noise table gives their spread):"
        print ""
        # python3 on memshim (all its allocations) against python3 on pymalloc
        x = r("t", "python3m", "memshim", "pymalloc"); xl = lo; xh = hi
        if (x >= 0) {
            others = ""
            split("mimalloc jemalloc tcmalloc " base, c, " ")
            for (i = 1; i <= 4; i++) {
                v = r("t", "python3m", c[i], "pymalloc")
                if (v >= 0) others = others sprintf("%s%s %.2f", others == "" ? "" : ", ", c[i], v)
            }
            printf "- python3m: memshim / pymalloc (the allocator of CPython itself), wall time: %.2f (%.2f-%.2f)%s (target at most 0.85x: %s)\n",
                x, xl, xh, others == "" ? "" : "; the others the same way: " others, verdict(x <= 0.85)
        } else print "- python3m: memshim / pymalloc: not measured"
        x = r("t", "churn", "memshim+track", base)
        if (x >= 0) {
            h = r("t", "churn", "heaptrack", base); l = r("t", "churn", "lsan", base)
            printf "- memshim+track on churn: %.2fx %s time (target at most 2x: %s)", x, base, verdict(x <= 2)
            if (h >= 0 || l >= 0) {
                printf "; heaptrack %s, lsan %s (target below both: %s)", (h >= 0 ? sprintf("%.2fx", h) : "not run"),
                    (l >= 0 ? sprintf("%.2fx", l) : "not run"), verdict((h < 0 || x < h) && (l < 0 || x < l))
            }
            print ""
        } else print "- memshim+track on churn: not measured"
        # the pools against the baseline, every row (issue 12)
        below("memshim", base)
        # tracking against LeakSanitizer, which keeps no free stacks (memshim+leaks: neither)
        below("memshim+track", "lsan")
        below("memshim+leaks", "lsan")
        below("memshim+track", "lsan+exact")      # both with 16 exact frames an allocation
        # the cheaper modes against what they add to, wall and CPU time
        versus("memshim+sample", "memshim", 1.05)
        versus("memshim+psample", "memshim", 1.05)       # the sampled profiler alone
        versus("memshim+prof", "memshim+track", 1.05)    # the full heap profile on top of tracking
        versus("memshim+prof", "heaptrack", 0.2)
        versus_added("memshim+prof", "heaptrack", 0.2)
        versus("memshim+prof", "massif", 0.2)
        # peak RSS against the baseline, every row: the pools, and tracking
        rss_cap("memshim", 1.05)
        rss_cap("memshim+track", 1.5)
        print ""
    }' "$RAW"
}

# Failed runs: show what they said.
awk -F'\t' 'NR > 1 && $6 != 0 { print $1 "." $2 "." $3 }' "$RAW" | head -n 5 | while read -r tag; do
    echo "bench: $tag failed; its stderr ends with:" >&2
    tail -n 3 "$WORK/$tag.err" 2>/dev/null | sed 's/^/    /' >&2
done

echo >&2
report | tee "$RESULTS"
