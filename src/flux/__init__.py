"""Compatibility package: ``import flux`` for programs written for flux-core's
Python bindings (``flux.Flux()``, ``flux.job``)."""

from flux_launch.client.handle import Flux

__all__ = ["Flux"]
