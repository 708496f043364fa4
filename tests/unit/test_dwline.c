/* test_dwline.c - dwline.c's reading of DWARF line programs against
 * libdw's (dwfl_module_getsrc), address by address, over the whole code of
 * this test program (memshim's own objects are linked into it) and of a
 * library built with DWARF 4 in compressed sections
 * (tests/fixtures/libdwarf4.c); and damaged copies of this program's line
 * programs, read safely. */
#include <criterion/criterion.h>
#include <dlfcn.h>
#include <elfutils/libdwfl.h>
#include <fcntl.h>
#include <gelf.h>
#include <stdlib.h>
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

/* A copy of this program's own section `name`, read with libelf. */
static unsigned char *own_section(const char *name, size_t *size)
{
    int fd = open("/proc/self/exe", O_RDONLY);
    cr_assert_geq(fd, 0);
    elf_version(EV_CURRENT);
    Elf *elf = elf_begin(fd, ELF_C_READ, NULL);
    cr_assert_not_null(elf);
    size_t shstrndx;
    cr_assert_eq(elf_getshdrstrndx(elf, &shstrndx), 0);
    unsigned char *copy = NULL;
    for (Elf_Scn *scn = NULL; (scn = elf_nextscn(elf, scn));) {
        GElf_Shdr sh;
        gelf_getshdr(scn, &sh);
        if (strcmp(elf_strptr(elf, shstrndx, sh.sh_name), name)) continue;
        Elf_Data *d = elf_getdata(scn, NULL);
        cr_assert_not_null(d);
        copy = malloc(d->d_size);
        memcpy(copy, d->d_buf, d->d_size);
        *size = d->d_size;
    }
    elf_end(elf);
    close(fd);
    cr_assert_not_null(copy, "no %s in this program", name);
    return copy;
}

static uint64_t xorshift(uint64_t *x)
{
    *x ^= *x << 13;
    *x ^= *x >> 7;
    *x ^= *x << 17;
    return *x;
}

/* Damaged line programs (bytes changed in a unit's header or program, a
 * unit cut short) are read without a fault, a hang or a write outside
 * the table, or left to libdw: a debug file on disk may be anything. */
Test(dwline, damaged_line_programs_are_read_safely_or_left, .timeout = 60)
{
    size_t size = 0;
    size_t str_size = 0;
    unsigned char *sec = own_section(".debug_line", &size), *work = malloc(size);
    unsigned char *str = own_section(".debug_line_str", &str_size);
    size_t off[512], n = 0;                         /* where units start */
    for (size_t o = 0; o + 4 <= size && n < 512;) {
        uint32_t len;
        memcpy(&len, sec + o, 4);
        if (len >= 0xfffffff0u) break;
        off[n++] = o;
        o += 4 + (size_t)len;
    }
    cr_assert_gt(n, 10, "units: %zu", n);
    for (size_t i = 0; i < n; i++)
        cr_assert_gt(_ms_dwline_parse(sec, size, str, str_size, off[i]), 0, "unit at %zu read whole", off[i]);
    uint64_t x = 88172645463325252ull;
#define RND() xorshift(&x)
    size_t left = 0, read = 0;
    for (int round = 0; round < 20000; round++) {
        size_t u = RND() % n, start = off[u], end = u + 1 < n ? off[u + 1] : size;
        memcpy(work + start, sec + start, end - start);
        size_t span = RND() % 2 ? (end - start < 80 ? end - start : 80) : end - start;   /* header, or anywhere */
        for (int k = 1 + (int)(RND() % 4); k > 0; k--) work[start + RND() % span] = (unsigned char)RND();
        size_t avail = RND() % 8 ? size : start + RND() % (end - start);              /* sometimes cut short */
        long rows = _ms_dwline_parse(work, avail, str, str_size, start);
        if (rows < 0) left++;
        else read++;
        memcpy(work + start, sec + start, end - start);
    }
    cr_log_info("damaged programs: %zu read, %zu left to libdw", read, left);
    cr_assert_gt(left, 0, "some damage is noticed");
    free(work);
    free(sec);
    free(str);
}
