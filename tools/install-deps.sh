#!/bin/sh
# install-deps.sh - install the Debian packages memshim's build, tests, demo
# and benchmarks need, when they are missing.  Called by `make test`,
# `make demo` and `make bench`; quiet when everything is there.
#   tools/install-deps.sh cpython   (make check-cpython) also installs the
#   regression suite of Debian's python3, libpython3.X-testsuite for the
#   /usr/bin/python3 it finds (never a python3 from /usr/local or pyenv).
set -e
need="gcc make libc6-dev libcriterion-dev libunwind-dev libdw-dev libjansson-dev libmicrohttpd-dev zlib1g-dev pkg-config
mandoc groff-base man-db libxml2-utils graphviz librsvg2-bin sqlite3 git xz-utils python3 valgrind strace jq
libmimalloc2.0 libjemalloc2 libtcmalloc-minimal4 heaptrack g++ prometheus curl golang-go php-cli gdb"
if [ "${1:-}" = cpython ]; then
    "$0" || exit 1                      # python3 itself first: its version names the suite
    ver=$(/usr/bin/python3 -c 'import sys; print("%d.%d" % sys.version_info[:2])') || {
        echo "memshim: /usr/bin/python3 does not run" >&2; exit 1; }
    need="libpython$ver-testsuite"
fi
missing=""
for pkg in $need; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "ok installed" || missing="$missing $pkg"
done
[ -z "$missing" ] && exit 0
echo "memshim: installing missing packages:$missing"
if [ "$(id -u)" -eq 0 ]; then SUDO=""; elif command -v sudo >/dev/null; then SUDO="sudo"; else
    echo "memshim: need root (or sudo) to install:$missing" >&2; exit 1
fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
# shellcheck disable=SC2086
$SUDO apt-get install -y -qq --no-install-recommends $missing >/dev/null
