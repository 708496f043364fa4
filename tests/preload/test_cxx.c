/* test_cxx.c - C++ operator new and delete on memshim (issue 10, item 11):
 * every form pairs with its delete silently, std::bad_alloc and the
 * new_handler behave as the standard says, a leaked new[] is reported at
 * its line, and each mismatched free/delete/delete[] is reported once with
 * its stacks (abort by default, go on with MEMSHIM_ON_ERROR=continue, the
 * block released), as valgrind's memcheck counts them.  The fixtures are
 * build/fixtures/cxx_misuse (one situation per argument) and cxx_replaced (a
 * program with an operator new of its own). */
#include <criterion/criterion.h>
#include <criterion/parameterized.h>
#include "helpers.h"

static h_run_t *run_cxx(const char *fixture, const char *mode, const char *env1, const char *env2)
{
    h_run_t *r = malloc(sizeof *r);
    cr_assert_not_null(r);
    h_run_fixture2(r, fixture, mode, env1, env2, 60);
    cr_assert(!r->timed_out, "%s %s: hung", fixture, mode ? mode : "");
    return r;
}

static void expect_ok_on_memshim(const char *what, const h_run_t *r)
{
    cr_expect(WIFEXITED(r->status) && WEXITSTATUS(r->status) == 0, "%s: status %#x\nstdout:\n%s\nstderr:\n%s",
              what, r->status, r->out, r->err);
    cr_expect_not_null(strstr(r->out, "new=libmemshim.so"), "%s: operator new is not memshim's:\n%s", what, r->out);
    cr_expect_null(strstr(r->out, "BAD"), "%s:\n%s", what, r->out);
    cr_expect_not_null(strstr(r->out, "survived"), "%s:\n%s", what, r->out);
}

static int count(const char *s, const char *what)
{
    int n = 0;
    for (const char *p = s; (p = strstr(p, what)); p += strlen(what)) n++;
    return n;
}

/* The text of a report's section TITLE ("    allocated at:\n"), up to the
 * next section or message. */
static char *section(const char *err, const char *title)
{
    const char *s = strstr(err, title);
    if (!s) return strdup("");
    s += strlen(title);
    size_t n = 0;
    while (s[n] && (strncmp(s + n, "        #", 9) == 0)) n += strcspn(s + n, "\n") + 1;
    return strndup(s, n);
}

Test(cxx, every_form_pairs_with_its_delete_silently)
{
    const char *envs[] = { NULL, "MEMSHIM_TRACK=0", "MEMSHIM_SAMPLE=4k" };
    for (int i = 0; i < 3; i++) {
        h_run_t *r = run_cxx("cxx_misuse", "pairs", envs[i], NULL);
        expect_ok_on_memshim("pairs", r);
        cr_expect_not_null(strstr(r->out, "pairs ok"), "%s", r->out);
        cr_expect_null(strstr(r->err, "memshim:"), "%s: memshim complained:\n%s", envs[i] ? envs[i] : "", r->err);
        free(r);
    }
}

Test(cxx, bad_alloc_nothrow_and_the_new_handler)
{
    const char *envs[] = { NULL, "MEMSHIM_TRACK=0" };
    for (int i = 0; i < 2; i++) {
        h_run_t *r = run_cxx("cxx_misuse", "bad-alloc", envs[i], NULL);
        expect_ok_on_memshim("bad-alloc", r);
        cr_expect_not_null(strstr(r->out, "bad-alloc ok"), "%s", r->out);
        cr_expect_null(strstr(r->err, "memshim:"), "%s", r->err);
        free(r);
    }
}

/* new int[10] lost in lose_array: the record's first frame is that line,
 * not the C++ library's operator new; memcheck counts the same loss. */
Test(cxx, leaked_new_array_is_reported_at_its_line, .timeout = 120)
{
    h_run_t *r = run_cxx("cxx_misuse", "leak", NULL, NULL);
    expect_ok_on_memshim("leak", r);
    const char *l = strstr(r->out, "array_line=");
    cr_assert_not_null(l, "%s", r->out);
    char at[64];
    snprintf(at, sizeof at, "cxx_misuse.cc:%d)", atoi(l + 11));
    const char *rec = strstr(r->err, "40 bytes in 1 block is definitely lost");
    cr_assert_not_null(rec, "%s", r->err);
    const char *eol = strchr(rec, '\n');                /* the next line is the first frame */
    const char *frame0 = eol ? strstr(eol + 1, "    at 0x") : NULL;
    cr_assert(frame0 && !memchr(eol + 1, '\n', (size_t)(frame0 - eol - 1)), "%s", r->err);
    size_t n = strcspn(frame0, "\n");
    char line[512];
    snprintf(line, sizeof line, "%.*s", (int)(n < 500 ? n : 500), frame0);
    cr_expect(strstr(line, "lose_array") && strstr(line, at), "first frame is not the new[] at %s: %s\n%s", at,
              line, r->err);
    cr_expect(strstr(r->err, "definitely lost: 40 bytes in 1 block"), "%s", r->err);
    free(r);

    if (access("/usr/bin/valgrind", X_OK) != 0) return;
    char *argv[] = { "/usr/bin/valgrind", "--leak-check=full", (char *)h_path("fixtures/cxx_misuse"), "leak", NULL };
    const char *env[] = { "LD_PRELOAD=", NULL };
    h_run_t *vg = malloc(sizeof *vg);
    h_run(vg, argv, env, 110);
    cr_expect(strstr(vg->err, "definitely lost: 40 bytes in 1 blocks"), "valgrind says otherwise:\n%s", vg->err);
    cr_expect(strstr(vg->err, "operator new[](unsigned long)"), "%s", vg->err);
    free(vg);
}

/* new[] then delete, new then free, malloc then delete: three reports, each
 * with the allocation's stack and the release's, and memcheck finds three. */
Test(cxx, mismatches_as_memcheck_counts_them, .timeout = 120)
{
    h_run_t *r = run_cxx("cxx_misuse", "mismatches", "MEMSHIM_ON_ERROR=continue", NULL);
    expect_ok_on_memshim("mismatches", r);
    int ms = count(r->err, "memshim: Mismatched free() / delete / delete []: 0x");
    cr_expect_eq(ms, 3, "memshim reported %d mismatches:\n%s", ms, r->err);
    cr_expect(strstr(r->err, "is a block from operator new[], released by operator delete\n"), "%s", r->err);
    cr_expect(strstr(r->err, "is a block from operator new, released by free()\n"), "%s", r->err);
    cr_expect(strstr(r->err, "is a block from malloc(), released by operator delete\n"), "%s", r->err);
    cr_expect_eq(count(r->err, "    allocated at:\n        #0 "), 3, "%s", r->err);
    cr_expect_eq(count(r->err, "    now at:\n        #0 "), 3, "%s", r->err);

    if (access("/usr/bin/valgrind", X_OK) != 0) cr_skip_test("valgrind is not installed");
    char *argv[] = { "/usr/bin/valgrind", (char *)h_path("fixtures/cxx_misuse"), "mismatches", NULL };
    const char *env[] = { "LD_PRELOAD=", NULL };
    h_run_t *vg = malloc(sizeof *vg);
    h_run(vg, argv, env, 110);
    int v = count(vg->err, "Mismatched free() / delete / delete []");
    cr_expect_eq(ms, v, "memshim reported %d mismatches, valgrind %d:\n%s", ms, v, vg->err);
    free(vg);
    free(r);
}

typedef struct { char mode[40]; char says[96]; } mm_t;
static mm_t mm[] = {
    { "new-array-delete", "a block from operator new[], released by operator delete" },
    { "new-free", "a block from operator new, released by free()" },
    { "malloc-delete", "a block from malloc(), released by operator delete" },
    { "new-delete-array", "a block from operator new, released by operator delete[]" },
    { "aligned-new-delete", "a block from operator new (aligned), released by operator delete" },
    { "new-aligned-delete", "a block from operator new, released by operator delete (aligned)" },
    { "aligned-array-aligned-delete", "a block from operator new[] (aligned), released by operator delete (aligned)" },
    { "huge-new-array-delete", "a block from operator new[], released by operator delete" },
    { "new-realloc", "a block from operator new, released by realloc()" },
};

ParameterizedTestParameters(cxx, each_mismatch)
{
    return cr_make_param_array(mm_t, mm, sizeof mm / sizeof mm[0]);
}

/* Each mismatch: by default one message naming the address and both
 * calls, the two stacks, then SIGABRT at the bad call; with continue the
 * same message and the program goes on with a sound heap; without tracking
 * nothing is known of the block and nothing is said. */
ParameterizedTest(mm_t *c, cxx, each_mismatch, .timeout = 60)
{
    h_run_t *r = run_cxx("cxx_misuse", c->mode, NULL, NULL);
    char addr[64] = "";
    const char *a = strstr(r->out, "addr=");
    if (a) snprintf(addr, sizeof addr, "%.*s", (int)strcspn(a + 5, "\n"), a + 5);
    cr_assert(*addr, "%s: no addr= line:\n%s", c->mode, r->out);
    cr_expect(WIFSIGNALED(r->status) && WTERMSIG(r->status) == SIGABRT, "%s: status %#x", c->mode, r->status);
    cr_expect_null(strstr(r->out, "survived"), "%s: went on after the bad call", c->mode);
    char line[256];
    snprintf(line, sizeof line, "memshim: Mismatched free() / delete / delete []: %s is %s; aborting", addr, c->says);
    cr_expect(strncmp(r->err, line, strlen(line)) == 0, "%s: expected\n%s\ngot\n%s", c->mode, line, r->err);
    cr_expect_eq(count(r->err, "memshim:"), 1, "%s:\n%s", c->mode, r->err);
    char *alloc = section(r->err, "    allocated at:\n"), *now = section(r->err, "    now at:\n");
    cr_expect(strstr(alloc, "#0 ") && strstr(alloc, " allocate_by(") && strstr(alloc, " main ("),
              "%s: allocation stack:\n%s\n%s", c->mode, alloc, r->err);
    cr_expect(strstr(now, "#0 ") && strstr(now, " release_by(") && strstr(now, " main ("),
              "%s: current stack:\n%s\n%s", c->mode, now, r->err);
    free(alloc);
    free(now);
    free(r);

    r = run_cxx("cxx_misuse", c->mode, "MEMSHIM_ON_ERROR=continue", NULL);
    expect_ok_on_memshim(c->mode, r);
    cr_expect_eq(count(r->err, "memshim: Mismatched free() / delete / delete []: "), 1, "%s:\n%s", c->mode, r->err);
    cr_expect_eq(count(r->err, "memshim:"), 1, "%s:\n%s", c->mode, r->err);
    free(r);

    r = run_cxx("cxx_misuse", c->mode, "MEMSHIM_TRACK=0", NULL);
    expect_ok_on_memshim(c->mode, r);
    cr_expect_null(strstr(r->err, "memshim:"), "%s without tracking:\n%s", c->mode, r->err);
    free(r);
}

/* A second delete is a double free, with the first delete's stack. */
Test(cxx, delete_twice_is_a_double_free_with_the_first_deletes_stack)
{
    h_run_t *r = run_cxx("cxx_misuse", "delete-twice", NULL, NULL);
    cr_expect(WIFSIGNALED(r->status) && WTERMSIG(r->status) == SIGABRT, "status %#x", r->status);
    cr_expect(strstr(r->err, "memshim: operator delete: double free: 0x") &&
              strstr(r->err, " is a block already freed"), "%s", r->err);
    char *first = section(r->err, "    first freed at:\n");
    cr_expect(strstr(first, " release_by(") && strstr(first, " main ("), "first free:\n%s\n%s", first, r->err);
    free(first);
    free(r);
}

/* A program with an operator new of its own (over malloc) and the C++
 * library's delete: nothing is a mismatch, nothing is reported;
 * MEMSHIM_VERBOSE says why the checks are off. */
Test(cxx, a_program_replacing_operator_new_gets_no_false_reports)
{
    h_run_t *r = run_cxx("cxx_replaced", NULL, NULL, NULL);
    cr_expect(WIFEXITED(r->status) && WEXITSTATUS(r->status) == 0, "status %#x\n%s", r->status, r->err);
    cr_expect_not_null(strstr(r->out, "replaced ok (through the program's new)"), "%s", r->out);
    cr_expect_null(strstr(r->err, "memshim:"), "%s", r->err);
    free(r);
    r = run_cxx("cxx_replaced", NULL, "MEMSHIM_VERBOSE=1", NULL);
    cr_expect(strstr(r->err, "memshim: _Znwm is defined by ") && strstr(r->err, "cxx_replaced"), "%s", r->err);
    cr_expect_eq(count(r->err, "memshim:"), 1, "%s", r->err);
    free(r);
}

/* A library whose operator new and delete are its own (bound to itself, as
 * LLVM's: rust-lld aborted on the first delete of a block LLVM's new took
 * from malloc): its halves meeting the process's operators are no
 * mismatch.  A real mismatch in the same process still is. */
Test(cxx, a_librarys_own_operators_are_no_mismatch, .timeout = 60)
{
    for (int real = 0; real < 2; real++) {
        h_run_t *r = malloc(sizeof *r);
        h_run_fixture(r, "own_new", real ? "mismatch" : "pairs", "MEMSHIM_ON_ERROR=continue", 30);
        cr_assert(WIFEXITED(r->status) && WEXITSTATUS(r->status) == 0, "%s", r->err);
        cr_expect(strstr(r->out, "own_new done"), "%s", r->out);
        const char *m = strstr(r->err, "Mismatched free() / delete / delete []");
        if (!real) cr_expect(!m, "a library's own pair reported:\n%s", r->err);
        else cr_expect(m && strstr(m, "a block from malloc(), released by operator delete") &&
                       !strstr(m + 1, "memshim: Mismatched"), "one real mismatch:\n%s", r->err);
        free(r);
    }
}

/* The same while sampling: a block from malloc the sampler passed over
 * has no stack, hence no innermost frame to find a library's operator new
 * in.  rust-lld aborted under MEMSHIM_SAMPLE=512k on the first delete of
 * a block LLVM's new took from malloc.  Such a block is not reported; a
 * sampled one still is (MEMSHIM_SAMPLE=1 samples every block). */
Test(cxx, a_librarys_own_operators_are_no_mismatch_while_sampling, .timeout = 60)
{
    for (int real = 0; real < 2; real++) {
        h_run_t *r = malloc(sizeof *r);
        h_run_fixture2(r, "own_new", real ? "mismatch" : "pairs", "MEMSHIM_ON_ERROR=continue",
                       real ? "MEMSHIM_SAMPLE=1" : "MEMSHIM_SAMPLE=1g", 30);
        cr_assert(WIFEXITED(r->status) && WEXITSTATUS(r->status) == 0, "%s", r->err);
        cr_expect(strstr(r->out, "own_new done"), "%s", r->out);
        const char *m = strstr(r->err, "Mismatched free() / delete / delete []");
        if (!real) cr_expect(!m, "a library's own pair reported while sampling:\n%s", r->err);
        else cr_expect(m && strstr(m, "a block from malloc(), released by operator delete") &&
                       !strstr(m + 1, "memshim: Mismatched"), "one real mismatch, sampled:\n%s", r->err);
        free(r);
    }
}
