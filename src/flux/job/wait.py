"""``flux.job.wait``: flux-core's submodule name for ``flux_launch.job.wait`` (the same module object)."""

import sys

import flux_launch.job.wait as _impl

sys.modules[__name__] = _impl
