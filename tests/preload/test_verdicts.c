/* test_verdicts.c - leak verdicts a user can trust: the same exact figures
 * in every stack layout (the environment padded by different lengths moves
 * every frame), the same as valgrind memcheck's, whether the program
 * returns from main, calls exit() from deep down, is killed by a signal or
 * crashes there or overflows its stack, leaks from a thread that
 * has ended, or takes a snapshot first.  No fixture here scrubs its stack.
 * Also: unreadable blocks, and the collector API hiding no leak. */
#include "leakrun.h"

static const size_t pads[] = { 0, 1, 7, 13, 100, 333, 1000, 4097 };

/* Run FIXTURE MODE with the environment padded by `pad` bytes; the report
 * goes to stderr as text.  Fills the figures of the n-th summary: blocks
 * and bytes definitely, indirectly and possibly lost. */
/* "MSPAD=aaa...", `pad` letters: an environment that long moves every frame. */
static char *pad_env(size_t pad)
{
    char *padv = malloc(pad + 16);
    strcpy(padv, "MSPAD=");
    memset(padv + 6, 'a', pad);
    padv[6 + pad] = 0;
    return padv;
}

/* The signal leak_shapes MODE ends on (left to its default action), or 0:
 * it exits with status 0. */
static int mode_signal(const char *mode)
{
    return !strcmp(mode, "kill") ? SIGTERM : !strcmp(mode, "segv") || !strcmp(mode, "overflow") ? SIGSEGV : 0;
}

static bool figures_said(const char *fixture, const char *mode, size_t pad, int nth, long f[6], const char *said)
{
    char *padv = pad_env(pad);
    const char *env[] = { padv, NULL };
    char *argv[] = { path_in_build(fixture), (char *)mode, NULL };
    run_t r = run_with(true, NULL, argv, env);
    int sig = mode_signal(mode);
    if (sig)
        cr_assert(WIFSIGNALED(r.status) && WTERMSIG(r.status) == sig, "%s %s: status %#x (want killed by %d): %s",
                  fixture, mode, r.status, sig, r.err);
    else
        cr_assert(WIFEXITED(r.status) && WEXITSTATUS(r.status) == 0, "%s %s: status %d: %s", fixture, mode, r.status,
                  r.err);
    if (said) cr_assert(strstr(r.out, said), "%s %s (pad %zu) did not say \"%s\": %s", fixture, mode, pad, said, r.out);
    const char *text = r.err;
    for (int i = 0; i < nth && text; i++) {
        text = strstr(text, "LEAK SUMMARY");
        if (text) text++;
    }
    bool ok = text && text_kind(text, "definitely lost", &f[0], &f[1]) &&
              text_kind(text, "indirectly lost", &f[2], &f[3]) && text_kind(text, "possibly lost", &f[4], &f[5]);
    run_free(&r);
    free(padv);
    return ok;
}

/* `said`: what the fixture must print for the run to prove anything. */
static bool figures(const char *fixture, const char *mode, size_t pad, int nth, long f[6])
{
    return figures_said(fixture, mode, pad, nth, f, NULL);
}

static bool shapes_figures(const char *mode, size_t pad, int nth, long f[6])
{
    return figures("fixtures/leak_shapes", mode, pad, nth, f);
}

static void same_in_every_layout(const char *mode, int nth)
{
    for (size_t i = 0; i < sizeof pads / sizeof *pads; i++) {
        long f[6];
        cr_assert(shapes_figures(mode, pads[i], nth, f), "%s: no summary %d (pad %zu)", mode, nth, pads[i]);
        cr_expect(f[0] == 4 && f[1] == 1048678 && f[2] == 23 && f[3] == 1104,
                  "%s, environment padded by %zu: definitely lost %ld blocks %ld bytes, indirectly %ld/%ld "
                  "(want 4/1048678, 23/1104)", mode, pads[i], f[0], f[1], f[2], f[3]);
    }
}

/* The figures of FIXTURE MODE's nth summary (blocks and bytes definitely,
 * indirectly and possibly lost) are `want` in every layout. */
static void mode_in_every_layout(const char *fixture, const char *mode, int nth, const long want[6])
{
    for (size_t i = 0; i < sizeof pads / sizeof *pads; i++) {
        long f[6];
        cr_assert(figures(fixture, mode, pads[i], nth, f), "%s %s: no summary %d (pad %zu)", fixture, mode, nth,
                  pads[i]);
        cr_expect(!memcmp(f, want, sizeof f),
                  "%s %s, environment padded by %zu: %ld/%ld definite, %ld/%ld indirect, %ld/%ld possible "
                  "(want %ld/%ld, %ld/%ld, %ld/%ld)", fixture, mode, pads[i], f[0], f[1], f[2], f[3], f[4], f[5],
                  want[0], want[1], want[2], want[3], want[4], want[5]);
    }
}

static void figures_in_every_layout(const char *fixture, const long want[6])
{
    mode_in_every_layout(fixture, "", 1, want);
}

/* Every way a pair of blocks can be held, a lost ring and a lost tree:
 * memcheck's figures in every layout. */
Test(layouts, every_kind_of_pair, .timeout = 120)
{
    static const long want[6] = { 4, 416, 12, 688, 5, 560 };
    figures_in_every_layout("fixtures/leak_cases", want);
}

Test(layouts, main_returns, .timeout = 120)       { same_in_every_layout("return", 1); }
Test(layouts, exit_from_deep_down, .timeout = 120) { same_in_every_layout("exit", 1); }
Test(layouts, _exit_from_deep_down, .timeout = 120) { same_in_every_layout("_exit", 1); }
Test(layouts, _exit_from_a_signal_handler, .timeout = 120) { same_in_every_layout("sigterm", 1); }
Test(layouts, a_signal_at_its_default_from_deep_down, .timeout = 120) { same_in_every_layout("kill", 1); }
Test(layouts, a_crash_from_deep_down, .timeout = 120) { same_in_every_layout("segv", 1); }
Test(layouts, a_stack_overflow_from_deep_down, .timeout = 120) { same_in_every_layout("overflow", 1); }
Test(layouts, leaks_of_an_ended_thread, .timeout = 120) { same_in_every_layout("thread", 1); }
Test(layouts, snapshot_then_exit, .timeout = 120)
{
    same_in_every_layout("snap", 1);     /* memshim_leak_check() */
    same_in_every_layout("snap", 2);     /* and the exit report after it */
}

/* The same figures as memcheck's, mode by mode.  memcheck's own verdict
 * hangs on what dead frames left in the live stack: in some layouts (and
 * some paths of the fixture: the clone's directory moves every frame) the
 * 1 MiB block of leak_shapes is "possibly lost", through an interior
 * pointer that memset left in a frame exit() later reused.  Such a word can
 * only keep a block alive, never lose one, so memcheck runs in five layouts
 * and its verdict is the one that finds the most bytes definitely lost:
 * the layout with the fewest stale words. */
static void valgrind_figures(const char *fixture, const char *mode, size_t pad, long v[6])
{
    char *padv = pad_env(pad);
    const char *env[] = { padv, NULL };
    char *argv[] = { "valgrind", "--leak-check=full", path_in_build(fixture), (char *)mode, NULL };
    run_t vg = run_with(false, NULL, argv, env);
    bool ok = text_kind(vg.err, "definitely lost", &v[0], &v[1]) && text_kind(vg.err, "indirectly lost", &v[2], &v[3]) &&
              text_kind(vg.err, "possibly lost", &v[4], &v[5]);
    cr_assert(ok, "valgrind said: %s", vg.err);
    run_free(&vg);
    free(padv);
}

static void as_valgrind(const char *fixture, const char *mode)
{
    if (access("/usr/bin/valgrind", X_OK) != 0) cr_skip_test("valgrind is not installed");
    static const size_t vpads[5] = { 0, 13, 333, 1000, 4097 };
    long vs[5][6], m[6];
    const long *v = NULL;
    for (int i = 0; i < 5; i++) {
        valgrind_figures(fixture, mode, vpads[i], vs[i]);
        if (!v || vs[i][1] > v[1]) v = vs[i];
    }
    cr_assert(figures(fixture, mode, 0, 1, m));
    for (int k = 0; k < 6; k++)
        cr_expect_eq(m[k], v[k], "%s %s: memshim %ld/%ld %ld/%ld %ld/%ld, valgrind %ld/%ld %ld/%ld %ld/%ld", fixture, mode,
                     m[0], m[1], m[2], m[3], m[4], m[5], v[0], v[1], v[2], v[3], v[4], v[5]);
}

Test(layouts, as_valgrind_return, .timeout = 120) { as_valgrind("fixtures/leak_shapes", "return"); }
Test(layouts, as_valgrind_exit, .timeout = 120)   { as_valgrind("fixtures/leak_shapes", "exit"); }
Test(layouts, as_valgrind__exit, .timeout = 120)  { as_valgrind("fixtures/leak_shapes", "_exit"); }
Test(layouts, as_valgrind_sigterm, .timeout = 120) { as_valgrind("fixtures/leak_shapes", "sigterm"); }
Test(layouts, as_valgrind_kill, .timeout = 120)   { as_valgrind("fixtures/leak_shapes", "kill"); }
Test(layouts, as_valgrind_segv, .timeout = 120)   { as_valgrind("fixtures/leak_shapes", "segv"); }
Test(layouts, as_valgrind_overflow, .timeout = 120) { as_valgrind("fixtures/leak_shapes", "overflow"); }
Test(layouts, as_valgrind_thread, .timeout = 120) { as_valgrind("fixtures/leak_shapes", "thread"); }
Test(layouts, as_valgrind_pairs, .timeout = 120)  { as_valgrind("fixtures/leak_cases", ""); }

/* Values of pthread_setspecific keys past the first 32, in glibc's
 * second-level array: still reachable, set by main or by a live thread
 * (the first was definitely lost when libunwind's key had made the array
 * while memshim ran). */
Test(layouts, thread_specific_values_of_high_keys_are_reachable, .timeout = 120)
{
    static const long want[6] = { 1, 77, 0, 0, 0, 0 };
    mode_in_every_layout("fixtures/leak_tsd", "main", 1, want);
    mode_in_every_layout("fixtures/leak_tsd", "thread", 1, want);
}
Test(layouts, as_valgrind_thread_specific, .timeout = 120) { as_valgrind("fixtures/leak_tsd", "main"); }

/* Blocks whose only pointer is in shared memory still mapped at exit
 * (anonymous MAP_SHARED, shm_open, memfd, System V): still reachable, as
 * memcheck finds them; they were definitely lost while only private
 * mappings were roots.  One block lost besides. */
Test(layouts, shared_memory_is_a_root, .timeout = 120)
{
    static const long want[6] = { 1, 3005, 0, 0, 0, 0 };
    mode_in_every_layout("fixtures/leak_shmem", "", 1, want);
}
Test(layouts, as_valgrind_shared_memory, .timeout = 120) { as_valgrind("fixtures/leak_shmem", ""); }

/* A block held by a dlopen'd module's thread-local data, of main or of a
 * live thread: still reachable.  A thread's vector of dynamic TLS is held
 * through a pointer 16 bytes into it, and what it led to was possibly lost
 * (memcheck says possibly lost too: it cannot follow the vector). */
Test(layouts, dynamic_tls_of_a_live_thread_is_a_root, .timeout = 120)
{
    static const long want[6] = { 1, 77, 0, 0, 0, 0 };
    mode_in_every_layout("fixtures/leak_dyntls", "main", 1, want);
    mode_in_every_layout("fixtures/leak_dyntls", "thread", 1, want);
}

/* new T[0] of a type with a destructor kept in a global: still reachable,
 * though its pointer lies one past the block (the count new[] stores);
 * other pointers one past a block still point into none (the test above
 * the next).  memcheck calls it definitely lost; LeakSanitizer, reachable. */
Test(layouts, empty_array_of_new_is_reachable, .timeout = 120)
{
    static const long want[6] = { 1, 24, 0, 0, 0, 0 };
    figures_in_every_layout("fixtures/leak_new0", want);
}

/* setenv(3)'s tree of the strings it made (glibc's tsearch, its colour
 * in the low bit of a left link): still reachable, not "possibly lost"
 * (48 bytes in 2 blocks were); valgrind frees it before its check. */
Test(layouts, the_c_librarys_setenv_tree_is_reachable, .timeout = 120)
{
    static const long want[6] = { 1, 77, 0, 0, 0, 0 };
    figures_in_every_layout("fixtures/leak_setenv", want);
}
Test(layouts, as_valgrind_setenv, .timeout = 120) { as_valgrind("fixtures/leak_setenv", ""); }

/* Only a left link of such a tree counts: a block of the same shape that a
 * global holds one byte in stays possibly lost, as in memcheck. */
Test(layouts, a_pointer_one_byte_into_a_block_elsewhere_is_interior, .timeout = 120)
{
    static const long want[6] = { 1, 77, 0, 0, 1, 24 };
    mode_in_every_layout("fixtures/leak_setenv", "interior", 1, want);
}
Test(layouts, as_valgrind_setenv_interior, .timeout = 120) { as_valgrind("fixtures/leak_setenv", "interior"); }

/* Nor a left link of the program's own tree of that shape: its blocks
 * were not allocated by tsearch (their stacks say so). */
Test(layouts, a_programs_own_tree_of_that_shape_is_not_the_c_librarys, .timeout = 120)
{
    static const long want[6] = { 1, 77, 0, 0, 1, 24 };
    mode_in_every_layout("fixtures/leak_setenv", "own", 1, want);
}
Test(layouts, as_valgrind_setenv_own, .timeout = 120) { as_valgrind("fixtures/leak_setenv", "own"); }

/* A block whose only pointer is in %xmm0 of a thread spinning at exit:
 * still reachable (the stopped thread's vector registers are roots; as
 * LeakSanitizer, unlike memcheck). */
Test(layouts, vector_register_of_a_live_thread_is_a_root, .timeout = 120)
{
    static const long want[6] = { 1, 77, 0, 0, 0, 0 };
    figures_in_every_layout("fixtures/leak_xmm", want);
}

/* The same with the pointer only in the upper half of %ymm1, in the upper
 * half of %zmm2, or in %xmm16 (which only AVX-512's encoding reaches):
 * read from the XSAVE area, with ptrace and, ptrace refused, from the
 * signal frame.  The 1337-byte block was definitely lost.  Each register
 * where the processor has it. */
Test(layouts, wider_vector_registers_of_a_live_thread_are_roots, .timeout = 240)
{
    static const long want[6] = { 1, 77, 0, 0, 0, 0 };
#if defined(__x86_64__)
    static const struct { const char *mode, *feature; } regs[] = {
        { "xmm/signal", NULL },
        { "ymm", "avx2" }, { "ymm/signal", "avx2" },
        { "zmm", "avx512f" }, { "zmm/signal", "avx512f" },
        { "zmm16", "avx512f" }, { "zmm16/signal", "avx512f" },
    };
    __builtin_cpu_init();
    bool avx2 = __builtin_cpu_supports("avx2"), avx512 = __builtin_cpu_supports("avx512f");
    for (size_t i = 0; i < sizeof regs / sizeof regs[0]; i++) {
        const char *f = regs[i].feature;
        if (f && !(strcmp(f, "avx2") ? avx512 : avx2)) continue;
        mode_in_every_layout("fixtures/leak_xmm", regs[i].mode, 1, want);
    }
    if (!avx2) cr_skip_test("no AVX2 on this processor: only %%xmm0 read from the signal frame");
#else
    cr_skip_test("x86-64 only");
    (void)want;
#endif
}

/* Vectors whose end and capacity point one past blocks they fill exactly,
 * each block followed by a lost one: the end pointers keep nothing alive
 * (all 384 lost blocks used to be "still reachable" but one; the huge
 * ones, mapped end to end, were "still reachable" in most layouts). */
Test(layouts, one_past_the_end_keeps_no_block_alive, .timeout = 120)
{
    static const long want[6] = { 392, 6650880, 0, 0, 0, 0 };
    figures_in_every_layout("fixtures/leak_vectors", want);
}
Test(layouts, as_valgrind_vectors, .timeout = 120) { as_valgrind("fixtures/leak_vectors", ""); }

/* A table that fills the bytes malloc_usable_size offers with pointers:
 * what they hold is still reachable (2 blocks of 77 bytes were definitely
 * lost, kept by words past the 100 bytes asked for, which the scan did not
 * read); only the dropped block of 33 bytes is lost. */
Test(layouts, what_malloc_usable_size_offers_is_scanned, .timeout = 120)
{
    static const long want[6] = { 1, 33, 0, 0, 0, 0 };
    figures_in_every_layout("fixtures/leak_usable", want);
}
Test(layouts, as_valgrind_usable_size, .timeout = 120) { as_valgrind("fixtures/leak_usable", ""); }

/* A huge buffer shrunk and grown back in place: what it held past the
 * bytes asked for in between is no pointer. */
Test(layouts, what_a_huge_block_regains_keeps_no_block, .timeout = 120)
{
    static const long want[6] = { 1, 40, 0, 0, 0, 0 };
    figures_in_every_layout("fixtures/huge_regrow", want);
}
Test(layouts, as_valgrind_huge_regrow, .timeout = 120) { as_valgrind("fixtures/huge_regrow", ""); }

/* A table whose memory held pointers to blocks since lost, handed out
 * again (by malloc, or as what a realloc added) and written only in part:
 * the pointers left in its unwritten entries kept 55 of the 100 lost
 * blocks "still reachable" (troff lost 409 blocks that way, in glibc's
 * locale-alias table).  What reaches the program unwritten is cleared, as
 * memcheck reads only what was written. */
Test(layouts, what_was_never_written_keeps_no_block, .timeout = 120)
{
    static const long want[6] = { 100, 800, 0, 0, 0, 0 };
    mode_in_every_layout("fixtures/leak_unwritten", "new", 1, want);
    mode_in_every_layout("fixtures/leak_unwritten", "realloc", 1, want);
    mode_in_every_layout("fixtures/leak_unwritten", "inplace", 1, want);
}
Test(layouts, as_valgrind_unwritten, .timeout = 120)
{
    as_valgrind("fixtures/leak_unwritten", "new");
    as_valgrind("fixtures/leak_unwritten", "realloc");
    as_valgrind("fixtures/leak_unwritten", "inplace");
}

/* Interior pointers that memcheck's heuristics take for start pointers
 * (stdstring, length64, newarray, multipleinheritance): their blocks are
 * still reachable, the ones no heuristic takes possibly lost, as memcheck
 * says; clang's APValue arrays (new[] with a count) were 34 blocks
 * "possibly lost" under memshim and none under memcheck.  Tables of
 * functions built on the heap are no virtual tables (the helper's sweep of
 * memcheck's tests: still reachable under memshim, possibly lost under
 * memcheck). */
Test(layouts, heuristics_as_memcheck, .timeout = 120)
{
    static const long want[6] = { 0, 0, 0, 0, 4, 136 };
    figures_in_every_layout("fixtures/leak_heuristics", want);
}
Test(layouts, as_valgrind_heuristics, .timeout = 120) { as_valgrind("fixtures/leak_heuristics", ""); }

Test(verdicts, heuristics_counted_in_the_summary)
{
    run_t r;
    char *json = run_reporting("fixtures/leak_heuristics", true, &r);
    cr_assert(json, "%s", r.err);
    cr_expect(strstr(json, "\"reachable_via_heuristic\": {\"stdstring\": {\"blocks\": 1, \"bytes\": 65}, "
                           "\"length64\": {\"blocks\": 1, \"bytes\": 108}, \"newarray\": {\"blocks\": 1, \"bytes\": 48}, "
                           "\"multipleinheritance\": {\"blocks\": 1, \"bytes\": 32}, "
                           "\"gobject\": {\"blocks\": 0, \"bytes\": 0}}"), "%s", json);
    free(json);
    run_free(&r);
    char *text = run_reporting("fixtures/leak_heuristics", false, &r);
    cr_assert(text, "%s", r.err);
    const char *of = strstr(text, "of which reachable via heuristic:\n");
    cr_expect(of && strstr(of, "newarray           : 48 bytes in 1 block\n") &&
              strstr(of, "multipleinheritance: 32 bytes in 1 block\n"), "%s", text);
    free(text);
    run_free(&r);
}

/* GLib objects (fixtures/leak_gobject.c, real GLib through dlopen): the
 * one a global holds by its instance pointer, 48 bytes into its block after
 * the type's private data, is still reachable through the gobject
 * heuristic, as valgrind (told by GLib) says; the one dropped is
 * definitely lost; a plain block held 48 bytes in stays possibly lost.  In
 * every layout.  GLib's own type nodes (the fundamental types' are held 8
 * bytes in) add possibly lost blocks of their own, not counted here. */
Test(layouts, gobject_heuristic, .timeout = 120)
{
    run_t probe = run_fixture("fixtures/leak_gobject", NULL);
    bool no_glib = WIFEXITED(probe.status) && WEXITSTATUS(probe.status) == 77;
    run_free(&probe);
    if (no_glib) cr_skip_test("libgobject-2.0.so.0 is not installed");
    for (size_t i = 0; i < sizeof pads / sizeof *pads; i++) {
        long f[6];
        cr_assert(figures_said("fixtures/leak_gobject", "", pads[i], 1, f, "ok"), "no summary (pad %zu)", pads[i]);
        cr_expect(f[0] == 1 && f[1] == 88, "pad %zu: definitely lost %ld blocks %ld bytes, want 1/88", pads[i], f[0], f[1]);
    }
    run_t r;
    char *json = run_reporting("fixtures/leak_gobject", true, &r);
    cr_assert(json, "%s", r.err);
    cr_expect(strstr(json, "\"gobject\": {\"blocks\": 1, \"bytes\": 88}"), "%s", json);
    free(json);
    run_free(&r);
    char *text = run_reporting("fixtures/leak_gobject", false, &r);
    cr_assert(text, "%s", r.err);
    const char *fake = strstr(text, "88 bytes in 1 block is possibly lost");
    const char *end = fake ? strstr(fake, "==\n") : NULL;        /* the record's last line */
    const char *site = fake ? strstr(fake, "main (leak_gobject.c:") : NULL, *held = fake ? strstr(fake, "global fake") : NULL;
    cr_expect(end && site && site < end && held && held < end, "%s", text);
    free(text);
    run_free(&r);
}

/* A block lost while a stale copy of its address lies on the stack of a
 * thread that no longer runs (fixtures/dead_stacks.c): definitely lost, as
 * valgrind and LeakSanitizer say.  "exited": a thread that never allocated
 * ended, glibc keeps its stack for the next one; "fork": the child of a
 * parent whose four other threads wait with the address on their stacks.
 * Both were "still reachable" (the stack scanned as a root); a helper saw
 * the second in 1 child of 100.  "coroutine": the reverse, a stack glibc
 * gave a new thread after one that allocated had ended on it, the new
 * thread waiting on a coroutine's stack: its block kept in a frame below
 * the switch was definitely lost (the stack taken for the dead one's); it
 * is reachable, as LeakSanitizer, which reads a thread's whole stack when
 * its stack pointer is elsewhere, says too (memcheck reads a stack only
 * from its pointer and calls it lost). */
static void dead_stack_figures(const char *mode, long blocks, long bytes)
{
    for (size_t i = 0; i < sizeof pads / sizeof *pads; i++) {
        long f[6];
        cr_assert(figures_said("fixtures/dead_stacks", mode, pads[i], 1, f, "reused\n"), "%s: no summary (pad %zu)",
                  mode, pads[i]);
        cr_expect(f[0] == blocks && f[1] == bytes && f[2] == 0 && f[3] == 0 && f[4] == 0 && f[5] == 0,
                  "%s, environment padded by %zu: %ld/%ld definite, %ld/%ld indirect, %ld/%ld possible (want %ld/%ld)",
                  mode, pads[i], f[0], f[1], f[2], f[3], f[4], f[5], blocks, bytes);
    }
}
Test(layouts, lost_beside_the_stack_of_an_ended_thread, .timeout = 120) { dead_stack_figures("exited", 1, 11); }
Test(layouts, lost_beside_the_parents_threads_stacks_in_a_forked_child, .timeout = 120)
{
    dead_stack_figures("fork", 1, 11);
}
Test(layouts, a_stack_run_again_by_a_thread_on_a_coroutine_is_a_root, .timeout = 120)
{
    dead_stack_figures("coroutine", 2, 53);
}
/* A stack the program gave a thread is the program's memory again when the
 * thread has ended: a root (only stacks glibc made are dead memory). */
Test(layouts, a_stack_the_program_gave_an_ended_thread_is_a_root, .timeout = 120)
{
    dead_stack_figures("userstack", 1, 13);
}

/* A thread that ended and is not joined yet keeps the result it returns in
 * its descriptor, at the top of its stack: that part of a dead stack is a
 * root (a helper found the check calling such a result lost, 3 runs of 3). */
Test(verdicts, the_result_of_an_ended_thread_not_yet_joined_is_no_leak, .timeout = 60)
{
    for (size_t i = 0; i < 3; i++) {
        char *padv = pad_env(pads[i * 3]);
        const char *env[] = { padv, NULL };
        char *argv[] = { path_in_build("fixtures/dead_stacks"), "unjoined", NULL };
        run_t r = run_with(true, NULL, argv, env);
        cr_assert(WIFEXITED(r.status) && WEXITSTATUS(r.status) == 0, "%s", r.err);
        cr_assert(strstr(r.out, "ended\n"), "the thread did not end: %s", r.out);
        cr_expect(strstr(r.out, "check said 0\n"), "pad %zu: %s%s", pads[i * 3], r.out, r.err);
        run_free(&r);
        free(padv);
    }
}

/* ucontext coroutines on stacks of 32 KiB (fixtures/coroutines.c): blocks
 * kept only by a suspended coroutine's stack stay alive, those of an
 * abandoned one are lost with it; exit(), memshim_leak_check() and a double
 * free from inside a coroutine write their reports (on memshim's own stack:
 * the coroutine's overflowed, and the program crashed). */
Test(layouts, coroutines_suspended_and_abandoned, .timeout = 120)
{
    static const long want[6] = { 4, 32921, 2, 1028, 0, 0 };
    mode_in_every_layout("fixtures/coroutines", "", 1, want);
}
Test(layouts, coroutines_exit_inside, .timeout = 120)
{
    static const long want[6] = { 3, 153, 0, 0, 0, 0 };
    mode_in_every_layout("fixtures/coroutines", "exit", 1, want);
}
Test(layouts, as_valgrind_coroutines_exit_inside, .timeout = 120) { as_valgrind("fixtures/coroutines", "exit"); }
/* After a check or a double free inside the second coroutine, the third's
 * calls may leave the address of its lost 52-byte block in a dead word of
 * its own stack (the calls that made it wrote it there), which is then
 * indirectly lost with that abandoned stack rather than definitely: lost
 * either way, and the totals exact in every layout. */
static bool abandoned_stack_lost(const long f[6])
{
    bool stale_word = f[0] == 3 && f[1] == 32869 && f[2] == 3 && f[3] == 1080;
    bool overwritten = f[0] == 4 && f[1] == 32921 && f[2] == 2 && f[3] == 1028;
    return (stale_word || overwritten) && f[4] == 0 && f[5] == 0;
}

Test(layouts, coroutines_leak_check_inside, .timeout = 120)
{
    static const long inside[6] = { 2, 101, 0, 0, 0, 0 };
    mode_in_every_layout("fixtures/coroutines", "check", 1, inside);
    for (size_t i = 0; i < sizeof pads / sizeof *pads; i++) {
        long f[6];
        cr_assert(figures("fixtures/coroutines", "check", pads[i], 2, f), "no summary at exit (pad %zu)", pads[i]);
        cr_expect(abandoned_stack_lost(f), "environment padded by %zu: %ld/%ld definite, %ld/%ld indirect, %ld/%ld "
                  "possible (want 4/32921 and 2/1028, or 3/32869 and 3/1080)", pads[i], f[0], f[1], f[2], f[3],
                  f[4], f[5]);
    }
}
Test(verdicts, coroutines_double_free_inside)
{
    const char *env[] = { "MEMSHIM_ON_ERROR=continue", NULL };
    char *argv[] = { path_in_build("fixtures/coroutines"), "misuse", NULL };
    run_t r = run_with(true, NULL, argv, env);
    cr_assert(WIFEXITED(r.status) && WEXITSTATUS(r.status) == 0, "status %d: %s", r.status, r.err);
    cr_expect(strstr(r.err, "memshim: free(): double free: ") && strstr(r.err, "first freed at"), "%s", r.err);
    long f[6] = { 0 };
    cr_expect(text_kind(r.err, "definitely lost", &f[0], &f[1]) && text_kind(r.err, "indirectly lost", &f[2], &f[3]) &&
              abandoned_stack_lost(f), "%s", r.err);
    run_free(&r);
}

Test(verdicts, unreadable_blocks_are_classified_not_read)
{
    run_t r;
    char *json = run_reporting("fixtures/leak_protect", true, &r);
    cr_assert(WIFEXITED(r.status) && WEXITSTATUS(r.status) == 0, "the program or the scan failed: %s", r.err);
    cr_assert_not_null(json, "no report: %s", r.err);
    long b, n;
    cr_assert(json_kind(json, "definitely_lost", &b, &n));
    cr_expect(b == 2 && n == 300, "only what the unreadable parts pointed to is lost: %ld/%ld", b, n);
    cr_assert(json_kind(json, "still_reachable", &b, &n));
    cr_expect_geq(n, 8192 + (4 << 20), "the protected and the holed blocks are still reachable: %ld", n);
    free(json);
    run_free(&r);
}

Test(verdicts, registration_creates_no_root_and_objects_name_their_type)
{
    run_t r;
    char *json = run_reporting("fixtures/leak_register", true, &r);
    cr_assert(WIFEXITED(r.status) && WEXITSTATUS(r.status) == 0, "%s", r.err);
    cr_assert_not_null(json, "no report: %s", r.err);
    long b, n;
    cr_assert(json_kind(json, "definitely_lost", &b, &n));
    cr_expect(b == 2 && n == 64 + 24 + 32, "the registered block and the Widget: %ld/%ld\n%s", b, n, json);
    cr_assert(json_kind(json, "indirectly_lost", &b, &n));
    cr_expect(b == 1 && n == 32, "the block linked from it: %ld/%ld", b, n);
    cr_expect(strstr(json, "\"type\": \"Widget\""), "the object's record names its type: %s", json);
    free(json);
    run_free(&r);
}

/* A report asked for by signal just before exit races the exit report;
 * the exit report (and MEMSHIM_EXITCODE) must win every time. */
Test(verdicts, a_snapshot_near_exit_never_loses_the_exit_report, .timeout = 120)
{
    const char *env[] = { "MEMSHIM_REPORT_SIGNAL=SIGUSR1", "MEMSHIM_EXITCODE=7", NULL };
    for (int i = 0; i < 12; i++) {
        run_t r = run_fixture("fixtures/leak_signal_exit", env);
        cr_assert(WIFEXITED(r.status) && WEXITSTATUS(r.status) == 7,
                  "run %d: exit status %d, want MEMSHIM_EXITCODE's 7; stderr: %s", i,
                  WIFEXITED(r.status) ? WEXITSTATUS(r.status) : -WTERMSIG(r.status), r.err);
        cr_expect(strstr(r.err, "memshim leak report (at exit)") &&
                  strstr(r.err, "77 bytes in 1 block is definitely lost"), "run %d: %s", i, r.err);
        run_free(&r);
    }
}

/* A write after free lands on memshim's free-list link: each is reported
 * once with the block's stacks, the program runs on, the exit report comes. */
Test(verdicts, writes_after_free_are_reported_and_survived, .timeout = 120)
{
    run_t r = run_fixture("fixtures/heap_uaf", NULL);
    cr_assert(WIFEXITED(r.status) && WEXITSTATUS(r.status) == 0, "status %#x: %s", r.status, r.err);
    cr_expect(strstr(r.out, "heap_uaf done"), "%s", r.out);
    int n = 0;
    for (const char *p = r.err; (p = strstr(p, "memshim: write to freed block 0x")); p++) n++;
    cr_expect_eq(n, 2, "two writes after free, each reported once: %s", r.err);
    int frames = 0;                     /* the messages' frames ("#N 0x... main"), not the report's */
    for (const char *p = r.err; (p = strstr(p, "main (heap_uaf.c:")); p++) {
        const char *line = p;
        while (line > r.err && line[-1] != '\n') line--;
        frames += strncmp(line, "        #", 9) == 0;
    }
    cr_expect_eq(frames, 4, "each block's allocation and free, in main: %s", r.err);
    cr_expect(strstr(r.err, "99 bytes in 1 block is definitely lost"), "the exit report: %s", r.err);
    run_free(&r);
}

/* A plugin that leaked and was unloaded keeps its names, even when another
 * library is mapped where it was; valgrind agrees on the figures. */
Test(verdicts, stacks_through_unloaded_libraries_keep_their_names, .timeout = 120)
{
    char *argv[] = { path_in_build("fixtures/leak_dlclose"), path_in_build("fixtures/libleak_dl.so"),
                     path_in_build("fixtures/libleak_dl2.so"), NULL };
    run_t r = run_with(true, NULL, argv, NULL);
    cr_assert(WIFEXITED(r.status) && WEXITSTATUS(r.status) == 0, "%s", r.err);
    int first = 0, second = 0;
    for (const char *p = r.err; (p = strstr(p, "libleak_lose (libleak_dl.c:")); p++) first++;
    for (const char *p = r.err; (p = strstr(p, "libleak2_lose (libleak_dl2.c:")); p++) second++;
    cr_expect(first == 2 && second == 2, "each leak named by its own library (%d, %d): %s", first, second, r.err);
    cr_expect_null(strstr(r.err, "???"), "no unnamed frame: %s", r.err);
    long b, n;
    cr_assert(text_kind(r.err, "definitely lost", &b, &n));
    cr_expect(b == 4 && n == 330, "%ld/%ld", b, n);
    run_free(&r);
    if (access("/usr/bin/valgrind", X_OK) == 0) {
        char *vargv[] = { "valgrind", "--leak-check=full", argv[0], argv[1], argv[2], NULL };
        run_t vg = run_with(false, NULL, vargv, NULL);
        long vb, vn;
        cr_assert(text_kind(vg.err, "definitely lost", &vb, &vn), "%s", vg.err);
        cr_expect(vb == b && vn == n, "valgrind: %ld/%ld", vb, vn);
        run_free(&vg);
    }
}

/* The only pointer sits in a register of a running thread: reachable while
 * it is there, lost once it is gone. */
Test(verdicts, a_pointer_held_only_in_another_threads_register, .timeout = 120)
{
    run_t r = run_fixture("fixtures/leak_regs", NULL);
    cr_assert(WIFEXITED(r.status) && WEXITSTATUS(r.status) == 0, "%s", r.err);
    cr_expect(strstr(r.out, "during=0 after=1"), "%s", r.out);
    run_free(&r);
}

/* A plugin's destructor unloads another plugin: dlclose within dlclose
 * must neither deadlock nor lose names. */
Test(verdicts, dlclose_from_a_destructor, .timeout = 120)
{
    char inner[4200];
    snprintf(inner, sizeof inner, "LEAK_DL_INNER=%s", path_in_build("fixtures/libleak_dl.so"));
    const char *env[] = { inner, NULL };
    char *argv[] = { path_in_build("fixtures/leak_dlclose"), path_in_build("fixtures/libleak_dl.so"),
                     path_in_build("fixtures/libleak_dl2.so"), path_in_build("fixtures/libleak_dl3.so"), NULL };
    run_t r = run_with(true, NULL, argv, env);
    cr_assert(WIFEXITED(r.status) && WEXITSTATUS(r.status) == 0, "status %#x: %s", r.status, r.err);
    cr_expect(strstr(r.out, "leak_dlclose done"), "%s", r.out);
    cr_expect(strstr(r.err, "libleak3_lose (libleak_dl3.c:") && strstr(r.err, "libleak_lose (libleak_dl.c:"),
              "%s", r.err);
    long b, n;
    cr_assert(text_kind(r.err, "definitely lost", &b, &n), "%s", r.err);
    cr_expect(b == 6 && n == 330 + 198, "%ld/%ld", b, n);
    run_free(&r);
}

/* Threads using the data of more modules with thread-local data than their
 * vector of dynamic TLS had room for: the dynamic loader reallocates the
 * vector while it brings it up to date, and libunwind's own TLS, touched
 * while memshim takes that call's stack, used to start the same update
 * inside it (the vector reallocated twice: "pointer already freed", the
 * program aborted).  Under full tracking, the sampled profiler and a
 * profile, in several stack layouts, the program runs to its end, and the
 * loader's vectors and TLS blocks are no leak (reachable from the
 * descriptors of the threads that ended, at the top of their stacks in
 * glibc's cache; those not reached are suppressed as the loader's own);
 * valgrind finds none either (it lists the vectors as possibly lost). */
Test(verdicts, the_loaders_thread_local_storage_neither_breaks_nor_leaks, .timeout = 240)
{
    static const char *modes[][2] = { { NULL, NULL }, { "MEMSHIM_TRACK=0", "MEMSHIM_SAMPLE=1" },
                                      { "MEMSHIM_PROFILE=/tmp/ms_tls_modules.pb.gz", NULL } };
    static const size_t tls_pads[] = { 0, 13, 333, 4097 };
    char *argv[] = { path_in_build("fixtures/tls_modules"), path_in_build("fixtures/libtls_mod.so"), NULL };
    for (unsigned m = 0; m < sizeof modes / sizeof *modes; m++)
        for (unsigned k = 0; k < sizeof tls_pads / sizeof *tls_pads; k++) {
            char *padv = pad_env(tls_pads[k]);
            const char *env[] = { padv, "MEMSHIM_REPORT=/tmp/ms_tls_modules.txt", modes[m][0], modes[m][1], NULL };
            run_t r = run_with(true, NULL, argv, env);
            char *rep = slurp("/tmp/ms_tls_modules.txt");
            unlink("/tmp/ms_tls_modules.txt");
            cr_assert(WIFEXITED(r.status) && WEXITSTATUS(r.status) == 0, "%s, pad %zu: status %#x: %s",
                      modes[m][0] ? modes[m][0] : "tracking", tls_pads[k], r.status, r.err);
            cr_expect(strstr(r.out, "tls_modules done"), "%s", r.out);
            cr_expect_null(strstr(r.err, "memshim: "), "no complaint: %s", r.err);
            if (!modes[m][0]) {
                static const char *kinds[] = { "definitely lost", "indirectly lost", "possibly lost" };
                for (int i = 0; i < 3; i++) {
                    long b = -1, n = -1;
                    cr_assert(text_kind(rep, kinds[i], &b, &n), "pad %zu: %s", tls_pads[k], rep);
                    cr_expect(b == 0 && n == 0, "pad %zu: %s %ld bytes in %ld blocks: %s", tls_pads[k], kinds[i],
                              n, b, rep);
                }
            }
            free(rep);
            run_free(&r);
            free(padv);
        }
    unlink("/tmp/ms_tls_modules.pb.gz");
    if (access("/usr/bin/valgrind", X_OK) == 0) {
        char *vargv[] = { "valgrind", "--leak-check=full", argv[0], argv[1], NULL };
        run_t vg = run_with(false, NULL, vargv, NULL);
        long b = -1, n = -1;
        cr_assert(text_kind(vg.err, "definitely lost", &b, &n), "%s", vg.err);
        cr_expect(b == 0 && n == 0, "valgrind: %s", vg.err);
        cr_assert(text_kind(vg.err, "indirectly lost", &b, &n), "%s", vg.err);
        cr_expect(b == 0 && n == 0, "valgrind: %s", vg.err);
        run_free(&vg);
    }
}

/* A thread that lost a block waits in read() on a buffer of its stack
 * that read() never fills, where the allocator had taken the block's
 * stack: the unwritten part kept the address (libunwind's saved
 * registers), and the block was "still reachable" in every layout, at a
 * snapshot and at exit.  The same for a block whose stack was found by the
 * frame sizes learnt, without libunwind, which memshim clears less deep
 * (without that clearing: still reachable at the snapshot, and no loss at
 * exit).  valgrind: definitely lost. */
Test(layouts, a_waiting_threads_unwritten_buffer_keeps_no_lost_block, .timeout = 180)
{
    static const long want[6] = { 1, 100, 0, 0, 0, 0 };
    mode_in_every_layout("fixtures/stale_below", "exit", 1, want);
    mode_in_every_layout("fixtures/stale_below", "check", 1, want);
    mode_in_every_layout("fixtures/stale_below", "check", 2, want);
    mode_in_every_layout("fixtures/stale_below", "walked-exit", 1, want);
    mode_in_every_layout("fixtures/stale_below", "walked-check", 1, want);
    mode_in_every_layout("fixtures/stale_below", "walked-check", 2, want);
    if (access("/usr/bin/valgrind", X_OK) != 0) return;
    long v[6];
    valgrind_figures("fixtures/stale_below", "exit", 0, v);
    cr_expect(v[0] == 1 && v[1] == 100, "valgrind: definitely lost %ld blocks, %ld bytes", v[0], v[1]);
}

/* The part of `text` from the first `from` on, up to the next `to` (or its
 * end), copied; NULL when `from` is not there. */
static char *section(const char *text, const char *from, const char *to)
{
    const char *a = strstr(text, from);
    if (!a) return NULL;
    const char *b = strstr(a + strlen(from), to);
    return strndup(a, b ? (size_t)(b - a) : strlen(a));
}

/* Collector objects are recorded at the program's call into the collector
 * (memshim_new, and memshim_decref for deaths), where the stack cache can
 * find them: stacks that differ only above a shared helper stay apart, and
 * an object that dies in another's dealloc function, which ends in a tail
 * call to memshim_decref, is freed at the call that started the deaths. */
Test(layouts, collector_objects_carry_their_callers_stacks, .timeout = 120)
{
    for (size_t i = 0; i < sizeof pads / sizeof *pads; i += 2) {
        char *padv = pad_env(pads[i]);
        const char *env[] = { padv, NULL };
        run_t r = run_fixture("fixtures/gc_sites", env);
        cr_assert(WIFEXITED(r.status) && WEXITSTATUS(r.status) == 0, "pad %zu: %s", pads[i], r.err);
        /* A record ends at its blank line, "==PID==". */
        char *a = section(r.err, "2400 bytes in 60 blocks are definitely lost", "==\n");
        char *b = section(r.err, "1600 bytes in 40 blocks are definitely lost", "==\n");
        cr_expect(a && strstr(a, "new_node (gc_sites.c:") && strstr(a, "make_a (gc_sites.c:") && !strstr(a, "make_b"),
                  "pad %zu: make_a's 60 objects: %s", pads[i], r.err);
        cr_expect(b && strstr(b, "new_node (gc_sites.c:") && strstr(b, "make_b (gc_sites.c:") && !strstr(b, "make_a"),
                  "pad %zu: make_b's 40 objects: %s", pads[i], r.err);
        cr_expect(strstr(r.err, "definitely lost: 4000 bytes in 100 blocks"), "pad %zu: %s", pads[i], r.err);
        static const char w[] = "memshim: write to freed block";
        const char *w1 = strstr(r.err, w), *w2 = w1 ? strstr(w1 + 1, w) : NULL;
        const char *w3 = w2 ? strstr(w2 + 1, w) : NULL;
        char *one = w1 ? section(w1, w, w) : NULL, *pair = w2 ? section(w2, w, w) : NULL;
        char *cyc = w3 ? section(w3, w, "==") : NULL;
        const char *f1 = one ? strstr(one, "freed at:") : NULL, *f2 = pair ? strstr(pair, "freed at:") : NULL;
        const char *f3 = cyc ? strstr(cyc, "freed at:") : NULL;
        cr_expect(f1 && strstr(f1, "drop_one (gc_sites.c:"), "pad %zu: the first object's free: %s",
                  pads[i], r.err);
        cr_expect(f2 && strstr(f2, "drop_pair (gc_sites.c:"),
                  "pad %zu: the inner object's free, in its holder's death: %s", pads[i], r.err);
        cr_expect(f3 && strstr(f3, "collect_cycle (gc_sites.c:"),
                  "pad %zu: the write into an object a collection freed, named by the collection: %s",
                  pads[i], r.err);
        free(a); free(b); free(one); free(pair); free(cyc); free(padv);
        run_free(&r);
    }
}
