/* optenv.h - what memshim says on stderr while a function runs (captured
 * in a file), and its options loaded with only the given variables in the
 * environment (swapped in, so nothing is allocated).  For the unit tests of
 * options.c's table and of out.c's messages. */
#ifndef MS_TEST_OPTENV_H
#define MS_TEST_OPTENV_H
#include <criterion/criterion.h>
#include <stdlib.h>
#include <unistd.h>
#include "shim.h"

extern char **environ;

static inline char *said_by(void (*fn)(void))
{
    static char out[1 << 16];
    char path[] = "/tmp/ms-opt-XXXXXX";
    int fd = mkstemp(path);
    cr_assert_geq(fd, 0);
    int saved = dup(2);
    dup2(fd, 2);
    _ms_out_retake_stderr();     /* memshim writes to stderr as it was: this file now */
    fn();
    dup2(saved, 2);
    close(saved);
    _ms_out_retake_stderr();
    ssize_t n = pread(fd, out, sizeof out - 1, 0);
    out[n > 0 ? n : 0] = 0;
    close(fd);
    unlink(path);
    return out;
}

static char **optenv_vars;
static inline void optenv_load(void)
{
    char **old_env = environ;
    _ms_messages_forget();       /* every warning written, however many loads came before */
    environ = optenv_vars;
    _ms_options_load();
    environ = old_env;
}

static inline char *load_with(char **vars)
{
    optenv_vars = vars;
    return said_by(optenv_load);
}
#endif
