/* test_stackcache.c - a thread's stack cache (shim.h, unwind.c): a call
 * met again gets its chain cached; a signal handler's capture that comes
 * while its thread reads the cache (c->probing) writes nothing there, for
 * the entry it would fill may be the one being read. */
#include <criterion/criterion.h>
#include <pthread.h>
#include <string.h>
#include "shim.h"

/* libsc_sites.so: each calls take() from a call site of its own. */
uint32_t sc_site_warm(uint32_t (*take)(void));
uint32_t sc_site_probed(uint32_t (*take)(void));
uint32_t sc_site_handler(uint32_t (*take)(void));

/* The stack of the call to here, taken as an allocation takes it
 * (override.c's SITE, track.c's record). */
static __attribute__((noinline)) uint32_t take(void)
{
    return _ms_capture(MS_CALLER_SITE);
}

static ms_sc_ent_t before[MS_SC_ENTRIES];

/* Entries that changed since `before`, but for their age (a hit's). */
static unsigned changed(const ms_stack_cache_t *c)
{
    unsigned k = 0;
    for (unsigned i = 0; i < MS_SC_ENTRIES; i++) {
        ms_sc_ent_t a = before[i], b = c->e[i];
        a.used = b.used = 0;
        k += memcmp(&a, &b, sizeof a) != 0;
    }
    return k;
}

static ms_stack_cache_t *cache(void)
{
    for (int i = 0; i < 4; i++) sc_site_warm(take);
    ms_stack_cache_t *c = _ms_sc;
    cr_assert((uintptr_t)c > (uintptr_t)MS_SC_DEAD, "the thread has a stack cache");
    memcpy(before, c->e, sizeof before);
    return c;
}

/* Each test runs in a thread of its own: its calls are a few frames deep,
 * as cached chains are (Criterion's are deeper than MS_SC_DEPTH). */
static void in_a_thread(void *(*fn)(void *))
{
    pthread_t t;
    cr_assert_eq(pthread_create(&t, NULL, fn, NULL), 0);
    cr_assert_eq(pthread_join(t, NULL), 0);
}

/* n calls of site from one place (a chain of its own), all of one stack. */
static uint32_t calls(uint32_t (*site)(uint32_t (*)(void)), int n)
{
    uint32_t id = 0;
    for (int i = 0; i < n; i++) {
        uint32_t got = site(take);
        cr_assert(got != 0 && got != MS_STACK_OOM && (!id || got == id), "stack %u, then %u", id, got);
        id = got;
    }
    return id;
}

static void *met_again(void *arg)
{
    ms_stack_cache_t *c = cache();
    calls(sc_site_probed, 4);
    cr_expect_geq(changed(c), 1, "the site's entry and chain");
    unsigned clock = c->clock;
    calls(sc_site_probed, 1);
    cr_expect_eq(c->clock, clock + 1, "a hit");
    return arg;
}

Test(stackcache, a_call_met_again_gets_its_chain_cached)
{
    in_a_thread(met_again);
}

static void *inside_a_probe(void *arg)
{
    ms_stack_cache_t *c = cache();
    c->probing++;                          /* as a handler finds its thread */
    calls(sc_site_handler, 4);
    c->probing--;
    cr_expect_eq(changed(c), 0, "entries written inside a probe");
    calls(sc_site_handler, 4);
    cr_expect_geq(changed(c), 1, "the same calls outside a probe are cached");
    return arg;
}

Test(stackcache, a_handlers_capture_inside_a_probe_writes_nothing_there)
{
    in_a_thread(inside_a_probe);
}

/* A cached chain is taken only if every one of its slots still holds its
 * return address (_ms_sc_chain_holds, compared four at a time, the last
 * four overlapping): for every depth a cache entry may have, a chain that
 * matches holds, and one word changed anywhere in it, at any frame, makes
 * it miss; words outside the chain's slots do not matter. */
Test(stackcache, a_chain_holds_only_if_every_slot_does)
{
    static uintptr_t stack[3 * MS_SC_DEPTH + 8];
    const uintptr_t sp = (uintptr_t)stack;
    for (unsigned depth = 1; depth <= MS_SC_DEPTH; depth++) {
        ms_sc_ent_t e = { .depth = (uint16_t)depth };
        for (unsigned i = 0; i < sizeof stack / sizeof *stack; i++) stack[i] = 0x5000 + i;
        for (unsigned i = 1; i < depth; i++) {
            e.off[i] = (uint16_t)(3 * i - 1);                /* slots spread, words between them */
            e.want[i] = 0x7f0000001000 + 16 * i;
            stack[e.off[i]] = e.want[i];
        }
        cr_expect(_ms_sc_chain_holds(&e, sp), "depth %u: the chain as cached", depth);
        stack[3 * MS_SC_DEPTH + 7] ^= 1;
        if (depth > 1) stack[e.off[depth - 1] - 1] ^= 1;  /* a word between slots */
        cr_expect(_ms_sc_chain_holds(&e, sp), "depth %u: words outside its slots changed", depth);
        for (unsigned i = 1; i < depth; i++) {
            stack[e.off[i]] ^= (uintptr_t)1 << (i % 48);
            cr_expect(!_ms_sc_chain_holds(&e, sp), "depth %u: frame %u's return address changed", depth, i);
            stack[e.off[i]] ^= (uintptr_t)1 << (i % 48);
        }
    }
}

/* A thread's cache goes to the next thread when it ends, its chains with
 * it; the probe reads a chain's slots without bounds, so the new thread
 * keeps only the chains whose every slot lies below its own stack's top.
 * The first thread runs on a stack of 4 MiB, the next on one of 16 MiB,
 * which glibc cannot give it from the first's (mapped elsewhere: below it,
 * as mmap places them). */
static void *fill_chains(void *arg)
{
    (void)arg;
    for (int i = 0; i < 4; i++) sc_site_warm(take);
    return (void *)_ms_sc;
}
static void *look_at_chains(void *arg)
{
    ms_stack_cache_t **got = arg;
    (void)take();                                   /* its cache: the first thread's */
    *got = _ms_sc;
    ms_stack_cache_t *c = _ms_sc;
    unsigned kept = 0, beyond = 0;
    for (unsigned i = 0; i < MS_SC_ENTRIES; i++) {
        const ms_sc_ent_t *e = &c->e[i];
        if (!e->id || e->depth < 2) continue;
        kept++;
        beyond += e->sp + (uintptr_t)e->off[e->depth - 1] * 8 > c->top - 8;
    }
    return (void *)(uintptr_t)(beyond << 16 | kept);
}
Test(stackcache, a_cache_handed_on_keeps_only_chains_below_the_new_stacks_top)
{
    pthread_attr_t a;
    pthread_t t;
    void *first, *r;
    ms_stack_cache_t *second = NULL;
    pthread_attr_init(&a);
    pthread_attr_setstacksize(&a, (size_t)4 << 20);
    cr_assert_eq(pthread_create(&t, &a, fill_chains, NULL), 0);
    pthread_join(t, &first);
    cr_assert((uintptr_t)first > (uintptr_t)MS_SC_DEAD, "the first thread had a cache");
    unsigned had = 0;
    for (unsigned i = 0; i < MS_SC_ENTRIES; i++)
        had += ((ms_stack_cache_t *)first)->e[i].id && ((ms_stack_cache_t *)first)->e[i].depth >= 2;
    cr_assert_gt(had, 0, "the first thread cached chains");
    pthread_attr_setstacksize(&a, (size_t)16 << 20);
    cr_assert_eq(pthread_create(&t, &a, look_at_chains, &second), 0);
    pthread_join(t, &r);
    pthread_attr_destroy(&a);
    cr_assert_eq((void *)second, first, "the second thread was handed the first one's cache");
    uintptr_t v = (uintptr_t)r;
    cr_expect_eq(v >> 16, 0, "%u of %u chains kept reach above the new thread's stack top",
                 (unsigned)(v >> 16), (unsigned)(v & 0xffff));
}
