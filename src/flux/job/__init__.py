"""``flux.job``: the job API of flux_launch under flux-core's name."""

from flux_launch.job import *  # noqa: F401,F403
from flux_launch.job import __all__  # noqa: F401
