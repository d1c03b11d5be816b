"""Python-facing wrappers of the C functions in ``csrc/accel.c`` (module ``_c``).

Raises ImportError at import when the extension was not built.

Output goes to a buffer kept per thread (cffi releases the GIL during C calls,
so threads must not share one), grown on demand up to 16 MiB and never
zero-filled; callers get a bytes copy of the part written.
"""

from _thread import _local as _thread_local  # threading.local, without importing threading

from flux_launch._accel._c import ffi, lib
from flux_launch._accel import _py

_alloc = ffi.new_allocator(should_clear_after_alloc=False)
_local = _thread_local()
_KEEP = 16 << 20  # a larger output buffer is allocated for its call only, not kept


def _out(size):
    """An output buffer of at least ``size`` bytes: this thread's, grown on demand."""
    buf = getattr(_local, "buf", None)
    if buf is None:
        _local.sizep = ffi.new("size_t *")
        _local.intp = ffi.new("int *")
    if buf is None or len(buf) < size:
        if size > _KEEP:
            return _alloc("char[]", size)
        buf = _local.buf = _alloc("char[]", min(max(size, 2 * len(buf) if buf is not None else 1 << 16), _KEEP))
    return buf


def label_lines(prefix, data, partial=b""):
    buf = partial + data if partial else data
    src = ffi.from_buffer(buf)
    nlines = lib.flx_count_lines(src, len(src))  # buf.count(b"\n") at 1 GB/s was most of the time
    if not nlines:
        return b"", bytes(buf)
    out = _out(len(src) + nlines * len(prefix))
    tail = _local.sizep
    n = lib.flx_label_lines(prefix, len(prefix), src, len(src), out, tail)
    return ffi.buffer(out, n)[:], bytes(buf[len(buf) - tail[0]:])


label_flush = _py.label_flush  # one concatenation: no C needed


def json_escape(data, start=0):
    src = ffi.from_buffer("unsigned char[]", data)
    size = len(src)
    if not 0 <= start <= size:
        raise ValueError(f"json_escape: start {start} outside 0..{size}")
    out = _out(6 * (size - start))
    consumed, status = _local.sizep, _local.intp
    n = lib.flx_json_escape(src + start, size - start, out, consumed, status)
    return ffi.buffer(out, n)[:], consumed[0], status[0]


def json_unescape(data):
    src = ffi.from_buffer("unsigned char[]", data)
    out = _out(len(src))
    n = lib.flx_json_unescape(src, len(src), out)
    return ffi.buffer(out, n)[:] if n >= 0 else None
