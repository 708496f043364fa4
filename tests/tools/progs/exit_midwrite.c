/* exit_midwrite.c - a program that ends with _exit(2) at a time of its
 * choosing while memshim's thread may be writing an interval profile.
 *
 *   exit_midwrite US    4,900 blocks from 4,900 stacks (two recursions of
 *                       0 to 69 calls each: a profile of them takes a while
 *                       to write), then sleeps US microseconds and _exits */
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

static void *keep[4900];
static int kept;
__attribute__((noinline)) static void inner(int b)
{
    if (b) inner(b - 1);
    else keep[kept++] = malloc(32);
    __asm__ volatile("");                   /* not a tail call: a frame each */
}
__attribute__((noinline)) static void outer(int a, int b)
{
    if (a) outer(a - 1, b);
    else inner(b);
    __asm__ volatile("");
}

int main(int argc, char **argv)
{
    long us = argc > 1 ? atol(argv[1]) : 0;
    for (int a = 0; a < 70; a++)
        for (int b = 0; b < 70; b++) outer(a, b);
    struct timespec t = { us / 1000000, (us % 1000000) * 1000 };
    nanosleep(&t, NULL);
    _exit(0);
}
