"""``flux.job.kvslookup``: flux-core's submodule name for ``flux_launch.job.kvslookup`` (the same module object)."""

import sys

import flux_launch.job.kvslookup as _impl

sys.modules[__name__] = _impl
