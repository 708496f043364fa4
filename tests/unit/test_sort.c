/* test_sort.c - the one sort of the preloaded side (shim/sort.h): the same
 * order as qsort on every shape of input (random, sorted, reversed, equal
 * keys, organ pipe, a median-of-three killer that sends quicksort to its
 * heapsort), ties broken by the caller's rule, sizes around the insertion
 * sort's threshold, nothing lost or duplicated. */
#include <criterion/criterion.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

typedef struct { uint64_t key; int rank; uint32_t id; } el_t;   /* id: to find losses */

#define MS_SORT_NAME el_sort
#define MS_SORT_TYPE el_t
#define MS_SORT_BEFORE(x, y) ((x)->key < (y)->key || ((x)->key == (y)->key && (x)->rank > (y)->rank))
#include "sort.h"

#define MS_SORT_NAME u64_sort
#define MS_SORT_TYPE uint64_t
#define MS_SORT_BEFORE(x, y) (*(x) < *(y))
#include "sort.h"

static int el_cmp(const void *a, const void *b)
{
    const el_t *x = a, *y = b;
    if (x->key != y->key) return x->key < y->key ? -1 : 1;
    return y->rank - x->rank;
}

static uint64_t rng = 88172645463325252ull;
static uint64_t next(void) { rng ^= rng << 13; rng ^= rng >> 7; rng ^= rng << 17; return rng; }

enum { RANDOM, SORTED, REVERSED, EQUAL, FEW, PIPE, KILLER, SHAPES };

static void fill(el_t *a, size_t n, int shape)
{
    for (size_t i = 0; i < n; i++) {
        uint64_t k;
        switch (shape) {
        case RANDOM:   k = next(); break;
        case SORTED:   k = i; break;
        case REVERSED: k = n - i; break;
        case EQUAL:    k = 7; break;
        case FEW:      k = next() % 4; break;
        case PIPE:     k = i < n / 2 ? i : n - i; break;
        default:       /* median-of-3 killer (Musser): odd i -> i, even i -> after the middle */
            k = (i % 2) ? i : n / 2 + i / 2 + (n % 2 ? 1 : 0);
            if (i >= n / 2) k = 2 * (i - n / 2) + 1 + n;
            break;
        }
        a[i] = (el_t){ k, (int)(next() % 3), (uint32_t)i };
    }
}

/* Sorted as qsort sorts, with the same multiset of elements. */
static void check(size_t n, int shape)
{
    el_t *a = malloc((n + 1) * sizeof *a), *b = malloc((n + 1) * sizeof *b);
    cr_assert(a && b);
    fill(a, n, shape);
    memcpy(b, a, n * sizeof *a);
    el_sort(a, n);
    qsort(b, n, sizeof *b, el_cmp);
    for (size_t i = 0; i < n; i++) {
        cr_assert_eq(a[i].key, b[i].key, "n %zu shape %d: key at %zu", n, shape, i);
        cr_assert_eq(a[i].rank, b[i].rank, "n %zu shape %d: rank at %zu", n, shape, i);
    }
    unsigned char *seen = calloc(n + 1, 1);
    for (size_t i = 0; i < n; i++) {
        cr_assert(a[i].id < n && !seen[a[i].id], "n %zu shape %d: element %u lost or twice", n, shape, a[i].id);
        seen[a[i].id] = 1;
    }
    free(seen);
    free(a);
    free(b);
}

Test(sort, every_shape_at_every_size_as_qsort)
{
    static const size_t sizes[] = { 0, 1, 2, 3, 15, 16, 17, 18, 33, 100, 1000, 4097, 100000 };
    for (size_t s = 0; s < sizeof sizes / sizeof *sizes; s++)
        for (int shape = 0; shape < SHAPES; shape++) check(sizes[s], shape);
}

Test(sort, random_sizes_and_keys)
{
    for (int round = 0; round < 300; round++) check(next() % 3000, (int)(next() % SHAPES));
}

Test(sort, plain_words)
{
    size_t n = 50000;
    uint64_t *a = malloc(n * sizeof *a);
    for (size_t i = 0; i < n; i++) a[i] = next() % 1000;
    u64_sort(a, n);
    for (size_t i = 1; i < n; i++) cr_assert_leq(a[i - 1], a[i], "at %zu", i);
    free(a);
}
