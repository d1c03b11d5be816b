"""``flux.job.event``: flux-core's submodule name for ``flux_launch.job.event`` (the same module object)."""

import sys

import flux_launch.job.event as _impl

sys.modules[__name__] = _impl
