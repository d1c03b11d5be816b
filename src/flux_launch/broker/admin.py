"""Services for instance administration: ``shutdown`` and ``hwloc``.

- ``shutdown.start {loglevel}`` (rank 0 only, as flux-core's): begin the
  instance's shutdown. An initial program that still runs is sent SIGHUP (its
  end shuts the instance down, and ``flux start`` exits 128 + 1 = 129, as in
  flux-core), then SIGTERM and SIGKILL 5 s apart if it ignores them (nohup);
  without one the broker shuts down as on SIGTERM, but exits 0.
  A streaming request is answered ``ENODATA`` when the broker finishes (the
  client follows the log meanwhile, ``flux shutdown``); a plain one at once.
  Refused with ``EINVAL`` on another rank or when the broker is not running.
- ``hwloc.xml``: this broker's hwloc topology XML: the file it discovered its
  topology from (``FLUX_HWLOC_XMLFILE``), else ``lstopo-no-graphics --of xml``
  restricted to the broker's binding. ``ENOSYS`` when hwloc's lstopo is not
  installed.

``register(broker)`` is called from ``builtins.register`` on every rank.
"""

import asyncio
import errno
import logging
import os
import shutil
import signal
from functools import partial

from flux_launch.proto.message import STREAMING
from flux_launch.services.base import Service, ServiceError

LSTOPO = ("lstopo-no-graphics", "lstopo")
ESCALATE = 5.0  # seconds between shutdown's SIGHUP, SIGTERM and SIGKILL to an initial program that stays
log = logging.getLogger("flux_launch.broker")


def register(broker):
    """Register ``shutdown`` and ``hwloc`` on ``broker``."""
    pending = []
    Service(broker, "shutdown", {"start": partial(_shutdown_start, broker, pending)}).register()
    Service(broker, "hwloc", {"xml": partial(_hwloc_xml, broker)}).register()
    broker.closers.append(partial(_end_pending, broker, pending))


def _shutdown_start(broker, pending, msg, p):
    if broker.rank != 0:
        raise ServiceError(errno.EINVAL, "shutdown is only available on rank 0")
    if broker.state != "run" or broker._shutting_down:
        raise ServiceError(errno.EINVAL, f"shutdown cannot be requested in {broker.state} state")
    if msg.get("flags", 0) & STREAMING:
        pending.append(msg)
    else:
        broker.respond(msg, {})
    proc = broker.initial_proc
    if proc is not None and proc.returncode is None:
        try:
            os.kill(proc.pid, signal.SIGHUP)  # its exit shuts the instance down (exit 129)
            log.info("broker: shutdown requested: sent SIGHUP to the initial program (pid %d)", proc.pid)
            broker.loop.call_later(ESCALATE, _escalate, proc, signal.SIGTERM)
            return
        except ProcessLookupError:
            pass
    log.info("broker: shutdown requested")
    broker.shutdown()


def _escalate(proc, sig):
    """The initial program outlived the last signal (it ignores SIGHUP: nohup):
    SIGTERM, then SIGKILL, ``ESCALATE`` seconds apart."""
    if proc.returncode is not None:
        return
    try:
        os.kill(proc.pid, sig)
    except ProcessLookupError:
        return
    log.error("broker: shutdown: the initial program (pid %d) is still running %gs after the last signal: sent %s",
              proc.pid, ESCALATE, signal.Signals(sig).name)
    if sig == signal.SIGTERM:
        asyncio.get_running_loop().call_later(ESCALATE, _escalate, proc, signal.SIGKILL)


def _end_pending(broker, pending):
    for msg in pending:
        broker.respond_error(msg, errno.ENODATA)
    pending.clear()


async def _hwloc_xml(broker, msg, p):
    source = (broker.topology or {}).get("source", "")
    if source.startswith("hwloc (") and source.endswith(")"):
        path = source[len("hwloc ("):-1]
        try:
            with open(path, errors="replace") as f:
                broker.respond(msg, {"rank": broker.rank, "xml": f.read()})
            return
        except OSError as exc:
            raise ServiceError(exc.errno or errno.EIO, f"{path}: {exc.strerror}") from None
    exe = next((shutil.which(name) for name in LSTOPO if shutil.which(name)), None)
    if exe is None:
        raise ServiceError(errno.ENOSYS, f"rank {broker.rank}: hwloc's lstopo-no-graphics is not installed "
                                         "(install hwloc)")
    proc = await asyncio.create_subprocess_exec(exe, "--restrict", "binding", "--of", "xml", "-",
                                                stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
                                                stdin=asyncio.subprocess.DEVNULL)
    out, err = await proc.communicate()
    if proc.returncode != 0:
        why = err.decode(errors="replace").strip().splitlines()
        raise ServiceError(errno.EIO, f"rank {broker.rank}: {os.path.basename(exe)} failed: "
                                      f"{why[-1] if why else f'exit {proc.returncode}'}")
    broker.respond(msg, {"rank": broker.rank, "xml": out.decode(errors="replace")})
