#include <stdint.h>
#include <string.h>
#include "accel.h"

#define ONES 0x0101010101010101ULL
#define HIGHS 0x8080808080808080ULL
#define LOWS 0x7F7F7F7F7F7F7F7FULL

/* The high bit set in each byte of x that is 0 (exact: no carries between bytes). */
static inline uint64_t zero_bytes (uint64_t x)
{
    return ~(((x & LOWS) + LOWS) | x) & HIGHS;
}

size_t flx_count_lines (const char *data, size_t len)
{
    const unsigned char *p = (const unsigned char *)data;
    const unsigned char *end = p + len;
    size_t n = 0;

    /* 8 bytes a word, counts summed per byte lane for at most 255 words */
    while (end - p >= 8) {
        size_t words = (size_t)(end - p) / 8;
        uint64_t acc = 0;
        if (words > 255)
            words = 255;
        for (; words; words--, p += 8) {
            uint64_t x;
            memcpy (&x, p, 8);
            acc += zero_bytes (x ^ (ONES * '\n')) >> 7;
        }
        acc = (acc & 0x00FF00FF00FF00FFULL) + ((acc >> 8) & 0x00FF00FF00FF00FFULL);
        n += (size_t)((acc * 0x0001000100010001ULL) >> 48);
    }
    for (; p < end; p++)
        n += *p == '\n';
    return n;
}

size_t flx_label_lines (const char *prefix, size_t plen,
                        const char *data, size_t len,
                        char *out, size_t *tail)
{
    const char *p = data;
    const char *end = data + len;
    char *o = out;
    const char *nl;

    while (p < end && (nl = memchr (p, '\n', (size_t)(end - p)))) {
        size_t n = (size_t)(nl - p) + 1;
        memcpy (o, prefix, plen);
        o += plen;
        memcpy (o, p, n);
        o += n;
        p = nl + 1;
    }
    *tail = (size_t)(end - p);
    return (size_t)(o - out);
}

/* ---- flx_json_escape ---------------------------------------------------- */

/* What json.dumps(ensure_ascii=False) writes for a byte < 0x20, '"' or '\\':
 * the letter of a two-character escape, or 'u' for \u00xx; 0 for a byte copied
 * as it is (the rest of 0x20..0x7f; bytes >= 0x80 are UTF-8, handled apart). */
static const char json_esc[128] = {
    'u', 'u', 'u', 'u', 'u', 'u', 'u', 'u', 'b', 't', 'n', 'u', 'f', 'r', 'u', 'u',
    'u', 'u', 'u', 'u', 'u', 'u', 'u', 'u', 'u', 'u', 'u', 'u', 'u', 'u', 'u', 'u',
    ['"'] = '"', ['\\'] = '\\',
};

/* The length of the well-formed UTF-8 sequence (Unicode Table 3-7) that starts
 * at p, lead byte >= 0x80; 0 if it is ill-formed; -1 if end cuts it with every
 * byte so far valid for its position (CPython's "unexpected end of data"). */
static int utf8_seq (const unsigned char *p, const unsigned char *end)
{
    unsigned c = p[0], lo = 0x80, hi = 0xBF;
    int need, i;

    if (c < 0xC2)
        return 0;                   /* continuation byte, or overlong C0/C1 */
    if (c < 0xE0)
        need = 1;
    else if (c < 0xF0) {
        need = 2;
        if (c == 0xE0)
            lo = 0xA0;              /* overlong */
        else if (c == 0xED)
            hi = 0x9F;              /* surrogates */
    }
    else if (c < 0xF5) {
        need = 3;
        if (c == 0xF0)
            lo = 0x90;              /* overlong */
        else if (c == 0xF4)
            hi = 0x8F;              /* above U+10FFFF */
    }
    else
        return 0;
    if (end - p < 2)
        return -1;
    if (p[1] < lo || p[1] > hi)
        return 0;
    for (i = 2; i <= need; i++) {
        if (end - p <= i)
            return -1;
        if ((p[i] & 0xC0) != 0x80)
            return 0;
    }
    return need + 1;
}

/* Word-at-a-time scanning on little-endian GCC/clang (FLX_NO_SWAR: byte loop). */
#if defined(__GNUC__) && defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__ \
    && !defined(FLX_NO_SWAR)
#define JSON_SWAR 1

/* The high bit set in each byte of x that is not copied as it is: >= 0x80,
 * < 0x20, '"' or '\\'. Exact per byte (no carries between bytes). */
static inline uint64_t json_special (uint64_t x)
{
    uint64_t ctl = ~((x & LOWS) + ONES * (0x80 - 0x20));    /* < 0x20 */
    return (x | ctl | zero_bytes (x ^ (ONES * '"')) | zero_bytes (x ^ (ONES * '\\'))) & HIGHS;
}

/* Copy the run of plain bytes (json_special finds none) at *pp to *op, 8 at a
 * time, and advance both past it; stops at the first byte that needs attention
 * or when fewer than 8 bytes are left. Each word is stored whole and *op moves
 * past its plain bytes only, so 8 bytes must fit at *op while *pp + 8 <= end
 * (each caller says why they do). */
static inline void copy_plain (const unsigned char **pp, const unsigned char *end, char **op)
{
    const unsigned char *p = *pp;
    char *o = *op;

    while (end - p >= 8) {
        uint64_t x, m;
        memcpy (&x, p, 8);
        memcpy (o, &x, 8);
        m = json_special (x);
        if (m) {
            unsigned k = (unsigned)__builtin_ctzll (m) >> 3;
            o += k;
            p += k;
            break;
        }
        o += 8;
        p += 8;
    }
    *pp = p;
    *op = o;
}
#endif

size_t flx_json_escape (const unsigned char *in, size_t len, char *out,
                        size_t *consumed, int *status)
{
    static const char hex[] = "0123456789abcdef";
    const unsigned char *p = in;
    const unsigned char *end = in + len;
    char *o = out;
    int st = 0;

    while (p < end) {
#ifdef JSON_SWAR
        /* The 8 bytes fit: o <= out + 6 * (p - in), p + 8 <= end, out holds 6 * len. */
        copy_plain (&p, end, &o);
        if (p >= end)
            break;
#endif
        unsigned c = *p;
        if (c < 0x80) {
            char e = json_esc[c];
            if (!e)
                *o++ = (char)c;
            else {
                *o++ = '\\';
                *o++ = e;
                if (e == 'u') {
                    *o++ = '0';
                    *o++ = '0';
                    *o++ = hex[c >> 4];
                    *o++ = hex[c & 0xF];
                }
            }
            p++;
        }
        else {
            int n = utf8_seq (p, end);
            if (n <= 0) {
                st = n ? 1 : 2;
                break;
            }
            memcpy (o, p, (size_t)n);
            o += n;
            p += n;
        }
    }
    *consumed = (size_t)(p - in);
    *status = st;
    return (size_t)(o - out);
}

/* ---- flx_json_unescape -------------------------------------------------- */

/* The byte a two-character escape \x stands for, by x; 0 where \x is not one
 * ('u' is handled apart). */
static const unsigned char json_unesc[128] = {
    ['"'] = '"', ['\\'] = '\\', ['/'] = '/',
    ['b'] = '\b', ['f'] = '\f', ['n'] = '\n', ['r'] = '\r', ['t'] = '\t',
};

/* The value of the 4 hex digits (either case) at p; -1 if one is not a digit. */
static inline long hex4 (const unsigned char *p)
{
    long v = 0;
    int i;

    for (i = 0; i < 4; i++) {
        unsigned c = p[i], d = c - '0';
        if (d > 9) {
            d = (c | 0x20) - 'a';
            if (d > 5)
                return -1;
            d += 10;
        }
        v = (v << 4) | d;
    }
    return v;
}

long flx_json_unescape (const unsigned char *in, size_t len, char *out)
{
    const unsigned char *p = in;
    const unsigned char *end = in + len;
    char *o = out;

    while (p < end) {
#ifdef JSON_SWAR
        /* The 8 bytes fit: o - out <= p - in, p + 8 <= end, out holds len. */
        copy_plain (&p, end, &o);
        if (p >= end)
            break;
#endif
        unsigned c = *p;
        if (c == '\\') {
            unsigned e;
            long cp;
            if (end - p < 2)
                return -1;
            e = p[1];
            if (e != 'u') {
                if (e >= 0x80 || !json_unesc[e])
                    return -1;
                *o++ = (char)json_unesc[e];
                p += 2;
                continue;
            }
            if (end - p < 6 || (cp = hex4 (p + 2)) < 0)
                return -1;
            p += 6;
            if (cp < 0x80)
                *o++ = (char)cp;
            else if (cp < 0x800) {
                *o++ = (char)(0xC0 | (cp >> 6));
                *o++ = (char)(0x80 | (cp & 0x3F));
            }
            else if (cp < 0xD800 || cp > 0xDFFF) {
                *o++ = (char)(0xE0 | (cp >> 12));
                *o++ = (char)(0x80 | ((cp >> 6) & 0x3F));
                *o++ = (char)(0x80 | (cp & 0x3F));
            }
            else {
                long lo;
                /* a high surrogate, then \u and a low one: one code point */
                if (cp > 0xDBFF || end - p < 6 || p[0] != '\\' || p[1] != 'u'
                    || (lo = hex4 (p + 2)) < 0xDC00 || lo > 0xDFFF)
                    return -1;
                p += 6;
                cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
                *o++ = (char)(0xF0 | (cp >> 18));
                *o++ = (char)(0x80 | ((cp >> 12) & 0x3F));
                *o++ = (char)(0x80 | ((cp >> 6) & 0x3F));
                *o++ = (char)(0x80 | (cp & 0x3F));
            }
        }
        else if (c >= 0x80) {
            int n = utf8_seq (p, end);
            if (n <= 0)
                return -1;
            memcpy (o, p, (size_t)n);
            o += n;
            p += n;
        }
        else if (c < 0x20 || c == '"')
            return -1;
        else {
            *o++ = (char)c;
            p++;
        }
    }
    return (long)(o - out);
}
