/* test_leaks.c - leak reports of fixture programs with known leaks: exact
 * blocks and bytes per kind, the same figures valgrind memcheck finds, the
 * text and JSON formats, and where reports go. */
#include "leakrun.h"
#include <sys/ioctl.h>

typedef struct { long def_blocks, def_bytes, ind_blocks, ind_bytes, pos_blocks, pos_bytes; } expect_t;

/* Run with a JSON report and check the three lost kinds exactly. */
static char *check_fixture(const char *name, expect_t want)
{
    run_t r;
    char *json = run_reporting(name, true, &r);
    cr_assert(WIFEXITED(r.status) && WEXITSTATUS(r.status) == 0, "%s failed: %s", name, r.err);
    cr_assert(strstr(r.out, "done"), "%s printed: %s", name, r.out);
    cr_assert_not_null(json, "no report written for %s; stderr: %s", name, r.err);
    long b, n;
    cr_assert(json_kind(json, "definitely_lost", &b, &n), "%s", json);
    cr_expect_eq(b, want.def_blocks, "%s definitely lost blocks %ld", name, b);
    cr_expect_eq(n, want.def_bytes, "%s definitely lost bytes %ld", name, n);
    cr_assert(json_kind(json, "indirectly_lost", &b, &n));
    cr_expect_eq(b, want.ind_blocks, "%s indirectly lost blocks %ld", name, b);
    cr_expect_eq(n, want.ind_bytes, "%s indirectly lost bytes %ld", name, n);
    cr_assert(json_kind(json, "possibly_lost", &b, &n));
    cr_expect_eq(b, want.pos_blocks, "%s possibly lost blocks %ld", name, b);
    cr_expect_eq(n, want.pos_bytes, "%s possibly lost bytes %ld", name, n);
    run_free(&r);
    return json;
}

Test(leaks, plain_list_realloc_memalign_interior)
{
    char *j = check_fixture("fixtures/leak_kinds", (expect_t){ 4, 604, 2, 96, 1, 128 });
    long b, n;
    cr_assert(json_kind(j, "still_reachable", &b, &n));
    cr_expect_geq(n, 64, "the global's 64-byte block is still reachable");
    free(j);
}

/* Of the pair, the block made first (first_of_pair, a huge block, whose
 * record comes after the pools' blocks) leads: as memcheck, which takes
 * the lower address; with memshim's order of records alone the 296-byte
 * block made second was the definitely lost one. */
Test(leaks, lost_cycles_have_one_definite_block_each)
{
    char *j = check_fixture("fixtures/leak_cycle", (expect_t){ 3, 600072, 3, 360, 0, 0 });
    char path[] = "/tmp/mscycleXXXXXX";
    int fd = mkstemp(path);
    cr_assert(fd >= 0 && write(fd, j, strlen(j)) == (ssize_t)strlen(j));
    close(fd);
    char cmd[600];
    snprintf(cmd, sizeof cmd,
             "python3 -c 'import json, sys; r=json.load(open(\"%s\")); "
             "k={l[\"stack\"][0].get(\"function\"): (l[\"kind\"], l[\"bytes\"]) for l in r[\"leaks\"] if l[\"stack\"]}; "
             "sys.exit(0 if k.get(\"first_of_pair\")==(\"definitely_lost\", 600000) and "
             "k.get(\"second_of_pair\")==(\"indirectly_lost\", 296) else print(k) or 1)'", path);
    int rc = system(cmd);
    unlink(path);
    cr_expect_eq(rc, 0, "the pair's first block is not the definitely lost one");
    free(j);
}

Test(leaks, globals_static_locals_tls_and_other_thread_stacks_are_roots)
{
    char *j = check_fixture("fixtures/leak_roots", (expect_t){ 0, 0, 0, 0, 0, 0 });
    long b, n;
    cr_assert(json_kind(j, "still_reachable", &b, &n));
    /* 33 (other stack) + 44 (TLS) + 16 + 55 (chain from a global) + 24 (static local) */
    cr_expect_geq(n, 33 + 44 + 16 + 55 + 24);
    free(j);
}

Test(leaks, leaks_in_threads_and_exit_from_another_thread)
{
    free(check_fixture("fixtures/leak_threads", (expect_t){ 20, 1000, 0, 0, 0, 0 }));
}

Test(leaks, every_allocation_function)
{
    free(check_fixture("fixtures/leak_funcs", (expect_t){ 11, 1106, 0, 0, 0, 0 }));
}

/* A realloc is the old block's free and a new block's allocation, also
 * when the block stays where it is (track.c, realloc_in_place): the lost
 * block has the size and the stack of the realloc. */
Test(leaks, a_block_grown_in_place_is_the_reallocs)
{
    run_t r = run_fixture("fixtures/leak_funcs", NULL);
    const char *at = strstr(r.err, "800 bytes in 1 block is definitely lost");
    cr_assert(at, "the block grown to 800 bytes is lost: %s", r.err);
    const char *next = strstr(at + sizeof "800 bytes in", " bytes in ");   /* the next record */
    const char *by = strstr(at, ": grown_in_place (leak_funcs.c:");
    cr_expect(by && (!next || by < next), "allocated by grown_in_place's realloc: %s", r.err);
    cr_expect(!strstr(r.err, "768 bytes"), "nothing of the block before its realloc: %s", r.err);
    run_free(&r);
}

/* The C library's frames keep their function names but get no file:line:
 * its DWARF (separate, compressed) cost a short program tens of
 * milliseconds and megabytes at exit.  Since memshim took exit() over,
 * &exit named memshim, not the C library, and every report and profile
 * with a libc frame read libc's DWARF (strdup's frame showed strdup.c:42;
 * a profile took ~34 ms more CPU). */
Test(leaks, c_library_frames_are_named_without_lines)
{
    run_t r = run_fixture("fixtures/leak_funcs", NULL);
    const char *at = strstr(r.err, "strdup");
    cr_assert(at, "a frame in strdup: %s", r.err);
    cr_expect(!strstr(r.err, "strdup.c:"), "no line of glibc's sources: %s", r.err);
    cr_expect(strstr(r.err, "libc.so.6+0x"), "the C library's frames by module and offset: %s", r.err);
    run_free(&r);
}

Test(leaks, in_a_dlopened_library)
{
    char *j = check_fixture("fixtures/leak_dlopen", (expect_t){ 1, 77, 0, 0, 0, 0 });
    cr_expect(strstr(j, "libleak_dl") || strstr(j, "run"), "the stack names the library or its caller");
    free(j);
}

/* libelf keeps the files it read for a report mapped rw-p: memshim's
 * memory, no root.  A block whose one address sits in such a mapping is
 * lost (before the fix: still reachable, "checks 1 1"). */
/* The reports of a fixture that checks itself, unread: in the build
 * directory (`make preload` clears them), one a check (%n). */
static const char *snapshot_reports(void)
{
    static char env[4200];
    snprintf(env, sizeof env, "MEMSHIM_REPORT=%s", path_in_build("tests/preload-leaks.%p.%n.txt"));
    return env;
}

Test(leaks, what_the_symbolizer_maps_is_no_root, .timeout = 120)
{
    const char *env[] = { snapshot_reports(), NULL };
    run_t r = run_fixture("fixtures/leak_symbolizer_maps", env);
    cr_assert(WIFEXITED(r.status) && WEXITSTATUS(r.status) == 0, "failed: %s", r.err);
    cr_expect(strstr(r.out, "checks 1 2\n") != NULL,
              "the planted block is lost at the second check (and the first check's one block): %s", r.out);
    run_free(&r);
}

/* Big blocks are read by their pages that hold data: the addresses deep
 * inside are found, the pages never written are not faulted in (before:
 * all 16,384 of the 64 MiB block's pages resident after the check, 2
 * before it). */
Test(leaks, big_blocks_are_read_where_the_program_wrote_them, .timeout = 120)
{
    const char *env[] = { snapshot_reports(), NULL };
    run_t r = run_fixture("fixtures/leak_untouched", env);
    cr_assert(WIFEXITED(r.status) && WEXITSTATUS(r.status) == 0, "failed: %s", r.err);
    int lost = -1;
    unsigned long resident = 0, pages = 0, before = 0;
    cr_assert(sscanf(r.out, "lost %d, resident %lu of %lu pages, %lu before", &lost, &resident, &pages, &before) == 4,
              "%s", r.out);
    cr_expect_eq(lost, 0, "both small blocks found through the big ones' pages: %s", r.out);
    cr_expect(pages > 16000 && resident <= before + 8, "the scan left the unwritten pages alone: %s", r.out);
    run_free(&r);
}

Test(leaks, clean_program_reports_nothing)
{
    free(check_fixture("fixtures/leak_none", (expect_t){ 0, 0, 0, 0, 0, 0 }));
    run_t r = run_fixture("fixtures/leak_none", NULL);
    cr_expect_null(strstr(r.err, "memshim"), "a clean program gets no report on stderr: %s", r.err);
    run_free(&r);
}

Test(leaks, forked_child_writes_its_own_report)
{
    char dir[] = "/tmp/msforkXXXXXX";
    cr_assert(mkdtemp(dir));
    char env_rep[4200];
    snprintf(env_rep, sizeof env_rep, "MEMSHIM_REPORT=%s/leaks.%%p.json", dir);
    const char *env[] = { env_rep, "MEMSHIM_REPORT_FORMAT=json", NULL };
    run_t r = run_fixture("fixtures/leak_fork", env);
    cr_assert(WIFEXITED(r.status) && WEXITSTATUS(r.status) == 0);
    char cmd[4300];
    snprintf(cmd, sizeof cmd, "ls %s/leaks.*.json | wc -l", dir);
    FILE *p = popen(cmd, "r");
    int files = 0;
    cr_assert(fscanf(p, "%d", &files) == 1);
    pclose(p);
    cr_expect_eq(files, 2, "one report per process");
    snprintf(cmd, sizeof cmd, "cat %s/leaks.*.json", dir);
    p = popen(cmd, "r");
    char all[1 << 16];
    size_t len = fread(all, 1, sizeof all - 1, p);
    all[len] = 0;
    pclose(p);
    cr_expect(strstr(all, "\"definitely_lost\": {\"blocks\": 1, \"bytes\": 111}"), "parent: %s", all);
    cr_expect(strstr(all, "\"definitely_lost\": {\"blocks\": 2, \"bytes\": 222}"), "child: %s", all);
    cr_expect(strstr(all, "\"inherited\": {\"blocks\": 1, \"bytes\": 111}"),
              "the child leaves the parent's lost block to the parent: %s", all);
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    system(cmd);
    run_free(&r);
}

/* How many times `what` is in text. */
static int times_in(const char *text, const char *what)
{
    int n = 0;
    for (const char *at = text; (at = strstr(at, what)); at++) n++;
    return n;
}

/* How many JSON reports all[] holds, one after another. */
static int reports_in(const char *all) { return times_in(all, "\"leaks\""); }

/* What `cmd` prints, into all[]: how many reports. */
static int read_all(const char *cmd, char *all, size_t size)
{
    FILE *p = popen(cmd, "r");
    size_t len = p ? fread(all, 1, size - 1, p) : 0;
    all[len] = 0;
    if (p) pclose(p);
    return reports_in(all);
}

/* Runs `leak_fork MODE` with a JSON report per process in a new directory
 * and waits (the child goes on alone) until `want` reports are there: all
 * of them, one after another, in all[]. */
static void daemon_reports(const char *mode, int want, char *all, size_t size)
{
    char dir[] = "/tmp/msdaemonXXXXXX";
    cr_assert(mkdtemp(dir));
    char env_rep[4200], cmd[4300];
    snprintf(env_rep, sizeof env_rep, "MEMSHIM_REPORT=%s/leaks.%%p.json", dir);
    const char *env[] = { env_rep, "MEMSHIM_REPORT_FORMAT=json", NULL };
    char *argv[] = { path_in_build("fixtures/leak_fork"), (char *)mode, NULL };
    run_t r = run_with(true, NULL, argv, env);
    cr_assert(WIFEXITED(r.status) && WEXITSTATUS(r.status) == 0);
    snprintf(cmd, sizeof cmd, "cat %s/leaks.*.json 2>/dev/null", dir);
    for (int i = 0; i < 200; i++) {
        usleep(50 * 1000);
        if (read_all(cmd, all, size) >= want) break;
    }
    usleep(200 * 1000);                  /* a report more than wanted would be there by now */
    read_all(cmd, all, size);
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    system(cmd);
    run_free(&r);
}

/* A parent that ends with daemon(3) after fork(), whose _exit is the C
 * library's own call, writes no report: the child counts the blocks the
 * parent lost before the fork, as valgrind does.  It used to leave them
 * out "for the parent's report", so a leak made before daemon() was in no
 * report (found by a helper on memcached -d). */
Test(leaks, a_parent_ending_without_a_report_leaves_its_blocks_to_the_child)
{
    static char all[1 << 16];
    daemon_reports("daemon3", 1, all, sizeof all);
    cr_expect_eq(reports_in(all), 1, "the child's report alone: %s", all);
    cr_expect(strstr(all, "\"definitely_lost\": {\"blocks\": 3, \"bytes\": 333}"), "the child: %s", all);
    cr_expect(strstr(all, "\"inherited\": {\"blocks\": 0, \"bytes\": 0}"), "nothing left out: %s", all);
}

/* A parent that calls _exit after fork() itself (a daemon's own
 * daemonize(), memcached's) writes its report there, as valgrind does:
 * its block lost before the fork is in it, and the child's report counts
 * the child's two and leaves that one out (inherited).  Every block is in
 * one report. */
Test(leaks, a_parent_ending_with__exit_reports_its_blocks_and_the_child_its_own)
{
    static char all[1 << 16];
    daemon_reports("daemon", 2, all, sizeof all);
    cr_expect_eq(reports_in(all), 2, "the parent's and the child's: %s", all);
    cr_expect(strstr(all, "\"definitely_lost\": {\"blocks\": 1, \"bytes\": 111}"), "the parent: %s", all);
    cr_expect(strstr(all, "\"definitely_lost\": {\"blocks\": 2, \"bytes\": 222}"), "the child: %s", all);
    cr_expect(strstr(all, "\"inherited\": {\"blocks\": 1, \"bytes\": 111}"), "the parent's block left out: %s", all);
}

/* ---- _exit --------------------------------------------------------------------- */

/* FIXTURE MODE with env, preloaded. */
static run_t fixture_mode(const char *fixture, const char *mode, const char *const env[])
{
    char *argv[] = { path_in_build(fixture), (char *)mode, NULL };
    return run_with(true, NULL, argv, env);
}

/* One report, of the 77 bytes the fixture lost, and "unflushed" left in
 * its buffer, unwritten, as _exit and a signal leave it. */
static void expect_77_lost_unflushed(const run_t *r, const char *mode)
{
    cr_expect_eq(times_in(r->err, "LEAK SUMMARY"), 1, "%s: one report: %s", mode, r->err);
    cr_expect(strstr(r->err, "definitely lost: 77 bytes in 1 block"), "%s: the report: %s", mode, r->err);
    cr_expect(!strstr(r->out, "unflushed"), "%s: the buffer was written: %s", mode, r->out);
}

static run_t underscore_exit(const char *mode, const char *const env[])
{
    return fixture_mode("fixtures/leak_underscore_exit", mode, env);
}

/* leak_underscore_exit MODE with env ended with `status`, one report (the
 * 77 bytes lost) and "unflushed" left in its buffer, unwritten. */
static void expect_underscore_exit(const char *mode, const char *const env[], int status)
{
    run_t r = underscore_exit(mode, env);
    cr_expect(WIFEXITED(r.status) && WEXITSTATUS(r.status) == status, "%s: status %d (want %d): %s", mode,
              r.status, status, r.err);
    expect_77_lost_unflushed(&r, mode);
    run_free(&r);
}

/* _exit(2) ends the process without exit handlers: the report is written
 * all the same (valgrind's is), the status is the program's, and what the
 * program left in its stdio buffers stays unwritten, as _exit leaves it. */
Test(leaks, _exit_writes_the_report_and_leaves_the_programs_buffers)
{
    const char *env[] = { NULL };
    expect_underscore_exit("", env, 5);
}

/* MEMSHIM_EXITCODE then ends the process with its status, its buffers
 * unwritten all the same (at exit() memshim writes them first). */
Test(leaks, _exit_with_an_exit_code_for_leaks_keeps_the_buffers_unwritten)
{
    const char *env[] = { "MEMSHIM_EXITCODE=9", NULL };
    expect_underscore_exit("", env, 9);
}

/* A forked child's _exit writes nothing (its heap is a copy of its
 * parent's, its 33 bytes lost are the child's own): the parent's _exit
 * writes the one report. */
Test(leaks, _exit_of_a_forked_child_writes_no_report)
{
    const char *env[] = { NULL };
    expect_underscore_exit("child", env, 5);
}

/* syscall(SYS_exit_group) through the C library is _exit. */
Test(leaks, exit_group_through_syscall_writes_the_report)
{
    const char *env[] = { NULL };
    expect_underscore_exit("syscall", env, 5);
}

/* The statistics too, without tracking. */
Test(leaks, _exit_writes_the_statistics)
{
    const char *env[] = { "MEMSHIM_TRACK=0", "MEMSHIM_STATS=stderr", NULL };
    run_t r = underscore_exit("", env);
    cr_expect(WIFEXITED(r.status) && WEXITSTATUS(r.status) == 5, "status %d: %s", r.status, r.err);
    cr_expect(strstr(r.err, "heap statistics"), "the statistics: %s", r.err);
    cr_expect_eq(times_in(r.err, "LEAK SUMMARY"), 0, "no leak report without tracking: %s", r.err);
    run_free(&r);
}

/* ---- a signal left to its default action ------------------------------------ */

static run_t default_signal(const char *mode, const char *const env[])
{
    return fixture_mode("fixtures/leak_default_signal", mode, env);
}

/* leak_default_signal MODE with env ended killed by `sig`, after one report
 * (the 77 bytes lost, the signal named in it, and whether the stack
 * overflowed), "unflushed" left unwritten in its buffer as the signal
 * leaves it, and sigaction() showed the default with no flags, as the
 * process began with it, and sigaltstack() no signal stack unless the
 * program set one (`altstack`: "none" or "set"). */
static void expect_ending(const char *mode, const char *const env[], int sig, bool overflow, const char *altstack)
{
    run_t r = default_signal(mode, env);
    cr_expect(WIFSIGNALED(r.status) && WTERMSIG(r.status) == sig, "%s: status %#x (want killed by %d): %s", mode,
              r.status, sig, r.err);
    expect_77_lost_unflushed(&r, mode);
    char said[128];
    snprintf(said, sizeof said, "the process ends on SIG%s (its default action), after this report%s\n",
             sigabbrev_np(sig), overflow ? ": its stack overflowed" : "");
    cr_expect(strstr(r.err, said), "%s: the report names the signal (%s): %s", mode, said, r.err);
    cr_expect(strstr(r.err, "action TERM dfl 0 SEGV dfl 0\n"), "%s: sigaction() shows: %s", mode, r.err);
    snprintf(said, sizeof said, "altstack %s\n", altstack);
    cr_expect(strstr(r.err, said), "%s: sigaltstack() shows (want %s): %s", mode, said, r.err);
    run_free(&r);
}

static void expect_default_signal(const char *mode, const char *const env[], int sig)
{
    expect_ending(mode, env, sig, false, "none");
}

/* SIGTERM at its default (a timeout's, a service manager's): the report
 * first, then the process ends killed by it, as valgrind's does. */
Test(leaks, a_signal_at_its_default_action_writes_the_report_then_ends_the_process)
{
    const char *env[] = { NULL };
    expect_default_signal("term", env, SIGTERM);
}

/* A handler the program set, then the default again (signal(SIG_DFL)). */
Test(leaks, a_signal_set_back_to_its_default_writes_the_report)
{
    const char *env[] = { NULL };
    expect_default_signal("reset", env, SIGTERM);
}

/* ^C's SIGINT sent by another process while the program waits. */
Test(leaks, a_signal_from_another_process_writes_the_report)
{
    const char *env[] = { NULL };
    expect_default_signal("outside", env, SIGINT);
}

/* A forked child killed by SIGTERM writes nothing (a copy of its parent's
 * heap, as at its _exit): the fixture checks it died killed by SIGTERM. */
Test(leaks, a_forked_child_killed_by_a_signal_writes_no_report)
{
    const char *env[] = { NULL };
    expect_default_signal("child", env, SIGTERM);
}

/* The signal sent to a thread that allocates without end: it often comes in
 * while that thread holds an allocator lock, where the report would wait
 * for it; put off until the lock is released, it still gives the report,
 * and reads the interrupted registers (no block the thread holds only in a
 * register is lost).  Twelve runs. */
Test(leaks, a_signal_to_a_thread_inside_the_allocator_writes_the_report, .timeout = 120)
{
    const char *env[] = { NULL };
    for (int i = 0; i < 12; i++) expect_default_signal("busy", env, SIGTERM);
}

/* MEMSHIM_EXITCODE does not replace the signal: the process still ends
 * killed by it. */
Test(leaks, a_signal_at_its_default_keeps_its_status_over_the_exit_code)
{
    const char *env[] = { "MEMSHIM_EXITCODE=9", NULL };
    expect_default_signal("term", env, SIGTERM);
}

/* A recursion without end overflows the main thread's stack: the kernel
 * finds no room there for a handler, and ended the process with no report.
 * memshim's signal stack takes the handler; the report says the stack
 * overflowed (valgrind reports there too).  sigaltstack() shows none. */
Test(leaks, a_stack_overflow_writes_the_report_then_ends_the_process)
{
    const char *env[] = { NULL };
    expect_ending("overflow", env, SIGSEGV, true, "none");
}

/* The stack pointer it was interrupted at lies below the stack's mapping
 * (the kernel gave it no more): that mapping is still the thread's stack,
 * scanned from there, and the block a frame of it holds is kept alive by
 * that frame's function. */
Test(leaks, a_stack_overflow_keeps_what_the_stack_holds)
{
    const char *env[] = { "MEMSHIM_SHOW=all", NULL };
    run_t r = default_signal("overflow", env);
    expect_77_lost_unflushed(&r, "overflow");
    const char *held = strstr(r.err, "55 bytes in 1 block is still reachable");
    cr_assert(held, "the block the frame holds: %s", r.err);
    const char *next = strstr(held, "\n==");        /* its record ends at the next blank report line */
    next = next ? strstr(next + 1, "==\n") : NULL;
    const char *by = strstr(held, "kept alive by: thread ");
    const char *eol = by ? strchr(by, '\n') : NULL, *in = by ? strstr(by, "'s stack in overflow_holding (") : NULL;
    cr_expect(by && (!next || by < next) && in && (!eol || in < eol), "kept alive by overflow_holding's frame: %s",
              held);
    run_free(&r);
}

/* The same where the program set a signal stack of its own, of 16 KiB: the
 * handler comes in there, and the end-of-process work runs on a stack of
 * memshim's. */
Test(leaks, a_stack_overflow_with_the_programs_own_signal_stack_writes_the_report)
{
    const char *env[] = { NULL };
    expect_ending("ownstack", env, SIGSEGV, true, "set");
}

/* The kernel holds memshim's handler only where there is work to do at
 * exit: with tracking off and no statistics nor profile, the default
 * itself; with statistics, they come before the signal ends the process. */
Test(leaks, a_signal_at_its_default_is_left_to_the_kernel_without_work_at_exit)
{
    const char *none[] = { "MEMSHIM_TRACK=0", NULL };
    run_t r = default_signal("term", none);
    cr_expect(WIFSIGNALED(r.status) && WTERMSIG(r.status) == SIGTERM, "status %#x: %s", r.status, r.err);
    cr_expect(strstr(r.err, "kernel TERM dfl\n"), "the kernel's action: %s", r.err);
    cr_expect(!strstr(r.err, "heap statistics") && !strstr(r.err, "LEAK SUMMARY"), "nothing at exit: %s", r.err);
    run_free(&r);
    const char *stats[] = { "MEMSHIM_TRACK=0", "MEMSHIM_STATS=stderr", NULL };
    r = default_signal("term", stats);
    cr_expect(WIFSIGNALED(r.status) && WTERMSIG(r.status) == SIGTERM, "status %#x: %s", r.status, r.err);
    cr_expect(strstr(r.err, "kernel TERM handler\n"), "the kernel's action: %s", r.err);
    cr_expect(strstr(r.err, "action TERM dfl 0 SEGV dfl 0\n"), "sigaction() shows: %s", r.err);
    cr_expect(strstr(r.err, "heap statistics"), "the statistics: %s", r.err);
    run_free(&r);
}

/* FIXTURE MODE (NULL: no argument) started preloaded, its standard error
 * the write end of a new pipe and stdout /dev/null; the read end in *rd,
 * or closed at once if rd is NULL (a reader that has gone: `prog 2>&1 |
 * head`, head done).  Killed by SIGALRM after `limit` seconds. */
static pid_t start_to_pipe(const char *fixture, const char *mode, int *rd, unsigned limit)
{
    int p[2];
    cr_assert(pipe(p) == 0);
    if (!rd) close(p[0]);
    pid_t pid = fork();
    cr_assert(pid >= 0);
    if (pid == 0) {
        int null = open("/dev/null", O_WRONLY);
        dup2(null, 1);
        dup2(p[1], 2);
        if (rd) close(p[0]);
        unsetenv("LD_PRELOAD");
        clear_memshim_env();
        setenv("LD_PRELOAD", path_in_build("libmemshim.so"), 1);
        alarm(limit);
        execl(path_in_build(fixture), fixture, mode, (char *)NULL);
        _exit(127);
    }
    close(p[1]);
    if (rd) *rd = p[0];
    return pid;
}

static int status_of(pid_t pid)
{
    int st;
    cr_assert(waitpid(pid, &st, 0) == pid);
    return st;
}

/* The report written where the reader has gone fails: the program's
 * status stays its own.  The write raised SIGPIPE, which killed the
 * program with status 141 at its exit report, and at its _exit's. */
Test(leaks, a_report_to_a_pipe_without_reader_keeps_the_programs_status)
{
    int st = status_of(start_to_pipe("fixtures/leak_shapes", "exit", NULL, 120));
    cr_expect(WIFEXITED(st) && WEXITSTATUS(st) == 0, "leak_shapes exit: status %#x (want 0)", st);
    st = status_of(start_to_pipe("fixtures/leak_underscore_exit", "", NULL, 120));
    cr_expect(WIFEXITED(st) && WEXITSTATUS(st) == 5, "leak_underscore_exit: status %#x (want 5)", st);
}

/* A standard error the program made non-blocking (leak_nonblock_stderr),
 * read by a reader slower than the report: the whole report comes, the
 * writes waiting as on a blocking descriptor.  The reader waits until the
 * pipe is full first; the report was then cut at the first write that
 * found no room. */
Test(leaks, a_report_to_a_non_blocking_pipe_read_slowly_comes_whole, .timeout = 120)
{
    int rd;
    pid_t pid = start_to_pipe("fixtures/leak_nonblock_stderr", NULL, &rd, 120);
    int queued = 0;
    for (int i = 0; i < 2000 && queued < 48 * 1024; i++) {     /* 20 s at most */
        usleep(10 * 1000);
        cr_assert(ioctl(rd, FIONREAD, &queued) == 0);
    }
    cr_expect_geq(queued, 48 * 1024, "the report never filled the pipe (%d bytes)", queued);
    usleep(100 * 1000);
    size_t cap = 1 << 20, len = 0;
    char *text = malloc(cap);
    ssize_t r;
    while ((r = read(rd, text + len, cap - 1 - len)) > 0) {
        len += (size_t)r;
        if (len + 1 == cap) text = realloc(text, cap *= 2);
    }
    text[len] = 0;
    close(rd);
    int st = status_of(pid);
    cr_expect(WIFEXITED(st) && WEXITSTATUS(st) == 0, "status %#x", st);
    cr_expect_eq(times_in(text, "loss record"), 512, "records in %zu bytes of report", len);
    cr_expect(strstr(text, "definitely lost: 16384 bytes in 512 blocks"), "the summary, in %zu bytes", len);
    free(text);
}

/* The same pipe never read (its reader a thread of the program's that has
 * ended, say): memshim waits ten seconds for room, then drops the rest,
 * and the program ends with its own status instead of hanging at exit. */
Test(leaks, a_report_to_a_non_blocking_pipe_nobody_reads_does_not_hang, .timeout = 90)
{
    int rd;
    int st = status_of(start_to_pipe("fixtures/leak_nonblock_stderr", NULL, &rd, 80));
    cr_expect(WIFEXITED(st) && WEXITSTATUS(st) == 0, "status %#x (SIGALRM: it hung)", st);
    close(rd);
}

/* ---- the same figures as valgrind memcheck ----------------------------------- */

/* `threads`: the fixture starts threads.  glibc then keeps thread vectors
 * (DTVs) through a pointer one entry past their start: valgrind lists them as
 * possibly lost, memshim suppresses them (see memshim(7)), and how many stay
 * allocated depends on glibc's stack cache, which differs under valgrind.
 * For such fixtures only the definitely and indirectly lost figures are
 * compared. */
/* Whether memshim's report `text` gives valgrind's figures (in its stderr
 * `vg`); false with the first difference in why[]. */
static bool figures_agree(const char *name, const char *vg, const char *text, bool threads,
                          char *why, size_t len)
{
    static const char *kinds[] = { "definitely lost", "indirectly lost", "possibly lost" };
    for (int k = 0; k < 3; k++) {
        long vb = -1, vn = -1, mb = -2, mn = -2;
        cr_assert(text_kind(vg, kinds[k], &vb, &vn), "valgrind said: %s", vg);
        cr_assert(text_kind(text, kinds[k], &mb, &mn), "memshim said: %s", text);
        if (k == 2 && threads) continue;
        if (mb != vb || mn != vn) {
            snprintf(why, len, "%s %s: memshim %ld blocks, %ld bytes; valgrind %ld blocks, %ld bytes",
                     name, kinds[k], mb, mn, vb, vn);
            return false;
        }
    }
    return true;
}

/* valgrind's run is taken again, up to three in all, while it disagrees:
 * its verdict on one program changes between runs.  Once in about 75
 * runs it called leak_cycle's lost pair (600,000 and 296 bytes) "possibly
 * lost", an interior pointer to them found somewhere, in none of the rest
 * (a word of memory that falls inside the large block's range, at
 * valgrind's low heap addresses, would do it).  memshim's own figures are
 * not taken again: they are checked exactly, in several stack layouts,
 * above. */
static void same_as_valgrind(const char *name, bool threads)
{
    if (access("/usr/bin/valgrind", X_OK) != 0) cr_skip_test("valgrind is not installed");
    char *argv[] = { "valgrind", "--leak-check=full", "--show-leak-kinds=all", path_in_build(name),
                     path_in_build("fixtures/libleak_dl.so"), NULL };
    run_t ms;
    char *text = run_reporting(name, false, &ms);
    char why[512] = "";
    bool agree = false;
    for (int tries = 0; tries < 3 && !agree; tries++) {
        run_t vg = run_with(false, NULL, argv, NULL);
        agree = figures_agree(name, vg.err, text, threads, why, sizeof why);
        run_free(&vg);
    }
    cr_expect(agree, "%s", why);
    free(text);
    run_free(&ms);
}

Test(valgrind, kinds, .timeout = 120) { same_as_valgrind("fixtures/leak_kinds", false); }
Test(valgrind, cycle, .timeout = 120) { same_as_valgrind("fixtures/leak_cycle", false); }
Test(valgrind, roots, .timeout = 120) { same_as_valgrind("fixtures/leak_roots", true); }
Test(valgrind, threads, .timeout = 120) { same_as_valgrind("fixtures/leak_threads", true); }
Test(valgrind, funcs, .timeout = 120) { same_as_valgrind("fixtures/leak_funcs", false); }
Test(valgrind, dlopen, .timeout = 120) { same_as_valgrind("fixtures/leak_dlopen", false); }

/* ---- collector objects kept alive only by cycles --------------------------------- */

Test(cycles, reported_by_type_with_their_edges)
{
    char rep[] = "/tmp/mscycXXXXXX";
    close(mkstemp(rep));
    char env_rep[4200];
    snprintf(env_rep, sizeof env_rep, "MEMSHIM_REPORT=%s", rep);
    const char *env[] = { env_rep, "MEMSHIM_REPORT_FORMAT=json", NULL };
    run_t r = run_fixture("fixtures/gc_cycle", env);
    cr_assert(WIFEXITED(r.status) && WEXITSTATUS(r.status) == 0, "%s", r.err);
    char cmd[4400];
    snprintf(cmd, sizeof cmd,
             "python3 -c 'import json; c=json.load(open(\"%s\"))[\"cycles\"]; "
             "assert len(c)==2, c; ring=[g for g in c if len(g[\"objects\"])==3][0]; "
             "assert {o[\"type\"] for o in ring[\"objects\"]}=={\"Node\"} and len(ring[\"edges\"])==3; "
             "addrs={o[\"addr\"] for o in ring[\"objects\"]}; "
             "assert all(e[\"from\"] in addrs and e[\"to\"] in addrs for e in ring[\"edges\"]); "
             "pair=[g for g in c if len(g[\"objects\"])==1][0]; "
             "assert pair[\"objects\"][0][\"type\"]==\"Pair\" and pair[\"edges\"][0][\"from\"]==pair[\"edges\"][0][\"to\"]'",
             rep);
    cr_expect_eq(system(cmd), 0, "cycles section of %s", rep);
    unlink(rep);
    run_free(&r);
    run_t t = run_fixture("fixtures/gc_cycle", NULL);
    cr_expect(strstr(t.err, "4 collector objects in 2 groups are alive only through reference cycles"), "%s", t.err);
    cr_expect(strstr(t.err, "Node@0x") && strstr(t.err, "-> Node@0x"), "%s", t.err);
    /* The ring and the pair are leaks (nothing of the program points to
     * them), named by type; the rooted Node (gc_cycle.c:35) is not. */
    cr_expect(strstr(t.err, "120 (40 direct, 80 indirect) bytes in 1 block is definitely lost"), "%s", t.err);
    cr_expect(strstr(t.err, "collector objects of type Node") && strstr(t.err, "collector objects of type Pair"),
              "%s", t.err);
    cr_expect_null(strstr(t.err, "gc_cycle.c:35"), "the rooted object is not reported: %s", t.err);
    run_free(&t);
}
