/* meta.c - memory for memshim's own bookkeeping: thread caches, hash tables,
 * later the tracking tables.  It never touches the program's heap: small
 * requests are carved from 1 MiB mappings into per-size free lists, large ones
 * are mappings of their own.  Callers pass the size back when freeing. */
#include <string.h>
#include "shim.h"

#define META_GRAIN   64u
#define META_SMALL   4096u
#define META_CHUNK   ((size_t)1 << 20)

static pthread_mutex_t meta_lock = PTHREAD_MUTEX_INITIALIZER;
static void   *meta_free_lists[META_SMALL / META_GRAIN + 1]; /* meta_lock */
static uint8_t *meta_bump, *meta_end;                         /* meta_lock */

void *_ms_meta_alloc(size_t size)
{
    if (size == 0) size = 1;
    if (size > META_SMALL) {
        size_t rounded = (size + MS_OS_PAGE - 1) & ~(size_t)(MS_OS_PAGE - 1);
        return rounded < size ? NULL : _ms_os_map(rounded);   /* fresh mappings are zero */
    }
    size_t rounded = (size + META_GRAIN - 1) & ~(size_t)(META_GRAIN - 1);
    unsigned idx = (unsigned)(rounded / META_GRAIN);
    pthread_mutex_lock(&meta_lock);
    void *p = meta_free_lists[idx];
    if (p) {
        meta_free_lists[idx] = *(void **)p;
    } else {
        if (!meta_bump || (size_t)(meta_end - meta_bump) < rounded) {
            uint8_t *chunk = _ms_os_map(META_CHUNK);
            if (!chunk) { pthread_mutex_unlock(&meta_lock); return NULL; }
            meta_bump = chunk;
            meta_end = chunk + META_CHUNK;
        }
        p = meta_bump;
        meta_bump += rounded;
    }
    pthread_mutex_unlock(&meta_lock);
    memset(p, 0, rounded);
    return p;
}

void _ms_meta_free(void *p, size_t size)
{
    if (!p) return;
    if (size == 0) size = 1;
    if (size > META_SMALL) {
        _ms_os_unmap(p, (size + MS_OS_PAGE - 1) & ~(size_t)(MS_OS_PAGE - 1));
        return;
    }
    unsigned idx = (unsigned)(((size + META_GRAIN - 1) & ~(size_t)(META_GRAIN - 1)) / META_GRAIN);
    pthread_mutex_lock(&meta_lock);
    *(void **)p = meta_free_lists[idx];
    meta_free_lists[idx] = p;
    pthread_mutex_unlock(&meta_lock);
}

void _ms_meta_lock(void) { pthread_mutex_lock(&meta_lock); }
void _ms_meta_unlock(bool child)
{
    if (child) pthread_mutex_init(&meta_lock, NULL);
    else pthread_mutex_unlock(&meta_lock);
}
