# profile.sh - heap profiles (issue 13), sourced by run.sh: MEMSHIM_PROFILE
# in JSON, folded and pprof (read back by `go tool pprof`), the profile
# signal while threads allocate, memshim_profile_dump, `memshim profile`
# (views and --diff) and `memshim flame` (rendered to PNG).  The figures are
# those of tests/tools/progs/profile_phases.c, exact.

cc -O0 -g -o "$T/profile_phases" "$ROOT/tests/tools/progs/profile_phases.c" -lpthread -ldl ||
    fail "build helper profile_phases"

# prof_run NAME ENV...: the fixture with a profile to $T/NAME, quiet
prof_run() {
    local name=$1; shift
    (cd "$T" && env "$@" MEMSHIM_PROFILE="$T/$name" LD_PRELOAD="$LIB" ./profile_phases) >"$T/pout" 2>"$T/perr"
    rc=$?; err=$(cat "$T/perr")
}

# site FILE FUNCTION: the site whose innermost frame is FUNCTION, as
# "allocations allocated_bytes temporary temporary_bytes live_blocks live_bytes peak_blocks peak_bytes"
site() {
    "$PY" - "$1" "$2" <<'EOF'
import json, sys
d = json.load(open(sys.argv[1]))
keys = ["allocations", "allocated_bytes", "temporary", "temporary_bytes",
        "live_blocks", "live_bytes", "peak_blocks", "peak_bytes"]
found = [s for s in d["sites"] if s["stack"] and s["stack"][0].get("function") == sys.argv[2]]
print(" ".join(str(sum(s[k] for s in found)) for k in keys) if found else "none")
EOF
}
expect_site() {   # expect_site FILE FUNCTION FIGURES
    local got; got=$(site "$1" "$2")
    [ "$got" = "$3" ] || { echo "$2: got '$got', expected '$3'"; return 1; }
}

t_profile_json() {
    prof_run prof.%p.json; expect_rc 0 || return 1
    [ -z "$err" ] || { echo "stderr not quiet: $err"; return 1; }
    local f; f=$(ls "$T"/prof.*.json 2>/dev/null | head -1)
    [ -n "$f" ] || { echo "no profile written"; return 1; }
    mv "$f" "$T/exit.json"; f=$T/exit.json
    "$PY" - "$f" <<'EOF' || return 1
import json, sys
d = json.load(open(sys.argv[1]))
assert d["format"] == "memshim-profile" and d["version"] == 1, d["format"]
assert d["when"] == "at exit", d["when"]
assert d["peak_tolerance"] == {"percent": 1, "bytes": 65536}, d["peak_tolerance"]
t = d["totals"]
assert t["peak_bytes"] == 14000000 and t["peak_blocks"] == 50, t
for k in ("allocations", "allocated_bytes", "live_blocks", "live_bytes", "temporary", "temporary_bytes"):
    assert t[k] == sum(s[k] for s in d["sites"]), k
h = {(b["min"], b["max"]): b["count"] for b in d["histogram"]}
assert h[(64, 127)] == 1000, h
assert h[(65536, 131071)] == 40 and h[(524288, 1048575)] == 10, h
assert h[(32, 63)] == 1200 and h[(512, 1023)] == 5, h
EOF
    # allocations bytes temporary bytes live-blocks live-bytes peak-blocks peak-bytes
    expect_site "$f" peak_small  "40 4000000 0 0 0 0 40 4000000" &&
    expect_site "$f" peak_huge   "10 10000000 1 1000000 0 0 10 10000000" &&
    expect_site "$f" churn       "1000 64000 1000 64000 0 0 0 0" &&
    expect_site "$f" pair_first  "100 3200 0 0 0 0 0 0" &&
    expect_site "$f" pair_second "100 3200 100 3200 0 0 0 0" &&
    expect_site "$f" thread_work "1000 48000 0 0 0 0 0 0" &&
    expect_site "$f" keep_some   "5 5000 0 0 5 5000 0 0"
}
check "MEMSHIM_PROFILE=*.json: exact figures per site (peak, temporaries, threads), histogram, quiet" t_profile_json

t_profile_dump() {
    (cd "$T" && MEMSHIM_PROFILE="$T/unused2.json" LD_PRELOAD="$LIB" ./profile_phases dump "$T/mid.json") 2>"$T/perr"
    rc=$?; err=$(cat "$T/perr"); expect_rc 0 || return 1
    has "$(cat "$T/mid.json")" '"when": "memshim_profile_dump"' || return 1
    expect_site "$T/mid.json" peak_small "40 4000000 0 0 40 4000000 40 4000000" &&
    expect_site "$T/mid.json" peak_huge  "10 10000000 0 0 10 10000000 10 10000000" &&
    expect_site "$T/mid.json" churn none
}
check "memshim_profile_dump(path): the heap at the call, the peak being now" t_profile_dump

t_profile_logged_frees() {
    (cd "$T" && MEMSHIM_PROFILE="$T/logged-exit.json" LD_PRELOAD="$LIB" ./profile_phases logged "$T/logged.json") 2>"$T/perr"
    rc=$?; err=$(cat "$T/perr"); expect_rc 0 || return 1
    [ -z "$err" ] || { echo "stderr not quiet: $err"; return 1; }
    # allocations bytes temporary bytes live-blocks live-bytes peak-blocks peak-bytes
    expect_site "$T/logged.json" logged_a "100 100000 0 0 75 75000 75 75000" &&
    expect_site "$T/logged.json" logged_b "30 30000 0 0 30 30000 30 30000" || return 1
    "$PY" - "$T/logged.json" <<'EOF'
import json, sys
t = json.load(open(sys.argv[1]))["totals"]
assert (t["peak_bytes"], t["peak_blocks"]) == (105000, 105), t
EOF
}
check "memshim_profile_dump with frees still in the thread's log, one thread: the peak is the heap's, exact" t_profile_logged_frees

t_profile_thread_slots() {
    (cd "$T" && MEMSHIM_PROFILE="$T/hold-exit.json" LD_PRELOAD="$LIB" ./profile_phases hold "$T/hold.json") 2>"$T/perr"
    rc=$?; err=$(cat "$T/perr"); expect_rc 0 || return 1
    [ -z "$err" ] || { echo "stderr not quiet: $err"; return 1; }
    # allocations bytes temporary bytes live-blocks live-bytes peak-blocks peak-bytes
    expect_site "$T/hold.json" thread_hold "200 12800 0 0 120 7680 120 7680" &&
    # each thread's last block, freed with no allocation since: 2 temporaries
    expect_site "$T/hold-exit.json" thread_hold "200 12800 2 128 0 0 120 7680"
}
check "memshim_profile_dump while other threads hold figures of their own: exact" t_profile_thread_slots

t_profile_stress() {
    (cd "$T" && MEMSHIM_PROFILE="$T/stress-exit.json" LD_PRELOAD="$LIB" ./profile_phases stress "$T/stress.json") 2>"$T/perr"
    rc=$?; err=$(cat "$T/perr"); expect_rc 0 || return 1
    [ -z "$err" ] || { echo "stderr not quiet: $err"; return 1; }
    # while the threads ran: a whole profile, figures in range
    "$PY" - "$T/stress.json" <<'EOF' || return 1
import json, sys
d = json.load(open(sys.argv[1]))
w = [s for s in d["sites"] if s["stack"][0].get("function") == "stress_site"]
assert w and 0 < w[0]["allocations"] <= 80000 and w[0]["live_blocks"] <= 80000, w
EOF
    # 4 x 20,000 blocks of 16 + i % 200 bytes: 4 x 2,310,000 bytes, none a
    # temporary (each thread frees another block than the one it just made)
    local got; got=$(site "$T/stress-exit.json" stress_site)
    [ "${got% * *}" = "80000 9240000 0 0 0 0" ] || { echo "stress_site: got '$got'"; return 1; }
}
check "memshim_profile_dump without pause while 4 threads trade blocks (frees in logs, slots, other threads): whole profiles, exact at exit" t_profile_stress

t_profile_slots_taken() {
    (cd "$T" && MEMSHIM_PROFILE="$T/collide.json" LD_PRELOAD="$LIB" ./profile_phases collide) 2>"$T/perr"
    rc=$?; err=$(cat "$T/perr"); expect_rc 0 || return 1
    [ -z "$err" ] || { echo "stderr not quiet: $err"; return 1; }
    # allocations bytes temporary bytes live-blocks live-bytes (the peak: when it came)
    local got; got=$(site "$T/collide.json" memo_site)
    [ "${got% * *}" = "120 4800 60 2400 0 0" ] || { echo "memo_site: got '$got'"; return 1; }
    got=$(site "$T/collide.json" spread_site)
    [ "${got% * *}" = "7680 184320 0 0 0 0" ] || { echo "spread_site: got '$got'"; return 1; }
}
check "128 stacks, one thread and then through each of two threads' 64 slots: exact" t_profile_slots_taken

# mode_prof MODE FILE ENV...: profile_phases MODE with a profile to $T/FILE, quiet
mode_prof() {
    local mode=$1 file=$2; shift 2
    (cd "$T" && env "$@" MEMSHIM_PROFILE="$T/$file" LD_PRELOAD="$LIB" ./profile_phases "$mode") >"$T/pout" 2>"$T/perr"
    rc=$?; err=$(cat "$T/perr"); expect_rc 0 || return 1
    [ -z "$err" ] || { echo "stderr not quiet: $err"; return 1; }
}
pad_of() { head -c "$1" /dev/zero | tr '\0' x; }

t_profile_other_threads() {
    local pad
    for pad in 0 1001 4099; do
        mode_prof xpeak xpeak.json PAD="$(pad_of "$pad")" || return 1
        # allocations bytes temporary bytes live-blocks live-bytes peak-blocks peak-bytes
        expect_site "$T/xpeak.json" xpeak_site "4 16000000 0 0 0 0 4 16000000" || { echo "(pad $pad)"; return 1; }
        mode_prof stale stale.json PAD="$(pad_of "$pad")" || return 1
        expect_site "$T/stale.json" stale_q "100 6400 0 0 0 0 0 0" &&
        expect_site "$T/stale.json" stale_r "100 6400 100 6400 0 0 0 0" &&
        expect_site "$T/stale.json" stale_p "100 6400 0 0 0 0 0 0" || { echo "(pad $pad)"; return 1; }
    done
}
check "the peak a thread left, freed by another; a block at the address of the thread's last is no temporary" t_profile_other_threads

t_profile_dtor_hist() {
    mode_prof dtor dtor.json || return 1
    expect_site "$T/dtor.json" dtor_keep "12 12000 0 0 12 12000 12 12000" || return 1
    "$PY" - "$T/dtor.json" <<'EOF'
import json, sys
d = json.load(open(sys.argv[1]))
h = {(b["min"], b["max"]): b["count"] for b in d["histogram"]}
assert sum(h.values()) == d["totals"]["allocations"], (h, d["totals"])
assert h[(512, 1023)] == 12 and h[(32, 63)] == 4 and h[(128, 255)] == 4, h
EOF
}
check "allocations in thread-key destructors: in the histogram as in the sites" t_profile_dtor_hist

t_profile_handler_frees() {
    local pad got
    for pad in 0 2001; do
        mode_prof sigfree sigfree.json PAD="$(pad_of "$pad")" || return 1
        got=$(site "$T/sigfree.json" sig_site)
        set -- $got
        [ "$1" -gt 1000 ] && [ "$5 $6" = "0 0" ] || { echo "sig_site: got '$got' (pad $pad)"; return 1; }
        got=$(site "$T/sigfree.json" sig_main); set -- $got
        [ "$1 $5 $6" = "2000000 0 0" ] || { echo "sig_main: got '$got' (pad $pad)"; return 1; }
    done
}
check "a timer's handler allocating and freeing amid the program's frees: nothing counted live" t_profile_handler_frees

t_profile_signal() {
    (cd "$T" && MEMSHIM_PROFILE="$T/sig.json" MEMSHIM_PROFILE_SIGNAL=USR2 LD_PRELOAD="$LIB" \
        ./profile_phases signal "$T/sig-taken.json") 2>"$T/perr"
    rc=$?; err=$(cat "$T/perr"); expect_rc 0 || return 1
    [ -z "$err" ] || { echo "stderr not quiet: $err"; return 1; }
    "$PY" - "$T/sig-taken.json" "$T/sig.json" <<'EOF'
import json, sys
s = json.load(open(sys.argv[1]))
assert s["when"] == "signal", s["when"]
w = [x for x in s["sites"] if x["stack"][0].get("function") == "thread_work"]
assert w and w[0]["allocations"] > 0 and w[0]["live_blocks"] <= 3, w and w[0]
e = json.load(open(sys.argv[2]))
assert e["when"] == "at exit"
w2 = [x for x in e["sites"] if x["stack"][0].get("function") == "thread_work"][0]
assert w2["allocations"] >= w[0]["allocations"] and w2["live_blocks"] == 0, w2
assert w2["allocations"] - w2["temporary"] <= 3 * 2, w2   # each spinner's free follows its malloc
EOF
}
check "MEMSHIM_PROFILE_SIGNAL: a profile while three threads allocate, then the exit one" t_profile_signal

t_profile_folded() {
    prof_run prof.folded; expect_rc 0 || return 1
    local lines; lines=$(cat "$T/prof.folded")
    [ "$(wc -l <<<"$lines")" -eq 2 ] || { echo "expected 2 lines: $lines"; return 1; }
    grep -qE '(^|;)main;phase_peak;peak_huge 10000000$' <<<"$lines" &&
    grep -qE '(^|;)main;phase_peak;peak_small 4000000$' <<<"$lines" || { echo "$lines"; return 1; }
}
check "MEMSHIM_PROFILE=*.folded: the stacks live at the peak, outermost first, bytes" t_profile_folded

t_profile_pprof() {
    prof_run prof.pb.gz; expect_rc 0 || return 1
    gzip -t "$T/prof.pb.gz" || { echo "not valid gzip"; return 1; }
    local go; go=$(command -v go) || return 0
    export HOME=$T GOCACHE=$T/gocache GOTOOLCHAIN=local GOFLAGS=
    local top raw
    top=$("$go" tool pprof -symbolize=none -top -nodefraction=0 -nodecount=1000 -sample_index=alloc_objects "$T/prof.pb.gz" 2>&1) || { echo "$top"; return 1; }
    for f in "1000 .*churn" "1000 .*thread_work" "100 .*pair_first" "100 .*pair_second" "40 .*peak_small" \
             "10 .*peak_huge" "5 .*keep_some"; do
        grep -qE "^ +$f\$" <<<"$top" || { echo "no line '$f' in:"; echo "$top"; return 1; }
    done
    has "$top" "Type: alloc_objects" || return 1
    raw=$("$go" tool pprof -symbolize=none -raw "$T/prof.pb.gz" 2>&1) || { echo "$raw"; return 1; }
    has "$raw" "alloc_objects/count alloc_space/bytes inuse_objects/count inuse_space/bytes[dflt] peak_inuse_objects/count peak_inuse_space/bytes temp_objects/count temp_space/bytes" || return 1
    # each site's eight values, exact
    for v in "10   10000000          0          0         10   10000000          1    1000000" \
             "40    4000000          0          0         40    4000000          0          0" \
             "1000      64000          0          0          0          0       1000      64000" \
             "5       5000          5       5000          0          0          0          0"; do
        grep -qE "^ +$(sed 's/ \+/ +/g' <<<"$v"):" <<<"$raw" || { echo "no sample '$v' in:"; echo "$raw" | head -30; return 1; }
    done
    local line; line=$(grep -n '^NOINLINE void \*peak_huge' "$ROOT/tests/tools/progs/profile_phases.c" | cut -d: -f1)
    grep -qE "peak_huge .*profile_phases.c:$line( |$)" <<<"$raw" || { echo "no file:line $line for peak_huge"; return 1; }
    grep -qE "^1: .*/profile_phases [0-9a-f]{40} \[FN\]\[FL\]\[LN\]" <<<"$raw" || { echo "no main mapping with build id"; echo "$raw" | tail; return 1; }
}
if command -v go >/dev/null; then
    check "MEMSHIM_PROFILE=*.pb.gz: go tool pprof reads functions, lines, build ids and exact values" t_profile_pprof
else
    skip "MEMSHIM_PROFILE=*.pb.gz read back by go tool pprof" "go is not installed (Debian golang-go, tools/install-deps.sh)"
    check "MEMSHIM_PROFILE=*.pb.gz: valid gzip" t_profile_pprof
fi

# memshim profile and flame read a .pb.gz as they read a .json: the same
# program's two profiles give the same views and the same flame graph
# (but for the pid and the peak's time), and no change in --diff.
t_profile_view_pprof() {
    prof_run same.pb.gz; expect_rc 0 || return 1
    prof_run same.json; expect_rc 0 || return 1
    local a b
    run "$MS" profile "$T/same.pb.gz" --top 20 --depth 8; expect_rc 0 || return 1; a=$out
    run "$MS" profile "$T/same.json" --top 20 --depth 8; expect_rc 0 || return 1; b=$out
    has "$a" "allocation sizes (bytes requested):" && has "$a" "peak_huge (profile_phases.c:" || return 1
    [ "$(sed '1,2d' <<<"$a")" = "$(sed '1,2d' <<<"$b")" ] || { echo "views differ:"; diff <(echo "$b") <(echo "$a"); return 1; }
    [ "$(head -c 30 <<<"$a")" = "$(head -c 30 <<<"$b")" ] || { echo "headers differ: $(head -1 <<<"$a") / $(head -1 <<<"$b")"; return 1; }
    run "$MS" profile "$T/same.pb.gz" --diff "$T/same.json"; expect_rc 0 && has "$out" "peak +0 bytes, live +0 bytes" || return 1
    run "$MS" flame "$T/same.pb.gz" -o "$T/same.pb.svg" --metric peak; expect_rc 0 || return 1
    run "$MS" flame "$T/same.json" -o "$T/same.json.svg" --metric peak; expect_rc 0 || return 1
    diff <(sed 's/pid [0-9]*//g' "$T/same.pb.svg") <(sed 's/pid [0-9]*//g' "$T/same.json.svg") >/dev/null ||
        { echo "flame graphs differ"; return 1; }
    # not pprof inside gzip: one line, exit 1; another command given it: one line saying what it is
    printf 'x' | gzip >"$T/given.pb.gz"
    run "$MS" profile "$T/given.pb.gz"; expect_rc 1 && one_line_err && has "$err" "given.pb.gz: not a pprof profile" || return 1
    run "$MS" report "$T/same.pb.gz"; expect_rc 1 && one_line_err &&
        has "$err" "same.pb.gz: gzip data (a pprof heap profile?), not JSON: read it with memshim profile or go tool pprof"
}
check "memshim profile/flame FILE.pb.gz: the views of FILE.json, --diff across formats; other gzip one line" t_profile_view_pprof

# A gzip bomb: 64 MiB of zeros in some 64 KiB.  A pprof file may hold 256
# times its size uncompressed (1 MiB at least, 1 GiB at most); it was read
# whole, and a 2 MB bomb took 2 GiB and a minute.
t_profile_gzip_bomb() {
    head -c 64M /dev/zero | gzip -9 >"$T/bomb.pb.gz" || return 1
    local mib                          # the limit in MiB, as ms_human writes it
    mib=$("$PY" -c 'import os, sys
m = min(max(256 * os.path.getsize(sys.argv[1]), 1 << 20), 1 << 30) / 2**20
print(("%.2f" if m < 10 else "%.1f" if m < 100 else "%.0f") % m)' "$T/bomb.pb.gz")
    run "$MS" profile "$T/bomb.pb.gz"; expect_rc 1 && one_line_err || return 1
    has "$err" "bomb.pb.gz: more than $mib MiB uncompressed, refused" || return 1
    run "$MS" flame "$T/bomb.pb.gz" -o "$T/bomb.svg"; expect_rc 1 && one_line_err && has "$err" "refused"
}
check "memshim profile/flame of a gzip bomb: refused past 256 times the file's size, one line" t_profile_gzip_bomb

# The pprof reader, built with AddressSanitizer and UBSan (run.sh's
# asan_build), fed 300 mutations of a memshim pprof profile
# (bytes changed, inserted, cut; the result gzipped again) and 40 of its
# gzip stream (a bit flipped, cut short): status 0 or 1, one line when 1,
# never a sanitizer report.
t_profile_pprof_fuzz() {
    [ -f "$T/same.pb.gz" ] || { echo "no same.pb.gz (t_profile_view_pprof)"; return 1; }
    asan_build || return 1
    mkdir -p "$T/pfuzz"
    "$PY" - "$T/same.pb.gz" "$T/pfuzz" <<'EOF' || return 1
import gzip, os, random, sys
seed = gzip.open(sys.argv[1]).read()
rnd = random.Random(20261203)
for i in range(300):
    d = bytearray(seed)
    for _ in range(rnd.randint(1, 8)):
        op, pos = rnd.randrange(4), rnd.randrange(len(d) + 1)
        if op == 0 and d: d[min(pos, len(d) - 1)] = rnd.randrange(256)
        elif op == 1: d[pos:pos] = bytes([rnd.choice([0x08, 0x0a, 0x12, 0x22, 0x80, 0xff, 0x01, 0x7f]) for _ in range(rnd.randint(1, 11))])
        elif op == 2: del d[pos:pos + rnd.randint(1, 40)]
        else: d = d[:pos]
    with gzip.open(os.path.join(sys.argv[2], '%03d.pb.gz' % i), 'wb') as f: f.write(bytes(d))
gz = open(sys.argv[1], 'rb').read()            # and the gzip stream itself damaged or cut
for i in range(40):
    d = bytearray(gz)
    if i % 2: d = d[:rnd.randrange(10, len(d))]
    else: d[rnd.randrange(10, len(d))] ^= 1 << rnd.randrange(8)
    open(os.path.join(sys.argv[2], 'gz%02d.pb.gz' % i), 'wb').write(bytes(d))
EOF
    local bad=0 f
    for f in "$T"/pfuzz/*.pb.gz; do
        asan_survives profile "$f" || bad=1
        asan_survives flame "$f" -o "$T/pfuzz.svg" || bad=1
    done
    return $bad
}
check "memshim profile/flame survive 340 fuzzed pprof profiles (ASan/UBSan build)" t_profile_pprof_fuzz

# Another writer's pprof heap profile (Go's runtime/pprof): its sites and
# figures, totals summed; nothing claimed of what it lacks.
t_profile_go_heap() {
    local go; go=$(command -v go) || return 1
    (export HOME=$T GOCACHE=$T/gocache GOTOOLCHAIN=local GOFLAGS= && cd "$T" &&
        cp "$ROOT/tests/tools/progs/goheap.go" . && "$go" run goheap.go "$T/go.pb.gz") >"$T/gout" 2>&1 ||
        { cat "$T/gout"; return 1; }
    run "$MS" profile "$T/go.pb.gz" --top 1; expect_rc 0 || return 1
    has "$out" "a pprof profile of another writer: no peak, temporaries or sizes" || return 1
    grep -qE "^live: 104,8[0-9,]+ bytes" <<<"$out" || { echo "live total: $out"; return 1; }
    has "$out" "  #1 104,857,600 bytes (100 MiB) in 100 blocks" && has "$out" "main.grow (goheap.go:" || return 1
    has "$out" "  #1 100 allocations, 104,857,600 bytes (100 MiB)"
}
if command -v go >/dev/null; then
    check "memshim profile of Go's heap profile: sites, live and allocated figures, stacks with lines" t_profile_go_heap
else
    skip "memshim profile of Go's heap profile" "go is not installed (Debian golang-go, tools/install-deps.sh)"
fi

# Sampling: blocks far above the interval are all sampled (exact); 40 blocks
# of 100,000 bytes with N = 65536 are each sampled with p = 0.78: the
# estimate's standard deviation is 3.3 blocks, checked within 14 (4.2 sd).
expect_sampled() {   # expect_sampled FILE: the estimates of a 64 KiB interval
    "$PY" - "$1" <<'EOF'
import json, sys
d = json.load(open(sys.argv[1]))
assert d["sample_interval"] == 65536, d["sample_interval"]
by = {s["stack"][0].get("function"): s for s in d["sites"] if s["stack"]}
h = by["peak_huge"]
assert (h["allocations"], h["allocated_bytes"], h["peak_blocks"], h["peak_bytes"]) == (10, 10000000, 10, 10000000), h
s = by.get("peak_small", {"peak_blocks": 0, "peak_bytes": 0, "allocations": 0})
assert abs(s["peak_blocks"] - 40) <= 14 and abs(s["allocations"] - 40) <= 14, s
assert abs(s["peak_bytes"] - 4000000) <= 1400000, s
assert abs(d["totals"]["peak_bytes"] - 14000000) <= 1400000, d["totals"]
EOF
}
t_profile_sampled() {
    prof_run sampled.json MEMSHIM_SAMPLE=64k; expect_rc 0 || return 1
    expect_sampled "$T/sampled.json"
}
check "MEMSHIM_SAMPLE: scaled estimates, exact for blocks above the interval, within 4 sd below" t_profile_sampled

# The sampled profiler without tracking (MEMSHIM_TRACK=0 MEMSHIM_SAMPLE=N:
# sample.c).  With N = 1 byte every block is sampled with p = 1 - e^-n,
# which is 1 in double precision for every size here: its figures must be
# full tracking's, site for site, through realloc (pool and huge, moved and
# in place) and threads.  With N = 64k the estimates of t_profile_sampled.
sites_all() {   # sites_all FILE: "function figures" per site, sorted
    "$PY" - "$1" <<'EOF2'
import json, sys
d = json.load(open(sys.argv[1]))
keys = ["allocations", "allocated_bytes", "temporary", "temporary_bytes",
        "live_blocks", "live_bytes", "peak_blocks", "peak_bytes"]
rows = {}
for s in d["sites"]:
    f = s["stack"][0].get("function", "?") if s["stack"] else "-"
    if f in ("peak_small", "peak_huge", "churn", "pair_first", "pair_second", "thread_work", "keep_some", "grow",
             "refused", "refused_huge"):
        rows[f] = [a + s[k] for a, k in zip(rows.get(f, [0] * 8), keys)]
t = d["totals"]
print("peak", t["peak_bytes"], t["peak_blocks"])
for f in sorted(rows): print(f, *rows[f])
EOF2
}
t_profile_untracked() {
    (cd "$T" && MEMSHIM_PROFILE="$T/full.json" LD_PRELOAD="$LIB" ./profile_phases realloc) 2>"$T/perr"
    rc=$?; err=$(cat "$T/perr"); expect_rc 0 || return 1
    (cd "$T" && MEMSHIM_TRACK=0 MEMSHIM_SAMPLE=1 MEMSHIM_PROFILE="$T/untracked.json" LD_PRELOAD="$LIB" \
        ./profile_phases realloc) 2>"$T/perr"
    rc=$?; err=$(cat "$T/perr"); expect_rc 0 || return 1
    [ -z "$err" ] || { echo "stderr not quiet: $err"; return 1; }
    local a b; a=$(sites_all "$T/full.json"); b=$(sites_all "$T/untracked.json")
    [ "$a" = "$b" ] || { echo "full tracking:"; echo "$a"; echo "sampled, untracked:"; echo "$b"; return 1; }
    has "$b" "grow 8 8205390 8 8205390 0 0 0 0" && has "$b" "refused 1 48 0 0 1 48 0 0" && has "$b" "keep_some 5 5000 0 0 5 5000 0 0" &&
        has "$b" "refused_huge 1 1000000 0 0 1 1000000 0 0" &&
        has "$b" "peak 14000000 50" || return 1
    prof_run untracked64k.json MEMSHIM_TRACK=0 MEMSHIM_SAMPLE=64k; expect_rc 0 || return 1
    [ -z "$err" ] || { echo "stderr not quiet: $err"; return 1; }
    expect_sampled "$T/untracked64k.json"
}
check "MEMSHIM_TRACK=0 MEMSHIM_SAMPLE: the sampled profiler alone; N=1 gives full tracking's figures (realloc, huge, threads)" t_profile_untracked

# A realloc that leaves a block where it is draws no sample (sample.c): a
# sampled block keeps the weight of the chance it was drawn with.  20,000
# blocks of 1,024 bytes shrunk in place to 512: each is drawn with
# p = 1 - e^(-1024/65536) = 0.0155 (about 310 samples), so the shrink_to
# estimates, 20,000 blocks and 10,240,000 bytes live, have a relative
# standard deviation of about sqrt((1 - p) / (20,000 p)) = 5.7%; the bars
# are 4 of them.  A weight taken from the new size (p = 0.0078) would
# double them; bytes not brought to the new size would double the bytes.
site_sums() {   # site_sums FILE "FUNCTIONS" "FIELDS": "function field..." per function, summed over its sites
    "$PY" - "$@" <<'EOF2'
import json, sys
d = json.load(open(sys.argv[1]))
funcs, keys = sys.argv[2].split(), sys.argv[3].split()
rows = {}
for s in d["sites"]:
    f = s["stack"][0].get("function", "?") if s["stack"] else "-"
    if f in funcs:
        rows[f] = [a + s[k] for a, k in zip(rows.get(f, [0] * len(keys)), keys)]
for f in sorted(rows): print(f, *rows[f])
EOF2
}
shrink_sites() { site_sums "$1" "shrink_from shrink_to" "allocations allocated_bytes live_blocks live_bytes"; }
t_profile_shrink() {
    (cd "$T" && MEMSHIM_PROFILE="$T/shrink_full.json" LD_PRELOAD="$LIB" ./profile_phases shrink) 2>"$T/perr"
    rc=$?; err=$(cat "$T/perr"); expect_rc 0 || return 1
    local a; a=$(shrink_sites "$T/shrink_full.json")
    has "$a" "shrink_from 20000 20480000 0 0" && has "$a" "shrink_to 20000 10240000 20000 10240000" || return 1
    (cd "$T" && MEMSHIM_TRACK=0 MEMSHIM_SAMPLE=64k MEMSHIM_PROFILE="$T/shrink64k.json" LD_PRELOAD="$LIB" \
        ./profile_phases shrink) 2>"$T/perr"
    rc=$?; err=$(cat "$T/perr"); expect_rc 0 || return 1
    [ -z "$err" ] || { echo "stderr not quiet: $err"; return 1; }
    a=$(shrink_sites "$T/shrink64k.json")
    echo "$a" | "$PY" -c '
import sys
r = {l.split()[0]: [int(x) for x in l.split()[1:]] for l in sys.stdin}
f, t = r["shrink_from"], r["shrink_to"]
assert abs(f[0] - 20000) <= 4600 and f[2:] == [0, 0], f
assert abs(t[0] - 20000) <= 4600 and abs(t[2] - 20000) <= 4600, t
assert abs(t[3] - 10240000) <= 2350000 and abs(t[1] - 10240000) <= 2350000, t
' || { echo "$a"; return 1; }
}
check "MEMSHIM_TRACK=0 MEMSHIM_SAMPLE: a realloc in place keeps its block's weight: unbiased estimates" t_profile_shrink

# Sampling's two biases found by a helper: a block taken only where the
# countdown went below 0 (a 1-byte block right after a sample never: with
# N = 1, 615 of 1,000 counted), and temporaries judged by the thread's
# last sampled block, not its last block (every held_a block, freed after
# held_b's allocation, counted temporary).  N = 1: exact.  N = 1024: a
# 64-byte block is sampled with p = 0.061, about 1,220 of held_b's
# 20,000: the estimate's relative standard deviation is 2.8%; the bar is
# 15% (5.3 sd).  held_a: no temporaries, whatever was sampled.
tiny_sites() { site_sums "$1" "one_byte held_a held_b" "allocations temporary live_blocks live_bytes"; }
t_profile_sampled_small() {
    local mode a
    for mode in "MEMSHIM_TRACK=0" "MEMSHIM_TRACK=1"; do
        (cd "$T" && env $mode MEMSHIM_SAMPLE=1 MEMSHIM_PROFILE="$T/tiny1.json" LD_PRELOAD="$LIB" ./profile_phases tiny) 2>"$T/perr"
        rc=$?; err=$(cat "$T/perr"); expect_rc 0 || return 1
        a=$(tiny_sites "$T/tiny1.json")
        has "$a" "one_byte 1000 0 1000 1000" && has "$a" "held_a 20000 0 0 0" && has "$a" "held_b 20000 20000 0 0" ||
            { echo "($mode, N=1)"; return 1; }
        (cd "$T" && env $mode MEMSHIM_SAMPLE=1024 MEMSHIM_PROFILE="$T/tiny1k.json" LD_PRELOAD="$LIB" ./profile_phases tiny) 2>"$T/perr"
        rc=$?; err=$(cat "$T/perr"); expect_rc 0 || return 1
        a=$(tiny_sites "$T/tiny1k.json")
        echo "$a" | "$PY" -c '
import sys
r = {l.split()[0]: [int(x) for x in l.split()[1:]] for l in sys.stdin}
a, b = r["held_a"], r["held_b"]
assert abs(a[0] - 20000) <= 3000 and a[1] == 0, a
assert abs(b[0] - 20000) <= 3000 and abs(b[1] - 20000) <= 3000, b
' || { echo "($mode, N=1024) $a"; return 1; }
    done
}
check "MEMSHIM_SAMPLE: 1-byte blocks exact with N=1; temporaries are blocks freed before the thread's next allocation, sampled or not" t_profile_sampled_small

t_profile_untracked_signal() {
    (cd "$T" && MEMSHIM_TRACK=0 MEMSHIM_SAMPLE=1 MEMSHIM_PROFILE="$T/usig.json" MEMSHIM_PROFILE_SIGNAL=USR2 \
        LD_PRELOAD="$LIB" ./profile_phases signal "$T/usig-taken.json") 2>"$T/perr"
    rc=$?; err=$(cat "$T/perr"); expect_rc 0 || return 1
    [ -z "$err" ] || { echo "stderr not quiet: $err"; return 1; }
    "$PY" - "$T/usig-taken.json" "$T/usig.json" <<'EOF2'
import json, sys
s = json.load(open(sys.argv[1]))
w = [x for x in s["sites"] if x["stack"][0].get("function") == "thread_work"]
assert w and w[0]["allocations"] > 0 and w[0]["live_blocks"] <= 3, w and w[0]
e = json.load(open(sys.argv[2]))
w2 = [x for x in e["sites"] if x["stack"][0].get("function") == "thread_work"][0]
assert w2["allocations"] >= w[0]["allocations"] and w2["live_blocks"] == 0, w2
EOF2
}
check "MEMSHIM_TRACK=0 MEMSHIM_SAMPLE=1: a profile signal while three threads allocate and free sampled blocks" t_profile_untracked_signal

t_profile_view() {
    run "$MS" profile "$T/exit.json" --top 2; expect_rc 0 || return 1
    has "$out" "peak: 14,000,000 bytes (13.4 MiB) in 50 blocks" &&
    has "$out" "allocations: 2," &&
    has "$out" "  #1 10,000,000 bytes (9.54 MiB) in 10 blocks, 71.4%" &&
    has "$out" "  #2 4,000,000 bytes (3.81 MiB) in 40 blocks, 28.6%" &&
    has "$out" "  #1 5,000 bytes (4.88 KiB) in 5 blocks" &&
    has "$out" "  #1 1,000 allocations, 64,000 bytes (62.5 KiB)" &&
    has "$out" "  #1 1,000 temporary allocations of 1,000 (100.0%), 64,000 bytes" &&
    has "$out" "  #2 100 temporary allocations of 100 (100.0%), 3,200 bytes" &&
    has "$out" "       peak_huge (profile_phases.c:" &&
    has "$out" "       phase_peak (profile_phases.c:" &&
    grep -qE "^ +65,536 - 131,071 +40  #" <<<"$out" || { echo "$out"; return 1; }
    # sections in order
    [ "$(grep -c '^by ' <<<"$out")" -eq 4 ] || { echo "$out"; return 1; }
}
check "memshim profile: peak, live, allocations, temporaries with stacks, histogram" t_profile_view

t_profile_diff() {
    run "$MS" profile "$T/exit.json" --diff "$T/mid.json" --top 3; expect_rc 0 || return 1
    has "$out" "compared with $T/mid.json: peak +0 bytes, live " &&
    has "$out" "  #1 -10,000,000 bytes (-10 blocks): 10,000,000 -> 0 bytes" &&
    has "$out" "  #2 -4,000,000 bytes (-40 blocks): 4,000,000 -> 0 bytes" &&
    has "$out" "+5,000 bytes (+5 blocks): 0 -> 5,000 bytes [new]" || return 1
    run "$MS" profile "$T/exit.json" --diff "$T/exit.json"; expect_rc 0 && has "$out" "(no change)" || return 1
    # three calls on one line are one site of the diff (same frames), as
    # tracemalloc's line: 400 + 400 + 400 -> 100 + 400 + 4,000 is +3,300
    cat >"$T/oneline.c" <<'EOF'
#include <stdlib.h>
void *volatile sink;
__attribute__((noinline)) void at(int n) { sink = malloc(n); }
int main(int argc, char **argv)
{
    int a = argc > 1 ? 100 : 400, c = argc > 1 ? 4000 : 400;
    at(a); at(400); at(c);
    return 0;
}
EOF
    cc -O0 -g -o "$T/oneline" "$T/oneline.c" || return 1
    (cd "$T" && MEMSHIM_PROFILE="$T/line1.json" LD_PRELOAD="$LIB" ./oneline &&
        MEMSHIM_PROFILE="$T/line2.json" LD_PRELOAD="$LIB" ./oneline x) 2>/dev/null || return 1
    run "$MS" profile "$T/line2.json" --diff "$T/line1.json" --top 3; expect_rc 0 || return 1
    has "$out" "  #1 +3,300 bytes (+0 blocks): 1,200 -> 4,500 bytes" && has_not "$out" "  #2 "
}
check "memshim profile --diff OLD: live and peak changes by site (same frames: one site), largest first, new sites marked" t_profile_diff

t_flame() {
    run "$MS" flame "$T/exit.json" -o "$T/flame.svg"; expect_rc 0 || return 1
    xmllint --noout "$T/flame.svg" || return 1
    has "$(cat "$T/flame.svg")" "memshim heap profile: bytes in use at the peak" || return 1
    "$PY" - "$T/flame.svg" <<'EOF' || return 1
import re, sys
svg = open(sys.argv[1]).read()
w = {}
for t, width in re.findall(r'<title>([^<(]+) \(.*?</title><rect [^>]*width="([0-9.]+)"', svg):
    w.setdefault(t.strip(), float(width))
assert abs(w["all"] - 1180) < 0.01, w
assert abs(w["peak_huge"] / w["all"] - 10 / 14) < 0.001, w
assert abs(w["peak_small"] / w["all"] - 4 / 14) < 0.001, w
assert re.search(r'<text [^>]*>peak_huge</text>', svg), "peak_huge not labelled"
assert "keep_some" not in svg, "a site not live at the peak is drawn"
EOF
    rsvg-convert -o "$T/flame.png" "$T/flame.svg" || return 1
    "$PY" - "$T/flame.png" <<'EOF'
import struct, sys, zlib
data = open(sys.argv[1], "rb").read()
assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
w, h = struct.unpack(">II", data[16:24])
assert w == 1200 and 100 < h < 400, (w, h)
idat, pos = b"", 8
while pos < len(data):
    n, kind = struct.unpack(">I4s", data[pos:pos + 8])
    if kind == b"IDAT": idat += data[pos + 8:pos + 8 + n]
    pos += 12 + n
pixels = zlib.decompress(idat)
assert len(set(pixels)) > 20, "a blank picture"
EOF
    run "$MS" flame "$T/exit.json" -o "$T/alloc.svg" --metric alloc --title "all the bytes"; expect_rc 0 &&
    has "$(cat "$T/alloc.svg")" ">all the bytes</text>" && has "$(cat "$T/alloc.svg")" "<title>churn (64,000 bytes"
}
if command -v rsvg-convert >/dev/null; then
    check "memshim flame: an icicle graph, widths in bytes, labelled, titled, rendered to PNG" t_flame
else
    fail "memshim flame" "rsvg-convert is missing (Debian librsvg2-bin, tools/install-deps.sh)"
fi

# Names in UTF-8 cut in the middle of a character, for a label (53
# characters fit in a third of the width) or at frame_name's 512 bytes (the
# tooltip), made the SVG invalid: cuts fall between characters, so no
# U+FFFD either.
t_flame_utf8() {
    "$PY" - "$T/names.json" <<'EOF' || return 1
import json, sys
figs = ["allocations", "allocated_bytes", "temporary", "temporary_bytes",
        "live_blocks", "live_bytes", "peak_blocks", "peak_bytes"]
def site(frame):
    return dict(dict.fromkeys(figs, 0), peak_blocks=1, peak_bytes=100, stack=[frame])
json.dump({"format": "memshim-profile", "version": 1, "program": "t",
           "totals": dict(dict.fromkeys(figs, 0), peak_blocks=3, peak_bytes=300), "histogram": [],
           "sites": [site({"function": "\u0444" * 300}), site({"function": "xy" + "\u20ac" * 200}),
                     site({"ip": "0x1", "module": "/lib/" + "\u20ac" * 200})]},
          open(sys.argv[1], "w", encoding="utf-8"), ensure_ascii=False)
EOF
    run "$MS" flame "$T/names.json" -o "$T/names.svg"; expect_rc 0 && xmllint --noout "$T/names.svg" || return 1
    local svg ef ee
    svg=$(cat "$T/names.svg") ef=$(printf '\xd1\x84%.0s' $(seq 255)) ee=$(printf '\xe2\x82\xac%.0s' $(seq 169))
    has_not "$svg" $'\xef\xbf\xbd' && has "$svg" ">$(printf '\xd1\x84%.0s' $(seq 51))..</text>" &&
        has "$svg" "<title>$ef (100 bytes" &&
        has "$svg" "<title>xy$ee (100 bytes" && has "$svg" "<title>$ee€ (100 bytes"
}
check "memshim flame: UTF-8 names cut between characters for labels and tooltips" t_flame_utf8

t_profile_wrong() {
    local f=0
    usage_case profile || f=1
    usage_case profile "$T/exit.json" --top 0 || f=1
    usage_case profile "$T/exit.json" --bogus || f=1
    usage_case flame "$T/exit.json" || f=1
    usage_case flame "$T/exit.json" -o "$T/x.svg" --metric bogus || f=1
    usage_case run --profile= -- true || f=1
    printf '{"format": "memshim-leaks", "version": 1}' >"$T/notprof.json"
    run "$MS" profile "$T/notprof.json"; expect_rc 1 && one_line_err && has "$err" "not a memshim heap profile" || f=1
    printf '{"format": "memshim-profile", "version": 1, "totals": {}}' >"$T/badprof.json"
    run "$MS" flame "$T/badprof.json" -o "$T/x.svg"; expect_rc 1 && one_line_err && has "$err" 'totals: no "allocations"' || f=1
    return $f
}
check "profile and flame: wrong uses exit 2, malformed profiles one line and exit 1" t_profile_wrong

# Values no profile's writer gives are errors naming the field, as in leak
# reports: a negative peak time ("18446744073709551615 ms after start"), a
# negative or string line, a histogram bucket with min above max.
t_profile_odd_values() {
    local f=0 v
    for v in '-1 15 4 totals.peak_time_ms: expected a non-negative integer' \
             '3 5 4 histogram[0].max: expected at least "min" (8)' \
             '3 15 -5 sites[0].stack[0].line: expected a non-negative integer' \
             '3 15 "4" sites[0].stack[0].line: expected a non-negative integer'; do
        set -- $v
        sed "s/PEAK_MS/$1/; s/MAX/$2/; s/LINE/$3/" >"$T/odd.json" <<'EOF'
{"format": "memshim-profile", "version": 1,
 "totals": {"allocations": 1, "allocated_bytes": 8, "temporary": 0, "temporary_bytes": 0, "live_blocks": 1,
            "live_bytes": 8, "peak_blocks": 1, "peak_bytes": 8, "peak_time_ms": PEAK_MS},
 "histogram": [{"min": 8, "max": MAX, "count": 1}],
 "sites": [{"allocations": 1, "allocated_bytes": 8, "temporary": 0, "temporary_bytes": 0, "live_blocks": 1,
            "live_bytes": 8, "peak_blocks": 1, "peak_bytes": 8, "stack": [{"function": "f", "file": "a.c", "line": LINE}]}]}
EOF
        shift 3
        run "$MS" profile "$T/odd.json"; expect_rc 1 && one_line_err && has "$err" "odd.json: $*" || f=1
    done
    sed -i 's/"peak_time_ms": -1/"peak_time_ms": 3/; s/"max": 15/"max": 8/; s/"4"/4/' "$T/odd.json"
    run "$MS" profile "$T/odd.json"; expect_rc 0 && has "$out" "peak: 8 bytes (8 B) in 1 blocks, 3 ms after start" || f=1
    return $f
}
check "profile: a negative peak time or line, a string line, a bucket's min above its max: one line naming the field" t_profile_odd_values

# The histogram's bars for counts too large for 40 times them in 64 bits:
# the largest 40 marks, one of a quarter of it 10 (40 * count wrapped).
t_profile_histogram_big_counts() {
    cat >"$T/bigcounts.json" <<'EOF'
{"format": "memshim-profile", "version": 1,
 "totals": {"allocations": 1, "allocated_bytes": 8, "temporary": 0, "temporary_bytes": 0, "live_blocks": 1,
            "live_bytes": 8, "peak_blocks": 1, "peak_bytes": 8, "peak_time_ms": 3},
 "histogram": [{"min": 8, "max": 15, "count": 1152921504606846976}, {"min": 16, "max": 31, "count": 4611686018427387904}],
 "sites": []}
EOF
    run "$MS" profile "$T/bigcounts.json"; expect_rc 0 || return 1
    grep -qE '1,152,921,504,606,846,976  #{10}$' <<<"$out" && grep -qE '4,611,686,018,427,387,904  #{40}$' <<<"$out" ||
        { echo "bars: $out"; return 1; }
}
check "profile: histogram bars of counts past 2^58 drawn to scale" t_profile_histogram_big_counts

# Blocks allocated before memshim's constructor (a library's constructor:
# libstdc++'s 72 KiB in every C++ program) have no stack; the profile
# counts them as the leak report does, under no stack recorded.  They were
# left out of every figure (found by a helper against massif).
t_profile_early() {
    cc -O0 -g -shared -fPIC -DLIB -o "$T/libearly.so" "$ROOT/tests/tools/progs/early.c" &&
        cc -O0 -g -o "$T/early" "$ROOT/tests/tools/progs/early.c" -L"$T" -learly -Wl,-rpath,"$T" || return 1
    (cd "$T" && MEMSHIM_PROFILE="$T/early.json" LD_PRELOAD="$LIB" ./early) 2>"$T/perr"
    rc=$?; err=$(cat "$T/perr"); expect_rc 0 || return 1
    [ -z "$err" ] || { echo "stderr not quiet: $err"; return 1; }
    "$PY" - "$T/early.json" <<'EOF' || return 1
import json, sys
d = json.load(open(sys.argv[1]))
t = d["totals"]
assert (t["allocations"], t["allocated_bytes"], t["live_blocks"], t["live_bytes"]) == (2, 8000, 2, 8000), t
by = {(s["stack"][0].get("function") if s["stack"] else None): s for s in d["sites"]}
assert by[None]["live_bytes"] == 7000 and by["early_main"]["live_bytes"] == 1000, by
EOF
    (cd "$T" && MEMSHIM_PROFILE="$T/early.folded" LD_PRELOAD="$LIB" ./early) 2>/dev/null
    has "$(cat "$T/early.folded")" "[no stack] 7000"
}
check "blocks allocated before memshim's constructor: in the profile, no stack recorded" t_profile_early

t_run_profile() {
    (cd "$T" && "$MS" run --profile "$T/run.%p.json" -- ./profile_phases) >"$T/out" 2>"$T/err"; rc=$?
    out=$(cat "$T/out"); err=$(cat "$T/err")
    expect_rc 0 && has "$err" "memshim: heap profile: $T/run." && has "$err" "read the heap profile with: memshim profile" ||
        return 1
    # memshim run starts memshim's thread, whose TLS vector pthread_create
    # allocates: memshim's block, not the program's (it was counted, at
    # _ms_reporter_start)
    "$PY" - "$T"/run.*.json <<'EOF'
import json, sys
for f in sys.argv[1:]:
    for s in json.load(open(f))["sites"]:
        names = [fr.get("function", "") for fr in s["stack"]]
        assert not any(n.startswith("_ms_") for n in names), (f, names)
EOF
}
check "run --profile FILE sets MEMSHIM_PROFILE and says where it went; memshim's own thread is not in it" t_run_profile

# %n and %h in the names: run finds the files the library wrote (it said
# "none written" of every name with %n), the newest of a series to read.
t_run_names() {
    rm -f "$T"/ser.* "$T"/hst.*
    local host; host=$(uname -n | tr / _)
    (cd "$T" && "$MS" run --profile "$T/ser.%p.%n.json" --stats="$T/hst.%h.%p.%n.txt" -- ./profile_phases) \
        >"$T/out" 2>"$T/err"; rc=$?
    out=$(cat "$T/out"); err=$(cat "$T/err")
    local prof stats
    prof=$(ls "$T"/ser.[0-9]*.1.json 2>/dev/null); stats=$(ls "$T"/hst."$host".[0-9]*.1.txt 2>/dev/null)
    [ -n "$prof" ] && [ -n "$stats" ] || { echo "not written:"; ls "$T" | grep -E '^(ser|hst)\.'; return 1; }
    expect_rc 0 && has_not "$err" "none written" && has "$err" "memshim: heap profile: $prof" &&
        has "$err" "memshim: statistics: $stats" && has "$err" "read the heap profile with: memshim profile $prof"
}
check "run --profile / --stats with %n and %h: the files written are listed, the profile to read named" t_run_names

t_run_profile_children() {
    rm -f "$T"/kids.json*
    (cd "$T" && "$MS" run --profile "$T/kids.json" -- bash -c './profile_phases xpeak; ./profile_phases stale; exit 0') \
        >"$T/out" 2>"$T/err"; rc=$?
    out=$(cat "$T/out"); err=$(cat "$T/err")
    expect_rc 0 && has "$err" "memshim: heap profile: $T/kids.json" || return 1
    local n; n=$(ls "$T"/kids.json.[0-9]* 2>/dev/null | wc -l)
    [ "$n" -eq 2 ] || { echo "$n profiles of the children, expected 2:"; ls "$T"; return 1; }
    [ "$(grep -c "heap profile (child process): $T/kids.json\." <<<"$err")" -eq 2 ] || { echo "children not listed: $err"; return 1; }
    local f got=""
    for f in "$T"/kids.json.[0-9]*; do got="$got $(site "$f" xpeak_site | cut -d' ' -f1)"; done
    [[ $got == *4* ]] || { echo "no child's profile has xpeak_site's 4 blocks:$got"; return 1; }
    expect_site "$T/kids.json" xpeak_site none
}
check "run --profile FILE without %p: each program the shell starts writes FILE.PID, listed; the shell keeps FILE" t_run_profile_children

# The name's format holds for the children's FILE.PID as for FILE: pprof
# for .pb.gz (a child's kids.pb.gz.PID was written as JSON), folded stacks
# for .folded.
t_run_profile_children_format() {
    local ext f n
    for ext in pb.gz folded; do
        rm -f "$T"/kids."$ext"*
        (cd "$T" && "$MS" run --profile "$T/kids.$ext" -- bash -c './profile_phases xpeak; ./profile_phases stale; exit 0') \
            >"$T/out" 2>"$T/err"; rc=$?
        out=$(cat "$T/out"); err=$(cat "$T/err")
        expect_rc 0 || return 1
        n=0
        for f in "$T/kids.$ext" "$T/kids.$ext".[0-9]*; do
            [ -e "$f" ] || continue
            n=$((n + 1))
            if [ "$ext" = pb.gz ]; then
                gzip -t "$f" 2>/dev/null || { echo "$f: not gzip (pprof): $(head -c 60 "$f")"; return 1; }
            else
                head -c 1 "$f" | grep -q '{' && { echo "$f: JSON, not folded stacks"; return 1; }
                grep -qE '^[^ ].* [0-9]+$' "$f" || { echo "$f: no folded line: $(head -c 200 "$f")"; return 1; }
            fi
        done
        [ "$n" -eq 3 ] || { echo "$n .$ext profiles, expected 3 (the shell's and two children's):"; ls "$T"; return 1; }
    done
}
check "run --profile FILE.pb.gz / FILE.folded: the children's FILE.PID are pprof / folded too" t_run_profile_children_format

# A series while the program runs: numbered by %n, each a whole profile,
# the last one the exit's.  (How many the interval gives depends on the
# machine's load: only the numbering and the last one are asserted.)
t_profile_interval() {
    rm -f "$T"/series.*.json
    (cd "$T" && MEMSHIM_PROFILE="$T/series.%n.json" MEMSHIM_PROFILE_INTERVAL=100 LD_PRELOAD="$LIB" \
        sleep 1) >"$T/out" 2>"$T/err"; rc=$?
    err=$(cat "$T/err")
    expect_rc 0 && [ -z "$err" ] || { echo "stderr: $err"; return 1; }
    local n; n=$(ls "$T"/series.*.json 2>/dev/null | wc -l)
    [ "$n" -ge 2 ] || { echo "$n profiles, expected the interval's and the exit's"; ls "$T"; return 1; }
    "$PY" - "$T" "$n" <<'PYEOF' || return 1
import json, sys
d, n = sys.argv[1], int(sys.argv[2])
whens = []
for i in range(1, n + 1):
    p = json.load(open("%s/series.%d.json" % (d, i)))        # 1..n, none missing
    assert p["format"] == "memshim-profile", p.get("format")
    whens.append(p["when"])
assert whens[-1] == "at exit", whens
assert all(w == "interval" for w in whens[:-1]), whens
PYEOF
}
check "MEMSHIM_PROFILE_INTERVAL with %n: a numbered series of whole profiles, the exit's last" t_profile_interval

# A process that ends with _exit(2) while memshim's thread writes an
# interval profile leaves no temporary file (it did: 4 runs in 20, each
# an empty name.tmp.PID.TID.N beside the profile).  12 runs ending at
# times spread over the profiles' writing.
t_profile_exit_midwrite() {
    cc -O0 -g -o "$T/exit_midwrite" "$ROOT/tests/tools/progs/exit_midwrite.c" || return 1
    rm -rf "$T/emw" && mkdir "$T/emw" || return 1
    local i
    for i in $(seq 1 12); do
        MEMSHIM_PROFILE="$T/emw/p.%p.pb.gz" MEMSHIM_PROFILE_INTERVAL=100 MEMSHIM_STACK_DEPTH=64 \
            LD_PRELOAD="$LIB" "$T/exit_midwrite" $((100000 + i * 8333)) || { echo "run $i: exit $?"; return 1; }
    done
    local all; all=$(ls "$T/emw")
    [ -n "$all" ] || { echo "no profile written"; return 1; }
    has_not "$all" ".tmp."
}
check "_exit while an interval profile is being written: no temporary file left" t_profile_exit_midwrite

t_run_profile_interval() {
    rm -f "$T"/rs.*.json
    (cd "$T" && "$MS" run -q --profile "$T/rs.%n.json" --profile-interval 100 -- sleep 0.6) >"$T/out" 2>"$T/err"; rc=$?
    expect_rc 0 || return 1
    [ -s "$T/rs.1.json" ] && [ -s "$T/rs.2.json" ] || { echo "no numbered series:"; ls "$T"; return 1; }
    run "$MS" run --profile-interval 100 -- true; expect_rc 2 && has "$err" "--profile-interval: goes with --profile FILE" || return 1
    run "$MS" run --profile p.json --profile-interval 5 -- true; expect_rc 2 && has "$err" "expected milliseconds, 100 to 86400000"
}
check "run --profile-interval MS: MEMSHIM_PROFILE_INTERVAL, a numbered series; wrong uses exit 2" t_run_profile_interval

# memshim's memory for stacks runs out under the program's RLIMIT_AS: the
# blocks after that have the stack "out of memory", whose profile counts go
# to a sink nobody reads (shim.h, _ms_stack_prof), single-threaded and
# through a thread's slots, with every block tracked or sampled.  The
# program goes on, one line is said, and the profile is written whole.
t_profile_stacks_out_of_memory() {
    cc -O2 -g -o "$T/stacks_oom" "$ROOT/tests/tools/progs/stacks_oom.c" -lpthread || { echo "build stacks_oom"; return 1; }
    local how mode
    for how in single thread; do for mode in MEMSHIM_TRACK=1 "MEMSHIM_TRACK=0 MEMSHIM_SAMPLE=64"; do
        rm -f "$T/oom.json"
        # shellcheck disable=SC2086  # $mode: one or two NAME=VALUE words
        (cd "$T" && env $mode MEMSHIM_PROFILE="$T/oom.json" LD_PRELOAD="$LIB" ./stacks_oom $how) >"$T/pout" 2>"$T/perr"
        rc=$?; out=$(cat "$T/pout"); err=$(cat "$T/perr")
        expect_rc 0 || { echo "$how, $mode: $err"; return 1; }
        has "$out" "blocks " || return 1
        [ "$err" = "memshim: out of memory for allocation stacks: blocks allocated from now on have no stack in leak reports" ] ||
            { echo "$how, $mode: stderr: $err"; return 1; }
        "$PY" - "$T/oom.json" <<'PYEOF' || { echo "$how: bad profile"; return 1; }
import json, sys
d = json.load(open(sys.argv[1]))
assert d["format"] == "memshim-profile" and d["when"] == "at exit", d.get("when")
t = d["totals"]
assert t["allocations"] == sum(s["allocations"] for s in d["sites"]), t
assert t["allocations"] >= 20000, t
leaf = [s for s in d["sites"] if s["stack"] and s["stack"][0].get("function") == "leaf"]
assert leaf and sum(s["live_blocks"] for s in leaf) == 0, "leaf sites: %d" % len(leaf)
PYEOF
    done; done
}
check "stacks out of memory under RLIMIT_AS, one thread or several, tracked or sampled: the program goes on, one line, a whole profile" t_profile_stacks_out_of_memory
