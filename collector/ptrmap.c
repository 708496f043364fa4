/* ptrmap.c - a map from pointers to pointers (open addressing, linear
 * probing, deletion by backward shift: no tombstones), for the tables of
 * weakref.c and reach.c.  Memory from the collector's allocator; callers
 * hold the collector lock. */
#include <errno.h>
#include <string.h>
#include "gc_int.h"

static inline size_t slot_of(const void *key, size_t cap)
{
    uint64_t h = (uint64_t)(uintptr_t)key >> 4;
    h *= 0x9E3779B97F4A7C15ull;
    return (size_t)(h >> 32) & (cap - 1);
}

void *gc_map_get(const gc_map *m, const void *key)
{
    if (!m->count) return NULL;
    for (size_t i = slot_of(key, m->cap);; i = (i + 1) & (m->cap - 1)) {
        if (m->ents[i].key == key) return m->ents[i].val;
        if (!m->ents[i].key) return NULL;
    }
}

static int grow(gc_map *m)
{
    size_t cap = m->cap ? m->cap * 2 : 16;
    gc_map_ent *e = gc_tab_alloc(cap * sizeof *e);
    if (!e) return -1;
    memset(e, 0, cap * sizeof *e);
    for (size_t i = 0; i < m->cap; i++) {
        if (!m->ents[i].key) continue;
        size_t j = slot_of(m->ents[i].key, cap);
        while (e[j].key) j = (j + 1) & (cap - 1);
        e[j] = m->ents[i];
    }
    gc_tab_free(m->ents, m->cap * sizeof *m->ents);
    m->ents = e;
    m->cap = cap;
    return 0;
}

int gc_map_put(gc_map *m, const void *key, void *val)
{
    if ((m->count + 1) * 4 > m->cap * 3 && grow(m) < 0) { errno = ENOMEM; return -1; }
    size_t i = slot_of(key, m->cap);
    while (m->ents[i].key && m->ents[i].key != key) i = (i + 1) & (m->cap - 1);
    if (!m->ents[i].key) m->count++;
    m->ents[i].key = key;
    m->ents[i].val = val;
    return 0;
}

void *gc_map_del(gc_map *m, const void *key)
{
    if (!m->count) return NULL;
    size_t mask = m->cap - 1, i = slot_of(key, m->cap);
    while (m->ents[i].key != key) {
        if (!m->ents[i].key) return NULL;
        i = (i + 1) & mask;
    }
    void *val = m->ents[i].val;
    /* Backward shift: pull later members of the probe run into the hole
     * when their home slot does not lie strictly between hole and them. */
    size_t hole = i;
    for (size_t j = (i + 1) & mask; m->ents[j].key; j = (j + 1) & mask) {
        size_t home = slot_of(m->ents[j].key, m->cap);
        if (((j - home) & mask) >= ((j - hole) & mask)) {
            m->ents[hole] = m->ents[j];
            hole = j;
        }
    }
    m->ents[hole].key = NULL;
    m->ents[hole].val = NULL;
    m->count--;
    if (!m->count) {       /* give the memory back when a table empties */
        gc_tab_free(m->ents, m->cap * sizeof *m->ents);
        m->ents = NULL;
        m->cap = 0;
    }
    return val;
}
