"""The ``rexec`` service's messages (``flux exec``), shared by the broker's server
and the client.

``rexec.exec`` (streaming) responses: ``{"type": "started", "pid", "rank"}``, then
``{"type": "output", "stream", "data"}``, then ``{"type": "finished", "status"}``
(exit code, or 128+signal), then ``ENODATA``. ``rexec.write {pid, data, eof}``
feeds stdin; ``rexec.kill {pid, signum}`` signals the command's process group.
``data`` is text, or ``{"b64": ...}`` for bytes that are not UTF-8.
"""


def encode_data(data):
    """Bytes as JSON: text if it is UTF-8, else ``{"b64": ...}``."""
    try:
        return data.decode()
    except UnicodeDecodeError:
        import base64

        return {"b64": base64.b64encode(data).decode()}


def decode_data(obj):
    """Inverse of ``encode_data``."""
    if isinstance(obj, dict):
        import base64

        return base64.b64decode(obj.get("b64", ""))
    return obj.encode()
