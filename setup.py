"""Builds the optional C accelerations (cffi, API mode) next to the Python package.

If the C build is impossible (no compiler, no headers), the package still installs
and runs on its pure-Python twins: the failure is reported as a warning.
"""

import os
import sys

from setuptools import setup
from setuptools.command.build_ext import build_ext


class OptionalBuildExt(build_ext):
    def run(self):
        try:
            super().run()
        except Exception as exc:  # noqa: BLE001 - any build failure falls back to Python
            sys.stderr.write(f"WARNING: C accelerations not built ({exc}); using the Python twins\n")
        for name in ("libpmi", "libpmi2"):
            self.build_libpmi(name)

    def build_libpmi(self, name):
        """pmi/NAME.c -> flux_launch/lib/NAME.so (libpmi: FLUX_PMI_LIBRARY_PATH for tasks; libpmi2: the
        PMI-2 API over the PMI-2 wire protocol)."""
        base = os.path.join("src") if self.inplace else self.build_lib
        target = os.path.join(base, "flux_launch", "lib", f"{name}.so")
        try:
            from setuptools._distutils.ccompiler import new_compiler
            from setuptools._distutils.sysconfig import customize_compiler

            cc = new_compiler()
            customize_compiler(cc)
            objects = cc.compile([os.path.join("pmi", f"{name}.c")], output_dir=self.build_temp,
                                 extra_postargs=["-fPIC", "-O2", "-Wall"])
            os.makedirs(os.path.dirname(target), exist_ok=True)
            cc.link_shared_object(objects, target)
        except Exception as exc:  # noqa: BLE001 - MPI programs that speak PMI_FD still work
            sys.stderr.write(f"WARNING: {name}.so not built ({exc}); MPIs that load a PMI library won't run\n")

    def build_extension(self, ext):
        try:
            super().build_extension(ext)
        except Exception as exc:  # noqa: BLE001
            sys.stderr.write(f"WARNING: {ext.name} not built ({exc}); using the Python twins\n")


ext_modules = []
try:
    sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "csrc"))
    from build_accel import ffibuilder

    ext_modules.append(ffibuilder.distutils_extension(tmpdir="build/cffi"))
    from build_topo import ffibuilder as topo_builder  # hwloc (libhwloc-dev); optional like the rest

    ext_modules.append(topo_builder.distutils_extension(tmpdir="build/cffi"))
except Exception as exc:  # noqa: BLE001
    sys.stderr.write(f"WARNING: cannot prepare the C accelerations ({exc}); using the Python twins\n")
try:
    # the MPIR symbols of flux job attach --debug (a debugger reads them): optional too
    from build_mpir import ffibuilder as mpir_builder

    ext_modules.append(mpir_builder.distutils_extension(tmpdir="build/cffi"))
except Exception as exc:  # noqa: BLE001
    sys.stderr.write(f"WARNING: cannot prepare the MPIR library ({exc}); flux job attach --debug won't work\n")

setup(ext_modules=ext_modules, cmdclass={"build_ext": OptionalBuildExt})
