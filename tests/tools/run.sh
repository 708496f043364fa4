#!/bin/bash
# run.sh - end-to-end tests of the `memshim` command and of the reporting
# side of the library: every subcommand and option, wrong uses, malformed
# and fuzzed reports, MEMSHIM_STATS (text and JSON), the RSS log and its fork
# policy, live figures of a running process, the stats signal, the SVG plot,
# the cycle graph (Graphviz), heap profiles (profile.sh), the man pages, and
# `make install` into a scratch DESTDIR.
#
#   MS_TEST_BUILD=build tests/tools/run.sh      (make tools-test)
#
# Each check asserts one behaviour and prints "ok - NAME" or "FAIL - NAME"
# with the evidence; the last line is "N passed, N failed".
set -u
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
B=$(cd "${MS_TEST_BUILD:-$ROOT/build}" && pwd)
MS=$B/memshim
LIB=$B/libmemshim.so
FIX=$ROOT/tests/tools/fixtures
T=$(mktemp -d /tmp/memshim-tools.XXXXXX)
trap 'kill $(cat "$T/pids" 2>/dev/null) 2>/dev/null; rm -rf "$T"' EXIT
unset LD_PRELOAD MEMSHIM_STATS MEMSHIM_RSS_LOG MEMSHIM_LIVE MEMSHIM_REPORT MEMSHIM_STATS_SIGNAL
PY=$(command -v python3)

. "$ROOT/tests/tools/harness.sh"

# ---- helper programs ----------------------------------------------------------
for p in known grow forker leaky hostile massif; do
    cc -O0 -g -o "$T/$p" "$ROOT/tests/tools/progs/$p.c" -lpthread -ldl || { fail "build helper $p"; }
done

# ==== the command: version, help, wrong uses ========================================
t_version() { run "$MS" --version; expect_rc 0 && has "$out" "memshim $(sed -n 's/^#define MEMSHIM_VERSION *"\(.*\)"/\1/p' "$ROOT/include/memshim.h")"; }
check "memshim --version prints the header's version" t_version

t_help() {
    run "$MS" help; expect_rc 0 || return 1
    for c in "run " "report " "diff " "stats " "top " "plot " "profile " "flame " "--profile" "--report" "--format" "--stats" "--rss-log" \
             "--sample" "--no-track" "--exitcode" "--suppress" "folded" "--why"; do has "$out" "$c" || return 1; done
    run "$MS" help run; expect_rc 0 && has "$out" "usage: memshim run"
}
check "memshim help lists every command and run option" t_help

usage_case() {   # usage_case ARGS...: exit 2 with one line on stderr, nothing on stdout
    run "$MS" "$@"; expect_rc 2 && one_line_err && [ -z "$out" ] || { echo "for: memshim $*"; return 1; }
}
t_wrong_uses() {
    local fails=0
    while IFS= read -r line; do
        eval "set -- $line"
        usage_case "$@" || fails=1
    done <<'EOF'

bogus
help bogus
--version extra
run
run --bogus -- true
run --format xml -- true
run --report
run --sample lots -- true
run --exitcode 300 -- true
run --rss-interval 0 -- true
run --rss-interval abc -- true
run --stats= -- true
run --show bogus -- true
run --show-leak-kinds=summary -- true
run --leak-check=maybe -- true
run --num-callers=65 -- true
run --stack-depth 0 -- true
run --report-signal KILL -- true
run --stats-signal SEGV -- true
run --on-error maybe -- true
run --why-depth 1001 -- true
run --gen-suppressions=maybe -- true
run --trace-children=maybe -- true
run --keep-stacktraces=none -- true
run --report a --log-file b -- true
run --suppressions=a --suppressions=b -- true
report
report --top 0 x.json
report --kind bogus x.json
report --format xml x.json
report a.json b.json
report --bogus x.json
report --why
report --why= x.json
report --why f --format folded x.json
diff
diff one.json
diff --top x a.json b.json
stats
stats abc
stats 1 2
stats --bogus 1
top
top -d 0 1
top -n x 1
plot
plot log
plot --bogus log -o x.svg
EOF
    return $fails
}
check "wrong uses: exit 2 with a one-line error" t_wrong_uses

# ==== run ===========================================================================
t_run_status() {
    run "$MS" run -q -- sh -c 'exit 7'; expect_rc 7 || return 1
    run "$MS" run -q -- true; expect_rc 0 || return 1
    "$MS" run -q -- sh -c 'kill -TERM $$' 2>/dev/null; rc=$?
    [ $rc -eq 143 ] || { echo "killed by SIGTERM: status $rc, expected 143"; return 1; }
    run "$MS" run -- /nonexistent/program; expect_rc 127 && has "$err" "/nonexistent/program"
}
check "run passes the exit status and death by signal through" t_run_status

# A program a signal ends (its default action): its report first, and the
# summary line names the signal, read from JSON and from text, as does
# `memshim report`.
t_run_signal_report() {
    mkdir -p "$T/sg" && rm -f "$T/sg"/* && cd "$T/sg" || return 1
    local fmt
    for fmt in json txt; do
        run "$MS" run --report "k.$fmt" -- "$T/leaky" --term; expect_rc 143 || return 1
        has "$err" "memshim: leak report: k.$fmt: pid " &&
            has "$err" "$T/leaky --term (at exit, on SIGTERM): definitely lost 480 bytes in 10 blocks" || return 1
    done
    has "$(cat k.txt)" "the process ends on SIGTERM (its default action), after this report" &&
        "$PY" -c 'import json, sys; sys.exit(json.load(open("k.json"))["signal"] != "SIGTERM")' || return 1
    run "$MS" report k.json; expect_rc 0 && has "$out" ", which SIGTERM ended after this report" || return 1
    for fmt in json txt; do
        run "$MS" run --report "o.$fmt" -- "$T/leaky" --overflow; expect_rc 139 || return 1
        has "$err" "$T/leaky --overflow (at exit, on SIGSEGV, its stack overflowed): definitely lost 480 bytes in 10 blocks" ||
            return 1
    done
    run "$MS" report o.json; expect_rc 0 && has "$out" ", which SIGSEGV (its stack overflowed) ended after this report" ||
        return 1
    has "$(cat o.txt)" "the process ends on SIGSEGV (its default action), after this report: its stack overflowed" &&
        "$PY" -c 'import json, sys; r = json.load(open("o.json")); sys.exit(r["signal"] != "SIGSEGV" or r["stack_overflow"] is not True)'
}
check "run: a program SIGTERM ends or whose stack overflows writes its report first; the summary line and memshim report say so" t_run_signal_report

t_run_env() {
    cd "$T" && : >supp
    run "$MS" run -q --report r.%p.json --format json --stats=s.json --rss-log=l.log --rss-interval 50 \
        --sample 64k --no-track --exitcode 9 --suppress supp --stats-signal USR2 --no-live -- env
    expect_rc 0 || return 1
    for kv in "MEMSHIM_REPORT=r.%p.json" "MEMSHIM_REPORT_FORMAT=json" "MEMSHIM_STATS=s.json" \
              "MEMSHIM_RSS_LOG=l.log" "MEMSHIM_RSS_INTERVAL=50" "MEMSHIM_SAMPLE=64k" "MEMSHIM_TRACK=0" \
              "MEMSHIM_EXITCODE=9" "MEMSHIM_SUPPRESS=supp" "MEMSHIM_STATS_SIGNAL=USR2" \
              "MEMSHIM_LIVE=0" "LD_PRELOAD=$(readlink -f "$LIB")"; do
        grep -qxF -- "$kv" <<<"$out" || { echo "not in the program's environment: $kv"; return 1; }
    done
    has_not "$out" "G_SLICE=" || return 1                     # not tracking: GLib left alone
    rm -f s.json l.log
    run env -u G_SLICE "$MS" run -q -- env; expect_rc 0 && has "$out" "MEMSHIM_LIVE=1" && has_not "$out" "MEMSHIM_REPORT=" &&
        grep -qxF "G_SLICE=always-malloc" <<<"$out" || { echo "tracking: no G_SLICE=always-malloc"; return 1; }
    run env G_SLICE=debug-blocks "$MS" run -q -- env; expect_rc 0 && grep -qxF "G_SLICE=debug-blocks" <<<"$out" ||
        { echo "the user's G_SLICE replaced"; return 1; }
}
check "run maps every option to its variable and preloads the library; G_SLICE=always-malloc while tracking, unless set" t_run_env

t_run_reports() {
    cd "$T" && rm -f leak.*.json stats.txt memshim.*.rss
    run "$MS" run --report leak.%p.json --stats=stats.txt --rss-log -- ./leaky
    expect_rc 0 || return 1
    local f; f=$(ls leak.*.json 2>/dev/null | head -1)
    [ -n "$f" ] || { echo "no leak report written"; echo "$err"; return 1; }
    has "$err" "memshim: leak report: $f" && has "$err" "memshim: statistics: stats.txt" &&
        has "$err" "memshim: rss log: memshim.${f//[!0-9]/}.rss" && has "$err" "memshim report $f" || return 1
    run "$MS" report "$f"; expect_rc 0 && has "$out" "definitely lost" && has "$out" "make_nodes"
}
check "run says where the reports went, and they render" t_run_reports

t_run_exitcode() { cd "$T"; run "$MS" run -q --exitcode 9 -- ./leaky; expect_rc 9; }
check "run --exitcode N: a leaking program exits N" t_run_exitcode

# --stats and --rss-log take their file only as --stats=FILE: a file name
# after a bare --stats was taken for the program, and the message said only
# that no such program exists.
t_run_bare_stats() {
    cd "$T"; rm -f bare.txt
    run "$MS" run --stats bare.txt ./leaky; expect_rc 127 || return 1
    has "$err" "memshim: bare.txt: No such file or directory (--stats writes to a file given as --stats=FILE" || return 1
    run "$MS" run --rss-log bare.txt ./leaky; expect_rc 127 || return 1
    has "$err" "(--rss-log writes to a file given as --rss-log=FILE" || return 1
    run "$MS" run --report r.txt no-such-program; expect_rc 127 && has "$err" "memshim: no-such-program: No such file or directory" &&
        has_not "$err" "writes to a file given as"
}
check "run --stats FILE PROG (no '='): the message says how --stats takes a file" t_run_bare_stats

t_run_lib() {
    run "$MS" run --lib /nonexistent/libmemshim.so -- true; expect_rc 127 && has "$err" "/nonexistent" || return 1
    run "$MS" run -q --suppress /nonexistent/supp -- true; expect_rc 1 && has "$err" "/nonexistent/supp" || return 1
    run "$MS" run -q --suppress "$T" -- true; expect_rc 1 && has "$err" "Is a directory" || return 1
    # the loader only warns of a library it cannot preload: the program ran without memshim
    run "$MS" run -q --lib /etc/passwd -- true; expect_rc 127 && one_line_err && has "$err" "not a shared object"
}
check "run: a missing or wrong library or suppressions file is a clear error" t_run_lib

# Every process its own report (issue 14: 3): bash -c 'a; b; exit 3' under
# memshim run gives three, bash's under the name, its commands' with .PID,
# each listed with its summary; the name decides JSON.  (dash, /bin/sh
# here, ends with _exit(2): no report of its own, see memshim(7).)
t_run_every_process() {
    mkdir -p "$T/ep" && rm -f "$T/ep"/* && cd "$T/ep" || return 1
    run "$MS" run --report r.json -- bash -c "$T/leaky; $T/known >/dev/null; exit 3"; expect_rc 3 || return 1
    [ "$(ls | wc -l)" -eq 3 ] && [ -e r.json ] && [ "$(ls r.json.[0-9]* | wc -l)" -eq 2 ] || { ls; return 1; }
    local lines own; lines=$(grep '^memshim: leak report: ' <<<"$err")
    [ "$(wc -l <<<"$lines")" -eq 3 ] || { echo "$err"; return 1; }
    own=$(head -1 <<<"$lines")
    [[ $own == "memshim: leak report: r.json: pid "[0-9]*" bash -c $T/leaky; $T/known >/dev/null; exit 3 (at exit): definitely lost 0 bytes in 0 blocks, "* ]] ||
        { echo "first line: $own"; return 1; }
    has "$lines" " (child process) $T/leaky (at exit): definitely lost 480 bytes in 10 blocks, indirectly lost 0 bytes in 0 blocks, possibly lost 0 bytes in 0 blocks, still reachable 1000 bytes in 1 block" &&
        has "$lines" " (child process) $T/known (at exit): definitely lost 0 bytes in 0 blocks" || return 1
    has "$err" "memshim: read the leak report with: memshim report r.json" || return 1
    "$PY" -c 'import json, sys; [json.load(open(f)) for f in sys.argv[1:]]' r.json r.json.[0-9]* || { echo "not JSON"; return 1; }
    # the same with a text name: text, and a child's name from the file's pid
    rm -f ./* && run "$MS" run --report r.txt -- bash -c "$T/leaky; exit 0"; expect_rc 0 || return 1
    local child; child=$(ls r.txt.[0-9]*) || return 1
    has "$(cat "$child")" "==${child#r.txt.}== memshim leak report (at exit) for $T/leaky" &&
        has "$err" "memshim: leak report: $child: pid ${child#r.txt.} (child process) $T/leaky (at exit): definitely lost 480 bytes in 10 blocks"
}
check "run: bash -c 'a; b' writes 3 reports, one per process, each listed with its summary; x.json is JSON" t_run_every_process

# A text report written with --leak-since gives each count its change
# ("480 (+480) bytes in 10 (+10) blocks"): run's summary line reads the
# counts all the same (it said 0 bytes in 0 blocks of every kind).
t_run_summary_leak_since() {
    mkdir -p "$T/ls" && rm -f "$T/ls"/* && cd "$T/ls" || return 1
    run "$MS" run --report r.txt --leak-since -- "$T/leaky"; expect_rc 0 || return 1
    has "$(cat r.txt)" "definitely lost: 480 (+480) bytes in 10 (+10) blocks" &&
        has "$err" "memshim: leak report: r.txt: pid " &&
        has "$err" "$T/leaky (at exit): definitely lost 480 bytes in 10 blocks, indirectly lost 0 bytes in 0 blocks, possibly lost 0 bytes in 0 blocks, still reachable 1000 bytes in 1 block"
}
check "run: the summary line of a text report written with --leak-since has its counts" t_run_summary_leak_since

# A report another program wrote under the same name just before the run
# (in the same second, as here) is not the run's: the run's outputs are
# those written since it started, to the file times' own clock.
t_run_lists_only_its_own() {
    mkdir -p "$T/own" && rm -f "$T/own"/* && cd "$T/own" || return 1
    LD_PRELOAD=$LIB MEMSHIM_REPORT="r.%p.txt" "$T/leaky" >/dev/null 2>&1
    run "$MS" run --report "r.%p.txt" -- "$T/leaky"; expect_rc 0 || return 1
    [ "$(ls r.*.txt | wc -l)" -eq 2 ] || { ls; return 1; }
    local lines; lines=$(grep '^memshim: leak report: ' <<<"$err")
    [ "$(wc -l <<<"$lines")" -eq 1 ] && has_not "$lines" "(child process)" || { echo "$err"; return 1; }
}
check "run: a report another program wrote just before under the same name is not listed" t_run_lists_only_its_own

# Heap misuse goes into the report too (issue 14: 3), with its stacks.
t_heap_errors_in_report() {
    cc -O0 -g -I"$ROOT/tests/fixtures" -I"$ROOT/include" -o "$T/heap_errors" "$ROOT/tests/fixtures/heap_errors.c" -ldl || return 1
    rm -f "$T/he".*
    LD_PRELOAD=$LIB MEMSHIM_ON_ERROR=continue MEMSHIM_REPORT="$T/he.json" MEMSHIM_EXITCODE=9 \
        "$T/heap_errors" double-free-1 >"$T/he.out" 2>"$T/he.err"
    [ $? -eq 9 ] || { echo "MEMSHIM_EXITCODE: heap errors alone should give 9"; cat "$T/he.err"; return 1; }
    has "$(cat "$T/he.err")" "memshim: free(): double free: " || return 1
    "$PY" - "$T/he.json" <<'EOF' || return 1
import json, sys
r = json.load(open(sys.argv[1]))
assert r["heap_errors_total"] == 1, r["heap_errors_total"]
e = r["heap_errors"][0]
assert (e["what"], e["is"]) == ("free(): double free", "a block already freed"), e
assert [s["title"] for s in e["stacks"]] == ["allocated at", "first freed at", "now at"], e["stacks"]
assert all(s["stack"][0]["function"] == "main" and s["stack"][-1]["function"] == "main" for s in e["stacks"]), e["stacks"]
lines = [s["stack"][0]["line"] for s in e["stacks"]]
assert lines[0] < lines[1] < lines[2], lines
EOF
    LD_PRELOAD=$LIB MEMSHIM_ON_ERROR=continue MEMSHIM_REPORT="$T/he.txt" "$T/heap_errors" double-free-1 >"$T/he.out" 2>"$T/he.err" || return 1
    local t; t=$(sed 's/^==[0-9]*== \{0,1\}//' "$T/he.txt")
    has "$t" "HEAP ERRORS: 1 (each written to standard error when it happened)" &&
        has "$t" "free(): double free: $(sed -n 's/^addr=//p' "$T/he.out") is a block already freed (thread " &&
        has "$t" " first freed at:" && has "$t" " now at:" || return 1
    cd "$T" && run "$MS" run --on-error continue --report he.%p.json -- "$T/heap_errors" double-free-1; expect_rc 0 || return 1
    has "$err" ", 1 heap error"
}
check "heap misuse in the report (text and JSON), with its stacks; MEMSHIM_EXITCODE counts it" t_heap_errors_in_report

# Every report variable has a run option, and valgrind's spellings are
# aliases (issue 14: 5).
t_run_options() {
    cd "$T" && : >supp && : >supp2
    run "$MS" run -q --show reachable,possible --stack-depth 7 --why-depth 3 --report-signal USR1 \
        --on-error continue --leak-since --gen-suppressions -- env
    expect_rc 0 || return 1
    local kv
    for kv in MEMSHIM_SHOW=reachable,possible MEMSHIM_STACK_DEPTH=7 MEMSHIM_WHY_DEPTH=3 MEMSHIM_REPORT_SIGNAL=USR1 \
              MEMSHIM_ON_ERROR=continue MEMSHIM_LEAK_SINCE=1 MEMSHIM_GEN_SUPPRESSIONS=1; do
        grep -qxF -- "$kv" <<<"$out" || { echo "not in the program's environment: $kv"; echo "$out"; return 1; }
    done
    run "$MS" run -q --log-file=l.%p.txt --num-callers=5 --error-exitcode=4 --suppressions=supp \
        --gen-suppressions=all --show-leak-kinds=definite,possible --trace-children=yes -- env
    expect_rc 0 || return 1
    for kv in MEMSHIM_REPORT=l.%p.txt MEMSHIM_STACK_DEPTH=5 MEMSHIM_EXITCODE=4 MEMSHIM_SUPPRESS=supp \
              MEMSHIM_GEN_SUPPRESSIONS=1 MEMSHIM_SHOW=definite,possible; do
        grep -qxF -- "$kv" <<<"$out" || { echo "not in the program's environment: $kv"; echo "$out"; return 1; }
    done
    has_not "$out" MEMSHIM_TRACE_CHILDREN || return 1
    rm -f l.*.txt
    run "$MS" run -q --gen-suppressions=no --leak-check=no -- env; expect_rc 0 &&
        grep -qxF MEMSHIM_GEN_SUPPRESSIONS=0 <<<"$out" && grep -qxF MEMSHIM_SHOW=none <<<"$out" || { echo "$out"; return 1; }
    run "$MS" run -q --leak-check=summary -- env; expect_rc 0 && grep -qxF MEMSHIM_SHOW=summary <<<"$out" || return 1
    run "$MS" run -q --leak-check=full -- env; expect_rc 0 && has_not "$out" MEMSHIM_SHOW= || return 1
    run "$MS" run -q --keep-stacktraces=alloc -- env; expect_rc 0 && grep -qxF MEMSHIM_FREE_STACKS=0 <<<"$out" || return 1
    run "$MS" run -q --no-free-stacks -- env; expect_rc 0 && grep -qxF MEMSHIM_FREE_STACKS=0 <<<"$out" || return 1
    run "$MS" run -q --keep-stacktraces=alloc-and-free -- env; expect_rc 0 && has_not "$out" MEMSHIM_FREE_STACKS || return 1
    # what they do
    run "$MS" run -q --leak-check=summary -- ./leaky; expect_rc 0 || return 1
    has "$err" "definitely lost: 480 bytes in 10 blocks" && has_not "$err" "loss record" || return 1
    run "$MS" run -q --leak-check=no -- ./leaky; expect_rc 0 && has_not "$err" "LEAK SUMMARY" || return 1
    run "$MS" run -q --error-exitcode=4 --num-callers=1 -- ./leaky; expect_rc 4 || return 1
    [ "$(grep -c '    by ' <<<"$err")" -eq 0 ] && has "$err" "    at " || { echo "one frame each: $err"; return 1; }
    run "$MS" run -q --show-leak-kinds=reachable -- ./leaky; expect_rc 0 &&
        has "$err" "1000 bytes in 1 block is still reachable in loss record 1 of 1" || return 1
    # --trace-children=no: bash runs on memshim, the program it starts does not
    mkdir -p tc && rm -f tc/*
    run "$MS" run --report tc/r.txt --trace-children=no -- bash -c './leaky; echo "[$LD_PRELOAD]"'; expect_rc 0 || return 1
    [ "$(ls tc)" = r.txt ] && has "$out" "[]" || { ls tc; echo "$out"; return 1; }
    rm -f tc/* && run "$MS" run --report tc/r.txt -- bash -c './leaky; true'; expect_rc 0 &&
        [ "$(ls tc | wc -l)" -eq 2 ] || { ls tc; return 1; }
    # a report signal and --on-error through the options
    rm -f tc/*
    run "$MS" run -q --report-signal USR1 --report tc/s.json --leak-since -- bash -c 'kill -USR1 $$; sleep 0.5; true'
    expect_rc 0 && [ -e tc/s.json.snap1 ] && has "$(cat tc/s.json.snap1)" '"since": 0' || { ls tc; return 1; }
}
check "run: options for every report variable and valgrind's spellings (--leak-check, --num-callers, ...)" t_run_options

t_run_help() {
    run "$MS" run --help; expect_rc 0 || return 1
    local h=$out
    for c in "usage: memshim run [OPTIONS]" --show --stack-depth --report-signal --on-error --log-file --leak-since \
             --leak-check=no --show-leak-kinds --num-callers --error-exitcode --suppressions --gen-suppressions \
             --trace-children --no-free-stacks --keep-stacktraces; do has "$h" "$c" || return 1; done
    run "$MS" help run; expect_rc 0 && [ "$out" = "$h" ] || { echo "help run differs from run --help"; return 1; }
    local c
    for c in report diff stats top exporter plot graph profile flame; do
        run "$MS" "$c" --help; expect_rc 0 && [[ $out == "usage: memshim $c "* ]] || { echo "$c --help: $out"; return 1; }
        [ "$out" = "$("$MS" help "$c")" ] || { echo "help $c differs"; return 1; }
    done
    run "$MS" help; expect_rc 0 && has "$out" "memshim help run"
}
check "run --help and help run print run's own help; every command has its own" t_run_help

# A misspelt option or command: the nearest of the command's own options, or
# of the commands (shim/near.c, as for the library's variables), else the
# help that lists them; status 2, one line.
t_misspelt_options() {
    local fails=0 args want
    while IFS='|' read -r args want; do
        eval "set -- $args"
        run "$MS" "$@"
        expect_rc 2 && one_line_err && [ -z "$out" ] && [ "$err" = "memshim: $want" ] ||
            { echo "for: memshim $args"; echo "want: memshim: $want"; fails=1; }
    done <<'EOF'
run --stak-depth=3 -- true|run: unknown option '--stak-depth=3' (did you mean --stack-depth?)
run --rss -- true|run: unknown option '--rss' (did you mean --rss-log or --rss-interval?)
run -report x -- true|run: unknown option '-report' (did you mean --report?)
run --suppressions-file=x -- true|run: unknown option '--suppressions-file=x' (did you mean --suppress or --suppressions?)
run --bogus -- true|run: unknown option '--bogus' (see 'memshim help run')
report x.json --kinds definite|report: unknown option '--kinds' (did you mean --kind?)
plot x.rss --titel t|plot: unknown option '--titel' (did you mean --title?)
exporter --onec|exporter: unknown option '--onec' (did you mean --once?)
stats --jsn 1|stats: unknown option '--jsn' (did you mean --json?)
reprot x.json|unknown command 'reprot' (did you mean report?)
help plt|help: unknown command 'plt' (did you mean plot?)
bogus|unknown command 'bogus' (see 'memshim help')
run $'--x\nq' -- true|run: unknown option '--x\nq' (see 'memshim help run')
EOF
    return $fails
}
check "a misspelt option or command is named with the nearest ones" t_misspelt_options

# memshim stats/top given a 'memshim run' pid follow its program
t_live_follow_run() {
    rm -f "$T/ready"
    "$MS" run -q -- "$T/known" hold "$T/ready" >/dev/null 2>&1 &
    local rp=$!
    echo $rp >>"$T/pids"
    run "$MS" stats $rp; expect_rc 0 || { kill $rp; return 1; }
    local child; child=$(sed -n 's/^memshim: pid \([0-9]*\) .*/\1/p' <<<"$out" | head -1)
    [ -n "$child" ] && [ "$child" != $rp ] && has "$err" "following process $child, the program 'memshim run' $rp runs" &&
        has "$out" "known hold" || { kill $rp; echo "$out"; return 1; }
    run "$MS" top -n 1 $rp; expect_rc 0 && has "$out" "memshim: pid $child" || { kill $child; return 1; }
    kill $child; wait $rp 2>/dev/null
    run "$MS" stats $rp; expect_rc 1 && one_line_err && has "$err" "no process $rp"
}
check "memshim stats/top PID of a 'memshim run' follow the program it runs (memshim run ... & memshim top \$!)" t_live_follow_run

# ==== report ========================================================================
t_report_text() {
    run "$MS" report "$FIX/report.json"; expect_rc 0 || return 1
    has "$out" "leak report of ./server --port 8080 (pid 4242)" &&
    has "$out" "definitely lost    3.05 KiB in 13 blocks (3,120 bytes)" &&
    has "$out" "    via heuristic stdstring                 65 B in 1 block" && has_not "$out" "gobject" &&
    has "$out" "3,000 bytes in 10 blocks definitely lost (2 of 5)" &&
    has "$out" "#0  0x401200 in read_request http.c:77 (/opt/server)" &&
    has "$out" "#1  0x7f00000123 (/usr/lib/libevent.so)" &&
    has "$out" "(no stack recorded)" || return 1
    # largest first
    local order; order=$(grep -oE '^[0-9,]+ bytes' <<<"$out" | tr -d , | awk '{print $1}' | tr '\n' ' ')
    [ "$order" = "8192 3000 256 120 64 " ] || { echo "order: $order"; return 1; }
}
check "report renders summary and records, largest first" t_report_text

t_report_filters() {
    run "$MS" report "$FIX/report.json" --kind definite; expect_rc 0 || return 1
    has "$out" "read_request" && has "$out" "make_node" && has_not "$out" "init_cache" && has_not "$out" "parse" || return 1
    has_not "$out" "still reachable" || return 1
    run "$MS" report --kind reachable,possible --top 1 "$FIX/report.json"; expect_rc 0 || return 1
    has "$out" "init_cache" && has_not "$out" "no stack recorded" && has "$out" "1 smaller records not shown" || return 1
    run "$MS" report --kind still_reachable "$FIX/report.json"; expect_rc 0 && has "$out" "init_cache"
}
check "report --kind and --top select records" t_report_filters

t_report_folded() {
    run "$MS" report "$FIX/report.json" --format folded; expect_rc 0 || return 1
    local want
    want=$'reachable;init_cache 8192\ndefinite;main;0x7f00000123 in libevent.so;read_request 3000\nindirect;parse:headers 256\ndefinite;main;make_node 120\npossible;[unknown] 64'
    [ "$out" = "$want" ] || { echo "got:"; echo "$out"; echo "want:"; echo "$want"; return 1; }
    run "$MS" report "$FIX/report.json" --format=folded --kind definite --top 1; expect_rc 0 &&
        [ "$out" = "definite;main;0x7f00000123 in libevent.so;read_request 3000" ] || { echo "$out"; return 1; }
}
check "report --format folded: one line per stack, root first" t_report_folded

# Names with control characters (a program's, a file's, a function's) are
# shown escaped (\n, \xNN): neither an escape sequence to the terminal nor a line of
# their own (a forged record, a folded line).
t_report_control_names() {
    "$PY" - "$FIX/report.json" "$T/ctl.json" <<'EOF' || return 1
import sys
t = open(sys.argv[1]).read()
assert "read_request" in t
open(sys.argv[2], "w").write(t.replace("read_request", "read\\u001b[2Jrequest\\nX\\u009b"))
EOF
    run "$MS" report "$T/ctl.json"; expect_rc 0 || return 1
    has "$out" 'in read\x1b[2Jrequest\nX\xc2\x9b http.c:77' && [[ $out != *$'\e'* ]] || { echo "$out" | cat -v; return 1; }
    run "$MS" report "$T/ctl.json" --format folded; expect_rc 0 || return 1
    has "$out" 'read\x1b[2Jrequest\nX\xc2\x9b 3000' && [ "$(wc -l <<<"$out")" -eq 5 ] || { echo "$out" | cat -v; return 1; }
}
check "report: names with control characters are shown escaped, never as terminal codes or lines of their own" t_report_control_names

# Retention paths: the why_paths fixture's JSON report, read back with --why.
t_report_why() {
    cc -O1 -g -I"$ROOT/include" -o "$T/why_paths" "$ROOT/tests/fixtures/why_paths.c" -lpthread -ldl || return 1
    LD_PRELOAD=$LIB MEMSHIM_SHOW=all MEMSHIM_REPORT_FORMAT=json MEMSHIM_REPORT="$T/why.json" "$T/why_paths" > "$T/why.out" ||
        { echo "the fixture failed"; return 1; }
    local c1 c2 c3 c4 c5 want
    read -r _ c1 c2 c3 c4 c5 < <(grep '^chain ' "$T/why.out")
    want="48 bytes in 1 block still reachable (* of *), allocated at chain_tail (why_paths.c:*)
  kept alive by: global why_chain in $T/why_paths
    -> $c1 (48 bytes, allocated at chain_link (why_paths.c:*)), pointer at offset 8
    -> $c2 (48 bytes, allocated at chain_link (why_paths.c:*)), pointer at offset 8
    -> $c3 (48 bytes, allocated at chain_link (why_paths.c:*)), pointer at offset 8
    -> $c4 (48 bytes, allocated at chain_link (why_paths.c:*)), pointer at offset 8
    -> this block, $c5"
    run "$MS" report "$T/why.json" --why chain_tail; expect_rc 0 || return 1
    # shellcheck disable=SC2053  # the wanted text is a pattern
    [[ $out == $want ]] || { echo "got:"; echo "$out"; echo "want:"; echo "$want"; return 1; }
    run "$MS" report "$T/why.json" --why "$c3"; expect_rc 0 || return 1          # a block on the way
    [[ $out == $want ]] || { echo "--why $c3 got:"; echo "$out"; return 1; }
    run "$MS" report "$T/why.json" --why why_paths.c:"$(sed -n 's/.*chain_tail (why_paths.c:\([0-9]*\)).*/\1/p' <<<"$out" | head -n 1)"
    expect_rc 0 && has "$out" "kept alive by: global why_chain" || return 1
    run "$MS" report "$T/why.json" --why alloc_on_stack; expect_rc 0 || return 1
    has "$out" "kept alive by: thread $(awk '/^thread /{print $3}' "$T/why.out")'s stack in holder (why_paths.c:" || return 1
    run "$MS" report "$T/why.json" --why alloc_tls; expect_rc 0 && has "$out" "'s thread-local why_tls in $T/why_paths" || return 1
    run "$MS" report "$T/why.json" --why alloc_plain; expect_rc 0 || return 1
    has "$out" "  kept alive by: a collector root (memshim_root_add)
    -> $(awk '/^rooted /{print $2}' "$T/why.out") (Holder object, " || return 1
    run "$MS" report "$T/why.json" --why alloc_lost; expect_rc 0 &&
        has "$out" "  no retention path: nothing outside lost blocks points to these blocks" || return 1
    run "$MS" report "$T/why.json" --why 0x10; expect_rc 1 && one_line_err && has "$err" "no record with a retention path through 0x10" || return 1
    run "$MS" report "$T/why.json" --why no_such_function; expect_rc 1 && one_line_err || return 1
    # a malformed "why": one line naming the field
    "$PY" - "$T/why.json" "$T/badwhy.json" <<'PYEOF'
import json, sys
d = json.load(open(sys.argv[1]))
next(l for l in d["leaks"] if "why" in l)["why"]["hops"] = [{"addr": 5}]
json.dump(d, open(sys.argv[2], "w"))
PYEOF
    run "$MS" report "$T/badwhy.json" --why chain_tail; expect_rc 1 && one_line_err && has "$err" ".why.hops[0].addr: expected a string"
}
check "report --why: the retention paths of the JSON report, by allocating function, FILE:LINE or address" t_report_why

# A series of snapshots (issue 14: 2): leak_series makes three, with
# records new and grown between them, then exits.
t_series() {
    cc -O1 -g -I"$ROOT/tests/fixtures" -o "$T/leak_series" "$ROOT/tests/fixtures/leak_series.c" -ldl || return 1
    mkdir -p "$T/ser" && rm -f "$T/ser"/*
    # memshim_leak_check, no %n: name.snapN, then the exit report under the name itself
    LD_PRELOAD=$LIB MEMSHIM_LEAK_SINCE=1 MEMSHIM_REPORT="$T/ser/s.json" "$T/leak_series" >"$T/ser.out" || return 1
    [ "$(cat "$T/ser.out")" = "snapshots 1 3 7" ] || { cat "$T/ser.out"; return 1; }
    [ "$(cd "$T/ser" && ls | tr '\n' ' ')" = "s.json s.json.snap1 s.json.snap2 s.json.snap3 " ] || { ls "$T/ser"; return 1; }
    "$PY" - "$T/ser" <<'EOF' || return 1
import json, sys
d = sys.argv[1]
want = {
 "s.json.snap1": ("snapshot", 1, 0, [("lose_a", "new", 1, 100, 1, 100)]),
 "s.json.snap2": ("snapshot", 2, 1, [("lose_a", "increased", 2, 200, 1, 100), ("lose_b", "new", 1, 200, 1, 200)]),
 "s.json.snap3": ("snapshot", 3, 2, [("lose_a", "increased", 3, 300, 1, 100), ("lose_b", "same", 1, 200, 0, 0),
                                     ("lose_c", "new", 3, 144, 3, 144)]),
 "s.json":       ("at exit", 4, 3, [("lose_a", "same", 3, 300, 0, 0), ("lose_b", "same", 1, 200, 0, 0),
                                    ("lose_c", "same", 3, 144, 0, 0)]),
}
for name, (when, seq, since, recs) in want.items():
    r = json.load(open(d + "/" + name))
    got = sorted((l["stack"][0]["function"].split(".")[0], l["change"], l["blocks"], l["bytes"], l["blocks_delta"],
                  l["bytes_delta"]) for l in r["leaks"])
    assert (r["when"], r["sequence"], r["since"], got) == (when, seq, since, recs), (name, r["when"], r["sequence"], r["since"], got)
    for l in r["leaks"]:
        assert l["stack"][-1]["function"] == "main", (name, "frames after main", l["stack"])
s3 = json.load(open(d + "/s.json.snap3"))
assert s3["changes"] == {"new": 1, "increased": 1, "decreased": 0, "same": 1, "gone": 0}, s3["changes"]
assert s3["summary"]["definitely_lost"] == {"blocks": 7, "bytes": 644, "blocks_delta": 4, "bytes_delta": 244}, s3["summary"]
EOF
    run "$MS" diff "$T/ser/s.json.snap1" "$T/ser/s.json.snap2" "$T/ser/s.json.snap3" "$T/ser/s.json"; expect_rc 0 || return 1
    local got want
    got=$(grep -E '^(\+|leak report series|  definitely lost)' <<<"$out")
    want="leak report series: 4 reports (snapshots of one run)
  definitely lost  100 B -> 400 B -> 644 B -> 644 B
+200 bytes (+2 blocks) definitely lost, grew in 2 of 3 steps: 100 -> 200 -> 300 -> 300 bytes
+200 bytes (+1 block) definitely lost, grew in 1 of 3 steps: none -> 200 -> 200 -> 200 bytes
+144 bytes (+3 blocks) definitely lost, grew in 1 of 3 steps: none -> none -> 144 -> 144 bytes"
    [ "$got" = "$want" ] || { echo "got:"; echo "$got"; echo "want:"; echo "$want"; return 1; }
    has "$out" " in lose_c" || return 1
    run "$MS" report "$T/ser/s.json.snap3"; expect_rc 0 || return 1
    has "$out" "300 bytes in 3 blocks definitely lost (1 of 3), increased since report 2" &&
        has "$out" "200 bytes in 1 block definitely lost (2 of 3)" &&
        has "$out" "144 bytes in 3 blocks definitely lost (3 of 3), new since report 2" || return 1
    # the signal, %n in the name, text: each snapshot its own file, flagged
    LD_PRELOAD=$LIB MEMSHIM_LEAK_SINCE=1 MEMSHIM_REPORT_SIGNAL=USR1 MEMSHIM_REPORT="$T/ser/t.%n.txt" \
        "$T/leak_series" "$(kill -l USR1)" "$T/ser/t.1.txt" "$T/ser/t.2.txt" "$T/ser/t.3.txt" >"$T/ser.out" || return 1
    [ "$(cat "$T/ser.out")" = "snapshots 0 0 0" ] || { cat "$T/ser.out"; return 1; }
    local t3; t3=$(sed 's/^==[0-9]*== \{0,1\}//' "$T/ser/t.3.txt")
    has "$t3" "memshim leak report (snapshot)" &&
    has "$t3" "since report 2 of this process: 1 new, 1 increased, 0 decreased, 1 unchanged, 0 gone loss records" &&
    has "$t3" "300 (+100) bytes in 3 (+1) blocks are definitely lost in increased loss record 1 of 3" &&
    has "$t3" "200 (+0) bytes in 1 (+0) block is definitely lost in loss record 2 of 3" &&
    has "$t3" "144 (+144) bytes in 3 (+3) blocks are definitely lost in new loss record 3 of 3" &&
    has "$t3" "definitely lost: 644 (+244) bytes in 7 (+4) blocks" || return 1
    has "$(cat "$T/ser/t.1.txt")" "since the start (no report before): 1 new, 0 increased" || return 1
    has "$(cat "$T/ser/t.4.txt")" "memshim leak report (at exit)" &&
        has "$(cat "$T/ser/t.4.txt")" "0 new, 0 increased, 0 decreased, 3 unchanged, 0 gone loss records" || return 1
    # without MEMSHIM_LEAK_SINCE: numbered, nothing flagged
    rm -f "$T/ser"/*
    LD_PRELOAD=$LIB MEMSHIM_REPORT="$T/ser/u.%n.json" "$T/leak_series" >/dev/null || return 1
    [ "$(cd "$T/ser" && ls | tr '\n' ' ')" = "u.1.json u.2.json u.3.json u.4.json " ] || { ls "$T/ser"; return 1; }
    has_not "$(cat "$T/ser/u.3.json")" '"change"' && has "$(cat "$T/ser/u.3.json")" '"sequence": 3'
}
check "a series of 3 snapshots: %n and .snapN names, new and grown records flagged (text, JSON), diff of the series" t_series

malformed_case() {   # malformed_case NAME CONTENT EXPECTED-TEXT
    printf '%s' "$2" >"$T/bad-$1.json"
    run "$MS" report "$T/bad-$1.json"
    expect_rc 1 && one_line_err && has "$err" "$T/bad-$1.json" && has "$err" "$3" || { echo "case $1"; return 1; }
}
t_report_malformed() {
    local f=0
    malformed_case empty '' "not valid JSON" || f=1
    malformed_case notjson 'hello' "not valid JSON" || f=1
    malformed_case truncated '{"pid": 1, "leaks": [{"kind": "definitely_lost", "bytes": 1' "not valid JSON" || f=1
    malformed_case array '[1, 2]' "expected a JSON object" || f=1
    malformed_case noleaks '{"pid": 1}' 'no "leaks" array' || f=1
    malformed_case leaksobj '{"leaks": {}}' '"leaks": expected an array' || f=1
    malformed_case leaknum '{"leaks": [3]}' "leaks[0]: expected an object" || f=1
    malformed_case nokind '{"leaks": [{"bytes": 1}]}' 'leaks[0]: no "kind"' || f=1
    malformed_case negbytes '{"leaks": [{"kind": "definitely_lost", "bytes": -5}]}' "leaks[0].bytes: expected a non-negative integer" || f=1
    malformed_case strbytes '{"leaks": [{"kind": "definitely_lost", "bytes": "5"}]}' "leaks[0].bytes" || f=1
    malformed_case stackobj '{"leaks": [{"kind": "x", "bytes": 1, "stack": {}}]}' "leaks[0].stack: expected an array" || f=1
    malformed_case frame '{"leaks": [{"kind": "x", "bytes": 1, "stack": [{"file": "a.c"}]}]}' 'leaks[0].stack[0]: neither "ip" nor "function"' || f=1
    malformed_case line '{"leaks": [{"kind": "x", "bytes": 1, "stack": [{"ip": "0x1", "line": "7"}]}]}' "leaks[0].stack[0].line" || f=1
    malformed_case summary '{"summary": {"definitely_lost": {"bytes": 1.5}}, "leaks": []}' "summary.definitely_lost.bytes" || f=1
    malformed_case heur '{"summary": {"reachable_via_heuristic": []}, "leaks": []}' "summary.reachable_via_heuristic: expected an object" || f=1
    malformed_case heurn '{"summary": {"reachable_via_heuristic": {"gobject": {"blocks": -1, "bytes": 0}}}, "leaks": []}' \
        "summary.reachable_via_heuristic.gobject.blocks" || f=1
    run "$MS" report "$T/does-not-exist.json"; expect_rc 1 && one_line_err && has "$err" "No such file" || f=1
    run "$MS" report "$T"; expect_rc 1 && one_line_err || f=1
    run "$MS" diff "$FIX/old.json" "$T/bad-notjson.json"; expect_rc 1 && one_line_err || f=1
    return $f
}
check "report: malformed files earn one clear line and exit 1" t_report_malformed

# A directory given as a file: the read error, one line, from every reader
# of JSON (util.c's ms_load_json); jansson called it "'[' or '{' expected
# near end of file".
t_directory_given() {
    local f=0 c
    mkdir -p "$T/adir"
    for c in "report $T/adir" "diff $FIX/old.json $T/adir" "profile $T/adir" "flame $T/adir -o $T/x.svg" \
             "graph $T/adir -o $T/x.dot"; do
        # shellcheck disable=SC2086  # $c: the words of a command line
        run "$MS" $c; expect_rc 1 && one_line_err && has "$err" "$T/adir: Is a directory" || { echo "for: memshim $c"; f=1; }
    done
    return $f
}
check "a directory given as a report or profile: one line, 'Is a directory', exit 1" t_directory_given

t_report_fuzz() {
    # fed 400 mutations of the fixtures: every run ends with status 0 or 1,
    # never a sanitizer report.
    asan_build || return 1
    mkdir -p "$T/fuzz"
    "$PY" - "$FIX" "$T/fuzz" <<'EOF' || return 1
import os, random, sys
src, dst = sys.argv[1], sys.argv[2]
seeds = [open(os.path.join(src, f), 'rb').read() for f in sorted(os.listdir(src)) if f.endswith('.json')]
rnd = random.Random(20240605)
tokens = [b'{', b'}', b'[', b']', b'"', b',', b':', b'-1', b'1e999', b'null', b'"\\u0000"', b'18446744073709551616',
          b'"leaks"', b'"stack"', b'"bytes"', b'"kind"', b'[]', b'{}', b'true']
for i in range(400):
    d = bytearray(rnd.choice(seeds))
    for _ in range(rnd.randint(1, 6)):
        op = rnd.randrange(4)
        pos = rnd.randrange(len(d) + 1)
        if op == 0 and d: d[min(pos, len(d) - 1)] = rnd.randrange(256)
        elif op == 1: d[pos:pos] = rnd.choice(tokens)
        elif op == 2: del d[pos:pos + rnd.randint(1, 40)]
        else: d = d[:pos]
    open(os.path.join(dst, '%03d.json' % i), 'wb').write(bytes(d))
EOF
    local bad=0 f
    for f in "$T"/fuzz/*.json; do
        asan_survives report "$f" || bad=1
        asan_survives report --format folded "$f" || bad=1
        asan_survives diff "$FIX/old.json" "$f" || bad=1
    done
    return $bad
}
check "report and diff survive 400 fuzzed reports (ASan/UBSan build)" t_report_fuzz

# ==== diff ==========================================================================
t_diff() {
    run "$MS" diff "$FIX/old.json" "$FIX/new.json"; expect_rc 0 || return 1
    has "$out" "(two runs)" && has "$out" "definitely lost      1000 B -> 5.18 KiB   (+4,300 bytes, +4 blocks)" &&
    has "$out" "+4,500 bytes (+5 blocks) definitely lost: new, 4,500 bytes in 5 blocks" &&
    has "$out" "+100 bytes (+1 block) definitely lost: 200 -> 300 bytes" &&
    has "$out" "1 stack shrank and 1 is gone" && has_not "$out" "old_path" || return 1
    # largest growth first: cache_put before make_node
    local a b; a=$(grep -n cache_put <<<"$out" | cut -d: -f1); b=$(grep -n make_node <<<"$out" | cut -d: -f1)
    [ "$a" -lt "$b" ] || { echo "cache_put (line $a) should come before make_node (line $b)"; return 1; }
    run "$MS" diff --all "$FIX/old.json" "$FIX/new.json"; expect_rc 0 &&
        has "$out" "-200 bytes (-1 block) definitely lost: 700 -> 500 bytes" && has "$out" "gone, was 100 bytes" || return 1
    run "$MS" diff --top 1 "$FIX/old.json" "$FIX/new.json"; expect_rc 0 && has "$out" "cache_put" &&
        has_not "$out" "make_node" && has "$out" "1 more not shown" || return 1
    run "$MS" diff "$FIX/new.json" "$FIX/new.json"; expect_rc 0 && has "$out" "nothing grew and nothing is new"
}
check "diff: growth and new stacks, largest first; --all, --top" t_diff

t_diff_snapshots() {
    # Same pid: unsymbolised frames are told apart by address.
    run "$MS" diff "$FIX/snap1.json" "$FIX/snap2.json"; expect_rc 0 || return 1
    has "$out" "two snapshots of one run" && has "$out" "+800 bytes (+3 blocks) definitely lost: 100 -> 900 bytes" &&
        has "$out" "0x2000" && has_not "$out" "0x1000"
}
check "diff of two snapshots of one run matches frames by address" t_diff_snapshots

# ==== MEMSHIM_STATS ==================================================================
t_stats_json() {
    cd "$T" && rm -f st.*.json
    MEMSHIM_STATS="$T/st.%p.json" LD_PRELOAD=$LIB MEMSHIM_TRACK=0 ./known || return 1
    local f; f=$(ls st.*.json); [ -n "$f" ] || { echo "no stats file"; return 1; }
    ls st.*.json.tmp.* 2>/dev/null && { echo "temporary file left behind"; return 1; }
    "$PY" - "$f" <<'EOF'
import json, sys
s = json.load(open(sys.argv[1]))
assert s["format"] == "memshim-stats" and s["version"] == 1, s["format"]
assert str(s["pid"]) in sys.argv[1]
cls = {c["size"]: c for c in s["classes"]}
c = cls[20480]
assert c["blocks_in_use"] == 77, c
assert c["bytes_in_use"] == 77 * 20480, c
assert c["blocks_in_use"] + c["blocks_free"] == c["pools"] * (65536 // 20480), c   # 3 per 64 KiB span
assert 0 <= c["fragmentation_pct"] <= 100
for k in ("class", "size", "pools", "blocks_in_use", "blocks_free", "bytes_in_use", "fragmentation_pct", "allocs", "frees"):
    assert k in c, k
assert s["huge"]["blocks"] == 3 and s["huge"]["bytes"] == 3 * 1003520, s["huge"]
h = s["heap"]
assert h["bytes_in_use"] >= 77 * 20480 + 3 * 1003520, h
assert h["peak_bytes"] >= h["bytes_in_use"] and h["mapped_bytes"] >= h["bytes_in_use"], h
assert s["os"]["mapped_total"] >= s["os"]["segment_bytes"] > 0
p = s["process"]
assert p["rss"] > 3 * 1000000 and p["peak_rss"] >= p["rss"] and p["uss"] > 0 and p["pss"] >= p["uss"] * 0.5, p
assert "collector" in s
assert s["messages"] == {"total": 0, "not_shown": 0}, s["messages"]
print("ok")
EOF
}
check "MEMSHIM_STATS=*.json: exact figures of known allocations, %p, atomic" t_stats_json

t_stats_text() {
    local out
    out=$(MEMSHIM_STATS=stderr MEMSHIM_TRACK=0 LD_PRELOAD=$LIB "$T/known" 2>&1 >/dev/null)
    has "$out" "memshim: heap statistics (pid" && has "$out" "huge: blocks 3, in use 2.8 MiB, cached " &&
        has "$out" ", peak " && has "$out" "process: rss " && has "$out" ", returned in all " &&
        has "$out" "messages: in all 0, not shown 0" || return 1
    # the row of class 20480: 77 in use, 1576960 bytes
    grep -qE '^ +[0-9]+ +20480 +[0-9]+ +77 +[0-9]+ +1576960 ' <<<"$out" || { echo "no row for 20480 x 77"; echo "$out"; return 1; }
}
check "MEMSHIM_STATS=stderr: the table has the known class row and totals" t_stats_text

t_env_warnings() {
    local out
    out=$(MEMSHIM_RSS_INTERVAL=abc MEMSHIM_LIVE=maybe MEMSHIM_LIVE_INTERVAL=5 MEMSHIM_STATS_SIGNAL=KILL \
          LD_PRELOAD=$LIB MEMSHIM_TRACK=0 /bin/true 2>&1)
    has "$out" "MEMSHIM_RSS_INTERVAL=abc: expected milliseconds" && has "$out" "MEMSHIM_LIVE=maybe: expected 1 or 0" &&
        has "$out" "MEMSHIM_LIVE_INTERVAL=5: expected milliseconds" && has "$out" "MEMSHIM_STATS_SIGNAL=KILL: expected a signal" || return 1
    out=$(MEMSHIM_RSS_LOG=/nonexistent/dir/x.log LD_PRELOAD=$LIB MEMSHIM_TRACK=0 /bin/true 2>&1)
    has "$out" "MEMSHIM_RSS_LOG: cannot open /nonexistent/dir/x.log"
}
check "malformed reporting variables earn a warning naming the variable" t_env_warnings

# ==== the RSS log ===================================================================
check_log() {   # check_log FILE: header, well-formed lines, time and peak never go back
    "$PY" - "$1" <<'EOF'
import sys
lines = open(sys.argv[1]).read().splitlines()
assert lines[0] == "# memshim rss-log 1", lines[0]
assert lines[3] == "# time_ms rss peak_rss heap_in_use heap_mapped", lines[3]
assert lines[-1].startswith("# end samples "), lines[-1]
rows = [list(map(int, l.split())) for l in lines if not l.startswith("#")]
assert all(len(r) == 5 for r in rows)
assert len(rows) >= 3, len(rows)
assert all(b[0] >= a[0] for a, b in zip(rows, rows[1:])), "time goes back"
assert all(b[2] >= a[2] for a, b in zip(rows, rows[1:])), "peak rss goes back"
assert all(r[2] >= r[1] for r in rows), "peak below rss"
EOF
}
t_rss_log() {
    cd "$T" && rm -f grow.*.log
    MEMSHIM_RSS_LOG="$T/grow.%p.log" MEMSHIM_RSS_INTERVAL=10 MEMSHIM_TRACK=0 LD_PRELOAD=$LIB ./grow || return 1
    local f; f=$(ls grow.*.log); check_log "$f" || return 1
    "$PY" - "$f" <<'EOF'
import sys
rows = [list(map(int, l.split())) for l in open(sys.argv[1]) if not l.startswith("#")]
top = max(range(len(rows)), key=lambda i: rows[i][3])
assert rows[top][3] >= 64 << 20, "heap never reached 64 MiB: %d" % rows[top][3]
assert max(r[1] for r in rows) >= 60 << 20, "rss never reached 60 MiB"
after = rows[top + 1:]
assert after and min(r[3] for r in after) < 8 << 20, "heap did not fall after the frees"
assert after[-1][1] < rows[top][1] - (40 << 20), "rss did not fall by 40 MiB after the frees"
assert rows[-1][2] >= 60 << 20, "peak rss forgot the growth"
EOF
    cp "$f" "$T/grow.log"
}
check "RSS log of a program that grows then frees" t_rss_log

t_rss_fork() {
    cd "$T" && rm -f fk.*.log one.log
    MEMSHIM_RSS_LOG="$T/fk.%p.log" MEMSHIM_RSS_INTERVAL=10 MEMSHIM_TRACK=0 LD_PRELOAD=$LIB ./forker || return 1
    local n; n=$(ls fk.*.log | wc -l)
    [ "$n" -eq 2 ] || { echo "expected a log for the parent and one for the child, got $n"; ls; return 1; }
    for f in fk.*.log; do
        check_log "$f" || return 1
        grep -q "^# pid ${f//[!0-9]/} " "$f" || { echo "$f: header names another pid"; return 1; }
    done
    MEMSHIM_RSS_LOG="$T/one.log" MEMSHIM_RSS_INTERVAL=10 MEMSHIM_TRACK=0 LD_PRELOAD=$LIB ./forker || return 1
    check_log one.log && [ "$(grep -c '^# memshim rss-log' one.log)" -eq 1 ] || { echo "the child wrote into the parent's log"; return 1; }
}
check "fork: %p gives the child its own log; without %p the child stays out" t_rss_fork

# ==== live figures: memshim stats / top, the stats signal =============================
start_known() {   # start_known ENV...: known held in the background; sets $pid
    rm -f "$T/ready"
    env "$@" LD_PRELOAD="$LIB" MEMSHIM_TRACK=0 "$T/known" "${KNOWN_MODE:-hold}" "$T/ready" >>"$T/known.log" 2>&1 &
    pid=$!
    echo $pid >>"$T/pids"
    wait_file "$T/ready"
}
t_live_stats() {
    start_known MEMSHIM_LIVE=1 MEMSHIM_LIVE_INTERVAL=50 || return 1
    sleep 0.2
    run "$MS" stats $pid; expect_rc 0 || return 1
    has "$out" "memshim: pid $pid" && has "$out" "known hold" || return 1
    grep -qE '^ +[0-9]+ +20480 +[0-9]+ +77 ' <<<"$out" || { echo "no row 20480 x 77"; echo "$out"; return 1; }
    run "$MS" stats --json $pid; expect_rc 0 || return 1
    "$PY" -c '
import json, sys
s = json.loads(sys.argv[1]); pid = int(sys.argv[2])
assert s["pid"] == pid
c = [c for c in s["classes"] if c["size"] == 20480][0]
assert c["blocks_in_use"] == 77, c
assert s["huge"]["blocks"] == 3 and s["huge"]["bytes"] == 3 * 1003520, s["huge"]
assert s["process"]["rss"] > 0
' "$out" $pid || return 1
    # owned by us, mode 0600
    local fd; fd=$(ls -l /proc/$pid/fd | grep -oE '[0-9]+ -> /memfd:memshim-live' | cut -d' ' -f1)
    [ "$(stat -L -c %a /proc/$pid/fd/$fd)" = 600 ] || { echo "region mode $(stat -L -c %a /proc/$pid/fd/$fd)"; return 1; }
    run "$MS" top -n 2 -d 0.1 $pid; expect_rc 0 && [ "$(grep -c "memshim: pid $pid" <<<"$out")" -eq 2 ] || { echo "$out"; return 1; }
    # the rates count every allocation and free of the size classes, blocks
    # above 32 KiB (no thread cache) included: not "thread-cache" ones
    has "$out" "size-class allocations " && has_not "$out" "thread-cache" || return 1
    kill $pid; wait $pid 2>/dev/null
    run "$MS" stats $pid; expect_rc 1 && one_line_err && has "$err" "no process $pid"
}
check "memshim stats/top read a running process's live figures" t_live_stats

t_live_closed() {   # a daemon closes every descriptor at its start: the region is made again
    KNOWN_MODE=closeall start_known MEMSHIM_LIVE=1 MEMSHIM_LIVE_INTERVAL=50 || return 1
    sleep 0.3
    run "$MS" stats $pid; kill $pid; wait $pid 2>/dev/null
    expect_rc 0 && has "$out" "memshim: pid $pid" || return 1
    grep -qE '^ +[0-9]+ +20480 +[0-9]+ +77 ' <<<"$out" || { echo "no row 20480 x 77"; echo "$out"; return 1; }
}
check "memshim stats after the program closed every descriptor (a daemon's start)" t_live_closed

t_live_absent() {
    start_known MEMSHIM_LIVE=0 || return 1
    run "$MS" stats $pid; kill $pid; wait $pid 2>/dev/null
    expect_rc 1 && one_line_err && has "$err" "process $pid runs memshim but publishes no figures" &&
        has "$err" "without MEMSHIM_LIVE=1, or it is ending" || return 1
    sleep 5 & local s=$!
    run "$MS" stats $s; kill $s; wait $s 2>/dev/null
    expect_rc 1 && one_line_err && has "$err" "process $s publishes no memshim figures (start it with MEMSHIM_LIVE=1"
}
check "memshim stats on a process without live figures: clear error (memshim without them, or no memshim)" t_live_absent

# A command line is bytes: an argument in Latin-1 made --json fail ("cannot
# build the JSON output": jansson takes only UTF-8), and a newline in it
# split the text's first line.  JSON has U+FFFD, text \n.
t_live_program_bytes() {
    local name=$T/kn$'\xe9\n'own json json_rc
    cp "$T/known" "$name" && rm -f "$T/ready" || return 1
    env LD_PRELOAD="$LIB" MEMSHIM_TRACK=0 MEMSHIM_LIVE=1 MEMSHIM_LIVE_INTERVAL=50 "$name" hold "$T/ready" >>"$T/known.log" 2>&1 &
    pid=$!
    echo $pid >>"$T/pids"
    wait_file "$T/ready" || return 1
    sleep 0.2
    run "$MS" stats --json $pid; json=$out json_rc=$rc
    run "$MS" stats $pid; kill $pid; wait $pid 2>/dev/null
    expect_rc 0 || return 1
    [[ $(head -1 <<<"$out") == "memshim: pid $pid  $T/kn"?"\\nown hold $T/ready" ]] || { echo "first line: $(head -1 <<<"$out")"; return 1; }
    rc=$json_rc out=$json; expect_rc 0 || return 1
    "$PY" -c 'import json, sys; p = json.loads(sys.argv[1])["program"]; assert p == sys.argv[2] + "/kn\ufffd\nown hold " + sys.argv[2] + "/ready", repr(p)' "$out" "$T"
}
check "memshim stats of a program named in Latin-1 with a newline: JSON with U+FFFD, text with \\n" t_live_program_bytes

t_stats_signal() {
    rm -f "$T/sig.json"
    start_known MEMSHIM_STATS_SIGNAL=SIGUSR2 MEMSHIM_STATS="$T/sig.json" || return 1
    kill -USR2 $pid
    wait_file "$T/sig.json" || { kill $pid; return 1; }
    kill -0 $pid || { echo "the signal killed the program"; return 1; }
    kill $pid; wait $pid 2>/dev/null
    "$PY" -c 'import json,sys; s=json.load(open(sys.argv[1])); assert s["pid"]==int(sys.argv[2]); assert [c for c in s["classes"] if c["size"]==20480][0]["blocks_in_use"]==77' "$T/sig.json" $pid
}
check "MEMSHIM_STATS_SIGNAL=SIGUSR2 writes the figures and the program goes on" t_stats_signal

# ==== plot ==========================================================================
t_plot() {
    [ -s "$T/grow.log" ] || { echo "no RSS log from the earlier test"; return 1; }
    run "$MS" plot "$T/grow.log" -o "$T/rss.svg"; expect_rc 0 || return 1
    xmllint --noout "$T/rss.svg" || return 1
    local svg; svg=$(cat "$T/rss.svg")
    has "$svg" "time (s)" && has "$svg" "memory (MiB)" && has "$svg" "peak rss" && has "$svg" "heap in use" &&
        has "$svg" "heap mapped" && has "$svg" "<polyline" || return 1
    rsvg-convert "$T/rss.svg" -o "$T/rss.png" || return 1
    "$PY" - "$T/rss.png" <<'EOF'
import struct, sys, zlib
d = open(sys.argv[1], 'rb').read()
assert d[:8] == b'\x89PNG\r\n\x1a\n'
w, h = struct.unpack('>II', d[16:24])
assert (w, h) == (960, 540), (w, h)
# decode and count colours: a drawn chart, not a blank page
idat = b''.join(d[i + 8:i + 8 + struct.unpack('>I', d[i:i + 4])[0]]
                for i in range(8, len(d)) if d[i + 4:i + 8] == b'IDAT')
raw = zlib.decompress(idat)
ch = {2: 3, 6: 4}[d[25]]
assert len(raw) == h * (1 + w * ch)
EOF
    run "$MS" plot "$T/grow.log" --title 'a <title> & more' -o - ; expect_rc 0 && has "$out" "a &lt;title&gt; &amp; more"
}
check "plot: valid SVG with axes, units, legend and peak; renders to a 960x540 PNG" t_plot

t_plot_bad() {
    printf 'hello\n1 2 3\n' >"$T/notlog"
    run "$MS" plot "$T/notlog" -o "$T/x.svg"; expect_rc 1 && one_line_err && has "$err" "not a memshim RSS log" || return 1
    : >"$T/empty.log"
    run "$MS" plot "$T/empty.log" -o "$T/x.svg"; expect_rc 1 && one_line_err || return 1
    printf '# memshim rss-log 1\n0 1 1 1 1\ngarbage\n10 2 2 2 2\n' >"$T/half.log"
    run "$MS" plot "$T/half.log" -o "$T/x.svg"; expect_rc 0 &&
        has "$err" "1 malformed line skipped (first: line 3, expected 5 decimal numbers: time_ms rss" || return 1
    run "$MS" plot "$T/missing.log" -o "$T/x.svg"; expect_rc 1 && one_line_err && has "$err" "No such file"
}
check "plot: malformed or missing logs are clear errors" t_plot_bad

# A program's name is its command line's bytes: cut for the title at 90
# bytes in the middle of a character, or holding an argument in Latin-1, it
# made the SVG invalid UTF-8, which XML readers refuse whole.  The cut falls
# between characters; a byte that is not UTF-8 is drawn as U+FFFD.
t_plot_names() {
    local f long
    long=$(printf 'prog-\xe2\x82\xac%.0s' $(seq 40))   # "prog-EUR" (8 bytes) 40 times
    printf '# memshim rss-log 1\n# program %s\n# site 1 xxxxxx%s\n0 1 1 1 1\n# sites 0 100 1:100\n10 2 2 2 2\n# sites 10 200 1:200\n' \
        "$long" "$long" >"$T/utf8.log"
    printf '# memshim rss-log 1\n# program ./caf\xe9 --x\x01y\n0 1 1 1 1\n10 2 2 2 2\n' >"$T/latin1.log"
    for f in utf8 latin1; do
        run "$MS" plot "$T/$f.log" -o "$T/$f.svg"; expect_rc 0 && xmllint --noout "$T/$f.svg" || return 1
    done
    has "$(cat "$T/utf8.svg")" ">Memory of $(head -c 80 <<<"$long")prog-...</text>" &&
        has "$(cat "$T/latin1.svg")" $'>Memory of ./caf\xef\xbf\xbd --x y</text>' || return 1
    # the site legend's name, at most 68 bytes: cut before the euro sign that byte 68 falls in
    # (it was cut by bytes, and the broken character drawn as U+FFFD)
    has "$(cat "$T/utf8.svg")" ">xxxxxx$(head -c 56 <<<"$long")prog-... <tspan" &&
        has_not "$(cat "$T/utf8.svg")" $'\xef\xbf\xbd'
}
check "plot: a program or site name cut between characters, its bytes that are not UTF-8 as U+FFFD" t_plot_names

# ---- the top sites over time (issue 13: 5): massif.c's two sites growing in turn
t_massif_log() {
    cd "$T" && rm -f massif.*.log
    run env MEMSHIM_RSS_LOG="$T/massif.%p.log" MEMSHIM_RSS_INTERVAL=10 LD_PRELOAD="$LIB" ./massif
    expect_rc 0 && [ -z "$err" ] || { echo "stderr: $err"; return 1; }
    local f; f=$(ls massif.*.log) && mv "$f" "$T/massif.log" || return 1
    local la lb
    la=$(grep -n '^NOINLINE void \*grow_a' "$ROOT/tests/tools/progs/massif.c" | cut -d: -f1)
    lb=$(grep -n '^NOINLINE void \*grow_b' "$ROOT/tests/tools/progs/massif.c" | cut -d: -f1)
    "$PY" - "$T/massif.log" "grow_a (massif.c:$la)" "grow_b (massif.c:$lb)" <<'EOF'
import sys
lines = open(sys.argv[1]).read().splitlines()
assert lines[0] == "# memshim rss-log 1", lines[0]
names, recs, last_sample = {}, [], None
for l in lines[1:]:
    if l.startswith("# site "):
        _, _, i, name = l.split(" ", 3)
        assert i not in names, "site %s named twice" % i
        names[i] = name
    elif l.startswith("# sites "):
        f = l.split()
        t, total = int(f[2]), int(f[3])
        assert last_sample == t, "sites line at %d after the sample at %s" % (t, last_sample)
        v = dict((k, int(b)) for k, b in (x.split(":") for x in f[4:]))
        assert all(k in names for k in v), "a site with no name: %s" % l
        assert list(v.values()) == sorted(v.values(), reverse=True) and total >= sum(v.values()), l
        recs.append((total, v))
    elif not l.startswith("#"):
        last_sample = int(l.split()[0])
ids = {n: i for i, n in names.items()}
a, b = ids[sys.argv[2]], ids[sys.argv[3]]
assert max(v.get(a, 0) for _, v in recs) == 2000000
assert max(v.get(b, 0) for _, v in recs) == 3000000
states = [(v.get(a, 0), v.get(b, 0)) for _, v in recs]
# in turn: a alone, both (the peak), b alone, neither; in that order
at = 0
for w in [(2000000, 0), (2000000, 3000000), (0, 3000000), (0, 0)]:
    assert w in states[at:], (w, states)
    at = states.index(w, at) + 1
peak = max(t for t, _ in recs)
assert 5000000 <= peak < 5100000, peak
EOF
}
check "RSS log with tracking: top sites named once (function, file:line) and their live bytes, exact" t_massif_log

t_massif_plot() {
    [ -s "$T/massif.log" ] || { echo "no log from the earlier test"; return 1; }
    run "$MS" plot "$T/massif.log" -o "$T/massif.svg"; expect_rc 0 && [ -z "$err" ] || return 1
    xmllint --noout "$T/massif.svg" || return 1
    local svg; svg=$(cat "$T/massif.svg")
    has "$svg" '>grow_b (massif.c:' && has "$svg" '>grow_a (massif.c:' && has "$svg" '>other sites<' &&
        has "$svg" '(up to 2.86 MiB)' && has "$svg" '(up to 1.91 MiB)' && has "$svg" 'class="heap-peak"' &&
        has "$svg" '>heap peak 4.7' && has "$svg" "heap in use" || return 1
    # largest band first (bottom, first in the legend), one area per legend entry
    local legend; legend=$(grep -o 'class="site-legend"[^>]*>[a-z_]*' "$T/massif.svg" | sed 's/.*>//' | head -2 | tr '\n' ' ')
    [ "$legend" = "grow_b grow_a " ] || { echo "legend order: $legend"; return 1; }
    [ "$(grep -c 'class="site-area"' "$T/massif.svg")" -eq "$(grep -c 'class="site-legend"' "$T/massif.svg")" ] ||
        { echo "areas and legend entries differ"; return 1; }
    rsvg-convert "$T/massif.svg" -o "$T/massif.png" || return 1
    "$PY" -c 'import struct,sys; d=open(sys.argv[1],"rb").read(); w,h=struct.unpack(">II",d[16:24]); assert d[:4]==b"\x89PNG" and w==960 and h>540,(w,h)' "$T/massif.png" || return 1
    run "$MS" plot "$T/massif.log" --no-sites -o - ; expect_rc 0 && has_not "$out" 'site-area' && has "$out" 'height="540"' || return 1
    ! grep -q '^# site' "$T/grow.log" || { echo "an untracked log has site lines"; return 1; }
    run "$MS" plot "$T/grow.log" --sites -o "$T/x.svg"; expect_rc 1 && one_line_err && has "$err" "no allocation sites"
}
check "plot: stacked areas of the top sites with a legend naming them, the heap peak marked; --sites, --no-sites" t_massif_plot

# "# sites" and "# site" lines hold decimal numbers without sign below 2^64,
# ids below 2^32: %llu took "-5" as 2^64-5 (a heap peak of 16384 PiB) and
# %u wrapped 2^32+1 to 1, renaming site 1.  Such a line is malformed and
# skipped.  And a site is found by its id in a hash table: 240,000 named
# sites and 600 lines of 200 took 20 s searched one by one, now 0.2 s.
t_plot_sites_numbers() {
    printf '# memshim rss-log 1\n0 1 1 1 1\n# site 1 f\n# sites 0 -5 1:-5\n# site 4294967297 g\n%s\n10 2 2 2 2\n%s\n' \
        '# sites 0 9 4294967297:9' '# sites 10 6 1:6' >"$T/neg.log"
    run "$MS" plot "$T/neg.log" -o "$T/neg.svg"; expect_rc 0 && one_line_err || return 1
    has "$err" 'neg.log: 3 malformed lines skipped (first: line 4, expected "# sites TIME_MS TOTAL ID:BYTES...": decimal numbers, ids below 2^32)' || return 1
    local svg; svg=$(cat "$T/neg.svg")
    has "$svg" ">heap peak 6 B at 0.01 s<" && has "$svg" '>f <tspan fill="#666">(up to 6 B)' && has_not "$svg" "PiB" || return 1
    "$PY" - "$T/many.log" <<'EOF' || return 1
import sys
n = 240000
with open(sys.argv[1], "w") as f:
    f.write("# memshim rss-log 1\n")
    f.writelines("# site %d f%d\n" % (i, i) for i in range(n))
    for r in range(600):
        f.write("%d 1000 1000 1000 1000\n# sites %d 1000 %s\n" % (r, r, " ".join("%d:5" % (n - 1 - r * 200 - k) for k in range(200))))
EOF
    timeout 5 "$MS" plot "$T/many.log" -o "$T/many.svg"; rc=$?
    [ $rc -eq 0 ] || { echo "plot of 240,000 sites: status $rc (124: over 5 s)"; return 1; }
}
check "plot: sites lines with a negative number or an id of 2^32 or more are malformed; 240,000 sites in 5 s" t_plot_sites_numbers

# ==== output files never harm the host (issue 9) =====================================
H=$T/hostile
no_memshim_in() {   # no_memshim_in DIR: no file in DIR holds anything memshim writes
    local hit; hit=$(grep -lE 'memshim|==[0-9]+==|LEAK SUMMARY|^[0-9]+ [0-9]+ [0-9]+ [0-9]+ [0-9]+$' "$1"/* 2>/dev/null)
    [ -z "$hit" ] || { echo "memshim wrote into the program's files: $hit"; head -3 $hit; return 1; }
}

t_fifo() {
    mkdir -p "$T/fifo" && cd "$T/fifo" && rm -f ./* && mkfifo ff || return 1
    # with a reader: the report goes through the FIFO, which stays a FIFO
    timeout 30 cat ff >got & local reader=$!
    # cat must be in its open() before the program writes (no reader yet is
    # the second case): on a loaded machine it was not, now and then
    local c i
    for i in $(seq 200); do
        c=$(pgrep -P "$reader" -x cat) && [ "$(cut -d' ' -f1 "/proc/$c/syscall" 2>/dev/null)" = 257 ] && break
        sleep 0.05
    done
    run timeout -k 2 20 env LD_PRELOAD=$LIB MEMSHIM_REPORT=$T/fifo/ff ./../leaky
    wait $reader
    expect_rc 0 && [ -p ff ] || { echo "ff is no longer a FIFO: $(ls -l ff)"; return 1; }
    has "$(cat got)" "LEAK SUMMARY" && has "$(cat got)" "make_nodes" && has_not "$err" "memshim:" || return 1
    [ "$(ls -A)" = "$(printf 'ff\ngot')" ] || { echo "files left beside the FIFO:"; ls -A; return 1; }
    # without a reader: no hang, one line naming it, the report on stderr
    run timeout -k 2 20 env LD_PRELOAD=$LIB MEMSHIM_REPORT=$T/fifo/ff MEMSHIM_STATS=$T/fifo/ff MEMSHIM_TRACK=1 ./../leaky
    expect_rc 0 && [ -p ff ] || return 1
    [ "$(grep -c "^memshim: .*$T/fifo/ff.*no reader" <<<"$err")" -eq 2 ] || { echo "expected one line for the report and one for the stats:"; echo "$err"; return 1; }
    has "$err" "LEAK SUMMARY" && has "$err" "memshim: heap statistics" || return 1
    [ "$(ls -A)" = "$(printf 'ff\ngot')" ] || { echo "files left beside the FIFO:"; ls -A; return 1; }
}
check "a FIFO as report and stats file is written in place; without a reader: one line, stderr, no hang" t_fifo

# Device nodes: only in a private mount namespace, on a tmpfs of our own (a
# scratch directory, then /dev itself, both invisible outside).
cat >"$T/devices.sh" <<'EOF'
set -u
D=$1 f=0
mount -t tmpfs tmpfs "$D" || { echo "cannot mount a tmpfs"; exit 1; }
mknod -m 666 "$D/null" c 1 3 || exit 1
left() { ls -A "$1" | grep -vxF -e null -e stdout -e stderr -e out -e err -e piped; }
# report and statistics aimed at a device node, from a parent and its forked child
LD_PRELOAD=$LIB MEMSHIM_REPORT=$D/null MEMSHIM_STATS=$D/null "$H" fork >"$D/out" 2>"$D/err" || { echo "run failed: $(cat "$D/err")"; f=1; }
[ -c "$D/null" ] || { echo "the device node was replaced: $(ls -l "$D/null")"; f=1; }
[ -z "$(left "$D")" ] || { echo "files left beside the device: $(left "$D")"; f=1; }
[ -s "$D/err" ] && { echo "unexpected stderr: $(head -5 "$D/err")"; f=1; }
# /dev/stdout, /dev/stderr and /proc/self/fd/N on a /dev of our own
mount -t tmpfs tmpfs /dev || { echo "cannot mount a tmpfs on /dev"; exit 1; }
mknod -m 666 /dev/null c 1 3 && ln -s /proc/self/fd/1 /dev/stdout && ln -s /proc/self/fd/2 /dev/stderr || exit 1
LD_PRELOAD=$LIB MEMSHIM_STATS=/dev/stdout MEMSHIM_REPORT=/dev/stderr "$H" fork >"$D/out" 2>"$D/err" || { echo "run failed"; f=1; }
[ "$(grep -c 'memshim: heap statistics' "$D/out")" -eq 2 ] || { echo "expected the parent's and the child's statistics on stdout:"; cat "$D/out"; f=1; }
[ "$(grep -c 'LEAK SUMMARY' "$D/err")" -eq 2 ] || { echo "expected two reports on stderr:"; cat "$D/err"; f=1; }
LD_PRELOAD=$LIB MEMSHIM_STATS=/proc/self/fd/1 MEMSHIM_TRACK=0 "$H" fork | cat >"$D/piped"
[ "$(grep -c 'memshim: heap statistics' "$D/piped")" -eq 2 ] || { echo "/proc/self/fd/1 on a pipe:"; cat "$D/piped"; f=1; }
[ -L /dev/stdout ] && [ -L /dev/stderr ] && [ -c /dev/null ] || { echo "/dev was changed:"; ls -l /dev; f=1; }
[ -z "$(left /dev)" ] || { echo "files left in /dev: $(left /dev)"; f=1; }
exit $f
EOF
t_devices() {
    mkdir -p "$T/ns" && LIB=$LIB H=$H unshare -m --propagation private bash "$T/devices.sh" "$T/ns"
}
if [ "$(id -u)" -ne 0 ]; then
    skip "device nodes as report and stats files" "needs root for mknod in a private mount namespace"
elif ! unshare -m --propagation private true 2>/dev/null; then
    skip "device nodes as report and stats files" "unshare -m is not available here"
else
    check "device nodes, /dev/std* and /proc/self/fd/N are written in place, never replaced (private /dev)" t_devices
fi

t_stderr_taken() {
    mkdir -p "$T/steal" && rm -f "$T/steal"/*
    run env LD_PRELOAD=$LIB MEMSHIM_STATS=stderr "$H" steal "$T/steal"
    expect_rc 0 && no_memshim_in "$T/steal" || return 1
    has "$err" "definitely lost: 100 bytes in 1 block" && has "$err" "memshim: heap statistics" || return 1
    # fd 2 itself handed to a file of the program: nothing goes there
    rm -f "$T/steal"/*
    run env LD_PRELOAD=$LIB MEMSHIM_STATS=stderr MEMSHIM_RSS_LOG=stderr MEMSHIM_RSS_INTERVAL=5 "$H" steal2 "$T/steal"
    expect_rc 0 && no_memshim_in "$T/steal"
}
check "a program that takes memshim's descriptors (and fd 2) never gets reports, stats or RSS lines in its files" t_stderr_taken

t_env_wiped() {
    cd "$T" && rm -f env.stats && echo 'leak:keep_quiet' >env.supp
    run env LD_PRELOAD=$LIB MEMSHIM_STATS=$T/env.stats MEMSHIM_SUPPRESS=$T/env.supp "$H" wipeenv
    expect_rc 0 || return 1
    has "$(cat env.stats 2>&1)" "memshim: heap statistics" || return 1
    has "$err" "definitely lost: 100 bytes in 1 block" && has "$err" "suppressed: 200 bytes in 1 block"
}
check "a program that overwrites its environment keeps its statistics file and suppressions" t_env_wiped

t_rss_closed() {
    mkdir -p "$T/ca" && rm -f "$T/ca"/* "$T/ca.log"
    run env LD_PRELOAD=$LIB MEMSHIM_TRACK=0 MEMSHIM_RSS_LOG=$T/ca.log MEMSHIM_RSS_INTERVAL=10 "$H" closeall "$T/ca"
    expect_rc 0 && no_memshim_in "$T/ca" && check_log "$T/ca.log" || { cat "$T/ca.log"; return 1; }
    "$PY" - "$T/ca.log" <<'EOF'
import sys
rows = [list(map(int, l.split())) for l in open(sys.argv[1]) if not l.startswith("#")]
assert max(r[0] for r in rows) >= 400, "no samples after the descriptors were closed: %s" % rows
assert len(rows) >= 15, "only %d samples" % len(rows)
EOF
}
check "RSS log: the program closes every descriptor; the log goes on to the end" t_rss_closed

t_concurrent_reports() {
    mkdir -p "$T/cc" && rm -f "$T/cc"/*
    run env LD_PRELOAD=$LIB MEMSHIM_REPORT=$T/cc/r.txt "$H" checkers 15
    expect_rc 0 && has_not "$err" "memshim:" || return 1
    # the exit report and every snapshot, each in a file of its own, numbered without a gap
    local n; n=$(ls -A "$T/cc" | grep -c '^r\.txt\.snap[0-9]*$')
    [ "$(ls -A "$T/cc" | sort)" = "$(printf 'r.txt\n'; seq 1 "$n" | sed "s/^/r.txt.snap/" | sort)" ] && [ "$n" -eq 30 ] ||
        { echo "left in the directory:"; ls -A "$T/cc"; return 1; }
    has "$(cat "$T/cc/r.txt")" "memshim leak report (at exit)" && has "$(cat "$T/cc/r.txt")" "LEAK SUMMARY" &&
        has "$(cat "$T/cc/r.txt.snap$n")" "memshim leak report (snapshot)"
}
check "two threads taking leak snapshots together: no lost report, no temporary file left" t_concurrent_reports

t_planted_tmp() {
    mkdir -p "$T/pl" && rm -f "$T/pl"/*
    run timeout -k 2 20 env LD_PRELOAD=$LIB MEMSHIM_TRACK=0 MEMSHIM_STATS=$T/pl/s.txt "$H" plant "$T/pl/s.txt"
    [ "$rc" -ne 124 ] || { echo "hung at exit on a planted FIFO"; return 1; }
    expect_rc 0 && has "$(cat "$T/pl/s.txt")" "memshim: heap statistics" || return 1
    [ "$(stat -c %a "$T/pl/s.txt")" = 600 ] || { echo "mode $(stat -c %a "$T/pl/s.txt")"; return 1; }
    [ "$(find "$T/pl" -type p | wc -l)" -eq 5 ] && [ "$(ls -A "$T/pl" | wc -l)" -eq 6 ] || { ls -lA "$T/pl"; return 1; }
}
check "FIFOs planted at likely temporary names are never opened (stats file, 0600)" t_planted_tmp

# ==== man pages =======================================================================
t_man_lint() {
    local f bad=0
    for f in "$ROOT"/man/memshim.[137]; do
        [ -e "$f" ] || continue
        out=$(mandoc -T lint -W warning "$f" 2>&1) || { echo "$f:"; echo "$out"; bad=1; }
        [ -z "$out" ] || { echo "$out"; bad=1; }
        out=$(groff -ww -man -z "$f" 2>&1)
        [ -z "$out" ] || { echo "groff $f:"; echo "$out"; bad=1; }
    done
    [ -e "$ROOT/man/memshim.1" ] && [ -e "$ROOT/man/memshim.7" ] || { echo "man pages missing"; bad=1; }
    return $bad
}
check "man pages pass mandoc -T lint and groff -ww" t_man_lint

t_man_render() {
    out=$(MANWIDTH=80 man -l "$ROOT/man/memshim.1" 2>&1) || { echo "$out"; return 1; }
    for c in "memshim run" "memshim report" "memshim diff" "memshim stats" "memshim top" "memshim plot" "EXIT STATUS"; do
        has "$out" "$c" || return 1
    done
    out=$(MANWIDTH=80 man -l "$ROOT/man/memshim.7" 2>&1) || { echo "$out"; return 1; }
    # every variable of the table (shim/options.def) is documented: the
    # library's in memshim(7), the command's in memshim(1); all in `help env`
    local v vars cmd_vars help1 help_env
    vars=$(grep -oE '^OPT\(MEMSHIM_[A-Z_]+, [A-Z]+' "$ROOT/shim/options.def" | grep -v ', COMMAND$' | grep -oE 'MEMSHIM_[A-Z_]+')
    cmd_vars=$(grep -oE '^OPT\(MEMSHIM_[A-Z_]+, COMMAND' "$ROOT/shim/options.def" | grep -oE 'MEMSHIM_[A-Z_]+')
    [ "$(wc -w <<<"$vars")" -ge 20 ] || { echo "too few variables read from options.def: $vars"; return 1; }
    help1=$(MANWIDTH=80 man -l "$ROOT/man/memshim.1" 2>&1)
    help_env=$("$MS" help env) || return 1
    for v in $vars; do has "$out" "$v" && has "$help_env" "$v" || return 1; done
    for v in $cmd_vars; do has "$help1" "$v" && has "$help_env" "$v" || return 1; done
    # and no variable is read outside the table
    v=$(grep -ohE '_ms_(getenv|option_text)\("MEMSHIM_[A-Z_]+"' "$ROOT"/shim/*.c | grep -oE 'MEMSHIM_[A-Z_]+' | sort -u)
    for v in $v; do has "$vars" "$v" || { echo "$v is read but not in options.def"; return 1; }; done
}
check "man pages render; memshim(7), memshim(1) and help env document every variable of options.def" t_man_render

t_owners() {
    local R="$T/owners"
    mkdir -p "$R" && cp -r "$ROOT/shim" "$ROOT/collector" "$R/" || return 1
    OWNERS_ROOT=$R "$ROOT/tests/owners.sh" >/dev/null || { echo "the tree as it is fails"; return 1; }
    printf 'static void probe(void) { fprintf(stderr, "x"); }\n' > "$R/collector/probe.c"
    out=$(OWNERS_ROOT=$R "$ROOT/tests/owners.sh") && { echo "a stray fprintf passed"; return 1; }
    has "$out" "only out.c writes output" && has "$out" "collector/probe.c" || return 1
    printf 'static const char *probe(void) { return getenv("HOME"); }\n' > "$R/collector/probe.c"
    out=$(OWNERS_ROOT=$R "$ROOT/tests/owners.sh") && { echo "a stray getenv passed"; return 1; }
    has "$out" "only options.c reads the environment"
}
check "check-deps fails on a getenv or an fprintf outside its owner" t_owners

# ==== make install ======================================================================
t_install() {
    local D="$T/dest" P=/usr/local
    make -s -C "$ROOT" B="$B" install DESTDIR="$D" PREFIX=$P >"$T/install.log" 2>&1 || { cat "$T/install.log"; return 1; }
    local v; v=$(sed -n 's/^#define MEMSHIM_VERSION *"\(.*\)"/\1/p' "$ROOT/include/memshim.h")
    for f in lib/libmemshim.so.$v lib/libmemshim.so.0 lib/libmemshim.so include/memshim.h lib/pkgconfig/memshim.pc \
             bin/memshim share/man/man1/memshim.1 share/man/man7/memshim.7; do
        [ -e "$D$P/$f" ] || { echo "not installed: $P/$f"; return 1; }
    done
    readelf -d "$D$P/lib/libmemshim.so.$v" | grep -q 'SONAME.*libmemshim.so.0' || { echo "no soname"; return 1; }
    local flags
    flags=$(PKG_CONFIG_SYSROOT_DIR="$D" PKG_CONFIG_PATH="$D$P/lib/pkgconfig" PKG_CONFIG_LIBDIR=/nonexistent \
            pkg-config --cflags --libs memshim) || return 1
    # shellcheck disable=SC2086
    cc -o "$T/useapi" "$ROOT/tests/tools/progs/useapi.c" $flags || { echo "flags: $flags"; return 1; }
    out=$(LD_LIBRARY_PATH="$D$P/lib" "$T/useapi") || { echo "$out"; return 1; }
    has "$out" "memshim $v rss" || return 1
    # the installed command finds the installed library
    out=$("$D$P/bin/memshim" run -q -- sh -c 'echo $LD_PRELOAD') || return 1
    [ "$out" = "$(readlink -f "$D$P/lib/libmemshim.so.0")" ] || { echo "preloaded: $out"; return 1; }
    make -s -C "$ROOT" B="$B" uninstall DESTDIR="$D" PREFIX=$P >"$T/install.log" 2>&1 || { cat "$T/install.log"; return 1; }
    local left; left=$(find "$D" -type f -o -type l)
    [ -z "$left" ] || { echo "left after uninstall:"; echo "$left"; return 1; }
}
check "make install/uninstall into a DESTDIR; pkg-config builds and runs a program" t_install

# ==== graph =========================================================================
# The gc_cycle fixture leaves a ring of three Nodes (group 1) and a Pair
# pointing to itself (group 2) alive only through cycles.
svg_nodes() { grep -cE '<title>n[0-9]+</title>' "$1"; }
svg_edges() { grep -cE '<title>n[0-9]+&#45;&gt;n[0-9]+</title>' "$1"; }
t_graph() {
    cc -O0 -g -I"$ROOT/include" -o "$T/gc_cycle" "$ROOT/tests/fixtures/gc_cycle.c" -ldl || return 1
    LD_PRELOAD=$LIB MEMSHIM_REPORT_FORMAT=json MEMSHIM_REPORT="$T/cyc.json" "$T/gc_cycle" >/dev/null || return 1
    run "$MS" graph "$T/cyc.json" -o "$T/cyc.svg"; expect_rc 0 || return 1
    has "$out" "4 objects in 2 groups" || return 1
    xmllint --noout "$T/cyc.svg" || return 1
    local svg n e; svg=$(cat "$T/cyc.svg")
    n=$(svg_nodes "$T/cyc.svg"); e=$(svg_edges "$T/cyc.svg")
    [ "$n" -eq 4 ] && [ "$e" -eq 4 ] || { echo "$n nodes and $e edges, expected 4 and 4"; return 1; }
    [ "$(grep -c 'class="cluster"' "$T/cyc.svg")" -eq 2 ] || { echo "expected 2 clusters"; return 1; }
    # the boxes' first lines: their types
    local types; types=$("$PY" -c '
import sys, xml.etree.ElementTree as ET
ns = {"s": "http://www.w3.org/2000/svg"}
for g in ET.parse(sys.argv[1]).getroot().iter("{http://www.w3.org/2000/svg}g"):
    if g.get("class") == "node" and g.findtext("s:title", namespaces=ns).startswith("n"):
        print(g.find(".//s:text", ns).text)' "$T/cyc.svg" | sort | uniq -c | tr -s ' ' | tr '\n' ';')
    [ "$types" = " 3 Node; 1 Pair;" ] || { echo "box types: $types"; return 1; }
    has "$svg" ">group 1</text>" && has "$svg" ": 3 objects, 120 bytes" && has "$svg" ": 1 object, 40 bytes" &&
        has "$svg" "Node at 0x" && has "$svg" "Objects alive only through reference cycles" || return 1
    rsvg-convert "$T/cyc.svg" -o "$T/cyc.png" || return 1
    "$PY" - "$T/cyc.png" <<'EOF' || return 1
import struct, sys
d = open(sys.argv[1], 'rb').read()
assert d[:8] == b'\x89PNG\r\n\x1a\n'
w, h = struct.unpack('>II', d[16:24])
assert 300 <= w <= 2000 and 150 <= h <= 1500, (w, h)
EOF
    run "$MS" graph "$T/cyc.json" -o "$T/cyc-dot.png"; expect_rc 0 || return 1
    [ "$(head -c 4 "$T/cyc-dot.png" | tail -c 3)" = "PNG" ] || { echo "-o x.png is not a PNG"; return 1; }
    run "$MS" graph "$T/cyc.json" -o "$T/cyc.pdf"; expect_rc 0 && [ "$(head -c 4 "$T/cyc.pdf")" = "%PDF" ] ||
        { echo "-o x.pdf is not a PDF"; return 1; }
    run "$MS" graph "$T/cyc.json" -o - ; expect_rc 0 && has "$out" "<svg" && has "$err" "4 objects in 2 groups"
}
check "graph: the gc_cycle report as SVG (nodes, edges, clusters, types), PNG and PDF" t_graph

t_graph_select() {
    [ -s "$T/cyc.json" ] || { echo "no report from the earlier test"; return 1; }
    run "$MS" graph "$T/cyc.json" --group 2 -o "$T/g2.svg"; expect_rc 0 || return 1
    [ "$(svg_nodes "$T/g2.svg")" -eq 1 ] && [ "$(svg_edges "$T/g2.svg")" -eq 1 ] && has "$(cat "$T/g2.svg")" ">Pair</text>" &&
        has_not "$(cat "$T/g2.svg")" ">Node</text>" || return 1
    run "$MS" graph "$T/cyc.json" --group 7 -o "$T/g7.svg"
    expect_rc 1 && one_line_err && has "$err" "no cycle group 7" && [ ! -e "$T/g7.svg" ] || return 1
    # the biggest group (the ring, 120 bytes) fits in 3; the Pair is left out and said so
    run "$MS" graph "$T/cyc.json" --max-objects 3 -o "$T/m3.svg"; expect_rc 0 || return 1
    has "$out" "not shown (--max-objects 3): 1 smaller group, 1 object, 40 B" || return 1
    [ "$(svg_nodes "$T/m3.svg")" -eq 3 ] && has "$(cat "$T/m3.svg")" "not shown: 1 smaller group" || return 1
    # not even the ring fits in 2: its first two objects
    run "$MS" graph "$T/cyc.json" --max-objects=2 -o "$T/m2.svg"; expect_rc 0 || return 1
    has "$out" "1 object of group 1" && [ "$(svg_nodes "$T/m2.svg")" -eq 2 ] && [ "$(svg_edges "$T/m2.svg")" -eq 1 ] || return 1
    # -o x.dot: the Graphviz input, no dot needed
    run env PATH=/nonexistent "$MS" graph "$T/cyc.json" -o "$T/cyc.dot"; expect_rc 0 || return 1
    head -1 "$T/cyc.dot" | grep -q '^digraph' && [ "$(grep -cE '^ *n[0-9]+ -> n[0-9]+;' "$T/cyc.dot")" -eq 4 ] &&
        [ "$(grep -c 'subgraph cluster_' "$T/cyc.dot")" -eq 2 ] || { cat "$T/cyc.dot"; return 1; }
    dot -Tsvg "$T/cyc.dot" -o /dev/null || return 1
    run env PATH=/nonexistent "$MS" graph "$T/cyc.json" -o "$T/nodot.svg"
    expect_rc 1 && one_line_err && has "$err" "graphviz" && [ ! -e "$T/nodot.svg" ]
}
check "graph --group, --max-objects, -o x.dot; without dot: a clear error" t_graph_select

t_graph_none() {
    printf '{"pid": 5, "program": "p", "leaks": []}' >"$T/nocyc.json"
    printf '{"leaks": [], "cycles": []}' >"$T/nocyc2.json"
    local f
    for f in nocyc nocyc2; do
        run "$MS" graph "$T/$f.json" -o "$T/$f.svg"; expect_rc 0 || return 1
        [ "$(printf '%s\n' "$out" | wc -l)" -eq 1 ] && has "$out" "no reference cycles" || return 1
        xmllint --noout "$T/$f.svg" && has "$(cat "$T/$f.svg")" "No reference cycles" || return 1
        [ "$(svg_nodes "$T/$f.svg")" -eq 0 ] || return 1
    done
}
check "graph of a report without cycles: one line and an SVG with a note" t_graph_none

t_graph_wrong_uses() {
    local fails=0
    while IFS= read -r line; do
        eval "set -- $line"
        usage_case "$@" || fails=1
    done <<'EOF'
graph
graph x.json
graph -o x.svg
graph x.json -o
graph x.json -o ''
graph x.json -o x.txt
graph x.json -o noext
graph x.json -o x.svg --format gif
graph x.json -o x.svg --max-objects 0
graph x.json -o x.svg --max-objects lots
graph x.json -o x.svg --group x
graph x.json -o x.svg --bogus
graph a.json b.json -o x.svg
help graph extra
EOF
    run "$MS" help graph; expect_rc 0 && has "$out" "graph FILE.json -o FILE.svg" || fails=1
    return $fails
}
check "graph: wrong uses exit 2 with a one-line error" t_graph_wrong_uses

graph_bad() {   # graph_bad NAME CONTENT EXPECTED-TEXT
    printf '%s' "$2" >"$T/gbad-$1.json"
    rm -f "$T/gbad.svg"
    run "$MS" graph "$T/gbad-$1.json" -o "$T/gbad.svg"
    expect_rc 1 && one_line_err && has "$err" "$T/gbad-$1.json" && has "$err" "$3" && [ ! -e "$T/gbad.svg" ] &&
        [ -z "$(ls "$T"/gbad.svg.tmp.* 2>/dev/null)" ] || { echo "case $1"; return 1; }
}
t_graph_malformed() {
    local f=0 o='{"addr": "0x10", "type": "Node", "size": 40}'
    graph_bad notjson 'hello' "not valid JSON" || f=1
    graph_bad array '[]' "expected a JSON object" || f=1
    graph_bad other '{"pid": 1}' "not a memshim leak report" || f=1
    graph_bad cycobj '{"leaks": [], "cycles": {}}' '"cycles": expected an array' || f=1
    graph_bad grpnum '{"leaks": [], "cycles": [7]}' "cycles[0]: expected an object" || f=1
    graph_bad noobjs '{"cycles": [{"group": 1, "edges": []}]}' 'cycles[0]: no "objects" array' || f=1
    graph_bad noedges "{\"cycles\": [{\"group\": 1, \"objects\": [$o]}]}" 'cycles[0]: no "edges" array' || f=1
    graph_bad edgesobj "{\"cycles\": [{\"group\": 1, \"objects\": [$o], \"edges\": {}}]}" 'cycles[0].edges: expected an array' || f=1
    graph_bad nogroup "{\"cycles\": [{\"objects\": [$o], \"edges\": []}]}" 'cycles[0]: no "group"' || f=1
    graph_bad strgroup "{\"cycles\": [{\"group\": \"1\", \"objects\": [$o], \"edges\": []}]}" 'cycles[0].group: expected a non-negative integer' || f=1
    graph_bad noaddr '{"cycles": [{"group": 1, "objects": [{"type": "Node", "size": 1}], "edges": []}]}' 'cycles[0].objects[0]: no "addr"' || f=1
    graph_bad numtype '{"cycles": [{"group": 1, "objects": [{"addr": "0x1", "type": 5, "size": 1}], "edges": []}]}' 'cycles[0].objects[0].type: expected a non-empty string' || f=1
    graph_bad strsize '{"cycles": [{"group": 1, "objects": [{"addr": "0x1", "type": "T", "size": "40"}], "edges": []}]}' 'cycles[0].objects[0].size: expected a non-negative integer' || f=1
    graph_bad negsize '{"cycles": [{"group": 1, "objects": [{"addr": "0x1", "type": "T", "size": -1}], "edges": []}]}' 'cycles[0].objects[0].size' || f=1
    graph_bad objnum '{"cycles": [{"group": 1, "objects": [3], "edges": []}]}' 'cycles[0].objects[0]: expected an object' || f=1
    graph_bad edgenum "{\"cycles\": [{\"group\": 1, \"objects\": [$o], \"edges\": [1]}]}" 'cycles[0].edges[0]: expected an object' || f=1
    graph_bad noto "{\"cycles\": [{\"group\": 1, \"objects\": [$o], \"edges\": [{\"from\": \"0x10\"}]}]}" 'cycles[0].edges[0]: no "to"' || f=1
    graph_bad badto "{\"cycles\": [{\"group\": 1, \"objects\": [$o], \"edges\": [{\"from\": \"0x10\", \"to\": \"0x99\"}]}]}" "cycles[0].edges[0].to: 0x99 is not one of group 1's objects" || f=1
    graph_bad dupaddr "{\"cycles\": [{\"group\": 1, \"objects\": [$o, $o], \"edges\": []}]}" 'cycles[0].objects[1].addr: 0x10 appears twice' || f=1
    graph_bad dupgroup '{"cycles": [{"group": 1, "objects": [], "edges": []}, {"group": 1, "objects": [], "edges": []}]}' 'cycles[1].group: group 1 appears twice' || f=1
    run "$MS" graph "$T/does-not-exist.json" -o "$T/gbad.svg"; expect_rc 1 && one_line_err && has "$err" "No such file" || f=1
    return $f
}
check "graph: malformed reports earn one line naming the file and the field, exit 1" t_graph_malformed

# ---- the pictures' output files (plot, flame, graph: util.c ms_output_*) -----
# A FIFO (as a device: graph replaced /dev/null with a regular file, as
# root) is written in place; a file size limit leaves no file and exit 1
# (graph said done over a cut picture: dot ends 0 when its writes fail);
# the output may not be the input; "-" is standard output.
t_picture_outputs() {
    [ -s "$T/cyc.json" ] && [ -s "$T/grow.log" ] || { echo "no report or log from the earlier tests"; return 1; }
    LD_PRELOAD=$LIB MEMSHIM_TRACK=0 MEMSHIM_SAMPLE=1 MEMSHIM_PROFILE="$T/pic.json" "$T/known" >/dev/null || return 1
    local cmd
    for cmd in "graph $T/cyc.json --format svg" "plot $T/grow.log" "flame $T/pic.json"; do
        rm -f "$T/pic.fifo"; mkfifo "$T/pic.fifo"
        cat "$T/pic.fifo" >"$T/pic.fifo.out" &
        run timeout 20 "$MS" $cmd -o "$T/pic.fifo"; expect_rc 0 || { echo "$cmd"; return 1; }
        wait
        [ -p "$T/pic.fifo" ] || { echo "$cmd: the FIFO was replaced"; return 1; }
        xmllint --noout "$T/pic.fifo.out" || { echo "$cmd: what came through the FIFO"; return 1; }
        rm -f "$T/cut.svg"*
        # the limit on memshim alone: its stderr goes through a pipe to a file under none
        run bash -c "set -o pipefail; trap '' XFSZ; (ulimit -f 0; exec $MS $cmd -o $T/cut.svg) 2>&1 >/dev/null | cat >&2"
        expect_rc 1 && one_line_err && has "$err" "cut.svg: File too large" || { echo "$cmd"; return 1; }
        ls "$T"/cut.svg* >/dev/null 2>&1 && { echo "$cmd: left $(ls "$T"/cut.svg*)"; return 1; }
        run "$MS" $cmd -o - ; expect_rc 0 && has "$out" "</svg>" || { echo "$cmd"; return 1; }
        [ -e ./- ] && { echo "$cmd: wrote a file named -"; return 1; }
    done
    cp "$T/grow.log" "$T/self.log"
    run "$MS" plot "$T/self.log" -o "$T/self.log"; expect_rc 1 && one_line_err && has "$err" "is the input file" &&
        cmp -s "$T/grow.log" "$T/self.log" || return 1
    cp "$T/pic.json" "$T/self.json"
    run "$MS" flame "$T/self.json" -o "$T/self.json"; expect_rc 1 && has "$err" "is the input file" &&
        cmp -s "$T/pic.json" "$T/self.json"
}
check "pictures: a FIFO written in place, a cut picture leaves nothing (exit 1), never over the input, - is stdout" t_picture_outputs

# A log whose times are past 2^53 ms drew axis lines until the disk was
# full (the step added nothing); /dev/zero grew the reader's line for ever.
t_plot_extremes() {
    printf '# memshim rss-log 1\n10000000000000000000 1 1 1 1\n10000000000000000001 2 2 2 2\n' >"$T/bigtime.log"
    run timeout 20 "$MS" plot "$T/bigtime.log" -o "$T/bigtime.svg"; expect_rc 0 || return 1
    xmllint --noout "$T/bigtime.svg" && [ "$(stat -c %s "$T/bigtime.svg")" -lt 100000 ] || return 1
    run timeout 20 "$MS" plot /dev/zero -o "$T/zero.svg"; expect_rc 1 && one_line_err && has "$err" "not a memshim RSS log"
}
check "plot: times past 2^53 ms and /dev/zero end at once" t_plot_extremes

. "$ROOT/tests/tools/profile.sh"
# Cycles as a person debugs them (issue 14: 6): each object's allocation
# site and refcount, groups of one shape merged with their count, lost
# cycles of plain blocks drawn too.
t_graph_shapes() {
    cc -O1 -g -I"$ROOT/include" -I"$ROOT/tests/fixtures" -o "$T/cycle_shapes" "$ROOT/tests/fixtures/cycle_shapes.c" -ldl || return 1
    LD_PRELOAD=$LIB MEMSHIM_REPORT="$T/shapes.json" "$T/cycle_shapes" >/dev/null || return 1
    "$PY" - "$T/shapes.json" <<'EOF' || return 1
import json, sys
r = json.load(open(sys.argv[1]))
got = sorted((g["kind"], g["count"], len(g["edges"]),
              tuple(sorted((o["type"], o["size"], o.get("refcount"), o["function"], o["file"].split("/")[-1])
                           for o in g["objects"]))) for g in r["cycles"])
want = sorted([
    ("collector", 3, 1, (("Pair", 40, 1, "make_pair", "cycle_shapes.c"),)),
    ("collector", 1, 3, (("Node", 48, 1, "make_nodes", "cycle_shapes.c"), ("Node", 48, 2, "make_nodes", "cycle_shapes.c"))),
    ("lost_blocks", 2, 3, tuple([("block", 32, None, "make_ring", "cycle_shapes.c")] * 3)),
])
assert got == want, got
assert [g["group"] for g in r["cycles"]] == [1, 2, 3], [g["group"] for g in r["cycles"]]
EOF
    LD_PRELOAD=$LIB MEMSHIM_REPORT="$T/shapes.txt" "$T/cycle_shapes" >/dev/null || return 1
    local t; t=$(sed 's/^==[0-9]*== \{0,1\}//' "$T/shapes.txt")
    has "$t" "5 collector objects in 4 groups are alive only through reference cycles; 2 lost cycles of plain blocks (among the lost records):" &&
    has "$t" ": 1 object, 40 bytes, and 2 more groups of the same shape" &&
    has "$t" ": 3 blocks, 96 bytes, and 1 more group of the same shape" &&
    has "$t" "(48 bytes, refcount 2, allocated at make_nodes (cycle_shapes.c:" &&
    has "$t" "(32 bytes, allocated at make_ring (cycle_shapes.c:" || return 1
    ! grep -qE 'make_chain \(cycle_shapes.c:[0-9]+\)\) ->' <<<"$t" || { echo "the lost chain is no cycle"; return 1; }
    run "$MS" graph "$T/shapes.json" -o "$T/shapes.dot"; expect_rc 0 && has "$out" "6 objects in 3 groups" || return 1
    local d; d=$(cat "$T/shapes.dot")
    has "$d" "<b>group 3</b> (lost plain blocks): 3 blocks, 96 bytes <b>× 2</b> (groups of this shape)" &&
        has "$d" "<b>group 1</b>: 1 object, 40 bytes <b>× 3</b>" && has "$d" "48 bytes · refcount 2 · " &&
        has "$d" "<br/>make_ring (cycle_shapes.c:" || return 1
    [ "$(grep -cE '^ *n[0-9]+ -> n[0-9]+;' "$T/shapes.dot")" -eq 7 ] || { echo "$d"; return 1; }
    run "$MS" graph "$T/shapes.json" -o "$T/shapes.svg"; expect_rc 0 && xmllint --noout "$T/shapes.svg"
}
check "cycles: allocation sites and refcounts, groups of one shape merged with a count, lost cycles of plain blocks (report and graph)" t_graph_shapes

# ==== heap profiles (issue 13) =====================================================
echo "$pass passed, $failed failed"
[ "$failed" -eq 0 ]
