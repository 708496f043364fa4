/* ptrmap.c - a map from pointers to pointers, for the tables of weakref.c
 * and reach.c: the shim's one hash table (shim/table.h, libc headers and
 * static inline code only) on the collector's table allocator.  Callers
 * hold the collector lock. */
#include <errno.h>
#include "gc_int.h"
#include "../shim/table.h"

typedef struct { uintptr_t key; void *val; } map_slot;
static const ms_table_kind_t map_kind = MS_TABLE_KIND(map_slot, key, 16, gc_tab_alloc, gc_tab_free);

static map_slot *slot_of(const gc_map *m, const void *key)
{
    return key ? ms_table_find(m->t, &map_kind, (uintptr_t)key, NULL, NULL) : NULL;
}

void *gc_map_get(const gc_map *m, const void *key)
{
    map_slot *s = slot_of(m, key);
    return s ? s->val : NULL;
}

int gc_map_put(gc_map *m, const void *key, void *val)
{
    map_slot *s = slot_of(m, key);
    if (s) { s->val = val; return 0; }
    if (!ms_table_room(&m->t, &map_kind)) { errno = ENOMEM; return -1; }
    ms_table_add(m->t, &map_kind, &(map_slot){ (uintptr_t)key, val });
    return 0;
}

void *gc_map_del(gc_map *m, const void *key)
{
    map_slot *s = slot_of(m, key);
    if (!s) return NULL;
    void *val = s->val;
    ms_table_del(m->t, &map_kind, s);
    if (!ms_table_count(m->t)) ms_table_free(&m->t, &map_kind);   /* give the memory back when a table empties */
    return val;
}

/* Every value, in no order. */
void gc_map_each(const gc_map *m, void (*fn)(void *arg, void *val), void *arg)
{
    for (size_t i = 0; i < ms_table_slots(m->t); i++) {
        const map_slot *s = ms_table_get(m->t, &map_kind, i);
        if (s) fn(arg, s->val);
    }
}
