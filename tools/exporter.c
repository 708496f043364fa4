/* exporter.c - `memshim exporter`: the live figures of every process on the
 * host that publishes them (MEMSHIM_LIVE) and that we may read, served at
 * /metrics for Prometheus (text format 0.0.4, or OpenMetrics 1.0 when the
 * scraper's Accept header prefers it) with libmicrohttpd.
 *
 * Nothing changes in the programs: each scrape reads their live regions
 * through /proc as `memshim stats PID` does (live.c's reader, which checks
 * every field), adds uss, pss and swap from /proc/PID/smaps_rollup, and
 * renders them with shim/prom.c, the renderer MEMSHIM_METRICS uses too.
 * A process that exited has no region any more; a region not refreshed for
 * three of its intervals (plus two seconds) is stale and left out, like a
 * malformed one: both are counted in memshim_exporter_skipped_regions.
 *
 * Only processes of our own user are read, unless we run as root; the
 * listener is on loopback unless --listen says otherwise. */
#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <microhttpd.h>
#include <netdb.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include "memshim.h"
#include "live.h"
#include "prom.h"

#define DEFAULT_LISTEN "127.0.0.1:9464"

static uint64_t clock_ms(clockid_t c)
{
    struct timespec ts;
    clock_gettime(c, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static uint64_t mono_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000 + (uint64_t)ts.tv_nsec;
}

/* ---- one scrape ------------------------------------------------------------------ */

typedef struct {
    ms_live_t       **procs;
    size_t            n, cap;
    ms_prom_scrape_t  s;
} scrape_t;

/* uss, pss and swap of pid from /proc/PID/smaps_rollup (as rss.c reads its own). */
static void read_smaps(pid_t pid, ms_live_t *l)
{
    char path[64], line[256];
    snprintf(path, sizeof path, "/proc/%d/smaps_rollup", (int)pid);
    FILE *f = fopen(path, "re");
    if (!f) return;
    unsigned long long v, pss = 0, priv = 0, swap = 0;
    bool any = false;
    while (fgets(line, sizeof line, f)) {
        if (sscanf(line, "Pss: %llu kB", &v) == 1) { pss = v; any = true; }
        else if (sscanf(line, "Private_Clean: %llu kB", &v) == 1 || sscanf(line, "Private_Dirty: %llu kB", &v) == 1 ||
                 sscanf(line, "Private_Hugetlb: %llu kB", &v) == 1) priv += v;
        else if (sscanf(line, "Swap: %llu kB", &v) == 1) swap = v;
    }
    fclose(f);
    l->have_smaps = any;
    l->pss = pss * 1024;
    l->uss = priv * 1024;
    l->swap = swap * 1024;
}

/* Whether pid is one of ours to read: our user's, or anyone's for root. */
static bool ours(const char *pid_dir)
{
    uid_t me = geteuid();
    struct stat st;
    return me == 0 || (stat(pid_dir, &st) == 0 && st.st_uid == me);
}

static void add_process(scrape_t *sc, pid_t pid, uint64_t now_ms)
{
    int fd = ms_live_open(pid, true);
    if (fd < 0) return;                                  /* not publishing, or gone */
    ms_live_t *l = malloc(sizeof *l);
    if (sc->n == sc->cap) {
        size_t ncap = sc->cap ? sc->cap * 2 : 64;
        ms_live_t **np = realloc(sc->procs, ncap * sizeof *np);
        if (np) { sc->procs = np; sc->cap = ncap; }
    }
    if (!l || sc->n == sc->cap) { free(l); close(fd); return; }
    bool ok = ms_live_read(fd, pid, l, 3, true);
    close(fd);
    if (!ok) { sc->s.invalid++; free(l); return; }
    uint64_t late = 3 * l->interval_ms + 2000;
    if (l->updated_unix_ms + late < now_ms || l->updated_unix_ms > now_ms + 60000) {
        sc->s.stale++;
        free(l);
        return;
    }
    read_smaps(pid, l);
    sc->procs[sc->n++] = l;
}

static void scrape_free(scrape_t *sc)
{
    for (size_t i = 0; i < sc->n; i++) free(sc->procs[i]);
    free(sc->procs);
}

static int by_pid(const void *a, const void *b)
{
    const ms_live_t *x = *(ms_live_t *const *)a, *y = *(ms_live_t *const *)b;
    return (x->pid > y->pid) - (x->pid < y->pid);
}

static void scrape(scrape_t *sc)
{
    uint64_t t0 = mono_ns(), now_ms = clock_ms(CLOCK_REALTIME);
    memset(sc, 0, sizeof *sc);
    DIR *d = opendir("/proc");
    if (!d) return;
    struct dirent *e;
    char dir[300];
    while ((e = readdir(d))) {
        uint64_t pid;
        if (!ms_parse_u64(e->d_name, &pid) || pid == 0 || pid > 4194304) continue;
        snprintf(dir, sizeof dir, "/proc/%s", e->d_name);
        if (ours(dir)) add_process(sc, (pid_t)pid, now_ms);
    }
    closedir(d);
    qsort(sc->procs, sc->n, sizeof *sc->procs, by_pid);
    sc->s.processes = sc->n;
    sc->s.duration_ns = mono_ns() - t0;
}

/* The text, in memory that grows as the renderer fills it. */
static void grow(ms_prom_t *w)
{
    if (w->len < w->cap) return;                         /* the final flush: nothing to do */
    size_t ncap = w->cap * 2;
    char *np = realloc(w->p, ncap);
    if (!np) { *(bool *)w->ctx = true; w->len = 0; return; }   /* out of memory: said by the caller */
    w->p = np;
    w->cap = ncap;
}

/* One scrape rendered: a malloc'd text and its length, or NULL. */
static char *render(bool openmetrics, size_t *len)
{
    scrape_t sc;
    scrape(&sc);
    bool oom = false;
    ms_prom_t w = { .p = malloc(64 << 10), .cap = 64 << 10, .flush = grow, .ctx = &oom,
                    .openmetrics = openmetrics };
    if (w.p) ms_prom_render(&w, (const ms_live_t *const *)sc.procs, sc.n, &sc.s);
    scrape_free(&sc);
    if (!w.p || oom) { free(w.p); return NULL; }
    *len = w.len;
    return w.p;
}

/* ---- HTTP --------------------------------------------------------------------------- */

/* The best weight (RFC 9110's q, 1 when a range has none) the Accept
 * header gives to the media type `type`, and where in the header that
 * range is; -1 when no range names it. */
static double accept_weight(const char *accept, const char *type, size_t *at)
{
    size_t tl = strlen(type);
    double best = -1;
    for (const char *r = accept; *r;) {
        r += strspn(r, " \t,");
        const char *end = r + strcspn(r, ",");
        if (strcspn(r, ";, \t") == tl && strncasecmp(r, type, tl) == 0) {
            double q = 1;
            for (const char *p = r + tl; p < end; p++) {
                if (*p != ';') continue;
                p += 1 + strspn(p + 1, " \t");
                if ((*p == 'q' || *p == 'Q') && p[1] == '=') q = strtod(p + 2, NULL);
            }
            if (q > best) { best = q; *at = (size_t)(r - accept); }
        }
        r = end;
    }
    return best;
}

/* OpenMetrics when the scraper prefers it to the text format: a higher
 * weight, or the same one named first (Prometheus's scrape_protocols, in
 * its order, are weights); never when refused (q=0). */
static bool wants_openmetrics(struct MHD_Connection *c)
{
    const char *accept = MHD_lookup_connection_value(c, MHD_HEADER_KIND, MHD_HTTP_HEADER_ACCEPT);
    if (!accept) return false;
    size_t om_at = 0, text_at = 0;
    double om = accept_weight(accept, "application/openmetrics-text", &om_at);
    double text = accept_weight(accept, "text/plain", &text_at);
    return om > 0 && (om > text || (om == text && om_at < text_at));
}

static enum MHD_Result reply(struct MHD_Connection *c, unsigned status, const char *type, char *body,
                             size_t len, bool owned)
{
    struct MHD_Response *r = MHD_create_response_from_buffer(len, body,
                                                             owned ? MHD_RESPMEM_MUST_FREE : MHD_RESPMEM_PERSISTENT);
    if (!r) { if (owned) free(body); return MHD_NO; }
    MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, type);
    if (status == MHD_HTTP_METHOD_NOT_ALLOWED) MHD_add_response_header(r, MHD_HTTP_HEADER_ALLOW, "GET, HEAD");
    /* the figures' format follows the Accept header: a cache between the
     * scraper and us must not hand one scraper's format to another */
    if (strcmp(type, MS_PROM_CT_OPENMETRICS) == 0 || strcmp(type, MS_PROM_CT_TEXT) == 0)
        MHD_add_response_header(r, MHD_HTTP_HEADER_VARY, "Accept");
    enum MHD_Result ret = MHD_queue_response(c, status, r);
    MHD_destroy_response(r);
    return ret;
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *c, const char *url, const char *method,
                                  const char *version, const char *upload, size_t *upload_size, void **state)
{
    (void)cls; (void)version; (void)upload;
    static char front[] = "memshim exporter: the figures are at /metrics\n";
    static char not_found[] = "not found: the figures are at /metrics\n";
    static char bad_method[] = "only GET and HEAD\n";
    static char failed[] = "out of memory\n";
    if (!*state) { *state = c; return MHD_YES; }             /* headers first; the body (none) next */
    if (*upload_size) { *upload_size = 0; return MHD_YES; }
    if (strcmp(method, "GET") != 0 && strcmp(method, "HEAD") != 0)
        return reply(c, MHD_HTTP_METHOD_NOT_ALLOWED, "text/plain", bad_method, sizeof bad_method - 1, false);
    if (strcmp(url, "/") == 0) return reply(c, MHD_HTTP_OK, "text/plain", front, sizeof front - 1, false);
    if (strcmp(url, "/metrics") != 0)
        return reply(c, MHD_HTTP_NOT_FOUND, "text/plain", not_found, sizeof not_found - 1, false);
    bool om = wants_openmetrics(c);
    size_t len;
    char *body = render(om, &len);
    if (!body) return reply(c, MHD_HTTP_INTERNAL_SERVER_ERROR, "text/plain", failed, sizeof failed - 1, false);
    return reply(c, MHD_HTTP_OK, om ? MS_PROM_CT_OPENMETRICS : MS_PROM_CT_TEXT, body, len, true);
}

/* A listening socket at spec ("ADDR:PORT", "[ADDR6]:PORT", ":PORT" for
 * every IPv4 address), or -1 after saying why; where it listens in shown. */
static int listen_on(const char *spec, char *shown, size_t cap)
{
    char host[256];
    const char *colon = strrchr(spec, ':');
    if (!colon || !colon[1]) ms_usage_error("exporter --listen %s: expected ADDR:PORT, e.g. %s", spec, DEFAULT_LISTEN);
    size_t hl = (size_t)(colon - spec);
    if (hl >= sizeof host) ms_usage_error("exporter --listen %s: address too long", spec);
    memcpy(host, spec, hl);
    host[hl] = 0;
    if (host[0] == '[' && hl >= 2 && host[hl - 1] == ']') { memmove(host, host + 1, hl - 2); host[hl - 2] = 0; }
    uint64_t port;
    if (!ms_parse_u64(colon + 1, &port) || port > 65535)
        ms_usage_error("exporter --listen %s: '%s' is not a port (0 to 65535)", spec, colon + 1);
    struct addrinfo hints = { .ai_socktype = SOCK_STREAM, .ai_flags = AI_PASSIVE }, *ai;
    int rc = getaddrinfo(host[0] ? host : "0.0.0.0", colon + 1, &hints, &ai);
    if (rc != 0) { ms_warn("exporter --listen %s: %s", spec, gai_strerror(rc)); return -1; }
    int fd = socket(ai->ai_family, SOCK_STREAM | SOCK_CLOEXEC, 0), one = 1;
    if (fd >= 0) setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (fd < 0 || bind(fd, ai->ai_addr, ai->ai_addrlen) != 0 || listen(fd, 64) != 0) {
        ms_warn("exporter: cannot listen on %s (%s)", spec, strerror(errno));
        if (fd >= 0) close(fd);
        freeaddrinfo(ai);
        return -1;
    }
    freeaddrinfo(ai);
    struct sockaddr_storage sa;
    socklen_t sl = sizeof sa;
    char addr[INET6_ADDRSTRLEN] = "?";
    unsigned p = 0;
    if (getsockname(fd, (struct sockaddr *)&sa, &sl) == 0) {
        if (sa.ss_family == AF_INET6) {
            struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)&sa;
            inet_ntop(AF_INET6, &s6->sin6_addr, addr, sizeof addr);
            p = ntohs(s6->sin6_port);
            snprintf(shown, cap, "[%s]:%u", addr, p);
            return fd;
        }
        struct sockaddr_in *s4 = (struct sockaddr_in *)&sa;
        inet_ntop(AF_INET, &s4->sin_addr, addr, sizeof addr);
        p = ntohs(s4->sin_port);
    }
    snprintf(shown, cap, "%s:%u", addr, p);
    return fd;
}

int cmd_exporter(int argc, char **argv)
{
    const char *listen_spec = DEFAULT_LISTEN, *v;
    bool once = false, om = false;
    for (int i = 1; i < argc; i++) {
        if ((v = ms_opt_value(argc, argv, &i, "--listen"))) listen_spec = v;
        else if (strcmp(argv[i], "--once") == 0) once = true;
        else if (strcmp(argv[i], "--openmetrics") == 0) om = true;
        else if (argv[i][0] == '-') ms_unknown_option("exporter", argv[i]);
        else ms_usage_error("exporter: unexpected argument '%s'", argv[i]);
    }
    if (om && !once) ms_usage_error("exporter: --openmetrics goes with --once (a scraper asks for it itself)");
    if (once) {
        size_t len;
        char *body = render(om, &len);
        if (!body) { ms_warn("exporter: out of memory"); return 1; }
        bool ok = fwrite(body, 1, len, stdout) == len && fflush(stdout) == 0;
        free(body);
        if (!ok) ms_warn("exporter: cannot write the figures (%s)", strerror(errno));
        return ok ? 0 : 1;
    }
    char shown[INET6_ADDRSTRLEN + 16];
    int fd = listen_on(listen_spec, shown, sizeof shown);
    if (fd < 0) return 1;
    /* SIGINT and SIGTERM are taken by sigwait below, in no thread of libmicrohttpd's. */
    sigset_t stop;
    sigemptyset(&stop);
    sigaddset(&stop, SIGINT);
    sigaddset(&stop, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &stop, NULL);
    signal(SIGPIPE, SIG_IGN);
    struct MHD_Daemon *d = MHD_start_daemon(MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_ERROR_LOG, 0,
                                            NULL, NULL, on_request, NULL,
                                            MHD_OPTION_LISTEN_SOCKET, fd,
                                            MHD_OPTION_CONNECTION_LIMIT, 64u,
                                            MHD_OPTION_CONNECTION_TIMEOUT, 10u,
                                            MHD_OPTION_END);
    if (!d) { ms_warn("exporter: cannot start the HTTP server on %s", shown); close(fd); return 1; }
    fprintf(stderr, "%s: exporter: serving http://%s/metrics (%s)\n", ms_prog, shown,
            geteuid() == 0 ? "every user's processes" : "this user's processes");
    int sig;
    while (sigwait(&stop, &sig) != 0)
        ;
    MHD_stop_daemon(d);
    close(fd);
    return 0;
}
