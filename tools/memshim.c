/* memshim.c - the `memshim` command, the front door to libmemshim: it runs a
 * program with the library preloaded and the options turned into MEMSHIM_*
 * variables, renders and compares leak reports, shows a running process's
 * figures and draws RSS logs.  See memshim(1); the variables are in
 * memshim(7).  This file: main, help, version and `run`. */
#include <errno.h>
#include <fcntl.h>
#include <glob.h>
#include <libgen.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include "memshim.h"
#include "../include/memshim.h"

#ifndef MS_TOOL_LIBDIR
#define MS_TOOL_LIBDIR "/usr/local/lib"
#endif

static const char usage_text[] =
"usage: memshim COMMAND [ARGS...]\n"
"\n"
"  run [OPTIONS] [--] PROGRAM [ARGS...]\n"
"                      run PROGRAM on memshim and say where the reports went\n"
"      --report FILE       leak report to FILE (%p: pid; default: stderr)\n"
"      --format text|json  leak report format (default: json if FILE ends in .json)\n"
"      --stats[=DEST]      heap statistics at exit to DEST (stderr, or a file; .json: JSON)\n"
"      --rss-log[=FILE]    RSS time series (default FILE: memshim.%p.rss)\n"
"      --profile FILE      heap profile at exit (.json, .pb.gz for pprof, .folded)\n"
"      --rss-interval MS   sampling interval of the RSS log (default 100)\n"
"      --stats-signal SIG  write the statistics whenever SIG arrives (e.g. USR2)\n"
"      --no-live           do not publish live figures for 'memshim stats PID'\n"
"      --sample BYTES      track one allocation per BYTES on average (k/m/g suffixes)\n"
"      --no-track          no leak tracking\n"
"      --exitcode N        exit with N when leaks are found\n"
"      --suppress FILE     leak suppressions\n"
"      --lib PATH          the libmemshim.so to preload\n"
"      -q, --quiet         do not list the reports at the end\n"
"  report FILE.json [--kind KIND] [--top N] [--format text|folded] [--why ADDR|FUNCTION]\n"
"                      render a saved leak report; folded: one line per stack;\n"
"                      --why: why the blocks of a record are still alive (its\n"
"                      allocating function, or an address in a block on the path)\n"
"  diff OLD.json NEW.json [--kind KIND] [--top N] [--all]\n"
"                      what grew and what is new, largest growth first\n"
"  stats PID [--json]  the current figures of a process run with MEMSHIM_LIVE=1\n"
"  top PID [-d SECONDS] [-n COUNT]\n"
"                      the same, refreshed like top(1); q or Ctrl-C quits\n"
"  exporter [--listen ADDR:PORT] [--once [--openmetrics]]\n"
"                      serve every readable process's live figures at /metrics\n"
"                      for Prometheus (default 127.0.0.1:9464); --once: print\n"
"                      one scrape on stdout\n"
"  plot RSSLOG -o FILE.svg [--title TEXT]\n"
"                      draw an RSS log (MEMSHIM_RSS_LOG) as an SVG picture\n"
"  graph FILE.json -o FILE.svg [--max-objects N] [--group N] [--format FMT]\n"
"                      draw the objects kept alive only by reference cycles\n"
"                      (Graphviz; .svg, .png, .pdf or .dot by the suffix)\n"
"  profile FILE.json [--top N] [--depth N] [--diff OLD.json]\n"
"                      a heap profile (MEMSHIM_PROFILE): sites by bytes at the\n"
"                      peak, by live bytes, by allocations, by temporaries, and\n"
"                      the size histogram; --diff: what changed since OLD\n"
"  flame FILE.json -o FILE.svg [--metric peak|inuse|alloc|temp] [--title TEXT]\n"
"                      draw a heap profile as an icicle graph (widths in bytes)\n"
"  help [COMMAND]      this text\n"
"  help env            the MEMSHIM_* variables the library reads\n"
"  --version           memshim's version\n"
"\n"
"KIND: definite, indirect, possible, reachable (or the report's own names,\n"
"e.g. definitely_lost), comma-separated.  See memshim(1) and memshim(7).\n";

/* `memshim help env`: every variable the library reads, from the table the
 * library itself is built from (shim/options.def). */
static int help_env(void)
{
    static const struct { const char *name, *doc; } vars[] = {
#define OPT(name, kind, where, lo, hi, form, doc) { #name, doc },
#include "options.def"
#undef OPT
    };
    puts("The library's settings, read from the environment at start-up (see memshim(7)).\n"
         "Each may also be given in MEMSHIM_OPTIONS as key=value, the key being the\n"
         "name's lower-case tail (MEMSHIM_STACK_DEPTH: stack_depth), pairs joined by ':'.\n");
    for (size_t i = 0; i < sizeof vars / sizeof *vars; i++) printf("  %-24s %s\n", vars[i].name, vars[i].doc);
    return 0;
}

static int cmd_help(int argc, char **argv)
{
    if (argc > 2) ms_usage_error("help: too many arguments");
    if (argc == 2 && strcmp(argv[1], "env") == 0) return help_env();
    if (argc == 2) {
        static const char *const known[] = { "run", "report", "diff", "stats", "top", "exporter", "plot", "graph",
                                             "profile", "flame", "help" };
        bool ok = false;
        for (size_t i = 0; i < sizeof known / sizeof *known; i++) ok |= strcmp(argv[1], known[i]) == 0;
        if (!ok) ms_usage_error("help: unknown command '%s'", argv[1]);
    }
    fputs(usage_text, stdout);
    return 0;
}

/* ---- run ------------------------------------------------------------------- */

/* The directory of this executable, from /proc/self/exe. */
static bool exe_dir(char *out, size_t cap)
{
    char buf[PATH_MAX];
    ssize_t n = readlink("/proc/self/exe", buf, sizeof buf - 1);
    if (n <= 0) return false;
    buf[n] = 0;
    snprintf(out, cap, "%s", dirname(buf));
    return true;
}

/* The library to preload: --lib, $MEMSHIM_LIBRARY, beside the command (the
 * build tree), ../lib beside it (an installation), then the configured
 * libdir. */
static bool find_library(const char *given, char *out, size_t cap)
{
    if (!given) given = getenv("MEMSHIM_LIBRARY");
    if (given) {
        if (!realpath(given, out)) {
            ms_warn("%s: %s", given, strerror(errno));
            return false;
        }
        return true;
    }
    char dir[PATH_MAX], cand[PATH_MAX + 64];
    const char *rel[] = { "%s/libmemshim.so", "%s/../lib/libmemshim.so.0", "%s/../lib/libmemshim.so" };
    if (exe_dir(dir, sizeof dir))
        for (size_t i = 0; i < sizeof rel / sizeof *rel; i++) {
            snprintf(cand, sizeof cand, rel[i], dir);
            if (access(cand, R_OK) == 0 && realpath(cand, out)) return true;
        }
    snprintf(cand, sizeof cand, "%s/libmemshim.so.0", MS_TOOL_LIBDIR);
    if (access(cand, R_OK) == 0 && realpath(cand, out)) return true;
    ms_warn("cannot find libmemshim.so beside %s or in %s (use --lib PATH or MEMSHIM_LIBRARY)",
            dir, MS_TOOL_LIBDIR);
    (void)cap;
    return false;
}

static void setenv_or_die(const char *name, const char *value)
{
    if (setenv(name, value, 1) != 0) { ms_warn("setenv %s: %s", name, strerror(errno)); exit(1); }
}

/* A file the run may have written: pattern with %p (or not). */
typedef struct { const char *what, *pattern; } output_t;

/* Print "memshim: WHAT: FILE" for the files the pattern names that were
 * written since `since`: the program's own (its pid), then any others (its
 * children's). */
static bool list_outputs(const output_t *o, pid_t pid, time_t since, char *found, size_t cap)
{
    if (!o->pattern || strcmp(o->pattern, "stderr") == 0) return false;
    char globpat[PATH_MAX * 2], mine[PATH_MAX * 2];
    size_t g = 0, m = 0;
    for (const char *s = o->pattern; *s && g + 24 < sizeof globpat && m + 24 < sizeof mine; s++) {
        if (s[0] == '%' && s[1] == 'p') {
            g += (size_t)snprintf(globpat + g, sizeof globpat - g, "[0-9]*");
            m += (size_t)snprintf(mine + m, sizeof mine - m, "%d", (int)pid);
            s++;
        } else if (s[0] == '%' && s[1] == '%') {
            globpat[g++] = '%'; mine[m++] = '%'; s++;
        } else {
            if (*s == '*' || *s == '?' || *s == '[' || *s == '\\') globpat[g++] = '\\';
            globpat[g++] = *s;
            mine[m++] = *s;
        }
    }
    globpat[g] = mine[m] = 0;
    struct stat st;
    bool any = false;
    bool own = false;
    if (stat(mine, &st) == 0 && st.st_mtime >= since) {
        fprintf(stderr, "%s: %s: %s\n", ms_prog, o->what, mine);
        snprintf(found, cap, "%s", mine);
        any = own = true;
    }
    if (strstr(o->pattern, "%p")) {
        glob_t gl;
        if (glob(globpat, 0, NULL, &gl) == 0) {
            for (size_t i = 0; i < gl.gl_pathc; i++)
                if (strcmp(gl.gl_pathv[i], mine) != 0 && stat(gl.gl_pathv[i], &st) == 0 &&
                    st.st_mtime >= since) {
                    fprintf(stderr, "%s: %s (child process): %s\n", ms_prog, o->what, gl.gl_pathv[i]);
                    any = true;
                }
            globfree(&gl);
        }
    }
    if (!any) fprintf(stderr, "%s: %s: none written (%s)\n", ms_prog, o->what, mine);
    return own;
}

static bool is_json_name(const char *p)
{
    size_t n = strlen(p);
    return n >= 5 && strcmp(p + n - 5, ".json") == 0;
}

int cmd_run(int argc, char **argv)
{
    const char *report = NULL, *format = NULL, *stats = NULL, *rss = NULL, *interval = NULL;
    const char *sample = NULL, *exitcode = NULL, *suppress = NULL, *lib = NULL, *sig = NULL;
    const char *profile = NULL;
    bool track = true, live = true, quiet = false;
    int i = 1;
    for (; i < argc; i++) {
        const char *a = argv[i], *v;
        if (strcmp(a, "--") == 0) { i++; break; }
        if (a[0] != '-') break;
        if ((v = ms_opt_value(argc, argv, &i, "--report"))) report = v;
        else if ((v = ms_opt_value(argc, argv, &i, "--format"))) format = v;
        else if (strcmp(a, "--stats") == 0) stats = "stderr";
        else if (strncmp(a, "--stats=", 8) == 0) stats = a + 8;
        else if (strcmp(a, "--rss-log") == 0) rss = "memshim.%p.rss";
        else if (strncmp(a, "--rss-log=", 10) == 0) rss = a + 10;
        else if ((v = ms_opt_value(argc, argv, &i, "--rss-interval"))) interval = v;
        else if ((v = ms_opt_value(argc, argv, &i, "--profile"))) profile = v;
        else if ((v = ms_opt_value(argc, argv, &i, "--stats-signal"))) sig = v;
        else if ((v = ms_opt_value(argc, argv, &i, "--sample"))) sample = v;
        else if ((v = ms_opt_value(argc, argv, &i, "--exitcode"))) exitcode = v;
        else if ((v = ms_opt_value(argc, argv, &i, "--suppress"))) suppress = v;
        else if ((v = ms_opt_value(argc, argv, &i, "--lib"))) lib = v;
        else if (strcmp(a, "--no-track") == 0) track = false;
        else if (strcmp(a, "--no-live") == 0) live = false;
        else if (strcmp(a, "-q") == 0 || strcmp(a, "--quiet") == 0) quiet = true;
        else ms_usage_error("run: unknown option '%s'", a);
    }
    if (i >= argc) ms_usage_error("run: no program given (memshim run [OPTIONS] -- PROGRAM [ARGS...])");
    char **prog = argv + i;

    /* Check every value before running anything. */
    uint64_t n;
    if (report && !*report) ms_usage_error("run --report: empty file name");
    if (format && strcmp(format, "text") != 0 && strcmp(format, "json") != 0)
        ms_usage_error("run --format %s: expected text or json", format);
    if (stats && !*stats) ms_usage_error("run --stats=: empty destination");
    if (rss && !*rss) ms_usage_error("run --rss-log=: empty file name");
    if (profile && !*profile) ms_usage_error("run --profile: empty file name");
    if (profile && !track) ms_usage_error("run --profile: a heap profile needs tracking (no --no-track)");
    if (interval && (!ms_parse_u64(interval, &n) || n < 1 || n > 3600000))
        ms_usage_error("run --rss-interval %s: expected milliseconds, 1 to 3600000", interval);
    if (sample && !ms_parse_size(sample, &n))
        ms_usage_error("run --sample %s: expected a number of bytes, e.g. 4096 or 512k", sample);
    if (exitcode && (!ms_parse_u64(exitcode, &n) || n > 255))
        ms_usage_error("run --exitcode %s: expected a number from 0 to 255", exitcode);
    if (suppress && access(suppress, R_OK) != 0) {
        ms_warn("run --suppress %s: %s", suppress, strerror(errno));
        return 1;
    }
    char libpath[PATH_MAX];
    if (!find_library(lib, libpath, sizeof libpath)) return 127;

    /* The environment of the program. */
    const char *old = getenv("LD_PRELOAD");
    char *preload = malloc(strlen(libpath) + (old ? strlen(old) : 0) + 2);
    if (!preload) { ms_warn("out of memory"); return 1; }
    sprintf(preload, "%s%s%s", libpath, old && *old ? ":" : "", old ? old : "");
    setenv_or_die("LD_PRELOAD", preload);
    free(preload);
    if (report) setenv_or_die("MEMSHIM_REPORT", report);
    if (format) setenv_or_die("MEMSHIM_REPORT_FORMAT", format);
    else if (report && is_json_name(report)) setenv_or_die("MEMSHIM_REPORT_FORMAT", "json");
    if (stats) setenv_or_die("MEMSHIM_STATS", stats);
    if (rss) setenv_or_die("MEMSHIM_RSS_LOG", rss);
    if (profile) setenv_or_die("MEMSHIM_PROFILE", profile);
    if (interval) setenv_or_die("MEMSHIM_RSS_INTERVAL", interval);
    if (sig) setenv_or_die("MEMSHIM_STATS_SIGNAL", sig);
    if (sample) setenv_or_die("MEMSHIM_SAMPLE", sample);
    if (!track) setenv_or_die("MEMSHIM_TRACK", "0");
    if (exitcode) setenv_or_die("MEMSHIM_EXITCODE", exitcode);
    if (suppress) setenv_or_die("MEMSHIM_SUPPRESS", suppress);
    setenv_or_die("MEMSHIM_LIVE", live ? "1" : "0");

    time_t start = time(NULL);
    /* Like system(): the terminal's ^C and ^\ go to the program, not to us. */
    struct sigaction ign = { .sa_handler = SIG_IGN }, old_int, old_quit;
    sigemptyset(&ign.sa_mask);
    sigaction(SIGINT, &ign, &old_int);
    sigaction(SIGQUIT, &ign, &old_quit);
    pid_t pid = fork();
    if (pid < 0) { ms_warn("fork: %s", strerror(errno)); return 1; }
    if (pid == 0) {
        sigaction(SIGINT, &old_int, NULL);
        sigaction(SIGQUIT, &old_quit, NULL);
        execvp(prog[0], prog);
        int e = errno;
        fprintf(stderr, "%s: %s: %s\n", ms_prog, prog[0], strerror(e));
        _exit(e == ENOENT ? 127 : 126);
    }
    unsetenv("LD_PRELOAD");
    int status;
    while (waitpid(pid, &status, 0) < 0)
        if (errno != EINTR) { ms_warn("waitpid: %s", strerror(errno)); return 1; }
    sigaction(SIGINT, &old_int, NULL);
    sigaction(SIGQUIT, &old_quit, NULL);

    if (!quiet) {
        output_t outs[] = {
            { "leak report", report }, { "statistics", stats }, { "rss log", rss },
            { "heap profile", profile },
        };
        char found[4][PATH_MAX * 2];
        bool got[4];
        for (size_t k = 0; k < 4; k++) got[k] = list_outputs(&outs[k], pid, start, found[k], sizeof found[k]);
        if (got[0] && is_json_name(found[0]))
            fprintf(stderr, "%s: read the leak report with: memshim report %s\n", ms_prog, found[0]);
        if (got[2])
            fprintf(stderr, "%s: draw the rss log with: memshim plot %s -o rss.svg\n", ms_prog, found[2]);
        if (got[3] && is_json_name(found[3]))
            fprintf(stderr, "%s: read the heap profile with: memshim profile %s\n", ms_prog, found[3]);
    }
    if (WIFEXITED(status)) return WEXITSTATUS(status);
    if (WIFSIGNALED(status)) {
        int s = WTERMSIG(status);
        if (!quiet) fprintf(stderr, "%s: %s killed by signal %d (%s)\n", ms_prog, prog[0], s, strsignal(s));
        /* Die the same way, so that our caller sees what the program did. */
        struct rlimit no_core = { 0, 0 };
        setrlimit(RLIMIT_CORE, &no_core);
        signal(s, SIG_DFL);
        sigset_t set;
        sigemptyset(&set);
        sigaddset(&set, s);
        sigprocmask(SIG_UNBLOCK, &set, NULL);
        raise(s);
        return 128 + s;
    }
    return 1;
}

/* ---- main ---------------------------------------------------------------------- */

int main(int argc, char **argv)
{
    if (argc < 2) ms_usage_error("no command given");
    const char *c = argv[1];
    if (strcmp(c, "--version") == 0 || strcmp(c, "version") == 0) {
        if (argc > 2) ms_usage_error("--version takes no arguments");
        printf("memshim %s\n", MEMSHIM_VERSION);
        return 0;
    }
    if (strcmp(c, "help") == 0 || strcmp(c, "--help") == 0 || strcmp(c, "-h") == 0)
        return cmd_help(argc - 1, argv + 1);
    static const struct { const char *name; int (*fn)(int, char **); } cmds[] = {
        { "run", cmd_run }, { "report", cmd_report }, { "diff", cmd_diff },
        { "stats", cmd_stats }, { "top", cmd_top }, { "plot", cmd_plot },
        { "graph", cmd_graph }, { "exporter", cmd_exporter },
        { "profile", cmd_profile }, { "flame", cmd_flame },
    };
    for (size_t i = 0; i < sizeof cmds / sizeof *cmds; i++)
        if (strcmp(c, cmds[i].name) == 0) return cmds[i].fn(argc - 1, argv + 1);
    ms_usage_error("unknown command '%s'", c);
}
