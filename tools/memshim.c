/* memshim.c - the `memshim` command, the front door to libmemshim: it runs a
 * program with the library preloaded and the options turned into MEMSHIM_*
 * variables, renders and compares leak reports, shows a running process's
 * figures and draws RSS logs.  See memshim(1); the variables are in
 * memshim(7).  This file: main, help, version and `run`. */
#include <errno.h>
#include <fcntl.h>
#include <fnmatch.h>
#include <glob.h>
#include <libgen.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include "leaks.h"
#include "near.h"
#include "outname.h"
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
"      --profile-interval MS  also every MS milliseconds (%n in FILE numbers them)\n"
"      --rss-interval MS   sampling interval of the RSS log (default 100)\n"
"      --stats-signal SIG  write the statistics whenever SIG arrives (e.g. USR2)\n"
"      --no-live           do not publish live figures for 'memshim stats PID'\n"
"      --sample BYTES      track one allocation per BYTES on average (k/m/g suffixes)\n"
"      --no-track          no leak tracking\n"
"      --exitcode N        exit with N when leaks or heap errors are found\n"
"      --suppress FILE     leak suppressions\n"
"      --lib PATH          the libmemshim.so to preload\n"
"      -q, --quiet         do not list the reports at the end\n"
"      (and --show, --stack-depth, --report-signal, --on-error, --leak-since,\n"
"      valgrind's --leak-check, --num-callers... : memshim help run)\n"
"  report FILE.json [--kind KIND] [--top N] [--format text|folded] [--why ADDR|FUNCTION]\n"
"                      render a saved leak report; folded: one line per stack;\n"
"                      --why: why the blocks of a record are still alive (its\n"
"                      allocating function, or an address in a block on the path)\n"
"  diff OLD.json NEW.json [MORE.json...] [--kind KIND] [--top N] [--all]\n"
"                      what grew and what is new, largest growth first;\n"
"                      three reports or more: across the series\n"
"  stats PID [--json]  the current figures of a process run with MEMSHIM_LIVE=1\n"
"  top PID [-d SECONDS] [-n COUNT]\n"
"                      the same, refreshed like top(1); q or Ctrl-C quits\n"
"  exporter [--listen ADDR:PORT] [--once [--openmetrics]]\n"
"                      serve every readable process's live figures at /metrics\n"
"                      for Prometheus (default 127.0.0.1:9464); --once: print\n"
"                      one scrape on stdout\n"
"  plot RSSLOG -o FILE.svg [--title TEXT] [--sites|--no-sites]\n"
"                      draw an RSS log (MEMSHIM_RSS_LOG) as an SVG picture,\n"
"                      with the heap by top allocation sites when logged\n"
"  graph FILE.json -o FILE.svg [--max-objects N] [--group N] [--format FMT]\n"
"                      draw the objects kept alive only by reference cycles\n"
"                      (Graphviz; .svg, .png, .pdf or .dot by the suffix)\n"
"  profile FILE.json|FILE.pb.gz [--top N] [--depth N] [--diff OLD]\n"
"                      a heap profile (MEMSHIM_PROFILE): sites by bytes at the\n"
"                      peak, by live bytes, by allocations, by temporaries, and\n"
"                      the size histogram; --diff: what changed since OLD\n"
"  flame FILE.json|FILE.pb.gz -o FILE.svg [--metric peak|inuse|alloc|temp] [--title TEXT]\n"
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

/* Each command's own help: `memshim help CMD`, `memshim CMD --help`. */
static const struct { const char *name, *text; } command_help[] = {
    { "run",
"usage: memshim run [OPTIONS] [--] PROGRAM [ARGS...]\n"
"\n"
"Run PROGRAM with libmemshim preloaded, the options turned into MEMSHIM_*\n"
"variables (memshim(7)); pass its exit status through; list the reports the\n"
"run wrote, one line per process with its leak summary.\n"
"\n"
"  --report FILE         leak report to FILE (MEMSHIM_REPORT; %p: pid, %n: the\n"
"                        report's number; .json: JSON); default stderr.  Each\n"
"                        process of the run writes its own (FILE.PID)\n"
"  --format text|json    leak report format (MEMSHIM_REPORT_FORMAT)\n"
"  --show KINDS          kinds listed: definite,indirect,possible,reachable,\n"
"                        all, none, summary (MEMSHIM_SHOW)\n"
"  --stack-depth N       frames per allocation stack, 1 to 64 (MEMSHIM_STACK_DEPTH)\n"
"  --no-free-stacks      frees keep no stack: cheaper; a double free shows where the\n"
"                        block was allocated only (MEMSHIM_FREE_STACKS=0)\n"
"  --why-depth N         blocks shown per retention path, 0 to 1000 (MEMSHIM_WHY_DEPTH)\n"
"  --report-signal SIG   a leak report whenever SIG arrives (MEMSHIM_REPORT_SIGNAL)\n"
"  --leak-since          flag records new or grown since the last report (MEMSHIM_LEAK_SINCE)\n"
"  --on-error abort|continue\n"
"                        after a double, invalid or mismatched free (MEMSHIM_ON_ERROR)\n"
"  --exitcode N          exit with N when leaks or heap errors are found (MEMSHIM_EXITCODE)\n"
"  --suppress FILE       leak suppressions (MEMSHIM_SUPPRESS)\n"
"  --gen-suppressions    a suppression after each record (MEMSHIM_GEN_SUPPRESSIONS)\n"
"  --stats[=DEST]        heap statistics at exit to DEST (stderr, or a file; .json: JSON)\n"
"  --stats-signal SIG    write the statistics whenever SIG arrives (e.g. USR2)\n"
"  --rss-log[=FILE]      RSS time series (default FILE: memshim.%p.rss)\n"
"  --rss-interval MS     sampling interval of the RSS log (default 100)\n"
"  --no-live             do not publish live figures for 'memshim stats PID'\n"
"  --sample BYTES        track one allocation per BYTES on average (k/m/g suffixes)\n"
"  --no-track            no leak tracking\n"
"  --profile FILE        heap profile at exit (MEMSHIM_PROFILE; .json, .pb.gz for pprof,\n"
"                        .folded)\n"
"  --profile-interval MS also every MS milliseconds (MEMSHIM_PROFILE_INTERVAL; %n in\n"
"                        FILE numbers them)\n"
"  --lib PATH            the libmemshim.so to preload\n"
"  -q, --quiet           do not list the reports at the end\n"
"\n"
"valgrind's spellings, as aliases:\n"
"  --leak-check=no|summary|full   --show none | --show summary | the default kinds\n"
"  --show-leak-kinds=KINDS        --show KINDS\n"
"  --num-callers=N                --stack-depth N (at most 64)\n"
"  --keep-stacktraces=alloc|alloc-and-free\n"
"                                 alloc: --no-free-stacks; alloc-and-free (and\n"
"                                 alloc-then-free): the default\n"
"  --error-exitcode=N             --exitcode N\n"
"  --suppressions=FILE            --suppress FILE (one file)\n"
"  --gen-suppressions=yes|all|no  --gen-suppressions (yes and all alike) or none\n"
"  --log-file=FILE                --report FILE (the report holds the heap errors too)\n"
"  --trace-children=yes|no        no: the programs PROGRAM starts run without memshim\n"
"                                 (MEMSHIM_TRACE_CHILDREN=0); yes: the default\n" },
    { "report",
"usage: memshim report FILE.json [--kind KIND] [--top N] [--format text|folded] [--why ADDR|FUNCTION]\n"
"\n"
"Render a saved JSON leak report: the totals, then each record, largest\n"
"first, with its stack.  --format folded: one line per stack, the kind\n"
"first (flame-graph input); --why: why the blocks of a record are still\n"
"alive (its allocating function or FILE:LINE, or an address on the path).\n"
"KIND: definite, indirect, possible, reachable, comma-separated.\n" },
    { "diff",
"usage: memshim diff OLD.json NEW.json [MORE.json...] [--kind KIND] [--top N] [--all]\n"
"\n"
"Two reports: what grew and what is new, largest growth first (--all: what\n"
"shrank and is gone too).  Three or more (a series of snapshots): each\n"
"kind report by report, and the records that grew from the first to the\n"
"last, with their bytes in every report and the steps they grew in.\n" },
    { "stats",
"usage: memshim stats PID [--json]\n"
"\n"
"The current figures of a process run with MEMSHIM_LIVE=1 (memshim run sets\n"
"it).  PID may be that of a 'memshim run': its program is followed.\n" },
    { "top",
"usage: memshim top PID [-d SECONDS] [-n COUNT]\n"
"\n"
"The figures of 'memshim stats', refreshed like top(1); q or Ctrl-C quits.\n"
"PID may be that of a 'memshim run' (memshim run ... & memshim top $!).\n" },
    { "exporter",
"usage: memshim exporter [--listen ADDR:PORT] [--once [--openmetrics]]\n"
"\n"
"Serve the live figures of every process that publishes them (MEMSHIM_LIVE,\n"
"on under memshim run) at /metrics over HTTP, in the Prometheus text format,\n"
"or OpenMetrics when the scraper asks for it.  Only the processes of the\n"
"exporter's own user are read, unless it runs as root.\n"
"\n"
"  --listen ADDR:PORT    where to listen (default 127.0.0.1:9464; [ADDR6]:PORT\n"
"                        for IPv6, :PORT for every IPv4 address, port 0: any)\n"
"  --once                one scrape on standard output, then exit\n"
"  --openmetrics         with --once: OpenMetrics 1.0 rather than text 0.0.4\n" },
    { "plot",
"usage: memshim plot RSSLOG -o FILE.svg [--title TEXT] [--sites|--no-sites]\n"
"\n"
"Draw an RSS log (MEMSHIM_RSS_LOG) as an SVG picture.  A log of a tracked\n"
"run holds the top allocation sites: drawn as stacked areas under the lines,\n"
"named in a legend, the heap's peak marked (--no-sites: not drawn; --sites:\n"
"exit 1 when the log has none).\n" },
    { "graph",
"usage: memshim graph FILE.json -o FILE.svg [--max-objects N] [--group N] [--format FMT]\n"
"\n"
"Draw the objects a report finds alive only through reference cycles, and\n"
"the lost cycles of malloc blocks, with Graphviz (.svg, .png, .pdf or .dot\n"
"by the suffix): each object with its allocation site and reference count,\n"
"identical groups drawn once with their count.\n" },
    { "profile",
"usage: memshim profile FILE.json|FILE.pb.gz [--top N] [--depth N] [--diff OLD]\n"
"\n"
"A heap profile (MEMSHIM_PROFILE=FILE.json or FILE.pb.gz, memshim run\n"
"--profile; or another writer's pprof heap profile, Go's say): the\n"
"peak, the live heap, the allocations and temporaries, then the top N\n"
"(10) sites with their stacks (--depth frames, 6) by bytes at the peak, by\n"
"bytes live, by allocations and by temporary allocations (freed before\n"
"their thread's next allocation), and the allocation size histogram.\n"
"--diff OLD: the sites whose live bytes and bytes at the peak changed\n"
"most since OLD (as tracemalloc's compare_to).\n" },
    { "flame",
"usage: memshim flame FILE.json|FILE.pb.gz -o FILE.svg [--metric peak|inuse|alloc|temp] [--title TEXT]\n"
"\n"
"Draw one metric of a heap profile as a static SVG icicle graph: outermost\n"
"frames on top, each frame as wide as its bytes, labelled where it fits.\n"
"peak: bytes live at the peak (default); inuse: bytes live when written;\n"
"alloc: bytes allocated; temp: bytes of temporary allocations.\n" },
};

/* A name weighed by shim/near.h: p[0..len). */
typedef struct { const char *p; size_t len; } name_t;

/* "memshim: WHAT 'ARG' (did you mean A, B or C?)": the names near found,
 * each after `dashes`; else "(see 'memshim help[ CMD]')"; exit 2. */
static __attribute__((noreturn)) void no_such(const char *what, const char *arg, const ms_near_t *near,
                                               const char *dashes, const char *cmd)
{
    unsigned n = ms_near_count(near);
    fprintf(stderr, "%s: %s '", ms_prog, what);
    ms_text(stderr, arg);                         /* one line, whatever arg holds */
    fputs("' (", stderr);
    if (!n) fprintf(stderr, "see 'memshim help%s%s'", cmd ? " " : "", cmd ? cmd : "");
    for (unsigned i = 0; i < n; i++) {
        const name_t *o = near->what[i];
        fprintf(stderr, "%s%s%.*s", i == 0 ? "did you mean " : i + 1 < n ? ", " : " or ", dashes, (int)o->len, o->p);
    }
    fputs(n ? "?)\n" : ")\n", stderr);
    exit(EXIT_USAGE);
}

/* An option cmd does not have: one line naming it with the options of
 * cmd's help nearest to it (shim/near.h, as the library weighs a misspelt
 * variable: --stak-depth, --stack-depth; --rss, --rss-log or
 * --rss-interval; -report, --report), else where they are listed. */
void ms_unknown_option(const char *cmd, const char *arg)
{
    const char *help = NULL;
    for (size_t i = 0; i < sizeof command_help / sizeof *command_help; i++)
        if (strcmp(cmd, command_help[i].name) == 0) help = command_help[i].text;
    const char *given = arg + (arg[1] == '-' ? 2 : 1);
    ms_near_t near;
    ms_near_start(&near, given, strcspn(given, "="));
    static const char letters[] = "abcdefghijklmnopqrstuvwxyz0123456789-";
    name_t seen[64];
    size_t nseen = 0;
    for (const char *s = help; s && (s = strstr(s, "--")); s += 2) {   /* "--name" after a space, [ or ( */
        name_t o = { s + 2, strspn(s + 2, letters) };
        if (!o.len || o.p[0] == '-' || (s > help && !strchr(" [(\n", s[-1]))) continue;
        bool dup = false;
        for (size_t k = 0; k < nseen && !dup; k++) dup = seen[k].len == o.len && strncmp(seen[k].p, o.p, o.len) == 0;
        if (dup || nseen == sizeof seen / sizeof *seen) continue;
        seen[nseen] = o;
        ms_near_offer(&near, o.p, o.len, &seen[nseen++]);
    }
    char what[64];
    snprintf(what, sizeof what, "%s: unknown option", cmd);
    no_such(what, arg, &near, "--", help ? cmd : NULL);
}

/* The command's own help, or the summary of all when it has none. */
static int print_help(const char *cmd)
{
    for (size_t i = 0; cmd && i < sizeof command_help / sizeof *command_help; i++)
        if (strcmp(cmd, command_help[i].name) == 0) { fputs(command_help[i].text, stdout); return 0; }
    fputs(usage_text, stdout);
    return 0;
}

static int cmd_help(int argc, char **argv);
/* The commands. */
static const struct { const char *name; int (*fn)(int, char **); } commands[] = {
    { "run", cmd_run }, { "report", cmd_report }, { "diff", cmd_diff },
    { "stats", cmd_stats }, { "top", cmd_top }, { "plot", cmd_plot },
    { "graph", cmd_graph }, { "exporter", cmd_exporter },
    { "profile", cmd_profile }, { "flame", cmd_flame }, { "help", cmd_help },
};

/* A command that is none of them: the nearest named (memshim reprot:
 * report), else the summary's place. */
static void unknown_command(const char *what, const char *c)
{
    ms_near_t near;
    name_t names[sizeof commands / sizeof *commands];
    ms_near_start(&near, c, strlen(c));
    for (size_t i = 0; i < sizeof commands / sizeof *commands; i++) {
        names[i] = (name_t){ commands[i].name, strlen(commands[i].name) };
        ms_near_offer(&near, names[i].p, names[i].len, &names[i]);
    }
    no_such(what, c, &near, "", NULL);
}

static int cmd_help(int argc, char **argv)
{
    if (argc > 2) ms_usage_error("help: too many arguments");
    if (argc == 2 && strcmp(argv[1], "env") == 0) return help_env();
    if (argc == 2) {
        bool ok = false;
        for (size_t i = 0; i < sizeof commands / sizeof *commands; i++) ok |= strcmp(argv[1], commands[i].name) == 0;
        if (!ok) unknown_command("help: unknown command", argv[1]);
    }
    return print_help(argc == 2 ? argv[1] : NULL);
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
        /* The loader only warns of a file it cannot preload, and the program
         * then ran without memshim ("none written"). */
        char magic[4] = "";
        FILE *f = fopen(out, "rb");
        bool elf = f && fread(magic, 1, 4, f) == 4 && memcmp(magic, "\177ELF", 4) == 0;
        if (f) fclose(f);
        if (!elf) {
            ms_warn("%s: %s", given, f ? "not a shared object (libmemshim.so)" : strerror(errno));
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

/* An output name filled in for the command (outname.h's walk): %p the
 * number pid (any number if pid < 0, in a glob), %n any number in a glob
 * (else left as written), %h this host's name (the program runs here),
 * %% a percent sign; in a glob, the characters special to glob() escaped. */
typedef struct {
    char *out;
    size_t cap, g;
    pid_t pid;
    bool glob;
} name_fill_t;

static bool fill_piece(void *ctx, char seq, const char *text, size_t len)
{
    name_fill_t *f = ctx;
    char num[24], host[256];
    bool escape = f->glob;
    if (seq == 'p' && f->pid >= 0) {
        len = (size_t)snprintf(num, sizeof num, "%d", (int)f->pid);
        text = num;
    } else if ((seq == 'p' || seq == 'n') && f->glob) {
        text = "[0-9]*", len = 6, escape = false;
    } else if (seq == 'n') {
        text = "%n", len = 2;
    } else if (seq == 'h') {
        len = ms_host_name(host, sizeof host);
        text = host;
    }
    for (size_t i = 0; i < len; i++) {
        if (f->g + 3 >= f->cap) return false;
        if (escape && strchr("*?[\\", text[i])) f->out[f->g++] = '\\';
        f->out[f->g++] = text[i];
    }
    return true;
}

static void fill_name(const char *pattern, pid_t pid, bool glob, char *out, size_t cap)
{
    name_fill_t f = { out, cap, 0, pid, glob };
    ms_outname_walk(pattern, fill_piece, &f);          /* cut where it does not fit */
    out[f.g] = 0;
}

/* pattern as a glob for the files a run's processes write (pid < 0: any
 * process's). */
static void glob_of(const char *pattern, pid_t pid, char *out, size_t cap) { fill_name(pattern, pid, true, out, cap); }

/* pattern as the file a process pid writes, for messages: %n left as the
 * user wrote it. */
static void expand_for(const char *pattern, pid_t pid, char *out, size_t cap) { fill_name(pattern, pid, false, out, cap); }

/* A file the run may have written: pattern with %p (or not). */
typedef struct { const char *what, *pattern; } output_t;

/* Print "memshim: WHAT: FILE" for the files the pattern names that were
 * written since `since`: the program's own (its pid), then any others (its
 * children's). */
/* Whether st's file was written at or after `since`, a time of the coarse
 * clock the kernel stamps files with: a file written after it is never
 * stamped before.  Compared in whole seconds, a report another program
 * wrote earlier in the same second was listed as the run's (found by a
 * helper). */
static bool written_since(const struct stat *st, const struct timespec *since)
{
    return st->st_mtim.tv_sec > since->tv_sec ||
           (st->st_mtim.tv_sec == since->tv_sec && st->st_mtim.tv_nsec >= since->tv_nsec);
}

static bool list_outputs(const output_t *o, pid_t pid, const struct timespec *since, char *found, size_t cap)
{
    if (!o->pattern || strcmp(o->pattern, "stderr") == 0) return false;
    char globpat[PATH_MAX * 2], mine[PATH_MAX * 2];
    glob_of(o->pattern, -1, globpat, sizeof globpat);
    glob_of(o->pattern, pid, mine, sizeof mine);
    struct stat st;
    bool any = false, own = false;
    struct timespec newest = { 0, 0 };
    glob_t gl;
    if (glob(mine, 0, NULL, &gl) == 0) {          /* several with %n: a series */
        for (size_t i = 0; i < gl.gl_pathc; i++) {
            const char *p = gl.gl_pathv[i];
            if (strstr(p, ".tmp.") || stat(p, &st) != 0 || !written_since(&st, since)) continue;
            fprintf(stderr, "%s: %s: %s\n", ms_prog, o->what, p);
            if (!own || st.st_mtim.tv_sec > newest.tv_sec ||        /* the newest is the one to read */
                (st.st_mtim.tv_sec == newest.tv_sec && st.st_mtim.tv_nsec >= newest.tv_nsec)) {
                snprintf(found, cap, "%s", p);
                newest = st.st_mtim;
            }
            any = own = true;
        }
        globfree(&gl);
    }
    if (!strstr(o->pattern, "%p")) {
        size_t g = strlen(globpat);
        if (g + 8 < sizeof globpat) memcpy(globpat + g, ".[0-9]*", 8);  /* a child's own: name.PID */
    }
    if (glob(globpat, 0, NULL, &gl) == 0) {
        for (size_t i = 0; i < gl.gl_pathc; i++) {
            const char *p = gl.gl_pathv[i];
            if (fnmatch(mine, p, 0) != 0 && !strstr(p, ".tmp.") && stat(p, &st) == 0 && written_since(&st, since)) {
                fprintf(stderr, "%s: %s (child process): %s\n", ms_prog, o->what, p);
                any = true;
            }
        }
        globfree(&gl);
    }
    if (!any) {
        char shown[PATH_MAX * 2];
        expand_for(o->pattern, pid, shown, sizeof shown);
        fprintf(stderr, "%s: %s: none written (%s)\n", ms_prog, o->what, shown);
    }
    return own;
}

static bool is_json_name(const char *p)
{
    size_t n = strlen(p);
    return n >= 5 && strcmp(p + n - 5, ".json") == 0;
}

/* ---- the leak reports of a run ---------------------------------------------- *
 * Every process of the run writes its own (the library's rules): the name
 * with %p and %n filled in, and with .PID (a child whose name has no %p)
 * or .snapN (a snapshot whose name has no %n) appended.  After the program
 * has ended, those written since it started are found by globbing, and
 * each gets one line: its process and its summary. */
/* A report of the run: JSON (the model, quietly), else a text report's
 * summary lines; pid -1 when it is neither. */
static void load_summary(const char *path, report_t *r)
{
    if (!ms_report_load(path, MS_LOAD_LEAKS | MS_LOAD_QUIET, r) && !ms_report_load_text(path, r))
        ms_report_free(r);
}

static int by_report_path(const void *a, const void *b)
{
    return strcmp(((const report_t *)a)->path, ((const report_t *)b)->path);
}

static void print_report_line(const report_t *r, pid_t pid)
{
    fprintf(stderr, "%s: leak report: %s", ms_prog, r->path);
    if (r->pid < 0) { fprintf(stderr, "\n"); return; }
    fprintf(stderr, ": pid %lld%s", r->pid, r->pid == pid ? "" : " (child process)");
    if (r->program && r->program[0]) fprintf(stderr, " %s", r->program);
    fprintf(stderr, " (%s%s%s%s):", r->when && r->when[0] ? r->when : "?", r->signal[0] ? ", on " : "", r->signal,
            r->stack_overflow ? ", its stack overflowed" : "");
    for (int k = 0; k < 4; k++) {
        const total_t *t = ms_report_total(r, ms_kind_key[k]);
        uint64_t bytes = t ? t->bytes : 0, blocks = t ? t->blocks : 0;
        fprintf(stderr, "%s %s %llu byte%s in %llu block%s", k ? "," : "", ms_kind_words[k],
                (unsigned long long)bytes, bytes == 1 ? "" : "s", (unsigned long long)blocks, blocks == 1 ? "" : "s");
    }
    if (r->heap_errors > 0) fprintf(stderr, ", %lld heap error%s", r->heap_errors, r->heap_errors == 1 ? "" : "s");
    fprintf(stderr, "\n");
}

/* Lists the run's leak reports; the program's own exit report in own. */
static bool list_reports(const char *pattern, pid_t pid, const struct timespec *since, char *own, size_t cap)
{
    if (!pattern || strcmp(pattern, "stderr") == 0) return false;
    char pat[PATH_MAX * 2], more[PATH_MAX * 2 + 4];
    glob_of(pattern, -1, pat, sizeof pat);
    snprintf(more, sizeof more, "%s.*", pat);
    glob_t gl;
    memset(&gl, 0, sizeof gl);
    glob(pat, 0, NULL, &gl);
    glob(more, GLOB_APPEND, NULL, &gl);
    report_t *r = calloc(gl.gl_pathc + 1, sizeof *r);
    size_t n = 0;
    for (size_t i = 0; r && i < gl.gl_pathc; i++) {
        struct stat st;
        const char *p = gl.gl_pathv[i];
        if (strstr(p, ".tmp.") || stat(p, &st) != 0 || !S_ISREG(st.st_mode) || !written_since(&st, since)) continue;
        load_summary(p, &r[n++]);
    }
    qsort(r, n, sizeof *r, by_report_path);
    bool got = false;
    for (int pass = 0; pass < 2; pass++)          /* the program's own first, then its children's */
        for (size_t i = 0; i < n; i++)
            if ((r[i].pid == pid) == (pass == 0)) {
                print_report_line(&r[i], pid);
                if (pass == 0 && r[i].when && strcmp(r[i].when, "at exit") == 0) { snprintf(own, cap, "%s", r[i].path); got = true; }
            }
    if (!n) fprintf(stderr, "%s: leak report: none written (%s)\n", ms_prog, pattern);
    for (size_t i = 0; i < n; i++) ms_report_free(&r[i]);
    free(r);
    globfree(&gl);
    return got;
}

/* A comma list of definite, indirect, possible, reachable, all, none
 * (and summary), as MEMSHIM_SHOW and valgrind's --show-leak-kinds take. */
static bool kinds_ok(const char *v, bool summary)
{
    static const char *const ok[] = { "definite", "indirect", "possible", "reachable", "all", "none", "summary" };
    char *copy = strdup(v), *save = NULL;
    bool good = *v != 0;
    for (char *t = strtok_r(copy, ",", &save); t && good; t = strtok_r(NULL, ",", &save)) {
        bool known = false;
        for (size_t k = 0; k < sizeof ok / sizeof *ok - !summary; k++) known |= strcmp(t, ok[k]) == 0;
        good = known;
    }
    free(copy);
    return good;
}

/* A signal as the library takes it: USR1, SIGUSR2, HUP, RTMIN+3, 12... */
static bool signal_ok(const char *v)
{
    static const char *const names[] = { "USR1", "USR2", "HUP", "WINCH", "URG", "PWR", "PROF", "VTALRM", "RTMIN" };
    const char *s = strncasecmp(v, "SIG", 3) == 0 ? v + 3 : v;
    uint64_t n;
    if (ms_parse_u64(s, &n)) return n >= 1 && n <= 64;
    if (strncasecmp(s, "RTMIN+", 6) == 0) return ms_parse_u64(s + 6, &n) && n <= 30;
    for (size_t i = 0; i < sizeof names / sizeof *names; i++) if (strcasecmp(s, names[i]) == 0) return true;
    return false;
}

/* The value of a yes/no option (valgrind's spelling). */
static bool yes_no(const char *opt, const char *v)
{
    if (strcmp(v, "yes") == 0) return true;
    if (strcmp(v, "no") == 0) return false;
    ms_usage_error("run %s=%s: expected yes or no", opt, v);
}

/* run's options as given: NULL (or the default) when not. */
typedef struct {
    const char *report, *format, *stats, *rss, *interval, *sample, *exitcode, *suppress, *lib, *sig;
    const char *show, *depth, *rsig, *on_error, *why, *gen, *leak_check, *logfile, *profile, *profile_every;
    bool track, live, quiet, since, children, free_stacks;
} run_opts_t;

/* An option of run other than the plain "--name VALUE" ones: false when
 * argv[*i] is none of them. */
static bool run_option(int argc, char **argv, int *i, run_opts_t *o)
{
    const char *a = argv[*i], *v;
    if ((v = ms_opt_value(argc, argv, i, "--show-leak-kinds"))) {
        if (!kinds_ok(v, false))
            ms_usage_error("run --show-leak-kinds=%s: expected definite, indirect, possible, reachable, all "
                           "or none, comma-separated", v);
        o->show = v;
    } else if ((v = ms_opt_value(argc, argv, i, "--leak-check"))) {
        if (strcmp(v, "no") && strcmp(v, "summary") && strcmp(v, "full") && strcmp(v, "yes"))
            ms_usage_error("run --leak-check=%s: expected no, summary or full", v);
        o->leak_check = v;
    } else if ((v = ms_opt_value(argc, argv, i, "--suppressions"))) {
        if (o->suppress) ms_usage_error("run --suppressions: one suppressions file ('%s' is a second)", v);
        o->suppress = v;
    } else if (strcmp(a, "--gen-suppressions") == 0) o->gen = "1";
    else if ((v = ms_opt_value(argc, argv, i, "--gen-suppressions"))) {
        if (strcmp(v, "yes") && strcmp(v, "all") && strcmp(v, "no"))
            ms_usage_error("run --gen-suppressions=%s: expected yes, all or no", v);
        o->gen = strcmp(v, "no") ? "1" : "0";
    }
    else if ((v = ms_opt_value(argc, argv, i, "--trace-children"))) o->children = yes_no("--trace-children", v);
    else if (strcmp(a, "--leak-since") == 0) o->since = true;
    else if (strcmp(a, "--stats") == 0) o->stats = "stderr";
    else if (strncmp(a, "--stats=", 8) == 0) o->stats = a + 8;
    else if (strcmp(a, "--rss-log") == 0) o->rss = "memshim.%p.rss";
    else if (strncmp(a, "--rss-log=", 10) == 0) o->rss = a + 10;
    else if (strcmp(a, "--no-track") == 0) o->track = false;
    else if (strcmp(a, "--no-live") == 0) o->live = false;
    else if (strcmp(a, "--no-free-stacks") == 0) o->free_stacks = false;
    else if ((v = ms_opt_value(argc, argv, i, "--keep-stacktraces"))) {
        if (strcmp(v, "alloc") == 0) o->free_stacks = false;
        else if (strcmp(v, "alloc-and-free") == 0 || strcmp(v, "alloc-then-free") == 0) o->free_stacks = true;
        else ms_usage_error("run --keep-stacktraces=%s: expected alloc or alloc-and-free "
                            "(allocation stacks are always kept)", v);
    }
    else if (strcmp(a, "-q") == 0 || strcmp(a, "--quiet") == 0) o->quiet = true;
    else return false;
    return true;
}

/* run's options into o; the index of the program's name. */
static int parse_run(int argc, char **argv, run_opts_t *o)
{
    *o = (run_opts_t){ .track = true, .live = true, .children = true, .free_stacks = true };
    const struct { const char *name; const char **to; } plain[] = {
        { "--report", &o->report }, { "--log-file", &o->logfile }, { "--show", &o->show },
        { "--stack-depth", &o->depth }, { "--num-callers", &o->depth }, { "--report-signal", &o->rsig },
        { "--on-error", &o->on_error }, { "--why-depth", &o->why }, { "--error-exitcode", &o->exitcode },
        { "--format", &o->format }, { "--rss-interval", &o->interval }, { "--stats-signal", &o->sig },
        { "--sample", &o->sample }, { "--exitcode", &o->exitcode }, { "--suppress", &o->suppress },
        { "--lib", &o->lib }, { "--profile", &o->profile }, { "--profile-interval", &o->profile_every },
    };
    int i = 1;
    for (; i < argc; i++) {
        const char *a = argv[i], *v = NULL;
        if (strcmp(a, "--") == 0) { i++; break; }
        if (a[0] != '-') break;
        size_t k = 0;
        while (k < sizeof plain / sizeof *plain && !(v = ms_opt_value(argc, argv, &i, plain[k].name))) k++;
        if (v) *plain[k].to = v;
        else if (!run_option(argc, argv, &i, o)) ms_unknown_option("run", a);
    }
    if (i >= argc) ms_usage_error("run: no program given (memshim run [OPTIONS] -- PROGRAM [ARGS...])");
    return i;
}

/* Every value checked before anything runs (a usage error), the aliases
 * resolved; false when the suppressions cannot be read. */
static bool check_run(run_opts_t *o)
{
    uint64_t n;
    if (o->report && o->logfile) ms_usage_error("run --log-file: the same as --report; give one of them");
    if (o->logfile) o->report = o->logfile;
    if (o->report && !*o->report) ms_usage_error("run --report: empty file name");
    if (o->show && !kinds_ok(o->show, true))
        ms_usage_error("run --show %s: expected definite, indirect, possible, reachable, all, none or summary, "
                       "comma-separated", o->show);
    if (o->leak_check && strcmp(o->leak_check, "no") == 0) o->show = "none";
    else if (o->leak_check && strcmp(o->leak_check, "summary") == 0) o->show = "summary";
    if (o->depth && (!ms_parse_u64(o->depth, &n) || n < 1 || n > 64))
        ms_usage_error("run --stack-depth/--num-callers %s: expected a number of frames from 1 to 64", o->depth);
    if (o->rsig && !signal_ok(o->rsig))
        ms_usage_error("run --report-signal %s: expected a signal such as USR1, SIGUSR2, HUP or RTMIN+2", o->rsig);
    if (o->sig && !signal_ok(o->sig))
        ms_usage_error("run --stats-signal %s: expected a signal such as USR1, SIGUSR2, HUP or RTMIN+2", o->sig);
    if (o->on_error && strcmp(o->on_error, "abort") != 0 && strcmp(o->on_error, "continue") != 0)
        ms_usage_error("run --on-error %s: expected abort or continue", o->on_error);
    if (o->why && (!ms_parse_u64(o->why, &n) || n > 1000))
        ms_usage_error("run --why-depth %s: expected a number of blocks from 0 to 1000", o->why);
    if (o->format && strcmp(o->format, "text") != 0 && strcmp(o->format, "json") != 0)
        ms_usage_error("run --format %s: expected text or json", o->format);
    if (o->stats && !*o->stats) ms_usage_error("run --stats=: empty destination");
    if (o->rss && !*o->rss) ms_usage_error("run --rss-log=: empty file name");
    if (o->interval && (!ms_parse_u64(o->interval, &n) || n < 1 || n > 3600000))
        ms_usage_error("run --rss-interval %s: expected milliseconds, 1 to 3600000", o->interval);
    if (o->sample && !ms_parse_size(o->sample, &n))
        ms_usage_error("run --sample %s: expected a number of bytes, e.g. 4096 or 512k", o->sample);
    if (o->exitcode && (!ms_parse_u64(o->exitcode, &n) || n > 255))
        ms_usage_error("run --exitcode/--error-exitcode %s: expected a number from 0 to 255", o->exitcode);
    if (o->profile && !*o->profile) ms_usage_error("run --profile: empty file name");
    if (o->profile && !o->track) ms_usage_error("run --profile: a heap profile needs tracking (no --no-track)");
    if (o->profile_every && !o->profile) ms_usage_error("run --profile-interval: goes with --profile FILE");
    if (o->profile_every && (!ms_parse_u64(o->profile_every, &n) || n < 100 || n > 86400000))
        ms_usage_error("run --profile-interval %s: expected milliseconds, 100 to 86400000", o->profile_every);
    struct stat st;
    if (o->suppress && (access(o->suppress, R_OK) != 0 || stat(o->suppress, &st) != 0 ||
                        (S_ISDIR(st.st_mode) && (errno = EISDIR)))) {
        ms_warn("run --suppress %s: %s", o->suppress, strerror(errno));
        return false;
    }
    return true;
}

/* The environment of the program: the library preloaded, the options as
 * MEMSHIM_* variables. */
static bool run_env(const run_opts_t *o, const char *libpath)
{
    const char *old = getenv("LD_PRELOAD");
    char *preload = malloc(strlen(libpath) + (old ? strlen(old) : 0) + 2);
    if (!preload) { ms_warn("out of memory"); return false; }
    sprintf(preload, "%s%s%s", libpath, old && *old ? ":" : "", old ? old : "");
    setenv_or_die("LD_PRELOAD", preload);
    free(preload);
    const char *format = o->format ? o->format : o->report && is_json_name(o->report) ? "json" : NULL;
    const struct { const char *name, *value; } vars[] = {
        { "MEMSHIM_REPORT", o->report }, { "MEMSHIM_REPORT_FORMAT", format }, { "MEMSHIM_STATS", o->stats },
        { "MEMSHIM_RSS_LOG", o->rss }, { "MEMSHIM_RSS_INTERVAL", o->interval }, { "MEMSHIM_STATS_SIGNAL", o->sig },
        { "MEMSHIM_SAMPLE", o->sample }, { "MEMSHIM_TRACK", o->track ? NULL : "0" },
        { "MEMSHIM_EXITCODE", o->exitcode }, { "MEMSHIM_SUPPRESS", o->suppress },
        { "MEMSHIM_LIVE", o->live ? "1" : "0" }, { "MEMSHIM_SHOW", o->show }, { "MEMSHIM_STACK_DEPTH", o->depth },
        { "MEMSHIM_REPORT_SIGNAL", o->rsig }, { "MEMSHIM_ON_ERROR", o->on_error }, { "MEMSHIM_WHY_DEPTH", o->why },
        { "MEMSHIM_GEN_SUPPRESSIONS", o->gen }, { "MEMSHIM_LEAK_SINCE", o->since ? "1" : NULL },
        { "MEMSHIM_TRACE_CHILDREN", o->children ? NULL : "0" }, { "MEMSHIM_PROFILE", o->profile },
        { "MEMSHIM_PROFILE_INTERVAL", o->profile_every }, { "MEMSHIM_FREE_STACKS", o->free_stacks ? NULL : "0" },
    };
    for (size_t k = 0; k < sizeof vars / sizeof *vars; k++)
        if (vars[k].value) setenv_or_die(vars[k].name, vars[k].value);
    /* GLib (before 2.76) carves objects from slabs of its own, which the
     * leak scan sees as interior pointers (possibly lost); it stops under
     * valgrind by itself, and here when asked (memshim(7)). */
    if (o->track && !getenv("G_SLICE")) setenv_or_die("G_SLICE", "always-malloc");
    return true;
}

/* Run prog and wait for it, as system() does: the terminal's ^C and ^\ go
 * to the program, not to us.  Its pid and status; false if it could not. */
static bool run_program(char **prog, pid_t *pid, int *status)
{
    struct sigaction ign = { .sa_handler = SIG_IGN }, old_int, old_quit;
    sigemptyset(&ign.sa_mask);
    sigaction(SIGINT, &ign, &old_int);
    sigaction(SIGQUIT, &ign, &old_quit);
    *pid = fork();
    if (*pid < 0) { ms_warn("fork: %s", strerror(errno)); return false; }
    if (*pid == 0) {
        sigaction(SIGINT, &old_int, NULL);
        sigaction(SIGQUIT, &old_quit, NULL);
        execvp(prog[0], prog);
        int e = errno;
        /* --stats and --rss-log take a file only as --stats=FILE: in
         * "--stats out.txt ./prog" the file was taken for the program */
        const char *before = prog[-1];
        bool bare = strcmp(before, "--stats") == 0 || strcmp(before, "--rss-log") == 0;
        if (bare && (e == ENOENT || e == EACCES))
            fprintf(stderr, "%s: %s: %s (%s writes to a file given as %s=FILE; the program comes after it)\n",
                    ms_prog, prog[0], strerror(e), before, before);
        else fprintf(stderr, "%s: %s: %s\n", ms_prog, prog[0], strerror(e));
        _exit(e == ENOENT ? 127 : 126);
    }
    unsetenv("LD_PRELOAD");
    while (waitpid(*pid, status, 0) < 0)
        if (errno != EINTR) { ms_warn("waitpid: %s", strerror(errno)); return false; }
    sigaction(SIGINT, &old_int, NULL);
    sigaction(SIGQUIT, &old_quit, NULL);
    return true;
}

/* What the run wrote, and how to read it. */
static void list_run(const run_opts_t *o, pid_t pid, const struct timespec *start)
{
    output_t outs[] = {
        { "leak report", o->report }, { "statistics", o->stats }, { "rss log", o->rss },
        { "heap profile", o->profile },
    };
    enum { N = sizeof outs / sizeof *outs };
    char found[N][PATH_MAX * 2];
    bool got[N];
    got[0] = list_reports(o->report, pid, start, found[0], sizeof found[0]);
    for (size_t k = 1; k < N; k++) got[k] = list_outputs(&outs[k], pid, start, found[k], sizeof found[k]);
    if (got[0] && is_json_name(found[0]))
        fprintf(stderr, "%s: read the leak report with: memshim report %s\n", ms_prog, found[0]);
    if (got[2])
        fprintf(stderr, "%s: draw the rss log with: memshim plot %s -o rss.svg\n", ms_prog, found[2]);
    if (got[3] && is_json_name(found[3]))
        fprintf(stderr, "%s: read the heap profile with: memshim profile %s\n", ms_prog, found[3]);
}

/* The program's status passed through: its exit code, or its death by the
 * same signal, so that our caller sees what the program did. */
static int pass_status(int status, const char *prog, bool quiet)
{
    if (WIFEXITED(status)) return WEXITSTATUS(status);
    if (!WIFSIGNALED(status)) return 1;
    int s = WTERMSIG(status);
    if (!quiet) fprintf(stderr, "%s: %s killed by signal %d (%s)\n", ms_prog, prog, s, strsignal(s));
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

int cmd_run(int argc, char **argv)
{
    run_opts_t o;
    char **prog = argv + parse_run(argc, argv, &o);
    if (!check_run(&o)) return 1;
    char libpath[PATH_MAX];
    if (!find_library(o.lib, libpath, sizeof libpath)) return 127;
    if (!run_env(&o, libpath)) return 1;
    struct timespec start;
    clock_gettime(CLOCK_REALTIME_COARSE, &start);
    pid_t pid;
    int status;
    if (!run_program(prog, &pid, &status)) return 1;
    if (!o.quiet) list_run(&o, pid, &start);
    return pass_status(status, prog[0], o.quiet);
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
    if (argc == 3 && (strcmp(argv[2], "--help") == 0 || strcmp(argv[2], "-h") == 0))
        return print_help(c);                     /* memshim CMD --help */
    for (size_t i = 0; i < sizeof commands / sizeof *commands; i++)
        if (strcmp(c, commands[i].name) == 0) return commands[i].fn(argc - 1, argv + 1);
    unknown_command("unknown command", c);
}
