/* test_messages.c - memshim's messages (out.c): every one counted, the
 * first MS_MSG_SHOWN of each kind written, the rest told at exit in one
 * line per kind; the counts in the statistics. */
#include <criterion/criterion.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <limits.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>
#include "shim.h"
#include "optenv.h"            /* said_by */

static void setup(void) { _ms_init(); _ms_messages_forget(); }
static void quiet_exit(void) { _ms_messages_forget(); }   /* no summary onto the terminal */
TestSuite(messages, .init = setup, .fini = quiet_exit);

static unsigned count(const char *s, const char *what)
{
    unsigned n = 0;
    for (const char *p = s; (p = strstr(p, what)); p += strlen(what)) n++;
    return n;
}

static void stats_are(uint64_t total, uint64_t not_shown)
{
    ms_msg_stat_t m;
    _ms_message_stats(&m);
    cr_expect_eq(m.total, total, "total %llu, expected %llu", (unsigned long long)m.total,
                 (unsigned long long)total);
    cr_expect_eq(m.not_shown, not_shown, "not shown %llu, expected %llu", (unsigned long long)m.not_shown,
                 (unsigned long long)not_shown);
}

static void two_kinds(void)
{
    for (int i = 0; i < 25; i++) _ms_message("unit: item %d of %s is %zu%% done", i, "a list", (size_t)50);
    for (int i = 0; i < 3; i++) _ms_message("unit: another kind %p", (void *)(uintptr_t)(0x1000 + i));
}

Test(messages, the_first_of_each_kind_are_written_the_rest_counted)
{
    char *s = said_by(two_kinds);
    cr_expect_eq(count(s, "memshim: unit: item "), MS_MSG_SHOWN, "%s", s);
    cr_expect_not_null(strstr(s, "memshim: unit: item 9 of a list is 50% done\n"), "%s", s);
    cr_expect_null(strstr(s, "item 10 "), "%s", s);
    cr_expect_eq(count(s, "memshim: unit: another kind 0x"), 3, "%s", s);
    cr_expect_eq(count(s, "\n"), MS_MSG_SHOWN + 3, "%s", s);
    stats_are(28, 25 - MS_MSG_SHOWN);
}

static void at_exit_twice(void)
{
    two_kinds();
    _ms_messages_at_exit();
    _ms_messages_at_exit();            /* nothing new: nothing said */
    _ms_message("unit: item %d of %s is %zu%% done", 1, "b", (size_t)1);
    _ms_messages_at_exit();            /* the one more since */
}

Test(messages, at_exit_one_line_per_kind_tells_what_was_not_shown_once)
{
    char *s = said_by(at_exit_twice);
    const char *line = "memshim: 15 more messages like \"unit: item ... of ... is ...% done\" not shown\n";
    cr_expect_eq(count(s, line), 1, "%s", s);
    cr_expect_eq(count(s, "memshim: 1 more message like \"unit: item ... of ... is ...% done\" not shown\n"),
                 1, "%s", s);
    cr_expect_eq(count(s, "more message"), 2, "the other kind had none hidden:\n%s", s);
    cr_expect_eq(count(s, "\n"), MS_MSG_SHOWN + 3 + 2, "%s", s);
    stats_are(29, 16);
}

static void nothing_hidden(void)
{
    for (int i = 0; i < MS_MSG_SHOWN; i++) _ms_message("unit: just enough %d", i);
    _ms_messages_at_exit();
}

Test(messages, no_summary_when_everything_was_shown)
{
    char *s = said_by(nothing_hidden);
    cr_expect_eq(count(s, "\n"), MS_MSG_SHOWN, "%s", s);
    cr_expect_null(strstr(s, "more message"), "%s", s);
    stats_are(MS_MSG_SHOWN, 0);
}

static void heap_errors(void)
{
    _ms_opt.on_error = MS_ON_ERROR_CONTINUE;
    static char block[16];
    for (int i = 0; i < 1000; i++) _ms_heap_error("unit(): double trouble", block);
    _ms_messages_at_exit();
}

Test(messages, heap_errors_are_messages_of_their_what)
{
    char *s = said_by(heap_errors);
    cr_expect_eq(count(s, "memshim: unit(): double trouble: 0x"), MS_MSG_SHOWN, "%s", s);
    cr_expect_eq(count(s, "memshim: 990 more messages like \"unit(): double trouble\" not shown\n"), 1, "%s", s);
    unsigned shown, total;
    _ms_heap_errors(&shown, &total);
    cr_expect_eq(total, 1000, "the report counts them all: %u", total);
    stats_are(1000, 1000 - MS_MSG_SHOWN);
}

/* More kinds than the table holds: the last ones share one slot, so they
 * are limited together, and every one is counted. */
Test(messages, kinds_past_the_table_share_one)
{
    static char kinds[300];
    unsigned passed = 0;
    for (unsigned i = 0; i < sizeof kinds; i++) passed += _ms_message_gate(&kinds[i]);
    ms_msg_stat_t m;
    _ms_message_stats(&m);
    cr_expect_eq(m.total, sizeof kinds);
    cr_expect_eq(passed, m.total - m.not_shown);
    cr_expect_eq(m.not_shown, sizeof kinds - 128 - MS_MSG_SHOWN, "128 kinds, then the shared one: %llu hidden",
                 (unsigned long long)m.not_shown);
}

/* The gate from many threads at once: every message counted, exactly
 * MS_MSG_SHOWN of the one kind let through. */
static unsigned passed_by_all;
static void *hammer(void *arg)
{
    unsigned n = 0;
    for (int i = 0; i < 20000; i++) n += _ms_message_gate("unit: from every thread");
    __atomic_add_fetch(&passed_by_all, n, __ATOMIC_RELAXED);
    return arg;
}

Test(messages, the_gate_counts_exactly_across_threads)
{
    pthread_t t[4];
    for (int i = 0; i < 4; i++) cr_assert_eq(pthread_create(&t[i], NULL, hammer, NULL), 0);
    for (int i = 0; i < 4; i++) pthread_join(t[i], NULL);
    cr_expect_eq(passed_by_all, MS_MSG_SHOWN);
    stats_are(80000, 80000 - MS_MSG_SHOWN);
}

/* The statistics carry the counts: the JSON's "messages", the table's line. */
static char *slurp(const char *path)
{
    static char buf[1 << 16];
    FILE *f = fopen(path, "r");
    cr_assert_not_null(f, "%s", path);
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    buf[n] = 0;
    fclose(f);
    return buf;
}

static void many(void)
{
    for (int i = 0; i < 42; i++) _ms_message("unit: %d", i);
}

Test(messages, the_statistics_show_the_counts)
{
    said_by(many);
    char dir[] = "/tmp/ms-msgstats-XXXXXX", path[128];
    cr_assert_not_null(mkdtemp(dir));
    snprintf(path, sizeof path, "%s/s.json", dir);
    _ms_stats_write(path);
    char *s = slurp(path);
    cr_expect_not_null(strstr(s, "\n \"messages\": {\"total\": 42, \"not_shown\": 32},\n"), "%s", s);
    unlink(path);
    snprintf(path, sizeof path, "%s/s.txt", dir);
    _ms_stats_write(path);
    s = slurp(path);
    cr_expect_not_null(strstr(s, "\nmessages: in all 42, not shown 32\n"), "%s", s);
    unlink(path);
    rmdir(dir);
}

/* Output buffers (out.c) go out in writes of whole lines of at most
 * PIPE_BUF bytes each (a longer line that the buffer holds whole, in one
 * write), so that the
 * reports of processes sharing one standard error never cut each other's
 * lines.  A SOCK_SEQPACKET socket keeps each write(2) a message of its own:
 * the test reads the writes as they were made. */
Test(out, writes_are_whole_lines_of_at_most_pipe_buf)
{
    int sv[2];
    cr_assert_eq(socketpair(AF_UNIX, SOCK_SEQPACKET, 0, sv), 0);
    int big = 1 << 20;
    setsockopt(sv[0], SOL_SOCKET, SO_SNDBUF, &big, sizeof big);
    setsockopt(sv[1], SOL_SOCKET, SO_RCVBUF, &big, sizeof big);
    static char mem[8192];
    ms_buf_t b;
    _ms_buf_init(&b, mem, sizeof mem, sv[0]);
    size_t sent = 0;
    for (unsigned i = 0; i < 400; i++) {        /* lines of 20 to ~250 bytes */
        _ms_bprintf(&b, "==4242==    by 0x%x: frame_%u (file_%u.c:%u)%*s\n", i * 7919, i, i % 13, i,
                    (int)(i * 37 % 200), "");
    }
    static char longline[6000];                 /* longer than PIPE_BUF, shorter than the buffer */
    memset(longline, 'x', sizeof longline - 1);
    _ms_bprintf(&b, "%s\n", longline);
    _ms_bprintf(&b, "==4242== LEAK SUMMARY:\n");
    _ms_buf_flush(&b);
    close(sv[0]);
    static char got[1 << 16];
    unsigned writes = 0, long_ones = 0;
    ssize_t n;
    while ((n = recv(sv[1], got, sizeof got, 0)) > 0) {
        writes++;
        sent += (size_t)n;
        cr_expect_eq(got[n - 1], '\n', "write %u of %zd bytes ends inside a line", writes, n);
        if ((size_t)n > PIPE_BUF) {
            long_ones++;
            cr_expect(memchr(got, '\n', (size_t)n - 1) == NULL, "a write of %zd bytes holds more than its long line", n);
        }
    }
    close(sv[1]);
    cr_expect_gt(writes, 5, "%u writes", writes);
    cr_expect_eq(long_ones, 1, "%u writes over PIPE_BUF (the long line alone)", long_ones);
    cr_expect_gt(sent, sizeof longline, "%zu bytes", sent);
}
