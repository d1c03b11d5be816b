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
except Exception as exc:  # noqa: BLE001
    sys.stderr.write(f"WARNING: cannot prepare the C accelerations ({exc}); using the Python twins\n")

setup(ext_modules=ext_modules, cmdclass={"build_ext": OptionalBuildExt})
