/* stacks.c - the trace table: every distinct allocation stack is stored once
 * and named by a 32-bit id, so a block's record holds 4 bytes, not a stack.
 *
 * Entries are appended to one arena and never move or die; the id is the
 * entry's word offset + 1 (0 means "no stack").  Lookups probe an
 * open-addressing table of ids without a lock; insertion takes stack_lock,
 * re-probes, appends and publishes the id with a release store.  When the
 * table passes half full a table twice the size is built and published;
 * the old one is left in place for readers still probing it (the tables
 * add up to less than twice the final one). */
#include <string.h>
#include "shim.h"

#define ARENA_BYTES  ((size_t)256 << 20)     /* reserved, touched as used */

typedef struct {
    uint64_t  hash;
    uint32_t  depth;
    uint32_t  pad;
    uintptr_t ip[];
} stack_ent;

typedef struct {
    uint32_t  mask;
    uint32_t  used;
    uint32_t  ids[];
} stack_table;

static pthread_mutex_t stack_lock = PTHREAD_MUTEX_INITIALIZER;
static uintptr_t   *arena;          /* words; appended under stack_lock */
static size_t       arena_used;     /* words in use (stack_lock) */
static stack_table *table;          /* current table, read lock-free */
static uint32_t     nstacks;

static uint64_t hash_ips(const uintptr_t *ip, unsigned n)
{
    uint64_t h = 0xcbf29ce484222325ULL ^ n;
    for (unsigned i = 0; i < n; i++) {
        h ^= ip[i];
        h *= 0x100000001b3ULL;
        h ^= h >> 29;
    }
    return h ? h : 1;
}

static const stack_ent *entry(uint32_t id) { return (const stack_ent *)(arena + id - 1); }

static uint32_t probe(const stack_table *t, uint64_t h, const uintptr_t *ip, unsigned n)
{
    for (uint32_t i = (uint32_t)h & t->mask;; i = (i + 1) & t->mask) {
        uint32_t id = __atomic_load_n(&t->ids[i], __ATOMIC_ACQUIRE);
        if (!id) return 0;
        const stack_ent *e = entry(id);
        if (e->hash == h && e->depth == n && memcmp(e->ip, ip, n * sizeof *ip) == 0) return id;
    }
}

static stack_table *table_new(uint32_t slots)
{
    stack_table *t = _ms_meta_alloc(sizeof *t + (size_t)slots * sizeof(uint32_t));
    if (t) t->mask = slots - 1;
    return t;
}

static void table_put(stack_table *t, uint32_t id)
{
    uint32_t i = (uint32_t)entry(id)->hash & t->mask;
    while (t->ids[i]) i = (i + 1) & t->mask;
    __atomic_store_n(&t->ids[i], id, __ATOMIC_RELEASE);
    t->used++;
}

uint32_t _ms_stack_intern(const uintptr_t *ip, unsigned n)
{
    if (n == 0) return 0;
    uint64_t h = hash_ips(ip, n);
    stack_table *t = __atomic_load_n(&table, __ATOMIC_ACQUIRE);
    uint32_t id;
    if (t && (id = probe(t, h, ip, n))) return id;

    pthread_mutex_lock(&stack_lock);
    if (!arena) {
        arena = _ms_meta_alloc(ARENA_BYTES);
        table = table_new(4096);
        if (!arena || !table) { pthread_mutex_unlock(&stack_lock); return 0; }
    }
    t = table;
    if ((id = probe(t, h, ip, n))) { pthread_mutex_unlock(&stack_lock); return id; }
    size_t words = sizeof(stack_ent) / sizeof(uintptr_t) + n;
    if ((arena_used + words) * sizeof(uintptr_t) > ARENA_BYTES || arena_used + 1 > UINT32_MAX) {
        pthread_mutex_unlock(&stack_lock);
        return 0;                                   /* table full: stack unknown */
    }
    stack_ent *e = (stack_ent *)(arena + arena_used);
    e->hash = h;
    e->depth = n;
    memcpy(e->ip, ip, n * sizeof *ip);
    id = (uint32_t)arena_used + 1;
    arena_used += words;
    nstacks++;
    if ((t->used + 1) * 2 > t->mask + 1) {          /* grow, then publish */
        stack_table *nt = table_new((t->mask + 1) * 2);
        if (nt) {
            for (uint32_t i = 0; i <= t->mask; i++)
                if (t->ids[i]) table_put(nt, t->ids[i]);
            __atomic_store_n(&table, nt, __ATOMIC_RELEASE);
            t = nt;
        }
    }
    table_put(t, id);
    pthread_mutex_unlock(&stack_lock);
    return id;
}

/* The frames of stack id (0 frames for id 0). */
unsigned _ms_stack_get(uint32_t id, const uintptr_t **ip)
{
    if (!id || !arena) { *ip = NULL; return 0; }
    const stack_ent *e = entry(id);
    *ip = e->ip;
    return e->depth;
}

uint32_t _ms_stack_count(void) { return nstacks; }

void _ms_stack_lock(void) { pthread_mutex_lock(&stack_lock); }
void _ms_stack_unlock(bool child)
{
    if (child) pthread_mutex_init(&stack_lock, NULL);
    else pthread_mutex_unlock(&stack_lock);
}
