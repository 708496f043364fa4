/* table.h - the one hash table of memshim and its collector: huge blocks by
 * address (huge.c), stacks by their frames (stacks.c), sampled blocks by
 * address (sample.c), symbols by code address (symbolize.c), loss records by
 * stack, kind and type (report.c), the collector's pointer maps
 * (collector/ptrmap.c).
 *
 * Open addressing with linear probing over a power-of-two array of slots.
 * A slot is the caller's struct, its first member a 64-bit key; key 0 means
 * empty.  Where what is looked up is a unique word (an address, a pointer)
 * it is the key itself; where it is bigger (a stack, a loss record's
 * identity) the key is its hash, made non-zero, and a lookup asks the
 * caller's `eq` too.
 *
 *   home slot   the key times 2^64/phi, the product's top bits (Fibonacci
 *               hashing: keys differing only in low bits, as aligned
 *               addresses do, or only in high bits spread alike)
 *   growth      when an insertion would pass half full (or the kind's
 *               `quarters` of it), a table twice the size is built and
 *               published, and the old one handed to kind->free (or kept,
 *               where readers take no lock and free is NULL)
 *   full        if growth fails, an insertion is still accepted while two
 *               empty slots remain (a probe stops at an empty slot); so a
 *               key just deleted can always be put back (huge.c's mremap)
 *   deletion    backward shift: the later members of the probe run move
 *               into the hole unless their home lies cyclically in (hole,
 *               member]; no tombstones, so deleting never lengthens a probe
 *   readers     a slot's key is written last, with release, and read with
 *               acquire, and a new table is published with release: a table
 *               that is never deleted from may be probed without its lock
 *               while one writer inserts (stacks.c)
 *
 * A kind says what a table holds: slot size, first size, allocator, how
 * full it gets (three quarters for the trace table, which is looked up by
 * keys it holds nearly always: its probes stay short, 1.9 slots for a hit
 * at 63% full, and its 16 MiB for 332,000 stacks became 8).  All is
 * static inline and every kind a constant, so each table compiles to its own
 * loop with the slot size folded in.  Only libc headers: the collector
 * includes it too, with its own allocator. */
#ifndef MS_TABLE_H
#define MS_TABLE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

typedef struct ms_table_kind {
    size_t size;                        /* bytes per slot, the key first */
    size_t first;                       /* slots of a new table, a power of two */
    void *(*alloc)(size_t n);           /* memory for tables, or NULL */
    void  (*free)(void *p, size_t n);   /* a replaced table's end: freed, or for lock-free
                                         * readers purged (stacks.c); NULL: kept as it is */
    unsigned quarters;                  /* full past this many quarters of its slots
                                         * (0: two, half full; at most 3) */
} ms_table_kind_t;

/* A kind of tables of `type` slots, whose member `key` is the 64-bit key
 * and comes first (checked). */
#define MS_TABLE_KIND(type, key, first_, alloc_, free_) MS_TABLE_KIND_FULL(type, key, first_, alloc_, free_, 2)
#define MS_TABLE_KIND_FULL(type, key, first_, alloc_, free_, quarters_) {                     \
    .size = sizeof(type) + 0 * sizeof(struct { int x; _Static_assert(                         \
        offsetof(type, key) == 0 && sizeof(((type *)0)->key) == 8, "a slot starts with its key"); }), \
    .first = (first_), .alloc = (alloc_), .free = (free_), .quarters = (quarters_) }

/* The header; the slots follow it in the same allocation. */
typedef struct __attribute__((aligned(16))) ms_table {
    size_t   mask;                      /* slots - 1 */
    size_t   count;                     /* keys held */
    unsigned shift;                     /* 64 - log2(slots) */
} ms_table_t;

typedef uint64_t __attribute__((may_alias)) ms_table_key_t;

static inline size_t ms_table_slots(const ms_table_t *t) { return t ? t->mask + 1 : 0; }
static inline size_t ms_table_quarters_(const ms_table_kind_t *k) { return k->quarters ? k->quarters : 2; }
static inline size_t ms_table_count(const ms_table_t *t) { return t ? t->count : 0; }

static inline size_t ms_table_bytes_(const ms_table_kind_t *k, size_t slots)
{
    return sizeof(ms_table_t) + slots * k->size;
}

static inline void *ms_table_at_(const ms_table_t *t, const ms_table_kind_t *k, size_t i)
{
    return (char *)(uintptr_t)(t + 1) + i * k->size;
}

static inline uint64_t ms_table_key_(const void *slot)
{
    return __atomic_load_n((const ms_table_key_t *)slot, __ATOMIC_ACQUIRE);
}

static inline size_t ms_table_home_(const ms_table_t *t, uint64_t key)
{
    return (size_t)((key * 0x9E3779B97F4A7C15ULL) >> t->shift);
}

/* Slot i if it holds a key, else NULL: for walks over every key. */
static inline void *ms_table_get(const ms_table_t *t, const ms_table_kind_t *k, size_t i)
{
    void *s = ms_table_at_(t, k, i);
    return ms_table_key_(s) ? s : NULL;
}

/* The slot holding key (and, with eq, holding what arg describes), or NULL.
 * t may be NULL: no table yet. */
static inline void *ms_table_find(const ms_table_t *t, const ms_table_kind_t *k, uint64_t key,
                                  bool (*eq)(const void *slot, const void *arg), const void *arg)
{
    if (!t) return NULL;
    for (size_t i = ms_table_home_(t, key);; i = (i + 1) & t->mask) {
        void *s = ms_table_at_(t, k, i);
        uint64_t sk = ms_table_key_(s);
        if (sk == key && (!eq || eq(s, arg))) return s;
        if (!sk) return NULL;
    }
}

/* A copy of slot (its key non-zero and not in t yet: callers find first)
 * stored in t, which has room (ms_table_room); where it went.  The key is
 * written last, so a lock-free reader sees the whole slot or none of it. */
static inline void *ms_table_add(ms_table_t *t, const ms_table_kind_t *k, const void *slot)
{
    uint64_t key = *(const ms_table_key_t *)slot;
    size_t i = ms_table_home_(t, key);
    while (ms_table_key_(ms_table_at_(t, k, i))) i = (i + 1) & t->mask;
    char *s = ms_table_at_(t, k, i);
    memcpy(s + sizeof key, (const char *)slot + sizeof key, k->size - sizeof key);
    __atomic_store_n((ms_table_key_t *)s, key, __ATOMIC_RELEASE);
    t->count++;
    return s;
}

/* An empty table of at least k->first slots, enough for `keys` keys no
 * fuller than k allows; NULL when out of memory. */
static inline ms_table_t *ms_table_new(const ms_table_kind_t *k, size_t keys)
{
    size_t slots = k->first;
    while (slots * ms_table_quarters_(k) < keys * 4) {
        if (slots > (SIZE_MAX - sizeof(ms_table_t)) / k->size / 2) return NULL;
        slots *= 2;
    }
    ms_table_t *t = k->alloc(ms_table_bytes_(k, slots));
    if (!t) return NULL;
    memset(t, 0, ms_table_bytes_(k, slots));
    t->mask = slots - 1;
    t->shift = (unsigned)__builtin_clzll((unsigned long long)slots) + 1;
    return t;
}

/* Twice the slots (the first table if none), every key moved, the new table
 * published with release and the old one handed to k->free, or kept when
 * that is NULL (a reader may still probe it). */
static inline __attribute__((cold)) bool ms_table_grow_(ms_table_t **tp, const ms_table_kind_t *k)
{
    ms_table_t *old = *tp;
    ms_table_t *t = ms_table_new(k, ms_table_slots(old));
    if (!t) return false;
    for (size_t i = 0; i < ms_table_slots(old); i++) {
        const void *s = ms_table_get(old, k, i);
        if (s) ms_table_add(t, k, s);
    }
    __atomic_store_n(tp, t, __ATOMIC_RELEASE);
    if (old && k->free) k->free(old, ms_table_bytes_(k, ms_table_slots(old)));
    return true;
}

/* Room in *tp for one more key, growing it (or making the first table)
 * past as full as k allows.  When growth fails there is room while two
 * slots are empty: after a deletion, always.  false: none. */
static inline bool ms_table_room(ms_table_t **tp, const ms_table_kind_t *k)
{
    ms_table_t *t = *tp;
    if (t && (t->count + 1) * 4 <= (t->mask + 1) * ms_table_quarters_(k)) return true;
    return ms_table_grow_(tp, k) || (t && t->count + 2 <= t->mask + 1);
}

/* Delete the key in slot (found in t), by backward shift.  Slots after it in
 * its run may move: pointers into t are stale afterwards.  Never on a table
 * read without its lock. */
static inline void ms_table_del(ms_table_t *t, const ms_table_kind_t *k, void *slot)
{
    size_t hole = (size_t)((char *)slot - (char *)ms_table_at_(t, k, 0)) / k->size;
    for (size_t j = (hole + 1) & t->mask;; j = (j + 1) & t->mask) {
        uint64_t key = ms_table_key_(ms_table_at_(t, k, j));
        if (!key) break;
        if (((j - ms_table_home_(t, key)) & t->mask) >= ((j - hole) & t->mask)) {
            memcpy(ms_table_at_(t, k, hole), ms_table_at_(t, k, j), k->size);
            hole = j;
        }
    }
    memset(ms_table_at_(t, k, hole), 0, k->size);
    t->count--;
}

/* Every key gone; the table keeps its size. */
static inline void ms_table_clear(ms_table_t *t, const ms_table_kind_t *k)
{
    if (!t) return;
    memset(ms_table_at_(t, k, 0), 0, ms_table_slots(t) * k->size);
    t->count = 0;
}

/* Free *tp (if k frees) and forget it. */
static inline void ms_table_free(ms_table_t **tp, const ms_table_kind_t *k)
{
    if (*tp && k->free) k->free(*tp, ms_table_bytes_(k, ms_table_slots(*tp)));
    *tp = NULL;
}

#endif
