"""Dates and times a user types (``flux submit --begin-time=WHEN``), as seconds
since the epoch.

Accepted: ``now``; ``+FSD`` (that long from now: ``+30s``, ``+1.5h``, RFC 23);
``in N UNITS`` / ``in a(n) UNIT`` (``in an hour``, ``in 5 minutes``); an ISO date
and time (``2026-12-24 08:00``, ``2026-12-24T08:00:00``, ``2026-12-24``); a time
of day (``8am``, ``8:30pm``, ``17:45``, ``17:45:10``, ``noon``, ``midnight``),
the next one to come; ``today TIME`` and ``tomorrow [TIME]`` (tomorrow alone is
tomorrow at midnight); ``@SECONDS`` (a timestamp as it is).
"""

import re
import time
from datetime import datetime, timedelta

_UNITS = {"s": 1, "sec": 1, "second": 1, "m": 60, "min": 60, "minute": 60, "h": 3600, "hr": 3600,
          "hour": 3600, "d": 86400, "day": 86400, "w": 604800, "week": 604800}
_TOD = re.compile(r"^(\d{1,2})(?::(\d{2}))?(?::(\d{2}))?\s*(am|pm)?$")


def _time_of_day(text):
    """``(hour, minute, second)`` of ``8am``, ``17:45``..., or None."""
    if text in ("noon", "midnight"):
        return (12 if text == "noon" else 0, 0, 0)
    m = _TOD.match(text)
    if not m or (m.group(2) is None and m.group(4) is None):  # a bare number is no time
        return None
    hour, minute, second = int(m.group(1)), int(m.group(2) or 0), int(m.group(3) or 0)
    if m.group(4):
        if not 1 <= hour <= 12:
            return None
        hour = hour % 12 + (12 if m.group(4) == "pm" else 0)
    if hour > 23 or minute > 59 or second > 59:
        return None
    return hour, minute, second


def parse(text, now=None):
    """Seconds since the epoch that ``text`` names.

    Raises:
        ValueError: not a date or time this understands.
    """
    now = time.time() if now is None else now
    s = " ".join(text.strip().lower().split())
    if s == "now":
        return now
    if s.startswith("+"):
        from flux_launch.core import fsd

        return now + fsd.parse(s[1:])
    if s.startswith("@"):
        return float(s[1:])
    m = re.match(r"^in (an?|\d+(?:\.\d+)?) ([a-z]+?)s?$", s)
    if m and m.group(2) in _UNITS:
        count = 1.0 if m.group(1) in ("a", "an") else float(m.group(1))
        return now + count * _UNITS[m.group(2)]
    base = datetime.fromtimestamp(now)
    day, rest = None, s
    for word, offset in (("today", 0), ("tomorrow", 1)):
        if s == word or s.startswith(word + " "):
            day, rest = base.date() + timedelta(days=offset), s[len(word):].strip()
            break
    if day is not None and not rest:
        return datetime.combine(day, datetime.min.time()).timestamp() if day != base.date() else now
    tod = _time_of_day(rest)
    if tod is not None:
        at = datetime.combine(day or base.date(), datetime.min.time()).replace(
            hour=tod[0], minute=tod[1], second=tod[2])
        if day is None and at.timestamp() <= now:
            at += timedelta(days=1)  # the next one to come
        return at.timestamp()
    if day is None:
        try:
            return datetime.fromisoformat(s.upper() if "t" in s else s).timestamp()
        except ValueError:
            pass
    raise ValueError(f"invalid date or time {text!r} (e.g. +1h, 'in 10 minutes', 8pm, tomorrow 8am, "
                     "2026-12-24 08:00)")
