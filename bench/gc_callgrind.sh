#!/usr/bin/env bash
# bench/gc_callgrind.sh - instructions per object of the collector's two
# collections (gc_bench.c: garbage in rings of 10, then a list that is all
# alive), counted by valgrind's callgrind inside memshim_gc_collect only.
#
#   bench/gc_callgrind.sh [BUILD_DIR] [OBJECTS]     defaults: build 100000
#
# For each way run.sh runs gc_bench (preloaded with tracking, preloaded
# without, dlopen'd only) prints instructions per object of each collection.
# Profiles: BUILD_DIR/bench/gc_callgrind/VARIANT.out.1 (garbage) and .2
# (alive), for callgrind_annotate.
set -u
unset LD_PRELOAD
BENCH_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$BENCH_DIR/.." && pwd)
BUILD_ARG=${1:-build}
N=${2:-100000}
command -v valgrind >/dev/null || { echo "gc_callgrind.sh: valgrind not installed" >&2; exit 1; }
case $BUILD_ARG in /*) ;; *) BUILD_ARG=$PWD/$BUILD_ARG ;; esac
make -C "$ROOT" --no-print-directory B="$BUILD_ARG" lib "$BUILD_ARG/bench/gc_bench" >&2 || exit 1
BUILD=$(cd "$BUILD_ARG" && pwd)
OUT=$BUILD/bench/gc_callgrind
mkdir -p "$OUT"
LIB=$BUILD/libmemshim.so

printf '%s objects; instructions per object in memshim_gc_collect, counted by callgrind\n\n' "$N"
printf '%-8s %10s %10s\n' variant garbage alive
for v in track notrack dlopen; do
    case $v in
    track)   env=(LD_PRELOAD="$LIB" MEMSHIM_TRACK=1) ;;
    notrack) env=(LD_PRELOAD="$LIB" MEMSHIM_TRACK=0) ;;
    dlopen)  env=() ;;
    esac
    rm -f "$OUT/$v.out"*
    # One dump after each collection: .1 the garbage one, .2 the alive one.
    env "${env[@]}" MEMSHIM_LIBRARY="$LIB" valgrind --tool=callgrind \
        --toggle-collect=memshim_gc_collect --dump-after=memshim_gc_collect \
        --callgrind-out-file="$OUT/$v.out" "$BUILD/bench/gc_bench" "$N" 1 \
        > "$OUT/$v.stdout" 2> "$OUT/$v.log" || { printf '%-8s failed: see %s\n' "$v" "$OUT/$v.log"; continue; }
    per() { awk -v n="$N" '/^summary:/ { printf "%.1f", $2 / n; exit }' "$1" 2>/dev/null || echo '?'; }
    printf '%-8s %10s %10s\n' "$v" "$(per "$OUT/$v.out.1")" "$(per "$OUT/$v.out.2")"
done
