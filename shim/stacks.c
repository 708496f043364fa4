/* stacks.c - the trace table: every distinct allocation stack is stored once
 * and named by a 32-bit id, so a block's record holds 4 bytes, not a stack.
 *
 * Entries are appended to an arena and never die; ids are 1, 2, 3... in
 * the order stacks are stored (0 means "no stack"), and an id's entry is
 * found through a table of arena positions by id.  An entry is its depth
 * (a byte), then its frames as varints: the first frame's address, then
 * each next one's distance from the frame before (zigzagged: a caller may
 * lie below its callee).  The frames of one module are at most a few MiB
 * apart: three bytes a frame, not eight (a tracked espresso's 332,000
 * stacks of 16 frames took 45 MB as words, 9 MB so).  Dense ids give
 * each stack its profile counters (profile.c) at id - 1 in chunks that
 * never move, reached from the allocation path in a few instructions.
 * The arena is a series of chunks, each twice the one before (64 KiB,
 * 128 KiB, ... up to 256 MiB), mapped only when the one before is full, so
 * a program under a memory limit (ulimit -v) pays for the stacks it has,
 * not for a reservation.  Chunk k holds byte positions [CHUNK0 * (2^k - 1),
 * CHUNK0 * (2^(k+1) - 1)); an entry never straddles two.  If memshim's
 * memory runs out, stacks are no longer stored: _ms_stack_intern returns
 * MS_STACK_OOM (no frames, "no stack: out of memory" in reports) without
 * trying again, and the program's allocations go on.  Lookups probe the
 * table of (hash, id) slots (table.h) without a lock; insertion takes
 * stack_lock, re-probes, appends, and stores the slot, its hash last with a
 * release store.  When the table passes half full a table twice the size is
 * built and published; the old one is left in place for readers still
 * probing it (the tables add up to less than twice the final one). */
#include <string.h>
#include "shim.h"
#include "table.h"

#define CHUNK0       ((size_t)64 << 10)      /* bytes of the first chunk */
#define NCHUNKS      13                      /* 64 KiB << 12 = 256 MiB: 512 MiB in all */
#define ENT_MAX      (1 + MS_MAX_STACK * 10) /* an entry's bytes at most: 10 a varint */

typedef struct {
    uint64_t  hash;        /* the key */
    uint32_t  id;
} stack_slot;

/* A replaced table is retired, not freed (_ms_meta_retire): a late
 * lock-free reader misses, and a miss is always asked again of the current
 * table, under the lock or by an unwind. */
static const ms_table_kind_t stack_kind = MS_TABLE_KIND_FULL(stack_slot, hash, 1024, _ms_meta_alloc, _ms_meta_retire, 3);

static pthread_mutex_t stack_lock = PTHREAD_MUTEX_INITIALIZER;
static uint8_t     *chunks[NCHUNKS]; /* published before any id inside them */
static size_t       arena_used;     /* position of the next entry (stack_lock) */
static ms_table_t  *table;          /* current table, read lock-free */
static uint32_t     nstacks;        /* ids 1 .. nstacks are stored */
static int          out_of_memory;  /* no more stacks are stored */

static size_t chunk_start(unsigned k) { return CHUNK0 * (((size_t)1 << k) - 1); }
static size_t chunk_bytes(unsigned k) { return CHUNK0 << k; }

/* Chunk k starts at CHUNK0 * (2^k - 1): k is the bit length of pos/CHUNK0 + 1, less one. */
static unsigned chunk_of(size_t pos)
{
    unsigned k = 63u - (unsigned)__builtin_clzll((unsigned long long)(pos / CHUNK0 + 1));
    return k < NCHUNKS ? k : NCHUNKS - 1;
}

static uint64_t hash_ips(const uintptr_t *ip, unsigned n)
{
    uint64_t h = MS_IPS_HASH0;
    for (unsigned i = 0; i < n; i++) h = _ms_ips_hash_add(h, ip[i]);
    return _ms_ips_hash_end(h, n);
}

/* An entry's frames, encoded (above) into out: its length. */
static size_t encode(uint8_t *out, const uintptr_t *ip, unsigned n)
{
    size_t k = 0;
    uintptr_t prev = 0;
    out[k++] = (uint8_t)n;
    for (unsigned i = 0; i < n; i++) {
        uint64_t d = (uint64_t)(ip[i] - prev), v = d << 1 ^ (uint64_t)((int64_t)d >> 63);
        for (; v >= 0x80; v >>= 7) out[k++] = (uint8_t)(v | 0x80);
        out[k++] = (uint8_t)v;
        prev = ip[i];
    }
    return k;
}

/* The frames of the entry at e, up to max of them, into ip: how many. */
static unsigned decode(const uint8_t *e, uintptr_t *ip, unsigned max)
{
    unsigned n = *e++;
    uintptr_t prev = 0;
    if (n > max) n = max;
    for (unsigned i = 0; i < n; i++) {
        uint64_t v = 0;
        unsigned shift = 0;
        uint8_t b;
        do {
            b = *e++;
            v |= (uint64_t)(b & 0x7f) << (shift & 63);
            shift += 7;
        } while (b & 0x80);
        prev += (uintptr_t)(v >> 1 ^ -(v & 1));
        ip[i] = prev;
    }
    return n;
}

/* Per id, in chunks of MS_PROF_CHUNK ids that never move, mapped with the
 * first id of each: the entry's arena position, and its profile
 * counters (shim.h reads those inline: two loads from the allocation path). */
ms_prof_t       *_ms_prof_chunks[MS_PROF_NCHUNKS];
static uint32_t *pos_chunks[MS_PROF_NCHUNKS];

static uint32_t *pos_of(uint32_t id)
{
    uint32_t i = id - 1;
    return &__atomic_load_n(&pos_chunks[i / MS_PROF_CHUNK], __ATOMIC_ACQUIRE)[i % MS_PROF_CHUNK];
}

static const uint8_t *entry(uint32_t id)
{
    size_t pos = __atomic_load_n(pos_of(id), __ATOMIC_ACQUIRE);
    unsigned c = chunk_of(pos);
    return __atomic_load_n(&chunks[c], __ATOMIC_ACQUIRE) + (pos - chunk_start(c));
}

/* Room for `bytes` more at arena_used, in the current chunk or the next
 * (mapped now); false when memshim's memory is out.  stack_lock held. */
static bool make_room(size_t bytes)
{
    unsigned k = chunk_of(arena_used);
    if (chunks[k] && arena_used + bytes <= chunk_start(k) + chunk_bytes(k)) return true;
    if (chunks[k]) {                                  /* full: the next chunk */
        if (k + 1 >= NCHUNKS) return false;
        k++;
    }
    if (bytes > chunk_bytes(k)) return false;
    uint8_t *c = _ms_meta_alloc(chunk_bytes(k));
    if (!c) return false;
    __atomic_store_n(&chunks[k], c, __ATOMIC_RELEASE);
    arena_used = chunk_start(k);
    return true;
}

/* The encoded entry at arena_used (make_room said there is room), the
 * arena moved past it: its position.  stack_lock held. */
static uint32_t append(const uint8_t *enc, size_t len)
{
    size_t pos = arena_used;
    unsigned k = chunk_of(pos);
    memcpy(chunks[k] + (pos - chunk_start(k)), enc, len);
    arena_used = pos + len;
    return (uint32_t)pos;
}

/* Room for id's position and counters: their chunks, mapped with the
 * first id of each.  false when memshim's memory is out.  stack_lock held. */
static bool id_room(uint32_t id)
{
    uint32_t k = (id - 1) / MS_PROF_CHUNK;
    if (k >= MS_PROF_NCHUNKS - 1) return false;        /* the last is MS_STACK_OOM's */
    if (!pos_chunks[k]) {
        uint32_t *pc = _ms_meta_alloc(MS_PROF_CHUNK * sizeof *pc);
        ms_prof_t *c = pc ? _ms_meta_alloc(MS_PROF_CHUNK * sizeof *c) : NULL;
        if (!c) {
            if (pc) _ms_meta_free(pc, MS_PROF_CHUNK * sizeof *pc);
            return false;
        }
        __atomic_store_n(&_ms_prof_chunks[k], c, __ATOMIC_RELEASE);
        __atomic_store_n(&pos_chunks[k], pc, __ATOMIC_RELEASE);
    }
    return true;
}

ms_prof_t *_ms_prof_at(uint32_t i) { return _ms_stack_prof(i + 1); }

/* Stacks stored so far: ids 1 .. n. */
uint32_t _ms_prof_count(void) { return __atomic_load_n(&nstacks, __ATOMIC_ACQUIRE); }

/* Every stored stack id, in order, to fn (ids are never removed). */
void _ms_stack_each(void (*fn)(void *arg, uint32_t id), void *arg)
{
    uint32_t n = _ms_prof_count();
    for (uint32_t id = 1; id <= n; id++) fn(arg, id);
}

/* Stacks stored, and the bytes that hold them: their entries, their
 * positions, the table of hashes, and while profiling their counters.
 * Read without the lock (the statistics may be asked for by a thread that
 * holds it): figures of a moment, the table's never torn. */
void _ms_stack_usage(uint64_t *stacks, uint64_t *bytes)
{
    uint32_t n = __atomic_load_n(&nstacks, __ATOMIC_ACQUIRE);
    uint64_t chunks_used = (n + MS_PROF_CHUNK - 1) / MS_PROF_CHUNK;
    *stacks = n;
    *bytes = __atomic_load_n(&arena_used, __ATOMIC_RELAXED) + chunks_used * MS_PROF_CHUNK * sizeof(uint32_t) +
             (uint64_t)ms_table_slots(__atomic_load_n(&table, __ATOMIC_ACQUIRE)) * sizeof(stack_slot) +
             (_ms_opt.profile || _ms_sampling ? (uint64_t)n * sizeof(ms_prof_t) : 0);
}

/* What every caller gets once memory ran out: one id, no frames. */
static uint32_t oom(void)
{
    static ms_prof_t sink[MS_PROF_CHUNK];          /* MS_STACK_OOM's counters (shim.h) */
    __atomic_store_n(&_ms_prof_chunks[MS_PROF_NCHUNKS - 1], sink, __ATOMIC_RELEASE);
    if (!__atomic_exchange_n(&out_of_memory, 1, __ATOMIC_ACQ_REL))
        _ms_message("out of memory for allocation stacks: blocks allocated from now on have "
                    "no stack in leak reports");
    return MS_STACK_OOM;
}

typedef struct { const uintptr_t *ip; unsigned n; } frames_t;

/* Whether the slot's stack is those frames (its hash matched already). */
static bool same_frames(const void *slot, const void *arg)
{
    uintptr_t ip[MS_MAX_STACK];
    const frames_t *f = arg;
    uint32_t id = __atomic_load_n(&((const stack_slot *)slot)->id, __ATOMIC_RELAXED);
    if (!id) return false;                              /* a retired table's, being purged */
    unsigned n = decode(entry(id), ip, MS_MAX_STACK);
    return n == f->n && memcmp(ip, f->ip, n * sizeof *ip) == 0;
}

static uint32_t probe(const ms_table_t *t, uint64_t h, const uintptr_t *ip, unsigned n)
{
    const stack_slot *s = ms_table_find(t, &stack_kind, h, same_frames, &(frames_t){ ip, n });
    return s ? s->id : 0;
}

/* The id of a stored stack whose hash is h, else 0; never stores.  For
 * unwind.c's walk, on every stack cache miss: the hash alone decides,
 * without reading the stored frames (two more cache misses; a tenth of a
 * tracked gcc's time went to them).  Two stacks of one hash are as likely
 * as a 64-bit match by chance, and no two stacks that differ in a single
 * frame share one (shim.h). */
uint32_t _ms_stack_find(uint64_t h)
{
    const stack_slot *s = ms_table_find(__atomic_load_n(&table, __ATOMIC_ACQUIRE), &stack_kind, h, NULL, NULL);
    return s ? __atomic_load_n(&s->id, __ATOMIC_RELAXED) : 0;
}

/* A signal handler whose thread holds stack_lock must not wait for it: it
 * would wait for ever.  While a thread holds it (_ms_stack_in), a
 * handler's new stack is not interned: its block goes without a stack (id
 * 0), as a block of memshim's own making does.  Holding signals off
 * instead cost two system calls a new stack. */
__thread int _ms_stack_in __attribute__((tls_model("initial-exec")));

static void stacks_lock(void)
{
    _ms_stack_in = 1;
    __atomic_signal_fence(__ATOMIC_SEQ_CST);
    pthread_mutex_lock(&stack_lock);
}

static void stacks_unlock(void)
{
    pthread_mutex_unlock(&stack_lock);
    __atomic_signal_fence(__ATOMIC_SEQ_CST);
    _ms_stack_in = 0;
    _ms_signals_due();
}

static uint32_t intern(const uintptr_t *ip, unsigned n);

uint32_t _ms_stack_intern(const uintptr_t *ip, unsigned n)
{
    return n ? intern(ip, n) : 0;
}

/* The stack of no frames: the id of a block counted with none recorded
 * (allocated before memshim could unwind, or by a signal handler while
 * its thread stored a stack), so that the heap profile has it as the
 * leak report does: "no stack recorded".  Without it, every C++
 * program's profile left out libstdc++'s 72 KiB block of its start
 * (massif and heaptrack have it; found by a helper).  0 (not counted) if
 * it cannot be stored now. */
uint32_t _ms_stack_none(void)
{
    static uint32_t none;
    uint32_t id = __atomic_load_n(&none, __ATOMIC_RELAXED);
    if (MS_LIKELY(id != 0)) return id;
    static const uintptr_t no_frames[1];
    id = intern(no_frames, 0);
    if (id && id != MS_STACK_OOM) __atomic_store_n(&none, id, __ATOMIC_RELAXED);
    return id;
}

static uint32_t intern(const uintptr_t *ip, unsigned n)
{
    if (n > MS_MAX_STACK) n = MS_MAX_STACK;
    uint64_t h = hash_ips(ip, n);
    uint32_t id = probe(__atomic_load_n(&table, __ATOMIC_ACQUIRE), h, ip, n);
    if (id) return id;
    if (__atomic_load_n(&out_of_memory, __ATOMIC_ACQUIRE)) return MS_STACK_OOM;
    if (_ms_stack_in) return 0;                     /* a signal handler's: stacks_lock */

    stacks_lock();
    if ((id = probe(table, h, ip, n))) { stacks_unlock(); return id; }
    uint8_t enc[ENT_MAX];
    size_t len = encode(enc, ip, n);
    if (!ms_table_room(&table, &stack_kind) || !make_room(len) || nstacks + 2 >= MS_STACK_OOM ||
        !id_room(nstacks + 1)) {
        stacks_unlock();
        return oom();                               /* stack unknown from now on */
    }
    id = nstacks + 1;
    *pos_of(id) = append(enc, len);
    __atomic_store_n(&nstacks, id, __ATOMIC_RELEASE);
    ms_table_add(table, &stack_kind, &(stack_slot){ h, id });   /* published: readers find it */
    stacks_unlock();
    return id;
}

/* The frames of stack id, into ip (room for MS_MAX_STACK): how many (0
 * for id 0). */
unsigned _ms_stack_get(uint32_t id, uintptr_t *ip)
{
    if (!id || id == MS_STACK_OOM || !chunks[0]) return 0;
    return decode(entry(id), ip, MS_MAX_STACK);
}

/* Its first frame (the allocation's call site), 0 for none. */
uintptr_t _ms_stack_site(uint32_t id)
{
    uintptr_t ip = 0;
    if (id && id != MS_STACK_OOM && chunks[0]) decode(entry(id), &ip, 1);
    return ip;
}


void _ms_stack_lock(void) { stacks_lock(); }          /* fork: init.c */
void _ms_stack_unlock(bool child)
{
    if (!child) { stacks_unlock(); return; }
    pthread_mutex_init(&stack_lock, NULL);
    _ms_stack_in = 0;
}

/* ---- addresses of unloaded modules (modules.c) ------------------------------ */

/* ip into the hash set (a power of two slots, never more than half full);
 * false if it was there. */
static bool set_put(uintptr_t *set, size_t cap, uintptr_t ip)
{
    size_t h = (size_t)((ip * 0x9E3779B97F4A7C15ull) >> 20) & (cap - 1);
    while (set[h] && set[h] != ip) h = (h + 1) & (cap - 1);
    if (set[h]) return false;
    set[h] = ip;
    return true;
}

/* The distinct addresses of stored stacks that fall in the ranges (at most
 * max, in out); how many there are (max + 1: more). */
size_t _ms_stack_ips_in(const ms_range_t *code, unsigned n, uintptr_t *out, size_t max)
{
    /* distinct through a hash set, doubled when half full (a pass over the
     * addresses seen so far was quadratic: 12 ms a dlclose of a plugin of
     * 3000 functions) */
    size_t cap = 1024, k = 0;
    uintptr_t *set = _ms_meta_alloc(cap * sizeof *set);
    if (!set) return 0;
    memset(set, 0, cap * sizeof *set);
    stacks_lock();
    uintptr_t ips[MS_MAX_STACK];
    for (uint32_t id = 1; id <= nstacks && set; id++) {
        unsigned depth = decode(entry(id), ips, MS_MAX_STACK);
        for (unsigned j = 0; j < depth; j++) {
            uintptr_t ip = ips[j];
            if (!ip || !_ms_in_ranges(ip, code, n)) continue;
            if (k >= max) { k = max + 1; id = nstacks; break; }   /* more than asked for */
            if (2 * (k + 1) > cap) {
                uintptr_t *bigger = _ms_meta_alloc(2 * cap * sizeof *bigger);
                if (bigger) {
                    memset(bigger, 0, 2 * cap * sizeof *bigger);
                    for (size_t x = 0; x < k; x++) set_put(bigger, 2 * cap, out[x]);
                }
                _ms_meta_free(set, cap * sizeof *set);
                set = bigger;
                cap *= 2;
                if (!set) break;
            }
            if (set_put(set, cap, ip)) out[k++] = ip;
        }
    }
    stacks_unlock();
    if (set) _ms_meta_free(set, cap * sizeof *set);
    return k;
}

/* Whether the slot is that of stack *arg (an id). */
static bool slot_is(const void *slot, const void *arg)
{
    return ((const stack_slot *)slot)->id == *(const uint32_t *)arg;
}

/* The module is gone: its addresses in stored stacks get the tag, and a
 * stack so changed takes the hash of its new frames as its key, in the
 * slot where it is (nothing looks up a stack of tagged frames: this only
 * unkeys the old hash).  A new stack with the old addresses (a library
 * mapped there since) then finds it neither by frames (_ms_stack_intern)
 * nor by hash (_ms_stack_find).  The tagged frames are a new entry, its
 * position published after it is written: a reader decodes the old entry
 * or the new one, never half of each.  (Out of memory, a stack keeps its
 * frames, unkeyed all the same.) */
void _ms_stack_retag(const ms_range_t *code, unsigned n, uintptr_t tag)
{
    uintptr_t ip[MS_MAX_STACK];
    uint8_t enc[ENT_MAX];
    stacks_lock();
    for (uint32_t id = 1; id <= nstacks; id++) {
        unsigned depth = decode(entry(id), ip, MS_MAX_STACK);
        uint64_t old = hash_ips(ip, depth);
        bool changed = false;
        for (unsigned j = 0; j < depth; j++)
            if (_ms_in_ranges(ip[j], code, n)) {
                ip[j] |= tag;
                changed = true;
            }
        if (!changed) continue;
        size_t len = encode(enc, ip, depth);
        if (make_room(len)) __atomic_store_n(pos_of(id), append(enc, len), __ATOMIC_RELEASE);
        stack_slot *s = ms_table_find(table, &stack_kind, old, slot_is, &id);
        if (s) __atomic_store_n(&s->hash, hash_ips(ip, depth), __ATOMIC_RELEASE);
    }
    stacks_unlock();
}
