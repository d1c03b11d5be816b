"""PMI-1 server engine (Flux RFC 13) for the local processes of one job, without I/O.

The glue feeds :class:`SimpleServer` the lines each client sends and writes the
lines it returns. With ``pmi2=True`` a client whose ``cmd=init`` asks for
version 2 switches to the PMI-2 wire (:mod:`flux_launch.proto.pmi2`): the glue
then feeds it frame bodies instead of lines (:meth:`SimpleServer.wire` says
which), and its requests share the KVS and barrier with PMI-1 clients
(``kvs-fence`` is ``barrier_in``), so both kinds can be mixed in one job.

Local put visibility: a put is stored in the KVS at once, so local
gets see it before the barrier (PMI-1 only promises it after the barrier). Keys of
other nodes arrive with :meth:`SimpleServer.barrier_complete`. The wire format
(parsing, formatting, limits) is in :mod:`flux_launch.proto.pmi1`.
"""

from types import MappingProxyType

from .pmi2 import init_response
from .pmi1 import (
    PMI_FAIL,
    PMI_ERR_INVALID_ARG,
    PMI_ERR_INVALID_KEY,
    _LOST_MSG,
    _REPLIES,
    _UNIMPLEMENTED,
    PMIProtocolError,
    DEFAULT_MAXES,
    _short,
    _to_text,
    parse,
    format,
)


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

        The engine sends no reply: MPICH's client reads none, and the job is
        ending (RFC 13 describes an empty line; MPICH prints an error on it).

        ``exitcode`` is 1 if missing or not an integer; ``msg`` is "" if none.
        """
        raise NotImplementedError("Ops.abort must be implemented")

    def finalize(self, client):
        """A client sent ``cmd=finalize`` (its ``finalize_ack`` is being returned)."""

    def trace(self, client, direction, line):
        """A line in (direction "C") or out ("S"), without newline, when tracing."""

    def send(self, client, data):
        """Write ``data`` (bytes) to a client other than the one whose request is
        being handled: a PMI-2 ``info-getnodeattr`` that waited for a key another
        local client has just put. Required when the engine serves PMI-2."""
        raise NotImplementedError("Ops.send must be implemented to serve PMI-2")


class _Client:
    __slots__ = ("initialized", "finalized", "in_barrier", "in_mcmd", "gone", "version", "thrid")

    def __init__(self):
        self.initialized = self.finalized = self.in_barrier = False
        self.in_mcmd = self.gone = False
        self.version = 1
        self.thrid = None  # PMI-2: the thrid of the kvs-fence now waiting


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
        pmi2: also serve clients that ask for PMI version 2 (refused otherwise);
            ``ops`` must then implement ``send``.

    Raises:
        ValueError: size < 1, nlocal outside 1..size, or an invalid kvsname.
    """

    def __init__(self, size, ops, *, nlocal=None, kvsname="kvs_0", appnum=0,
                 universe_size=None, maxes=DEFAULT_MAXES, trace=False, pmi2=False):
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
        self._preput = {}  # the job's own keys: PMI-2 job attributes too
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
        self._v2 = None
        if pmi2:
            from .pmi2_server import PMI2Handler

            self._v2 = PMI2Handler(self, ops)

    @property
    def kvs(self):
        """Read-only view of the KVS (preput, local and merged remote keys)."""
        return MappingProxyType(self._kvs)

    @property
    def barrier_count(self):
        """Number of clients now waiting in the barrier."""
        return len(self._barrier)

    def wire(self, client):
        """2 once the client's init chose PMI-2 (feed it frame bodies), else 1 (lines)."""
        st = self._clients.get(client)
        return 2 if st is not None and st.version == 2 else 1

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
        self._kvs[key] = self._preput[key] = value

    def handle(self, client, line):
        """Handle one request line (bytes or str) from a client, or the body of
        one PMI-2 frame once :meth:`wire` says 2.

        Returns:
            list of response lines (bytes) for this client now: none for
            ``barrier_in`` (see :meth:`barrier_complete`) and the first lines of
            a spawn request; nothing for ``abort``.

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
        if st.version == 2:
            return self._v2.handle(client, st, line)
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
            line1 = format("barrier_out", rc=0)
        else:
            line1 = format("barrier_out", rc=rc, msg=_wire_msg(msg or "barrier failed"))
        out = []
        for client in waiting:
            st = self._clients[client]
            st.in_barrier = False
            if st.gone:
                continue
            line = line1 if st.version == 1 else self._v2.fence_response(st, rc, msg or "barrier failed")
            if self._trace is not None:
                self.trace_out(client, line)
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
        if self._v2 is not None:
            self._v2.forget(client)
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

    def trace_out(self, client, data):
        """Trace a response (a PMI-1 line or a PMI-2 frame) when tracing is on."""
        if self._trace is None:
            return
        text = data.decode("utf-8", "replace")
        self._trace(client, "S", text[:-1] if text.endswith("\n") else text[6:])

    def _init(self, client, st, req):
        version = req.get("pmi_version", "")
        subversion = req.get("pmi_subversion", "")
        if not version.isdigit() or not subversion.isdigit():
            return self._reply(client, "response_to_init", rc=PMI_ERR_INVALID_ARG,
                               msg="init needs numeric pmi_version and pmi_subversion")
        if int(version) == 2 and self._v2 is not None:
            st.initialized = True
            st.version = 2
            line = init_response()
            self.trace_out(client, line)
            return [line]
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
        self.barrier_check(st, "barrier_in")
        if self._lost:
            return self._reply(client, "barrier_out", rc=PMI_FAIL, msg=_LOST_MSG)
        self.barrier_join(client, st)
        return []

    def barrier_check(self, st, cmd):
        """Raise PMIProtocolError if this client may not enter the barrier now."""
        if st.in_barrier:
            raise PMIProtocolError(f"PMI client entered the barrier twice ({cmd})", cmd)
        if self._exchanging:
            raise PMIProtocolError(
                f"PMI {cmd} while the barrier exchange is in progress "
                f"(more than nlocal={self.nlocal} clients?)", cmd)

    def barrier_join(self, client, st):
        """Enter the barrier (checked by :meth:`barrier_check`, none lost)."""
        st.in_barrier = True
        self._barrier.append(client)
        if len(self._barrier) >= self.nlocal:
            self._exchanging = True
            pending, self._pending = self._pending, {}
            self._ops.barrier_enter(pending)

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
        # No reply: MPICH's client does not read one (an empty line makes it print
        # "getval cmd failed"); the job is ending anyway.
        return []

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
