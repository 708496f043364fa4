/* test_check.c - the debug tier's heap walk (shim/check.c): silent on a
 * sound heap, an abort naming the broken invariant otherwise. */
#include <criterion/criterion.h>
#include <criterion/redirect.h>
#include <signal.h>
#include <stdlib.h>
#include "shim.h"

static void *keep[300];

static void churn(void)
{
    for (int i = 0; i < 300; i++) keep[i] = malloc((size_t)(16 + (i % 7) * 40));
    for (int i = 0; i < 300; i += 3) free(keep[i]);
}

/* The aborting cases' one line goes to Criterion's pipe, not the terminal. */
static void quiet(void)
{
    cr_redirect_stderr();
    _ms_out_retake_stderr();
}

static void check(void)
{
    _ms_lock_all();
    _ms_heap_check_locked();
    _ms_unlock_all(false);
}

Test(check, a_sound_heap_passes)
{
    churn();
    check();
    void *big = malloc(1 << 20);
    free(big);
    check();
}

Test(check, a_free_list_that_disagrees_with_the_counts_aborts, .signal = SIGABRT, .init = quiet)
{
    churn();
    ms_segment_t *s = _ms_segment_of(keep[1]);
    cr_assert_not_null(s);
    ms_page_t *pg = _ms_page_of(s, keep[1]);
    _ms_lock_all();
    pg->used--;                  /* one block back, but not on the list */
    _ms_heap_check_locked();
}

Test(check, a_dirty_page_in_use_aborts, .signal = SIGABRT, .init = quiet)
{
    churn();
    ms_segment_t *s = _ms_segment_of(keep[1]);
    _ms_lock_all();
    s->dirty_mask |= (uint64_t)1 << _ms_page_index(s, keep[1]);
    _ms_heap_check_locked();
}

Test(check, an_always_on_assertion_names_itself, .signal = SIGABRT, .init = quiet)
{
    ms_assert(keep[0] == (void *)1);
}
