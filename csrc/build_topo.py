"""cffi (API mode) description of the hwloc wrapper: builds flux_launch.resource._hwloc."""

import os

from cffi import FFI

from build_accel import declarations  # noqa: E402 - csrc/ is on sys.path when building

ffibuilder = FFI()
ffibuilder.cdef(declarations("topo.h"))
ffibuilder.set_source(
    "flux_launch.resource._hwloc",
    '#include "topo.h"',
    sources=[os.path.join("csrc", "topo.c")],
    include_dirs=["csrc"],
    libraries=["hwloc"],
    extra_compile_args=["-O2"],
)
