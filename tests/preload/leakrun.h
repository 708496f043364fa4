/* leakrun.h - run a fixture under LD_PRELOAD=libmemshim.so (or valgrind)
 * with extra environment, capture its output and exit status, and read the
 * figures of a leak report. */
#ifndef LEAKRUN_H
#define LEAKRUN_H

#include <criterion/criterion.h>
#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>
#include "runenv.h"

extern char **environ;

typedef struct {
    int   status;        /* as from waitpid */
    char *out, *err;     /* captured, NUL-terminated */
} run_t;


static const char *build_dir(void)
{
    const char *b = getenv("MS_TEST_BUILD");
    return b ? b : "build";
}

static char *path_in_build(const char *rel)
{
    static char buf[8][4096];
    static int k;
    char *p = buf[k++ & 7];
    snprintf(p, 4096, "%s/%s", build_dir(), rel);
    return p;
}

static inline char *slurp(const char *path)
{
    FILE *f = fopen(path, "r");
    if (!f) return NULL;
    size_t cap = 1 << 16, len = 0;
    char *s = malloc(cap);
    size_t r;
    while ((r = fread(s + len, 1, cap - 1 - len, f)) > 0) {
        len += r;
        if (len + 1 == cap) s = realloc(s, cap *= 2);
    }
    s[len] = 0;
    fclose(f);
    return s;
}

/* argv: NULL-terminated; env: NULL-terminated "K=V" added to ours, with
 * LD_PRELOAD set to the library unless `preload` is false; runs in `dir`
 * if given.  Times out (SIGKILL) after 120 s. */
static run_t run_with(bool preload, const char *dir, char *const argv[], const char *const env[])
{
    char outp[] = "/tmp/msleakoutXXXXXX", errp[] = "/tmp/msleakerrXXXXXX";
    int of = mkstemp(outp), ef = mkstemp(errp);
    cr_assert(of >= 0 && ef >= 0);
    pid_t pid = fork();
    cr_assert(pid >= 0);
    if (pid == 0) {
        dup2(of, 1);
        dup2(ef, 2);
        if (dir && chdir(dir) != 0) _exit(126);
        unsetenv("LD_PRELOAD");
        clear_memshim_env();
        for (const char *const *e = env; e && *e; e++) putenv((char *)*e);
        if (preload) setenv("LD_PRELOAD", path_in_build("libmemshim.so"), 1);
        /* ^C's signals at their default, as a shell's foreground job has
         * them, though the tests run in the background (where a shell
         * without job control started them ignored) */
        signal(SIGINT, SIG_DFL);
        signal(SIGQUIT, SIG_DFL);
        alarm(120);
        execvp(argv[0], argv);
        _exit(127);
    }
    run_t r;
    waitpid(pid, &r.status, 0);
    close(of);
    close(ef);
    r.out = slurp(outp);
    r.err = slurp(errp);
    unlink(outp);
    unlink(errp);
    return r;
}

static inline run_t run_fixture(const char *name, const char *const env[])
{
    char *argv[] = { path_in_build(name), path_in_build("fixtures/libleak_dl.so"), NULL };
    return run_with(true, NULL, argv, env);
}

/* From a JSON report: blocks and bytes of one kind of the summary. */
static inline bool json_kind(const char *json, const char *kind, long *blocks, long *bytes)
{
    char key[64];
    snprintf(key, sizeof key, "\"%s\": {\"blocks\": ", kind);
    const char *p = json ? strstr(json, key) : NULL;
    return p && sscanf(p + strlen(key), "%ld, \"bytes\": %ld", blocks, bytes) == 2;
}

/* From a text report (ours or valgrind's): "KIND: N bytes in M blocks". */
static inline bool text_kind(const char *text, const char *kind, long *blocks, long *bytes)
{
    char key[64];
    snprintf(key, sizeof key, "%s: ", kind);
    const char *p = text ? strstr(text, key) : NULL;
    if (!p) return false;
    p += strlen(key);
    char num[32];
    size_t k = 0;
    for (; *p && *p != ' ' && k < sizeof num - 1; p++)      /* valgrind writes 1,024 */
        if (*p != ',') num[k++] = *p;
    num[k] = 0;
    *bytes = atol(num);
    return sscanf(p, " bytes in %ld blocks", blocks) == 1;
}

static void run_free(run_t *r) { free(r->out); free(r->err); }

/* Run a fixture with MEMSHIM_REPORT pointing to a temporary file (JSON if
 * asked); return the report's text (NULL if none was written) and the run. */
static inline char *run_reporting(const char *name, bool json, run_t *r)
{
    char rep[] = "/tmp/msleakrepXXXXXX";
    close(mkstemp(rep));
    char env_rep[64];
    snprintf(env_rep, sizeof env_rep, "MEMSHIM_REPORT=%s", rep);
    const char *env[] = { env_rep, json ? "MEMSHIM_REPORT_FORMAT=json" : NULL, NULL };
    *r = run_fixture(name, env);
    char *text = slurp(rep);
    unlink(rep);
    return text;
}

#endif
