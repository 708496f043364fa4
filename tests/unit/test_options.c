/* test_options.c - the options table (shim/options.def): MEMSHIM_OPTIONS,
 * precedence, misspelled names, and the collector's setting through it. */
#include <criterion/criterion.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "shim.h"
#include "optenv.h"

static unsigned lines(const char *s)
{
    unsigned n = 0;
    for (; *s; s++) n += *s == '\n';
    return n;
}

Test(options, one_variable_sets_several)
{
    char *env[] = { "MEMSHIM_OPTIONS=stack_depth=7:show=all:report_format=json:rss_interval=300:"
                    "on_error=continue:sample=4k:stats_signal=USR2", NULL };
    const char *e = load_with(env);
    cr_assert_str_empty(e, "said: %s", e);
    cr_assert_eq(_ms_opt.stack_depth, 7);
    cr_assert_eq(_ms_opt.show, (1u << MS_NKINDS) - 1);
    cr_assert_eq(_ms_opt.json, 1);
    cr_assert_eq(_ms_ropt.rss_interval_ms, 300);
    cr_assert_eq(_ms_opt.on_error, MS_ON_ERROR_CONTINUE);
    cr_assert_eq(_ms_opt.sample, 4096);
    cr_assert_eq(_ms_ropt.stats_signal, SIGUSR2);
}

Test(options, keys_are_case_insensitive_and_paths_made_absolute)
{
    char *env[] = { "MEMSHIM_OPTIONS=REPORT=leaks.%p.json::Stack_Depth=3", NULL };
    static char report[4096];                 /* this process's own exit report stays where it was */
    snprintf(report, sizeof report, "%s", _ms_opt.report ? _ms_opt.report : "stderr");
    const char *e = load_with(env);
    cr_assert_str_empty(e, "said: %s", e);
    char cwd[512];
    cr_assert_not_null(getcwd(cwd, sizeof cwd));
    cr_assert_not_null(_ms_opt.report);
    cr_assert(strncmp(_ms_opt.report, cwd, strlen(cwd)) == 0 && strstr(_ms_opt.report, "/leaks.%p.json"),
              "%s", _ms_opt.report);
    cr_assert_eq(_ms_opt.stack_depth, 3);
    _ms_opt.report = report;
}

Test(options, a_variable_of_its_own_wins)
{
    char *env[] = { "MEMSHIM_STACK_DEPTH=9", "MEMSHIM_OPTIONS=stack_depth=5:why_depth=2", NULL };
    const char *e = load_with(env);
    cr_assert_str_empty(e, "said: %s", e);
    cr_assert_eq(_ms_opt.stack_depth, 9);
    cr_assert_eq(_ms_opt.why_depth, 2);
}

Test(options, a_misspelt_variable_is_named_with_the_closest)
{
    char *env[] = { "MEMSHIM_REPROT=x.json", "MEMSHIM_STAKC_DEPTH=4", NULL };
    const char *report = _ms_opt.report;
    const char *e = load_with(env);
    cr_assert_not_null(strstr(e, "memshim: MEMSHIM_REPROT: not a memshim setting; ignored (did you mean MEMSHIM_REPORT?)\n"),
                       "said: %s", e);
    cr_assert_not_null(strstr(e, "MEMSHIM_STAKC_DEPTH: not a memshim setting; ignored (did you mean MEMSHIM_STACK_DEPTH?)"),
                       "said: %s", e);
    cr_assert_eq(lines(e), 2, "said: %s", e);
    cr_assert_eq(_ms_opt.report, report, "nothing set from a misspelling");
}

/* The nearest names are those a person means (shim/near.c): a few edits
 * away for the name's length, or sharing its words; none when nothing is
 * near (MEMSHIM_X was taken for MEMSHIM_GC, MEMSHIM_RSS for MEMSHIM_GC,
 * MEMSHIM_STACK for MEMSHIM_STATS). */
Test(options, a_misspelt_variable_is_named_with_the_names_that_share_its_words)
{
    char *env[] = { "MEMSHIM_RSS=1", "MEMSHIM_STACK=8", "MEMSHIM_GC_THRESHOLD=700", "MEMSHIM_SUPPRESSIONS=s.supp",
                    "MEMSHIM_PROFILE_SIG=USR2", "MEMSHIM_X=1", "MEMSHIM_LEAKS=1", "MEMSHIM_SAMPEL=4k", NULL };
    const char *e = load_with(env);
    static const char *const said[] = {
        "MEMSHIM_RSS: not a memshim setting; ignored (did you mean MEMSHIM_RSS_LOG or MEMSHIM_RSS_INTERVAL?)\n",
        "MEMSHIM_STACK: not a memshim setting; ignored (did you mean MEMSHIM_STACK_DEPTH or MEMSHIM_FREE_STACKS?)\n",
        "MEMSHIM_GC_THRESHOLD: not a memshim setting; ignored (did you mean MEMSHIM_GC?)\n",
        "MEMSHIM_SUPPRESSIONS: not a memshim setting; ignored (did you mean MEMSHIM_SUPPRESS or "
        "MEMSHIM_GEN_SUPPRESSIONS?)\n",
        "MEMSHIM_PROFILE_SIG: not a memshim setting; ignored (did you mean MEMSHIM_PROFILE_SIGNAL?)\n",
        "MEMSHIM_X: not a memshim setting; ignored (memshim help env lists them)\n",
        "MEMSHIM_LEAKS: not a memshim setting; ignored (memshim help env lists them)\n",
        "MEMSHIM_SAMPEL: not a memshim setting; ignored (did you mean MEMSHIM_SAMPLE?)\n",
    };
    for (size_t i = 0; i < sizeof said / sizeof *said; i++)
        cr_expect_not_null(strstr(e, said[i]), "not said: %s\nsaid: %s", said[i], e);
    cr_assert_eq(lines(e), 8, "said: %s", e);
}

Test(options, a_misspelt_key_is_named_with_the_nearest_keys_in_lower_case)
{
    char *env[] = { "MEMSHIM_OPTIONS=rss=1:depth=3:option=x", NULL };
    const char *e = load_with(env);
    cr_assert_not_null(strstr(e, "MEMSHIM_OPTIONS: rss: not a memshim setting; ignored (did you mean rss_log or "
                                 "rss_interval?)\n"), "said: %s", e);
    cr_assert_not_null(strstr(e, "MEMSHIM_OPTIONS: depth: not a memshim setting; ignored (did you mean stack_depth or "
                                 "why_depth?)\n"), "said: %s", e);
    cr_assert_not_null(strstr(e, "MEMSHIM_OPTIONS: option: not a memshim setting; ignored (memshim help env lists "
                                 "them)\n"), "said: %s", e);
    cr_assert_eq(lines(e), 3, "said: %s", e);
}

Test(options, a_name_like_none_points_at_the_list)
{
    char *env[] = { "MEMSHIM_ZQXJKWV_PLOTH=1", NULL };
    const char *e = load_with(env);
    cr_assert_not_null(strstr(e, "MEMSHIM_ZQXJKWV_PLOTH: not a memshim setting; ignored (memshim help env lists them)"),
                       "said: %s", e);
    cr_assert_eq(lines(e), 1);
}

Test(options, the_commands_own_variable_and_the_collectors_key_are_no_misspellings)
{
    char *env[] = { "MEMSHIM_LIBRARY=/opt/lib/libmemshim.so", "MEMSHIM_GC=off", "MEMSHIM_OPTIONS=gc=700,20,5", NULL };
    const char *e = load_with(env);
    cr_assert_str_empty(e, "said: %s", e);
}

Test(options, bad_keys_and_values_in_the_one_variable)
{
    int depth = (int)_ms_opt.stack_depth;
    char *env[] = { "MEMSHIM_OPTIONS=stak_depth=3:stack_depth=abc:verbose:library=x", NULL };
    const char *e = load_with(env);
    cr_assert_not_null(strstr(e, "MEMSHIM_OPTIONS: stak_depth: not a memshim setting; ignored (did you mean stack_depth?)"),
                       "said: %s", e);
    cr_assert_not_null(strstr(e, "MEMSHIM_OPTIONS:stack_depth=abc: expected a number of frames from 1 to 64; using the default"),
                       "said: %s", e);
    cr_assert_not_null(strstr(e, "MEMSHIM_OPTIONS: verbose: expected key=value"), "said: %s", e);
    cr_assert_not_null(strstr(e, "MEMSHIM_OPTIONS: library: not a memshim setting"), "said: %s", e);
    cr_assert_eq(lines(e), 4, "said: %s", e);
    cr_assert_eq((int)_ms_opt.stack_depth, depth);
}

Test(options, choices_and_kinds_warn_with_the_accepted_form)
{
    char *env[] = { "MEMSHIM_ON_ERROR=ignore", "MEMSHIM_REPORT_FORMAT=xml", "MEMSHIM_SHOW=lost", NULL };
    const char *e = load_with(env);
    cr_assert_not_null(strstr(e, "MEMSHIM_ON_ERROR=ignore: expected abort or continue; using the default"), "said: %s", e);
    cr_assert_not_null(strstr(e, "MEMSHIM_REPORT_FORMAT=xml: expected text or json"), "said: %s", e);
    cr_assert_not_null(strstr(e, "MEMSHIM_SHOW=lost: expected a comma list of definite"), "said: %s", e);
    cr_assert_eq(lines(e), 3, "said: %s", e);
    cr_assert_eq(_ms_opt.on_error, MS_ON_ERROR_ABORT);
    cr_assert_eq(_ms_opt.json, 0);
}

Test(options, the_collectors_setting_from_either_place)
{
    char buf[64];
    char *env1[] = { "MEMSHIM_OPTIONS=show=all:gc=700,20,5", NULL };
    char **saved = environ;
    environ = env1;
    const char *v = _ms_option_text("MEMSHIM_GC", buf, sizeof buf);
    cr_assert(v && strcmp(v, "700,20,5") == 0, "%s", v ? v : "(null)");
    char *env2[] = { "MEMSHIM_GC=off", "MEMSHIM_OPTIONS=gc=700", NULL };
    environ = env2;
    v = _ms_option_text("MEMSHIM_GC", buf, sizeof buf);
    cr_assert(v && strcmp(v, "off") == 0, "%s", v ? v : "(null)");
    char *env3[] = { "MEMSHIM_OPTIONS=gcx=1", NULL };
    environ = env3;
    cr_assert_null(_ms_option_text("MEMSHIM_GC", buf, sizeof buf));
    environ = saved;
}

/* MEMSHIM_STATS=1 wrote the statistics to a file named "1" in the working
 * directory: a yes word now means standard error, a no word none, and a
 * report cannot be turned off that way (it says so and stays on stderr).
 * What was loaded is copied and the settings put back before any assert,
 * so that this process's exit writes nothing whatever the outcome. */
static char got_stats[4096], got_profile[4096], got_rss[4096];
static const char *keep(char *dst, const char *v)
{
    snprintf(dst, 4096, "%s", v ? v : "(none)");
    return dst;
}
static void put_back(void)
{
    _ms_opt.stats = _ms_opt.profile = NULL;
    _ms_ropt.rss_log = NULL;
    _ms_ropt.metrics = NULL;
}

Test(options, yes_and_no_words_for_an_output_mean_stderr_and_none)
{
    static char report[4096];                 /* this process's own exit report stays where it was */
    snprintf(report, sizeof report, "%s", _ms_opt.report ? _ms_opt.report : "stderr");
    char *env[] = { "MEMSHIM_STATS=1", "MEMSHIM_PROFILE=yes", "MEMSHIM_RSS_LOG=off", NULL };
    const char *e = load_with(env);
    keep(got_stats, _ms_opt.stats);
    keep(got_profile, _ms_opt.profile);
    keep(got_rss, _ms_ropt.rss_log);
    put_back();
    cr_assert_str_empty(e, "said: %s", e);
    cr_assert_str_eq(got_stats, "stderr");
    cr_assert_str_eq(got_profile, "stderr");
    cr_assert_str_eq(got_rss, "(none)");

    char *named[] = { "MEMSHIM_STATS=./1", NULL };
    e = load_with(named);
    keep(got_stats, _ms_opt.stats);
    put_back();
    cr_assert_str_empty(e, "said: %s", e);
    size_t len = strlen(got_stats);
    cr_assert(got_stats[0] == '/' && len > 4 && strcmp(got_stats + len - 4, "/./1") == 0, "%s", got_stats);

    char *metrics[] = { "MEMSHIM_METRICS=1", NULL };
    e = load_with(metrics);
    put_back();
    cr_assert(strstr(e, "MEMSHIM_METRICS=1: expected a file name") && lines(e) == 1, "said: %s", e);

    char *off[] = { "MEMSHIM_REPORT=0", NULL };
    e = load_with(off);
    const char *left = _ms_opt.report;
    _ms_opt.report = report;
    cr_assert(strstr(e, "MEMSHIM_REPORT=0: expected stderr or a file name") && lines(e) == 1, "said: %s", e);
    cr_assert_null(left);
}

/* An output name with a %-sequence memshim does not expand (a valgrind
 * user's %q{VAR}, a printf habit's %d) was taken as written: a file named
 * "x.%q{HOME}" wherever that led.  One line names it and what is known;
 * the setting is ignored. */
Test(options, output_names_with_unknown_percent_sequences_are_refused)
{
    char *env[] = { "MEMSHIM_STATS=/tmp/s.%q{HOME}.txt", "MEMSHIM_OPTIONS=profile=/tmp/p.%d", NULL };
    const char *e = load_with(env);
    keep(got_stats, _ms_opt.stats);
    keep(got_profile, _ms_opt.profile);
    put_back();
    cr_assert(strstr(e, "MEMSHIM_STATS=/tmp/s.%q{HOME}.txt: %q is none of %p (the pid), %n (the output's number), "
                        "%h (the host name) or %% (a percent sign); ignored"), "said: %s", e);
    cr_assert(strstr(e, "MEMSHIM_OPTIONS:profile=/tmp/p.%d: %d is none of"), "said: %s", e);
    cr_assert_eq(lines(e), 2, "said: %s", e);
    cr_assert_str_eq(got_stats, "(none)");
    cr_assert_str_eq(got_profile, "(none)");
    char *fine[] = { "MEMSHIM_STATS=/tmp/s.%h.%p.%n.%%.txt", NULL };
    e = load_with(fine);
    keep(got_stats, _ms_opt.stats);
    put_back();
    cr_assert_str_empty(e, "said: %s", e);
    cr_assert_str_eq(got_stats, "/tmp/s.%h.%p.%n.%%.txt");
}

/* What messages show of a value or a name: one line (a newline in a value
 * is shown escaped), at most 64 bytes of it and then its whole length (a
 * name was cut to 79 bytes before its length was counted). */
Test(options, values_and_names_stay_on_one_line_with_their_length)
{
    static char name[5100];
    memcpy(name, "MEMSHIM_", 8);
    memset(name + 8, 'X', 5000);
    strcpy(name + 5008, "=1");
    char *env[] = { "MEMSHIM_DECAY=ab\ncd", name, NULL };
    const char *e = load_with(env);
    cr_assert_not_null(strstr(e, "memshim: MEMSHIM_DECAY=ab\\ncd: expected milliseconds"), "said: %s", e);
    cr_assert_not_null(strstr(e, "XXX... (5008 bytes): not a memshim setting; ignored"), "said: %s", e);
    cr_assert_eq(lines(e), 2, "said: %s", e);
}

/* An empty MEMSHIM_SHOW listed nothing and printed no summary, without a
 * word; a profile interval below 100 ms was taken as 100 without one. */
Test(options, an_empty_show_and_a_profile_interval_below_100_are_refused)
{
    unsigned show = _ms_opt.show, every = _ms_opt.profile_interval_ms;
    char *env[] = { "MEMSHIM_SHOW=", "MEMSHIM_PROFILE_INTERVAL=5", NULL };
    const char *e = load_with(env);
    cr_assert_not_null(strstr(e, "MEMSHIM_SHOW=: expected a comma list of definite"), "said: %s", e);
    cr_assert_not_null(strstr(e, "MEMSHIM_PROFILE_INTERVAL=5: expected milliseconds, 0 (none) or 100 to 86400000"),
                       "said: %s", e);
    cr_assert_eq(lines(e), 2, "said: %s", e);
    cr_assert_eq(_ms_opt.show, show);
    cr_assert_eq(_ms_opt.profile_interval_ms, every);
}

/* MEMSHIM_TRACE_CHILDREN=0 takes memshim's own entries out of LD_PRELOAD,
 * not every path that says "memshim" (a plugin went too). */
Test(options, trace_children_off_takes_out_memshims_entries_only)
{
    static char preload[] = "LD_PRELOAD=/opt/x/libmemshim.so:/opt/memshim-tools/libplugin.so libmemshim.so.0";
    char *env[] = { "MEMSHIM_TRACE_CHILDREN=0", preload, NULL };
    const char *e = load_with(env);
    cr_assert_str_empty(e, "said: %s", e);
    cr_assert_str_eq(preload, "LD_PRELOAD=/opt/memshim-tools/libplugin.so");
}
