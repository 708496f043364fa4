/* collector.h - the collector's interface to the rest of memshim (shim/,
 * tests/, a future leak-report writer): the allocator it runs on, and the
 * enumeration of objects kept alive only by cycles.  Everything here is
 * hidden in libmemshim.so; programs use the memshim_* API of memshim.h.
 * Includes nothing but libc headers. */
#ifndef MS_COLLECTOR_H
#define MS_COLLECTOR_H

#include <stddef.h>
#include <stdint.h>

/* ---- the allocator vtable ------------------------------------------------
 * All the collector's memory - objects and its own tables alike - comes from
 * one allocator.  The default is the C library's malloc/free as the program
 * sees them, which inside a preloaded libmemshim.so is memshim's own malloc.
 * That is safe because the collector is never called from inside malloc.
 * `alloc` must return 16-byte aligned memory (object headers keep flag bits
 * in the low bits of pointers to them) or NULL; `free` gets back the size
 * that was asked for. */
typedef struct gc_allocator {
    void *(*alloc)(void *ctx, size_t size);
    void  (*free)(void *ctx, void *p, size_t size);
    void  *ctx;
} gc_allocator;

/* Install `a` (NULL: back to malloc/free).  Only before the collector has
 * allocated anything: returns 0, or -1 with errno EBUSY afterwards. */
__attribute__((visibility("hidden"))) int gc_set_allocator(const gc_allocator *a);

/* The collector's own tables (nodes and links of registered blocks, weak
 * reference lists and handles, the garbage and callback lists) come from
 * this allocator when one is set, from the one above otherwise.  The shim
 * sets its bookkeeping memory, which the leak scan neither reports nor
 * reads: registering or linking a block makes it no more reachable.  Same
 * rule: only before the collector allocated anything. */
__attribute__((visibility("hidden"))) int gc_set_table_allocator(const gc_allocator *a);

/* ---- objects alive only through cycles (for the leak report) --------------
 * gc_cycles_find computes what a full collection (generations 0-2) would find
 * unreachable, without running a finalizer or freeing anything, and reports
 * it to `sink`: first every object with its type name, its size as
 * memshim_getsizeof gives it, and a group number (objects joined by
 * references, in either direction, share a group; groups are numbered 0, 1,
 * ... in order of first appearance), then every reference between two of
 * those objects, once per reference the traverse function visits.
 * The sink runs under the collector lock and must not call the collector.
 * Frozen objects are outside the analysis: references from them count as
 * external.  Returns the number of objects reported, or -1 with errno
 * (ENOMEM, or EBUSY when called during a collection).  Meant for exit time,
 * but callable whenever no collection is running. */
typedef struct gc_cycle_sink {
    void (*object)(void *arg, const void *obj, const char *type_name,
                   size_t size, size_t group);
    void (*edge)(void *arg, const void *from, const void *to);
    void *arg;
} gc_cycle_sink;

__attribute__((visibility("hidden"))) long gc_cycles_find(const gc_cycle_sink *sink);

/* ---- what the collector's host gives it ----------------------------------------
 * The shim (shim/gcglue.c) owns the environment and standard error: the
 * collector asks it for MEMSHIM_GC's text (copied into buf; NULL if unset)
 * at its first use, and hands it each line it has to say: output the
 * program asked for (debug statistics) with kind NULL, else one of its own
 * messages, kind naming it (the line's format: the host counts messages,
 * and may write only the first few of a kind). */
__attribute__((visibility("hidden"))) const char *gc_host_setting(char *buf, size_t cap);
__attribute__((visibility("hidden"))) void gc_host_write(const char *text, size_t n, const char *kind);

/* The program misused an object (`what`: the call and the fault) whose
 * block starts at `base`: the host reports it as it reports heap misuse,
 * with the block's stacks while it records them, and aborts unless
 * MEMSHIM_ON_ERROR=continue; then it returns and the collector goes on. */
__attribute__((visibility("hidden"))) void gc_host_misuse(const char *what, const void *obj, const void *base);

/* Whether obj is an object memshim_new made (alive or dead), as far as the
 * host can tell from its records of blocks: 1 yes, 0 no (a block of its
 * own, the inside of one, no block of the heap), -1 it cannot tell (it keeps
 * no records, or the pointer may be either).  A pointer the collector has
 * no node for is taken for an object: one that is none gets an "object
 * header" in the 32 bytes before it (another block's bytes). */
__attribute__((visibility("hidden"))) int gc_host_is_object(const void *obj);

/* The program gave `what` a pointer that is neither an object (the host
 * said 0) nor a registered block: reported as heap misuse, aborting unless
 * MEMSHIM_ON_ERROR=continue. */
__attribute__((visibility("hidden"))) void gc_host_not_object(const char *what, const void *p);

/* The program gave `what` a pointer of the collector's own (`is` says
 * what it is: a weak reference already freed): reported as heap misuse,
 * without stacks, aborting unless MEMSHIM_ON_ERROR=continue. */
__attribute__((visibility("hidden"))) void gc_host_misuse_at(const char *what, const void *p, const char *is);

/* The collector ends the process on an error it cannot go on from
 * (gc_fatal, its lock perhaps held): the host aborts at once, with no
 * end-of-process work, as for its own internal errors. */
__attribute__((visibility("hidden"), noreturn)) void gc_host_abort(void);

/* Time spent collecting so far, all generations (the statistics' figure). */
__attribute__((visibility("hidden"))) uint64_t gc_time_ns(void);

/* ---- what the leak scan needs to know of an object's block ------------------
 * memshim_new's block holds an optional 16-byte size prefix, then the object
 * header (gc_int.h): first GC_BLOCK_LINKS bytes of generation-list links --
 * pointers to the neighbouring tracked objects, which are no references, so
 * a conservative scan must not follow them -- then the type pointer, then
 * the object itself, GC_BLOCK_HEADER bytes after the header's start.
 * With the default allocator, memshim_new's blocks come from
 * gc_object_alloc (below) when the allocator's owner defines it, told the
 * header's offset in the block (0 or 16): the shim flags the block's
 * tracking record. */
#define GC_BLOCK_LINKS  16
#define GC_BLOCK_HEADER 32

/* A collection frees objects by the thousand, under its own stack: the
 * allocator's owner may free their blocks itself (the shim does, recording
 * one free stack for all the blocks of one collection instead of unwinding
 * at each free).  With the default allocator, each object block a
 * collection frees is offered to gc_object_free, with its size and the
 * collection's number (unique in the process, never 0); it returns 0 if
 * the block is not its own (then the collector calls free), 1 once freed.
 * At the start of each collection it is asked once, with base NULL,
 * whether it wants that collection's blocks at all (0: not offered).  It
 * may hold freed blocks back from reuse until gc_object_free_done, which
 * the collector calls once the collection's last object has died (its
 * callbacks' deaths included), if it asked for the blocks. */
__attribute__((weak, visibility("hidden"))) int gc_object_free(void *base, size_t size, unsigned long collection);
__attribute__((weak, visibility("hidden"))) void gc_object_free_done(unsigned long collection);

/* The program's own allocations and frees of objects, outside collections:
 * memshim_new's block (its header `header_offset` bytes in), and the block
 * of an object that dies when the program drops its last reference
 * (memshim_decref, memshim_root_remove, and the deaths those cause in
 * dealloc functions).  With the default allocator they go to gc_object_alloc
 * and gc_object_release when the allocator's owner defines them, with the
 * program's call into the collector: the return address into the program and
 * its stack pointer there.  The shim records that call's stack, as it would
 * for a malloc or free the program made itself: found in its stack cache,
 * where the collector's own frames, which the stack leaves out, would make
 * every object's stack a fresh unwind.  A death caused by another (a dealloc
 * function's decref) also gets `outer`, the call that started the first: a
 * dealloc function that ends in a tail call to memshim_decref leaves the
 * collector's own code as `site`.  Either may be NULL (the collector's own
 * decrefs).  gc_object_alloc returns NULL only when there is no memory;
 * gc_object_release frees whatever malloc gave. */
typedef struct gc_site { uintptr_t ra, sp; } gc_site;
__attribute__((weak, visibility("hidden"))) void *gc_object_alloc(size_t size, size_t header_offset,
                                                                   const gc_site *site);
__attribute__((weak, visibility("hidden"))) void  gc_object_release(void *base, const gc_site *site,
                                                                    const gc_site *outer);

/* The references the collector holds on the program's behalf: every root
 * (memshim_root_add) and the garbage list.  The leak scan counts what they
 * hold as reachable.  gc_scan_lock takes the collector lock, waiting at most
 * timeout_ms (0: it was not to be had; then the scan goes without); the
 * enumeration needs it held and allocates nothing. */
__attribute__((visibility("hidden"))) int  gc_scan_lock(unsigned timeout_ms);
__attribute__((visibility("hidden"))) void gc_scan_unlock(void);
__attribute__((visibility("hidden"))) void gc_strong_refs_locked(void (*cb)(void *arg, const void *p, int garbage), void *arg);

/* The type pointer (a memshim_type *) of the header at `header`. */
static inline const void *gc_header_type(const void *header)
{
    return ((const void *const *)header)[GC_BLOCK_LINKS / sizeof(void *)];
}

#endif
