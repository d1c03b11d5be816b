/* C accelerations of flux_launch; each has a Python twin in
 * src/flux_launch/_accel/_py.py that specifies its behaviour. */
#ifndef FLUX_LAUNCH_ACCEL_H
#define FLUX_LAUNCH_ACCEL_H
#include <stddef.h>

/* Copy every complete line of data[0..len) to out, each preceded by prefix.
 * out must hold len + (number of '\n' in data) * plen bytes.
 * Returns the bytes written; *tail is the length of the unterminated rest. */
size_t flx_label_lines (const char *prefix, size_t plen,
                        const char *data, size_t len,
                        char *out, size_t *tail);

/* The number of '\n' in data[0..len): data.count(b"\n"), which is 10x slower;
 * the label_lines wrapper sizes out with it. */
size_t flx_count_lines (const char *data, size_t len);

/* The longest prefix of in[0..len) that is well-formed UTF-8 (Unicode Table 3-7:
 * no surrogates, no overlongs, nothing above U+10FFFF) escaped as the inside of
 * a JSON string, as CPython's json.dumps(..., ensure_ascii=False) escapes it:
 * '"' and '\\' backslashed, \b \f \n \r \t, other bytes < 0x20 as \u00xx
 * (lowercase hex), all else copied unchanged. out must hold 6 * len bytes.
 * Returns the bytes written; *consumed is the length of the prefix and *status
 * says what follows it: 0 nothing, 1 a sequence valid so far but cut by the end
 * of data, 2 invalid UTF-8. */
size_t flx_json_escape (const unsigned char *in, size_t len, char *out,
                        size_t *consumed, int *status);

/* The value of the JSON string whose body (the bytes between its quotes) is
 * in[0..len), as UTF-8, when that body is valid (RFC 8259: no raw byte < 0x20,
 * no raw '"', escapes only \" \\ \/ \b \f \n \r \t \uXXXX with hex of
 * either case), its raw bytes are well-formed UTF-8 (as for flx_json_escape)
 * and every \u escape is a non-surrogate or a high surrogate directly followed
 * by a low one (the pair is one code point). out must hold len bytes (the
 * value is never longer than its body). Returns the bytes written, or -1 when
 * the body is not all of that (the caller falls back to json.loads). */
long flx_json_unescape (const unsigned char *in, size_t len, char *out);
#endif
