/* gcapi.c - the user-facing memshim_gc_* functions (CPython's gc module):
 * collect, enable/disable, thresholds, counts, freeze, debug flags, the
 * SAVEALL garbage list, callbacks, the lock, and MEMSHIM_GC. */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include "gc_int.h"

/* ---- MEMSHIM_GC ------------------------------------------------------------- *
 * "off" or "0": start with automatic collection disabled (memshim_gc_disable).
 * "on": the defaults.  "T0[,T1[,T2]]": thresholds, as memshim_gc_set_threshold
 * (T0 = 0 also turns automatic collection off, as in CPython).  Anything else
 * earns one line on stderr and changes nothing. */
static int parse_long(const char **s, long *out)
{
    const char *p = *s;
    if (*p < '0' || *p > '9') return -1;
    long v = 0;
    while (*p >= '0' && *p <= '9') {
        if (v > (LONG_MAX - (*p - '0')) / 10) return -1;
        v = v * 10 + (*p++ - '0');
    }
    *out = v;
    *s = p;
    return 0;
}

void gc_env_load(void)
{
    char text[256];
    const char *v = gc_host_setting(text, sizeof text);
    if (!v) return;
    if (strcasecmp(v, "off") == 0 || strcmp(v, "0") == 0) { gc_st.enabled = 0; return; }
    if (strcasecmp(v, "on") == 0) return;
    long t[GC_NGEN];
    int n = 0;
    const char *p = v;
    for (;;) {
        if (n == GC_NGEN || parse_long(&p, &t[n]) < 0) goto bad;
        n++;
        if (*p == 0) break;
        if (*p++ != ',') goto bad;
    }
    for (int i = 0; i < n; i++) gc_st.gen[i].threshold = t[i];
    return;
bad:
    gc_warn_line("memshim: MEMSHIM_GC=%.64s: expected off, on, or THRESHOLD0[,THRESHOLD1"
                  "[,THRESHOLD2]] (integers >= 0, e.g. 2000,10,10); using %ld,%ld,%ld\n", v,
                  gc_st.gen[0].threshold, gc_st.gen[1].threshold, gc_st.gen[2].threshold);
}

/* ---- collection and settings ---------------------------------------------------- */
GC_EXPORT long memshim_gc_collect(int generation)
{
    if (generation < 0 || generation >= GC_NGEN) { errno = EINVAL; return -1; }
    gc_lock();
    long n = gc_collect_locked(generation);
    gc_unlock();
    return n;
}

GC_EXPORT void memshim_gc_enable(void)  { gc_lock(); gc_st.enabled = 1; gc_unlock(); }
GC_EXPORT void memshim_gc_disable(void) { gc_lock(); gc_st.enabled = 0; gc_unlock(); }

GC_EXPORT int memshim_gc_isenabled(void)
{
    gc_lock();
    int e = gc_st.enabled;
    gc_unlock();
    return e;
}

GC_EXPORT void memshim_gc_set_threshold(long t0, long t1, long t2)
{
    gc_lock();
    gc_st.gen[0].threshold = t0 < 0 ? 0 : t0;
    gc_st.gen[1].threshold = t1 < 0 ? 0 : t1;
    gc_st.gen[2].threshold = t2 < 0 ? 0 : t2;
    gc_unlock();
}

/* memshim.h's arrays of three, one per generation. */
_Static_assert(GC_NGEN == 3, "memshim.h: out[3] is one figure per generation");

GC_EXPORT void memshim_gc_get_threshold(long out[3])
{
    gc_lock();
    for (int i = 0; i < GC_NGEN; i++) out[i] = gc_st.gen[i].threshold;
    gc_unlock();
}

GC_EXPORT void memshim_gc_get_count(long out[3])
{
    gc_lock();
    for (int i = 0; i < GC_NGEN; i++) out[i] = gc_st.gen[i].count;
    gc_unlock();
}

GC_EXPORT void memshim_gc_get_stats(struct memshim_gc_stats out[3])
{
    gc_lock();
    for (int i = 0; i < GC_NGEN; i++) out[i] = gc_st.stats[i];
    gc_unlock();
}

uint64_t gc_time_ns(void)
{
    gc_lock();
    uint64_t t = gc_st.time_ns;
    gc_unlock();
    return t;
}

GC_EXPORT void memshim_gc_set_debug(int flags) { gc_lock(); gc_st.debug = flags; gc_unlock(); }

GC_EXPORT int memshim_gc_get_debug(void)
{
    gc_lock();
    int d = gc_st.debug;
    gc_unlock();
    return d;
}

/* Freeze: every tracked object moves to the permanent generation, which no
 * collection examines (for fork-heavy programs: no copy-on-write of headers). */
GC_EXPORT void memshim_gc_freeze(void)
{
    gc_lock();
    for (int i = 0; i < GC_NGEN; i++) gc_list_merge(&gc_st.gen[i].head, &gc_st.permanent);
    gc_st.gen[0].count = 0;
    gc_unlock();
}

GC_EXPORT void memshim_gc_unfreeze(void)
{
    gc_lock();
    gc_list_merge(&gc_st.permanent, &gc_st.gen[GC_NGEN - 1].head);
    gc_unlock();
}

GC_EXPORT size_t memshim_gc_get_freeze_count(void)
{
    gc_lock();
    size_t n = gc_list_size(&gc_st.permanent);
    gc_unlock();
    return n;
}

/* The objects of a generation (-1: of all three), as gc.get_objects(). */
GC_EXPORT size_t memshim_gc_get_objects(int generation, void **out, size_t max)
{
    if (generation < -1 || generation >= GC_NGEN) { errno = EINVAL; return 0; }
    gc_lock();
    size_t n = 0;
    for (int i = generation < 0 ? 0 : generation; i <= (generation < 0 ? GC_NGEN - 1 : generation); i++)
        for (gc_head *g = gc_next(&gc_st.gen[i].head); g != &gc_st.gen[i].head; g = gc_next(g)) {
            if (n < max) out[n] = gc_obj(g);
            n++;
        }
    gc_unlock();
    return n;
}

/* The program's own holds in this thread: memshim_gc_unlock gives back
 * only those.  In a finalizer or callback the lock is the collection's or
 * the death's: giving that back let other threads into a collection half
 * done (and a lone unlock left this thread's depth wrapped, so that it never
 * took the lock again). */
static __thread unsigned program_depth;

GC_EXPORT void memshim_gc_lock(void)   { gc_lock(); program_depth++; }
GC_EXPORT void memshim_gc_unlock(void)
{
    if (program_depth == 0)
        gc_fatal("memshim_gc_unlock() without memshim_gc_lock() in this thread", NULL);
    program_depth--;
    gc_unlock();
}

/* ---- the garbage list (SAVEALL) ------------------------------------------------- */
int gc_garbage_append(gc_head *g)
{
    if (gc_st.ngarbage == gc_st.garbage_cap) {
        size_t cap = gc_st.garbage_cap ? gc_st.garbage_cap * 2 : 64;
        void **p = gc_tab_grow(gc_st.garbage, gc_st.garbage_cap * sizeof *p, cap * sizeof *p);
        if (!p) return -1;
        gc_st.garbage = p;
        gc_st.garbage_cap = cap;
    }
    gc_incref(g);
    gc_st.garbage[gc_st.ngarbage++] = gc_obj(g);
    return 0;
}

void gc_strong_refs_garbage(void (*cb)(void *arg, const void *p, int garbage), void *arg)
{
    for (size_t i = 0; i < gc_st.ngarbage; i++) cb(arg, gc_st.garbage[i], 1);
}

GC_EXPORT size_t memshim_gc_get_garbage(void **out, size_t max)
{
    gc_lock();
    size_t n = gc_st.ngarbage;
    for (size_t i = 0; i < n && i < max; i++) out[i] = gc_st.garbage[i];
    gc_unlock();
    return n;
}

GC_EXPORT size_t memshim_gc_clear_garbage(void)
{
    gc_lock();
    size_t n = 0;
    /* Take the list first: the decrefs may run code that appends again. */
    while (gc_st.ngarbage) {
        void **list = gc_st.garbage;
        size_t cnt = gc_st.ngarbage, cap = gc_st.garbage_cap;
        gc_st.garbage = NULL;
        gc_st.ngarbage = gc_st.garbage_cap = 0;
        for (size_t i = 0; i < cnt; i++) gc_decref(gc_hdr(list[i]));
        gc_tab_free(list, cap * sizeof *list);
        n += cnt;
    }
    gc_unlock();
    return n;
}

/* ---- callbacks ---------------------------------------------------------------- */
GC_EXPORT int memshim_gc_callback_add(void (*cb)(int, int, long, void *), void *arg)
{
    if (!cb) { errno = EINVAL; return -1; }
    gc_lock();
    int rc = 0;
    if (gc_st.ncallbacks == gc_st.callbacks_cap) {
        size_t cap = gc_st.callbacks_cap ? gc_st.callbacks_cap * 2 : 8;
        gc_callback *p = gc_tab_grow(gc_st.callbacks, gc_st.callbacks_cap * sizeof *p,
                                     cap * sizeof *p);
        if (!p) { errno = ENOMEM; rc = -1; goto out; }
        gc_st.callbacks = p;
        gc_st.callbacks_cap = cap;
    }
    gc_st.callbacks[gc_st.ncallbacks++] = (gc_callback){ cb, arg };
out:
    gc_unlock();
    return rc;
}

GC_EXPORT int memshim_gc_callback_remove(void (*cb)(int, int, long, void *), void *arg)
{
    gc_lock();
    int rc = -1;
    for (size_t i = 0; i < gc_st.ncallbacks; i++) {
        if (gc_st.callbacks[i].cb == cb && gc_st.callbacks[i].arg == arg) {
            memmove(&gc_st.callbacks[i], &gc_st.callbacks[i + 1],
                    (gc_st.ncallbacks - i - 1) * sizeof *gc_st.callbacks);
            gc_st.ncallbacks--;
            rc = 0;
            break;
        }
    }
    if (rc) errno = ENOENT;
    gc_unlock();
    return rc;
}

/* Call each callback registered when the phase begins, in order of
 * registration; callbacks may add or remove callbacks meanwhile. */
void gc_run_callbacks(int phase, int generation, long collected)
{
    size_t n = gc_st.ncallbacks;
    if (!n) return;
    gc_callback local[16], *snap = local;
    if (n > 16 && !(snap = gc_tab_alloc(n * sizeof *snap))) { snap = local; n = 16; }
    memcpy(snap, gc_st.callbacks, n * sizeof *snap);
    for (size_t i = 0; i < n; i++) snap[i].cb(phase, generation, collected, snap[i].arg);
    if (snap != local) gc_tab_free(snap, n * sizeof *snap);
}
