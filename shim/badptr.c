/* badptr.c - pointers given to free() or realloc() that are not live blocks
 * memshim handed out: which of them are certainly no block at all (heap
 * misuse, reported with their stack), and which may be another allocator's
 * and are tolerated.
 *
 * The rule.  Before memshim takes over, the dynamic loader allocates a few
 * blocks with its own minimal malloc: in the last page of its data segment
 * and in anonymous mappings of its own.  glibc frees some of them later
 * through free(), which is then memshim's, so a pointer memshim does not know
 * must in general be tolerated.  It is reported only when no allocator can
 * have handed it out:
 *   - it is inside one of memshim's segments but not at the start of a
 *     block handed out (the block it falls in, if any, is named);
 *   - it is inside a huge block of memshim's, past its start;
 *   - nothing is mapped there;
 *   - it lies on the calling thread's stack (from its stack pointer to the
 *     top of its stack, the main thread's environment strings included);
 *   - it lies in the image of the program or of a shared object (its code,
 *     constants, globals: the PT_LOAD segments dl_iterate_phdr lists),
 *     except the dynamic loader's, where the loader's own blocks live;
 *   - it is not 16-byte aligned: no allocator of a glibc process, the
 *     loader's included, hands out such a block.
 * Anything else (anonymous mappings, the brk heap, the loader's data) is
 * tolerated silently, or with a message under MEMSHIM_VERBOSE. */
#include <errno.h>
#include <link.h>
#include <string.h>
#include <sys/auxv.h>
#include <unistd.h>
#include "shim.h"

typedef struct {
    char   *why;
    size_t  cap;
} why_t;

static void say(why_t *w, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void say(why_t *w, const char *fmt, ...)
{
    ms_buf_t b;
    _ms_buf_init(&b, w->why, w->cap - 1, -1);
    va_list ap;
    va_start(ap, fmt);
    _ms_vbprintf(&b, fmt, ap);
    va_end(ap);
    w->why[b.len < w->cap ? b.len : w->cap - 1] = 0;
}

/* ---- the image of a loaded object --------------------------------------------- */

typedef struct {
    uintptr_t   a, loader;
    const char *name;      /* the object's path, "" for the program */
    bool        writable;
} image_t;

static int find_image(struct dl_phdr_info *info, size_t size, void *arg)
{
    (void)size;
    image_t *im = arg;
    if (info->dlpi_addr == im->loader) return 0;         /* the loader's blocks live there */
    for (int i = 0; i < info->dlpi_phnum; i++) {
        const ElfW(Phdr) *ph = &info->dlpi_phdr[i];
        if (ph->p_type != PT_LOAD) continue;
        uintptr_t lo = info->dlpi_addr + ph->p_vaddr, hi = lo + ph->p_memsz;
        if (im->a >= lo && im->a < hi) {
            im->name = info->dlpi_name ? info->dlpi_name : "";
            im->writable = (ph->p_flags & PF_W) != 0;
            return 1;
        }
    }
    return 0;
}

/* The main thread's stack holds, above __libc_stack_end, the arguments and
 * the environment; the kernel copies the program's file name (AT_EXECFN)
 * last, at the very top. */
static uintptr_t stack_top(void)
{
    uintptr_t top = _ms_stack_top();
    if (_ms_on_main_thread()) {
        const char *fn = (const char *)getauxval(AT_EXECFN);
        if (fn && (uintptr_t)fn > top)
            top = ((uintptr_t)fn + strlen(fn) + MS_OS_PAGE) & ~(uintptr_t)(MS_OS_PAGE - 1);
    }
    return top;
}

/* ---- inside memshim's heap ------------------------------------------------------ */

/* What p points at in segment s (it is not the start of a block handed out);
 * the record of the block it falls in, if there is one. */
static void in_segment(ms_segment_t *s, const void *p, why_t *w, const ms_meta_t **mp, ms_meta_t *copy)
{
    ms_where_t at;
    *mp = NULL;
    if (!_ms_where(s, p, &at)) {
        say(w, _ms_page_index(s, p) == 0 ? "inside memshim's heap, in a segment's header"
                                         : "inside memshim's heap, in a free page");
        return;
    }
    const ms_page_t *pg = at.pg;
    const ms_class_t *k = at.k;
    uint64_t idx = at.idx;
    const uint8_t *blk = pg->start + idx * k->size;
    uint64_t into = (uint64_t)((const uint8_t *)p - blk);
    const ms_meta_t *m = pg->meta && idx < k->capacity ? &pg->meta[idx] : NULL;
    if (m) *copy = *m;
    if (idx >= __atomic_load_n(&pg->carved, __ATOMIC_RELAXED) || (m && copy->state == MS_BLK_NEVER)) {
        if (into) say(w, "%llu bytes inside a block never handed out, at %p", (unsigned long long)into, (const void *)blk);
        else say(w, "inside memshim's heap, a block never handed out");
    } else if (m && copy->state == MS_BLK_LIVE) {
        say(w, "%llu bytes inside a block of %u bytes at %p", (unsigned long long)into, copy->size, (const void *)blk);
        *mp = copy;
    } else if (m && copy->state == MS_BLK_FREED) {
        say(w, "%llu bytes inside a freed block at %p", (unsigned long long)into, (const void *)blk);
        *mp = copy;
    } else {
        say(w, "%llu bytes inside a block of %u bytes at %p", (unsigned long long)into, k->size, (const void *)blk);
    }
}

/* ---- the verdict ----------------------------------------------------------------- */

static bool classify(const void *p, const char *what)
{
    char why[160];
    why_t w = { why, sizeof why };
    const ms_meta_t *m = NULL;
    ms_meta_t copy;
    uintptr_t a = (uintptr_t)p, start;
    size_t req;
    ms_segment_t *s = _ms_segment_of(p);
    if (s) {
        in_segment(s, p, &w, &m, &copy);
    } else if (_ms_huge_containing(p, &start, &req, &copy)) {
        say(&w, "%llu bytes inside a block of %llu bytes at %p", (unsigned long long)(a - start),
            (unsigned long long)req, (const void *)start);
        m = &copy;
    } else if (!_ms_os_readable(p, 1)) {
        say(&w, "not mapped");
    } else if (a >= (uintptr_t)__builtin_frame_address(0) && a < stack_top()) {
        say(&w, "on this thread's stack");
    } else {
        image_t im = { a, (uintptr_t)getauxval(AT_BASE), NULL, false };
        if (_ms_iterate_phdr(find_image, &im)) {
            char shown[512];
            const char *name = im.name && im.name[0] ? _ms_name_shown(im.name, shown, sizeof shown) : "the program";
            say(&w, "%s %s", im.writable ? "in the data of" : "in the code or constants of", name);
        } else if (a % MS_ALIGN) {
            say(&w, "not aligned to %u bytes", MS_ALIGN);
        } else {
            return false;                                /* possibly another allocator's */
        }
    }
    char is[256];
    ms_buf_t b;
    _ms_buf_init(&b, is, sizeof is - 1, -1);
    _ms_bprintf(&b, "not a block memshim handed out (%s)", why);
    is[b.len] = 0;
    static const char *const titles[] = { "block allocated at", "block freed at" };
    uint32_t stacks[2] = { m ? m->stack : 0, m ? m->free_stack : 0 };
    _ms_misuse_report(what, p, is, titles, stacks, !m ? 0 : m->state == MS_BLK_FREED ? 2 : 1);
    return true;
}

bool _ms_bad_pointer(const char *what, const void *p)
{
    int saved = errno;                   /* a tolerated pointer's free leaves errno alone */
    bool bad = classify(p, what);
    errno = saved;
    return bad;
}
