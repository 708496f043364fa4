#!/usr/bin/env bash
# bench/callgrind.sh - instructions per malloc+free pair on the hot path, per
# allocator, counted by valgrind's callgrind (deterministic, unlike timings).
#
#   bench/callgrind.sh [BUILD_DIR] [PAIRS] [SIZE]     defaults: build 1000000 32
#
# Runs build/bench/hotpath (PAIRS malloc+free pairs of SIZE bytes) under
# `valgrind --tool=callgrind`, once with 0 pairs and once with PAIRS, for each
# configuration of bench/run.sh that has no wrapper command (glibc without a
# preload, memshim, mimalloc, ...), and prints
#   (instructions with PAIRS - instructions with 0) / PAIRS
# which leaves out start-up and the allocator's initialisation.  The figure
# includes the benchmark loop itself (10 instructions at -O2 on x86-64) and
# the PLT jumps.
# A run that takes over CALLGRIND_TIMEOUT seconds (600) is killed and its row
# marked failed: LeakSanitizer's exit-time check, which stops threads with
# ptrace, was seen to hang under valgrind.
# Files: BUILD_DIR/bench/callgrind/callgrind.out.CONFIG (open with
# callgrind_annotate or kcachegrind to see where the instructions go).
set -u
unset LD_PRELOAD
BENCH_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$BENCH_DIR/.." && pwd)
BUILD_ARG=${1:-build}
PAIRS=${2:-1000000}
SIZE=${3:-32}

command -v valgrind >/dev/null || { echo "callgrind.sh: valgrind not installed (apt-get install valgrind)" >&2; exit 1; }
case $BUILD_ARG in /*) ;; *) BUILD_ARG=$PWD/$BUILD_ARG ;; esac
if [ ! -x "$BUILD_ARG/bench/hotpath" ] || [ ! -e "$BUILD_ARG/libmemshim.so" ]; then
    make -C "$ROOT" --no-print-directory B="$BUILD_ARG" lib "$BUILD_ARG/bench/hotpath" >&2 || exit 1
fi
BUILD=$(cd "$BUILD_ARG" && pwd)
OUT=$BUILD/bench/callgrind
mkdir -p "$OUT"

# Instructions (Ir) of one run: count NAME ENV PAIRS
count() {
    local name=$1 env=$2 n=$3 log=$OUT/log.$1.$3
    # env(1) puts the configuration in valgrind's environment; valgrind passes
    # it on to the program (LD_PRELOAD included, next to its own preloads).
    # shellcheck disable=SC2086  # VAR=VALUE words
    timeout -k 10 "${CALLGRIND_TIMEOUT:-600}" env $env valgrind --tool=callgrind --callgrind-out-file="$OUT/callgrind.out.$name.$n" \
        "$BUILD/bench/hotpath" "$n" "$SIZE" > /dev/null 2> "$log" || { echo "?"; return; }
    sed -n 's/^==[0-9]*== Collected : \([0-9]*\).*/\1/p' "$log" | tail -n 1
}

printf '%s malloc+free pairs of %s bytes; instructions counted by callgrind\n\n' "$PAIRS" "$SIZE"
rows=()
while IFS= read -r line; do
    name=${line%%$'\t'*}; rest=${line#*$'\t'}
    env=${rest%%$'\t'*}; wrap=${rest#*$'\t'}       # fields may be empty
    [ -n "$wrap" ] && continue                    # wrapped configurations cannot nest in valgrind
    base=$(count "$name" "$env" 0)
    full=$(count "$name" "$env" "$PAIRS")
    if [ -z "$base" ] || [ -z "$full" ] || [ "$base" = "?" ] || [ "$full" = "?" ]; then
        rows+=("$name|failed (see $OUT/log.$name.*)||")
        continue
    fi
    per=$(awk -v a="$full" -v b="$base" -v n="$PAIRS" 'BEGIN { printf "%.1f", (a - b) / n }')
    rows+=("$name|$per|$full|$base")
    mv "$OUT/callgrind.out.$name.$PAIRS" "$OUT/callgrind.out.$name"
    rm -f "$OUT/callgrind.out.$name.0"
done < <("$BENCH_DIR/run.sh" --list-configs "$BUILD")

{
    echo "allocator|Ir per pair|Ir total|Ir with 0 pairs"
    printf '%s\n' "${rows[@]}"
} | awk -F'|' '
    { for (j = 1; j <= NF; j++) { cell[NR, j] = $j; if (length($j) > w[j]) w[j] = length($j) } if (NF > nf) nf = NF }
    END {
        for (i = 1; i <= NR; i++) {
            line = sprintf("| %-" w[1] "s |", cell[i, 1])
            for (j = 2; j <= nf; j++) line = line sprintf(" %" w[j] "s |", cell[i, j])
            print line
            if (i == 1) {
                line = "|"; for (j = 1; j <= nf; j++) { s = sprintf("%" (w[j] + 1) "s", ""); gsub(/ /, "-", s); line = line s (j == 1 ? "-|" : ":|") }
                print line
            }
        }
    }'
echo
echo "Profiles: ${OUT#"$PWD"/}/callgrind.out.NAME (callgrind_annotate --inclusive=yes FILE)"
