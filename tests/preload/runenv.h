/* runenv.h - the environment of a fixture a preload test starts. */
#ifndef RUNENV_H
#define RUNENV_H
#include <stdlib.h>
#include <string.h>

/* In a child about to run a fixture: none of the test runner's own MEMSHIM_*
 * settings (make test sends the runner's own leak report to a file), so
 * each fixture gets exactly the settings its test gives it. */
static inline void clear_memshim_env(void)
{
    extern char **environ;
    for (int again = 1; again;) {
        again = 0;
        for (char **e = environ; e && *e; e++) {
            if (strncmp(*e, "MEMSHIM_", 8) != 0 || strncmp(*e, "MS_TEST_BUILD=", 14) == 0) continue;
            char name[256];
            size_t len = strcspn(*e, "=");
            if (len >= sizeof name) continue;
            memcpy(name, *e, len);
            name[len] = 0;
            unsetenv(name);
            again = 1;
            break;
        }
    }
}

#endif
