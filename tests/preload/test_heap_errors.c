/* test_heap_errors.c - invalid frees inside memshim's heap, frees of
 * pointers no allocator hands out (the stack, globals, constants, unmapped
 * or misaligned addresses, the inside of a huge block) and double frees:
 * one message line on stderr naming the address, then abort() by default;
 * with MEMSHIM_ON_ERROR=continue the program goes on with a sound heap.
 * Each scenario runs in a fixture process (build/fixtures/heap_errors) under
 * LD_PRELOAD, with block tracking on (the default, which may add indented
 * stack lines under the message) and off (MEMSHIM_TRACK=0: the message is the
 * only line), or in a forked child of this test. */
#include <criterion/criterion.h>
#include <criterion/parameterized.h>
#include <malloc.h>
#include "memshim.h"
#include "helpers.h"

/* Parameters are copied to Criterion's workers, so they hold the names
 * themselves rather than pointers.  `says`: what the message must say of
 * the pointer (with tracking on and off alike), if anything. */
typedef struct { char name[32]; int track_off; char says[64]; } mode_t_;
#define BOTH(m, says) { m, 0, says }, { m, 1, says }
static mode_t_ modes[] = {
    BOTH("double-free-16", ""), BOTH("double-free-48", ""), BOTH("double-free-1000", ""),
    BOTH("double-free-4096", ""), BOTH("double-free-20000", ""), BOTH("double-free-300000", ""),
    BOTH("double-free-flushed", ""), BOTH("double-free-parked", ""), BOTH("double-free-left", ""),
    BOTH("interior", "(16 bytes inside a block of "),
    BOTH("interior-large", "(4096 bytes inside a block of "),
    BOTH("misaligned", "(1 bytes inside a block of "),
    BOTH("misaligned-8", "(8 bytes inside a block of "),
    BOTH("header", "(inside memshim's heap, in a segment's header)"),
    BOTH("uncarved", "(inside memshim's heap, a block never handed out)"),
    BOTH("realloc-freed", ""),
    BOTH("realloc-interior", "(32 bytes inside a block of "),
    /* pointers no allocator hands out (issue 10, item 10) */
    BOTH("free-stack", "(on this thread's stack)"),
    BOTH("realloc-stack", "(on this thread's stack)"),
    BOTH("free-global", "(in the data of the program)"),
    BOTH("free-literal", "(in the code or constants of the program)"),
    BOTH("free-unmapped", "(not mapped)"),
    BOTH("free-misaligned-foreign", "(not aligned to 16 bytes)"),
    BOTH("free-huge-interior", "(8192 bytes inside a block of 1048576 bytes at 0x"),
    BOTH("decref-dead", ""),
    BOTH("incref-dead", ""), BOTH("root-dead", ""), BOTH("track-dead", ""), BOTH("untrack-dead", ""),
    /* a plain block not registered, where an object or a registered block
     * belongs: told apart by tracking's records only */
    { "link-plain", 0, "" }, { "root-plain", 0, "" }, { "reachable-plain", 0, "" },
    { "referents-plain", 0, "" },
    BOTH("weakref-free-twice", ""), BOTH("weakref-get-freed", ""),
};
#define NMODES (sizeof modes / sizeof modes[0])

/* The address the fixture announced ("addr=0x..."), copied into out. */
static int announced(const h_run_t *r, char *out, size_t cap)
{
    const char *a = strstr(r->out, "addr=");
    if (!a) return 0;
    a += 5;
    size_t n = strcspn(a, "\n");
    if (n == 0 || n >= cap) return 0;
    memcpy(out, a, n);
    out[n] = 0;
    return 1;
}

static void describe(const char *mode, const h_run_t *r)
{
    cr_log_info("mode %s: status %#x, timed out %d\nstdout:\n%s\nstderr:\n%s", mode, r->status,
                r->timed_out, r->out, r->err);
}

/* memshim's message: exactly one line starting "memshim:", naming addr.  Any
 * other line must be an indented continuation (allocation/free stacks) or
 * part of the leak report at exit ("==pid=="); with `strict`, the message
 * is the only line. */
static void expect_message_naming(const char *mode, const h_run_t *r, const char *addr, int strict,
                                  const char *says)
{
    int msgs = 0, others = 0, named = 0;
    for (const char *l = r->err; *l; ) {
        size_t n = strcspn(l, "\n");
        if (strncmp(l, "memshim:", 8) == 0) {
            msgs++;
            for (const char *q = l; q + strlen(addr) <= l + n; q++)
                if (strncmp(q, addr, strlen(addr)) == 0) { named = 1; break; }
        } else if (!(l[0] == ' ' || l[0] == '\t' || strncmp(l, "==", 2) == 0)) {
            others++;
        }
        l += n;
        if (*l) l++;
    }
    cr_expect_eq(msgs, 1, "%s: expected one memshim line on stderr, got %d:\n%s", mode, msgs, r->err);
    if (*says)
        cr_expect(strstr(r->err, says) && strstr(r->err, " is not a block memshim handed out ("),
                  "%s: the message does not say \"%s\":\n%s", mode, says, r->err);
    cr_expect(named, "%s: the message does not name %s:\n%s", mode, addr, r->err);
    cr_expect_eq(others, 0, "%s: unexpected lines on stderr:\n%s", mode, r->err);
    if (strict)
        cr_expect_eq(h_count_lines(r->err), 1, "%s: expected the message alone on stderr, got:\n%s",
                     mode, r->err);
}

static void run_mode(const mode_t_ *mt, int cont)
{
    char mode[64];
    snprintf(mode, sizeof mode, "%s%s", mt->name, mt->track_off ? " (MEMSHIM_TRACK=0)" : "");
    h_run_t *r = malloc(sizeof *r);
    cr_assert_not_null(r);
    char env[80];
    snprintf(env, sizeof env, "MEMSHIM_TRACK=%s", mt->track_off ? "0" : "");
    h_run_fixture2(r, "heap_errors", mt->name, cont ? "MEMSHIM_ON_ERROR=continue" : NULL, env, 30);
    char addr[64];
    cr_assert(!r->timed_out, "%s: fixture hung", mode);
    if (WIFEXITED(r->status) && WEXITSTATUS(r->status) == 3) cr_assert_fail("%s: fixture not on memshim", mode);
    if (WIFEXITED(r->status) && WEXITSTATUS(r->status) == 2) {
        describe(mode, r);
        cr_assert_fail("%s: scenario precondition failed: %s", mode, r->out);
    }
    cr_assert(announced(r, addr, sizeof addr), "%s: no addr= line; stdout:\n%s\nstderr:\n%s",
              mode, r->out, r->err);
    if (!cont) {
        int aborted = WIFSIGNALED(r->status) && WTERMSIG(r->status) == SIGABRT;
        if (!aborted) describe(mode, r);
        cr_expect(aborted, "%s: expected SIGABRT, got status %#x (stdout: %s)", mode, r->status, r->out);
        /* stopped at the bad call: nothing printed after the addr= line */
        const char *after = strchr(strstr(r->out, "addr="), '\n');
        cr_expect(after && after[1] == 0, "%s: the program went on after the bad call:\n%s",
                  mode, r->out);
        cr_expect(strncmp(r->err, "memshim:", 8) == 0, "%s: stderr does not start with the message:\n%s",
                  mode, r->err);
        expect_message_naming(mode, r, addr, mt->track_off, mt->says);
    } else {
        int ok = WIFEXITED(r->status) && WEXITSTATUS(r->status) == 0;
        if (!ok) describe(mode, r);
        cr_expect(ok, "%s with continue: status %#x", mode, r->status);
        cr_expect_not_null(strstr(r->out, "survived"), "%s: did not go on:\n%s", mode, r->out);
        cr_expect_null(strstr(r->out, "DUPLICATE"), "%s: a block was handed out twice:\n%s", mode, r->out);
        cr_expect_null(strstr(r->out, "CLOBBERED"), "%s: a live block changed:\n%s", mode, r->out);
        expect_message_naming(mode, r, addr, mt->track_off, mt->says);
    }
    free(r);
}

ParameterizedTestParameters(heap_errors, abort_by_default)
{
    return cr_make_param_array(mode_t_, modes, NMODES);
}

ParameterizedTest(mode_t_ *mode, heap_errors, abort_by_default)
{
    run_mode(mode, 0);
}

ParameterizedTestParameters(heap_errors, continue_goes_on)
{
    return cr_make_param_array(mode_t_, modes, NMODES);
}

ParameterizedTest(mode_t_ *mode, heap_errors, continue_goes_on)
{
    run_mode(mode, 1);
}

/* One memshim_decref too many, tracked: the message says the object is
 * dead and shows where it was made and where it died (the fixture's
 * main), as a double free's does. */
Test(heap_errors, a_decref_too_many_shows_where_the_object_was_made_and_died)
{
    h_run_t *r = malloc(sizeof *r);
    h_run_fixture(r, "heap_errors", "decref-dead", "MEMSHIM_ON_ERROR=continue", 30);
    cr_assert(!r->timed_out);
    cr_expect(WIFEXITED(r->status) && WEXITSTATUS(r->status) == 0, "status %#x", r->status);
    cr_expect_not_null(strstr(r->err, "memshim: memshim_decref(): reference count already 0: 0x"), "%s", r->err);
    cr_expect_not_null(strstr(r->err, " is a dead object (its block was freed)\n"), "%s", r->err);
    const char *made = strstr(r->err, "    object made at:\n        #0 "),
               *died = strstr(r->err, "    object freed at:\n        #0 "),
               *now = strstr(r->err, "    now at:\n        #0 ");
    cr_expect(made && died && now && made < died && died < now, "stacks:\n%s", r->err);
    if (made && died && now)
        cr_expect(strstr(made, " main (") && strstr(died, " main (") && strstr(now, " main ("),
                  "each stack should name the fixture's main:\n%s", r->err);
    free(r);
}

/* memshim(3): memshim_register of an object fails with EINVAL, rooted or
 * linked (it has a node) or not: told by tracking's records.  Taken for a
 * block, its node outlived it and took over the next object made there. */
Test(heap_errors, registering_an_object_fails_with_einval)
{
    h_run_t *r = malloc(sizeof *r);
    h_run_fixture(r, "heap_errors", "register-object", NULL, 30);
    cr_assert(!r->timed_out);
    cr_expect(WIFEXITED(r->status) && WEXITSTATUS(r->status) == 0, "status %#x", r->status);
    cr_expect_not_null(strstr(r->out, "register=-1 errno=22\n"), "%s", r->out);
    cr_expect_null(strstr(r->err, "memshim:"), "%s", r->err);
    free(r);
}

/* memshim_gc_unlock in a finalizer, without memshim_gc_lock: the lock
 * held is the death's, not the program's, and is not given back: one line
 * says so and the program aborts (there is nothing sound to go on with). */
Test(heap_errors, unlocking_the_lock_a_finalizer_runs_under_aborts)
{
    h_run_t *r = malloc(sizeof *r);
    h_run_fixture(r, "heap_errors", "unlock-in-finalizer", "MEMSHIM_ON_ERROR=continue", 30);
    cr_assert(!r->timed_out);
    cr_expect(WIFSIGNALED(r->status) && WTERMSIG(r->status) == SIGABRT, "status %#x", r->status);
    cr_expect_eq(h_count_lines(r->err), 1, "%s", r->err);
    cr_expect_not_null(strstr(r->err, "memshim: collector: memshim_gc_unlock() without memshim_gc_lock() "
                                      "in this thread\n"), "%s", r->err);
    cr_expect_null(strstr(r->out, "unlocked"), "the lock was given back:\n%s", r->out);
    free(r);
}

Test(heap_errors, bad_on_error_value_is_reported_and_abort_kept)
{
    h_run_t *r = malloc(sizeof *r);
    h_run_fixture(r, "heap_errors", "double-free-64", "MEMSHIM_ON_ERROR=sometimes", 30);
    cr_assert(!r->timed_out);
    cr_expect(WIFSIGNALED(r->status) && WTERMSIG(r->status) == SIGABRT, "status %#x", r->status);
    cr_expect_not_null(strstr(r->err, "MEMSHIM_ON_ERROR=sometimes"), "no warning:\n%s", r->err);
    free(r);
}

/* The same in this very process (linked with -lmemshim): a forked child
 * aborts at the bad call. */
static int child_double_free(void *arg)
{
    size_t n = (size_t)(uintptr_t)arg;
    printf("start\n");          /* stdout's buffer is allocated now, not after free(p) */
    fflush(stdout);
    void *p = v_malloc(n);
    v_free(p);
    printf("addr=%p\n", p);
    fflush(stdout);
    v_free(p);
    printf("survived\n");
    return 0;
}

static int child_interior(void *arg)
{
    printf("start\n");
    fflush(stdout);
    unsigned char *p = v_malloc(256);
    printf("addr=%p\n", (void *)(p + 48));
    fflush(stdout);
    v_free(p + 48);
    printf("survived\n");
    return 0;
}

/* The child replaced fd 2 with a file of its own after memshim took its
 * copy of standard error, and closed that copy: memshim's message is then
 * dropped, never written into the program's file (the message itself is
 * checked by the fixture runs above, whose fd 2 is set before start-up). */
static void expect_aborted_at_bad_call(const char *what, const h_run_t *r)
{
    char addr[64];
    cr_assert(!r->timed_out, "%s: hung", what);
    cr_assert(announced(r, addr, sizeof addr), "%s: no addr line: %s", what, r->out);
    cr_expect(WIFSIGNALED(r->status) && WTERMSIG(r->status) == SIGABRT, "%s: status %#x", what,
              r->status);
    const char *after = strchr(strstr(r->out, "addr="), '\n');
    cr_expect(after && after[1] == 0, "%s: went on after the bad call:\n%s", what, r->out);
    cr_expect_null(strstr(r->err, "memshim"), "%s: memshim wrote into the file the program put on "
                   "fd 2:\n%s", what, r->err);
}

Test(heap_errors, forked_child_double_free_aborts)
{
    const size_t sizes[] = { 48, 100000 };
    for (size_t i = 0; i < 2; i++) {
        h_run_t *r = malloc(sizeof *r);
        h_fork_run(r, child_double_free, (void *)(uintptr_t)sizes[i], 30);
        expect_aborted_at_bad_call(sizes[i] == 48 ? "double free of 48 bytes" : "double free of 100000 bytes", r);
        free(r);
    }
}

Test(heap_errors, forked_child_interior_free_aborts)
{
    h_run_t *r = malloc(sizeof *r);
    h_fork_run(r, child_interior, NULL, 30);
    expect_aborted_at_bad_call("interior free", r);
    free(r);
}

/* With tracking on, a pointer into a block names the block and shows where
 * it was allocated, then where the bad call is. */
Test(heap_errors, interior_pointers_show_the_blocks_allocation_stack)
{
    static const char *ms[] = { "interior", "free-huge-interior" };
    for (int i = 0; i < 2; i++) {
        h_run_t *r = malloc(sizeof *r);
        h_run_fixture(r, "heap_errors", ms[i], NULL, 30);
        const char *alloc = strstr(r->err, "    block allocated at:\n"), *now = strstr(r->err, "    now at:\n");
        cr_expect(alloc && now && alloc < now, "%s: no allocation stack before the current one:\n%s", ms[i], r->err);
        cr_expect(alloc && strstr(alloc, " main (") && strstr(alloc, " main (") < now,
                  "%s: the allocation stack does not reach main:\n%s", ms[i], r->err);
        cr_expect(now && strstr(now, " main ("), "%s: the current stack does not reach main:\n%s", ms[i], r->err);
        free(r);
    }
}

/* A double free shows where the block was first freed, unless frees keep
 * no stack (MEMSHIM_FREE_STACKS=0, valgrind's --keep-stacktraces=alloc):
 * then that stack is "(not recorded)", and the allocation's is whole. */
Test(heap_errors, free_stacks_kept_unless_turned_off)
{
    for (int off = 0; off < 2; off++) {
        h_run_t *r = malloc(sizeof *r);
        h_run_fixture(r, "heap_errors", "double-free-48", off ? "MEMSHIM_FREE_STACKS=0" : NULL, 30);
        const char *alloc = strstr(r->err, "    allocated at:\n"), *first = strstr(r->err, "    first freed at:\n"),
                   *now = strstr(r->err, "    now at:\n");
        cr_assert(alloc && first && now && alloc < first && first < now, "%s", r->err);
        cr_expect(strstr(alloc, " main (") && strstr(alloc, " main (") < first, "allocation stack:\n%s", r->err);
        const char *none = strstr(first, "(not recorded)");
        if (off) cr_expect(none && none < now, "MEMSHIM_FREE_STACKS=0: a free stack was kept:\n%s", r->err);
        else cr_expect(strstr(first, " main (") && strstr(first, " main (") < now, "no free stack:\n%s", r->err);
        free(r);
    }
}

/* A realloc that moves a block frees the old one and allocates the new one
 * at the same call: a double free of the old block shows that call as its
 * first free, and one of the new block as its allocation (the two records
 * share the one stack the realloc took). */
Test(heap_errors, realloc_is_the_old_blocks_free_and_the_new_ones_allocation)
{
    static const char *which[] = { "realloc-double-old", "realloc-double-new" };
    for (int i = 0; i < 2; i++) {
        h_run_t *r = malloc(sizeof *r);
        h_run_fixture(r, "heap_errors", which[i], NULL, 30);
        const char *alloc = strstr(r->err, "    allocated at:\n"), *first = strstr(r->err, "    first freed at:\n"),
                   *now = strstr(r->err, "    now at:\n");
        cr_assert(alloc && first && now && alloc < first && first < now, "%s: %s", which[i], r->err);
        const char *at = strstr(r->err, "moved_by_realloc");
        cr_expect(at, "%s: no frame of the realloc's caller:\n%s", which[i], r->err);
        if (i == 0)
            cr_expect(at && at > first && at < now, "%s: the first free is not the realloc:\n%s", which[i], r->err);
        else
            cr_expect(at && at > alloc && at < first, "%s: the allocation is not the realloc:\n%s", which[i],
                      r->err);
        cr_expect(strstr(r->err, "double free"), "%s: %s", which[i], r->err);
        free(r);
    }
}

/* Blocks of another allocator (glibc's own malloc, from the brk heap and
 * from a mapping of its own) and an anonymous mapping, as the dynamic
 * loader's early blocks are: free() takes them silently and leaves them
 * alone, and says so only under MEMSHIM_VERBOSE. */
Test(heap_errors, foreign_blocks_are_still_tolerated)
{
    for (int verbose = 0; verbose < 2; verbose++) {
        h_run_t *r = malloc(sizeof *r);
        h_run_fixture(r, "heap_errors", "foreign", verbose ? "MEMSHIM_VERBOSE=1" : NULL, 30);
        cr_assert(!r->timed_out);
        cr_expect(WIFEXITED(r->status) && WEXITSTATUS(r->status) == 0, "status %#x\n%s\n%s", r->status,
                  r->out, r->err);
        cr_expect_not_null(strstr(r->out, "survived"), "%s", r->out);
        cr_expect_null(strstr(r->out, "CLOBBERED"), "%s", r->out);
        int ignored = 0;
        for (const char *q = r->err; (q = strstr(q, "not a block memshim handed out; ignored")); q++) ignored++;
        cr_expect_eq(ignored, verbose ? 3 : 0, "MEMSHIM_VERBOSE=%d: %d mentions:\n%s", verbose, ignored, r->err);
        cr_expect_null(strstr(r->err, "invalid pointer"), "%s", r->err);
        free(r);
    }
}

/* The same mistake 10000 times with MEMSHIM_ON_ERROR=continue: the first
 * MS_MSG_SHOWN (10) messages, then one line at exit for the rest; the
 * statistics and the leak report count every one. */
static void run_loop(h_run_t *r, unsigned n, const char *stats, const char *report)
{
    char prog[2 * PATH_MAX + 2], arg[32], preload[2 * PATH_MAX + 16], st[PATH_MAX + 32], rep[PATH_MAX + 32];
    snprintf(prog, sizeof prog, "%s", h_path("fixtures/heap_errors"));
    snprintf(arg, sizeof arg, "loop-%u", n);
    snprintf(preload, sizeof preload, "LD_PRELOAD=%s", h_path("libmemshim.so"));
    snprintf(st, sizeof st, "MEMSHIM_STATS=%s", stats);
    snprintf(rep, sizeof rep, "MEMSHIM_REPORT=%s", report);
    const char *env[] = { preload, "MEMSHIM_ON_ERROR=continue", st, rep, "MEMSHIM_REPORT_FORMAT=json", NULL };
    char *argv[] = { prog, arg, NULL };
    h_run(r, argv, env, 60);
    cr_assert(!r->timed_out, "loop-%u hung", n);
    cr_expect(WIFEXITED(r->status) && WEXITSTATUS(r->status) == 0, "loop-%u: status %#x\n%s", n, r->status, r->err);
    cr_expect_not_null(strstr(r->out, "survived"), "%s", r->out);
}

/* memshim's lines on stderr: how many name the invalid free, and the rest. */
static void count_lines(const char *err, int *errors, int *others, const char **last)
{
    *errors = *others = 0;
    *last = NULL;
    for (const char *l = err; *l; ) {
        size_t n = strcspn(l, "\n");
        if (strncmp(l, "memshim: free(): invalid pointer: 0x", 36) == 0) (*errors)++;
        else if (strncmp(l, "memshim:", 8) == 0) { (*others)++; *last = l; }
        else cr_expect(l[0] == ' ', "not a stack line: %.*s", (int)n, l);
        l += n;
        if (*l) l++;
    }
}

static char *read_file(const char *path)
{
    static char buf[1 << 20];
    int fd = open(path, O_RDONLY);
    cr_assert_geq(fd, 0, "no %s", path);
    h_slurp(fd, buf, sizeof buf);
    close(fd);
    return buf;
}

Test(heap_errors, a_mistake_in_a_loop_is_counted_not_flooded)
{
    h_run_t *r = malloc(sizeof *r);
    char stats[PATH_MAX], report[PATH_MAX];
    snprintf(stats, sizeof stats, "%s", h_path("tests/loop-stats.%d.json", (int)getpid()));
    snprintf(report, sizeof report, "%s", h_path("tests/loop-report.%d.json", (int)getpid()));
    run_loop(r, 10000, stats, report);
    int errors, others;
    const char *last;
    count_lines(r->err, &errors, &others, &last);
    cr_expect_eq(errors, 10, "%s", r->err);
    cr_expect_eq(others, 1, "one line more, the summary:\n%s", r->err);
    const char *summary = "memshim: 9990 more messages like \"free(): invalid pointer\" not shown\n";
    cr_expect(last && strcmp(last, summary) == 0, "the last line is not the summary:\n%s", r->err);
    const char *figures = "\"messages\": {\"total\": 10000, \"not_shown\": 9990}";
    char *s = read_file(stats);
    cr_expect_not_null(strstr(s, figures), "statistics:\n%s", s);
    s = read_file(report);
    cr_expect_not_null(strstr(s, figures), "report:\n%.2000s", s);
    cr_expect_not_null(strstr(s, "\"heap_errors_total\": 10000,"), "report:\n%.2000s", s);
    unlink(stats);
    unlink(report);
    free(r);
}

/* Up to the limit every message is written and nothing more is said; one
 * past it, one line says so. */
Test(heap_errors, up_to_the_limit_every_message_is_written)
{
    h_run_t *r = malloc(sizeof *r);
    char stats[PATH_MAX], report[PATH_MAX];
    snprintf(stats, sizeof stats, "%s", h_path("tests/loop-stats.%d.txt", (int)getpid()));
    snprintf(report, sizeof report, "%s", h_path("tests/loop-report.%d.json", (int)getpid()));
    for (unsigned n = 10; n <= 11; n++) {
        run_loop(r, n, stats, report);
        int errors, others;
        const char *last;
        count_lines(r->err, &errors, &others, &last);
        cr_expect_eq(errors, 10, "loop-%u:\n%s", n, r->err);
        cr_expect_eq(others, n - 10, "loop-%u:\n%s", n, r->err);
        if (n == 11)
            cr_expect(last && strcmp(last, "memshim: 1 more message like \"free(): invalid pointer\" not shown\n") == 0,
                      "%s", r->err);
        char *s = read_file(stats);
        char want[64];
        snprintf(want, sizeof want, "\nmessages: in all %u, not shown %u\n", n, n - 10);
        cr_expect_not_null(strstr(s, want), "loop-%u: statistics:\n%s", n, s);
    }
    unlink(stats);
    unlink(report);
    free(r);
}

/* ---- writes after free that aim a free-list link at a block ------------- */

/* With tracking, a freed block's link that the program aimed at a live
 * block (or into one, or at the freed block itself) is a write after
 * free: one message naming the freed block, and the live block is never
 * handed out to a second owner nor the freed one twice.  Before, the live
 * block went to the next malloc (and the message named it), and a block
 * linked to itself was handed out over and over. */
static void uaf_link(const char *mode)
{
    h_run_t *r = malloc(sizeof *r);
    char rep[PATH_MAX + 16];
    snprintf(rep, sizeof rep, "MEMSHIM_REPORT=%s", h_path("tests/uaf-links.%d.txt", (int)getpid()));
    h_run_fixture2(r, "heap_uaf_links", mode, rep, NULL, 60);
    unlink(h_path("tests/uaf-links.%d.txt", (int)getpid()));
    cr_assert_eq(r->timed_out, 0, "%s: hung", mode);
    cr_expect(WIFEXITED(r->status) && WEXITSTATUS(r->status) == 0, "%s:\n%s%s", mode, r->out, r->err);
    cr_expect(strstr(r->out, "heap_uaf_links done"), "%s:\n%s", mode, r->out);
    char addr[64], want[128];
    cr_assert(announced(r, addr, sizeof addr), "%s", r->out);
    snprintf(want, sizeof want, "memshim: write to freed block %s: ", addr);
    cr_expect(strstr(r->err, want), "%s: no message naming %s:\n%s", mode, addr, r->err);
    int messages = 0;
    for (const char *p = r->err; (p = strstr(p, "memshim: ")); p++) messages++;
    cr_expect_eq(messages, 1, "%s:\n%s", mode, r->err);
    free(r);
}

Test(heap_uaf_links, a_link_aimed_at_a_live_block_is_a_write_after_free, .timeout = 90) { uaf_link("live"); }
Test(heap_uaf_links, a_link_aimed_into_a_live_block_is_a_write_after_free, .timeout = 90) { uaf_link("mid"); }
Test(heap_uaf_links, a_block_linked_to_itself_is_a_write_after_free, .timeout = 90) { uaf_link("self"); }
Test(heap_uaf_links, a_link_set_to_zero_is_a_write_after_free, .timeout = 90) { uaf_link("zero"); }
Test(heap_uaf_links, a_link_set_to_zero_in_a_dead_threads_blocks_is_a_write_after_free, .timeout = 90) { uaf_link("far"); }

/* Two threads freeing the same block at once (undefined; pools alone,
 * going on after each message): the program ends, one way or another.  A
 * racing pair could close a span's free list into a cycle, which the next
 * double free's search of the span's list went round for ever (6 runs in
 * 6, found by a helper).  A block left on two lists may still be handed
 * out twice, and the program may then crash: memshim(7) says so, and the
 * default (abort at the first double free) stops before. */
Test(heap_uaf_links, racing_double_frees_end_without_tracking, .timeout = 120)
{
    h_run_t *r = malloc(sizeof *r);
    for (int round = 0; round < 3; round++) {
        h_run_fixture2(r, "heap_uaf_links", "race", "MEMSHIM_TRACK=0", "MEMSHIM_ON_ERROR=continue", 30);
        cr_assert_eq(r->timed_out, 0, "round %d hung:\n%s", round, r->err);
        cr_expect(WIFEXITED(r->status) || WIFSIGNALED(r->status), "round %d: status %#x", round, r->status);
    }
    free(r);
}
