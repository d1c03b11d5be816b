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
#endif
