#!/bin/bash
# export.sh - tests of fleet export (issue 15): `memshim exporter` (its
# figures, exact, in the Prometheus text format checked by promtool and in
# OpenMetrics; exited, stale and malformed regions; other users' processes;
# fuzzed hostile regions), MEMSHIM_METRICS (the node_exporter textfile),
# and a real Prometheus server scraping the exporter.
#
#   MS_TEST_BUILD=build tests/tools/export.sh      (part of make tools-test)
#
# Every process is started by this script and stopped by its pid.  Each
# check prints "ok - NAME" or "FAIL - NAME" with the evidence; the last
# line is "N passed, N failed".
set -u
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
B=$(cd "${MS_TEST_BUILD:-$ROOT/build}" && pwd)
MS=$B/memshim
LIB=$B/libmemshim.so
T=$(mktemp -d /tmp/memshim-export.XXXXXX)
chmod 755 "$T"
stop_all() { local p; for p in $(cat "$T/pids" 2>/dev/null); do kill "$p" 2>/dev/null; kill -CONT "$p" 2>/dev/null; done; wait 2>/dev/null; }
trap 'stop_all; rm -rf "$T"' EXIT
unset LD_PRELOAD MEMSHIM_STATS MEMSHIM_RSS_LOG MEMSHIM_LIVE MEMSHIM_REPORT MEMSHIM_STATS_SIGNAL MEMSHIM_METRICS \
      MEMSHIM_METRICS_INTERVAL MEMSHIM_LIVE_INTERVAL
PY=/usr/bin/python3

. "$ROOT/tests/tools/harness.sh"
# bg CMD...: start CMD in the background, its pid in $pid and in $T/pids
bg() { "$@" >>"$T/bg.log" 2>&1 & pid=$!; echo $pid >>"$T/pids"; }
# stop PID: SIGTERM, then SIGKILL if it has not ended within 10 s (a test
# must fail, not hang, on a program that does not end)
stop() {
    kill "$1" 2>/dev/null; kill -CONT "$1" 2>/dev/null
    (sleep 10; kill -9 "$1" 2>/dev/null) & local killer=$!
    wait "$1" 2>/dev/null
    kill "$killer" 2>/dev/null; wait "$killer" 2>/dev/null
}
promcheck() {   # promcheck FILE: promtool accepts it, lint included
    local o; o=$(promtool check metrics <"$1" 2>&1) || { echo "promtool check metrics: $o"; head -c 2000 "$1"; return 1; }
}
# value TEXT SERIES: the value of the sample whose name and labels are SERIES
value() { awk -v s="$2" 'index($0, s " ") == 1 { print $NF }' <<<"$1"; }

for p in known fleet forkkill; do
    src=$ROOT/tests/tools/progs/$p.c
    cc -O0 -g -I"$ROOT/include" -o "$T/$p" "$src" -lpthread -ldl || fail "build helper $p"
done
cc -O0 -g -I"$ROOT/shim" -o "$T/fakelive" "$ROOT/tests/tools/progs/fakelive.c" || fail "build helper fakelive"
HAVE_PROMTOOL=1; command -v promtool >/dev/null || HAVE_PROMTOOL=0
[ $HAVE_PROMTOOL = 1 ] || skip "promtool checks" "promtool (Debian package prometheus) cannot be installed here"
pc() { [ $HAVE_PROMTOOL = 0 ] || promcheck "$@"; }

start_known() {   # a preloaded program with known figures, publishing every 50 ms
    rm -f "$T/ready"
    bg env LD_PRELOAD="$LIB" MEMSHIM_TRACK=0 MEMSHIM_LIVE=1 MEMSHIM_LIVE_INTERVAL=50 "$@" "$T/known" hold "$T/ready"
    wait_file "$T/ready" && sleep 0.1
}

# ==== wrong uses ========================================================================
t_wrong_uses() {
    local a
    for a in "--bogus" "extra" "--listen" "--listen nonsense" "--listen 127.0.0.1:99999" "--listen 127.0.0.1:" \
             "--listen 127.0.0.1:x" "--openmetrics"; do
        # shellcheck disable=SC2086
        run "$MS" exporter $a; expect_rc 2 && one_line_err && [ -z "$out" ] || { echo "for: exporter $a"; return 1; }
    done
    run "$MS" help; has "$out" "exporter [--listen ADDR:PORT]" || return 1
    run "$MS" help exporter; expect_rc 0
}
check "exporter: wrong uses exit 2 with a one-line error; help lists it" t_wrong_uses

t_busy_port() {
    "$PY" -c 'import socket,sys,time
s=socket.socket(); s.bind(("127.0.0.1",0)); s.listen(1); print(s.getsockname()[1], flush=True); time.sleep(30)' >"$T/busy" &
    local holder=$!; echo $holder >>"$T/pids"
    wait_file "$T/busy" && for _ in $(seq 100); do [ -s "$T/busy" ] && break; sleep 0.02; done
    run "$MS" exporter --listen "127.0.0.1:$(cat "$T/busy")"; stop $holder
    expect_rc 1 && one_line_err && has "$err" "cannot listen on 127.0.0.1:"
}
check "exporter on a port in use: exit 1, one line" t_busy_port

# ==== the figures, exact ===================================================================
t_once() {
    start_known || return 1
    local k=$pid
    run "$MS" exporter --once; expect_rc 0 || return 1
    [ -z "$err" ] || { echo "stderr: $err"; return 1; }
    local l="pid=\"$k\",program=\"known\""
    [ "$(value "$out" "memshim_class_blocks_in_use{$l,class=\"20480\"}")" = 77 ] &&
    [ "$(value "$out" "memshim_huge_blocks{$l}")" = 3 ] &&
    [ "$(value "$out" "memshim_huge_bytes{$l}")" = $((3 * 1003520)) ] &&
    [ "$(value "$out" "memshim_heap_in_use_bytes{$l}")" -ge $((77 * 20000 + 3 * 1000000)) ] &&
    [ "$(value "$out" "memshim_rss_bytes{$l}")" -gt 0 ] && [ "$(value "$out" "memshim_uss_bytes{$l}")" -gt 0 ] &&
    [ "$(value "$out" "memshim_os_mapped_bytes_total{$l}")" -gt 0 ] || { echo "figures of known:"; grep -F "$l" <<<"$out" | head -30; return 1; }
    has "$out" "# TYPE memshim_heap_in_use_bytes gauge" && has "$out" "# HELP memshim_heap_in_use_bytes " &&
        has "$out" "# TYPE memshim_class_allocations_total counter" || return 1
    has_not "$out" "memshim_gc_tracked_objects{$l" && has_not "$out" "memshim_leak_checks_total{$l" || return 1   # neither ran
    printf '%s\n' "$out" >"$T/once.prom"; pc "$T/once.prom" || return 1
    # OpenMetrics: counters' families without _total, samples with it, # EOF last
    run "$MS" exporter --once --openmetrics; expect_rc 0 || return 1
    has "$out" "# TYPE memshim_class_allocations counter" && has "$out" "memshim_class_allocations_total{$l,class=\"20480\"}" &&
        [ "$(tail -1 <<<"$out")" = "# EOF" ] || return 1
    # gone: the next scrape has no series of it
    stop $k
    run "$MS" exporter --once; expect_rc 0 && has_not "$out" "pid=\"$k\""
}
check "exporter --once: a known program's exact figures, promtool-clean; OpenMetrics; gone after exit" t_once

t_leaks_gc() {
    rm -f "$T/lr" "$T/lq"
    bg env LD_PRELOAD="$LIB" MEMSHIM_LIVE=1 MEMSHIM_LIVE_INTERVAL=50 MEMSHIM_REPORT="$T/leaky.txt" "$T/fleet" leaky "$T/lr" "$T/lq"
    local f=$pid
    wait_file "$T/lr" && sleep 0.15 || return 1
    run "$MS" exporter --once; touch "$T/lq"; wait $f
    expect_rc 0 || return 1
    local l="pid=\"$f\",program=\"fleet\"" g
    [ "$(value "$out" "memshim_leak_checks_total{$l}")" = 1 ] || { grep -F "$l" <<<"$out" | grep leak; return 1; }
    [ "$(value "$out" "memshim_leak_blocks{$l,kind=\"definite\"}")" -ge 3 ] &&
    [ "$(value "$out" "memshim_leak_bytes{$l,kind=\"definite\"}")" -ge 3000 ] &&
    [ -n "$(value "$out" "memshim_leak_bytes{$l,kind=\"reachable\"}")" ] &&
    [ -n "$(value "$out" "memshim_leak_bytes{$l,kind=\"indirect\"}")" ] &&
    [ -n "$(value "$out" "memshim_leak_bytes{$l,kind=\"possible\"}")" ] || { grep -F "$l" <<<"$out" | grep leak_; return 1; }
    for g in "0 2" "1 1" "2 1"; do
        set -- $g
        [ "$(value "$out" "memshim_gc_collections_total{$l,generation=\"$1\"}")" = "$2" ] ||
            { echo "generation $1: expected $2 collections"; grep -F "$l" <<<"$out" | grep gc_; return 1; }
    done
    printf '%s\n' "$out" >"$T/leaks.prom"; pc "$T/leaks.prom"
}
check "exporter: collections per generation and the last leak report's totals per kind" t_leaks_gc

t_skipped() {
    local w="$T/fr" p_name p_title p_stale p_classes
    bg "$T/fakelive" name "$w.n"; p_name=$pid
    bg "$T/fakelive" title "$w.t"; p_title=$pid
    bg "$T/fakelive" stale "$w.s"; p_stale=$pid
    bg "$T/fakelive" classes "$w.c"; p_classes=$pid
    wait_file "$w.n" && wait_file "$w.t" && wait_file "$w.s" && wait_file "$w.c" || return 1
    start_known || return 1
    local k=$pid
    kill -STOP $k                       # stopped: its figures age until they are stale
    sleep 2.4
    run "$MS" exporter --once; expect_rc 0 || return 1
    kill -CONT $k
    has "$out" "memshim_rss_bytes{pid=\"$p_name\",program=\"a\\\"b\\\\c?d?e\"} 12345" &&
        has "$out" "memshim_rss_bytes{pid=\"$p_title\",program=\"nginx\"} 12345" &&
        has_not "$out" "pid=\"$p_stale\"" && has_not "$out" "pid=\"$p_classes\"" && has_not "$out" "pid=\"$k\"" &&
        [ "$(value "$out" 'memshim_exporter_skipped_regions{reason="stale"}')" -ge 2 ] &&
        [ "$(value "$out" 'memshim_exporter_skipped_regions{reason="invalid"}')" -ge 1 ] || return 1
    printf '%s\n' "$out" >"$T/skipped.prom"; pc "$T/skipped.prom" || return 1
    sleep 0.3                           # running again: back
    run "$MS" exporter --once; has "$out" "memshim_rss_bytes{pid=\"$k\",program=\"known\"}" || return 1
    stop $p_name; stop $p_title; stop $p_stale; stop $p_classes; stop $k
    # memshim stats says what is wrong with a malformed region
    bg "$T/fakelive" classes "$w.c2"; p_classes=$pid
    wait_file "$w.c2" || return 1
    run "$MS" stats $p_classes; stop $p_classes
    expect_rc 1 && one_line_err && has "$err" "size classes are out of order"
}
check "exporter: stale, stopped and malformed regions left out and counted; program names escaped, a server's title its name" t_skipped

t_users() {
    [ "$(id -u)" -eq 0 ] || { echo "skip: needs root to run as another user"; return 0; }
    command -v setpriv >/dev/null || { echo "skip: no setpriv"; return 0; }
    local nobody="setpriv --reuid=65534 --regid=65534 --clear-groups"
    start_known || return 1
    local mine=$pid
    mkdir -p "$T/nobody" && chmod 777 "$T/nobody"
    bg $nobody env LD_PRELOAD="$LIB" MEMSHIM_TRACK=0 MEMSHIM_LIVE=1 MEMSHIM_LIVE_INTERVAL=50 "$T/known" hold "$T/nobody/ready"
    local theirs=$pid
    wait_file "$T/nobody/ready" && sleep 0.1 || return 1
    run $nobody "$MS" exporter --once; expect_rc 0 || return 1
    has "$out" "pid=\"$theirs\"" && has_not "$out" "pid=\"$mine\"" || return 1
    run "$MS" exporter --once; expect_rc 0 || return 1
    has "$out" "pid=\"$theirs\"" && has "$out" "pid=\"$mine\"" || return 1
    stop $mine; stop $theirs
    return 0
}
check "exporter: a user's exporter shows that user's processes only; root's shows all" t_users

# A process in a pid namespace of its own (a container) names its region,
# and fills its pid, with the number it has there (1 here); the exporter
# and memshim stats outside know it by another.
t_pid_namespace() {
    [ "$(id -u)" -eq 0 ] || { echo "skip: needs root for a pid namespace"; return 0; }
    command -v unshare >/dev/null || { echo "skip: no unshare"; return 0; }
    rm -f "$T/nsready"
    # the namespace's pid 1 ignores SIGTERM: SIGKILL, also when unshare is stopped
    bg unshare --pid --fork --kill-child env LD_PRELOAD="$LIB" MEMSHIM_TRACK=0 MEMSHIM_LIVE=1 MEMSHIM_LIVE_INTERVAL=50 \
        "$T/known" hold "$T/nsready"
    local u=$pid k=""
    wait_file "$T/nsready" && sleep 0.1 || return 1
    k=$(cat /proc/$u/task/$u/children 2>/dev/null | tr -d ' ')
    ns_end() { [ -n "$k" ] && kill -9 "$k" 2>/dev/null; stop $u; }
    [ -n "$k" ] && grep -qE '^NSpid:[[:space:]]+[0-9]+[[:space:]]+1$' /proc/$k/status ||
        { echo "known is not pid 1 of a namespace: $(grep NSpid /proc/$k/status 2>&1)"; ns_end; return 1; }
    run "$MS" exporter --once; expect_rc 0 || { ns_end; return 1; }
    local l="pid=\"$k\",program=\"known\""
    [ "$(value "$out" "memshim_class_blocks_in_use{$l,class=\"20480\"}")" = 77 ] && has_not "$out" 'pid="1"' ||
        { echo "no figures of pid $k (1 in its namespace):"; grep -E 'pid="(1|'$k')"' <<<"$out" | head -5; ns_end; return 1; }
    run "$MS" stats $k; ns_end
    expect_rc 0 && has "$out" "memshim: pid $k "
}
check "exporter and stats: a process in a pid namespace of its own (a container) shown under the pid seen here" t_pid_namespace

# Containers sharing one textfile directory: each one's process is pid 1
# there, so %p alone gave them one file, which each rewrote with its own
# figures; %h (the host name, a container's own) keeps them apart.
t_textfile_containers() {
    [ "$(id -u)" -eq 0 ] || { echo "skip: needs root for uts and pid namespaces"; return 0; }
    command -v unshare >/dev/null && command -v hostname >/dev/null || { echo "skip: no unshare or hostname"; return 0; }
    rm -rf "$T/ct" && mkdir "$T/ct" || return 1
    local c us=""
    for c in c1 c2; do
        bg unshare --uts --pid --fork --kill-child sh -c "hostname ms-$c && exec env LD_PRELOAD='$LIB' MEMSHIM_TRACK=0 \
            MEMSHIM_METRICS='$T/ct/m.%h.%p.prom' MEMSHIM_METRICS_INTERVAL=100 '$T/known' hold '$T/ct/ready.$c'"
        us="$us $pid"
    done
    ct_end() { local u k; for u in $us; do k=$(cat /proc/$u/task/$u/children 2>/dev/null); [ -n "$k" ] && kill -9 $k 2>/dev/null; stop $u; done; }
    wait_file "$T/ct/ready.c1" && wait_file "$T/ct/ready.c2" && wait_file "$T/ct/m.ms-c1.1.prom" &&
        wait_file "$T/ct/m.ms-c2.1.prom" || { ls "$T/ct"; ct_end; return 1; }
    local f
    for f in "$T/ct/m.ms-c1.1.prom" "$T/ct/m.ms-c2.1.prom"; do
        grep -q 'program="known"' "$f" || { echo "$f:"; head -5 "$f"; ct_end; return 1; }
    done
    ct_end
    return 0
}
check "MEMSHIM_METRICS with %h: containers sharing a directory, each process pid 1, keep a file each" t_textfile_containers

# The format by the Accept header's weights (RFC 9110), as Prometheus sets
# them from scrape_protocols, in their order; a 405 names the methods.
t_negotiation() {
    command -v curl >/dev/null || { echo "skip: no curl"; return 0; }
    : >"$T/bg.log"
    bg "$MS" exporter --listen 127.0.0.1:0
    local ex=$pid port="" a want got
    for _ in $(seq 200); do port=$(grep -oE 'serving http://127.0.0.1:[0-9]+' "$T/bg.log" | cut -d: -f3); [ -n "$port" ] && break; sleep 0.02; done
    [ -n "$port" ] || { echo "exporter did not start"; cat "$T/bg.log"; return 1; }
    while IFS='|' read -r want a; do
        got=$(curl -s -o /dev/null -w '%{content_type}' -H "Accept: $a" "http://127.0.0.1:$port/metrics")
        [[ $got == $want\;* ]] || { echo "Accept: $a"; echo "got $got, expected $want"; stop $ex; return 1; }
    done <<'EOF2'
application/openmetrics-text|application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1
text/plain|text/plain;version=0.0.4;q=0.6,application/openmetrics-text;version=1.0.0;q=0.5,*/*;q=0.4
text/plain|application/openmetrics-text;q=0,text/plain
application/openmetrics-text|text/plain;q=0.4, Application/OpenMetrics-Text;q=0.5
text/plain|*/*
EOF2
    # the format follows Accept: a cache in between is told so
    got=$(curl -s -o /dev/null -D - "http://127.0.0.1:$port/metrics" | tr -d '\r')
    has "$got" "Vary: Accept" || { stop $ex; return 1; }
    got=$(curl -s -o /dev/null -D - -X POST -d x "http://127.0.0.1:$port/metrics" | tr -d '\r')
    stop $ex
    has "$got" "HTTP/1.1 405" && has "$got" "Allow: GET, HEAD"
}
check "exporter: OpenMetrics or text by the Accept header's weights, Vary: Accept; 405 with Allow" t_negotiation

# Forked children publish figures of their own, refreshed: the reporter
# thread the child's fork handler starts once waited for good on the
# collector's lock, which a later fork handler made anew under it (about 1
# child in 7 with a 10 ms interval): its figures stayed as the fork left
# them, stale to the exporter.
t_fork_children_refresh() {
    rm -f "$T/fr" "$T/fq"
    bg env LD_PRELOAD="$LIB" MEMSHIM_TRACK=0 MEMSHIM_LIVE=1 MEMSHIM_LIVE_INTERVAL=10 "$T/fleet" forks 40 "$T/fr" "$T/fq"
    local f=$pid c n stuck="" s
    wait_file "$T/fr" || return 1
    for c in $(cat "$T/fr"); do
        n=0
        for _ in $(seq 500); do           # 3 refreshes of 10 ms: at once, unless stuck
            s=$("$MS" stats "$c" 2>/dev/null | sed -n 's/.*refreshed every 10 ms, \([0-9]*\) times.*/\1/p')
            n=${s:-0}; [ "$n" -ge 3 ] && break
            sleep 0.02
        done
        [ "$n" -ge 3 ] || stuck="$stuck $c($n)"
    done
    touch "$T/fq"; wait $f; local st=$?
    [ -z "$stuck" ] || { echo "children whose figures stopped (refreshes):$stuck"; return 1; }
    [ $st -eq 0 ] || { echo "fleet forks: status $st"; return 1; }
}
check "forked children's live figures keep being refreshed (no reporter thread stuck on the collector's lock)" t_fork_children_refresh

# The kernel refuses unshare(CLONE_NEWUSER), and setns into a user or
# mount namespace, to a process of more than one thread: with live figures
# or a metrics file (memshim's reporter thread), unshare --user and nsenter
# --user or --mount failed (EINVAL) where they ran without memshim.
t_user_namespace() {
    unshare --user --map-root-user true 2>/dev/null || { echo "skip: no user namespaces here"; return 0; }
    local v ns
    for v in MEMSHIM_LIVE=1 "MEMSHIM_METRICS=$T/un.%p.prom"; do
        run env LD_PRELOAD="$LIB" MEMSHIM_TRACK=0 "$v" MEMSHIM_LIVE_INTERVAL=10 unshare --user --map-root-user true
        expect_rc 0 && [ -z "$err" ] || { echo "with $v"; return 1; }
    done
    command -v nsenter >/dev/null || return 0
    rm -f "$T/usready"
    bg unshare --user --map-root-user --mount --fork --kill-child sh -c ": >'$T/usready'; exec sleep 60"
    local u=$pid k
    wait_file "$T/usready" || { stop $u; return 1; }
    k=$(cat /proc/$u/task/$u/children 2>/dev/null | tr -d ' ')
    for ns in --user --mount; do
        run env LD_PRELOAD="$LIB" MEMSHIM_TRACK=0 MEMSHIM_LIVE=1 MEMSHIM_LIVE_INTERVAL=10 nsenter $ns --target "$k" true
        expect_rc 0 && [ -z "$err" ] || { echo "nsenter $ns"; stop $u; return 1; }
    done
    stop $u
    return 0
}
check "unshare --user, nsenter --user and --mount run with live figures and a metrics file (memshim's thread out of the way)" t_user_namespace

# ==== hostile regions, fuzzed ===============================================================
t_fuzz() {
    # the exporter built with AddressSanitizer and UBSan: a bad read is a report, not luck
    local asan="$T/memshim-asan"
    asan_build || return 1
    local s fakes="" n=0 seen=0 invalid=0
    for s in 1 2 3 4 5 6; do bg "$T/fakelive" fuzz $s 2500; fakes="$fakes $pid"; done
    : >"$T/bg.log"
    # Its leak check at exit is left to the --once runs below: the serving one
    # ends on SIGTERM, and LeakSanitizer's check (threads stopped with ptrace)
    # once hung there for good.
    bg env ASAN_OPTIONS=detect_leaks=0 "$asan" exporter --listen 127.0.0.1:0
    local ex=$pid port=""
    for _ in $(seq 200); do port=$(grep -oE 'serving http://127.0.0.1:[0-9]+' "$T/bg.log" | tail -1 | cut -d: -f3); [ -n "$port" ] && break; sleep 0.02; done
    [ -n "$port" ] || { echo "exporter did not start"; cat "$T/bg.log"; return 1; }
    local end=$((SECONDS + 2))
    while [ $SECONDS -lt $end ]; do
        n=$((n + 1))
        if [ $((n % 2)) = 0 ]; then
            run "$asan" exporter --once; expect_rc 0 && [ -z "$err" ] || return 1
        else
            out=$(curl -sf "http://127.0.0.1:$port/metrics") || { echo "scrape $n over HTTP failed"; return 1; }
        fi
        printf '%s\n' "$out" >"$T/fuzz.prom"; pc "$T/fuzz.prom" || { echo "scrape $n"; return 1; }
        for s in $fakes; do grep -q "pid=\"$s\"" <<<"$out" && seen=$((seen + 1)); done
        grep -q 'reason="invalid"} [1-9]' <<<"$out" && invalid=$((invalid + 1))
    done
    kill -0 $ex || { echo "the exporter died"; cat "$T/bg.log"; return 1; }
    stop $ex; for s in $fakes; do stop $s; done
    # the fuzz reached both sides of the checks
    [ $seen -gt 0 ] && [ $invalid -gt 0 ] || { echo "$n scrapes: fake regions shown $seen times, invalid ones in $invalid scrapes"; return 1; }
}
check "exporter (ASan/UBSan): fuzzed hostile regions never crash it; every scrape stays valid" t_fuzz

# ==== MEMSHIM_METRICS ==========================================================================
t_textfile() {
    rm -f "$T"/m.*.prom "$T/lr" "$T/lq"
    bg env LD_PRELOAD="$LIB" MEMSHIM_LIVE=1 MEMSHIM_LIVE_INTERVAL=50 MEMSHIM_REPORT="$T/leaky2.txt" MEMSHIM_METRICS="$T/m.%p.prom" \
        MEMSHIM_METRICS_INTERVAL=100 "$T/fleet" leaky "$T/lr" "$T/lq"
    local f=$pid
    wait_file "$T/lr" && sleep 0.25 || return 1
    local file="$T/m.$f.prom"
    [ -f "$file" ] || { echo "no $file"; ls "$T"; return 1; }
    [ "$(stat -c %a "$file")" = 644 ] || { echo "mode $(stat -c %a "$file")"; return 1; }
    local text; text=$(cat "$file")
    local l="pid=\"$f\",program=\"fleet\""
    [ "$(value "$text" "memshim_leak_checks_total{$l}")" = 1 ] &&
    [ "$(value "$text" "memshim_gc_collections_total{$l,generation=\"0\"}")" = 2 ] &&
    [ "$(value "$text" "memshim_pss_bytes{$l}")" -gt 0 ] && [ "$(value "$text" "memshim_rss_bytes{$l}")" -gt 0 ] ||
        { echo "$text" | head -40; return 1; }
    has_not "$text" "memshim_exporter_" && has_not "$text" "# EOF" || return 1
    pc "$file" || return 1
    # the same renderer: the exporter prints the same families (a program with all of them)
    run "$MS" exporter --once
    diff <(grep '^# TYPE' "$file") <(grep '^# TYPE' <<<"$out" | grep -v memshim_exporter_) >"$T/d" ||
        { echo "families differ:"; cat "$T/d"; return 1; }
    touch "$T/lq"; wait $f
    [ ! -e "$file" ] || { echo "$file left after a normal exit"; return 1; }
    [ -z "$(ls "$T" | grep '\.tmp\.')" ] || { echo "temporary files left:"; ls "$T"; return 1; }
}
check "MEMSHIM_METRICS: a node_exporter textfile, 0644, promtool-clean, same families, removed at exit" t_textfile

# A forked child's file comes after one interval: one killed at once leaves
# none; one that lives has its own, removed when it exits.
t_textfile_children() {
    rm -f "$T"/mk.* "$T/go" "$T/fk.out"
    env LD_PRELOAD="$LIB" MEMSHIM_TRACK=0 MEMSHIM_METRICS="$T/mk.%p.prom" MEMSHIM_METRICS_INTERVAL=1000 \
        "$T/forkkill" "$T/go" >"$T/fk.out" 2>"$T/fk.err" &
    local f=$!
    echo $f >>"$T/pids"
    wait_file "$T/fk.out" || return 1
    for _ in $(seq 1 500); do grep -q '^lives ' "$T/fk.out" && break; sleep 0.02; done
    local killed lives
    killed=$(awk '$1 == "killed" { print $2 }' "$T/fk.out"); lives=$(awk '$1 == "lives" { print $2 }' "$T/fk.out")
    [ -n "$killed" ] && [ -n "$lives" ] || { echo "forkkill: $(cat "$T/fk.out" "$T/fk.err")"; return 1; }
    wait_file "$T/mk.$lives.prom" || { ls "$T"; return 1; }
    grep -q "program=\"forkkill\"" "$T/mk.$lives.prom" || { head -5 "$T/mk.$lives.prom"; return 1; }
    touch "$T/go"; wait $f || { echo "forkkill: status $?, $(cat "$T/fk.err")"; return 1; }
    [ ! -e "$T/mk.$killed.prom" ] || { echo "the killed child left its file:"; head -3 "$T/mk.$killed.prom"; return 1; }
    [ -z "$(ls "$T" | grep '^mk\.')" ] || { echo "files left after the exits:"; ls "$T" | grep '^mk\.'; return 1; }
    [ ! -s "$T/fk.err" ] || { cat "$T/fk.err"; return 1; }
}
check "MEMSHIM_METRICS: a forked child killed at once leaves no file; one that lives has its own until it exits" t_textfile_children

# exec replaced memshim's thread wherever it was: in the middle of a
# metrics file, whose temporary stayed beside it (CI: unshare --user execs
# just after the thread started again), and the last image's file stayed,
# its figures frozen, when the program exec'd one without memshim.  200
# execs through each of the nine exec functions, at times spread over the
# writing; an exec that fails brings the file back.
t_textfile_exec() {
    cc -O1 -o "$T/execloop" "$ROOT/tests/tools/progs/execloop.c" || return 1
    rm -rf "$T/ex" && mkdir "$T/ex" || return 1
    run env EXECLOOP_ENV=kept EXECLOOP_METRICS="$T/ex/m" LD_PRELOAD="$LIB" MEMSHIM_TRACK=0 \
        MEMSHIM_METRICS="$T/ex/m.%p.prom" MEMSHIM_METRICS_INTERVAL=100 "$T/execloop" 200 600
    expect_rc 0 && [ -z "$err" ] || return 1
    [ -z "$(ls "$T/ex")" ] || { echo "files left after the last exec:"; ls "$T/ex"; return 1; }
}
check "MEMSHIM_METRICS: exec leaves no temporary file, and no file of the image it replaced" t_textfile_exec

t_textfile_options() {
    run env LD_PRELOAD="$LIB" MEMSHIM_TRACK=0 MEMSHIM_METRICS=stderr MEMSHIM_METRICS_INTERVAL=5 "$T/known"
    expect_rc 0 || return 1
    has "$err" "MEMSHIM_METRICS=stderr: expected a file name" && has "$err" "MEMSHIM_METRICS_INTERVAL=5: expected milliseconds, 100 to 3600000" &&
        [ "$(wc -l <<<"$err")" -eq 2 ] || return 1
    run env LD_PRELOAD="$LIB" MEMSHIM_TRACK=0 MEMSHIM_METRICS="$T/no/such/dir/m.prom" "$T/known"
    expect_rc 0 && one_line_err && has "$err" "MEMSHIM_METRICS: cannot open $T/no/such/dir/m.prom" &&
        has "$err" "nothing is written there"
}
check "MEMSHIM_METRICS: malformed values and an unwritable name earn one line each; the program runs" t_textfile_options

# A rewrite that fails (a full disk) ends the rewrites, with one message
# saying nothing is kept there: the file written last went on being read,
# its figures frozen, as the running process's.
t_textfile_full_disk() {
    [ "$(id -u)" -eq 0 ] || { echo "skip: needs root to mount a small tmpfs"; return 0; }
    mkdir -p "$T/small" && mount -t tmpfs -o size=64k tmpfs "$T/small" 2>/dev/null || { echo "skip: cannot mount a tmpfs"; return 0; }
    rm -f "$T/fdready"
    bg env LD_PRELOAD="$LIB" MEMSHIM_TRACK=0 MEMSHIM_METRICS="$T/small/m.prom" MEMSHIM_METRICS_INTERVAL=100 \
        "$T/known" hold "$T/fdready"
    local k=$pid
    wait_file "$T/small/m.prom" || { stop $k; umount "$T/small"; return 1; }
    dd if=/dev/zero of="$T/small/fill" bs=1k count=100 2>/dev/null
    for _ in $(seq 250); do grep -q "MEMSHIM_METRICS: writing $T/small/m.prom failed" "$T/bg.log" && break; sleep 0.02; done
    for _ in $(seq 250); do [ -e "$T/small/m.prom" ] || break; sleep 0.02; done
    local left=""; [ -e "$T/small/m.prom" ] && left=yes
    stop $k; umount "$T/small"
    grep -q "MEMSHIM_METRICS: writing $T/small/m.prom failed (no space left); nothing is kept there" "$T/bg.log" ||
        { echo "no message:"; tail -3 "$T/bg.log"; return 1; }
    [ -z "$left" ] || { echo "the last file was left in place after the failure"; return 1; }
}
check "MEMSHIM_METRICS: a rewrite that fails (full disk) removes the file written last, with one message" t_textfile_full_disk

# ==== a real Prometheus =========================================================================
free_port() { "$PY" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
query() {   # query PROMQL: Prometheus's answer (JSON)
    curl -sf --get "http://127.0.0.1:$pport/api/v1/query" --data-urlencode "query=$1"
}
t_prometheus() {
    rm -f "$T/gr"
    bg env LD_PRELOAD="$LIB" MEMSHIM_TRACK=0 MEMSHIM_LIVE=1 MEMSHIM_LIVE_INTERVAL=100 "$T/fleet" grow "$T/gr"
    local grow=$pid
    start_known || return 1
    local k=$pid
    wait_file "$T/gr" || return 1
    : >"$T/bg.log"
    bg "$MS" exporter --listen 127.0.0.1:0
    local ex=$pid eport=""
    for _ in $(seq 200); do eport=$(grep -oE 'serving http://127.0.0.1:[0-9]+' "$T/bg.log" | cut -d: -f3); [ -n "$eport" ] && break; sleep 0.02; done
    [ -n "$eport" ] || { echo "exporter did not start"; cat "$T/bg.log"; return 1; }
    mkdir -p "$T/prom"
    cat >"$T/prom/prometheus.yml" <<EOF
global:
  scrape_interval: 1s
  scrape_timeout: 900ms
scrape_configs:
  - job_name: memshim
    static_configs:
      - targets: ['127.0.0.1:$eport']
EOF
    local try prom=""
    for try in 1 2 3; do                # the free port may be taken between the probe and the bind
        pport=$(free_port)
        prometheus --config.file="$T/prom/prometheus.yml" --storage.tsdb.path="$T/prom/data" \
            --web.listen-address="127.0.0.1:$pport" --log.level=error >>"$T/prom/log" 2>&1 &
        prom=$!; echo $prom >>"$T/pids"
        for _ in $(seq 150); do
            curl -sf "http://127.0.0.1:$pport/-/ready" >/dev/null 2>&1 && break
            kill -0 $prom 2>/dev/null || break
            sleep 0.1
        done
        kill -0 $prom 2>/dev/null && break
    done
    curl -sf "http://127.0.0.1:$pport/-/ready" >/dev/null || { echo "prometheus not ready"; tail -20 "$T/prom/log"; return 1; }
    # two scrapes of the growing program's heap
    local sel="memshim_heap_in_use_bytes{job=\"memshim\",pid=\"$grow\"}" n=0
    for _ in $(seq 100); do
        n=$(query "count_over_time(${sel}[1m])" | "$PY" -c 'import json,sys; r=json.load(sys.stdin)["data"]["result"]; print(r[0]["value"][1] if r else 0)')
        [ "${n:-0}" -ge 2 ] && break
        sleep 0.2
    done
    [ "${n:-0}" -ge 2 ] || { echo "after 20 s, $n samples of $sel"; tail -20 "$T/prom/log"; return 1; }
    query "$sel" >"$T/q1.json" && query "max_over_time(${sel}[1m]) - min_over_time(${sel}[1m])" >"$T/q2.json" &&
        query "memshim_class_blocks_in_use{pid=\"$k\",class=\"20480\"}" >"$T/q3.json" || { echo "queries failed"; return 1; }
    "$PY" - "$T/q1.json" "$T/q2.json" "$T/q3.json" "$grow" <<'EOF' || return 1
import json, sys
q1, q2, q3 = (json.load(open(f)) for f in sys.argv[1:4])
pid = sys.argv[4]
r = q1["data"]["result"]
assert len(r) == 1, r
m = r[0]["metric"]
assert m["pid"] == pid and m["program"] == "fleet" and m["__name__"] == "memshim_heap_in_use_bytes", m
assert float(r[0]["value"][1]) >= 1 << 20, r
grew = float(q2["data"]["result"][0]["value"][1])
assert grew >= 1 << 20, "heap grew by %d bytes between the scrapes" % grew
r = q3["data"]["result"]
assert len(r) == 1 and r[0]["value"][1] == "77", r
EOF
    stop $prom; stop $ex; stop $grow; stop $k
    return 0
}
if command -v prometheus >/dev/null && command -v curl >/dev/null; then
    check "a real Prometheus scrapes the exporter: the growing program's heap, by pid, grew" t_prometheus
else
    skip "a real Prometheus scrapes the exporter" "prometheus (Debian package prometheus) or curl cannot be installed here"
fi

echo "$pass passed, $failed failed"
[ "$failed" -eq 0 ]
