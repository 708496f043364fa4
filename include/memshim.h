/* memshim.h - the public interface of libmemshim.
 *
 * memshim is an LD_PRELOAD memory instrumentation shim: a size-class pool
 * allocator that replaces malloc, with statistics, leak reports and an
 * object-graph collector on top.  Programs need this header only to call
 * memshim directly; preloading needs no change to the program at all.
 * Link with -lmemshim (pkg-config --libs memshim), or run under
 * LD_PRELOAD=libmemshim.so and look the functions up with dlsym.
 * See memshim(3). */
#ifndef MEMSHIM_H
#define MEMSHIM_H

#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

#define MEMSHIM_VERSION_MAJOR 0
#define MEMSHIM_VERSION_MINOR 1
#define MEMSHIM_VERSION_PATCH 0
#define MEMSHIM_VERSION       "0.1.0"

/* The library's version string, e.g. "0.1.0". */
const char *memshim_version(void);

/* Write the allocator's statistics table (as MEMSHIM_STATS does at exit) to
 * the file descriptor fd.  Allocates nothing. */
void memshim_stats_print(int fd);

/* Per-size-class and total figures of the pool allocator. */
struct memshim_class_stats {
    size_t block_size;      /* bytes per block of this class */
    size_t pools;           /* pools (spans of 64 KiB pages) holding the class */
    size_t blocks_in_use;   /* handed to the program and not freed */
    size_t blocks_free;     /* free in those pools and in thread caches */
    unsigned long long allocations, frees; /* served by thread caches since start */
};

struct memshim_heap_stats {
    size_t small_bytes_in_use;   /* in size-class blocks */
    size_t small_bytes_pooled;   /* capacity of the pools in use */
    size_t huge_blocks, huge_bytes; /* blocks above the largest class */
    size_t mapped_bytes;         /* held from the OS now (segments + huge) */
    size_t returned_bytes;       /* given back to the OS since start */
    size_t rss, peak_rss;        /* of the process, from /proc/self/status */
    unsigned threads;            /* threads with a cache */
    unsigned nclasses;           /* entries filled in `classes` */
    struct memshim_class_stats classes[64];
};

/* Fill *out with current figures; 0 on success, -1 if memshim is not the
 * allocator of this process. */
int memshim_heap_stats(struct memshim_heap_stats *out);

#ifdef __cplusplus
}
#endif
#endif
