"""``flux.job.submit``: flux-core's submodule name for ``flux_launch.job.submit`` (the same module object)."""

import sys

import flux_launch.job.submit as _impl

sys.modules[__name__] = _impl
