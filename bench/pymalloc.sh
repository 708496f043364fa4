#!/bin/sh
# pymalloc.sh - the python3m row's launcher: runs its arguments with
# PYTHONMALLOC=$PYMALLOC, by default malloc (every Python allocation a malloc
# call, served by the column's allocator).  The pymalloc column sets
# PYMALLOC=pymalloc: CPython's own allocator, timed in the same rounds.
PYTHONMALLOC=${PYMALLOC:-malloc}
export PYTHONMALLOC
exec "$@"
