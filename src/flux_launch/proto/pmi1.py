"""PMI-1 simple wire protocol (Flux RFC 13), as an engine without I/O.

A message is one newline-terminated line of space-separated ``key=value`` tuples,
the first ``cmd=NAME`` (``mcmd=spawn`` opens a multi-line request ended by a line
``endcmd``), exchanged in lock-step. In a request, ``value=`` (put) and
``error_msg=`` (abort) run to the end of the line: values may hold spaces.

This module is the wire format (parsing, formatting, limits, return codes); the
server engine for the local processes of a job is in ``proto/pmi1_server.py``.
"""


# Return codes (RFC 13 "Return Codes").
PMI_SUCCESS = 0
PMI_FAIL = -1
PMI_ERR_INVALID_ARG = 3
PMI_ERR_INVALID_KEY = 4
PMI_ERR_INVALID_KEY_LENGTH = 5
PMI_ERR_INVALID_VAL_LENGTH = 7
PMI_ERR_INVALID_LENGTH = 8

_LOST_MSG = "a local process exited or was dropped before finalize"

# Room for "cmd=put kvsname= key= value=" and extra white space in a request.
_LINE_OVERHEAD = 128

# Request keys whose value runs to the end of the line.
_REST_OF_LINE = frozenset(("value", "error_msg"))

# Request command -> response command (abort's response is an empty line).
_REPLIES = dict(
    init="response_to_init", get_maxes="maxes", get_universe_size="universe_size",
    get_appnum="appnum", get_my_kvsname="my_kvsname", put="put_result",
    get="get_result", barrier_in="barrier_out", finalize="finalize_ack",
    publish_name="publish_result", unpublish_name="unpublish_result",
    lookup_name="lookup_result", spawn="spawn_result",
    get_ranks2hosts="put_ranks2hosts")
_UNIMPLEMENTED = ("publish_name", "unpublish_name", "lookup_name", "spawn",
                  "get_ranks2hosts")


class PMIProtocolError(ValueError):
    """A request or response that breaks the PMI-1 wire protocol.

    Attributes:
        cmd: the command named by the offending line, or None where none could be
            identified (the peer should then be dropped).
        rc: the PMI return code an error response should carry.
    """

    def __init__(self, message, cmd=None, rc=PMI_FAIL):
        super().__init__(message)
        self.cmd = cmd
        self.rc = rc


class Maxes:
    """Size limits announced by ``cmd=maxes``; each counts the C string's NUL.

    ``vallen_max`` stays at 1024: some MPI implementations size fixed buffers from
    it or break on values above 1024 bytes, so do not raise it.
    """

    __slots__ = ("kvsname_max", "keylen_max", "vallen_max", "max_line")

    def __init__(self, kvsname_max=256, keylen_max=256, vallen_max=1024):
        self.kvsname_max = kvsname_max
        self.keylen_max = keylen_max
        self.vallen_max = vallen_max
        self.max_line = kvsname_max + keylen_max + vallen_max + _LINE_OVERHEAD


DEFAULT_MAXES = Maxes()


def _short(text, limit=40):
    return text if len(text) <= limit else text[:limit] + "..."


def _sniff_cmd(text):
    if text.startswith("cmd="):
        name = text[4:].split(None, 1)
        return name[0] if name else None
    return None


def _to_text(line, what):
    """Decode a line and strip its end of line and leading white space."""
    if isinstance(line, str):
        text = line
    else:
        try:
            text = bytes(line).decode("utf-8")
        except UnicodeDecodeError:
            raise PMIProtocolError(f"PMI {what} is not UTF-8 text (binary garbage?): "
                                   f"{_short(repr(bytes(line)))}") from None
    text = text.lstrip(" \t")
    if text.endswith("\n"):
        text = text[:-2] if text.endswith("\r\n") else text[:-1]
    if not text.strip(" \t"):
        raise PMIProtocolError(f"empty PMI {what} line")
    if not text.isprintable() and not text.replace("\t", " ").isprintable():
        raise PMIProtocolError(
            f"PMI {what} holds control characters (binary garbage?): "
            f"{_short(repr(text))}", _sniff_cmd(text), PMI_ERR_INVALID_ARG)
    return text


def _split(text, rest_keys, bare_joins):
    """Split ``key=value`` tuples; keys in rest_keys take the rest of the line.

    A token without '=' is appended to the previous value when bare_joins (free
    text in a response's ``msg``), else it is a protocol error.
    """
    fields = {}
    last = None
    pos = 0
    # Control characters were refused, so split() cuts at spaces and tabs only.
    for tok in text.split():
        pos = text.find(tok, pos)
        eq = tok.find("=")
        if eq > 0:
            key = tok[:eq]
            if key in rest_keys:
                fields[key] = text[pos + eq + 1:]
                break
            fields[key] = tok[eq + 1:]
            last = key
        elif bare_joins and last is not None:
            fields[last] += " " + tok
        else:
            raise PMIProtocolError(
                f"malformed PMI token {_short(tok)!r} (no equals sign)",
                fields.get("cmd"), PMI_ERR_INVALID_ARG)
        pos += len(tok)
    return fields


def parse(line, maxes=DEFAULT_MAXES):
    """Parse one request line (bytes or str, trailing newline optional).

    Returns:
        dict of the fields, ``cmd`` (or ``mcmd``) among them; ``value=`` and
        ``error_msg=`` run to the end of the line. ``maxes`` gives the limits.

    Raises:
        PMIProtocolError: an empty line, non-UTF-8 or control characters, a first
            tuple other than ``cmd=``/``mcmd=``, a token without '=', or a line,
            kvsname, key or value over ``maxes``. ``cmd`` and ``rc`` on the error
            say which command it was (when known) and what code to answer with.
    """
    text = _to_text(line, "request")
    nbytes = len(text) if text.isascii() else len(text.encode())
    if not (text.startswith("cmd=") or text.startswith("mcmd=")):
        raise PMIProtocolError(
            f"PMI request does not start with cmd=: {_short(repr(text))}")
    if nbytes > maxes.max_line:
        raise PMIProtocolError(
            f"PMI request line too long ({nbytes} bytes, limit {maxes.max_line})",
            _sniff_cmd(text), PMI_ERR_INVALID_LENGTH)
    fields = _split(text, _REST_OF_LINE, False)
    if not fields.get("cmd") and not fields.get("mcmd"):
        raise PMIProtocolError(f"PMI request has an empty command: {_short(text)!r}")
    cmd = fields.get("cmd")
    for key, limit, rc in (("kvsname", maxes.kvsname_max, PMI_ERR_INVALID_LENGTH),
                           ("key", maxes.keylen_max, PMI_ERR_INVALID_KEY_LENGTH),
                           ("value", maxes.vallen_max, PMI_ERR_INVALID_VAL_LENGTH)):
        val = fields.get(key)
        if val is not None and (len(val) >= limit or (
                not val.isascii() and len(val.encode()) >= limit)):
            raise PMIProtocolError(
                f"PMI {key} too long ({len(val)} characters, limit {limit - 1})",
                cmd, rc)
    return fields


def format(cmd, **fields):  # the protocol's own name for it
    """Format one line: ``cmd=CMD``, then the fields in order (free text last).

    Returns the line as UTF-8 bytes with its newline; raises ValueError if a
    field holds a newline.
    """
    parts = ["cmd=" + cmd]
    for key, val in fields.items():
        parts.append(f"{key}={val}")
    text = " ".join(parts)
    if "\n" in text or "\r" in text:
        raise ValueError(f"PMI field holds a newline: {_short(repr(text))}")
    return (text + "\n").encode()


def request(cmd, **fields):
    """Format one request line like :func:`format` (ValueError on a newline)."""
    return format(cmd, **fields)


def parse_reply(line):
    """Parse one response line into a dict of its fields, ``cmd`` first.

    ``value=`` runs to the end of the line; a token without '=' extends the
    previous field (free text as in ``msg=command not implemented``).

    Raises:
        PMIProtocolError: an empty or non-UTF-8 line, or one not starting with cmd=.
    """
    text = _to_text(line, "response")
    if not text.startswith("cmd="):
        raise PMIProtocolError(
            f"PMI response does not start with cmd=: {_short(repr(text))}")
    return _split(text, ("value",), True)


def process_mapping(blocks):
    """Format ``PMI_process_mapping`` from (first_node, nnodes, ppn) blocks.

    ``[(0, 2, 2), (2, 2, 4)]`` -> ``"(vector,(0,2,2),(2,2,4))"``. Raises
    ValueError for no blocks, a negative node, nnodes < 1 or ppn < 1.
    """
    parts = []
    for node, nnodes, ppn in blocks:
        if node < 0 or nnodes < 1 or ppn < 1:
            raise ValueError(f"invalid process mapping block {(node, nnodes, ppn)}")
        parts.append(f"({node},{nnodes},{ppn})")
    if not parts:
        raise ValueError("process mapping needs at least one block")
    return "(vector," + ",".join(parts) + ")"


def process_mapping_from_counts(tasks_per_node):
    """Format ``PMI_process_mapping`` from each node's task count (block order).

    Consecutive nodes with equal counts share a block: ``[2, 2, 2]`` ->
    ``"(vector,(0,3,2))"``, ``[2, 1]`` -> ``"(vector,(0,1,2),(1,1,1))"``; nodes
    without tasks are left out. Raises ValueError for a negative count or no tasks.
    """
    blocks = []
    for node, count in enumerate(tasks_per_node):
        if count < 0:
            raise ValueError(f"negative task count {count} for node {node}")
        if count == 0:
            continue
        if blocks:
            first, nnodes, ppn = blocks[-1]
            if ppn == count and first + nnodes == node:
                blocks[-1] = (first, nnodes + 1, ppn)
                continue
        blocks.append((node, 1, count))
    return process_mapping(blocks)


def process_mapping_by_host(counts, hosts):
    """``PMI_process_mapping`` for shells with ``counts`` tasks each, on ``hosts``
    (one name per shell, in order): shells that share a host are one node, as
    they share its memory. ``[2, 2]`` on ``["a", "a"]`` -> ``"(vector,(0,1,4))"``.
    Without host names (``hosts`` shorter than ``counts``) each shell is a node.
    """
    if len(hosts) < len(counts):
        return process_mapping_from_counts(counts)
    node_of = {}
    blocks = []
    for count, host in zip(counts, hosts):
        if count <= 0:
            continue
        node = node_of.setdefault(host, len(node_of))
        blocks.append((node, 1, count))
    # a host's consecutive shells are one block; then equal neighbours merge
    merged = []
    for node, _, count in blocks:
        if merged and merged[-1][0] == node:
            merged[-1] = (node, 1, merged[-1][2] + count)
        else:
            merged.append((node, 1, count))
    out = []
    for node, _, count in merged:
        if out and out[-1][2] == count and out[-1][0] + out[-1][1] == node:
            out[-1] = (out[-1][0], out[-1][1] + 1, count)
        else:
            out.append((node, 1, count))
    return process_mapping(out)


def mapping_nodes(text, size):
    """The node of each of ``size`` ranks under ``PMI_process_mapping`` ``text``
    (``(vector,(node,nnodes,ppn),...)``, blocks repeated until every rank has one).

    Raises:
        ValueError: text that is not a process mapping.
    """
    body = text.replace(" ", "")
    if not body.startswith("(vector,") or not body.endswith(")"):
        raise ValueError(f"not a PMI process mapping: {text!r}")
    blocks = []
    for part in body[len("(vector,"):-1].split("),"):
        fields = part.strip("()").split(",")
        if len(fields) != 3 or not all(f.isdigit() for f in fields):
            raise ValueError(f"not a PMI process mapping: {text!r}")
        node, nnodes, ppn = map(int, fields)
        if nnodes < 1 or ppn < 1:
            raise ValueError(f"not a PMI process mapping: {text!r}")
        blocks.append((node, nnodes, ppn))
    nodes = []
    while len(nodes) < size:
        for node, nnodes, ppn in blocks:
            for n in range(node, node + nnodes):
                nodes.extend([n] * ppn)
    return nodes[:size]
