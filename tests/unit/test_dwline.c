/* test_dwline.c - dwline.c's reading of DWARF line programs against
 * libdw's (dwfl_module_getsrc), address by address, over the whole code of
 * this test program (memshim's own objects are linked into it) and of a
 * library built with DWARF 4 in compressed sections
 * (tests/fixtures/libdwarf4.c). */
#include <criterion/criterion.h>
#include <dlfcn.h>
#include <elfutils/libdwfl.h>
#include <string.h>
#include <unistd.h>
#include "dwline.h"
#include "shim.h"

static Dwfl *dwfl;

static void setup(void)
{
    static const Dwfl_Callbacks cb = {
        .find_elf = dwfl_linux_proc_find_elf,
        .find_debuginfo = dwfl_build_id_find_debuginfo,
    };
    _ms_init();
    void *h = dlopen("libdw.so.1", RTLD_NOW);
    cr_assert_not_null(h, "libdw: %s", dlerror());
    cr_assert(_ms_dwline_init(h), "libdw and libelf have every function dwline.c uses");
    dwfl = dwfl_begin(&cb);
    cr_assert_not_null(dwfl);
    cr_assert_eq(dwfl_linux_proc_report(dwfl, getpid()), 0);
    cr_assert_eq(dwfl_report_end(dwfl, NULL, NULL), 0);
}
static void teardown(void) { dwfl_end(dwfl); }
TestSuite(dwline, .init = setup, .fini = teardown);

typedef struct { size_t asked, lines, none, left, differ; } tally_t;

/* Every `step`-th address of the module holding `code`, asked of both. */
static tally_t compare_module(const void *code, unsigned step)
{
    tally_t t = { 0 };
    Dwfl_Module *mod = dwfl_addrmodule(dwfl, (Dwarf_Addr)(uintptr_t)code);
    cr_assert_not_null(mod);
    Dwarf_Addr lo, hi;
    dwfl_module_info(mod, NULL, &lo, &hi, NULL, NULL, NULL, NULL);
    void *state = NULL;
    for (Dwarf_Addr a = lo; a < hi; a += step) {
        const char *file = NULL;
        int line = 0;
        int got = _ms_dwline_find(mod, &state, a, &file, &line);
        Dwfl_Line *dl = dwfl_module_getsrc(mod, a);
        int dline = 0;
        const char *dfile = dl ? dwfl_lineinfo(dl, NULL, &dline, NULL, NULL, NULL) : NULL;
        t.asked++;
        if (got < 0) { t.left++; continue; }
        if (got == 0) {
            t.none++;
            if (dfile) {
                t.differ++;
                cr_log_warn("%#lx: none here, libdw %s:%d", (unsigned long)a, dfile, dline);
            }
            continue;
        }
        t.lines++;
        if (!dfile || strcmp(file, dfile) || line != dline) {
            t.differ++;
            if (t.differ < 10)
                cr_log_warn("%#lx: %s:%d here, libdw %s:%d", (unsigned long)a, file, line,
                            dfile ? dfile : "(none)", dline);
        }
    }
    _ms_dwline_free(state);
    return t;
}

Test(dwline, every_address_of_this_program_as_libdw_reads_it)
{
    tally_t t = compare_module((const void *)compare_module, 3);
    cr_assert_gt(t.lines, 10000, "addresses with a line: %zu of %zu", t.lines, t.asked);
    cr_log_info("%zu asked, %zu with a line, %zu none", t.asked, t.lines, t.none);
    cr_assert_eq(t.left, 0, "none left to libdw (DWARF 5 from this gcc): %zu", t.left);
    cr_assert_eq(t.differ, 0, "%zu of %zu addresses answered otherwise than libdw", t.differ, t.asked);
}

Test(dwline, a_dwarf4_library_as_libdw_reads_it)
{
    void *lib = dlopen(MS_TEST_BUILD_DIR "/fixtures/libdwarf4.so", RTLD_NOW);
    cr_assert_not_null(lib, "%s", dlerror());
    void *fn = dlsym(lib, "dwarf4_probe");
    cr_assert_not_null(fn);
    dwfl_report_begin(dwfl);
    cr_assert_eq(dwfl_linux_proc_report(dwfl, getpid()), 0);
    cr_assert_eq(dwfl_report_end(dwfl, NULL, NULL), 0);
    tally_t t = compare_module(fn, 1);
    cr_assert_gt(t.lines, 100, "addresses with a line: %zu of %zu", t.lines, t.asked);
    cr_assert_eq(t.left, 0, "none left to libdw: %zu", t.left);
    cr_assert_eq(t.differ, 0, "%zu of %zu addresses answered otherwise than libdw", t.differ, t.asked);
}
