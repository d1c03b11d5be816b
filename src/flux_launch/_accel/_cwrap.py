"""Python-facing wrappers of the C functions in ``csrc/accel.c`` (module ``_c``).

Raises ImportError at import when the extension was not built.
"""

from flux_launch._accel._c import ffi, lib


def label_lines(prefix, data, partial=b""):
    buf = partial + data if partial else data
    nlines = buf.count(b"\n")
    if not nlines:
        return b"", bytes(buf)
    out = ffi.new("char[]", len(buf) + nlines * len(prefix))
    tail = ffi.new("size_t *")
    n = lib.flx_label_lines(prefix, len(prefix), buf, len(buf), out, tail)
    return ffi.buffer(out, n)[:], bytes(buf[len(buf) - tail[0]:])


def label_flush(prefix, partial):
    return prefix + partial + b"\n" if partial else b""
