/* test_programs.c - whole programs on memshim: dlopen/dlclose of a library
 * that allocates (in this process and in a fixture), allocation in the
 * constructors and destructors of a program and of shared libraries, a
 * program that calls signal() before its first malloc, and C++ new/delete
 * including aligned new.  Fixtures run under LD_PRELOAD=libmemshim.so. */
#include <criterion/criterion.h>
#include <dlfcn.h>
#include <malloc.h>
#include "memshim.h"
#include "helpers.h"

static h_run_t *run_with(const char *preload, const char *fixture, const char *arg,
                         const char *extra_env)
{
    h_run_t *r = malloc(sizeof *r);
    cr_assert_not_null(r);
    char prog[2 * PATH_MAX + 2], pre[4 * PATH_MAX + 16];
    snprintf(prog, sizeof prog, "%s", h_path("fixtures/%s", fixture));
    snprintf(pre, sizeof pre, "LD_PRELOAD=%s", preload);
    const char *env[] = { pre, "MEMSHIM_ON_ERROR=", "MEMSHIM_STATS=", "MEMSHIM_VERBOSE=",
                          "MS_DL_SAY=", extra_env, NULL };
    char *argv[] = { prog, (char *)arg, NULL };
    h_run(r, argv, env, 60);
    return r;
}

static void expect_clean_exit(const char *what, const h_run_t *r)
{
    cr_assert(!r->timed_out, "%s hung", what);
    cr_assert(!(WIFEXITED(r->status) && WEXITSTATUS(r->status) == 3), "%s: not running on memshim", what);
    cr_expect(WIFEXITED(r->status) && WEXITSTATUS(r->status) == 0,
              "%s: status %#x\nstdout:\n%s\nstderr:\n%s", what, r->status, r->out, r->err);
    cr_expect_null(strstr(r->out, "BAD"), "%s reported a problem:\n%s", what, r->out);
    cr_expect_null(strstr(r->err, "memshim:"), "%s: memshim complained:\n%s", what, r->err);
}

static void expect_line(const char *what, const h_run_t *r, const char *line)
{
    cr_expect_not_null(strstr(r->out, line), "%s: no \"%s\" in its output:\n%s\nstderr:\n%s",
                       what, line, r->out, r->err);
}

/* ---- dlopen in this process -------------------------------------------------- */

Test(programs, dlopen_dlclose_in_this_process)
{
    const char *lib = h_path("fixtures/libms_dl.so");
    void *keep[100];
    for (int round = 0; round < 100; round++) {
        void *h = dlopen(lib, RTLD_NOW | RTLD_LOCAL);
        cr_assert_not_null(h, "dlopen %s: %s", lib, dlerror());
        int (*ctor_ok)(void) = (int (*)(void))dlsym(h, "ms_dl_ctor_ok");
        void (*set_report)(int *) = (void (*)(int *))dlsym(h, "ms_dl_set_report");
        void *(*make)(size_t, unsigned) = (void *(*)(size_t, unsigned))dlsym(h, "ms_dl_make");
        void (*take)(void *) = (void (*)(void *))dlsym(h, "ms_dl_take");
        void *(*grow)(void *, size_t) = (void *(*)(void *, size_t))dlsym(h, "ms_dl_grow");
        cr_assert(ctor_ok && set_report && make && take && grow);
        cr_assert(ctor_ok(), "library constructor's blocks are wrong (round %d)", round);
        keep[round] = make((size_t)round * 700 + 1, (unsigned)round);
        cr_assert_not_null(keep[round]);
        /* a block of ours freed and grown by the library */
        unsigned char *mine = v_malloc(100);
        h_fill(mine, 100, 5);
        mine = grow(mine, 200000);
        cr_assert_not_null(mine);
        cr_assert_eq(h_check(mine, 100, 5), (size_t)-1);
        take(mine);
        int report = 0;
        set_report(&report);
        cr_assert_eq(dlclose(h), 0, "dlclose: %s", dlerror());
        cr_assert_eq(report, 1, "library destructor found its blocks changed (round %d)", round);
    }
    /* blocks made by the unloaded library are ordinary blocks */
    for (int round = 0; round < 100; round++) {
        size_t n = (size_t)round * 700 + 1;
        cr_assert_geq(v_usable(keep[round]), n);
        const unsigned char *b = keep[round];
        for (size_t i = 0; i < n; i++)
            cr_assert_eq(b[i], (unsigned char)(round * 131 + i * 7 + (i >> 9)),
                         "block from the unloaded library changed");
        v_free(keep[round]);
    }
}

/* ---- fixtures under LD_PRELOAD ----------------------------------------------- */

Test(programs, constructors_destructors_and_dlopen)
{
    h_run_t *r = run_with(h_path("libmemshim.so"), "ctor_dtor", h_path("fixtures"), NULL);
    expect_clean_exit("ctor_dtor", r);
    expect_line("ctor_dtor", r, "program ctor ok\n");
    expect_line("ctor_dtor", r, "dlopen/dlclose ok\n");
    expect_line("ctor_dtor", r, "main ok\n");
    expect_line("ctor_dtor", r, "atexit ok\n");
    expect_line("ctor_dtor", r, "program dtor ok\n");
    expect_line("ctor_dtor", r, "libms_dl dtor ok\n");
    free(r);
}

/* A preloaded library listed before memshim: its constructor allocates at
 * start-up, its destructor at exit. */
Test(programs, preloaded_library_constructor_allocates)
{
    char pre[4 * PATH_MAX + 8];
    snprintf(pre, sizeof pre, "%s %s", h_path("fixtures/libms_early.so"), h_path("libmemshim.so"));
    h_run_t *r = run_with(pre, "ctor_dtor", h_path("fixtures"), NULL);
    expect_clean_exit("ctor_dtor with libms_early", r);
    expect_line("ctor_dtor with libms_early", r, "early ctor ok\n");
    expect_line("ctor_dtor with libms_early", r, "early dtor ok\n");
    expect_line("ctor_dtor with libms_early", r, "program dtor ok\n");
    free(r);

    /* and after memshim in the list */
    snprintf(pre, sizeof pre, "%s %s", h_path("libmemshim.so"), h_path("fixtures/libms_early.so"));
    r = run_with(pre, "signal_first", NULL, NULL);
    expect_clean_exit("signal_first with libms_early", r);
    expect_line("signal_first with libms_early", r, "early ctor ok\n");
    expect_line("signal_first with libms_early", r, "early dtor ok\n");
    free(r);
}

Test(programs, signal_before_first_malloc)
{
    h_run_t *r = run_with(h_path("libmemshim.so"), "signal_first", NULL, NULL);
    expect_clean_exit("signal_first", r);
    expect_line("signal_first", r, "signal first ok\n");
    free(r);
}

Test(programs, cxx_new_delete_and_aligned_new)
{
    h_run_t *r = run_with(h_path("libmemshim.so"), "cxx_new", NULL, NULL);
    expect_clean_exit("cxx_new", r);
    expect_line("cxx_new", r, "cxx ok\n");
    /* same result as without memshim */
    h_run_t *ref = malloc(sizeof *ref);
    char prog[2 * PATH_MAX + 2];
    snprintf(prog, sizeof prog, "%s", h_path("fixtures/cxx_new"));
    char *argv[] = { prog, NULL };
    const char *env[] = { "LD_PRELOAD=", NULL };
    h_run(ref, argv, env, 60);
    cr_assert(WIFEXITED(ref->status) && WEXITSTATUS(ref->status) == 3,
              "cxx_new without memshim should notice (exit 3), status %#x", ref->status);
    free(ref);
    free(r);
}

/* MEMSHIM_STATS=<file> writes the statistics at exit. */
Test(programs, stats_file_written_at_exit)
{
    char path[] = "/tmp/memshim-stats-XXXXXX";
    int fd = mkstemp(path);
    cr_assert_geq(fd, 0);
    close(fd);
    unlink(path);
    char env[sizeof path + 16];
    snprintf(env, sizeof env, "MEMSHIM_STATS=%s", path);
    h_run_t *r = run_with(h_path("libmemshim.so"), "signal_first", NULL, env);
    expect_clean_exit("signal_first with MEMSHIM_STATS", r);
    char buf[8192] = "";
    fd = open(path, O_RDONLY);
    cr_assert_geq(fd, 0, "MEMSHIM_STATS=%s: no file written", path);
    h_slurp(fd, buf, sizeof buf);
    close(fd);
    unlink(path);
    cr_expect_not_null(strstr(buf, "memshim: heap statistics"), "stats file:\n%s", buf);
    free(r);
}
