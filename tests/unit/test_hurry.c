/* test_hurry.c - _ms_os_hurry / _ms_os_unhurry (prim_linux.c): the calling
 * thread's nice value lowered to -20 where the process may, and given back
 * exactly; where it may not, nothing changes and the caller is told so.
 * errno is kept either way.  Another thread's value is never touched. */
#include <criterion/criterion.h>
#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <pwd.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>
#include "../../shim/shim.h"

static int nice_now(void)
{
    errno = 0;
    int v = getpriority(PRIO_PROCESS, 0);
    cr_assert_eq(errno, 0);
    return v;
}

static pthread_barrier_t step;
static void *other_thread(void *arg)
{
    int *seen = arg;
    pthread_barrier_wait(&step);        /* the main thread has hurried */
    *seen = nice_now();
    return NULL;
}

Test(hurry, lowers_the_calling_thread_alone_and_gives_its_value_back)
{
    if (geteuid() != 0) cr_skip_test("needs root (CAP_SYS_NICE)");
    cr_assert_eq(setpriority(PRIO_PROCESS, 0, 5), 0);
    int seen = 99;
    pthread_t t;
    pthread_barrier_init(&step, NULL, 2);
    pthread_create(&t, NULL, other_thread, &seen);   /* made before: nice 5 */
    errno = 1234;
    int was = _ms_os_hurry();
    cr_expect_eq(errno, 1234, "errno kept");
    cr_expect_eq(was, 5, "the value to give back");
    cr_expect_eq(nice_now(), -20);
    pthread_barrier_wait(&step);
    pthread_join(t, NULL);
    cr_expect_eq(seen, 5, "another thread's value is its own");
    errno = 1234;
    _ms_os_unhurry(was);
    cr_expect_eq(errno, 1234, "errno kept");
    cr_expect_eq(nice_now(), 5, "given back");
    setpriority(PRIO_PROCESS, 0, 0);
}

/* A process that may not lower its nice value: no change, INT_MIN, and
 * unhurry(INT_MIN) does nothing. */
Test(hurry, does_nothing_without_the_privilege)
{
    pid_t pid = fork();
    cr_assert_neq(pid, -1);
    if (pid == 0) {
        struct rlimit rl = { 0, 0 };
        setrlimit(RLIMIT_NICE, &rl);
        if (geteuid() == 0) {
            struct passwd *pw = getpwnam("nobody");
            if (!pw || setgid(pw->pw_gid) != 0 || setuid(pw->pw_uid) != 0) _exit(10);
        }
        /* above the value we run at (a run under `nice -n 5` may not go
         * down to 3 without the privilege this child gives up) */
        errno = 0;
        int now = getpriority(PRIO_PROCESS, 0), v = now < 19 ? now + 1 : 19;
        if (errno != 0 || setpriority(PRIO_PROCESS, 0, v) != 0) _exit(11);
        int was = _ms_os_hurry();
        if (was != INT_MIN) _exit(12);
        if (getpriority(PRIO_PROCESS, 0) != v) _exit(13);
        _ms_os_unhurry(was);
        if (getpriority(PRIO_PROCESS, 0) != v) _exit(14);
        _exit(0);
    }
    int st;
    waitpid(pid, &st, 0);
    cr_expect(WIFEXITED(st) && WEXITSTATUS(st) == 0, "child status %d (10: no nobody user, 11: cannot raise its nice value, "
              "12: hurried, 13/14: value changed)", WIFEXITED(st) ? WEXITSTATUS(st) : -1);
}
