/* test_report.c - the leak report's formats, options and destinations, heap
 * misuse reports, on-demand snapshots, sampling, and libunwind staying
 * private. */
#include <dirent.h>
#include "leakrun.h"

static char *tmpdir(void)
{
    static char d[64];
    strcpy(d, "/tmp/msrepXXXXXX");
    cr_assert(mkdtemp(d));
    return d;
}

static run_t modes(const char *mode, const char *const env[])
{
    char *argv[] = { path_in_build("fixtures/leak_modes"), (char *)mode, NULL };
    return run_with(true, NULL, argv, env);
}

/* ---- formats -------------------------------------------------------------------- */

Test(format, text_has_records_stacks_and_summary)
{
    const char *env[] = { NULL };
    run_t r = run_fixture("fixtures/leak_kinds", env);
    cr_assert(WIFEXITED(r.status) && WEXITSTATUS(r.status) == 0);
    cr_expect(strstr(r.err, "memshim leak report (at exit)"), "%s", r.err);
    cr_expect(strstr(r.err, "144 (48 direct, 96 indirect) bytes in 1 block is definitely lost in loss record"));
    cr_expect(strstr(r.err, ": make_list") && strstr(r.err, " (leak_kinds.c:"),
              "symbolized with file:line: %s", r.err);
    cr_expect(strstr(r.err, "by 0x"), "more than one frame");
    cr_expect(strstr(r.err, "definitely lost: 604 bytes in 4 blocks"));
    cr_expect(strstr(r.err, "possibly lost: 128 bytes in 1 block"));
    cr_expect_null(strstr(r.err, "_ms_"), "memshim's own frames are hidden");
    cr_expect_null(strstr(r.err, "are still reachable in loss record"), "reachable not shown by default");
    run_free(&r);
}

Test(format, json_is_valid_and_has_the_documented_fields)
{
    char *d = tmpdir();
    char env_rep[256], path[200];
    snprintf(path, sizeof path, "%s/r.json", d);
    snprintf(env_rep, sizeof env_rep, "MEMSHIM_REPORT=%s", path);
    const char *env[] = { env_rep, "MEMSHIM_REPORT_FORMAT=json", NULL };
    run_t r = run_fixture("fixtures/leak_kinds", env);
    cr_assert(WIFEXITED(r.status) && WEXITSTATUS(r.status) == 0);
    char cmd[1200];
    snprintf(cmd, sizeof cmd,
             "python3 -c 'import json,sys; d=json.load(open(\"%s\")); "
             "assert isinstance(d[\"pid\"], int) and d[\"program\"].split()[0].endswith(\"leak_kinds\"); "
             "s=d[\"summary\"]; [s[k][\"blocks\"] + s[k][\"bytes\"] for k in "
             "(\"definitely_lost\",\"indirectly_lost\",\"possibly_lost\",\"still_reachable\")]; "
             "l=[x for x in d[\"leaks\"] if x[\"kind\"]==\"definitely_lost\" and x[\"bytes\"]==48][0]; "
             "f=l[\"stack\"][0]; assert f[\"ip\"].startswith(\"0x\") and f[\"function\"].startswith(\"make_list\") "
             "and f[\"file\"].endswith(\"leak_kinds.c\") and f[\"line\"]>0 and f[\"module\"]; "
             "assert l[\"indirect_bytes\"]==96 and l[\"blocks\"]==1'", path);
    cr_expect_eq(system(cmd), 0, "JSON checks failed for %s", path);
    struct stat st;
    cr_assert_eq(stat(path, &st), 0);
    cr_expect_eq(st.st_mode & 0777, 0600, "report created 0600, got %o", st.st_mode & 0777);
    snprintf(cmd, sizeof cmd, "rm -rf %s", d);
    system(cmd);
    run_free(&r);
}

/* A command line in another encoding (a Latin-1 file name) went into the
 * JSON report's "program" byte for byte: invalid JSON, refused by every
 * reader, memshim's own included.  And one cut at the buffer's end in the
 * middle of a character was invalid too. */
Test(format, json_stays_utf8_whatever_the_command_line)
{
    char *d = tmpdir();
    char env_rep[256], path[200], cmd[1400], longarg[1300] = "";
    snprintf(path, sizeof path, "%s/r.json", d);
    snprintf(env_rep, sizeof env_rep, "MEMSHIM_REPORT=%s", path);
    for (int i = 0; i < 600; i++) strcat(longarg, "\xc3\xa9");            /* U+00E9, 2 bytes each */
    const char *env[] = { env_rep, "MEMSHIM_REPORT_FORMAT=json", NULL };
    for (int k = 0; k < 3; k++) {                  /* 1 and 2: the cut falls on either byte of a character */
        char *argv[] = { path_in_build("fixtures/leak_kinds"), k == 2 ? "xy" : k ? longarg : "caf\xe9",
                         k == 2 ? longarg : NULL, NULL };
        run_t r = run_with(true, NULL, argv, env);
        cr_assert(WIFEXITED(r.status) && WEXITSTATUS(r.status) == 0, "%s", r.err);
        snprintf(cmd, sizeof cmd,
                 "python3 -c 'import json; p=json.load(open(\"%s\", encoding=\"utf-8\"))[\"program\"]; "
                 "assert %s, repr(p[-20:])'", path,
                 k ? "p.endswith(\"\\u00e9\") and \"\\ufffd\" not in p" : "p.endswith(\" caf\\ufffd\")");
        cr_expect_eq(system(cmd), 0, "%s: not valid JSON in UTF-8, or the program not as expected", k ? "cut" : "Latin-1");
        run_free(&r);
    }
    snprintf(cmd, sizeof cmd, "rm -rf %s", d);
    system(cmd);
}

/* The program's command line (or a file name, a function's) in a text
 * report: a newline in it cannot forge a line of the report, nor an escape
 * sequence reach the terminal; both read escaped, as in messages. */
Test(format, text_names_with_control_characters_are_escaped)
{
    const char *env[] = { NULL };
    char *argv[] = { path_in_build("fixtures/leak_kinds"),
                     "x\n==1== 999 bytes in 1 block is definitely lost\x1b[2J\xc2\x9b", NULL };
    run_t r = run_with(true, NULL, argv, env);
    cr_assert(WIFEXITED(r.status) && WEXITSTATUS(r.status) == 0, "%s", r.err);
    cr_expect(strstr(r.err, " x\\n==1== 999 bytes in 1 block is definitely lost\\x1b[2J\\xc2\\x9b\n"),
              "the command line escaped: %s", r.err);
    cr_expect_null(strstr(r.err, "\n==1== 999"), "a line forged: %s", r.err);
    cr_expect_null(strchr(r.err, '\x1b'), "an escape sequence written: %s", r.err);
    cr_expect(strstr(r.err, "definitely lost: 604 bytes in 4 blocks"), "%s", r.err);
    run_free(&r);
}

Test(format, show_selects_the_kinds_listed)
{
    const char *all[] = { "MEMSHIM_SHOW=all", NULL };
    run_t r = run_fixture("fixtures/leak_kinds", all);
    cr_expect(strstr(r.err, "still reachable in loss record"), "%s", r.err);
    run_free(&r);
    const char *def[] = { "MEMSHIM_SHOW=definite", NULL };
    r = run_fixture("fixtures/leak_kinds", def);
    cr_expect(strstr(r.err, "definitely lost in loss record"));
    cr_expect_null(strstr(r.err, "indirectly lost in loss record"));
    cr_expect_null(strstr(r.err, "possibly lost in loss record"));
    cr_expect(strstr(r.err, "indirectly lost: 96 bytes in 2 blocks"), "the summary still counts all kinds");
    run_free(&r);
}

Test(format, stack_depth_limits_frames)
{
    char *d = tmpdir();
    char env_rep[256], path[200];
    snprintf(path, sizeof path, "%s/r.json", d);
    snprintf(env_rep, sizeof env_rep, "MEMSHIM_REPORT=%s", path);
    const char *env[] = { env_rep, "MEMSHIM_REPORT_FORMAT=json", "MEMSHIM_STACK_DEPTH=1", NULL };
    run_t r = run_fixture("fixtures/leak_kinds", env);
    char cmd[400];
    snprintf(cmd, sizeof cmd, "python3 -c 'import json; d=json.load(open(\"%s\")); "
             "assert d[\"leaks\"] and all(len(x[\"stack\"])==1 for x in d[\"leaks\"])'", path);
    cr_expect_eq(system(cmd), 0);
    snprintf(cmd, sizeof cmd, "rm -rf %s", d);
    system(cmd);
    run_free(&r);
}

/* ---- options with malformed values ------------------------------------------------- */

Test(options, malformed_values_warn_and_keep_defaults)
{
    static const struct { const char *env, *name; } bad[] = {
        { "MEMSHIM_TRACK=maybe", "MEMSHIM_TRACK" },
        { "MEMSHIM_REPORT_FORMAT=xml", "MEMSHIM_REPORT_FORMAT" },
        { "MEMSHIM_STACK_DEPTH=abc", "MEMSHIM_STACK_DEPTH" },
        { "MEMSHIM_STACK_DEPTH=0", "MEMSHIM_STACK_DEPTH" },
        { "MEMSHIM_SHOW=definite,bogus", "MEMSHIM_SHOW" },
        { "MEMSHIM_EXITCODE=300", "MEMSHIM_EXITCODE" },
        { "MEMSHIM_SAMPLE=-5", "MEMSHIM_SAMPLE" },
        { "MEMSHIM_REPORT_SIGNAL=SIGNOPE", "MEMSHIM_REPORT_SIGNAL" },
        { "MEMSHIM_ON_ERROR=explode", "MEMSHIM_ON_ERROR" },
    };
    for (unsigned i = 0; i < sizeof bad / sizeof *bad; i++) {
        const char *env[] = { bad[i].env, NULL };
        run_t r = run_fixture("fixtures/leak_kinds", env);
        cr_expect(WIFEXITED(r.status) && WEXITSTATUS(r.status) == 0, "%s broke the program", bad[i].env);
        cr_expect(strstr(r.out, "leak_kinds done"));
        const char *w = strstr(r.err, bad[i].name);
        cr_expect(w && strstr(r.err, "expected"), "%s: no warning naming it: %s", bad[i].env, r.err);
        cr_expect(strstr(r.err, "definitely lost: 604 bytes in 4 blocks"),
                  "%s: the default still applies: %s", bad[i].env, r.err);
        run_free(&r);
    }
}

Test(options, track_off_makes_no_report)
{
    const char *env[] = { "MEMSHIM_TRACK=0", NULL };
    run_t r = run_fixture("fixtures/leak_kinds", env);
    cr_expect(WIFEXITED(r.status) && WEXITSTATUS(r.status) == 0);
    cr_expect_null(strstr(r.err, "leak report"), "%s", r.err);
    run_free(&r);
}

/* The calls that need tracking or profiling, without either: -1 and
 * ENOTSUP each (memshim_leak_check left errno as it was). */
Test(options, api_calls_without_tracking_say_enotsup)
{
    const char *env[] = { "MEMSHIM_TRACK=0", NULL };
    run_t r = run_fixture("fixtures/api_untracked", env);
    cr_expect(WIFEXITED(r.status) && WEXITSTATUS(r.status) == 0, "status %d", r.status);
    cr_expect(strstr(r.out, "memshim_leak_check -1 ENOTSUP\n"), "%s", r.out);
    cr_expect(strstr(r.out, "memshim_why -1 ENOTSUP\n"), "%s", r.out);
    cr_expect(strstr(r.out, "memshim_profile_dump -1 ENOTSUP\n"), "%s", r.out);
    cr_expect_eq(r.err[0], 0, "%s", r.err);
    run_free(&r);
}

Test(options, exitcode_on_leaks_keeps_buffered_stdout)
{
    const char *env[] = { "MEMSHIM_EXITCODE=23", NULL };
    run_t r = modes("chdir", env);
    cr_expect(WIFEXITED(r.status) && WEXITSTATUS(r.status) == 23, "status %d", r.status);
    cr_expect(strstr(r.out, "done"), "stdout was flushed before the exit: '%s'", r.out);
    run_free(&r);
    r = run_fixture("fixtures/leak_none", env);
    cr_expect(WIFEXITED(r.status) && WEXITSTATUS(r.status) == 0, "no leaks, status untouched");
    run_free(&r);
}

Test(options, suppressions_match_function_names)
{
    char *d = tmpdir();
    char supp[200], env_s[260];
    snprintf(supp, sizeof supp, "%s/supp.txt", d);
    FILE *f = fopen(supp, "w");
    fprintf(f, "# comment\n\nleak:make_list\nrace:ignored_kind\n");
    fclose(f);
    snprintf(env_s, sizeof env_s, "MEMSHIM_SUPPRESS=%s", supp);
    const char *env[] = { env_s, NULL };
    run_t r = run_fixture("fixtures/leak_kinds", env);
    int named = 0;                                   /* no frame names it, only the count does */
    for (const char *l = r.err; (l = strstr(l, "make_list")); l++) named++;
    cr_expect(named == 1 && strstr(r.err, "used_suppression: 3 blocks, 144 bytes: make_list (supp.txt:3)"),
              "suppressed stacks are not shown: %s", r.err);
    cr_expect(strstr(r.err, "definitely lost: 556 bytes in 3 blocks"), "%s", r.err);
    cr_expect(strstr(r.err, "suppressed: 144 bytes in 3 blocks"), "%s", r.err);
    cr_expect(strstr(r.err, "line 4"), "a line of another kind is named: %s", r.err);
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf %s", d);
    system(cmd);
    run_free(&r);
    const char *missing[] = { "MEMSHIM_SUPPRESS=/nonexistent/supp", NULL };
    r = run_fixture("fixtures/leak_kinds", missing);
    cr_expect(strstr(r.err, "MEMSHIM_SUPPRESS=/nonexistent/supp"), "%s", r.err);
    cr_expect(strstr(r.err, "definitely lost: 604 bytes in 4 blocks"));
    run_free(&r);
}

/* ---- destinations ---------------------------------------------------------------------- */

Test(dest, relative_path_survives_chdir_and_pid_is_substituted)
{
    char *d = tmpdir();
    const char *env[] = { "MEMSHIM_REPORT=leaks.%p.txt", NULL };
    char *argv[] = { path_in_build("fixtures/leak_modes"), "chdir", NULL };
    run_t r = run_with(true, d, argv, env);
    cr_assert(WIFEXITED(r.status) && WEXITSTATUS(r.status) == 0, "%s", r.err);
    char cmd[300];
    snprintf(cmd, sizeof cmd, "grep -q 'definitely lost: 100 bytes in 1 block' %s/leaks.[0-9]*.txt", d);
    cr_expect_eq(system(cmd), 0, "report in the starting directory, pid in its name");
    cr_expect_null(strstr(r.err, "leak report"), "nothing on stderr: %s", r.err);
    snprintf(cmd, sizeof cmd, "rm -rf %s", d);
    system(cmd);
    run_free(&r);
}

Test(dest, symlink_is_replaced_not_followed)
{
    char *d = tmpdir();
    char target[200], link[200], env_rep[260];
    snprintf(target, sizeof target, "%s/precious", d);
    snprintf(link, sizeof link, "%s/report", d);
    FILE *f = fopen(target, "w");
    fputs("keep me\n", f);
    fclose(f);
    cr_assert_eq(symlink(target, link), 0);
    snprintf(env_rep, sizeof env_rep, "MEMSHIM_REPORT=%s", link);
    const char *env[] = { env_rep, NULL };
    run_t r = run_fixture("fixtures/leak_kinds", env);
    char *kept = slurp(target);
    cr_expect_str_eq(kept, "keep me\n", "the link's target is untouched");
    struct stat st;
    cr_assert_eq(lstat(link, &st), 0);
    cr_expect(S_ISREG(st.st_mode), "the report replaced the link");
    char *rep = slurp(link);
    cr_expect(strstr(rep, "LEAK SUMMARY"));
    free(kept);
    free(rep);
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf %s", d);
    system(cmd);
    run_free(&r);
}

Test(dest, unwritable_path_falls_back_to_stderr)
{
    const char *env[] = { "MEMSHIM_REPORT=/nonexistent/dir/r.txt", NULL };
    run_t r = run_fixture("fixtures/leak_kinds", env);
    cr_expect(strstr(r.err, "MEMSHIM_REPORT: cannot open /nonexistent/dir/r.txt for writing"), "%s", r.err);
    cr_expect(strstr(r.err, "definitely lost: 604 bytes in 4 blocks"));
    cr_expect(WIFEXITED(r.status) && WEXITSTATUS(r.status) == 0);
    run_free(&r);
}

/* A program that limits the size of its files (RLIMIT_FSIZE) and keeps
 * SIGXFSZ's default action: a report larger than the limit was cut at it,
 * the kernel's SIGXFSZ ended the program at exit (status 153 in a shell)
 * and a temporary file of 4096 bytes was left.  Now no write passes the
 * limit: the program's status is its own, one line says why the report is
 * not there, and nothing is left in the directory (standard error, a
 * file under the same limit here, gets what fits). */
Test(dest, a_file_size_limit_neither_ends_the_program_nor_leaves_a_cut_report)
{
    char *d = tmpdir(), env0[128];
    snprintf(env0, sizeof env0, "MEMSHIM_REPORT=%s/r.txt", d);
    const char *env[] = { env0, NULL };
    char *argv[] = { path_in_build("fixtures/fsize_limit"), "4096", NULL };
    run_t r = run_with(true, NULL, argv, env);
    cr_expect(WIFEXITED(r.status) && WEXITSTATUS(r.status) == 0, "status %d (SIGXFSZ is %d): %s", r.status,
              SIGXFSZ, r.err);
    char want[256];
    snprintf(want, sizeof want, "MEMSHIM_REPORT: writing %s/r.txt failed (the file size limit (RLIMIT_FSIZE) "
             "reached); nothing is kept there", d);
    cr_expect(strstr(r.err, want), "%s", r.err);
    DIR *dir = opendir(d);
    cr_assert(dir);
    int left = 0;
    for (struct dirent *e; (e = readdir(dir));) left += e->d_name[0] != '.';
    closedir(dir);
    cr_expect_eq(left, 0, "files left in %s", d);
    char cmd[100];
    snprintf(cmd, sizeof cmd, "rm -rf %s", d);
    system(cmd);
    run_free(&r);
}

Test(dest, report_survives_a_closed_stderr)
{
    run_t r = modes("closefd", NULL);
    cr_expect(strstr(r.err, "definitely lost: 100 bytes in 1 block"), "'%s'", r.err);
    run_free(&r);
}

/* A program that closes every descriptor, memshim's copy of standard error
 * among them (a daemon; closefrom): standard error, a file here, is opened
 * again for the report.  It was lost, without a word. */
Test(dest, report_survives_closing_every_descriptor)
{
    run_t r = modes("closeall", NULL);
    cr_expect(WIFEXITED(r.status) && WEXITSTATUS(r.status) == 0, "status %#x", r.status);
    cr_expect(strstr(r.err, "definitely lost: 100 bytes in 1 block"), "'%s'", r.err);
    run_free(&r);
}

/* quick_exit: the report is made, after the program's at_quick_exit
 * handlers (one loses 50 bytes).  There was none. */
Test(dest, quick_exit_reports_after_the_programs_handlers)
{
    run_t r = modes("quick", NULL);
    cr_expect(WIFEXITED(r.status) && WEXITSTATUS(r.status) == 0, "status %#x", r.status);
    cr_expect(strstr(r.err, "definitely lost: 150 bytes in 2 blocks"), "'%s'", r.err);
    run_free(&r);
}

/* ---- heap misuse ------------------------------------------------------------------------ */

Test(misuse, double_free_reports_both_stacks_and_aborts)
{
    run_t r = modes("double", NULL);
    cr_expect(WIFSIGNALED(r.status) && WTERMSIG(r.status) == SIGABRT, "status %d", r.status);
    cr_expect(strstr(r.err, "double free: 0x"), "%s", r.err);
    cr_expect(strstr(r.err, "allocated at:"));
    cr_expect(strstr(r.err, "first freed at:"));
    cr_expect(strstr(r.err, "main (leak_modes.c:"), "%s", r.err);
    run_free(&r);
}

/* The text of one stack section of a misuse report ("first freed at:" ...),
 * up to the next section: its frames, one per line. */
static char *section(const char *err, const char *title)
{
    const char *s = strstr(err, title);
    if (!s) return strdup("");
    s += strlen(title);
    const char *e = strstr(s, ":\n    ");             /* the next "    title:" line */
    size_t n = e ? (size_t)(e - s) : strlen(s);
    while (e && n && s[n - 1] != '\n') n--;            /* back to the start of that line */
    return strndup(s, n);
}

/* The first free's whole stack, not just its caller: the function that
 * freed, the one that called it, and main. */
Test(misuse, double_free_shows_the_first_frees_whole_stack)
{
    run_t r = modes("double_deep", NULL);
    cr_expect(WIFSIGNALED(r.status) && WTERMSIG(r.status) == SIGABRT, "status %d", r.status);
    char *first = section(r.err, "first freed at:"), *now = section(r.err, "now at:");
    cr_expect(strstr(first, " first_free_inner (") && strstr(first, " first_free_outer (") &&
              strstr(first, " main ("), "first free's stack:\n%s\nwhole message:\n%s", first, r.err);
    cr_expect(strstr(first, "#0 ") && strstr(first, "first_free_inner") < strstr(first, "first_free_outer"),
              "innermost frame first:\n%s", first);
    cr_expect(strstr(now, " main (") && !strstr(now, "first_free_"), "the second free's stack:\n%s", now);
    free(first);
    free(now);
    run_free(&r);
}

/* Objects freed by a collection share one free stack, the collection's (one
 * unwind, not one an object): a later free of one of their blocks shows it,
 * down to the function that called the collector and main. */
Test(misuse, double_free_of_a_block_a_collection_freed)
{
    static const char *samples[] = { NULL, "MEMSHIM_SAMPLE=1" };
    for (int i = 0; i < 2; i++) {
        const char *env[] = { samples[i], NULL };
        run_t r = modes("double_gc", env);
        cr_expect(WIFSIGNALED(r.status) && WTERMSIG(r.status) == SIGABRT, "status %d", r.status);
        cr_expect(strstr(r.err, "collected 2\n"), "%s", r.err);
        cr_expect(strstr(r.err, "double free: 0x"), "%s", r.err);
        char *first = section(r.err, "first freed at:"), *now = section(r.err, "now at:");
        cr_expect(strstr(first, " gc_collect_here (") && strstr(first, " main ("),
                  "first free's stack:\n%s\nwhole message:\n%s", first, r.err);
        cr_expect(strstr(now, " double_gc (") && !strstr(now, "gc_collect_here"), "the second free's stack:\n%s", now);
        free(first);
        free(now);
        run_free(&r);
    }
}

Test(misuse, continue_goes_on_after_the_message)
{
    const char *env[] = { "MEMSHIM_ON_ERROR=continue", NULL };
    static const char *m[] = { "double", "realloc", "invalid" };
    for (int i = 0; i < 3; i++) {
        run_t r = modes(m[i], env);
        cr_expect(WIFEXITED(r.status) && WEXITSTATUS(r.status) == 0, "%s: status %d", m[i], r.status);
        cr_expect(strstr(r.err, "memshim: "), "%s: %s", m[i], r.err);
        cr_expect(strstr(r.out, "done"));
        run_free(&r);
    }
}

Test(misuse, double_free_of_a_huge_block)
{
    run_t r = modes("double_huge", NULL);
    cr_expect(WIFSIGNALED(r.status) && WTERMSIG(r.status) == SIGABRT, "status %d", r.status);
    cr_expect(strstr(r.err, "double free of a large block: 0x"), "%s", r.err);
    /* with its stacks, as a small block's (it had none) */
    cr_expect(strstr(r.err, "is a block already freed") && strstr(r.err, "allocated at:") &&
              strstr(r.err, "first freed at:") && strstr(r.err, "now at:"), "%s", r.err);
    run_free(&r);
}

Test(misuse, realloc_of_freed_and_invalid_free_are_named)
{
    run_t r = modes("realloc", NULL);
    cr_expect(strstr(r.err, "realloc of a freed block"), "%s", r.err);
    cr_expect(WIFSIGNALED(r.status));
    run_free(&r);
    r = modes("invalid", NULL);
    cr_expect(strstr(r.err, "invalid pointer"), "%s", r.err);
    cr_expect(WIFSIGNALED(r.status));
    run_free(&r);
}

/* ---- on demand ------------------------------------------------------------------------- */

Test(demand, leak_check_api_writes_a_snapshot)
{
    run_t r = modes("check", NULL);
    cr_expect(strstr(r.out, "memshim_leak_check returned 1"), "%s", r.out);
    cr_expect(strstr(r.err, "memshim leak report (snapshot)"), "%s", r.err);
    cr_expect(strstr(r.err, "definitely lost: 100 bytes in 1 block"));
    run_free(&r);
}

Test(demand, report_signal_writes_a_snapshot)
{
    char *d = tmpdir();
    char path[200], snap[210], env_rep[260], signo[8];
    snprintf(path, sizeof path, "%s/snap.txt", d);
    snprintf(snap, sizeof snap, "%s.snap1", path);     /* a snapshot: never replaced by the exit report */
    snprintf(env_rep, sizeof env_rep, "MEMSHIM_REPORT=%s", path);
    snprintf(signo, sizeof signo, "%d", SIGUSR1);
    const char *env[] = { env_rep, "MEMSHIM_REPORT_SIGNAL=SIGUSR1", NULL };
    char *argv[] = { path_in_build("fixtures/leak_modes"), "signal", signo, snap, NULL };
    run_t r = run_with(true, NULL, argv, env);
    cr_expect(WIFEXITED(r.status) && WEXITSTATUS(r.status) == 0, "status %d %s", r.status, r.err);
    cr_expect(strstr(r.out, "report seen"), "%s", r.out);
    char *rep = slurp(snap);
    cr_expect(rep && strstr(rep, "memshim leak report (snapshot)") && strstr(rep, "definitely lost: 100 bytes in 1 block"),
              "%s", rep);
    free(rep);
    rep = slurp(path);
    cr_expect(rep && strstr(rep, "memshim leak report (at exit)"), "%s", rep);
    free(rep);
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf %s", d);
    system(cmd);
    run_free(&r);
}

Test(demand, scan_reads_only_pages_that_hold_data)
{
    run_t r = modes("reserve", NULL);
    cr_assert(WIFEXITED(r.status) && WEXITSTATUS(r.status) == 0, "%s", r.err);
    cr_expect(strstr(r.out, "memshim_leak_check returned 0"), "the block in the touched page is found: %s%s",
              r.out, r.err);
    const char *h = strstr(r.out, "hwm_kb ");
    cr_assert(h);
    long kb = atol(h + 7);
    cr_expect(kb > 0 && kb < 64 * 1024, "peak RSS %ld KiB: the untouched 256 MiB were faulted in", kb);
    run_free(&r);
}

/* ---- sampling ----------------------------------------------------------------------------- */

Test(sampling, estimates_scale_to_the_true_figures)
{
    const char *env[] = { "MEMSHIM_SAMPLE=4096", NULL };
    run_t r = modes("many", env);          /* 10000 x 100 B lost from one stack */
    long blocks = 0, bytes = 0;
    cr_assert(text_kind(r.err, "definitely lost", &blocks, &bytes), "%s", r.err);
    cr_expect(strstr(r.err, "figures are estimates"));
    cr_expect(bytes > 700000 && bytes < 1300000, "estimate %ld bytes for 1000000", bytes);
    cr_expect(blocks > 7000 && blocks < 13000, "estimate %ld blocks for 10000", blocks);
    run_free(&r);
}

/* ---- libunwind stays private ---------------------------------------------------------------- */

Test(unwind, cxx_exceptions_use_the_programs_unwinder)
{
    char *argv[] = { path_in_build("fixtures/cxx_throw"), NULL };
    run_t r = run_with(true, NULL, argv, NULL);
    cr_assert(WIFEXITED(r.status) && WEXITSTATUS(r.status) == 0, "%s", r.err);
    cr_expect(strstr(r.out, "caught 20000"));
    cr_expect(strstr(r.out, "_Unwind_RaiseException from ") && strstr(r.out, "libgcc_s"),
              "libunwind must not interpose _Unwind_*: %s", r.out);
    cr_expect_null(strstr(r.out, "backtrace from /usr/lib/x86_64-linux-gnu/libunwind"), "%s", r.out);
    run_free(&r);
}
