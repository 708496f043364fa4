/* test_settings.c - malformed or unusual settings get one readable line and
 * never harm the program (issue 9, defect 9): suppression files that are
 * devices, directories or unreadable, suppressions beyond the old 64 KiB /
 * 512-pattern limits, 100 KB values.  Each test runs fixtures/leak_kinds
 * under LD_PRELOAD with a hang guard. */
#include <criterion/criterion.h>
#include "helpers.h"

static h_run_t run;

/* ---- settings that are not what memshim expects ----------------------------------- */

/* The lines memshim wrote on stderr ("memshim: ..."): how many, and the
 * longest. */
static int memshim_lines(const char *err, size_t *longest)
{
    int n = 0;
    *longest = 0;
    for (const char *p = err; (p = strstr(p, "memshim: ")); p++) {
        const char *nl = strchr(p, '\n');
        size_t len = nl ? (size_t)(nl - p) : strlen(p);
        if (len > *longest) *longest = len;
        n++;
    }
    return n;
}

/* Runs leak_kinds (a leak report at exit, with its suppressions loaded)
 * with `setting`; expects exactly one line from memshim, containing
 * `expect`, at most 200 characters long. */
static void one_line(const char *setting, const char *expect)
{
    char rep[64] = "/tmp/mshostrepXXXXXX";
    close(mkstemp(rep));
    char env_rep[128];
    snprintf(env_rep, sizeof env_rep, "MEMSHIM_REPORT=%s", rep);
    h_run_fixture2(&run, "leak_kinds", NULL, setting, env_rep, 60);
    unlink(rep);
    cr_assert_eq(run.timed_out, 0, "hung with %.80s", setting);
    cr_assert(WIFEXITED(run.status) && WEXITSTATUS(run.status) == 0, "%s", run.err);
    size_t longest;
    int n = memshim_lines(run.err, &longest);
    cr_expect_eq(n, 1, "one line from memshim for %.80s, got %d: %.2000s", setting, n, run.err);
    cr_expect_leq(longest, 200, "a readable line, not %zu characters", longest);
    cr_expect(strstr(run.err, expect), "\"%s\" in: %.2000s", expect, run.err);
}

Test(host_settings, suppressions_from_a_device_are_refused_in_one_line, .timeout = 90)
{
    one_line("MEMSHIM_SUPPRESS=/dev/zero", "MEMSHIM_SUPPRESS=/dev/zero: a character device");
}

Test(host_settings, suppressions_from_a_directory_are_refused_in_one_line, .timeout = 90)
{
    one_line("MEMSHIM_SUPPRESS=/tmp", "MEMSHIM_SUPPRESS=/tmp: a directory");
}

Test(host_settings, unreadable_suppressions_say_so_in_one_line, .timeout = 90)
{
    one_line("MEMSHIM_SUPPRESS=/proc/self/mem", "MEMSHIM_SUPPRESS=/proc/self/mem: cannot read");
}

static char huge_setting[110000];

static const char *huge_value(const char *name, char c)
{
    size_t n = (size_t)snprintf(huge_setting, sizeof huge_setting, "%s=", name);
    memset(huge_setting + n, c, 100000);
    huge_setting[n + 100000] = 0;
    return huge_setting;
}

Test(host_settings, a_100_kb_malformed_value_is_cut_in_the_message, .timeout = 90)
{
    one_line(huge_value("MEMSHIM_STACK_DEPTH", '7'), "... (100000 bytes): expected a number of frames");
}

Test(host_settings, a_100_kb_suppressions_name_is_cut_in_the_message, .timeout = 90)
{
    one_line(huge_value("MEMSHIM_SUPPRESS", 'a'), "MEMSHIM_SUPPRESS: name longer than 4095 bytes; ignored");
}

/* Beyond 64 KiB and 512 patterns, suppressions used to be dropped without a
 * word: the pattern that matters here is the last of 3,000 lines (~150 KB),
 * and it must still suppress leak_kinds' definite leaks from leak_all(). */
Test(host_settings, suppressions_beyond_64_kib_and_512_patterns_are_used, .timeout = 90)
{
    char supp[64] = "/tmp/mshostsuppXXXXXX", rep[64] = "/tmp/mshostrepXXXXXX";
    int fd = mkstemp(supp);
    close(mkstemp(rep));
    cr_assert(fd >= 0);
    FILE *f = fdopen(fd, "w");
    for (int i = 0; i < 3000; i++)
        fprintf(f, "leak:^no_such_function_%04d_padding_padding_padding_padding$\n", i);
    fprintf(f, "leak:leak_all\n");
    fclose(f);
    char env_supp[128], env_rep[128];
    snprintf(env_supp, sizeof env_supp, "MEMSHIM_SUPPRESS=%s", supp);
    snprintf(env_rep, sizeof env_rep, "MEMSHIM_REPORT=%s", rep);
    h_run_fixture2(&run, "leak_kinds", NULL, env_supp, env_rep, 60);
    unlink(supp);
    int rfd = open(rep, O_RDONLY);
    static char text[65536];
    h_slurp(rfd, text, sizeof text);
    close(rfd);
    unlink(rep);
    cr_assert_eq(run.timed_out, 0);
    cr_assert(WIFEXITED(run.status) && WEXITSTATUS(run.status) == 0, "%s", run.err);
    cr_expect(strstr(text, "definitely lost: 0 bytes in 0 blocks"), "the last pattern suppressed: %s", text);
    cr_expect_null(strstr(run.err, "memshim:"), "nothing to complain about: %s", run.err);
}
