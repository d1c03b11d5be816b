"""The KVS's in-memory tree: directories, string values grown by appends
(``Rope``), key paths, and the error every KVS operation raises (``KVSError``)."""

import errno

from flux_launch.services.base import ServiceError
from flux_launch.services.kvs.store import BLOB_MIN, Blob

PRIMARY = "primary"


class Dir(dict):
    """A KVS directory: names to ``Dir`` or values (a value may itself be a dict)."""

    __slots__ = ()


class Rope:
    """A string value grown by appends (eventlogs, job output), held as UTF-8
    bytes: appends cost the appended bytes only, not a copy of everything before
    them, and raw appends (bytes from a message's attachment) are never decoded.
    A chunk kept in the store's blob file is held as its ``Blob``, read back (from
    the store's cache of recent blobs, or the file) when needed, so that big
    outputs do not stay in memory. Offsets (``length``, ``tail``) count bytes."""

    __slots__ = ("chunks", "length", "_text", "counted", "full")

    def __init__(self, text=""):
        data = text.encode() if type(text) is str else text
        self.chunks = [data] if data else []
        self.length = len(data)
        self._text = text if type(text) is str else None
        self.counted = 0  # what limited appends counted (job output: its raw bytes)
        self.full = False  # a limited append was dropped: later counted ones are too

    def append(self, data, blob=None):
        """Append ``data`` (str, bytes, or a ``Blob``); ``blob``: where the store
        keeps ``data`` (then only the reference is held)."""
        if type(data) is str:
            data = data.encode()
        self.chunks.append(blob if blob is not None else data)
        self.length += len(data)
        self._text = None

    @staticmethod
    def _data(chunk):
        return chunk.read() if type(chunk) is Blob else chunk

    def value(self):
        """The whole string."""
        if self._text is not None:
            return self._text
        text = b"".join(self._data(chunk) for chunk in self.chunks).decode()
        if self.length < BLOB_MIN:
            self._text = text
        return text

    def pieces(self, start):
        """The bytes from offset ``start`` on, chunk by chunk."""
        if start >= self.length:
            return
        pos = self.length
        index = len(self.chunks)
        while index and pos > start:  # the chunk that holds start
            index -= 1
            pos -= len(self.chunks[index])
        for chunk in self.chunks[index:]:
            data = self._data(chunk)
            yield data[start - pos:] if start > pos else data
            pos += len(chunk)

    def tail(self, start):
        """The bytes from offset ``start`` on."""
        return b"".join(self.pieces(start))


def _utf8(raw, key):
    """Check that ``raw`` (an attachment) is the UTF-8 text of a string; returns it as bytes.

    Raises:
        KVSError: EINVAL, it is missing or not UTF-8.
    """
    if not isinstance(raw, (bytes, bytearray, memoryview)):
        raise KVSError(errno.EPROTO, f"kvs.commit: raw append to {key} without raw bytes")
    try:
        str(raw, "utf-8")
    except UnicodeDecodeError as exc:
        raise KVSError(errno.EINVAL, f"kvs.commit: raw append to {key}: not UTF-8 ({exc.reason} "
                       f"at byte {exc.start})") from None
    return bytes(raw)


def _concat(a, b):
    """Join two appended values (str or UTF-8 bytes)."""
    if type(a) is type(b):
        return a + b
    return (a.encode() if type(a) is str else a) + (b.encode() if type(b) is str else b)


def plain(node):
    """A stored value as JSON would have it (a Rope becomes its string)."""
    return node.value() if type(node) is Rope else node


class KVSError(ServiceError):
    """A KVS operation that fails (``errnum``, one-line ``text``): the error
    response of the request that asked for it, or raised to an in-process caller."""


def normalize(key):
    """Canonical form of a key: no empty components; ``.`` for the root.

    Raises:
        KVSError: the key is not a string.
    """
    if not isinstance(key, str):
        raise KVSError(errno.EINVAL, "key must be a string")
    parts = [p for p in key.split(".") if p]
    return ".".join(parts) if parts else "."


def _lookup(root, key):
    if key == ".":
        return root
    node = root
    for part in key.split("."):
        if type(node) is not Dir or part not in node:
            raise KVSError(errno.ENOENT, f"{key}: no such key")
        node = node[part]
    return node


def _listing(node, recursive):
    out = {}
    for name, child in node.items():
        if type(child) is Dir:
            out[name] = {"dir": _listing(child, True) if recursive else None}
        else:
            out[name] = {"value": plain(child)}
    return out
