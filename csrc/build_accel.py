"""cffi (API mode) description of the C accelerations: builds flux_launch._accel._c."""

import os

from cffi import FFI

HERE = os.path.dirname(os.path.abspath(__file__))

ffibuilder = FFI()
ffibuilder.cdef("""
size_t flx_label_lines (const char *prefix, size_t plen, const char *data, size_t len,
                        char *out, size_t *tail);
""")
ffibuilder.set_source(
    "flux_launch._accel._c",
    '#include "accel.h"',
    sources=[os.path.join("csrc", "accel.c")],
    include_dirs=["csrc"],
    extra_compile_args=["-O2"],
)

if __name__ == "__main__":
    ffibuilder.compile(verbose=True)
