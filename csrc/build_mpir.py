"""cffi (API mode) description of the MPIR interface: builds flux_launch.job._mpir.

Compiled with ``-g`` (a debugger prints ``MPIR_proctable[i].pid`` from its debug
information) and ``-O1``; ``MPIR_Breakpoint`` stays a real, non-inlined function.
``python csrc/build_mpir.py`` builds it in place, next to the sources.
"""

import os

from cffi import FFI

HERE = os.path.dirname(os.path.abspath(__file__))


def _declarations():
    with open(os.path.join(HERE, "mpir.h")) as f:
        return "".join(line for line in f if not line.lstrip().startswith("#"))


def builder(root=""):
    """The FFI builder, its paths relative to ``root`` (setup.py runs at the root)."""
    ffi = FFI()
    ffi.cdef(_declarations())
    ffi.set_source(
        "flux_launch.job._mpir",
        '#include "mpir.h"',
        sources=[os.path.join(root, "csrc", "mpir.c")],
        include_dirs=[os.path.join(root, "csrc")],
        extra_compile_args=["-g", "-O1", "-fno-inline-functions"],
    )
    return ffi


ffibuilder = builder()

if __name__ == "__main__":
    import shutil
    import tempfile

    root = os.path.dirname(HERE)
    with tempfile.TemporaryDirectory() as tmp:
        built = builder(root).compile(tmpdir=tmp, verbose=True)
        dest = os.path.join(root, "src", "flux_launch", "job", os.path.basename(built))
        shutil.copyfile(built, dest + ".tmp")
        os.replace(dest + ".tmp", dest)  # a new file: processes that loaded the old one keep it
        print(dest)
