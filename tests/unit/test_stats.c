/* test_stats.c - the statistics against allocations known exactly, the
 * output files (text, JSON, %p, atomic replacement), and the reporting
 * options: accepted forms and the warnings for the others. */
#include <criterion/criterion.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "shim.h"
#include "outname.h"
#include "optenv.h"

static void setup(void) { _ms_init(); free(malloc(1)); }
TestSuite(stats, .init = setup);

#define BIG 20000                         /* class 20480: unused by Criterion */
#define NBIG 77
#define HUGE_N 1000000                    /* 1,003,520 bytes once page-rounded */

static unsigned class_of_size(uint64_t size)
{
    for (unsigned c = 0; c < MS_NCLASSES; c++) if (_ms_classes[c].size == size) return c;
    cr_assert_fail("no class of size %llu", (unsigned long long)size);
    return 0;
}

Test(stats, counts_known_allocations_exactly)
{
    unsigned c = class_of_size(20480);
    ms_stats_t a, b, d;
    _ms_stats_collect(&a);
    void *volatile blk[NBIG], *volatile huge[3];   /* volatile: the compiler keeps every malloc */
    for (int i = 0; i < NBIG; i++) blk[i] = malloc(BIG);
    for (int i = 0; i < 3; i++) huge[i] = malloc(HUGE_N);
    _ms_stats_collect(&b);
    cr_assert_eq(b.cls[c].in_use, a.cls[c].in_use + NBIG);
    cr_assert_eq(b.cls[c].in_use + b.cls[c].free, b.cls[c].spans * _ms_classes[c].capacity,
                 "in use + free = capacity of the pools");
    cr_assert_eq(b.small_in_use - a.small_in_use, (uint64_t)NBIG * 20480);
    cr_assert_eq(b.huge.blocks, a.huge.blocks + 3, "%llu -> %llu", (unsigned long long)a.huge.blocks, (unsigned long long)b.huge.blocks);
    cr_assert_eq(b.huge.bytes, a.huge.bytes + 3 * 1003520);
    cr_assert_geq(b.heap_out, a.heap_out + NBIG * 20480 + 3 * 1003520 - 20480 * 64,
                  "heap in use grew by what was allocated (less what thread caches held)");
    cr_assert_geq(b.heap_peak, b.heap_out);
    cr_assert_geq(b.seg.mapped + b.huge.mapped, b.small_capacity + b.huge.bytes);
    for (int i = 0; i < NBIG; i++) free(blk[i]);
    for (int i = 0; i < 3; i++) free(huge[i]);
    _ms_stats_collect(&d);
    cr_assert_eq(d.cls[c].in_use, a.cls[c].in_use);
    cr_assert_eq(d.huge.blocks, a.huge.blocks);
    cr_assert_eq(d.huge.bytes, a.huge.bytes);
    cr_assert_geq(d.heap_peak, b.heap_out, "the peak remembers");
}

Test(stats, expand_path)
{
    char out[320], want[320];
    snprintf(want, sizeof want, "/tmp/s.%d.json", (int)getpid());
    cr_assert(_ms_expand_path("/tmp/s.%p.json", 1, out, sizeof out));
    cr_assert_str_eq(out, want);
    cr_assert(_ms_expand_path("100%%", 1, out, sizeof out));
    cr_assert_str_eq(out, "100%");
    cr_assert(_ms_expand_path("plain", 1, out, sizeof out));
    cr_assert_str_eq(out, "plain");
    cr_assert_not(_ms_expand_path("this name is much too long for the buffer %p", 1, out, 16));
    snprintf(want, sizeof want, "r.%d.27.json%%n", (int)getpid());
    cr_assert(_ms_expand_path("r.%p.%n.json%%n", 27, out, sizeof out));   /* %n: the sequence number */
    cr_assert_str_eq(out, want);
    char host[256];
    ms_host_name(host, sizeof host);
    snprintf(want, sizeof want, "m.%s.prom", host);
    cr_assert(_ms_expand_path("m.%h.prom", 1, out, sizeof out));         /* %h: the host name */
    cr_assert_str_eq(out, want);
    cr_assert(_ms_expand_path("50%", 1, out, sizeof out));               /* a lone % as written */
    cr_assert_str_eq(out, "50%");
    cr_assert(_ms_expand_path("%%%%p", 1, out, sizeof out));
    cr_assert_str_eq(out, "%%p");
}

static char *slurp(const char *path)
{
    FILE *f = fopen(path, "r");
    if (!f) return NULL;
    static char buf[1 << 16];
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    buf[n] = 0;
    fclose(f);
    return buf;
}

Test(stats, writes_json_by_name_atomically)
{
    char dir[] = "/tmp/ms-stats-XXXXXX";
    cr_assert_not_null(mkdtemp(dir));
    char pat[128], path[128];
    snprintf(pat, sizeof pat, "%s/s.%%p.json", dir);
    snprintf(path, sizeof path, "%s/s.%d.json", dir, (int)getpid());
    void *volatile keep[5];
    for (int i = 0; i < 5; i++) keep[i] = malloc(BIG);
    _ms_stats_write(pat);
    char *s = slurp(path);
    cr_assert_not_null(s, "no %s", path);
    cr_assert(strncmp(s, "{\"format\": \"memshim-stats\", \"version\": 1", 40) == 0, "%.60s", s);
    cr_assert_not_null(strstr(s, "\"size\": 20480, \"pools\": "));
    cr_assert_not_null(strstr(s, "\"process\": {\"rss\": "));
    cr_assert_not_null(strstr(s, "},\n \"own\": {\"resident_bytes\": "), "memshim's own memory, after the process's");
    size_t n = strlen(s);
    cr_assert(n > 2 && strcmp(s + n - 2, "}\n") == 0, "ends with the object's close");
    int depth = 0;
    for (char *p = s; *p; p++) depth += (*p == '{' || *p == '[') - (*p == '}' || *p == ']');
    cr_assert_eq(depth, 0, "balanced brackets");
    char cmd0[200];
    snprintf(cmd0, sizeof cmd0, "test -z \"$(ls -A %s | grep -v '^s\\.%d\\.json$')\"", dir, (int)getpid());
    cr_assert_eq(system(cmd0), 0, "temporary file left behind in %s", dir);
    /* text for any other name */
    snprintf(path, sizeof path, "%s/s.txt", dir);
    _ms_stats_write(path);
    s = slurp(path);
    cr_assert_not_null(s);
    cr_assert(strncmp(s, "memshim: heap statistics (pid ", 30) == 0);
    cr_assert_not_null(strstr(s, "\nheap: in use "), "%s", s);
    cr_assert_not_null(strstr(s, ", peak "), "%s", s);
    for (int i = 0; i < 5; i++) free(keep[i]);
    char cmd[160];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    cr_assert_eq(system(cmd), 0);
}

/* The options' parser with only `name=value` in the environment; what it
 * said on stderr. */
static char *parse_with(const char *name, const char *value)
{
    static char var[256];
    snprintf(var, sizeof var, "%s=%s", name, value);
    char *env[] = { var, NULL };
    return load_with(env);
}

Test(stats, options_accepted)
{
    cr_assert_str_empty(parse_with("MEMSHIM_RSS_INTERVAL", "250"));
    cr_assert_eq(_ms_ropt.rss_interval_ms, 250);
    cr_assert_str_empty(parse_with("MEMSHIM_LIVE", "yes"));
    cr_assert_eq(_ms_ropt.live, 1);
    cr_assert_str_empty(parse_with("MEMSHIM_LIVE_INTERVAL", "20"));
    cr_assert_eq(_ms_ropt.live_interval_ms, 20);
    cr_assert_str_empty(parse_with("MEMSHIM_STATS_SIGNAL", "SIGUSR2"));
    cr_assert_eq(_ms_ropt.stats_signal, SIGUSR2);
    cr_assert_str_empty(parse_with("MEMSHIM_STATS_SIGNAL", "usr1"));
    cr_assert_eq(_ms_ropt.stats_signal, SIGUSR1);
    cr_assert_str_empty(parse_with("MEMSHIM_STATS_SIGNAL", "SIGRTMIN+2"));
    cr_assert_eq(_ms_ropt.stats_signal, SIGRTMIN + 2);
    cr_assert_str_empty(parse_with("MEMSHIM_STATS_SIGNAL", "12"));
    cr_assert_eq(_ms_ropt.stats_signal, 12);
    cr_assert_str_empty(parse_with("MEMSHIM_RSS_LOG", "rel.log"));
    char cwd[512];
    cr_assert_not_null(getcwd(cwd, sizeof cwd));
    cr_assert_not_null(_ms_ropt.rss_log);
    cr_assert(strncmp(_ms_ropt.rss_log, cwd, strlen(cwd)) == 0 && strstr(_ms_ropt.rss_log, "/rel.log"),
              "relative names are made absolute: %s", _ms_ropt.rss_log);
}

Test(stats, options_malformed_warn_and_keep_defaults)
{
    unsigned iv = _ms_ropt.rss_interval_ms;
    const char *e = parse_with("MEMSHIM_RSS_INTERVAL", "fast");
    cr_assert_not_null(strstr(e, "MEMSHIM_RSS_INTERVAL=fast: expected milliseconds"), "%s", e);
    cr_assert_eq(_ms_ropt.rss_interval_ms, iv);
    e = parse_with("MEMSHIM_RSS_INTERVAL", "0");
    cr_assert_not_null(strstr(e, "MEMSHIM_RSS_INTERVAL=0"), "%s", e);
    e = parse_with("MEMSHIM_LIVE_INTERVAL", "99999999999999999999");
    cr_assert_not_null(strstr(e, "MEMSHIM_LIVE_INTERVAL="), "%s", e);
    e = parse_with("MEMSHIM_LIVE", "perhaps");
    cr_assert_not_null(strstr(e, "MEMSHIM_LIVE=perhaps: expected 1 or 0"), "%s", e);
    int sig = _ms_ropt.stats_signal;
    const char *bad[] = { "KILL", "SIGSEGV", "9", "SIGRTMIN+999", "USR3" };
    for (unsigned i = 0; i < sizeof bad / sizeof *bad; i++) {
        e = parse_with("MEMSHIM_STATS_SIGNAL", bad[i]);
        cr_assert_not_null(strstr(e, "MEMSHIM_STATS_SIGNAL="), "%s: %s", bad[i], e);
        cr_assert_not_null(strstr(e, "expected a signal name or number"), "%s", e);
        cr_assert_eq(_ms_ropt.stats_signal, sig);
    }
}
