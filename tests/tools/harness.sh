# harness.sh - the shell tests' few words (sourced by run.sh and export.sh;
# both set $ROOT, the tree, and $T, a scratch directory, first).
pass=0 failed=0
ok()   { pass=$((pass + 1)); echo "ok - $1"; }
fail() { failed=$((failed + 1)); echo "FAIL - $1"; [ $# -gt 1 ] && printf '%s\n' "$2" | head -40 | sed 's/^/    /'; }
# check NAME FUNCTION [ARGS]: FUNCTION prints its evidence and returns non-zero on failure.
check() { local name=$1 out; shift; if out=$("$@" 2>&1); then ok "$name"; else fail "$name" "$out"; fi; }
skip() { echo "skip - $1 ($2)"; }

# run CMD...: sets $out, $err, $rc
run() { "$@" >"$T/out" 2>"$T/err"; rc=$?; out=$(cat "$T/out"); err=$(cat "$T/err"); }
expect_rc() { [ "$rc" -eq "$1" ] || { echo "exit status $rc, expected $1"; echo "stdout: ${out:0:2000}"; echo "stderr: $err"; return 1; }; }
one_line_err() {   # stderr is exactly one line starting "memshim: "
    [ "$(printf '%s\n' "$err" | wc -l)" -eq 1 ] && [[ $err == memshim:* ]] ||
        { echo "stderr is not one 'memshim: ' line:"; echo "$err"; return 1; }
}
has()     { grep -qF -- "$2" <<<"$1" || { echo "missing: $2"; echo "in: ${1:0:3000}"; return 1; }; }
has_not() { ! grep -qF -- "$2" <<<"$1" || { echo "unexpected: $2"; echo "in: ${1:0:3000}"; return 1; }; }
wait_file() { for _ in $(seq 1 500); do [ -e "$1" ] && return 0; sleep 0.02; done; echo "no file $1"; return 1; }

# The command built with AddressSanitizer and UBSan, once: $T/memshim-asan.
asan_build() {
    [ -x "$T/memshim-asan" ] ||
        cc -g -O1 -fsanitize=address,undefined -fno-sanitize-recover=undefined -D_GNU_SOURCE -std=gnu11 \
           -I"$ROOT/include" -I"$ROOT/shim" -o "$T/memshim-asan" "$ROOT"/tools/*.c "$ROOT"/shim/prom.c "$ROOT"/shim/near.c \
           -ljansson -lmicrohttpd -lz -lm
}
# asan_survives ARGS...: that build, run with ARGS, ends with status 0, or
# 1 and one line on stderr, and no sanitizer report; else says what it did.
asan_survives() {
    local st
    ASAN_OPTIONS=detect_leaks=0 "$T/memshim-asan" "$@" >/dev/null 2>"$T/asan.err"; st=$?
    if [ $st -gt 1 ] || grep -qE 'Sanitizer|runtime error' "$T/asan.err" ||
       { [ $st -eq 1 ] && [ "$(wc -l <"$T/asan.err")" -ne 1 ]; }; then
        echo "memshim $*: status $st"; head -5 "$T/asan.err"; return 1
    fi
}
