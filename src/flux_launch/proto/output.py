"""The job output eventlog's entries (RFC 24), as the shells write them and
``flux job attach`` reads them: one definition for both sides.

Entries: ``header {version, encoding, count, options}`` (the leader shell, first),
``data {stream, rank, data[, encoding: base64]}``, ``data {stream, rank, eof: true}``,
``redirect {stream, rank, path}`` and ``log {level, message, rank}`` (the shell's
own messages, printed as ``flux-shell[RANK]: LEVEL: message``).

The hot path: a ``data`` entry of UTF-8 text is written as the bytes
``{"timestamp":T,"name":"data","context":{"stream":"S","rank":"R","data":"ESCAPED"}}``
(``data_head`` + escaped text + ``DATA_TAIL``) and read back by ``data_head_parse``
without a JSON decoder; any other entry is plain JSON.
"""

import time

from flux_launch.proto import fastjson

# syslog levels as flux-core's shell logs them
LEVELS = {"EMERG": 0, "ALERT": 1, "FATAL": 2, "CRIT": 2, "ERROR": 3, "WARN": 4, "WARNING": 4, "NOTICE": 5,
          "INFO": 6, "DEBUG": 7, "TRACE": 8}
LEVEL_NAMES = {0: "EMERG", 1: "ALERT", 2: "FATAL", 3: "ERROR", 4: "WARN", 5: "NOTICE", 6: "INFO", 7: "DEBUG",
               8: "TRACE"}


def level_number(name):
    """The number of a level name (ERROR for an unknown one)."""
    return LEVELS.get(name, 3)


def level_name(number):
    """The name of a level number (ERROR for an unknown one)."""
    return LEVEL_NAMES.get(number, "ERROR")


def entry(name, context, timestamp=None):
    """One eventlog entry as a line of UTF-8 bytes."""
    return (fastjson.dumps({"timestamp": time.time() if timestamp is None else timestamp, "name": name,
                        "context": context}, separators=(",", ":"), ensure_ascii=False) + "\n").encode()


def header_context(ntasks):
    """The ``header`` entry's context for a job of ``ntasks`` tasks."""
    return {"version": 1, "encoding": {"stdout": "UTF-8", "stderr": "UTF-8"},
            "count": {"stdout": ntasks, "stderr": ntasks}, "options": {}}


def log_context(level, message, rank):
    return {"level": level_number(level), "message": message, "rank": rank}


_TS = b'{"timestamp":'
_NAME = b',"name":"data","context":{"stream":"'
_RANK = b'","rank":"'
_DATA = b'","data":"'
DATA_TAIL = b'"}}\n'


def data_head(stream, rank):
    """The bytes between the timestamp and the escaped text of a data entry."""
    return _NAME + stream.encode() + _RANK + str(rank).encode() + _DATA


def data_entry(head, escaped, timestamp=None):
    """A data entry from its ``data_head`` and JSON-escaped text (no decode, no copy
    of the text beyond the join)."""
    ts = repr(time.time() if timestamp is None else timestamp).encode()
    return b"".join((_TS, ts, head, escaped, DATA_TAIL))


def data_head_parse(buf, start, end):
    """``(stream, rank, offset of the data)`` when the line ``buf[start:end]`` (``end``:
    its newline, which no part of the head can match) opens a data entry the way
    ``data_entry`` writes them, else None (decode that line with json)."""
    if not buf.startswith(_TS, start):
        return None
    ts = start + len(_TS)
    comma = buf.find(b",", ts, end)  # the end of the timestamp
    if comma <= ts or buf[ts:comma].strip(b"-+.0123456789eE") or not buf.startswith(_NAME, comma):
        return None
    i = comma + len(_NAME)
    if buf.startswith(b"stdout", i):
        stream = "stdout"
    elif buf.startswith(b"stderr", i):
        stream = "stderr"
    else:
        return None
    if not buf.startswith(_RANK, i + 6):
        return None
    i += 6 + len(_RANK)
    quote = buf.find(b'"', i, end)
    if quote <= i or not buf[i:quote].isdigit() or not buf.startswith(_DATA, quote):
        return None
    return stream, buf[i:quote].decode(), quote + len(_DATA)
