/* test_gzip.c - the gzip member the pprof writer makes (pprof.c, _ms_gzip):
 * zlib must read back exactly what went in, for inputs that exercise every
 * part of the encoder (no input, literals only, runs longer than a match,
 * matches at the window's far edge and just beyond it), and repeated data
 * must come out much smaller. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <zlib.h>
#include "profile.h"

static void setup(void) { _ms_init(); }
TestSuite(gzip, .init = setup);

/* _ms_gzip of d[0, n), read back whole: *len bytes (malloc'd). */
static uint8_t *gzip_of(const uint8_t *d, size_t n, size_t *len)
{
    FILE *f = tmpfile();
    cr_assert_not_null(f);
    static char mem[1 << 16];
    ms_buf_t b;
    _ms_buf_init(&b, mem, sizeof mem, fileno(f));
    _ms_gzip(&b, d, n);
    _ms_buf_flush(&b);
    off_t end = lseek(fileno(f), 0, SEEK_END);
    cr_assert_gt(end, 0);
    uint8_t *z = malloc((size_t)end);
    cr_assert_eq(pread(fileno(f), z, (size_t)end, 0), end);
    fclose(f);
    *len = (size_t)end;
    return z;
}

/* Round trip through zlib's gzip reader; the compressed size. */
static size_t round_trip(const uint8_t *d, size_t n)
{
    size_t zlen;
    uint8_t *z = gzip_of(d, n, &zlen);
    uint8_t *back = malloc(n + 1);
    z_stream s;
    memset(&s, 0, sizeof s);
    cr_assert_eq(inflateInit2(&s, 16 + MAX_WBITS), Z_OK);
    s.next_in = z;
    s.avail_in = (uInt)zlen;
    s.next_out = back;
    s.avail_out = (uInt)(n + 1);
    int rc = inflate(&s, Z_FINISH);
    cr_assert_eq(rc, Z_STREAM_END, "inflate: %d (%s) on %zu bytes", rc, s.msg ? s.msg : "", n);
    cr_assert_eq(s.total_out, n, "%lu bytes back of %zu", s.total_out, n);
    cr_assert_eq(s.avail_in, 0, "%u bytes after the member", s.avail_in);
    cr_assert(n == 0 || memcmp(back, d, n) == 0, "the bytes came back changed (%zu)", n);
    inflateEnd(&s);
    free(back);
    free(z);
    return zlen;
}

static uint64_t seed = 0x9e3779b97f4a7c15ull;
static uint8_t rnd(void)
{
    seed ^= seed << 13; seed ^= seed >> 7; seed ^= seed << 17;
    return (uint8_t)seed;
}

Test(gzip, short_inputs_and_runs)
{
    static uint8_t d[2000];
    round_trip(d, 0);
    for (size_t n = 1; n < 600; n++) {
        memset(d, 'a' + (int)(n % 3), n);
        round_trip(d, n);
    }
    for (size_t i = 0; i < sizeof d; i++) d[i] = (uint8_t)(i % 7 ? 'x' : i);  /* every byte value class */
    round_trip(d, sizeof d);
}

Test(gzip, incompressible_bytes_come_back)
{
    size_t n = 300000;
    uint8_t *d = malloc(n);
    for (size_t i = 0; i < n; i++) d[i] = rnd();
    size_t z = round_trip(d, n);
    cr_expect_lt(z, n + n / 8 + 64, "%zu bytes for %zu random ones", z, n);
    free(d);
}

/* A random block repeated: at a distance of exactly the window (32 KiB)
 * it is one long run of matches; a block longer than the window cannot be
 * matched against its copy, and must not be (a distance past 32 KiB is not
 * deflate). */
Test(gzip, matches_up_to_the_window_and_not_beyond)
{
    size_t n = 32768 * 4;
    uint8_t *d = malloc(n);
    for (size_t i = 0; i < 32768; i++) d[i] = rnd();
    for (size_t i = 32768; i < n; i++) d[i] = d[i - 32768];
    size_t z = round_trip(d, n);
    cr_expect_lt(z, 32768 + 32768 / 8 + 2000, "%zu bytes for 4 copies of 32 KiB", z);
    for (size_t i = 0; i < 40000; i++) d[i] = rnd();
    for (size_t i = 40000; i < n; i++) d[i] = d[i - 40000];
    round_trip(d, n);
    free(d);
}

/* What a profile looks like: the same few strings and small varints over
 * and over. */
Test(gzip, repeated_text_is_much_smaller)
{
    size_t n = 1 << 20, k = 0;
    uint8_t *d = malloc(n);
    static const char *const words[] = { "alloc_objects", "inuse_space", "/usr/lib/libc.so.6", "main",
                                         "PyObject_Malloc", "sqlite3Malloc" };
    while (k < n) {
        const char *w = words[rnd() % 6];
        size_t l = strlen(w);
        if (k + l + 2 > n) break;
        d[k++] = (uint8_t)(rnd() % 4);
        memcpy(d + k, w, l);
        k += l;
        d[k++] = (uint8_t)l;
    }
    size_t z = round_trip(d, k);
    cr_expect_lt(z, k / 4, "%zu bytes for %zu of repeated words", z, k);
    free(d);
}
