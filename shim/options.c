/* options.c - MEMSHIM_* settings, read once from the environment.  The only
 * reader of `environ`.  A malformed value earns one warning naming the
 * variable and the accepted form; the default stays. */
#include <string.h>
#include <unistd.h>
#include "shim.h"

extern char **environ;

ms_options_t _ms_opt = {
    .stats = NULL,
    .verbose = 0,
    .on_error = MS_ON_ERROR_ABORT,
};

const char *_ms_getenv(const char *name)
{
    size_t len = strlen(name);
    if (!environ) return NULL;
    for (char **e = environ; *e; e++)
        if (strncmp(*e, name, len) == 0 && (*e)[len] == '=') return *e + len + 1;
    return NULL;
}

/* "1", "0", "yes", "no", "true", "false", "on", "off". */
static int parse_bool(const char *name, const char *v, int dflt)
{
    static const char *yes[] = { "1", "yes", "true", "on" }, *no[] = { "0", "no", "false", "off" };
    for (unsigned i = 0; i < 4; i++) {
        if (strcasecmp(v, yes[i]) == 0) return 1;
        if (strcasecmp(v, no[i]) == 0) return 0;
    }
    _ms_message("%s=%s: expected 1 or 0 (yes/no, true/false, on/off); using %d", name, v, dflt);
    return dflt;
}

void _ms_options_load(void)
{
    _ms_options_load_reporting();
    const char *v;
    if ((v = _ms_getenv("MEMSHIM_VERBOSE"))) _ms_opt.verbose = parse_bool("MEMSHIM_VERBOSE", v, 0);
    if ((v = _ms_getenv("MEMSHIM_ON_ERROR"))) {
        if (strcmp(v, "abort") == 0) _ms_opt.on_error = MS_ON_ERROR_ABORT;
        else if (strcmp(v, "continue") == 0) _ms_opt.on_error = MS_ON_ERROR_CONTINUE;
        else _ms_message("MEMSHIM_ON_ERROR=%s: expected abort or continue; using abort", v);
    }
    if ((v = _ms_getenv("MEMSHIM_STATS")) && *v) {
        if (_ms_os_secure() && strcmp(v, "stderr") != 0)
            _ms_message("MEMSHIM_STATS ignored: a file name is not taken in a setuid/setgid program");
        else
            _ms_opt.stats = v;
    }
}
