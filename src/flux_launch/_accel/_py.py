"""Pure-Python twins of the C accelerations: this module is their specification.

``label_lines(prefix, data, partial)``: the bytes ``partial + data`` split into
lines; every complete line (ending in ``\\n``) is returned with ``prefix`` before
it, and the unterminated tail is returned as the new ``partial``. Bytes are never
decoded, so any binary data passes through unchanged.

``label_flush(prefix, partial)``: at end of stream, the unterminated tail as a line
of its own (``prefix + partial + \\n``), so that a labelled partial line never runs
into another source's line; nothing for an empty tail.

``json_escape(data, start=0)`` -> ``(escaped, consumed, status)``: the bytes of
``data[start:]`` as the inside of a JSON string (RFC 8259), without a detour
through str in the C backend. The longest prefix of ``data[start:]`` that
CPython's strict UTF-8 decoder accepts (no surrogates, no overlongs, nothing above
U+10FFFF) is escaped exactly as ``json.dumps(prefix.decode(), ensure_ascii=False)``
escapes it (without the quotes): ``"`` and ``\\`` backslashed, ``\\b \\f \\n \\r \\t``
as two-character escapes, every other code point below 0x20 as ``\\u00xx``
(lowercase hex), everything else (0x7f and all non-ASCII) copied unchanged as
UTF-8. ``consumed`` is the length of that prefix in bytes, counted from ``start``
(the caller resumes at ``start + consumed``). ``status`` says what follows it:

- 0: nothing: all of ``data[start:]`` was consumed;
- 1: an incomplete UTF-8 sequence cut by the end of data, each of its bytes valid
  so far (CPython's "unexpected end of data"): hold it back until more bytes come;
- 2: invalid UTF-8 (the caller falls back to base64 for the rest).

``data`` is any bytes-like object; ``start`` must be in ``0..len(data)``
(ValueError otherwise).

``json_unescape(data)`` -> ``bytes`` or ``None``: the inverse, for the body of a
JSON string (the bytes between its quotes, any bytes-like ``data``): its value
encoded as UTF-8, i.e. ``json.loads(b'"' + data + b'"').encode("utf-8")``, when
``data`` is a valid JSON string body (RFC 8259: no raw byte below 0x20, no raw
``"``, backslash escapes only ``\\" \\\\ \\/ \\b \\f \\n \\r \\t`` and
``\\uXXXX`` with hex digits of either case), its raw bytes are well-formed UTF-8
(as for ``json_escape``: no surrogates, no overlongs, nothing above U+10FFFF;
0x7f and all other non-ASCII allowed) and every ``\\u`` escape is either a
non-surrogate or a high surrogate directly followed by a low one (a pair, which
stands for one code point). Otherwise ``None`` (a lone or reversed surrogate
escape, which ``json.loads`` would turn into an unencodable str, included): the
caller then falls back to ``json.loads`` of the whole text.
"""


def label_lines(prefix, data, partial=b""):
    buf = partial + data if partial else data
    cut = buf.rfind(b"\n") + 1
    if not cut:
        return b"", bytes(buf)
    body = buf[:cut - 1]
    return prefix + body.replace(b"\n", b"\n" + prefix) + b"\n", bytes(buf[cut:])


def label_flush(prefix, partial):
    return prefix + partial + b"\n" if partial else b""


def json_escape(data, start=0):
    chunk = memoryview(data).cast("B")
    if not 0 <= start <= len(chunk):
        raise ValueError(f"json_escape: start {start} outside 0..{len(chunk)}")
    chunk = bytes(chunk[start:])
    status = 0
    try:
        text = chunk.decode("utf-8")
    except UnicodeDecodeError as exc:
        status = 1 if exc.reason == "unexpected end of data" else 2
        chunk = chunk[:exc.start]
        text = chunk.decode("utf-8")
    import json  # here: importing json costs every flux run ~2 ms, and only this path needs it

    return json.dumps(text, ensure_ascii=False)[1:-1].encode("utf-8"), len(chunk), status


def json_unescape(data):
    # The strict UTF-8 decode rejects invalid raw bytes (json.loads of bytes would
    # pass raw surrogates through); json.loads (strict: raw control characters
    # rejected) checks the rest of the grammar, exactly with CPython's C scanner
    # (the pure-Python fallback scanner, used only without _json, lets int()
    # read "\u" digits, so it would also take e.g. "\u 12f"); escaped
    # surrogates left unpaired make the str unencodable.
    import json

    try:
        return json.loads((b'"' + data + b'"').decode("utf-8")).encode("utf-8")
    except (ValueError, UnicodeEncodeError):  # JSONDecodeError, UnicodeDecodeError
        return None
