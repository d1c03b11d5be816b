"""KVS event log format (Flux RFC 18), without any I/O.

An eventlog is a sequence of newline-terminated lines, each a compact JSON
object with a numeric ``timestamp`` (seconds since the Unix epoch), a string
``name`` and an optional ``context`` object::

    {"timestamp":1552593348.073045,"name":"submit","context":{"urgency":16}}
    {"timestamp":1552593348.104432,"name":"clean"}

Events are plain dicts.  :func:`encode_event` writes keys in the order
timestamp, name, context (as flux-core does); ``context`` is written when it
is given, even if empty, and left out when it is ``None``.
"""

from __future__ import annotations

import math
import time

from flux_launch.proto import fastjson

__all__ = [
    "encode_event",
    "encode",
    "decode_event",
    "decode",
    "validate_event",
    "EventlogParser",
]

def _reject_constant(c: str) -> object:
    raise ValueError(f"{c} is not valid JSON")


_decoder = fastjson.Decoder(parse_constant=_reject_constant)  # no NaN/Infinity


def _invalid(why: str, text: str | None = None) -> ValueError:
    if text is not None:
        shown = text if len(text) <= 80 else text[:77] + "..."
        return ValueError(f"invalid eventlog entry: {why}: {shown!r}")
    return ValueError(f"invalid eventlog entry: {why}")


def validate_event(event: object) -> dict:
    """Check that ``event`` is a valid eventlog entry object.

    Returns:
        ``event`` itself.

    Raises:
        ValueError: if it is not a dict, ``timestamp`` is missing or not a
            finite number (bools are rejected), ``name`` is missing or not a
            non-empty string, or ``context`` is present and not a dict.
    """
    if not isinstance(event, dict):
        raise _invalid("entry is not a JSON object")
    ts = event.get("timestamp")
    if isinstance(ts, bool) or not isinstance(ts, (int, float)) or not math.isfinite(ts):
        raise _invalid("timestamp must be a finite number")
    name = event.get("name")
    if not isinstance(name, str) or not name:
        raise _invalid("name must be a non-empty string")
    if "context" in event and not isinstance(event["context"], dict):
        raise _invalid("context must be a JSON object")
    return event


def encode_event(name: str, context: dict | None = None,
                 timestamp: float | None = None) -> str:
    """Encode one eventlog entry as a newline-terminated line.

    Args:
        name: event name, a non-empty string.
        context: optional JSON-serializable dict; omitted from the output
            when ``None``.
        timestamp: seconds since the epoch; ``None`` (or 0, as in flux-core)
            means now.  Always written as a JSON real, e.g. ``5.0``.

    Returns:
        e.g. ``'{"timestamp":1.5,"name":"start"}\\n'``.

    Raises:
        ValueError: if ``name`` is empty or not a string, ``context`` is not a
            dict, ``timestamp`` is negative or not finite, or ``context`` is
            not JSON serializable (non-finite floats included).
    """
    if not isinstance(name, str) or not name:
        raise _invalid("name must be a non-empty string")
    if context is not None and not isinstance(context, dict):
        raise _invalid("context must be a dict")
    if timestamp is None or timestamp == 0:
        timestamp = time.time()
    if isinstance(timestamp, bool) or not isinstance(timestamp, (int, float)):
        raise _invalid("timestamp must be a number")
    ts = float(timestamp)
    if not math.isfinite(ts) or ts < 0:
        raise _invalid("timestamp must be a finite, non-negative number")
    entry: dict[str, object] = {"timestamp": ts, "name": name}
    if context is not None:
        entry["context"] = context
    return _dumps(entry)


_encode = fastjson.encoder(separators=(",", ":"), ensure_ascii=False, allow_nan=False)


def _dumps(entry: dict) -> str:
    try:
        return _encode(entry) + "\n"
    except (TypeError, ValueError) as e:
        raise _invalid(f"cannot serialize: {e}") from None


def encode(events: list[dict]) -> str:
    """Encode a list of event dicts as a whole eventlog string.

    Raises:
        ValueError: if an event is invalid (see :func:`validate_event`) or
            not JSON serializable.
    """
    return "".join(_dumps(validate_event(e)) for e in events)


def decode_event(line: str) -> dict:
    """Decode one eventlog line (a trailing newline is optional).

    Returns:
        The event dict.

    Raises:
        ValueError: ``invalid eventlog entry: ...`` if the line is empty,
            contains an embedded newline, is not valid JSON, or fails
            :func:`validate_event`.
    """
    if not isinstance(line, str):
        raise TypeError(f"eventlog entry must be str, not {type(line).__name__}")
    text = line[:-1] if line.endswith("\n") else line
    if not text:
        raise _invalid("empty entry")
    if "\n" in text:
        raise _invalid("embedded newline", text)
    try:
        event = _decoder.decode(text)
    except ValueError:
        raise _invalid("not valid JSON", text) from None
    try:
        return validate_event(event)
    except ValueError as e:
        raise ValueError(f"{e}: {text[:80]!r}") from None


def decode(text: str, allow_partial: bool = False) -> object:
    """Decode a whole eventlog.

    Args:
        text: newline-terminated entries; ``""`` is an empty log.
        allow_partial: if true, a final line without a newline is not an
            error but is returned unparsed as leftover.

    Returns:
        ``list[dict]`` of events, or with ``allow_partial=True`` a tuple
        ``(events, leftover)`` where ``leftover`` is ``""`` if ``text`` ended
        with a newline.

    Raises:
        ValueError: if any complete entry is invalid, or (without
            ``allow_partial``) the text does not end with a newline.
    """
    lines = text.split("\n")
    leftover = lines.pop()  # "" when text ends with "\n"
    if leftover and not allow_partial:
        raise _invalid("final entry is missing its newline", leftover)
    events = [decode_event(line) for line in lines]
    return (events, leftover) if allow_partial else events


class EventlogParser:
    """Incremental eventlog decoder for streams that split entries anywhere.

    Example::

        p = EventlogParser()
        p.feed('{"timestamp":1.0,"na')      # -> []
        p.feed('me":"submit"}\\n')          # -> [{"timestamp": 1.0, ...}]
    """

    def __init__(self) -> None:
        self._buf = ""

    @property
    def pending(self) -> str:
        """Text received after the last newline, not yet decoded."""
        return self._buf

    def feed(self, data: str) -> list[dict]:
        """Add ``data`` and return the events completed by it, in order.

        Raises:
            ValueError: if a completed entry is invalid.  Events completed
                before the bad entry are returned first and the error is
                raised by the following call (``feed("")`` will do); the bad
                entry is then discarded and later text stays buffered.
        """
        # One split per call: a chunk holding thousands of entries costs one pass,
        # not a copy of the rest of the buffer per entry.
        *lines, self._buf = (self._buf + data).split("\n")
        events: list[dict] = []
        for i, line in enumerate(lines):
            try:
                events.append(decode_event(line))
            except ValueError:
                if events:  # report the good events first; re-raise on the next feed
                    self._buf = "\n".join(lines[i:] + [self._buf])
                    return events
                self._buf = "\n".join(lines[i + 1:] + [self._buf])
                raise
        return events

    def close(self) -> None:
        """Check that the stream ended on an entry boundary.

        Raises:
            ValueError: if a partial entry is still buffered.
        """
        if self._buf:
            raise _invalid("stream ended inside an entry", self._buf)
