/* options.c - MEMSHIM_* settings, read once from the environment.  The only
 * reader of `environ`, and only at start-up: every value kept is copied.  A malformed value earns one warning naming the
 * variable and the accepted form; the default stays. */
#include <signal.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>
#include "shim.h"

extern char **environ;

ms_options_t _ms_opt = {
    .stats = NULL,
    .verbose = 0,
    .on_error = MS_ON_ERROR_ABORT,
    .track = 1,
    .stack_depth = 16,
    .show = (1u << MS_KIND_DEFINITE) | (1u << MS_KIND_INDIRECT) | (1u << MS_KIND_POSSIBLE),
    .exitcode = -1,
    .why_depth = 8,
};

const char *_ms_getenv(const char *name)
{
    size_t len = strlen(name);
    if (!environ) return NULL;
    for (char **e = environ; *e; e++)
        if (strncmp(*e, name, len) == 0 && (*e)[len] == '=') return *e + len + 1;
    return NULL;
}

/* ---- value parsers, shared with stats.c's options ------------------------- */

/* A decimal number in [lo, hi], nothing else. */
bool _ms_parse_uint(const char *v, uint64_t lo, uint64_t hi, uint64_t *out)
{
    uint64_t x = 0;
    if (!*v) return false;
    for (const char *s = v; *s; s++) {
        if (*s < '0' || *s > '9' || x > hi) return false;
        x = x * 10 + (uint64_t)(*s - '0');
    }
    if (x < lo || x > hi) return false;
    *out = x;
    return true;
}

/* A value as messages show it: at most 64 characters, then "..." and its
 * length, so a malformed 100 KB value makes one readable line. */
const char *_ms_value_shown(const char *v, char *buf, size_t cap)
{
    size_t n = strlen(v);
    if (n <= 64 || cap < 96) return v;
    ms_buf_t b;
    _ms_buf_init(&b, buf, cap - 1, -1);
    memcpy(buf, v, 64);
    b.len = 64;
    _ms_bprintf(&b, "... (%zu bytes)", n);
    buf[b.len] = 0;
    return buf;
}

/* "1", "0", "yes", "no", "true", "false", "on", "off". */
int _ms_parse_bool(const char *name, const char *v, int dflt)
{
    static const char *yes[] = { "1", "yes", "true", "on" }, *no[] = { "0", "no", "false", "off" };
    for (unsigned i = 0; i < 4; i++) {
        if (strcasecmp(v, yes[i]) == 0) return 1;
        if (strcasecmp(v, no[i]) == 0) return 0;
    }
    char shown[128];
    _ms_message("%s=%s: expected 1 or 0 (yes/no, true/false, on/off); using %d", name,
                _ms_value_shown(v, shown, sizeof shown), dflt);
    return dflt;
}

/* A signal for MEMSHIM_STATS_SIGNAL and MEMSHIM_REPORT_SIGNAL: SIGUSR1, USR2,
 * SIGHUP, SIGRTMIN+3, 12...; 0 if v names none.
 * Only signals whose default action a program can spare are accepted. */
int _ms_parse_signal(const char *v)
{
    static const struct { const char *name; int sig; } names[] = {
        { "USR1", SIGUSR1 }, { "USR2", SIGUSR2 }, { "HUP", SIGHUP }, { "WINCH", SIGWINCH },
        { "URG", SIGURG }, { "PWR", SIGPWR }, { "PROF", SIGPROF }, { "VTALRM", SIGVTALRM },
    };
    const char *s = strncasecmp(v, "SIG", 3) == 0 ? v + 3 : v;
    uint64_t n;
    if (_ms_parse_uint(s, 1, 64, &n)) {
        for (unsigned i = 0; i < sizeof names / sizeof names[0]; i++)
            if ((int)n == names[i].sig) return (int)n;
        return (int)n >= SIGRTMIN && (int)n <= SIGRTMAX ? (int)n : 0;
    }
    for (unsigned i = 0; i < sizeof names / sizeof names[0]; i++)
        if (strcasecmp(s, names[i].name) == 0) return names[i].sig;
    if (strncasecmp(s, "RTMIN", 5) == 0) {
        if (!s[5]) return SIGRTMIN;
        if (s[5] == '+' && _ms_parse_uint(s + 6, 0, 64, &n) && SIGRTMIN + (int)n <= SIGRTMAX)
            return SIGRTMIN + (int)n;
    }
    return 0;
}

/* A decimal number in [lo, hi], with an optional k/m/g suffix when `scaled`. */
static bool parse_num(const char *name, const char *v, uint64_t lo, uint64_t hi, bool scaled,
                      uint64_t *out, const char *form)
{
    uint64_t x = 0;
    const char *p = v;
    if (*p < '0' || *p > '9') goto bad;
    while (*p >= '0' && *p <= '9') {
        if (x > (UINT64_MAX - 9) / 10) goto bad;
        x = x * 10 + (uint64_t)(*p++ - '0');
    }
    if (scaled && *p) {
        unsigned sh = (*p == 'k' || *p == 'K') ? 10 : (*p == 'm' || *p == 'M') ? 20
                    : (*p == 'g' || *p == 'G') ? 30 : 0;
        if (!sh || x > (UINT64_MAX >> sh)) goto bad;
        x <<= sh;
        p++;
    }
    if (*p || x < lo || x > hi) goto bad;
    *out = x;
    return true;
bad:;
    char shown[128];
    _ms_message("%s=%s: expected %s; using the default", name, _ms_value_shown(v, shown, sizeof shown), form);
    return false;
}

/* MEMSHIM_SHOW: a comma list of definite, indirect, possible, reachable, or all. */
static void parse_show(const char *v)
{
    static const char *names[MS_NKINDS] = { "definite", "indirect", "possible", "reachable" };
    unsigned bits = 0;
    const char *p = v;
    while (*p) {
        const char *e = strchr(p, ',');
        size_t len = e ? (size_t)(e - p) : strlen(p);
        unsigned k;
        if (len == 3 && strncmp(p, "all", 3) == 0) bits = (1u << MS_NKINDS) - 1;
        else if (len == 4 && strncmp(p, "none", 4) == 0) ;
        else {
            for (k = 0; k < MS_NKINDS; k++)
                if (strlen(names[k]) == len && strncmp(p, names[k], len) == 0) break;
            if (k == MS_NKINDS) {
                char shown[128];
                _ms_message("MEMSHIM_SHOW=%s: expected a comma list of definite, indirect, "
                            "possible, reachable, or all/none; using definite,indirect,possible",
                            _ms_value_shown(v, shown, sizeof shown));
                return;
            }
            bits |= 1u << k;
        }
        p += len;
        if (*p == ',') p++;
    }
    _ms_opt.show = bits;
}

/* A file name kept from the environment: copied into buf now (a program
 * may overwrite its environment, as setproctitle does, before memshim
 * needs the name at exit) and made absolute against the working directory
 * at start-up, so a later chdir() does not move it.  "stderr" is kept as
 * is.  NULL, after a message, if it does not fit. */
const char *_ms_keep_path(const char *var, const char *v, char *buf, size_t cap)
{
    size_t len = 0, vlen = strlen(v);
    if (v[0] != '/' && strcmp(v, "stderr") != 0) {
        if (!getcwd(buf, cap - 2)) {
            _ms_message("%s=%s: cannot resolve the working directory; ignored", var, v);
            return NULL;
        }
        len = strlen(buf);
        buf[len++] = '/';
    }
    if (len + vlen >= cap) {
        _ms_message("%s: name longer than %zu bytes; ignored", var, cap - 1);
        return NULL;
    }
    memcpy(buf + len, v, vlen + 1);
    return buf;
}

void _ms_options_load(void)
{
    _ms_options_load_reporting();
    const char *v;
    char shown[128];
    if ((v = _ms_getenv("MEMSHIM_VERBOSE"))) _ms_opt.verbose = _ms_parse_bool("MEMSHIM_VERBOSE", v, 0);
    if ((v = _ms_getenv("MEMSHIM_ON_ERROR"))) {
        if (strcmp(v, "abort") == 0) _ms_opt.on_error = MS_ON_ERROR_ABORT;
        else if (strcmp(v, "continue") == 0) _ms_opt.on_error = MS_ON_ERROR_CONTINUE;
        else _ms_message("MEMSHIM_ON_ERROR=%s: expected abort or continue; using abort",
                         _ms_value_shown(v, shown, sizeof shown));
    }
    uint64_t n;
    if ((v = _ms_getenv("MEMSHIM_TRACK"))) _ms_opt.track = _ms_parse_bool("MEMSHIM_TRACK", v, 1);
    if ((v = _ms_getenv("MEMSHIM_GEN_SUPPRESSIONS")))
        _ms_opt.gen_suppressions = _ms_parse_bool("MEMSHIM_GEN_SUPPRESSIONS", v, 0);
    if ((v = _ms_getenv("MEMSHIM_REPORT_FORMAT"))) {
        if (strcmp(v, "json") == 0) _ms_opt.json = 1;
        else if (strcmp(v, "text") == 0) _ms_opt.json = 0;
        else _ms_message("MEMSHIM_REPORT_FORMAT=%s: expected text or json; using text",
                         _ms_value_shown(v, shown, sizeof shown));
    }
    if ((v = _ms_getenv("MEMSHIM_STACK_DEPTH")) &&
        parse_num("MEMSHIM_STACK_DEPTH", v, 1, MS_MAX_STACK, false, &n, "a number of frames from 1 to 64"))
        _ms_opt.stack_depth = (unsigned)n;
    if ((v = _ms_getenv("MEMSHIM_SHOW"))) parse_show(v);
    if ((v = _ms_getenv("MEMSHIM_WHY_DEPTH")) &&
        parse_num("MEMSHIM_WHY_DEPTH", v, 0, 1000, false, &n,
                  "a number of blocks from 0 (no retention paths) to 1000"))
        _ms_opt.why_depth = (unsigned)n;
    if ((v = _ms_getenv("MEMSHIM_EXITCODE")) &&
        parse_num("MEMSHIM_EXITCODE", v, 0, 255, false, &n, "an exit status from 0 to 255"))
        _ms_opt.exitcode = (int)n;
    if ((v = _ms_getenv("MEMSHIM_SAMPLE")) &&
        parse_num("MEMSHIM_SAMPLE", v, 0, (uint64_t)1 << 40, true, &n,
                  "a mean sampling interval in bytes, e.g. 524288 or 512k (0 = every allocation)"))
        _ms_opt.sample = n;
    if ((v = _ms_getenv("MEMSHIM_REPORT_SIGNAL")) && *v && !(_ms_opt.report_signal = _ms_parse_signal(v)))
        _ms_message("MEMSHIM_REPORT_SIGNAL=%s: expected a signal name or number such as "
                    "SIGUSR1, USR2, SIGHUP or SIGRTMIN+2; ignored", _ms_value_shown(v, shown, sizeof shown));
    bool secure = _ms_os_secure();
    if ((v = _ms_getenv("MEMSHIM_REPORT")) && *v) {
        if (secure) _ms_message("MEMSHIM_REPORT ignored: file names are not taken in a setuid/setgid program");
        else if (strcmp(v, "stderr") != 0 &&
                 !_ms_keep_path("MEMSHIM_REPORT", v, _ms_opt.report, sizeof _ms_opt.report))
            _ms_opt.report[0] = 0;                      /* stderr */
    }
    if ((v = _ms_getenv("MEMSHIM_SUPPRESS")) && *v) {
        if (secure) _ms_message("MEMSHIM_SUPPRESS ignored: file names are not taken in a setuid/setgid program");
        else {
            static char suppress[4096];
            _ms_opt.suppress = _ms_keep_path("MEMSHIM_SUPPRESS", v, suppress, sizeof suppress);
        }
    }
    /* ---- heap profile (issue 13): MEMSHIM_PROFILE, MEMSHIM_PROFILE_SIGNAL ---- */
    if ((v = _ms_getenv("MEMSHIM_PROFILE")) && *v) {
        if (secure && strcmp(v, "stderr") != 0)
            _ms_message("MEMSHIM_PROFILE ignored: a file name is not taken in a setuid/setgid program");
        else if (!_ms_keep_path("MEMSHIM_PROFILE", v, _ms_opt.profile, sizeof _ms_opt.profile))
            _ms_opt.profile[0] = 0;
    }
    if ((v = _ms_getenv("MEMSHIM_PROFILE_SIGNAL")) && *v && !(_ms_opt.profile_signal = _ms_parse_signal(v)))
        _ms_message("MEMSHIM_PROFILE_SIGNAL=%s: expected a signal name or number such as "
                    "SIGUSR1, USR2, SIGHUP or SIGRTMIN+2; ignored", _ms_value_shown(v, shown, sizeof shown));
    if (_ms_opt.profile_signal && !_ms_opt.profile[0])
        _ms_message("MEMSHIM_PROFILE_SIGNAL without MEMSHIM_PROFILE: profiles go to stderr");
    /* ---- end of the heap profile's variables ---- */
    if ((v = _ms_getenv("MEMSHIM_STATS")) && *v) {
        if (_ms_os_secure() && strcmp(v, "stderr") != 0)
            _ms_message("MEMSHIM_STATS ignored: a file name is not taken in a setuid/setgid program");
        else {
            static char stats[4096];
            _ms_opt.stats = _ms_keep_path("MEMSHIM_STATS", v, stats, sizeof stats);
        }
    }
}
