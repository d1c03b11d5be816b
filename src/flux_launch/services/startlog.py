"""The instance's start log (flux-core's ``admin.eventlog``, RFC 18): rank 0
appends ``start {version, core_version}`` when it starts and ``finish {version}``
when it shuts down, so a ``start`` not preceded by a ``finish`` says the previous
instance on this statedir crashed (killed, power lost) and its last writes may be
lost: rank 0 then logs it at startup. ``flux startlog`` lists the runs.
"""

import logging
import time

from flux_launch.services.kvs.service import KVSError

log = logging.getLogger("flux_launch.broker")

KEY = "admin.eventlog"
VERSION = 1


def events(text):
    """The ``start`` and ``finish`` events of version ``VERSION`` in the eventlog
    ``text``, in order; other entries, and lines that do not parse, are skipped."""
    from flux_launch.proto.eventlog import decode_event

    out = []
    for line in text.split("\n"):
        try:
            ev = decode_event(line) if line else None
        except ValueError:
            continue
        if ev and ev["name"] in ("start", "finish") and (ev.get("context") or {}).get("version") == VERSION:
            out.append(ev)
    return out


def crashed_before(text):
    """Whether the eventlog ``text`` ends in a run without its ``finish``."""
    evs = events(text)
    return bool(evs) and evs[-1]["name"] == "start"


class Startlog:
    """Posts ``start`` now (after checking the last run ended) and ``finish`` at ``close``."""

    def __init__(self, kvs):
        from flux_launch import __version__

        self.kvs = kvs
        try:
            previous = self.kvs.lookup(KEY)
        except KVSError:
            previous = ""
        if isinstance(previous, str) and crashed_before(previous):
            log.error("broker: the previous instance on this statedir did not shut down cleanly (no finish in "
                      "%s): data it wrote last may be lost; see flux startlog", KEY)
        self._post("start", {"version": VERSION, "core_version": __version__})

    def _post(self, name, context):
        """Append an event; a key someone replaced by a directory or a value that is
        not an eventlog is logged, not fatal: the instance starts and stops anyway."""
        from flux_launch.proto.eventlog import encode_event

        try:
            self.kvs.commit([{"op": "append", "key": KEY, "value": encode_event(name, context, time.time())}])
        except KVSError as exc:
            log.error("broker: cannot append %s to %s (%s): flux startlog will not show this run; "
                      "flux kvs unlink -R %s repairs it", name, KEY, exc, KEY)

    def close(self):
        if not self.kvs.closed:
            self._post("finish", {"version": VERSION})
