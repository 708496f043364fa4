/* test_suppress.c - MEMSHIM_SUPPRESS in the forms users already have:
 * valgrind's blocks (frames with "..." wildcards, match-leak-kinds),
 * LeakSanitizer's leak: lines, collector types; what each suppression
 * took (used_suppression); suppressions generated from a report
 * (MEMSHIM_GEN_SUPPRESSIONS) that memshim and valgrind both read. */
#include "leakrun.h"

static char *write_temp(const char *text)
{
    static char path[8][64];
    static int k;
    char *p = path[k++ & 7];
    strcpy(p, "/tmp/mssuppXXXXXX");
    int fd = mkstemp(p);
    cr_assert(fd >= 0);
    cr_assert(write(fd, text, strlen(text)) == (ssize_t)strlen(text));
    close(fd);
    return p;
}

static run_t run_suppressed(const char *fixture, const char *file, const char *extra)
{
    char env_s[128];
    snprintf(env_s, sizeof env_s, "MEMSHIM_SUPPRESS=%s", file);
    const char *env[] = { env_s, extra, NULL };
    return run_fixture(fixture, env);
}

static const char *lists =
    "# leak_kinds' list, by a three-frame pattern with a wildcard\n"
    "{\n"
    "   lists_are_fine\n"
    "   Memcheck:Leak\n"
    "   match-leak-kinds: definite,indirect\n"
    "   fun:calloc\n"
    "   fun:make_list*\n"
    "   ...\n"
    "   fun:main\n"
    "}\n";

Test(suppress, a_valgrind_block_with_frames_and_a_wildcard, .timeout = 120)
{
    char *file = write_temp(lists);
    run_t r = run_suppressed("fixtures/leak_kinds", file, NULL);
    cr_assert(WIFEXITED(r.status) && WEXITSTATUS(r.status) == 0, "%s", r.err);
    long b, n;
    cr_assert(text_kind(r.err, "definitely lost", &b, &n), "%s", r.err);
    cr_expect(b == 3 && n == 556, "the list's head is suppressed: %ld/%ld\n%s", b, n, r.err);
    cr_assert(text_kind(r.err, "indirectly lost", &b, &n));
    cr_expect(b == 0 && n == 0, "and its tail: %ld/%ld", b, n);
    cr_assert(text_kind(r.err, "suppressed", &b, &n));
    cr_expect(b == 3 && n == 144, "%ld/%ld", b, n);
    cr_expect(strstr(r.err, "used_suppression: 3 blocks, 144 bytes: lists_are_fine ("), "%s", r.err);
    if (access("/usr/bin/valgrind", X_OK) == 0) {          /* valgrind reads it the same */
        char supp[128];
        snprintf(supp, sizeof supp, "--suppressions=%s", file);
        char *argv[] = { "valgrind", "--leak-check=full", supp, path_in_build("fixtures/leak_kinds"), NULL };
        run_t vg = run_with(false, NULL, argv, NULL);
        long vb, vn;
        cr_assert(text_kind(vg.err, "suppressed", &vb, &vn), "%s", vg.err);
        cr_expect(vb == 3 && vn == 144, "valgrind: %ld/%ld", vb, vn);
        cr_assert(text_kind(vg.err, "definitely lost", &vb, &vn));
        cr_expect(vb == 3 && vn == 556, "valgrind: %ld/%ld", vb, vn);
        run_free(&vg);
    }
    unlink(file);
    run_free(&r);
}

Test(suppress, match_leak_kinds_limits_a_block, .timeout = 60)
{
    char *file = write_temp("{\n   only_possible\n   Memcheck:Leak\n   match-leak-kinds: possible\n"
                            "   ...\n   fun:leak_all\n}\n");
    run_t r = run_suppressed("fixtures/leak_kinds", file, NULL);
    long b, n;
    cr_assert(text_kind(r.err, "definitely lost", &b, &n), "%s", r.err);
    cr_expect(b == 4 && n == 604, "definite records stay: %ld/%ld", b, n);
    cr_assert(text_kind(r.err, "possibly lost", &b, &n));
    cr_expect(b == 0 && n == 0, "the possible one goes: %ld/%ld", b, n);
    unlink(file);
    run_free(&r);
}

Test(suppress, leak_lines_types_and_other_tools_blocks, .timeout = 60)
{
    char *file = write_temp("leak:make_list\n"
                            "type:Widg*\n"
                            "{\n   a_race\n   Helgrind:Race\n   fun:x\n}\n"
                            "race:foo\n");
    run_t r = run_suppressed("fixtures/leak_register", file, NULL);
    long b, n;
    cr_assert(text_kind(r.err, "suppressed", &b, &n), "%s", r.err);
    cr_expect(b == 1 && n == 56, "the Widget object, by its type: %ld/%ld\n%s", b, n, r.err);
    cr_expect(strstr(r.err, "2 entries (the first at line 3) not for leaks; skipped"), "%s", r.err);
    run_free(&r);
    r = run_suppressed("fixtures/leak_kinds", file, "MEMSHIM_REPORT_FORMAT=json");
    cr_expect(strstr(r.err, "\"suppressions_used\": [{\"name\": \"make_list\", \"line\": 1, \"blocks\": 3, "
                            "\"bytes\": 144}]"), "%s", r.err);
    cr_expect(strstr(r.err, "\"format\": \"memshim-leaks\", \"version\": 1"), "%s", r.err);
    unlink(file);
    run_free(&r);
}

/* Every record's generated suppression, fed back, suppresses it; valgrind
 * takes the same file for the same figures. */
Test(suppress, generated_suppressions_round_trip, .timeout = 120)
{
    const char *env[] = { "MEMSHIM_GEN_SUPPRESSIONS=1", NULL };
    run_t r = run_fixture("fixtures/leak_kinds", env);
    char *gen = malloc(strlen(r.err) + 1);
    size_t o = 0;
    for (const char *p = r.err; (p = strstr(p, "\n{\n")); ) {   /* the blocks, one after another */
        const char *end = strstr(p, "\n}\n");
        cr_assert_not_null(end);
        memcpy(gen + o, p + 1, (size_t)(end + 3 - (p + 1)));
        o += (size_t)(end + 3 - (p + 1));
        p = end + 2;
    }
    gen[o] = 0;
    cr_assert_gt(o, 0, "no suppression generated: %s", r.err);
    cr_expect(strstr(gen, "   Memcheck:Leak\n   match-leak-kinds: definite\n   ...\n   fun:leak_all\n   fun:main\n"),
              "%s", gen);
    char *file = write_temp(gen);
    run_t s = run_suppressed("fixtures/leak_kinds", file, "MEMSHIM_SHOW=all");
    long b, n;
    cr_assert(text_kind(s.err, "suppressed", &b, &n), "%s", s.err);
    cr_expect(b == 7 && n == 828, "every lost block suppressed: %ld/%ld\n%s", b, n, s.err);
    if (access("/usr/bin/valgrind", X_OK) == 0) {
        char supp[128];
        snprintf(supp, sizeof supp, "--suppressions=%s", file);
        char *argv[] = { "valgrind", "--leak-check=full", supp, path_in_build("fixtures/leak_kinds"), NULL };
        run_t vg = run_with(false, NULL, argv, NULL);
        long vb, vn;
        cr_assert(text_kind(vg.err, "suppressed", &vb, &vn), "valgrind took the file: %s", vg.err);
        cr_expect(vb == 7 && vn == 828, "valgrind: %ld/%ld", vb, vn);
        run_free(&vg);
    }
    unlink(file);
    free(gen);
    run_free(&s);
    run_free(&r);
}
