"""``flux.job.list``: flux-core's submodule name for ``flux_launch.job.list`` (the same module object)."""

import sys

import flux_launch.job.list as _impl

sys.modules[__name__] = _impl
