#!/usr/bin/env bash
# bench/exporter.sh - what one scrape of `memshim exporter` costs with 100
# preloaded processes publishing live figures (part of `make bench`; alone:
# `make bench-exporter`).  Target of issue 15: under 50 ms per scrape.
#
#   bench/exporter.sh [BUILD_DIR]      EXPORTER_PROCS=100 EXPORTER_SCRAPES=20
#
# Starts EXPORTER_PROCS copies of a small program (known allocations, held
# until killed) with MEMSHIM_LIVE=1, an exporter on a free loopback port,
# then scrapes /metrics EXPORTER_SCRAPES times with curl, one after the
# other.  Prints the median and the worst of curl's total time (request to
# last byte) and of the exporter's own memshim_exporter_scrape_duration_seconds
# (reading the regions and smaps_rollup), and the size of a scrape.  Every
# process it starts is stopped by its pid.
set -u
unset LD_PRELOAD MEMSHIM_LIVE MEMSHIM_LIVE_INTERVAL MEMSHIM_METRICS
BUILD=$(cd "${1:-build}" 2>/dev/null && pwd) || { echo "exporter.sh: no build directory ${1:-build}" >&2; exit 2; }
ROOT=$(cd "$(dirname "$0")/.." && pwd)
LIB=$BUILD/libmemshim.so
MS=$BUILD/memshim
N=${EXPORTER_PROCS:-100}
S=${EXPORTER_SCRAPES:-20}
for f in "$LIB" "$MS"; do [ -e "$f" ] || { echo "exporter.sh: $f not built (make)" >&2; exit 2; }; done
command -v curl >/dev/null || { echo "exporter.sh: needs curl" >&2; exit 2; }
W=$(mktemp -d /tmp/memshim-bench-exporter.XXXXXX)
pids=()
trap 'for p in "${pids[@]}"; do kill "$p" 2>/dev/null; done; wait 2>/dev/null; rm -rf "$W"' EXIT
cc -O2 -o "$W/known" "$ROOT/tests/tools/progs/known.c" || exit 1

for i in $(seq 1 "$N"); do
    env LD_PRELOAD="$LIB" MEMSHIM_TRACK=0 MEMSHIM_LIVE=1 "$W/known" hold "$W/ready.$i" >/dev/null 2>&1 &
    pids+=($!)
done
for i in $(seq 1 "$N"); do
    for _ in $(seq 1 500); do [ -e "$W/ready.$i" ] && break; sleep 0.02; done
done
"$MS" exporter --listen 127.0.0.1:0 2>"$W/exporter.log" &
pids+=($!)
port=""
for _ in $(seq 1 200); do
    port=$(grep -oE 'serving http://127.0.0.1:[0-9]+' "$W/exporter.log" | cut -d: -f3)
    [ -n "$port" ] && break; sleep 0.02
done
[ -n "$port" ] || { echo "exporter.sh: the exporter did not start" >&2; cat "$W/exporter.log" >&2; exit 1; }
sleep 1.2                                   # every process has refreshed its figures once more

: >"$W/times"
for _ in $(seq 1 "$S"); do
    t=$(curl -s -o "$W/scrape" -w '%{time_total}' "http://127.0.0.1:$port/metrics") || exit 1
    d=$(awk '/^memshim_exporter_scrape_duration_seconds /{print $2}' "$W/scrape")
    echo "$t $d" >>"$W/times"
done
procs=$(awk '/^memshim_exporter_processes /{print $2}' "$W/scrape")
[ "$procs" -ge "$N" ] || { echo "exporter.sh: the scrape reported $procs processes, expected $N" >&2; exit 1; }
med() { sort -n | awk '{ v[NR] = $1 } END { printf "median %.1f ms, worst %.1f ms", v[int((NR + 1) / 2)] * 1000, v[NR] * 1000 }'; }
echo "memshim exporter, $procs processes, $S scrapes: $(grep -vc '^#' "$W/scrape") series, $(wc -c <"$W/scrape") bytes per scrape"
echo "  per scrape (curl, request to last byte): $(cut -d' ' -f1 "$W/times" | med) (target: under 50 ms)"
echo "  reading the regions (memshim_exporter_scrape_duration_seconds): $(cut -d' ' -f2 "$W/times" | med)"
