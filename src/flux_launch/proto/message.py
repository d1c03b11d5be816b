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

Raw attachment: bulk bytes (job output) travel beside the JSON, never encoded in
it. A payload that is an object whose ``raw`` member holds bytes is sent with
``"raw": true`` in the JSON and the bytes after it; the receiver's payload gets
the bytes back in ``raw``. On a stream the length word then has its top bit set,
and the body is a 4-byte JSON length, the JSON, and the bytes; on the overlay
the bytes are one more zeromq frame. Routers pass the bytes on without copying
them into JSON.
"""

from flux_launch.proto import fastjson
import struct

NODEID_ANY = -1

STREAMING = 1
NORESPONSE = 2

# A message larger than this is a broken or hostile peer, not a real request: the
# biggest legitimate messages (output eventlog batches) stay far below it.
MAX_MESSAGE = 256 * 1024 * 1024

_HEADER = struct.Struct(">I")
_RAW_FLAG = 0x80000000
_RAW_TYPES = (bytes, bytearray, memoryview)
_BIG = 64 * 1024  # a frame this big is received in place (Decoder.recv_from)
_dumps = fastjson.encoder(separators=(",", ":"), ensure_ascii=False)
_loads = fastjson.loads


class MessageError(ValueError):
    """A frame that is not a valid message; the stream it came from stays usable."""


class FramingError(MessageError):
    """A stream whose framing is broken; the connection cannot be resynchronised."""


def encode(msg):
    """Encode a message as one JSON frame (the overlay form); a raw attachment
    must have been split off first (``split_raw``).

    Raises:
        TypeError, ValueError: the message holds something JSON cannot encode.
    """
    return _dumps(msg).encode()


def split_raw(msg):
    """``(msg, raw)``: the message with its payload's bytes replaced by ``true``
    and those bytes, or ``(msg, None)`` when it carries none."""
    payload = msg.get("payload")
    if type(payload) is dict:
        raw = payload.get("raw")
        if isinstance(raw, _RAW_TYPES) or type(raw) is list:
            msg = dict(msg)
            msg["payload"] = dict(payload, raw=True)
            return msg, raw
    return msg, None


def attach_raw(msg, raw):
    """Put a received attachment back where ``split_raw`` took it from.

    Raises:
        MessageError: the message has no payload object to carry it.
    """
    payload = msg.get("payload")
    if type(payload) is not dict or payload.get("raw") is not True:
        raise MessageError("malformed message: raw bytes without a payload that expects them")
    payload["raw"] = raw
    return msg


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
    parts = frame_parts(msg)
    return parts[0] if len(parts) == 1 else b"".join(parts)


def frame_parts(msg):
    """The stream form as a list of buffers, for a gathering send (``sendmsg``): a
    raw attachment is not copied. A sender may give the attachment as a list of
    buffers, sent as their concatenation."""
    msg, raw = split_raw(msg)
    body = encode(msg)
    if raw is None:
        return [_HEADER.pack(len(body)) + body]
    if type(raw) is not list:
        raw = [raw]
    size = 4 + len(body) + sum(len(r) for r in raw)
    return [_HEADER.pack(_RAW_FLAG | size) + _HEADER.pack(len(body)) + body, *raw]


def drop_sent(views, n):
    """Remove the first ``n`` bytes from ``views``, a deque of byte memoryviews:
    what a partial gathering send (``sendmsg``) of them took."""
    while n:
        head = views[0]
        if n >= len(head):
            n -= len(head)
            views.popleft()
        else:
            views[0] = head[n:]
            n = 0


class Decoder:
    """Incremental decoder for the stream form.

    ``feed()`` returns the messages completed so far. A frame whose JSON is bad is
    returned as a ``MessageError`` instance in the list (the caller logs it and goes
    on); a length header over ``MAX_MESSAGE`` raises ``FramingError``.
    """

    def __init__(self, max_message=MAX_MESSAGE):
        self._buf = bytearray()
        self._max = max_message
        self._big = None  # a big frame's body (or raw attachment) received in place (recv_from)
        self._big_msg = None  # the message whose raw attachment _big is
        self._got = 0

    def feed(self, data):
        buf = self._buf
        buf += data
        out = []
        pos = 0
        n = len(buf)
        view = memoryview(buf)
        try:
            while n - pos >= 4:
                size, has_raw = _frame_size(buf, pos)
                if size > self._max:
                    raise FramingError(f"message of {size} bytes exceeds the limit of {self._max}")
                if n - pos - 4 < size:
                    break
                start = pos + 4
                pos = start + size
                with view[start:pos] as body:
                    out.append(_decode_body(body, has_raw))
        finally:
            view.release()
        if pos:
            del buf[:pos]
        return out

    def recv_from(self, sock, size=1 << 18):
        """Receive once from ``sock`` and return the messages completed, or None at
        EOF. A big frame is received straight into a buffer of its own size (for a
        raw attachment: a bytearray that becomes the payload's ``raw``), instead of
        being accumulated and copied out.

        Raises:
            FramingError: see ``feed``.
        """
        big = self._big
        if big is not None:
            with memoryview(big) as view:
                n = sock.recv_into(view[self._got:])
            if not n:
                return None
            self._got += n
            if self._got < len(big):
                return []
            self._big = None
            msg, self._big_msg = self._big_msg, None
            if msg is None:
                with memoryview(big) as view:
                    return [_decode_body(view, 0)]
            try:
                return [attach_raw(msg, big)]
            except MessageError as exc:
                return [exc.with_traceback(None)]
        data = sock.recv(size)
        if not data:
            return None
        out = self.feed(data)
        buf = self._buf
        if len(buf) >= 8:
            size, has_raw = _frame_size(buf, 0)
            if _BIG < size <= self._max:
                start = 4
                msg = None
                if has_raw:
                    (jlen,) = _HEADER.unpack_from(buf, 4)
                    if jlen > size - 4 or len(buf) < 8 + jlen:
                        return out  # not yet (or broken: feed reports it once complete)
                    try:
                        msg = decode(bytes(buf[8:8 + jlen]))
                    except MessageError:
                        return out
                    start = 8 + jlen
                    size -= 4 + jlen
                big = self._big = bytearray(size)
                self._got = len(buf) - start
                big[:self._got] = memoryview(buf)[start:]
                self._big_msg = msg
                del buf[:]
        return out

    @property
    def pending(self):
        """Number of buffered bytes of an incomplete frame."""
        return len(self._buf) + (self._got + 4 if self._big is not None else 0)


def _frame_size(buf, pos):
    """``(size, has_raw)`` of the frame whose length word is at ``pos``."""
    (word,) = _HEADER.unpack_from(buf, pos)
    return word & ~_RAW_FLAG, word & _RAW_FLAG


def _decode_body(view, has_raw):
    """A message from a frame's body (a memoryview), or the MessageError it is."""
    try:
        if not has_raw:
            return decode(bytes(view))
        size = len(view)
        (jlen,) = _HEADER.unpack_from(view, 0) if size >= 4 else (size,)
        if jlen > size - 4:
            raise MessageError(f"malformed message: JSON length {jlen} exceeds the frame")
        msg = decode(bytes(view[4:4 + jlen]))
        return attach_raw(msg, bytes(view[4 + jlen:]))
    except MessageError as exc:
        return exc.with_traceback(None)  # its frames would keep the buffer exported


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
