"""``flux.job.info``: flux-core's submodule name for ``flux_launch.job.info`` (the same module object)."""

import sys

import flux_launch.job.info as _impl

sys.modules[__name__] = _impl
