#include <string.h>
#include "accel.h"

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
