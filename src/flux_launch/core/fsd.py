"""Flux Standard Duration (RFC 23).

A duration string is ``N[SUFFIX]`` where ``N`` is a non-negative floating
point number and ``SUFFIX`` is one of ``ms``, ``s`` (the default), ``m``,
``h`` or ``d``.  ``inf`` / ``infinity`` (any case, no suffix) mean forever.

:func:`format` follows flux-core's ``fsd_format_duration()``: values under
0.1 s (but not 0) are shown in ``ms``, values under a minute in ``s``, then
``m`` under an hour, ``h`` under a day, otherwise ``d``, each printed with
C ``%.6g`` (so ``90`` -> ``"1.5m"``, ``0.05`` -> ``"50ms"``, ``0`` -> ``"0s"``).
"""

from __future__ import annotations

import math

__all__ = ["parse", "format", "parse_duration", "format_duration"]

_MULTIPLIERS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}
_NUMBER_CHARS = frozenset("0123456789.eE+-")
_INFINITY_WORDS = ("inf", "infinity", "+inf", "+infinity")


def _invalid(s: object, why: str = "") -> ValueError:
    msg = f"invalid Flux standard duration {s!r}"
    return ValueError(f"{msg}: {why}" if why else msg)


def parse(s: str) -> float:
    """Parse a Flux Standard Duration string into seconds.

    Args:
        s: e.g. ``"30"``, ``"1.5s"``, ``"10m"``, ``"2h"``, ``"1d"``,
            ``"0.5ms"``, ``"1e3"``, ``"inf"`` or ``"infinity"``.

    Returns:
        The duration in seconds (``math.inf`` for infinity).

    Raises:
        ValueError: if ``s`` is empty, negative, NaN, has an unknown suffix,
            has a suffix on infinity, contains whitespace or other stray
            characters, or is otherwise not a number.  The message reads
            ``invalid Flux standard duration '<s>'``.
        TypeError: if ``s`` is not a string.
    """
    if not isinstance(s, str):
        raise TypeError(f"duration string expected, not {type(s).__name__}")
    if s.lower() in _INFINITY_WORDS:
        return math.inf
    num, mult, has_unit = s, 1.0, True
    if s.endswith("ms"):
        num, mult = s[:-2], _MULTIPLIERS["ms"]
    elif s and s[-1] in _MULTIPLIERS:
        num, mult = s[:-1], _MULTIPLIERS[s[-1]]
    else:
        has_unit = False
    if num.lower() in _INFINITY_WORDS:
        raise _invalid(s, "units are not allowed with infinity")
    if not num or not _NUMBER_CHARS.issuperset(num):
        raise _invalid(s)
    if num.startswith("-"):
        raise _invalid(s, "negative durations are not allowed")
    try:
        value = float(num)
    except ValueError:
        raise _invalid(s) from None
    if math.isinf(value) and has_unit:
        # overflowed mantissa, e.g. "1e999m": flux rejects units on inf
        raise _invalid(s, "units are not allowed with infinity")
    return value * mult


def format(seconds: float, precision: int = 6) -> str:
    """Format a duration in seconds as a Flux Standard Duration string.

    Args:
        seconds: non-negative duration; ``math.inf`` gives ``"infinity"``.
        precision: significant digits, as C ``%.*g`` (flux uses 6 by
            default and 2 for compact displays such as ``flux top``).

    Returns:
        e.g. ``0.05`` -> ``"50ms"``, ``0.5`` -> ``"0.5s"``, ``90`` ->
        ``"1.5m"``, ``7200`` -> ``"2h"``, ``172800`` -> ``"2d"``.

    Raises:
        ValueError: if ``seconds`` is negative or NaN.
        TypeError: if ``seconds`` is not a real number.
    """
    if isinstance(seconds, bool) or not isinstance(seconds, (int, float)):
        raise TypeError(f"duration must be a number, not {type(seconds).__name__}")
    d = float(seconds)
    if math.isinf(d) and d > 0:
        return "infinity"
    if math.isnan(d) or d < 0:
        raise ValueError(f"invalid duration {seconds!r}: must be >= 0")
    if d < 0.1 and d != 0.0:
        value, unit = d * 1000.0, "ms"
    elif d < 60.0:
        value, unit = d, "s"
    elif d < 3600.0:
        value, unit = d / 60.0, "m"
    elif d < 86400.0:
        value, unit = d / 3600.0, "h"
    else:
        value, unit = d / 86400.0, "d"
    return "%.*g%s" % (precision, value, unit)


parse_duration = parse
format_duration = format
