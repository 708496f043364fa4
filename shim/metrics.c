/* metrics.c - MEMSHIM_METRICS: the live figures as a node_exporter
 * textfile (the Prometheus text format, rendered by prom.c as `memshim
 * exporter` renders them), rewritten whole every MEMSHIM_METRICS_INTERVAL
 * ms by the reporter thread (sampler.c) and removed at exit.
 *
 * Only the reporter thread calls in here, so no lock.  The file goes
 * through out.c like every output: a temporary name beside it, renamed into
 * place, so node_exporter never reads half of it; 0644, since node_exporter
 * usually runs as another user.  If it cannot be written, one message, no
 * more tries, and the file written last is removed: its figures would be
 * read as the process's for as long as it runs. */
#include <errno.h>
#include <string.h>
#include <unistd.h>
#include "shim.h"
#include "live.h"
#include "prom.h"

static struct {
    bool     failed;         /* said once; nothing more */
    bool     written;        /* path, dev, ino: the file in place now */
    uint64_t start_ms;
    dev_t    dev;
    ino_t    ino;
    char     path[4096];
} m;
static ms_live_t fig;        /* 5 KiB: off the reporter thread's stack */

static void flush_to_fd(ms_prom_t *w)
{
    ms_buf_t b;
    _ms_buf_init_out(&b, w->p, w->cap, w->ctx);
    b.len = w->len;
    _ms_buf_flush(&b);
    w->len = 0;
}

void _ms_metrics_write(void)
{
    if (!_ms_ropt.metrics || m.failed) return;
    int saved = errno;
    _ms_live_header(&fig, _ms_ropt.metrics_interval_ms);
    _ms_live_fill(&fig, true);
    if (!m.start_ms) m.start_ms = fig.updated_unix_ms;
    fig.start_unix_ms = m.start_ms;
    fig.updates = 1;

    ms_out_t o;
    if (!_ms_out_open(&o, "MEMSHIM_METRICS", _ms_ropt.metrics, MS_OUT_SNAPSHOT)) {
        m.failed = true;
        _ms_metrics_withdraw();
        errno = saved;
        return;
    }
    char mem[4096];
    ms_prom_t w = { .p = mem, .cap = sizeof mem, .flush = flush_to_fd, .ctx = &o };
    const ms_live_t *one = &fig;
    ms_prom_render(&w, &one, 1, NULL);
    bool atomic = o.kind == MS_OUT_ATOMIC;
    if (!_ms_out_commit(&o)) {
        m.failed = true;
        _ms_metrics_withdraw();
    } else if (atomic) {
        memcpy(m.path, o.path, sizeof m.path);
        m.dev = o.dev;
        m.ino = o.ino;
        m.written = true;
    }
    errno = saved;
}

void _ms_metrics_withdraw(void)
{
    if (m.written) _ms_out_remove(m.path, m.dev, m.ino);
    m.written = false;
}

/* A forked child: the file is the parent's; the child writes one of its own
 * only when the name has %p (sampler.c decides). */
void _ms_metrics_fork_child(void)
{
    m.written = false;
    m.start_ms = 0;
    if (_ms_ropt.metrics && !strstr(_ms_ropt.metrics, "%p")) m.failed = true;
}
