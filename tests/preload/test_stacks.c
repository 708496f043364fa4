/* test_stacks.c - allocation stacks a user can trust when most of them come
 * from memshim's per-thread stack cache and from the frame sizes it learnt
 * rather than from libunwind: one site reached through three chains of
 * callers, twelve depths of recursion, a frame whose size changes with
 * alloca while its alloca'd space holds a return address, and a thread's
 * function (whose stack ends in start_thread, named without the C
 * library's debug file).  Every lost
 * block's stack names its own path, in several stack layouts and stack
 * depths. */
#include "leakrun.h"

static const size_t pads[] = { 0, 13, 333, 4097 };

/* The record of the block of `bytes` bytes: its lines up to the empty
 * "==PID==" line that ends it (NULL if there is none). */
static char *record_of(const char *report, long bytes)
{
    char key[64];
    snprintf(key, sizeof key, " %ld bytes in 1 block is definitely lost", bytes);
    const char *s = strstr(report, key), *e;
    if (!s) return NULL;
    for (e = strchr(s, '\n'); e; e = strchr(e + 1, '\n')) {
        const char *l = e + 1;                      /* a line "==123==" and nothing more ends it */
        if (strncmp(l, "==", 2) != 0) break;
        l += 2;
        while (*l >= '0' && *l <= '9') l++;
        if (strncmp(l, "==\n", 3) == 0) break;
    }
    return strndup(s, e ? (size_t)(e - s) : strlen(s));
}

static int count(const char *s, const char *what)
{
    int n = 0;
    for (const char *p = s; (p = strstr(p, what)) != NULL; p += strlen(what)) n++;
    return n;
}

/* The record of `bytes` has `calls` frames of each function named in
 * `want` (NULL-ended, ": name" as printed) and none of `not`. */
static void expect_path(const char *report, long bytes, const char *const want[], const int calls[],
                        const char *const not[], const char *setting)
{
    char *rec = record_of(report, bytes);
    cr_assert_not_null(rec, "%s: no record of %ld bytes in:\n%s", setting, bytes, report);
    for (int i = 0; want[i]; i++)
        cr_expect_eq(count(rec, want[i]), calls[i], "%s: %ld bytes: %d frames of%s, want %d:\n%s",
                     setting, bytes, count(rec, want[i]), want[i], calls[i], rec);
    for (int i = 0; not && not[i]; i++)
        cr_expect_eq(count(rec, not[i]), 0, "%s: %ld bytes: a frame of%s:\n%s", setting, bytes, not[i], rec);
    free(rec);
}

static void check_paths(size_t pad, const char *depth)
{
    char *padv = malloc(pad + 16);
    strcpy(padv, "MSPAD=");
    memset(padv + 6, 'a', pad);
    padv[6 + pad] = 0;
    char setting[96];
    snprintf(setting, sizeof setting, "environment padded by %zu, %s", pad, depth);
    const char *env[] = { padv, depth, NULL };
    char *argv[] = { path_in_build("fixtures/stack_paths"), NULL };
    run_t r = run_with(true, NULL, argv, env);
    cr_assert(WIFEXITED(r.status) && WEXITSTATUS(r.status) == 0 && strstr(r.out, "stack_paths done"),
              "%s: status %d: %s", setting, r.status, r.err);
    long blocks, bytes;
    cr_assert(text_kind(r.err, "definitely lost", &blocks, &bytes), "%s: %s", setting, r.err);
    cr_expect(blocks == 18 && bytes == 37076, "%s: definitely lost %ld blocks %ld bytes, want 18/37076",
              setting, blocks, bytes);

    static const char *const via[] = { ": via_a", ": via_b", ": via_c" };
    for (int k = 0; k < 3; k++) {
        const char *want[] = { ": wrap", via[k], ": one_round", ": main", NULL };
        const char *not[] = { via[(k + 1) % 3], via[(k + 2) % 3], ": rec", ": in_alloca", NULL };
        expect_path(r.err, 1001 + k, want, (const int[]){ 1, 1, 1, 1 }, not, setting);
    }
    bool deep = strstr(depth, "=64") != NULL;
    for (int d = 0; d < 12; d++) {
        /* MEMSHIM_STACK_DEPTH=16 keeps wrap and 15 frames of rec at most */
        int recs = deep || d + 1 <= 15 ? d + 1 : 15;
        bool whole = deep || d + 1 + 3 <= 16;      /* wrap, rec.., one_round, main */
        const char *want[] = { ": wrap", ": rec", whole ? ": main" : NULL, NULL };
        const char *not[] = { ": via_a", ": in_alloca", NULL };
        expect_path(r.err, 2000 + d, want, (const int[]){ 1, recs, 1 }, not, setting);
    }
    const char *want_x[] = { ": wrap", ": in_alloca", ": alloca_x", ": one_round", ": main", NULL };
    const char *want_y[] = { ": wrap", ": in_alloca", ": alloca_y", ": one_round", ": main", NULL };
    expect_path(r.err, 3001, want_x, (const int[]){ 1, 1, 1, 1, 1 }, (const char *const[]){ ": alloca_y", NULL },
                setting);
    expect_path(r.err, 3002, want_y, (const int[]){ 1, 1, 1, 1, 1 }, (const char *const[]){ ": alloca_x", NULL },
                setting);
    const char *want_t[] = { ": wrap", ": thread_main", ": start_thread", NULL };
    expect_path(r.err, 4001, want_t, (const int[]){ 1, 1, 1 }, (const char *const[]){ ": main", ": clone", NULL },
                setting);
    run_free(&r);
    free(padv);
}

Test(stacks, every_path_names_its_own_callers, .timeout = 120)
{
    for (size_t i = 0; i < sizeof pads / sizeof *pads; i++) {
        check_paths(pads[i], "MEMSHIM_STACK_DEPTH=16");
        check_paths(pads[i], "MEMSHIM_STACK_DEPTH=64");
    }
}

/* A handler on a sigaltstack below the thread's stack, an unreadable page
 * between, allocating: its calls are not cached or walked (the cache reads
 * up to the thread's stack top), and the program runs to its end. */
Test(stacks, allocation_on_an_alternate_signal_stack, .timeout = 60)
{
    char *argv[] = { path_in_build("fixtures/altstack"), NULL };
    run_t r = run_with(true, NULL, argv, NULL);
    cr_expect(WIFEXITED(r.status) && WEXITSTATUS(r.status) == 0, "status %d (signal %d): %s", r.status,
              WIFSIGNALED(r.status) ? WTERMSIG(r.status) : 0, r.err);
    cr_expect(strstr(r.out, "altstack done 200"), "printed: %s", r.out);
    run_free(&r);
}
