"""``flux.job.kill``: flux-core's submodule name for ``flux_launch.job.kill`` (the same module object)."""

import sys

import flux_launch.job.kill as _impl

sys.modules[__name__] = _impl
