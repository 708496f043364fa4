/* fakelive.c - a process that publishes a hostile live region: a memfd
 * named as memshim names its own ("memshim-live.PID"), without memshim, for
 * the exporter's robustness tests (tests/tools/export.sh).
 *   fakelive fuzz SEED MS   rewrite the region with garbage for MS ms, from
 *                           a valid region mutated at random: random bytes,
 *                           extreme fields, odd sequence numbers, out of
 *                           order classes, a program name of quotes,
 *                           backslashes, newlines and bytes that are not
 *                           UTF-8, truncated and oversized files; then exit
 *   fakelive name READY     a valid region whose program is
 *                           /x/a"b\c<newline>d<0xff>e; create READY, wait
 *   fakelive title READY    a valid region whose program is a server's
 *                           title over its arguments, "nginx: master
 *                           process /usr/sbin/nginx"
 *   fakelive stale READY    a valid region last refreshed an hour ago
 *   fakelive classes READY  a valid region with two classes out of order */
#define _GNU_SOURCE
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <fcntl.h>
#include <unistd.h>
#include "live.h"

static ms_live_t r;
static int fd;

static uint64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static void valid(void)
{
    memset(&r, 0, sizeof r);
    r.magic = MS_LIVE_MAGIC;
    r.version = MS_LIVE_VERSION;
    r.size = sizeof r;
    r.pid = (int32_t)getpid();
    r.nclasses = 92;
    r.interval_ms = 100;
    r.updates = 1;
    r.start_unix_ms = r.updated_unix_ms = now_ms();
    strcpy(r.program, "fakelive");
    r.rss = 12345;
    for (unsigned c = 0; c < r.nclasses; c++) {
        r.cls[c].size = 16 * (c + 1);
        r.cls[c].pools = c & 1;
        r.cls[c].in_use = c;
    }
}

static void publish(void)
{
    if (ftruncate(fd, sizeof r) == 0 && pwrite(fd, &r, sizeof r, 0) != (ssize_t)sizeof r) exit(3);
}

static void mutate(void)
{
    unsigned char *b = (unsigned char *)&r;
    uint64_t *w = (uint64_t *)&r;
    size_t nw = sizeof r / 8;
    static const char nasty[] = "\"\\\n\xff\xc0\xaf\xed\xa0\x80\xf4\x90\x80\x80{}=,# \x01\x7f/";
    switch (rand() % 10) {
    case 0: for (size_t i = 0; i < sizeof r; i++) b[i] = (unsigned char)rand(); break;
    case 1: for (int i = 0; i < 50; i++) b[(size_t)rand() % sizeof r] = (unsigned char)rand(); break;
    case 2: w[(size_t)rand() % nw] = rand() & 1 ? UINT64_MAX : 0; break;
    case 3: r.seq |= 1; break;
    case 4: r.nclasses = (uint32_t)rand(); break;
    case 5: r.cls[rand() % 92].size = (uint64_t)rand(); break;
    case 6: for (size_t i = 0; i < sizeof r.program; i++) r.program[i] = nasty[(size_t)rand() % (sizeof nasty - 1)]; break;
    case 7: r.updated_unix_ms = (uint64_t)rand() * (uint64_t)rand(); break;
    case 8: r.interval_ms = (uint64_t)rand() % 20; break;
    case 9: r.pid = rand(); break;
    }
}

int main(int argc, char **argv)
{
    char name[64];
    snprintf(name, sizeof name, "%s%d", MS_LIVE_NAME, (int)getpid());
    fd = memfd_create(name, MFD_CLOEXEC);
    if (fd < 0 || argc != 3 + (strcmp(argv[1], "fuzz") == 0)) return 2;
    valid();
    if (strcmp(argv[1], "fuzz") == 0) {
        srand((unsigned)atoi(argv[2]));
        uint64_t end = now_ms() + (uint64_t)atoi(argv[3]);
        while (now_ms() < end) {
            valid();
            for (int k = rand() % 4; k > 0; k--) mutate();
            publish();
            if (rand() % 8 == 0 && ftruncate(fd, (off_t)((unsigned)rand() % (2 * sizeof r))) != 0) return 3;
            struct timespec ts = { 0, 200000 };
            nanosleep(&ts, NULL);
        }
        return 0;
    }
    if (strcmp(argv[1], "name") == 0) strcpy(r.program, "/x/a\"b\\c\nd\xff" "e more args");
    else if (strcmp(argv[1], "title") == 0) strcpy(r.program, "nginx: master process /usr/sbin/nginx");
    else if (strcmp(argv[1], "stale") == 0) r.updated_unix_ms -= 3600 * 1000;
    else if (strcmp(argv[1], "classes") == 0) r.cls[10].size = r.cls[9].size;
    else return 2;
    r.interval_ms = 60000;              /* never stale while the test runs (but "stale") */
    publish();
    int rfd = open(argv[2], O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (rfd >= 0) close(rfd);
    for (;;) pause();
}
