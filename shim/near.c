/* near.c - the known names nearest to one that is none of them (near.h). */
#include "near.h"

#define WORDS 8                         /* words of a name weighed (more: none) */
#define LONG  48                        /* longer names are no misspelling */
#define NONE  (~0u)

static char fold(char c)
{
    if (c == '-') return '_';
    return c >= 'A' && c <= 'Z' ? (char)(c | 32) : c;
}

/* Edits from a to b (optimal string alignment: a swap of two neighbours is
 * one edit); NONE for names too long to be misspellings. */
static unsigned edits(const char *a, size_t la, const char *b, size_t lb)
{
    unsigned prev2[LONG + 1], prev[LONG + 1], row[LONG + 1];
    if (la > LONG || lb > LONG) return NONE;
    for (size_t j = 0; j <= lb; j++) prev[j] = (unsigned)j;
    for (size_t i = 1; i <= la; i++) {
        row[0] = (unsigned)i;
        for (size_t j = 1; j <= lb; j++) {
            unsigned cost = fold(a[i - 1]) != fold(b[j - 1]);
            unsigned best = prev[j - 1] + cost;
            if (prev[j] + 1 < best) best = prev[j] + 1;
            if (row[j - 1] + 1 < best) best = row[j - 1] + 1;
            if (i > 1 && j > 1 && fold(a[i - 1]) == fold(b[j - 2]) && fold(a[i - 2]) == fold(b[j - 1]) &&
                prev2[j - 2] + 1 < best)
                best = prev2[j - 2] + 1;
            row[j] = best;
        }
        for (size_t j = 0; j <= lb; j++) { prev2[j] = prev[j]; prev[j] = row[j]; }
    }
    return prev[lb];
}

/* The edits a misspelling of a name of n letters may make. */
static unsigned allowed(size_t n)
{
    if (n <= 5) return 1;
    return n >= 10 ? 3 : 2;
}

typedef struct { const char *p; size_t len; } word_t;

/* The words of s[0..len); 0 when more than WORDS. */
static unsigned words(const char *s, size_t len, word_t *w)
{
    unsigned n = 0;
    for (size_t i = 0; i < len;) {
        if (fold(s[i]) == '_') { i++; continue; }
        size_t j = i;
        while (j < len && fold(s[j]) != '_') j++;
        if (n == WORDS) return 0;
        w[n++] = (word_t){ s + i, j - i };
        i = j;
    }
    return n;
}

/* Whether the word given is the known one: the same, an abbreviation of
 * it of 3 letters or more (SIG: SIGNAL), or it with more letters after 6
 * or more of its own (SUPPRESSIONS: SUPPRESS; not LEAKS: LEAK). */
static bool same_word(word_t given, word_t known)
{
    size_t n = given.len < known.len ? given.len : known.len;
    if (given.len < known.len ? given.len < 3 : given.len > known.len && known.len < 6) return false;
    for (size_t i = 0; i < n; i++)
        if (fold(given.p[i]) != fold(known.p[i])) return false;
    return true;
}

/* Whether every word of a is one of b's; the words given are a's
 * (given_a) or b's. */
static bool every_word_in(const word_t *a, unsigned na, const word_t *b, unsigned nb, bool given_a)
{
    for (unsigned i = 0; i < na; i++) {
        bool found = false;
        for (unsigned j = 0; j < nb && !found; j++) found = given_a ? same_word(a[i], b[j]) : same_word(b[j], a[i]);
        if (!found) return false;
    }
    return na != 0;
}

void ms_near_start(ms_near_t *m, const char *given, size_t len)
{
    *m = (ms_near_t){ .given = given, .len = len, .rank = NONE };
}

/* Ranks: e edits 2e (0: the case only); every word given one of the
 * name's, as one edit; every word of the name given, after them all. */
void ms_near_offer(ms_near_t *m, const char *known, size_t len, const void *what)
{
    unsigned rank = NONE, e = edits(m->given, m->len, known, len);
    size_t longer = m->len > len ? m->len : len;
    if (e != NONE && e <= allowed(longer)) rank = 2 * e;
    word_t g[WORDS], k[WORDS];
    unsigned ng = words(m->given, m->len, g), nk = words(known, len, k);
    if (rank > 2 && every_word_in(g, ng, k, nk, true)) rank = 2;
    if (rank == NONE && every_word_in(k, nk, g, ng, false)) rank = 7;
    if (rank == NONE || rank > m->rank) return;
    if (rank < m->rank) { m->rank = rank; m->n = 0; }
    if (m->n < MS_NEAR_MAX) m->what[m->n] = what;
    if (m->n <= MS_NEAR_MAX) m->n++;
}

unsigned ms_near_count(const ms_near_t *m)
{
    return m->n <= MS_NEAR_MAX ? m->n : 0;
}
