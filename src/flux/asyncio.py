"""``flux.asyncio`` (flux_launch.job.aio): Flux jobs from asyncio coroutines:
``loop`` (a ``FluxEventLoop``), ``submit``, ``result``, ``event_watch``,
``wait_for_event``, ``cancel``, ``kill``."""

from flux_launch.job.aio import (FluxEventLoop, cancel, event_watch, kill, loop, result, submit,
                                 wait_for_event)

__all__ = ["FluxEventLoop", "loop", "submit", "result", "event_watch", "wait_for_event", "cancel", "kill"]
