"""PMI-2 wire protocol (MPICH's "simple" PMI-2, Slurm's ``--mpi=pmi2``), without I/O.

A connection opens like PMI-1: the client sends the line
``cmd=init pmi_version=2 pmi_subversion=0`` and the server answers
``cmd=response_to_init pmi_version=2 pmi_subversion=0 rc=0`` (see
:func:`init_response`). From then on every message, both ways, is a frame: a
6-byte length header (the body's size in decimal, padded with spaces: MPICH and
Slurm left-justify it) and a body of ``key=value;`` pairs, the first
``cmd=NAME;``. A ``;`` inside a value is doubled (``;;``). Responses are named
``NAME-response`` and carry ``rc=`` (0 or a ``PMI2_*`` code below) and, on
error, ``errmsg=``. Booleans are ``TRUE`` / ``FALSE``.

    >>> encode("fullinit", pmirank=0)
    b'23    cmd=fullinit;pmirank=0;'

The server engine is in ``proto/pmi2_server.py``; clients in
``client/pmi2_client.py`` and ``pmi/libpmi2.c``.
"""

from .pmi1 import PMIProtocolError

# Return codes, as in MPICH's pmi2.h (and Slurm's copy of it).
PMI2_SUCCESS = 0
PMI2_FAIL = -1
PMI2_ERR_INIT = 1
PMI2_ERR_NOMEM = 2
PMI2_ERR_INVALID_ARG = 3
PMI2_ERR_INVALID_KEY = 4
PMI2_ERR_INVALID_KEY_LENGTH = 5
PMI2_ERR_INVALID_VAL = 6
PMI2_ERR_INVALID_VAL_LENGTH = 7
PMI2_ERR_INVALID_LENGTH = 8
PMI2_ERR_INVALID_NUM_ARGS = 9
PMI2_ERR_INVALID_ARGS = 10
PMI2_ERR_INVALID_NUM_PARSED = 11
PMI2_ERR_INVALID_KEYVALP = 12
PMI2_ERR_INVALID_SIZE = 13
PMI2_ERR_OTHER = 14

# MPICH's client refuses longer keys and values when it parses a message.
MAX_KEYLEN = 64
MAX_VALLEN = 1024

HEADER_LEN = 6
# A body longer than this is garbage, not a request: a put is at most ~2.2 KB
# (a 1024-byte value whose every byte is an escaped ';').
MAX_BODY = 64 * 1024

TRUE = "TRUE"
FALSE = "FALSE"

INIT_REQUEST = b"cmd=init pmi_version=2 pmi_subversion=0\n"


class PMI2ProtocolError(PMIProtocolError):
    """A frame or body that breaks the PMI-2 wire protocol (the peer should be dropped).

    A :class:`~flux_launch.proto.pmi1.PMIProtocolError`, so glue serving both
    versions catches one class.

    Attributes:
        cmd: the command the message named, or None when none could be read.
    """

    def __init__(self, message, cmd=None):
        super().__init__(message, cmd)


def _short(text, limit=40):
    return text if len(text) <= limit else text[:limit] + "..."


def init_response(rc=0, msg=None):
    """The PMI-1 style line answering a PMI-2 ``cmd=init`` (bytes, with newline)."""
    line = f"cmd=response_to_init pmi_version=2 pmi_subversion=0 rc={rc}"
    if msg:
        line += " msg=" + " ".join(msg.replace("=", ":").split())
    return (line + "\n").encode()


def _check_key(key):
    if not key or "=" in key or ";" in key or len(key) > MAX_KEYLEN:
        raise ValueError(f"invalid PMI-2 key {key!r}: 1 to {MAX_KEYLEN} characters, "
                         "without '=' or ';'")


def _text(value):
    if value is True:
        return TRUE
    if value is False:
        return FALSE
    return str(value)


def encode_body(cmd, fields=()):
    """The body (str) of a message: ``cmd=CMD;`` then ``fields`` (pairs, in order).

    Raises:
        ValueError: an empty command, or a key that is empty, too long or holds
            '=' or ';'. Values are str() of anything (True/False become
            TRUE/FALSE); a ';' in one is escaped.
    """
    if not cmd or ";" in cmd or "=" in cmd:
        raise ValueError(f"invalid PMI-2 command {cmd!r}")
    parts = [f"cmd={cmd};"]
    for key, value in fields:
        _check_key(key)
        parts.append(f"{key}={_text(value).replace(';', ';;')};")
    return "".join(parts)


def frame(body):
    """Prefix a body (str or bytes) with its length header; returns bytes.

    Raises:
        ValueError: a body over :data:`MAX_BODY` bytes.
    """
    data = body.encode() if isinstance(body, str) else bytes(body)
    if len(data) > MAX_BODY:
        raise ValueError(f"PMI-2 message of {len(data)} bytes is over the {MAX_BODY}-byte limit")
    return f"{len(data):<{HEADER_LEN}d}".encode() + data


def encode(cmd, _fields=(), **fields):
    """One framed message: ``cmd=CMD;`` then ``_fields`` (pairs) and ``fields``.

    Keyword names with '_' in them stand for keys with '-' (``pmi_version`` is
    ``pmi-version``); pass pairs in ``_fields`` for keys that need another
    spelling. Raises ValueError as :func:`encode_body` and :func:`frame` do.
    """
    pairs = list(_fields) + [(k.replace("_", "-"), v) for k, v in fields.items()]
    return frame(encode_body(cmd, pairs))


def split_frame(buf, max_body=MAX_BODY):
    """Cut the first frame off ``buf`` (bytes).

    Returns:
        ``(body, rest)`` (both bytes), or None when ``buf`` does not hold a
        whole frame yet.

    Raises:
        PMI2ProtocolError: a header that is not a decimal number padded with
            spaces, or a length over ``max_body``.
    """
    if len(buf) < HEADER_LEN:
        if buf and not bytes(buf).strip(b" ").isdigit() and bytes(buf).strip(b" "):
            raise PMI2ProtocolError(f"PMI-2 length header is not a number: {_short(repr(bytes(buf)))}")
        return None
    head = bytes(buf[:HEADER_LEN])
    digits = head.strip(b" ")
    if not digits.isdigit() or b" " in digits:
        raise PMI2ProtocolError(f"PMI-2 length header {head!r} is not a number "
                                "(PMI-1 text or garbage on a PMI-2 connection?)")
    size = int(digits)
    if size > max_body:
        raise PMI2ProtocolError(f"PMI-2 message length {size} is over the {max_body}-byte limit")
    if len(buf) < HEADER_LEN + size:
        return None
    return bytes(buf[HEADER_LEN:HEADER_LEN + size]), bytes(buf[HEADER_LEN + size:])


def decode(body):
    """Parse a message body (bytes or str) into a dict, ``cmd`` first.

    A repeated key keeps its first value (as Slurm's and MPICH's lookups do).

    Raises:
        PMI2ProtocolError: not UTF-8, control characters other than tab and
            newline, no leading ``cmd=``, a pair without '=' or an empty key, a
            key over :data:`MAX_KEYLEN`, or a value not ended by ';'.
    """
    if isinstance(body, str):
        text = body
    else:
        try:
            text = bytes(body).decode("utf-8")
        except UnicodeDecodeError:
            raise PMI2ProtocolError(f"PMI-2 message is not UTF-8 text (binary garbage?): "
                                    f"{_short(repr(bytes(body)))}") from None
    if not text.replace("\t", " ").replace("\n", " ").isprintable():
        raise PMI2ProtocolError(f"PMI-2 message holds control characters: {_short(repr(text))}")
    if not text.startswith("cmd="):
        raise PMI2ProtocolError(f"PMI-2 message does not start with cmd=: {_short(repr(text))}")
    fields = {}
    pos, end = 0, len(text)
    while pos < end:
        eq = text.find("=", pos)
        if eq < 0:
            raise PMI2ProtocolError(f"PMI-2 pair without '=' in {_short(repr(text))}", fields.get("cmd"))
        key = text[pos:eq]
        if not key or ";" in key or len(key) > MAX_KEYLEN:
            raise PMI2ProtocolError(f"bad PMI-2 key {_short(repr(key))}", fields.get("cmd"))
        value = []
        i = eq + 1
        while True:
            semi = text.find(";", i)
            if semi < 0:
                raise PMI2ProtocolError(f"PMI-2 value of {key!r} is not ended by ';'",
                                        fields.get("cmd"))
            value.append(text[i:semi])
            if text.startswith(";;", semi):
                value.append(";")
                i = semi + 2
                continue
            break
        fields.setdefault(key, "".join(value))
        pos = semi + 1
    if not fields.get("cmd"):
        raise PMI2ProtocolError("PMI-2 message has an empty command")
    return fields


def boolean(fields, key, default=None):
    """``fields[key]`` as a bool (``TRUE``/``FALSE``, any case); ``default`` if absent.

    Raises:
        PMI2ProtocolError: a value other than TRUE or FALSE.
    """
    value = fields.get(key)
    if value is None:
        return default
    upper = value.upper()
    if upper not in (TRUE, FALSE):
        raise PMI2ProtocolError(f"PMI-2 {key}={_short(value)!r} is not TRUE or FALSE", fields.get("cmd"))
    return upper == TRUE


def response_name(cmd):
    """The command of the response to ``cmd`` (``kvs-get`` -> ``kvs-get-response``)."""
    return cmd + "-response"
