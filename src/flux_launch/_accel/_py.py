"""Pure-Python twins of the C accelerations: this module is their specification.

``label_lines(prefix, data, partial)``: the bytes ``partial + data`` split into
lines; every complete line (ending in ``\\n``) is returned with ``prefix`` before
it, and the unterminated tail is returned as the new ``partial``. Bytes are never
decoded, so any binary data passes through unchanged.

``label_flush(prefix, partial)``: at end of stream, the unterminated tail as a line
of its own (``prefix + partial + \\n``), so that a labelled partial line never runs
into another source's line; nothing for an empty tail.
"""


def label_lines(prefix, data, partial=b""):
    buf = partial + data if partial else data
    cut = buf.rfind(b"\n") + 1
    if not cut:
        return b"", bytes(buf)
    body = buf[:cut - 1]
    return prefix + body.replace(b"\n", b"\n" + prefix) + b"\n", bytes(buf[cut:])


def label_flush(prefix, partial):
    return prefix + partial + b"\n" if partial else b""
