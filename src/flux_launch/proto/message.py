"""Broker messages and their framing on stream sockets (no I/O).

A message is a dict (RFC 3 in spirit, JSON on the wire):

- ``type``: ``"req"``, ``"resp"``, ``"ev"`` (event) or ``"ctl"`` (overlay control)
- ``topic``: ``"service.method"``
- ``nodeid``: target rank of a request, or ``NODEID_ANY`` (-1)
- ``matchtag``: chosen by the sender of a request, echoed in its responses
- ``payload``: any JSON value
- ``errnum``/``errstr``: set in an error response
- ``route``: hops a request took; its responses retrace them
- ``flags``: ``STREAMING`` (several responses, the last an ``ENODATA`` error) and
  ``NORESPONSE``
- ``userid``/``rolemask``: credentials stamped by the broker that accepted the client

On the local connector each message is a 4-byte big-endian length followed by that
many bytes of UTF-8 JSON. On the overlay (zeromq) a message is one JSON frame.
"""

import json
import struct

NODEID_ANY = -1

STREAMING = 1
NORESPONSE = 2

# A message larger than this is a broken or hostile peer, not a real request: the
# biggest legitimate messages (output eventlog batches) stay far below it.
MAX_MESSAGE = 256 * 1024 * 1024

_HEADER = struct.Struct(">I")
_dumps = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False).encode
_loads = json.loads


class MessageError(ValueError):
    """A frame that is not a valid message; the stream it came from stays usable."""


class FramingError(MessageError):
    """A stream whose framing is broken; the connection cannot be resynchronised."""


def encode(msg):
    """Encode a message as one JSON frame (the overlay form).

    Raises:
        TypeError, ValueError: the message holds something JSON cannot encode.
    """
    return _dumps(msg).encode()


def decode(data):
    """Decode one JSON frame into a message dict.

    Raises:
        MessageError: the frame is not UTF-8 JSON, not an object, or lacks a valid
            ``type``/``topic``.
    """
    try:
        msg = _loads(data)
    except (ValueError, UnicodeDecodeError) as exc:
        raise MessageError(f"malformed message: {exc}") from None
    if not isinstance(msg, dict):
        raise MessageError("malformed message: not a JSON object")
    mtype = msg.get("type")
    if mtype not in ("req", "resp", "ev", "ctl"):
        raise MessageError(f"malformed message: bad type {mtype!r}")
    if not isinstance(msg.get("topic", ""), str):
        raise MessageError("malformed message: topic is not a string")
    return msg


def frame(msg):
    """Encode a message with its length header (the stream form)."""
    body = encode(msg)
    return _HEADER.pack(len(body)) + body


class Decoder:
    """Incremental decoder for the stream form.

    ``feed()`` returns the messages completed so far. A frame whose JSON is bad is
    returned as a ``MessageError`` instance in the list (the caller logs it and goes
    on); a length header over ``MAX_MESSAGE`` raises ``FramingError``.
    """

    def __init__(self, max_message=MAX_MESSAGE):
        self._buf = bytearray()
        self._max = max_message

    def feed(self, data):
        buf = self._buf
        buf += data
        out = []
        pos = 0
        n = len(buf)
        while n - pos >= 4:
            (size,) = _HEADER.unpack_from(buf, pos)
            if size > self._max:
                raise FramingError(f"message of {size} bytes exceeds the limit of {self._max}")
            if n - pos - 4 < size:
                break
            body = bytes(buf[pos + 4:pos + 4 + size])
            pos += 4 + size
            try:
                out.append(decode(body))
            except MessageError as exc:
                out.append(exc)
        if pos:
            del buf[:pos]
        return out

    @property
    def pending(self):
        """Number of buffered bytes of an incomplete frame."""
        return len(self._buf)


def request(topic, payload=None, nodeid=NODEID_ANY, matchtag=0, flags=0):
    """Build a request message."""
    msg = {"type": "req", "topic": topic, "nodeid": nodeid, "matchtag": matchtag,
           "payload": payload}
    if flags:
        msg["flags"] = flags
    return msg


def response(req, payload=None, errnum=0, errstr=None):
    """Build the response to ``req``; its route is the request's, to be popped by the router."""
    msg = {"type": "resp", "topic": req.get("topic", ""), "matchtag": req.get("matchtag", 0),
           "route": list(req.get("route", ()))}
    if errnum:
        msg["errnum"] = errnum
        if errstr:
            msg["errstr"] = errstr
    else:
        msg["payload"] = payload
    return msg


def event(topic, payload=None, seq=0):
    """Build an event message."""
    return {"type": "ev", "topic": topic, "payload": payload, "seq": seq}
