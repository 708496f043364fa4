/* rss.c - the process's memory as the kernel counts it: psutil's
 * memory_info (statm's figures, read from /proc/self/status) and
 * memory_full_info (uss, pss and swap from /proc/self/smaps_rollup), plus
 * the peak RSS (VmHWM).
 *
 * Everything is read with open/read into stack buffers and parsed in place:
 * nothing here allocates, so memshim_rss() may be called from anywhere the
 * program could call write(2).  Cost: /proc/self/status, which carries
 * statm's figures in kB and VmHWM besides, is one read of a few
 * microseconds; smaps_rollup makes the kernel walk the page tables, about a
 * millisecond per GiB resident, so the sampler thread (sampler.c) reads only
 * the cheap part. */
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <unistd.h>
#include "shim.h"
#include "../include/memshim.h"

/* Parse up to n unsigned decimal numbers separated by blanks. */
static unsigned parse_numbers(const char *s, uint64_t *v, unsigned n)
{
    unsigned got = 0;
    while (got < n) {
        while (*s == ' ' || *s == '\t' || *s == '\n') s++;
        if (*s < '0' || *s > '9') break;
        uint64_t x = 0;
        while (*s >= '0' && *s <= '9') x = x * 10 + (uint64_t)(*s++ - '0');
        v[got++] = x;
    }
    return got;
}

/* Each line of /proc/self/FILE (no newline) to each(line, arg) until it
 * says true, read into buf (cap bytes: nothing allocated); a line longer
 * than that is skipped.  -1 with errno if the file cannot be opened or its
 * first read fails (a seccomp filter, no /proc), else whether a line said
 * true.  The one reader of /proc's line files: smaps, maps (the leak
 * scan's roots, the symbolizer's lookup). */
int _ms_proc_lines_in(const char *file, char *buf, size_t cap, bool (*each)(char *line, void *arg), void *arg)
{
    int fd = _ms_os_proc_open(file, O_RDONLY);
    if (fd < 0) return -1;
    size_t have = 0;
    bool done = false, read_any = false;
    while (!done) {
        ssize_t r = read(fd, buf + have, cap - 1 - have);
        if (r < 0 && errno == EINTR) continue;
        if (r < 0 && !read_any) { int e = errno; _ms_fd_close(fd); errno = e; return -1; }
        if (r <= 0) break;
        read_any = true;
        have += (size_t)r;
        buf[have] = 0;
        char *line = buf, *nl;
        while (!done && (nl = memchr(line, '\n', have - (size_t)(line - buf)))) {
            *nl = 0;
            done = each(line, arg);
            line = nl + 1;
        }
        size_t rest = have - (size_t)(line - buf);
        if (rest == cap - 1) rest = 0;                 /* a line longer than the buffer: drop it */
        memmove(buf, line, rest);
        have = rest;
    }
    _ms_fd_close(fd);
    return done;
}

int _ms_proc_lines(const char *file, bool (*each)(char *line, void *arg), void *arg)
{
    char buf[4096];
    return _ms_proc_lines_in(file, buf, sizeof buf, each, arg);
}

/* The "Key:  N kB" lines of smaps_rollup (or, on kernels before 4.14, of the
 * whole of smaps, summed). */
static const char *const smaps_keys[] = { "Pss:", "Private_Clean:", "Private_Dirty:", "Private_Hugetlb:", "Swap:" };

static bool smaps_line(char *line, void *arg)
{
    uint64_t *sum = arg;
    for (unsigned k = 0; k < 5; k++) {
        size_t kl = strlen(smaps_keys[k]);
        if (strncmp(line, smaps_keys[k], kl) == 0) {
            uint64_t v;
            if (parse_numbers(line + kl, &v, 1) == 1) sum[k] += v * 1024;
            break;
        }
    }
    return false;
}

static int read_smaps(ms_rss_t *out)
{
    uint64_t sum[5] = { 0 };
    if (_ms_proc_lines("smaps_rollup", smaps_line, sum) < 0 && _ms_proc_lines("smaps", smaps_line, sum) < 0)
        return -1;
    out->pss = sum[0];
    out->uss = sum[1] + sum[2] + sum[3];
    out->swap = sum[4];
    return 0;
}

int _ms_rss_read(ms_rss_t *out, bool full)
{
    int saved = errno;
    memset(out, 0, sizeof *out);
    char buf[4096];
    if (_ms_os_read_status(buf, sizeof buf) <= 0 || !strstr(buf, "VmRSS")) {
        errno = ENOENT;
        return -1;
    }
    /* /proc/self/status carries statm's figures in kB, and VmHWM besides. */
    out->vms = _ms_os_status_kb(buf, "VmSize:");
    out->rss = _ms_os_status_kb(buf, "VmRSS:");
    out->peak_rss = _ms_os_status_kb(buf, "VmHWM:");
    out->shared = _ms_os_status_kb(buf, "RssFile:") + _ms_os_status_kb(buf, "RssShmem:");
    out->text = _ms_os_status_kb(buf, "VmExe:");
    out->data = _ms_os_status_kb(buf, "VmData:") + _ms_os_status_kb(buf, "VmStk:");
    if (out->peak_rss < out->rss) out->peak_rss = out->rss;
    if (full) read_smaps(out);
    errno = saved;
    return 0;
}

MS_EXPORT int memshim_rss(struct memshim_rss *out)
{
    if (!out) { errno = EINVAL; return -1; }
    ms_rss_t r;
    int rc = _ms_rss_read(&r, true);
#define COPY(m, ...) out->m = r.m;
    MS_RSS_FIGURES(COPY, COPY)
    return rc;
}
