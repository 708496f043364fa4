/* sort.h - the one sort of the preloaded side, a template: define
 *
 *   MS_SORT_NAME            the function to make: static void NAME(TYPE *a, size_t n)
 *   MS_SORT_TYPE            the element type
 *   MS_SORT_BEFORE(x, y)    true when *x goes before *y (pointers to TYPE)
 *
 * then include this file (it undefines the three).  Not glibc's qsort: it
 * may allocate (through the program's heap, under memshim's locks), calls
 * its comparison through a pointer and moves elements with memcpy through
 * a scratch copy -- the C library's 10,000 function symbols took over a
 * millisecond of every report.  And not an insertion sort where the
 * number is the program's (its huge blocks, memshim's own ranges): quadratic.
 *
 * An introsort: quicksort (Hoare's partition around the median of three),
 * the smaller side first so the recursion stays under log2 n deep,
 * heapsort past 2 log2 n levels (no quadratic input), insertion sort
 * below 16 elements.  Not stable. */
#include <stddef.h>

#if !defined(MS_SORT_NAME) || !defined(MS_SORT_TYPE) || !defined(MS_SORT_BEFORE)
#error "sort.h: define MS_SORT_NAME, MS_SORT_TYPE and MS_SORT_BEFORE first"
#endif

#define MS_SORT_CAT2(a, b) a##b
#define MS_SORT_CAT(a, b)  MS_SORT_CAT2(a, b)
#define MS_SORT_FN(part)   MS_SORT_CAT(MS_SORT_NAME, part)

static inline void MS_SORT_FN(_swap)(MS_SORT_TYPE *x, MS_SORT_TYPE *y)
{
    MS_SORT_TYPE t = *x;
    *x = *y;
    *y = t;
}

static void MS_SORT_FN(_insertion)(MS_SORT_TYPE *a, size_t n)
{
    for (size_t i = 1; i < n; i++) {
        MS_SORT_TYPE x = a[i];
        size_t j = i;
        for (; j && MS_SORT_BEFORE(&x, &a[j - 1]); j--) a[j] = a[j - 1];
        a[j] = x;
    }
}

static void MS_SORT_FN(_sift)(MS_SORT_TYPE *a, size_t i, size_t n)
{
    for (;;) {
        size_t c = 2 * i + 1;
        if (c >= n) return;
        if (c + 1 < n && MS_SORT_BEFORE(&a[c], &a[c + 1])) c++;
        if (!MS_SORT_BEFORE(&a[i], &a[c])) return;
        MS_SORT_FN(_swap)(&a[i], &a[c]);
        i = c;
    }
}

static void MS_SORT_FN(_heap)(MS_SORT_TYPE *a, size_t n)
{
    for (size_t i = n / 2; i-- > 0;) MS_SORT_FN(_sift)(a, i, n);
    for (size_t k = n; k-- > 1;) {
        MS_SORT_FN(_swap)(&a[0], &a[k]);
        MS_SORT_FN(_sift)(a, 0, k);
    }
}

static void MS_SORT_FN(_intro)(MS_SORT_TYPE *a, size_t n, unsigned depth)
{
    while (n > 16) {
        if (!depth--) {
            MS_SORT_FN(_heap)(a, n);
            return;
        }
        size_t m = n / 2;                                   /* the median of three to a[m] */
        if (MS_SORT_BEFORE(&a[m], &a[0])) MS_SORT_FN(_swap)(&a[m], &a[0]);
        if (MS_SORT_BEFORE(&a[n - 1], &a[m])) {
            MS_SORT_FN(_swap)(&a[n - 1], &a[m]);
            if (MS_SORT_BEFORE(&a[m], &a[0])) MS_SORT_FN(_swap)(&a[m], &a[0]);
        }
        MS_SORT_TYPE pivot = a[m];
        size_t i = 0, j = n - 1;                            /* a[0] <= pivot <= a[n - 1] */
        for (;;) {
            while (MS_SORT_BEFORE(&a[i], &pivot)) i++;
            while (MS_SORT_BEFORE(&pivot, &a[j])) j--;
            if (i >= j) break;
            MS_SORT_FN(_swap)(&a[i], &a[j]);
            i++;
            j--;
        }
        size_t left = j + 1;                                /* [0, left) <= pivot <= [left, n) */
        if (left < n - left) {
            MS_SORT_FN(_intro)(a, left, depth);
            a += left;
            n -= left;
        } else {
            MS_SORT_FN(_intro)(a + left, n - left, depth);
            n = left;
        }
    }
    MS_SORT_FN(_insertion)(a, n);
}

static void MS_SORT_NAME(MS_SORT_TYPE *a, size_t n)
{
    unsigned depth = 0;
    for (size_t k = n; k > 1; k >>= 1) depth += 2;
    MS_SORT_FN(_intro)(a, n, depth);
}

#undef MS_SORT_FN
#undef MS_SORT_CAT
#undef MS_SORT_CAT2
#undef MS_SORT_NAME
#undef MS_SORT_TYPE
#undef MS_SORT_BEFORE
