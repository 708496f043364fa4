/* utf8.h - the one check of UTF-8, and of what a name may show a terminal
 * (freestanding: the library's JSON and text writers, out.c, the Prometheus
 * renderer, prom.c, which the command compiles too, and the command's
 * reading of names, tools/util.c). */
#ifndef MS_UTF8_H
#define MS_UTF8_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* The length of the well-formed UTF-8 sequence at s (at most n bytes), or
 * 0: a stray continuation byte, a sequence cut short, an overlong form, a
 * surrogate or a code point above U+10FFFF. */
static inline size_t ms_utf8_len(const unsigned char *s, size_t n)
{
    unsigned c = s[0];
    size_t len = c < 0x80 ? 1 : (c & 0xE0) == 0xC0 ? 2 : (c & 0xF0) == 0xE0 ? 3 : (c & 0xF8) == 0xF0 ? 4 : 0;
    if (!len || len > n) return 0;
    uint32_t cp = len == 1 ? c : c & (0x7Fu >> len);
    for (size_t i = 1; i < len; i++) {
        if ((s[i] & 0xC0) != 0x80) return 0;
        cp = cp << 6 | (s[i] & 0x3F);
    }
    static const uint32_t least[5] = { 0, 0, 0x80, 0x800, 0x10000 };
    if (cp < least[len] || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return 0;
    return len;
}

/* Whether the character at s (n bytes left, n > 0) is written escaped,
 * byte by byte (ms_text_escape), where a name or a value meets a terminal
 * (text reports, messages, the command's views): a control character (C0,
 * DEL, and C1, U+0080 to U+009F) or a byte that is not part of well-formed
 * UTF-8; *k: its length in bytes (1 for such a byte).  A name is the
 * program's or its files': a newline in it could forge a report's lines,
 * an escape sequence move the cursor or recolour the terminal of whoever
 * reads it. */
static inline bool ms_text_escaped(const unsigned char *s, size_t n, size_t *k)
{
    size_t len = ms_utf8_len(s, n);
    *k = len ? len : 1;
    if (len == 1) return s[0] < 0x20 || s[0] == 0x7f;
    return len == 0 || (len == 2 && s[0] == 0xc2 && s[1] < 0xa0);
}

/* One byte so escaped, into out (4 bytes at most): \n, \t or \xNN; its
 * length. */
static inline size_t ms_text_escape(unsigned char c, char *out)
{
    out[0] = '\\';
    if (c == '\n' || c == '\t') { out[1] = c == '\n' ? 'n' : 't'; return 2; }
    out[1] = 'x';
    out[2] = "0123456789abcdef"[c >> 4];
    out[3] = "0123456789abcdef"[c & 15];
    return 4;
}

#endif
