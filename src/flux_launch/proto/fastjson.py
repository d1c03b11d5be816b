"""JSON for the launch path, through CPython's ``_json`` accelerator, without
importing ``json``.

Importing ``json`` compiles regular expressions at import time, which pulls in
``re``, ``enum``, ``functools`` and ``collections``: ~5 ms of every ``flux run``
on this machine, more than the rest of its own imports. The encoder and scanner
here are the very C functions ``json`` uses, set up the same way, so their output
and the objects they return are the same as ``json.dumps`` and ``json.loads``.
Errors are ``json.JSONDecodeError`` (a ``ValueError``), with
``json``'s messages; ``json`` is imported only then.
"""

from _json import encode_basestring, encode_basestring_ascii
from _json import make_encoder as _make_encoder
from _json import make_scanner as _make_scanner

_WS = " \t\n\r"
_CONSTANTS = {"-Infinity": float("-inf"), "Infinity": float("inf"), "NaN": float("nan")}


def _not_serializable(obj):
    raise TypeError(f"Object of type {obj.__class__.__name__} is not JSON serializable")


def _error(msg, doc, pos):
    from json import JSONDecodeError

    return JSONDecodeError(msg, doc, pos)


def encoder(separators=(", ", ": "), ensure_ascii=True, sort_keys=False, allow_nan=True):
    """A function that encodes an object as ``json.dumps`` would with these options.

    Raises (from the function):
        TypeError: an object JSON cannot represent.
        ValueError: a circular reference, or NaN or an infinity without ``allow_nan``.
    """
    item_sep, key_sep = separators
    escape = encode_basestring_ascii if ensure_ascii else encode_basestring

    def dumps(obj):
        # a new encoder (and its dict of containers being encoded, for the circular
        # check) per call, as json does: a failed call leaves its entries there
        return "".join(_make_encoder({}, _not_serializable, escape, None, key_sep, item_sep, sort_keys, False,
                                     allow_nan)(obj, 0))

    return dumps


class Decoder:
    """Decodes a JSON document like ``json.JSONDecoder(parse_constant=...).decode``."""

    __slots__ = ("strict", "object_hook", "object_pairs_hook", "parse_float", "parse_int", "parse_constant",
                 "scan_once")

    def __init__(self, parse_constant=None):
        # the attributes _json's scanner reads from its context
        self.strict = True
        self.object_hook = None
        self.object_pairs_hook = None
        self.parse_float = float
        self.parse_int = int
        self.parse_constant = parse_constant or _CONSTANTS.__getitem__
        self.scan_once = _make_scanner(self)

    def decode(self, s):
        """The object of document ``s`` (a str).

        Raises:
            json.JSONDecodeError: ``s`` is not one JSON document.
        """
        idx = 0
        n = len(s)
        while idx < n and s[idx] in _WS:
            idx += 1
        try:
            obj, end = self.scan_once(s, idx)
        except StopIteration as err:
            raise _error("Expecting value", s, err.value) from None
        if end != n:
            rest = s[end:]
            stripped = rest.lstrip(_WS)
            if stripped:
                raise _error("Extra data", s, end + len(rest) - len(stripped))
        return obj


_decoder = Decoder()
_encoders = {}  # options -> encoder


def dumps(obj, separators=None, ensure_ascii=True, sort_keys=False, allow_nan=True):
    """``json.dumps`` with these options (the ones the launch path uses)."""
    key = (tuple(separators or (", ", ": ")), ensure_ascii, sort_keys, allow_nan)
    fn = _encoders.get(key)
    if fn is None:
        fn = _encoders[key] = encoder(*key)
    return fn(obj)


def loads(s):
    """``json.loads``: ``s`` is a str or UTF-8 bytes (or a bytearray or memoryview).

    Raises:
        json.JSONDecodeError: not one JSON document.
        UnicodeDecodeError: bytes that are not UTF-8.
    """
    if not isinstance(s, str):
        head = bytes(s[:4])
        if head.count(0) or head[:3] == b"\xef\xbb\xbf":  # UTF-16/32 or a BOM: json works it out
            import json

            return json.loads(bytes(s))
        s = str(s, "utf-8", "surrogatepass")  # as json decodes bytes
    elif s.startswith("\ufeff"):
        import json

        return json.loads(s)  # its error
    return _decoder.decode(s)
