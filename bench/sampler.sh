#!/usr/bin/env bash
# bench/sampler.sh - what the RSS sampler and the live figures cost a busy
# program (part of `make bench`; alone: `make bench-sampler`).
#
#   bench/sampler.sh [BUILD_DIR]
#
# Two measures:
#  1. Direct: the sampler thread's own CPU time, which it writes in the RSS
#     log's trailer (CLOCK_THREAD_CPUTIME_ID), as a share of the run's wall
#     time: exact, and unaffected by other load on the machine.
#  2. End to end: build/bench/sampler (two threads of malloc/free, both CPUs
#     busy) run SAMPLER_RUNS times (default 7) under each configuration,
#     interleaved, with the median wall and CPU times (user + system, from
#     build/bench/runner) compared to memshim alone.
#     On a shared 2-core machine this is noisy (a few %); the spread is shown.
# The target of the issue is under 1% at the default interval (100 ms).
set -u
unset LD_PRELOAD
BUILD=$(cd "${1:-build}" 2>/dev/null && pwd) || { echo "sampler.sh: no build directory ${1:-build}" >&2; exit 2; }
LIB=$BUILD/libmemshim.so
BIN=$BUILD/bench
RUNS=${SAMPLER_RUNS:-7}
ROUNDS=${SAMPLER_ROUNDS:-4000000}
WORK=$BIN/work
mkdir -p "$WORK"
for f in "$LIB" "$BIN/sampler" "$BIN/runner"; do
    [ -x "$f" ] || [ -f "$f" ] || { echo "sampler.sh: $f not built (make bench-sampler)" >&2; exit 2; }
done

configs=(alone rss100 rss10 live1000)
declare -A ENV=(
    [alone]="MEMSHIM_TRACK=0"
    [rss100]="MEMSHIM_TRACK=0 MEMSHIM_RSS_LOG=$WORK/sampler.rss100.log"
    [rss10]="MEMSHIM_TRACK=0 MEMSHIM_RSS_LOG=$WORK/sampler.rss10.log MEMSHIM_RSS_INTERVAL=10"
    [live1000]="MEMSHIM_TRACK=0 MEMSHIM_LIVE=1"
)
declare -A DESC=(
    [alone]="memshim, no reporting"
    [rss100]="RSS log every 100 ms (default)"
    [rss10]="RSS log every 10 ms"
    [live1000]="live figures every 1000 ms (default)"
)
declare -A TIMES CPUS CPU_US WALL_MS SAMPLES

echo "== sampler overhead: $BIN/sampler $ROUNDS, $RUNS runs per configuration, interleaved"
for ((r = 0; r < RUNS; r++)); do
    for ((k = 0; k < ${#configs[@]}; k++)); do
        c=${configs[(k + r) % ${#configs[@]}]}
        args=()
        for kv in ${ENV[$c]}; do args+=(-E "$kv"); done
        line=$("$BIN/runner" -E LD_PRELOAD="$LIB" "${args[@]}" -o /dev/null -- "$BIN/sampler" "$ROUNDS") || exit 1
        read -r wall _ status cpu_s _ <<<"$line"
        [ "$status" = 0 ] || { echo "sampler.sh: run failed under $c (status $status)" >&2; exit 1; }
        TIMES[$c]="${TIMES[$c]:-} $wall"
        CPUS[$c]="${CPUS[$c]:-} ${cpu_s:-0}"
        log=$WORK/sampler.$c.log
        if [ -f "$log" ]; then   # trailer: "# end samples N wall_ms W sampler_cpu_us C"
            read -r _ _ _ n _ w _ cpu < <(tail -n 1 "$log")
            SAMPLES[$c]=$(( ${SAMPLES[$c]:-0} + n ))
            WALL_MS[$c]=$(( ${WALL_MS[$c]:-0} + w ))
            CPU_US[$c]=$(( ${CPU_US[$c]:-0} + cpu ))
        fi
    done
done

median() { tr ' ' '\n' | grep . | sort -g | awk '{a[NR]=$1} END {print (NR % 2) ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2}'; }
spread() { tr ' ' '\n' | grep . | sort -g | awk 'NR==1{lo=$1} {hi=$1} END {printf "%.2f-%.2f", lo, hi}'; }
base=$(median <<<"${TIMES[alone]}")
cbase=$(median <<<"${CPUS[alone]}")
printf '\n%-38s %9s %12s %9s %10s %9s %24s\n' "configuration" "wall s" "range" "vs alone" "CPU s" "vs alone" "sampler CPU (direct)"
for c in "${configs[@]}"; do
    m=$(median <<<"${TIMES[$c]}")
    cm=$(median <<<"${CPUS[$c]}")
    direct="-"
    if [ -n "${CPU_US[$c]:-}" ] && [ "${WALL_MS[$c]:-0}" -gt 0 ]; then
        direct=$(awk -v cpu="${CPU_US[$c]}" -v wall="${WALL_MS[$c]}" -v n="${SAMPLES[$c]}" \
                 'BEGIN {printf "%.3f%% (%.0f us/sample)", cpu / 10 / wall, cpu / n}')
    fi
    printf '%-38s %9.3f %12s %+8.1f%% %10.3f %+8.1f%% %24s\n' "${DESC[$c]}" "$m" "$(spread <<<"${TIMES[$c]}")" \
        "$(awk -v a="$m" -v b="$base" 'BEGIN {print (a / b - 1) * 100}')" "$cm" \
        "$(awk -v a="$cm" -v b="$cbase" 'BEGIN {print (b > 0 ? (a / b - 1) * 100 : 0)}')" "$direct"
done
if [ -n "${CPU_US[rss100]:-}" ]; then
    share=$(awk -v cpu="${CPU_US[rss100]}" -v wall="${WALL_MS[rss100]}" 'BEGIN {printf "%.3f", cpu / 10 / wall}')
    verdict=$(awk -v s="$share" 'BEGIN {print (s < 1) ? "met" : "NOT met"}')
    echo
    echo "At the default interval the sampler thread used $share% of one CPU: target (under 1%) $verdict."
    echo "The 'vs alone' column also holds the machine's noise; the direct share is the sampler's own cost."
fi
