#!/bin/sh
# tests/owners.sh - the rules the code states about its owners, checked on
# the source with comments removed (`make check-deps`; part of `make test`):
#   - override.c alone defines the C library's allocation functions;
#   - prim_linux.c alone makes raw system calls (mmap family, syscall;
#     override.c defines the C library's syscall(), and passes it there);
#   - options.c alone reads the environment (the collector asks it, through
#     gcglue.c);
#   - no file but override.c calls close(): that name is the program's
#     (memshim's own closes are _ms_fd_close's, fds.c, which close by the
#     system call and leave the registry of memshim's descriptors);
#   - no file but override.c calls sigaction(): that name is the program's
#     (memshim's own handlers are set with _ms_sigaction, signals.c, the C
#     library's own, never the relay of the program's handlers);
#   - out.c alone writes output (standard error, reports, tables, logs, the
#     live region); hook.c's write is libunwind's own I/O, passed through,
#     and mallinfo.c's fprintf is malloc_info(3) writing to the program's
#     own stream, as glibc's does.
cd "${OWNERS_ROOT:-$(dirname "$0")/..}" || exit 2
bad=0
code() {   # file -> its code, comments gone, one line per source line kept
    gcc -fpreprocessed -dD -E -P -w "$1" 2>/dev/null | sed "s|^|$1: |"
}
rule() {   # what, regex, allowed files (a regex on the name), lines that do not count (a regex)
    out=$(for f in shim/*.c collector/*.c; do
              echo "$f" | grep -qE "$3" && continue
              code "$f"
          done | grep -E "$2" | grep -vE "${4:-^$}")
    if [ -n "$out" ]; then
        printf 'check-deps: %s, but:\n' "$1"; printf '%s\n' "$out" | sed 's/^/  /'; bad=1
    fi
}
rule "only override.c defines malloc and free" \
     '^[^:]*: MS_EXPORT (void|int|size_t).*\b(malloc|free|calloc|realloc)\(' '^shim/override\.c$'
rule "only prim_linux.c makes raw system calls" '\b(mmap|munmap|madvise|mremap|syscall)\(' '^shim/prim_linux\.c$' \
     '^shim/override\.c: MS_EXPORT long syscall\(long number, \.\.\.\)$'
rule "only options.c reads the environment" '\b(getenv|secure_getenv|_ms_getenv)\(|\benviron\b' '^shim/options\.c$'
rule "memshim closes its descriptors with _ms_fd_close, not close()" '\bclose\(' '^shim/override\.c$'
rule "memshim sets its handlers with _ms_sigaction, not sigaction()" '(^|[^_a-z])sigaction\(' '^shim/override\.c$'
rule "only out.c writes output" \
     '\b(write|pwrite|writev|printf|fprintf|vfprintf|dprintf|puts|fputs|putchar|perror|_ms_os_write)\(' \
     '^shim/(out|prim_linux|hook|mallinfo)\.c$'
exit $bad
