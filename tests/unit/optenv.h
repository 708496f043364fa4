/* optenv.h - load memshim's options with only the given variables in the
 * environment (swapped in, so nothing is allocated) and return what memshim
 * said on stderr meanwhile.  For the unit tests of options.c's table. */
#ifndef MS_TEST_OPTENV_H
#define MS_TEST_OPTENV_H
#include <criterion/criterion.h>
#include <stdlib.h>
#include <unistd.h>
#include "shim.h"

extern char **environ;

static inline char *load_with(char **vars)
{
    static char out[4096];
    char **old_env = environ;
    char path[] = "/tmp/ms-opt-XXXXXX";
    int fd = mkstemp(path);
    cr_assert_geq(fd, 0);
    int saved = dup(2);
    dup2(fd, 2);
    _ms_out_retake_stderr();     /* memshim writes to stderr as it was: this file now */
    environ = vars;
    _ms_options_load();
    environ = old_env;
    dup2(saved, 2);
    close(saved);
    _ms_out_retake_stderr();
    ssize_t n = pread(fd, out, sizeof out - 1, 0);
    out[n > 0 ? n : 0] = 0;
    close(fd);
    unlink(path);
    return out;
}
#endif
