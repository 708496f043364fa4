/* outname.h - the names of memshim's outputs (MEMSHIM_REPORT, MEMSHIM_STATS,
 * MEMSHIM_RSS_LOG, MEMSHIM_PROFILE, MEMSHIM_METRICS): which %-sequences
 * they may hold (%p the pid, %n the output's number, %h the host name, %%
 * a percent sign), and what %h stands for.  The library's expansion
 * (out.c, _ms_expand_path), its reading of the variables (options.c) and
 * the command, which looks for the files a run wrote (tools/memshim.c),
 * must agree on them.  Freestanding, as near.h: no allocation, no stdio.
 *
 * %p, the process id, is not enough where processes of several pid
 * namespaces write into one directory: every container's first process
 * is pid 1, and containers sharing a node_exporter textfile directory
 * overwrote each other's metrics files.  A container's host name is its
 * own by default (Docker's and Podman's: the container's id; Kubernetes':
 * the pod's name), so %h.%p names one process on one host. */
#ifndef MS_OUTNAME_H
#define MS_OUTNAME_H

#include <stdbool.h>
#include <stddef.h>
#include <string.h>
#include <sys/utsname.h>

/* The host name (uname's nodename; "localhost" if that is empty) into out,
 * a '/' in it as '_' so that it stays one component of a path; its length,
 * cut to cap - 1 bytes. */
static inline size_t ms_host_name(char *out, size_t cap)
{
    struct utsname u;
    const char *h = uname(&u) == 0 && u.nodename[0] ? u.nodename : "localhost";
    size_t n = strnlen(h, sizeof u.nodename);
    if (n >= cap) n = cap - 1;
    for (size_t i = 0; i < n; i++) out[i] = h[i] == '/' ? '_' : h[i];
    out[n] = 0;
    return n;
}

/* The first %-sequence in name that is none of %p, %n, %h and %% (a
 * valgrind user's %q{VAR}, a printf habit's %d), or NULL. */
static inline const char *ms_outname_unknown(const char *name)
{
    for (const char *s = name; (s = strchr(s, '%')); s += 2)
        if (!s[1] || !strchr("pnh%", s[1])) return s;
    return NULL;
}

/* The one reading of an output name's syntax: name in pieces, in order,
 * each given to piece(ctx, seq, text, len): a sequence (seq 'p', 'n' or
 * 'h'; text NULL), or text as written (seq 0; %% as one "%", any other %
 * as itself, as an unknown sequence is refused before: options.c).  Stops
 * at the first piece that returns false; false then. */
typedef bool (*ms_outname_piece_fn)(void *ctx, char seq, const char *text, size_t len);
static inline bool ms_outname_walk(const char *name, ms_outname_piece_fn piece, void *ctx)
{
    for (const char *s = name; *s;) {
        if (s[0] == '%' && s[1] && strchr("pnh", s[1])) {
            if (!piece(ctx, s[1], NULL, 0)) return false;
            s += 2;
        } else if (s[0] == '%' && s[1] == '%') {
            if (!piece(ctx, 0, s, 1)) return false;
            s += 2;
        } else {
            size_t len = 1 + strcspn(s + 1, "%");
            if (!piece(ctx, 0, s, len)) return false;
            s += len;
        }
    }
    return true;
}

#endif
