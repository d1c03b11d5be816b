"""``Future`` under its own module name, as flux-core's ``flux.future``. The class
lives in ``client/handle.py``: one module fewer on every command's start."""

from flux_launch.client.handle import Future

__all__ = ["Future"]
