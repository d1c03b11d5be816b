"""cffi (API mode) description of the C accelerations: builds flux_launch._accel._c."""

import os

from cffi import FFI

HERE = os.path.dirname(os.path.abspath(__file__))


def declarations(header):
    """The header's declarations, without its preprocessor lines (cffi's cdef has none)."""
    with open(os.path.join(HERE, header)) as f:
        return "".join(line for line in f if not line.lstrip().startswith("#"))


ffibuilder = FFI()
ffibuilder.cdef(declarations("accel.h"))
ffibuilder.set_source(
    "flux_launch._accel._c",
    '#include "accel.h"',
    sources=[os.path.join("csrc", "accel.c")],
    include_dirs=["csrc"],
    extra_compile_args=["-O2"],
)

if __name__ == "__main__":
    ffibuilder.compile(verbose=True)
