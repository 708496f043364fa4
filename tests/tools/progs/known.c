/* known.c - allocations known exactly: 77 blocks of 20000 bytes (class
 * 20480, which nothing else in this program uses) and 3 huge blocks of
 * 1,000,000 bytes (1,003,520 with page rounding), all kept until exit.
 *   known            exit at once (MEMSHIM_STATS is written at exit)
 *   known hold FILE  create FILE once allocated, then wait to be killed
 *   known closeall FILE  the same, after closing every descriptor above 2
 *                    as a daemon does at its start (memshim's live region
 *                    with them) */
#define _GNU_SOURCE
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static void *keep[80];

int main(int argc, char **argv)
{
    for (int i = 0; i < 77; i++) { keep[i] = malloc(20000); memset(keep[i], 1, 20000); }
    for (int i = 0; i < 3; i++) { keep[77 + i] = malloc(1000000); memset(keep[77 + i], 2, 1000000); }
    if (argc == 3 && strcmp(argv[1], "closeall") == 0) {
        usleep(200 * 1000);
        close_range(3, ~0U, 0);
    }
    if (argc == 3 && (strcmp(argv[1], "hold") == 0 || strcmp(argv[1], "closeall") == 0)) {
        int fd = open(argv[2], O_WRONLY | O_CREAT | O_TRUNC, 0644);
        if (fd >= 0) close(fd);
        for (;;) pause();
    }
    return 0;
}
