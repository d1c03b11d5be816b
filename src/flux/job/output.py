"""``flux.job.output``: flux-core's submodule name for ``flux_launch.job.output`` (the same module object)."""

import sys

import flux_launch.job.output as _impl

sys.modules[__name__] = _impl
