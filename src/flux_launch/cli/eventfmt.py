"""Eventlog entries as ``flux job eventlog`` and ``flux job wait-event`` print
them (flux-core's libeventlog formatter).

Formats (``-f``): ``text`` (``TIME NAME key=value...``, each value compact JSON)
or ``json`` (the RFC 18 entry itself, one line). Time formats (``-T``):

- ``raw``: the timestamp, six decimals (``1701868800.012345``);
- ``iso``: local ISO 8601 with microseconds and the zone (``2023-12-06T13:20:00.012345Z``,
  ``Z`` for UTC, ``+HH:MM`` otherwise);
- ``offset``: seconds since the first entry printed (``0.000000``, ``0.012345``);
- ``human`` (or ``reltime``): ``[Dec06 13:20]`` for the first entry of each new
  minute, then ``[  +0.012345]``, seconds since that entry.

``-H/--human`` is ``-f text -T human`` with colors when stdout is a terminal;
``-L/--color[=WHEN]`` (``always`` when WHEN is left out, ``never``, ``auto``) colors
the time, the name (an ``exception`` in bold red) and the context's keys and values.
"""

import json
import time

# flux-core's ansi_color.h
_RESET = "\x1b[0m"
_COLORS = {"name": "\x1b[33m", "time": "\x1b[32m", "timebreak": "\x1b[1m\x1b[32m", "key": "\x1b[34m",
           "value": "\x1b[35m", "number": "\x1b[37m", "exception": "\x1b[1m\x1b[31m"}
FORMATS = ("text", "json")
TIME_FORMATS = ("raw", "iso", "offset", "human", "reltime")
WHEN = ("always", "never", "auto")
_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")  # not the locale's


def color_wanted(when, stream):
    """Whether ``--color=WHEN`` colors what goes to ``stream``.

    Raises:
        ValueError: ``invalid value: --color=WHEN`` (flux-core's words).
    """
    if when not in WHEN:
        raise ValueError(f"invalid value: --color={when} (use always, never or auto)")
    return when == "always" or (when == "auto" and stream.isatty())


class EventFormatter:
    """Formats eventlog entries (dicts with ``timestamp``, ``name``, ``context``?)
    one at a time: ``format(entry)`` is the line, without its newline. The
    ``offset`` and ``human`` time formats remember what came before.

    Raises:
        ValueError: ``invalid format type 'X'``, ``invalid time-format type 'X'``
            (flux-core's words, with what to use instead).
    """

    def __init__(self, fmt="text", time_format="raw", color=False):
        if fmt.lower() not in FORMATS:
            raise ValueError(f"invalid format type '{fmt}' (use text or json)")
        if time_format.lower() not in TIME_FORMATS:
            raise ValueError(f"invalid time-format type '{time_format}' (use raw, iso, offset or human)")
        self.json = fmt.lower() == "json"
        self.time_format = "human" if time_format.lower() == "reltime" else time_format.lower()
        self.color = color
        self.t0 = None  # offset: the first entry's time
        self._minute = None  # human: (the minute last printed as a date, its entry's time)

    def _c(self, kind, text):
        return f"{_COLORS[kind]}{text}{_RESET}" if self.color else text

    def timestamp(self, ts):
        """``ts`` in this time format (colored as flux-core colors it)."""
        if self.time_format == "raw":
            return self._c("time", "%f" % ts)
        if self.time_format == "offset":
            if self.t0 is None:
                self.t0 = ts
            return self._c("time", "%f" % (ts - self.t0))
        tm = time.localtime(ts)
        if self.time_format == "iso":
            usec = int((ts - int(ts)) * 1e6)
            zone = time.strftime("%z", tm)
            zone = "Z" if zone == "+0000" else f"{zone[:3]}:{zone[3:]}" if len(zone) == 5 else zone
            return self._c("time", time.strftime("%Y-%m-%dT%H:%M:%S", tm) + ".%06d%s" % (usec, zone))
        minute = tm[:5]  # human: a new minute prints its date, the rest an offset from its first entry
        if self._minute is not None and self._minute[0] == minute:
            return self._c("time", "[%+11.6f]" % (ts - self._minute[1]))
        self._minute = (minute, ts)
        return self._c("timebreak", "[%s%02d %02d:%02d]" % (_MONTHS[tm.tm_mon - 1], tm.tm_mday, tm.tm_hour,
                                                             tm.tm_min))

    def format(self, entry):
        """The line of ``entry``."""
        if self.json:
            return json.dumps(dict(entry), separators=(",", ":"), ensure_ascii=False)
        name = entry["name"]
        out = [self.timestamp(entry["timestamp"]), " ", self._c("exception" if name == "exception" else "name", name)]
        for key, value in (entry.get("context") or {}).items():
            text = json.dumps(value, separators=(",", ":"), ensure_ascii=False)
            number = isinstance(value, (int, float)) and not isinstance(value, bool)
            out.append(f" {self._c('key', key)}={self._c('number' if number else 'value', text)}")
        return "".join(out)

    def seen(self, entry):
        """Note ``entry`` without printing it (wait-event's skipped entries still
        set the offsets' start, as flux-core's)."""
        if self.t0 is None:
            self.t0 = entry["timestamp"]
