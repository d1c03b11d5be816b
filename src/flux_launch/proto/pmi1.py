"""PMI-1 simple wire protocol (Flux RFC 13), as an engine without I/O.

A message is one newline-terminated line of space-separated ``key=value`` tuples,
the first ``cmd=NAME`` (``mcmd=spawn`` opens a multi-line request ended by a line
``endcmd``), exchanged in lock-step. In a request, ``value=`` (put) and
``error_msg=`` (abort) run to the end of the line: values may hold spaces.

:class:`SimpleServer` serves the local processes of one job; the glue feeds it lines
and writes the lines it returns. Local put visibility: a put is stored in the KVS at
once, so local gets see it before the barrier (PMI-1 only promises it after the
barrier). Keys of other nodes arrive with :meth:`SimpleServer.barrier_complete`.
"""

from types import MappingProxyType

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


def format(cmd, **fields):  # noqa: A001 - the protocol's own name for it
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


class Ops:
    """Callbacks from :class:`SimpleServer` to its glue.

    ``barrier_enter`` and ``abort`` are required; ``finalize`` and ``trace`` are
    optional (duck-typed ops may omit them). What a callback raises propagates out
    of the engine call that invoked it.
    """

    def barrier_enter(self, pending_puts):
        """All local clients entered the barrier.

        ``pending_puts`` is the dict (now the callee's) of keys put locally since
        the previous barrier, to share with other nodes. The glue must then call
        :meth:`SimpleServer.barrier_complete`, possibly from within this call. If
        this raises, the clients stay in the barrier until the glue calls
        ``barrier_complete(rc=-1)``.
        """
        raise NotImplementedError("Ops.barrier_enter must be implemented")

    def abort(self, client, exitcode, msg):
        """A client sent ``cmd=abort``: abort the job.

        The engine then answers the empty line RFC 13 defines (``S:abort = LF``):
        clients that wait for it (MPICH's ``PMI_Abort``) then exit by themselves.

        ``exitcode`` is 1 if missing or not an integer; ``msg`` is "" if none.
        """
        raise NotImplementedError("Ops.abort must be implemented")

    def finalize(self, client):
        """A client sent ``cmd=finalize`` (its ``finalize_ack`` is being returned)."""

    def trace(self, client, direction, line):
        """A line in (direction "C") or out ("S"), without newline, when tracing."""


class _Client:
    __slots__ = ("initialized", "finalized", "in_barrier", "in_mcmd", "gone")

    def __init__(self):
        self.initialized = self.finalized = self.in_barrier = False
        self.in_mcmd = self.gone = False


class SimpleServer:
    """PMI-1 server engine for the local processes of one job (no I/O).

    Clients are opaque hashable keys (a rank, a connection object).

    Args:
        size: number of processes in the job (all nodes).
        ops: callbacks, see :class:`Ops`.
        nlocal: processes served by this engine (the barrier waits for them);
            defaults to ``size``.
        kvsname: the job's KVS name (a word, shorter than ``maxes.kvsname_max``).
        appnum: answered to ``get_appnum``.
        universe_size: answered to ``get_universe_size``; defaults to ``size``.
        maxes: :class:`Maxes` to announce and enforce.
        trace: call ``ops.trace`` for every line in and out.

    Raises:
        ValueError: size < 1, nlocal outside 1..size, or an invalid kvsname.
    """

    def __init__(self, size, ops, *, nlocal=None, kvsname="kvs_0", appnum=0,
                 universe_size=None, maxes=DEFAULT_MAXES, trace=False):
        if size < 1:
            raise ValueError(f"PMI job size must be at least 1, not {size}")
        nlocal = size if nlocal is None else nlocal
        if not 1 <= nlocal <= size:
            raise ValueError(f"nlocal must be in 1..{size}, not {nlocal}")
        if (not kvsname or len(kvsname) >= maxes.kvsname_max or "=" in kvsname
                or len(kvsname.split()) != 1 or not kvsname.isprintable()):
            raise ValueError(f"invalid PMI kvsname {kvsname!r}")
        self.size = size
        self.nlocal = nlocal
        self.kvsname = kvsname
        self.appnum = appnum
        self.universe_size = size if universe_size is None else universe_size
        self.maxes = maxes
        self.max_line = maxes.max_line
        self._ops = ops
        self._trace = getattr(ops, "trace", None) if trace else None
        self._finalize_hook = getattr(ops, "finalize", None)
        self._kvs = {}
        self._pending = {}
        self._clients = {}
        self._barrier = []
        self._exchanging = False
        self._lost = 0
        self._dispatch = dict.fromkeys(_UNIMPLEMENTED, self._unimplemented)
        self._dispatch.update(
            init=self._init, get_maxes=self._info, get_universe_size=self._info,
            get_appnum=self._info, get_my_kvsname=self._info, put=self._put,
            get=self._get, barrier_in=self._barrier_in, finalize=self._finalize,
            abort=self._abort)

    @property
    def kvs(self):
        """Read-only view of the KVS (preput, local and merged remote keys)."""
        return MappingProxyType(self._kvs)

    @property
    def barrier_count(self):
        """Number of clients now waiting in the barrier."""
        return len(self._barrier)

    def finalized(self, client):
        """True if the client has sent ``cmd=finalize``."""
        st = self._clients.get(client)
        return st is not None and st.finalized

    def preput(self, key, value):
        """Store a key before any client runs (e.g. ``PMI_process_mapping``).

        Every node's glue preputs the same keys, so they are not exchanged. A
        ``PMI_process_mapping`` too long for ``vallen_max`` is stored as "" (mapping
        unknown), as RFC 13 requires.

        Raises:
            ValueError: an empty key or one with white space or '=', a value with
                a newline, or (other keys) a value over ``vallen_max``.
        """
        if (not key or "=" in key or len(key.split()) != 1
                or len(key) >= self.maxes.keylen_max):
            raise ValueError(f"invalid PMI key {key!r}")
        if "\n" in value or "\r" in value:
            raise ValueError(f"PMI value for {key!r} holds a newline")
        if len(value) >= self.maxes.vallen_max:
            if key != "PMI_process_mapping":
                raise ValueError(f"PMI value for {key!r} is longer than "
                                 f"{self.maxes.vallen_max - 1} characters")
            value = ""
        self._kvs[key] = value

    def handle(self, client, line):
        """Handle one request line (bytes or str) from a client.

        Returns:
            list of response lines (bytes) for this client now: none for
            ``barrier_in`` (see :meth:`barrier_complete`) and the first lines of
            a spawn request; a bare ``b"\\n"`` for ``abort`` (RFC 13).

        Raises:
            PMIProtocolError: a malformed line naming no command with a response
                (one that does gets an error response), an unknown command, or a
                repeated ``barrier_in``. The glue should log it and drop the client.
            Exception: whatever an ops callback raises.
        """
        st = self._clients.get(client)
        if st is None:
            st = self._clients[client] = _Client()
        if self._trace is not None:
            self._trace(client, "C", _trace_text(line))
        if st.in_mcmd:
            return self._mcmd_line(client, st, line)
        try:
            req = parse(line, self.maxes)
        except PMIProtocolError as e:
            reply = _REPLIES.get(e.cmd)
            if reply is None:
                raise
            return self._reply(client, reply, rc=e.rc, msg=_wire_msg(str(e)))
        cmd = req.get("cmd")
        if cmd is None:
            if req["mcmd"] != "spawn":
                raise PMIProtocolError(
                    f"unknown PMI multi-line command {_short(req['mcmd'])!r}")
            st.in_mcmd = True
            return []
        fn = self._dispatch.get(cmd)
        if fn is None:
            raise PMIProtocolError(f"unknown PMI command {_short(cmd)!r}", cmd)
        return fn(client, st, req)

    def barrier_complete(self, rc=0, remote_kvs=None, msg=None):
        """Release the clients waiting in the barrier.

        Normally called by the glue after ``ops.barrier_enter``; with a nonzero rc
        it may also be called earlier to fail the barrier.

        Args:
            rc: 0 for success, else the PMI error code each client gets.
            remote_kvs: keys put on other nodes, merged into the KVS first.
            msg: error text sent with a nonzero rc (a default is used if None).

        Returns:
            list of (client, line) to send: a ``barrier_out`` for every client that
            entered (none if none did), in the order they entered.
        """
        if remote_kvs:
            self._kvs.update(remote_kvs)
        waiting, self._barrier = self._barrier, []
        self._exchanging = False
        if rc == 0:
            line = format("barrier_out", rc=0)
        else:
            line = format("barrier_out", rc=rc, msg=_wire_msg(msg or "barrier failed"))
        out = []
        for client in waiting:
            st = self._clients[client]
            st.in_barrier = False
            if st.gone:
                continue
            if self._trace is not None:
                self._trace(client, "S", line[:-1].decode())
            out.append((client, line))
        return out

    def disconnect(self, client):
        """Forget a client whose connection closed or was dropped.

        A client lost before ``finalize`` makes every later barrier impossible:
        the clients waiting in the barrier are released with an error, and later
        ``barrier_in`` requests fail at once.

        Returns:
            list of (client, line) to send (``barrier_out`` errors), maybe empty.
        """
        st = self._clients.get(client)
        if st is None:
            st = self._clients[client] = _Client()
        if st.gone:
            return []
        st.gone = True
        st.in_mcmd = False
        if st.finalized:
            return []
        self._lost += 1
        if st.in_barrier:
            self._barrier.remove(client)
            st.in_barrier = False
        if not self._barrier:
            return []
        return self.barrier_complete(PMI_FAIL, msg=_LOST_MSG)

    # --- request handlers: (client, state, request) -> list of lines ---

    def _reply(self, client, cmd, **fields):
        line = format(cmd, **fields)
        if self._trace is not None:
            self._trace(client, "S", line[:-1].decode())
        return [line]

    def _init(self, client, st, req):
        version = req.get("pmi_version", "")
        subversion = req.get("pmi_subversion", "")
        if not version.isdigit() or not subversion.isdigit():
            return self._reply(client, "response_to_init", rc=PMI_ERR_INVALID_ARG,
                               msg="init needs numeric pmi_version and pmi_subversion")
        if int(version) == 2:
            return self._reply(
                client, "response_to_init", rc=PMI_FAIL,
                msg="client asked for PMI version 2 but this server speaks PMI-1 "
                    "only: a PMI-2 client library was probably loaded (check which "
                    "PMI library the MPI uses)")
        if int(version) != 1:
            return self._reply(client, "response_to_init", rc=PMI_FAIL,
                               msg=f"unsupported PMI version {int(version)}, "
                                   "this server speaks PMI-1.1 only")
        st.initialized = True
        return self._reply(client, "response_to_init", rc=0, pmi_version=1,
                           pmi_subversion=1)

    def _info(self, client, st, req):
        cmd = req["cmd"]
        if cmd == "get_maxes":
            m = self.maxes
            fields = dict(kvsname_max=m.kvsname_max, keylen_max=m.keylen_max,
                          vallen_max=m.vallen_max)
        elif cmd == "get_universe_size":
            fields = dict(size=self.universe_size)
        elif cmd == "get_appnum":
            fields = dict(appnum=self.appnum)
        else:
            fields = dict(kvsname=self.kvsname)
        return self._reply(client, _REPLIES[cmd], rc=0, **fields)

    def _kvs_args_error(self, req, names):
        """Return an error response's fields for a bad put/get, or None."""
        for name in names:
            if name not in req:
                return dict(rc=PMI_ERR_INVALID_ARG, msg=f"{req['cmd']} needs {name}")
        if req["kvsname"] != self.kvsname:
            name = _wire_msg(_short(req["kvsname"]))
            return dict(rc=PMI_FAIL, msg=f"unknown kvsname {name}")
        return None if req["key"] else dict(rc=PMI_ERR_INVALID_KEY, msg="empty key")

    def _put(self, client, st, req):
        err = self._kvs_args_error(req, ("kvsname", "key", "value"))
        if err is not None:
            return self._reply(client, "put_result", **err)
        self._kvs[req["key"]] = self._pending[req["key"]] = req["value"]
        return self._reply(client, "put_result", rc=0)

    def _get(self, client, st, req):
        err = self._kvs_args_error(req, ("kvsname", "key"))
        if err is not None:
            return self._reply(client, "get_result", **err)
        value = self._kvs.get(req["key"])
        if value is None:
            return self._reply(client, "get_result", rc=PMI_FAIL,
                               msg=f"key {_wire_msg(_short(req['key']))} not found")
        return self._reply(client, "get_result", rc=0, value=value)

    def _barrier_in(self, client, st, req):
        if st.in_barrier:
            raise PMIProtocolError("PMI client entered the barrier twice", "barrier_in")
        if self._exchanging:
            raise PMIProtocolError(
                "PMI barrier_in while the barrier exchange is in progress "
                f"(more than nlocal={self.nlocal} clients?)", "barrier_in")
        if self._lost:
            return self._reply(client, "barrier_out", rc=PMI_FAIL, msg=_LOST_MSG)
        st.in_barrier = True
        self._barrier.append(client)
        if len(self._barrier) >= self.nlocal:
            self._exchanging = True
            pending, self._pending = self._pending, {}
            self._ops.barrier_enter(pending)
        return []

    def _finalize(self, client, st, req):
        st.finalized = True
        lines = self._reply(client, "finalize_ack", rc=0)
        if self._finalize_hook is not None:
            self._finalize_hook(client)
        return lines

    def _abort(self, client, st, req):
        try:
            exitcode = int(req.get("exitcode", ""))
        except ValueError:
            exitcode = 1
        msg = req.get("error_msg", req.get("msg", ""))
        self._ops.abort(client, exitcode, msg)
        if self._trace is not None:
            self._trace(client, "S", "")
        return [b"\n"]

    def _unimplemented(self, client, st, req):
        cmd = req["cmd"]
        return self._reply(client, _REPLIES[cmd], rc=PMI_FAIL,
                           msg=f"{cmd} is not implemented")

    def _mcmd_line(self, client, st, line):
        text = _to_text(line, "spawn request").rstrip(" \t")
        if text == "endcmd":
            st.in_mcmd = False
            return self._reply(client, "spawn_result", rc=PMI_FAIL,
                               msg="spawn is not implemented")
        if len(text) > self.max_line or text.find("=") <= 0:
            raise PMIProtocolError(
                f"malformed line in PMI spawn request: {_short(repr(text))}")
        return []


def _wire_msg(text):
    # A '=' inside free text would read as a new field to most client parsers.
    return text.replace("=", ":").replace("\n", " ").replace("\r", " ")


def _trace_text(line):
    if not isinstance(line, str):
        line = bytes(line).decode("utf-8", "replace")
    return line[:-1] if line.endswith("\n") else line
