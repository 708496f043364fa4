# memshim - one non-recursive Makefile.  Everything it builds goes to build/.
#   make            build/libmemshim.so and build/memshim
#   make test       unit, API and end-to-end tests (installs missing packages)
#   make demo       preload memshim into a real program and show what it did
#   make bench      benchmark against glibc, mimalloc, jemalloc, tcmalloc, ...
#   make check-cpython  CPython's regression suite without memshim, with its pools, with tracking
#   make install    PREFIX=/usr/local DESTDIR=   (and make uninstall)

CC      ?= cc
PREFIX  ?= /usr/local
DESTDIR ?=
B       := build
DEBUG   ?= 0

WARN    := -Wall -Wextra -Wshadow -Wstrict-prototypes -Wno-unused-parameter
CFLAGS  ?= -O2 -g
CFLAGS  += -std=gnu11 $(WARN) -D_GNU_SOURCE -DMS_DEBUG=$(DEBUG)
SHIM_CFLAGS := -fPIC -fvisibility=hidden -ftls-model=initial-exec \
	-fno-builtin-malloc -fno-builtin-free -fno-builtin-calloc -fno-builtin-realloc \
	-fno-stack-protector -fno-plt
SONAME  := libmemshim.so.0
VERSION := $(shell sed -n 's/^#define MEMSHIM_VERSION *"\(.*\)"/\1/p' include/memshim.h)

SHIM_SRC := $(wildcard shim/*.c)
COLL_SRC := $(wildcard collector/*.c)
# The library's code in link order: what every process runs (the allocator,
# its start and its messages) first, so that it shares the fewest 64 KiB
# windows of the kernel's fault-around and the reports' code, mapped but
# never run without tracking, stays out of the process's RSS.  shim/first.ld
# puts before it what the link would otherwise leave at the end (main's
# caller, libgcc's and libc_nonshared's helpers).  Those files fill the
# first two windows (100 KiB of text; test_host.c checks it): a file whose
# code runs only on the program's call or an option (mallinfo.c, rss.c)
# stays out of the list.
HOT_SRC  := $(addprefix shim/,alloc.c override.c pool.c tcache.c segment.c huge.c meta.c \
              prim_linux.c init.c loader.c options.c out.c hook.c cxx.c sample.c sampler.c \
              modules.c gcglue.c leak.c stats.c profile.c unwind.c scan.c)
HOT_COLL := collector/object.c
LIB_OBJ  := $(patsubst %.c,$(B)/%.o,$(HOT_SRC) $(HOT_COLL) \
              $(filter-out $(HOT_SRC),$(SHIM_SRC)) $(filter-out $(HOT_COLL),$(COLL_SRC)))

UNIT_SRC    := $(wildcard tests/unit/test_*.c)
UNIT_BIN    := $(UNIT_SRC:tests/unit/%.c=$(B)/tests/%)
PRELOAD_SRC := $(wildcard tests/preload/test_*.c)
PRELOAD_BIN := $(PRELOAD_SRC:tests/preload/%.c=$(B)/tests/%)
FIXTURE_LIB := $(wildcard tests/fixtures/lib*.c)
FIXTURE_SRC := $(filter-out $(FIXTURE_LIB),$(wildcard tests/fixtures/*.c))
FIXTURE_BIN := $(FIXTURE_SRC:tests/fixtures/%.c=$(B)/fixtures/%) \
               $(FIXTURE_LIB:tests/fixtures/%.c=$(B)/fixtures/%.so)
FIXTURE_CXX := $(wildcard tests/fixtures/*.cc)
FIXTURE_BIN += $(FIXTURE_CXX:tests/fixtures/%.cc=$(B)/fixtures/%)
BENCH_SRC   := $(wildcard bench/*.c)
BENCH_BIN   := $(BENCH_SRC:bench/%.c=$(B)/bench/%)

.PHONY: all lib tool test test-debug unit preload e2e tools-test export-test demo bench bench-sampler bench-exporter install uninstall clean deps check-deps FORCE \
	check-cpython
all: lib tool

lib: $(B)/libmemshim.so

# Objects depend on the flags they were built with (build/.flags changes
# when they do): `make DEBUG=1` after `make` rebuilds everything.
FLAGS_NOW := $(CC) $(CFLAGS) $(SHIM_CFLAGS)
$(B)/.flags: FORCE
	@mkdir -p $(B); [ "$$(cat $@ 2>/dev/null)" = '$(FLAGS_NOW)' ] || echo '$(FLAGS_NOW)' > $@
FORCE:

$(B)/%.o: %.c $(wildcard shim/*.h shim/*.def collector/*.h include/*.h) Makefile $(B)/.flags
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $(SHIM_CFLAGS) -Iinclude -c $< -o $@

$(B)/libmemshim.so: $(LIB_OBJ) shim/first.ld
	$(CC) -shared -Wl,-soname,$(SONAME) -Wl,-z,nodelete -Wl,-z,start-stop-visibility=hidden -Wl,-T,shim/first.ld -o $@.tmp $(LIB_OBJ) -lpthread -ldl
	@mv $@.tmp $@
	@ln -sf libmemshim.so $(B)/$(SONAME)

# ---- the memshim command (tools/): an ordinary program, reads JSON with jansson
# and pprof's gzip with zlib, serves HTTP with libmicrohttpd (memshim exporter)
TOOL_SRC := $(wildcard tools/*.c)
tool: $(B)/memshim

# shim/prom.c and shim/near.c are freestanding: the exporter renders with the
# library's code, and misspelt options are weighed as misspelt variables are.
# The command looks for the library beside itself, then in LIBDIR: `make
# install` builds it again with the LIBDIR of the PREFIX it installs to.
TOOL_DEPS := $(TOOL_SRC) shim/prom.c shim/near.c shim/near.h shim/outname.h shim/utf8.h $(wildcard tools/*.h) shim/live.h shim/prom.h shim/options.def \
	include/memshim.h Makefile $(B)/.flags
tool_cc = $(CC) $(CFLAGS) -Iinclude -Ishim -DMS_TOOL_LIBDIR='"$(1)"' -o $(2) $(TOOL_SRC) shim/prom.c shim/near.c \
	-ljansson -lmicrohttpd -lz -lm
$(B)/memshim: $(TOOL_DEPS)
	@mkdir -p $(dir $@)
	$(call tool_cc,$(LIBDIR),$@)

# ---- tests ------------------------------------------------------------------
# Unit tests link the objects directly (so they also run on memshim's malloc);
# preload tests link against build/libmemshim.so, as a program using -lmemshim.
deps:
	@tools/install-deps.sh

$(B)/tests/%: tests/unit/%.c $(LIB_OBJ) $(wildcard tests/unit/*.h)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -Iinclude -Ishim -Icollector -o $@ $< $(LIB_OBJ) -lcriterion -lpthread -ldl -lz $(UNIT_FLAGS)

# dwline.c read against libdw itself, here and in a library built with DWARF 4
# in compressed sections
$(B)/tests/test_dwline: UNIT_FLAGS = -ldw -lelf -DMS_TEST_BUILD_DIR='"$(CURDIR)/$(B)"'
$(B)/tests/test_dwline: $(B)/fixtures/libdwarf4.so
$(B)/fixtures/libdwarf4.so: FIXTURE_LDFLAGS = -gdwarf-4 -gz
# the stack cache taken from call sites outside memshim's own module
$(B)/tests/test_stackcache: UNIT_FLAGS = -L$(B)/fixtures -lsc_sites -Wl,-rpath,$(CURDIR)/$(B)/fixtures
$(B)/tests/test_stackcache: $(B)/fixtures/libsc_sites.so

$(B)/tests/%: tests/preload/%.c $(B)/libmemshim.so $(wildcard tests/preload/*.h)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -Iinclude -o $@ $< -L$(B) -Wl,-rpath,'$$ORIGIN/..' -lmemshim -lcriterion -lpthread -ldl

# Fixtures: small target programs; tests/fixtures/libX.c becomes a shared object.
$(B)/fixtures/%.so: tests/fixtures/%.c
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -Iinclude -shared -fPIC -o $@ $< $(FIXTURE_LDFLAGS)

$(B)/fixtures/%: tests/fixtures/%.c $(wildcard tests/fixtures/*.h)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -Iinclude -o $@ $< -lpthread -ldl $(FIXTURE_LDFLAGS)

$(B)/fixtures/libunw_user.so: FIXTURE_LDFLAGS = -lunwind
$(B)/fixtures/own_malloc_alias: FIXTURE_LDFLAGS = -rdynamic
$(B)/fixtures/unwind_in_handler_linked: tests/fixtures/unwind_in_handler.c
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -DLINKED -Iinclude -o $@ $< -lpthread -ldl -lunwind
FIXTURE_BIN += $(B)/fixtures/unwind_in_handler_linked

# libdeep.so finds libdeep_rp.so (libdeep_own.so's copy) only through its RUNPATH.
$(B)/fixtures/libdeep.so: FIXTURE_LDFLAGS = -ldl -Wl,--enable-new-dtags,-rpath,'$$ORIGIN/deepdir'
$(B)/fixtures/deepdir/libdeep_rp.so: $(B)/fixtures/libdeep_own.so
	@mkdir -p $(dir $@)
	cp $< $@
FIXTURE_BIN += $(B)/fixtures/deepdir/libdeep_rp.so

$(B)/fixtures/%: tests/fixtures/%.cc $(wildcard tests/fixtures/*.h)
	@mkdir -p $(dir $@)
	$(CXX) -O2 -g -Wall -o $@ $< -lpthread

# Unit tests run on memshim's own allocator with tracking on; the collector's
# tests leave cycles on purpose, so their exit reports go to files.  The
# collector's suites run again without tracking, where a collection's frees
# take alloc.c's batches instead of track.c's.
GC_UNIT_BIN := $(filter $(B)/tests/test_gc% $(B)/tests/test_weakref,$(UNIT_BIN))
unit: $(UNIT_BIN)
	@rm -f $(B)/tests/unit-leaks.*.txt
	@set -e; for t in $(UNIT_BIN); do echo "== $$t"; \
	    MEMSHIM_REPORT=$(CURDIR)/$(B)/tests/unit-leaks.%p.txt $$t --jobs 2; done
	@set -e; for t in $(GC_UNIT_BIN); do echo "== $$t (MEMSHIM_TRACK=0)"; \
	    MEMSHIM_TRACK=0 $$t --jobs 2; done

# The runners link libmemshim.so themselves; their own exit reports (Criterion
# keeps a little memory) go to files, and the fixtures they start get none of
# these settings (clear_memshim_env in tests/preload/*.h).
preload: $(PRELOAD_BIN) $(FIXTURE_BIN)
	@rm -f $(B)/tests/preload-leaks.*.txt
	@set -e; for t in $(PRELOAD_BIN); do echo "== $$t"; MS_TEST_BUILD=$(CURDIR)/$(B) \
	    MEMSHIM_REPORT=$(CURDIR)/$(B)/tests/preload-leaks.%p.txt $$t --jobs 2; done
	@echo "== $(B)/tests/test_contract, a collection's frees without tracking (their batches: alloc.c)"
	@MS_TEST_BUILD=$(CURDIR)/$(B) MEMSHIM_TRACK=0 $(B)/tests/test_contract --filter 'free/a_collection*'

e2e: lib $(FIXTURE_BIN)
	@MS_TEST_BUILD=$(CURDIR)/$(B) tests/e2e/run.sh

# The command end to end, man pages, install into a scratch DESTDIR; fleet
# export (memshim exporter, MEMSHIM_METRICS, a real Prometheus): export-test.
tools-test: lib tool
	@MS_TEST_BUILD=$(CURDIR)/$(B) tests/tools/run.sh
	@MS_TEST_BUILD=$(CURDIR)/$(B) tests/tools/export.sh

export-test: lib tool
	@MS_TEST_BUILD=$(CURDIR)/$(B) tests/tools/export.sh

# Packages first, as a step of its own (never racing compilation under -j);
# then the suites, and once more on the debug tier's build (test-debug).
test:
	@tools/install-deps.sh
	@$(MAKE) --no-print-directory check-deps unit preload e2e tools-test test-debug

# The debug tier (shim/check.c): the unit, API and end-to-end tests again on
# a build with MS_DEBUG, which walks the whole heap at every leak scan, fork
# and exit, and aborts on a broken invariant.
test-debug:
	@$(MAKE) --no-print-directory B=$(B)/debug DEBUG=1 lib unit preload e2e

# CPython's regression suite (tests/cpython/modules.txt) under Debian's
# /usr/bin/python3, three ways: without memshim, pools only, tracking
# (PYTHONMALLOC=malloc in all three).  10 to 11 minutes on 2 cores, so not
# part of `make test`.  CPY_MODULES="test_os test_gc" runs only those;
# CPY_MODES=pool skips tracking, CPY_MODES=plain,prof,psample runs the heap
# profiler (full and sampled); results, leak reports and profiles in
# build/cpython/.
CPY_JOBS    ?= 2
CPY_MODES   ?= plain,pool,track
CPY_MODULES ?=
check-cpython:
	@tools/install-deps.sh cpython
	@$(MAKE) --no-print-directory lib
	@py=$$(readlink -f /usr/bin/python3) && $$py tests/cpython/run.py --python $$py \
	    --lib $(B)/libmemshim.so --out $(B)/cpython --jobs $(CPY_JOBS) --modes $(CPY_MODES) $(CPY_MODULES)

# ---- demo and bench ------------------------------------------------------------
demo:
	@tools/install-deps.sh
	@$(MAKE) --no-print-directory lib tool $(B)/fixtures/leak_kinds $(B)/fixtures/gc_cycle
	@tools/demo.sh $(B)

$(B)/bench/%: bench/%.c
	@mkdir -p $(dir $@)
	$(CC) -O2 -g -Wall -Iinclude -o $@ $< -lpthread -lm

bench:
	@tools/install-deps.sh
	@$(MAKE) --no-print-directory lib tool $(BENCH_BIN) $(B)/fixtures/leak_modes
	@bench/suite.sh $(B) || true
	@bench/run.sh $(B)
	@bench/sampler.sh $(B)
	@bench/exporter.sh $(B)

bench-exporter: lib tool
	@bench/exporter.sh $(B)

bench-sampler: lib $(B)/bench/sampler $(B)/bench/runner
	@bench/sampler.sh $(B)

# ---- install ----------------------------------------------------------------------
LIBDIR := $(PREFIX)/lib
install: lib $(TOOL_DEPS)
	$(call tool_cc,$(LIBDIR),$(B)/memshim.installed)
	install -d $(DESTDIR)$(LIBDIR) $(DESTDIR)$(PREFIX)/include $(DESTDIR)$(LIBDIR)/pkgconfig \
	    $(DESTDIR)$(PREFIX)/bin
	install -m 0755 $(B)/memshim.installed $(DESTDIR)$(PREFIX)/bin/memshim
	install -m 0755 $(B)/libmemshim.so $(DESTDIR)$(LIBDIR)/libmemshim.so.$(VERSION)
	ln -sf libmemshim.so.$(VERSION) $(DESTDIR)$(LIBDIR)/$(SONAME)
	ln -sf $(SONAME) $(DESTDIR)$(LIBDIR)/libmemshim.so
	install -m 0644 include/memshim.h $(DESTDIR)$(PREFIX)/include/memshim.h
	sed -e 's|@PREFIX@|$(PREFIX)|' -e 's|@VERSION@|$(VERSION)|' tools/memshim.pc.in \
	    > $(DESTDIR)$(LIBDIR)/pkgconfig/memshim.pc
	@if [ -d man ] && ls man/*.[137] >/dev/null 2>&1; then \
	    for m in man/*.[137]; do s=$${m##*.}; install -d $(DESTDIR)$(PREFIX)/share/man/man$$s; \
	    install -m 0644 $$m $(DESTDIR)$(PREFIX)/share/man/man$$s/; done; fi

uninstall:
	rm -f $(DESTDIR)$(LIBDIR)/libmemshim.so $(DESTDIR)$(LIBDIR)/$(SONAME) \
	      $(DESTDIR)$(LIBDIR)/libmemshim.so.$(VERSION) $(DESTDIR)$(PREFIX)/include/memshim.h \
	      $(DESTDIR)$(LIBDIR)/pkgconfig/memshim.pc $(DESTDIR)$(PREFIX)/bin/memshim
	rm -f $(addprefix $(DESTDIR)$(PREFIX)/share/man/man1/,$(notdir $(wildcard man/*.1))) \
	      $(addprefix $(DESTDIR)$(PREFIX)/share/man/man3/,$(notdir $(wildcard man/*.3))) \
	      $(addprefix $(DESTDIR)$(PREFIX)/share/man/man7/,$(notdir $(wildcard man/*.7)))

# The owners the code names (override.c, prim_linux.c, options.c, out.c):
# tests/owners.sh fails on a use outside its owner.
check-deps:
	@tests/owners.sh

clean:
	rm -rf $(B)
