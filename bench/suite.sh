#!/usr/bin/env bash
# bench/suite.sh - the real programs of the public allocator benchmark
# (mimalloc-bench: cfrac, espresso, barnes), built from the suite's own
# sources at one pinned commit, for bench/run.sh's rows of the same names.
#
#   bench/suite.sh [BUILD_DIR]          default build
#
# The sources are cloned into BUILD_DIR/bench/suite/src from BENCH_SUITE_URL
# (default https://github.com/daanx/mimalloc-bench.git; a local clone or
# mirror works as well) and checked out at SUITE_COMMIT; the programs go to
# BUILD_DIR/bench/suite/, compiled as the suite's CMakeLists.txt compiles
# them (C89 with GNU extensions, warnings off, -O2), with the input files
# they read.  A clone already there is reused.  Without the sources (no
# network, say) it says so in one line and exits 1: run.sh then skips the
# three rows, naming this script.
set -u
BUILD_ARG=${1:-build}
SUITE_COMMIT=ce5784f1cef3d48ddc931479e4899ffad5ab3943   # 2026-07-15
URL=${BENCH_SUITE_URL:-https://github.com/daanx/mimalloc-bench.git}
mkdir -p "$BUILD_ARG/bench/suite" || exit 1
OUT=$(cd "$BUILD_ARG/bench/suite" && pwd)
SRC=$OUT/src
CC=${CC:-cc}
say() { echo "bench/suite.sh: $*" >&2; }

command -v git >/dev/null || { say "git is not installed: no cfrac, espresso or barnes rows"; exit 1; }
if [ "$(git -C "$SRC" rev-parse HEAD 2>/dev/null)" != "$SUITE_COMMIT" ]; then
    rm -rf "$SRC"
    if ! git clone -q --no-checkout --filter=blob:none "$URL" "$SRC" 2>"$OUT/clone.err" ||
       ! git -C "$SRC" checkout -q "$SUITE_COMMIT" -- bench/cfrac bench/espresso bench/barnes 2>>"$OUT/clone.err"; then
        say "could not get mimalloc-bench $SUITE_COMMIT from $URL ($(tail -1 "$OUT/clone.err")): set BENCH_SUITE_URL to a clone"
        rm -rf "$SRC"
        exit 1
    fi
    git -C "$SRC" update-ref HEAD "$SUITE_COMMIT" 2>/dev/null
fi

B=$SRC/bench
FLAGS=(-O2 -std=gnu89 -w -Wno-implicit-function-declaration -Wno-implicit-int -Wno-int-conversion
       -Wno-incompatible-pointer-types)
# build NAME FILES...: one program, rebuilt when a source is newer
build() {
    local name=$1 f newer=0
    shift
    for f in "$@"; do [ "$f" -nt "$OUT/$name" ] && newer=1; done
    [ $newer = 0 ] && [ -x "$OUT/$name" ] && return 0
    "$CC" "${FLAGS[@]}" "$@" -lm -o "$OUT/$name" 2>"$OUT/$name.build.err" ||
        { say "$name did not build ($(tail -1 "$OUT/$name.build.err"))"; return 1; }
}
ok=0
(cd "$B/cfrac" && build cfrac -DNOMEMOPT=1 cfrac.c pops.c pconst.c pio.c pabs.c pneg.c pcmp.c podd.c phalf.c \
    padd.c psub.c pmul.c pdivmod.c psqrt.c ppowmod.c atop.c ptoa.c itop.c utop.c ptou.c errorp.c pfloat.c \
    pidiv.c pimod.c picmp.c primes.c pcfrac.c pgcd.c) || ok=1
(cd "$B/espresso" && build espresso cofactor.c cols.c compl.c contain.c cubestr.c cvrin.c cvrm.c cvrmisc.c \
    cvrout.c dominate.c equiv.c espresso.c essen.c exact.c expand.c gasp.c getopt.c gimpel.c globals.c hack.c \
    indep.c irred.c main.c map.c matrix.c mincov.c opo.c pair.c part.c primes.c reduce.c rows.c set.c setc.c \
    sharp.c sminterf.c solution.c sparse.c unate.c utility.c verify.c) || ok=1
(cd "$B/barnes" && build barnes code.c code_io.c load.c grav.c getparam.c util.c) || ok=1
cp "$B/espresso/largest.espresso" "$OUT/largest.espresso" 2>/dev/null || ok=1
cp "$B/barnes/input" "$OUT/barnes.in" 2>/dev/null || ok=1
exit $ok
