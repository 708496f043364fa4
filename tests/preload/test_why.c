/* test_why.c - retention paths ("why is it still alive?"), exactly, in
 * every stack layout: a block kept only by a global, a thread-local
 * variable, another (blocked) thread's stack, a collector root, a chain of
 * 5 blocks from a global, and a pointer into a block's middle; the report's
 * chain names the right root and the right blocks, in order; JSON carries
 * the same; MEMSHIM_WHY_DEPTH bounds it; memshim_why() answers for one block. */
#include <fnmatch.h>
#include <limits.h>
#include "leakrun.h"

static const size_t pads[] = { 0, 1, 7, 13, 100, 333, 1000, 4097 };

typedef struct {
    int  pid, tid, holder_line;
    char global[32], tls[32], thread[32], obj[32], plain[32], chain[5][32], inner[32], lost[32];
    char module[PATH_MAX];
} expect_t;

static void read_expect(const char *out, expect_t *e)
{
    memset(e, 0, sizeof *e);
    const char *p;
    cr_assert((p = strstr(out, "pid ")) && sscanf(p, "pid %d", &e->pid) == 1, "%s", out);
    cr_assert((p = strstr(out, "global ")) && sscanf(p, "global %31s", e->global) == 1);
    cr_assert((p = strstr(out, "tls ")) && sscanf(p, "tls %31s", e->tls) == 1);
    cr_assert((p = strstr(out, "thread ")) && sscanf(p, "thread %31s %d %d", e->thread, &e->tid, &e->holder_line) == 3);
    cr_assert((p = strstr(out, "rooted ")) && sscanf(p, "rooted %31s %31s", e->obj, e->plain) == 2);
    cr_assert((p = strstr(out, "chain ")) && sscanf(p, "chain %31s %31s %31s %31s %31s", e->chain[0], e->chain[1],
                                                    e->chain[2], e->chain[3], e->chain[4]) == 5);
    cr_assert((p = strstr(out, "inner ")) && sscanf(p, "inner %31s", e->inner) == 1);
    cr_assert((p = strstr(out, "lost ")) && sscanf(p, "lost %31s", e->lost) == 1);
    cr_assert(realpath(path_in_build("fixtures/why_paths"), e->module));
}

/* The lines of the record allocated in `fn`, after its stack: its path. */
static char *path_of(const char *report, int pid, const char *fn)
{
    char at[128];
    snprintf(at, sizeof at, ": %s (why_paths.c:", fn);
    const char *p = report ? strstr(report, at) : NULL;
    if (!p) return NULL;
    char sep[32];
    snprintf(sep, sizeof sep, "==%d==\n", pid);
    const char *end = strstr(p, sep);
    if (!end) end = p + strlen(p);
    const char *start = strstr(p, "kept alive by");
    if (!start || start > end) return strdup("");
    while (start > report && start[-1] != '\n') start--;
    return strndup(start, (size_t)(end - start));
}

/* Each line of `got` matches the glob on the same line of `want`. */
static bool lines_match(const char *got, const char *want)
{
    char *g = strdup(got), *w = strdup(want), *gs = NULL, *ws = NULL;
    char *gl = strtok_r(g, "\n", &gs), *wl = strtok_r(w, "\n", &ws);
    bool ok = true;
    for (; ok && gl && wl; gl = strtok_r(NULL, "\n", &gs), wl = strtok_r(NULL, "\n", &ws))
        ok = fnmatch(wl, gl, 0) == 0;
    ok = ok && !gl && !wl;
    free(g);
    free(w);
    return ok;
}

static void expect_path(const char *report, const expect_t *e, const char *fn, const char *want)
{
    char *got = path_of(report, e->pid, fn);
    cr_assert_not_null(got, "no record allocated at %s in:\n%s", fn, report);
    cr_expect(lines_match(got, want), "%s: the path is\n%s\nwant\n%s", fn, got, want);
    free(got);
}

static char *fmt(const char *f, ...) __attribute__((format(printf, 1, 2)));
static char *fmt(const char *f, ...)
{
    va_list ap;
    va_start(ap, f);
    char *s = NULL;
    if (vasprintf(&s, f, ap) < 0) s = NULL;
    va_end(ap);
    return s;
}

static run_t run_why(size_t pad, const char *arg, const char *const *extra, char **report)
{
    char *padv = malloc(pad + 16);
    strcpy(padv, "MSPAD=");
    memset(padv + 6, 'a', pad);
    padv[6 + pad] = 0;
    char rep[] = "/tmp/mswhyrepXXXXXX";
    close(mkstemp(rep));
    char *env_rep = fmt("MEMSHIM_REPORT=%s", rep);
    const char *env[8] = { padv, env_rep, "MEMSHIM_SHOW=reachable,possible" };
    int n = 3;
    for (; extra && *extra && n < 7; extra++) env[n++] = *extra;
    env[n] = NULL;
    char *argv[] = { path_in_build("fixtures/why_paths"), (char *)arg, NULL };
    run_t r = run_with(true, NULL, argv, env);
    *report = slurp(rep);
    unlink(rep);
    free(env_rep);
    free(padv);
    cr_assert(WIFEXITED(r.status) && WEXITSTATUS(r.status) == 0, "pad %zu: status %#x: %s", pad, r.status, r.err);
    cr_assert_not_null(*report, "no report: %s", r.err);
    return r;
}

Test(why, every_kind_of_root_in_every_layout, .timeout = 240)
{
    for (size_t i = 0; i < sizeof pads / sizeof *pads; i++) {
        char *report;
        run_t r = run_why(pads[i], NULL, NULL, &report);
        expect_t e;
        read_expect(r.out, &e);
        char *w;
        int pid = e.pid;
        w = fmt("==%d==    kept alive by: global why_global in %s\n==%d==      -> this block, %s\n", pid, e.module, pid, e.global);
        expect_path(report, &e, "alloc_global", w); free(w);
        w = fmt("==%d==    kept alive by: thread %d's thread-local why_tls in %s\n==%d==      -> this block, %s\n",
                pid, pid, e.module, pid, e.tls);
        expect_path(report, &e, "alloc_tls", w); free(w);
        w = fmt("==%d==    kept alive by: thread %d's stack in holder (why_paths.c:%d)\n==%d==      -> this block, %s\n",
                pid, e.tid, e.holder_line, pid, e.thread);
        expect_path(report, &e, "alloc_on_stack", w); free(w);
        w = fmt("==%d==    kept alive by: a collector root (memshim_root_add)\n"
                "==%d==      -> %s (Holder object, * bytes, allocated at alloc_rooted (why_paths.c:*)), pointer at offset 0\n"
                "==%d==      -> this block, %s\n", pid, pid, e.obj, pid, e.plain);
        expect_path(report, &e, "alloc_plain", w); free(w);
        char *hops = strdup("");
        for (int k = 0; k < 4; k++) {
            char *h = fmt("%s==%d==      -> %s (48 bytes, allocated at chain_link (why_paths.c:*)), pointer at offset 8\n",
                          hops, pid, e.chain[k]);
            free(hops);
            hops = h;
        }
        w = fmt("==%d==    kept alive by: global why_chain in %s\n%s==%d==      -> this block, %s\n",
                pid, e.module, hops, pid, e.chain[4]);
        expect_path(report, &e, "chain_tail", w); free(w); free(hops);
        w = fmt("==%d==    kept alive by: global why_chain in %s\n==%d==      -> this block, %s\n", pid, e.module, pid, e.chain[0]);
        expect_path(report, &e, "chain_link", w); free(w);
        w = fmt("==%d==    kept alive by: global why_inner in %s\n==%d==      -> this block, %s+16 (a pointer into its middle)\n",
                pid, e.module, pid, e.inner);
        expect_path(report, &e, "alloc_inner", w); free(w);
        cr_expect(strstr(report, "definitely lost: 106 bytes in 1 block"), "the lost block: %s", report);
        free(report);
        run_free(&r);
    }
}

Test(why, json_carries_the_paths)
{
    char *report;
    const char *extra[] = { "MEMSHIM_REPORT_FORMAT=json", NULL };
    run_t r = run_why(0, NULL, extra, &report);
    expect_t e;
    read_expect(r.out, &e);
    char *w = fmt("\"symbol\": \"why_chain\", \"offset\": 0, \"module\": \"%s\"}, \"hops\": [{\"addr\": \"%s\", \"size\": 48, "
                  "\"offset\": 8, \"function\": \"chain_link\"", e.module, e.chain[0]);
    cr_expect(strstr(report, w), "want %s in %s", w, report); free(w);
    w = fmt("\"more\": 0, \"block\": {\"addr\": \"%s\", \"size\": 48}}", e.chain[4]);
    cr_expect(strstr(report, w), "want %s in %s", w, report); free(w);
    w = fmt("\"root\": {\"kind\": \"stack\", \"addr\": \"0x");
    cr_expect(strstr(report, w), "want %s in %s", w, report); free(w);
    w = fmt("\"thread\": %d, \"function\": \"holder\"", e.tid);
    cr_expect(strstr(report, w), "want %s in %s", w, report); free(w);
    w = fmt("\"kind\": \"tls\", \"addr\": \"0x");
    cr_expect(strstr(report, w), "want %s in %s", w, report); free(w);
    w = fmt("\"thread\": %d, \"symbol\": \"why_tls\", \"offset\": 0", e.pid);
    cr_expect(strstr(report, w), "want %s in %s", w, report); free(w);
    w = fmt("\"root\": {\"kind\": \"collector_root\"}, \"hops\": [{\"addr\": \"%s\"", e.obj);
    cr_expect(strstr(report, w), "want %s in %s", w, report); free(w);
    w = fmt("\"block\": {\"addr\": \"%s\", \"size\": 105, \"into\": 16}", e.inner);
    cr_expect(strstr(report, w), "want %s in %s", w, report); free(w);
    free(report);
    run_free(&r);
}

Test(why, the_depth_bounds_the_path)
{
    char *report;
    const char *two[] = { "MEMSHIM_WHY_DEPTH=2", NULL };
    run_t r = run_why(0, NULL, two, &report);
    expect_t e;
    read_expect(r.out, &e);
    int pid = e.pid;
    char *w = fmt("==%d==    kept alive by: global why_chain in %s\n"
                  "==%d==      -> %s (48 bytes, allocated at chain_link (why_paths.c:*)), pointer at offset 8\n"
                  "==%d==      -> ... 2 more blocks\n"
                  "==%d==      -> %s (48 bytes, allocated at chain_link (why_paths.c:*)), pointer at offset 8\n"
                  "==%d==      -> this block, %s\n", pid, e.module, pid, e.chain[0], pid, pid, e.chain[3], pid, e.chain[4]);
    expect_path(report, &e, "chain_tail", w);
    free(w);
    free(report);
    run_free(&r);
    const char *off[] = { "MEMSHIM_WHY_DEPTH=0", NULL };
    r = run_why(0, NULL, off, &report);
    cr_expect(strstr(report, "still reachable in loss record") && !strstr(report, "kept alive by"),
              "MEMSHIM_WHY_DEPTH=0: no paths: %s", report);
    free(report);
    run_free(&r);
}

Test(why, memshim_why_answers_for_one_block, .timeout = 240)
{
    for (size_t i = 0; i < sizeof pads / sizeof *pads; i++) {
        char *report;
        run_t r = run_why(pads[i], "why", NULL, &report);
        expect_t e;
        read_expect(r.out, &e);
        const char *p = strstr(r.out, "== why global\n");
        cr_assert_not_null(p, "%s", r.out);
        char *hops = strdup("");
        for (int k = 0; k < 4; k++) {
            char *h = fmt("%s    -> %s (48 bytes, allocated at chain_link (why_paths.c:*)), pointer at offset 8\n",
                          hops, e.chain[k]);
            free(hops);
            hops = h;
        }
        char *w = fmt("== why global\n"
                      "%s (101 bytes, allocated at alloc_global (why_paths.c:*)): still reachable\n"
                      "  kept alive by: global why_global in %s\n"
                      "    -> this block, %s\n"
                      "== why lost\n"
                      "%s (106 bytes, allocated at alloc_lost (why_paths.c:*)): definitely lost, no pointer to it was found\n"
                      "== why chain\n"
                      "%s (48 bytes, allocated at chain_tail (why_paths.c:*)): still reachable\n"
                      "  kept alive by: global why_chain in %s\n"
                      "%s"
                      "    -> this block, %s\n"
                      "== why no block\n"
                      "0x* is not in a live block of the heap\n"
                      "== why bad fd: -1 Bad file descriptor\n",
                      e.global, e.module, e.global, e.lost, e.chain[4], e.module, hops, e.chain[4]);
        cr_expect(lines_match(p, w), "pad %zu: memshim_why wrote\n%s\nwant\n%s", pads[i], p, w);
        free(w);
        free(hops);
        free(report);
        run_free(&r);
    }
}
