/* profile.h - what profile.c hands the pprof writer (pprof.c): one heap
 * profile's figures, per allocation stack and in all. */
#ifndef MS_PROFILE_H
#define MS_PROFILE_H
#include "shim.h"

typedef struct ms_psite_s {
    uint32_t stack;
    uint64_t allocs, alloc_bytes, live_blocks, live_bytes, temps, temp_bytes, peak_blocks, peak_bytes;
} ms_psite_t;

typedef struct ms_profile_s {
    ms_psite_t *site;                 /* stacks that allocated, in no order */
    size_t      n, cap;
    bool        oom;
    uint64_t    allocs, alloc_bytes, live_blocks, live_bytes, temps, temp_bytes;
    uint64_t    peak_blocks, peak_bytes, peak_ms;
    uint64_t    hist[MS_PROF_HIST];   /* allocations by size's bit length */
} ms_profile_t;

/* comment: a line for the profile's comments (NULL: none) */
MS_HIDDEN void _ms_pprof_write(ms_buf_t *out, const ms_profile_t *p, const char *comment);
MS_HIDDEN void _ms_prof_frame_name(ms_buf_t *b, const ms_frame_t *f);
/* d[0, n) to out as one gzip member (pprof.c: deflate with fixed codes, or
 * stored blocks without memory for its hash chains). */
MS_HIDDEN void _ms_gzip(ms_buf_t *out, const uint8_t *d, size_t n);
#endif
