/* test_tracetable.c - the trace table (shim/stacks.c): a stack is stored
 * once and found again by its frames or, as unwind.c's walk finds it, by
 * its hash alone; when a module is unloaded (_ms_stack_retag) a stack
 * through it is found by neither any more, so that a library mapped at
 * the same addresses later gets stacks of its own. */
#include <criterion/criterion.h>
#include "shim.h"

static uint64_t hash_of(const uintptr_t *ip, unsigned n)
{
    uint64_t h = MS_IPS_HASH0;
    for (unsigned i = 0; i < n; i++) h = _ms_ips_hash_add(h, ip[i]);
    return _ms_ips_hash_end(h, n);
}

/* Frames of this test's own, unlike any stack the test binary makes. */
static void frames(uintptr_t *ip, unsigned n, uintptr_t base)
{
    for (unsigned i = 0; i < n; i++) ip[i] = base + 0x1000 * i + 0x37;
}

Test(tracetable, a_stack_is_stored_once_and_found_by_frames_or_hash)
{
    uintptr_t ip[6];
    frames(ip, 6, 0x5a0000000000);
    cr_assert_eq(_ms_stack_find(hash_of(ip, 6)), 0, "not stored yet");
    uint32_t id = _ms_stack_intern(ip, 6);
    cr_assert(id != 0 && id != MS_STACK_OOM);
    cr_assert_eq(_ms_stack_intern(ip, 6), id, "stored once");
    cr_assert_eq(_ms_stack_find(hash_of(ip, 6)), id);
    cr_assert_eq(_ms_stack_find(hash_of(ip, 5)), 0, "a prefix is another stack");
    uintptr_t got[MS_MAX_STACK];
    cr_assert_eq(_ms_stack_get(id, got), 6);
    cr_assert_eq(memcmp(got, ip, sizeof ip), 0);
    cr_assert_eq(_ms_stack_site(id), ip[0]);
}

/* Entries are stored as distances between frames (varints): frames far
 * apart, below one another, tagged in their top bits, at the ends of the
 * address space, and the deepest stack, all come back exactly. */
Test(tracetable, frames_come_back_exactly_whatever_their_distances)
{
    uintptr_t ip[MS_MAX_STACK], got[MS_MAX_STACK];
    for (unsigned i = 0; i < MS_MAX_STACK; i++)
        ip[i] = (i % 3 == 0 ? 0x7f1234560000 : i % 3 == 1 ? 0x55aa00001000 : 0x401000) + 0x91 * i;
    ip[5] = 0;
    ip[6] = 1;
    ip[7] = ~(uintptr_t)0;
    ip[8] = 0x7f1234560000 | (uintptr_t)5 << MS_IP_TAG_SHIFT;
    ip[9] = (uintptr_t)1 << 63;
    ip[10] = ip[9] - 1;
    for (unsigned n = 1; n <= MS_MAX_STACK; n += n < 12 ? 1 : 13) {
        uint32_t id = _ms_stack_intern(ip, n);
        cr_assert(id != 0 && id != MS_STACK_OOM, "%u frames", n);
        memset(got, 0xa5, sizeof got);
        cr_assert_eq(_ms_stack_get(id, got), n, "%u frames", n);
        cr_assert_eq(memcmp(got, ip, n * sizeof *ip), 0, "%u frames", n);
        if (n < MS_MAX_STACK)
            cr_assert_eq(got[n], (uintptr_t)0xa5a5a5a5a5a5a5a5, "%u frames: nothing written past them", n);
        cr_assert_eq(_ms_stack_intern(ip, n), id, "%u frames: found by its frames", n);
        cr_assert_eq(_ms_stack_find(hash_of(ip, n)), id, "%u frames: found by its hash", n);
    }
}

Test(tracetable, stacks_that_differ_in_one_frame_never_share_a_hash)
{
    uintptr_t a[16], b[16];
    frames(a, 16, 0x5b0000000000);
    for (unsigned i = 0; i < 16; i++)
        for (uintptr_t d = 1; d < (uintptr_t)1 << 40; d <<= 3) {
            memcpy(b, a, sizeof a);
            b[i] ^= d;
            cr_assert_neq(hash_of(a, 16), hash_of(b, 16), "frame %u, bit pattern %#lx", i, (unsigned long)d);
        }
}

Test(tracetable, a_stack_through_an_unloaded_module_is_found_no_more)
{
    uintptr_t ip[5], other[3];
    frames(ip, 5, 0x5c0000000000);
    frames(other, 3, 0x5d0000000000);
    uint32_t id = _ms_stack_intern(ip, 5), kept = _ms_stack_intern(other, 3);
    cr_assert(id && kept && id != kept);
    ms_range_t module = { ip[2] - 0x10, ip[2] + 0x10 };   /* frame 2's code goes */
    _ms_stack_retag(&module, 1, (uintptr_t)7 << MS_IP_TAG_SHIFT);

    uintptr_t got[MS_MAX_STACK];
    cr_assert_eq(_ms_stack_get(id, got), 5);
    cr_assert_eq(got[2], ip[2] | (uintptr_t)7 << MS_IP_TAG_SHIFT, "the frame carries the tag");
    cr_assert_eq(got[1], ip[1], "frames of other code keep their addresses");
    cr_assert_eq(got[4], ip[4], "frames after the tagged one too");
    cr_assert_eq(_ms_stack_find(hash_of(ip, 5)), 0, "the old frames' hash finds nothing");
    uint32_t again = _ms_stack_intern(ip, 5);
    cr_assert(again && again != id, "the same addresses, mapped again, are a new stack");
    cr_assert_eq(_ms_stack_find(hash_of(ip, 5)), again);
    cr_assert_eq(_ms_stack_find(hash_of(other, 3)), kept, "stacks outside the module are untouched");
}

/* A table replaced as it grows keeps no slots resident, and the figures
 * of memshim's own memory (MEMSHIM_STATS's "own") count what the stacks
 * hold: 200,000 new stacks grow the table from 1 Ki slots to 512 Ki
 * (8 MiB); kept whole, the tables left behind would be resident as well,
 * about as much again as the last one. */
Test(tracetable, replaced_tables_go_back_and_own_memory_is_counted)
{
    enum { N = 200000 };
    uint64_t stacks0, bytes0, res0, mapped0, stacks1, bytes1, res1, mapped1;
    _ms_stack_usage(&stacks0, &bytes0);
    _ms_meta_usage(&res0, &mapped0);
    cr_assert(res0 <= mapped0);
    uintptr_t ip[3];
    static uint32_t ids[N];
    for (unsigned i = 0; i < N; i++) {
        ip[0] = 0x5e0000000000 + 16 * (uintptr_t)i;
        ip[1] = 0x5e0000100000;
        ip[2] = 0x5e0000200000 + i % 7;
        ids[i] = _ms_stack_intern(ip, 3);
        cr_assert(ids[i] && ids[i] != MS_STACK_OOM);
    }
    _ms_stack_usage(&stacks1, &bytes1);
    _ms_meta_usage(&res1, &mapped1);
    cr_assert_eq(stacks1 - stacks0, N, "every new stack counted");
    cr_assert_geq(bytes1 - bytes0, (uint64_t)N * (1 + 3 * 3), "at least their entries' bytes");
    cr_assert(res1 <= mapped1);
    uint64_t slots_bytes = (bytes1 - bytes0) - (uint64_t)N * 10;    /* about the last table */
    cr_assert_lt(res1 - res0, bytes1 - bytes0 + slots_bytes / 4,
                 "resident grew by %llu for %llu bytes of stacks: the replaced tables stayed",
                 (unsigned long long)(res1 - res0), (unsigned long long)(bytes1 - bytes0));
    for (unsigned i = 0; i < N; i += 997) {                 /* all still found, both ways */
        ip[0] = 0x5e0000000000 + 16 * (uintptr_t)i;
        ip[1] = 0x5e0000100000;
        ip[2] = 0x5e0000200000 + i % 7;
        cr_assert_eq(_ms_stack_intern(ip, 3), ids[i]);
        cr_assert_eq(_ms_stack_find(hash_of(ip, 3)), ids[i]);
    }
}

/* Readers take no lock: while writers store new stacks (the table doubling
 * and the old tables purged under them), every stack already stored reads
 * back its exact frames, its hash finds it or (a retired table's late
 * probe) nothing but never another stack, and storing it again finds it;
 * a stack found by its hash while it is being stored reads back whole. */
#include <pthread.h>

enum { W_THREADS = 3, W_STACKS = 40000, R_THREADS = 2 };
static uintptr_t w_frames[W_THREADS][W_STACKS][4];
static uint32_t  w_ids[W_THREADS][W_STACKS];
static unsigned  w_done[W_THREADS];          /* stacks published by writer t (release) */
static int       w_over;
static unsigned  r_wrong, r_checked;

static void stack_of(unsigned t, unsigned i, uintptr_t *ip)
{
    ip[0] = 0x5f0000000000 + ((uintptr_t)t << 32) + 16 * (uintptr_t)i;
    ip[1] = 0x5f0000100000 + (uintptr_t)(i % 13);
    ip[2] = 0x7f0000000000 + (uintptr_t)t;
    ip[3] = ip[0] - 0x40 * (uintptr_t)(i % 5);       /* a caller below its callee */
}

static void *writer(void *arg)
{
    unsigned t = (unsigned)(uintptr_t)arg;
    for (unsigned i = 0; i < W_STACKS; i++) {
        stack_of(t, i, w_frames[t][i]);
        w_ids[t][i] = _ms_stack_intern(w_frames[t][i], 4);
        __atomic_store_n(&w_done[t], i + 1, __ATOMIC_RELEASE);
    }
    return NULL;
}

static void *reader(void *arg)
{
    uint64_t r = 0x9E3779B97F4A7C15ULL * ((uintptr_t)arg + 1);
    unsigned wrong = 0, checked = 0;
    while (!__atomic_load_n(&w_over, __ATOMIC_ACQUIRE)) {
        r ^= r << 13; r ^= r >> 7; r ^= r << 17;
        unsigned t = (unsigned)(r % W_THREADS), n = __atomic_load_n(&w_done[t], __ATOMIC_ACQUIRE);
        if (!n) continue;
        unsigned i = (unsigned)((r >> 20) % n);
        const uintptr_t *want = w_frames[t][i];
        uint32_t id = w_ids[t][i];
        uintptr_t got[MS_MAX_STACK];
        if (_ms_stack_get(id, got) != 4 || memcmp(got, want, 4 * sizeof *got) != 0) wrong++;
        uint32_t found = _ms_stack_find(hash_of(want, 4));
        if (found && found != id) wrong++;
        if ((checked & 63) == 0 && _ms_stack_intern(want, 4) != id) wrong++;
        if (n < W_STACKS) {                      /* the one being stored now, maybe */
            uintptr_t next[4];
            stack_of(t, n, next);
            uint32_t nid = _ms_stack_find(hash_of(next, 4));
            if (nid && (_ms_stack_get(nid, got) != 4 || memcmp(got, next, sizeof next) != 0)) wrong++;
        }
        checked++;
    }
    __atomic_add_fetch(&r_wrong, wrong, __ATOMIC_RELAXED);
    __atomic_add_fetch(&r_checked, checked, __ATOMIC_RELAXED);
    return NULL;
}

Test(tracetable, lock_free_readers_never_see_a_wrong_stack_while_the_table_grows)
{
    pthread_t w[W_THREADS], rd[R_THREADS];
    for (unsigned i = 0; i < R_THREADS; i++) pthread_create(&rd[i], NULL, reader, (void *)(uintptr_t)i);
    for (unsigned t = 0; t < W_THREADS; t++) pthread_create(&w[t], NULL, writer, (void *)(uintptr_t)t);
    for (unsigned t = 0; t < W_THREADS; t++) pthread_join(w[t], NULL);
    __atomic_store_n(&w_over, 1, __ATOMIC_RELEASE);
    for (unsigned i = 0; i < R_THREADS; i++) pthread_join(rd[i], NULL);
    cr_assert_gt(r_checked, 1000, "the readers ran (%u checks)", r_checked);
    cr_assert_eq(r_wrong, 0, "%u wrong answers in %u checks", r_wrong, r_checked);
    for (unsigned t = 0; t < W_THREADS; t++)
        for (unsigned i = 0; i < W_STACKS; i++) {
            cr_assert(w_ids[t][i] && w_ids[t][i] != MS_STACK_OOM);
            cr_assert_eq(_ms_stack_find(hash_of(w_frames[t][i], 4)), w_ids[t][i], "writer %u stack %u", t, i);
        }
}
