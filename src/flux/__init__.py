"""Compatibility package: ``import flux`` for programs written for flux-core's
Python bindings (``flux.Flux()``, ``flux.job``)."""

from flux_launch.core.handle import Flux

__all__ = ["Flux"]
