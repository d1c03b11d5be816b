"""PMI-2 requests for :class:`~flux_launch.proto.pmi1_server.SimpleServer`, without I/O.

A client whose ``cmd=init`` asked for version 2 sends frames
(:mod:`flux_launch.proto.pmi2`); the engine hands their bodies to
:class:`PMI2Handler`, which answers them from the engine's own state: the same
KVS (a ``kvs-put`` is a PMI-1 ``put``, a ``kvs-get`` a ``get``) and the same
barrier (``kvs-fence`` is ``barrier_in``, released by ``barrier_complete``), so
PMI-1 and PMI-2 clients of one job see each other's keys.

Commands, with the keys MPICH's client and Slurm's server use:
``fullinit`` (``pmirank``, ``pmijobid``, ``threaded``), ``job-getid`` (the
KVS name), ``info-getjobattr`` (``universeSize``, ``PMI_process_mapping`` and the
other keys put before the tasks started; ``found=FALSE`` for the rest),
``info-putnodeattr`` / ``info-getnodeattr`` (node-local attributes; a get with
``wait=TRUE`` answers when another local client puts the key), ``kvs-put``,
``kvs-get`` (``jobid``, ``srcid``, ``key``: ``found=TRUE|FALSE``), ``kvs-fence``,
``finalize`` and ``abort`` (no response). A request echoes its ``thrid`` in the
response (MPICH's threaded client routes responses by it). Unknown and
unimplemented commands (``spawn``, ``name-publish``, ``job-connect``...) get
``rc=-1`` and an ``errmsg``; a body that cannot be parsed raises
:class:`~flux_launch.proto.pmi2.PMI2ProtocolError` for the glue to drop the client.
"""

from .pmi1 import _LOST_MSG
from .pmi2 import (
    FALSE,
    MAX_KEYLEN,
    MAX_VALLEN,
    PMI2_ERR_INVALID_ARG,
    PMI2_ERR_INVALID_KEY,
    PMI2_ERR_INVALID_KEY_LENGTH,
    PMI2_ERR_INVALID_VAL,
    PMI2_ERR_INVALID_VAL_LENGTH,
    PMI2_FAIL,
    TRUE,
    _short,
    boolean,
    decode,
    encode_body,
    frame,
    response_name,
)

_UNIMPLEMENTED = ("job-connect", "job-disconnect", "name-publish", "name-unpublish",
                  "name-lookup", "spawn", "ring")


class PMI2Handler:
    """The PMI-2 side of one engine: its node attributes and request handlers.

    Args:
        engine: the :class:`~flux_launch.proto.pmi1_server.SimpleServer`.
        ops: the engine's ops; ``send`` answers a waiting ``info-getnodeattr``.
    """

    def __init__(self, engine, ops):
        self.engine = engine
        self._ops = ops
        self.nodeattrs = {}
        self._waiting = {}  # node attribute -> [(client, thrid)] of wait=TRUE gets
        self._dispatch = {
            "fullinit": self._fullinit, "job-getid": self._job_getid,
            "info-getjobattr": self._getjobattr, "info-putnodeattr": self._putnodeattr,
            "info-getnodeattr": self._getnodeattr, "kvs-put": self._kvs_put,
            "kvs-get": self._kvs_get, "kvs-fence": self._kvs_fence,
            "finalize": self._finalize, "abort": self._abort}

    def handle(self, client, st, body):
        """Answer one frame body; returns the frames (bytes) to send this client now.

        Raises:
            PMI2ProtocolError: the body cannot be parsed.
            PMIProtocolError: a second ``kvs-fence`` before the first was answered.
        """
        req = decode(body)
        cmd = req["cmd"]
        fn = self._dispatch.get(cmd)
        if fn is None:
            what = "is not implemented" if cmd in _UNIMPLEMENTED else "is not a PMI-2 command"
            return self._error(client, req, PMI2_FAIL, f"{_short(cmd)} {what}")
        return fn(client, st, req)

    def fence_response(self, st, rc, msg):
        """The frame releasing a client from ``kvs-fence`` (rc 0, or an error with msg)."""
        fields = [] if st.thrid is None else [("thrid", st.thrid)]
        fields.append(("rc", rc))
        if rc != 0:
            fields.append(("errmsg", msg))
        st.thrid = None
        return frame(encode_body("kvs-fence-response", fields))

    def forget(self, client):
        """A client is gone: it waits for no node attribute any more."""
        for key, waiters in list(self._waiting.items()):
            waiters[:] = [w for w in waiters if w[0] != client]
            if not waiters:
                del self._waiting[key]

    # --- helpers ---

    def _frame(self, client, cmd, thrid, fields):
        head = [] if thrid is None else [("thrid", thrid)]
        data = frame(encode_body(cmd, head + fields))
        self.engine.trace_out(client, data)
        return data

    def _reply(self, client, req, rc=0, **fields):
        pairs = [("rc", rc)] + [(k.replace("_", "-"), v) for k, v in fields.items()]
        return [self._frame(client, response_name(req["cmd"]), req.get("thrid"), pairs)]

    def _error(self, client, req, rc, msg):
        return self._reply(client, req, rc=rc, errmsg=msg)

    def _need(self, client, req, *names):
        """An error response if a field is missing, else None."""
        for name in names:
            if name not in req:
                return self._error(client, req, PMI2_ERR_INVALID_ARG, f"{req['cmd']} needs {name}")
        return None

    # --- requests: (client, state, request) -> list of frames ---

    def _fullinit(self, client, st, req):
        eng = self.engine
        text = req.get("pmirank")
        if text is None:
            if not isinstance(client, int):
                return self._need(client, req, "pmirank")
            rank = client
        else:
            try:
                rank = int(text)
            except ValueError:
                rank = -1
            if not 0 <= rank < eng.size:
                return self._error(client, req, PMI2_ERR_INVALID_ARG,
                                   f"fullinit: pmirank={_short(text)} is not a rank of this job "
                                   f"(0..{eng.size - 1}): check PMI_RANK")
            if isinstance(client, int) and rank != client:
                return self._error(client, req, PMI2_ERR_INVALID_ARG,
                                   f"fullinit: pmirank={rank} but this connection belongs to rank {client}")
        return self._reply(client, req, rc=0, pmi_version=2, pmi_subversion=0, rank=rank,
                           size=eng.size, appnum=eng.appnum, debugged=FALSE, pmiverbose=FALSE)

    def _job_getid(self, client, st, req):
        return self._reply(client, req, rc=0, jobid=self.engine.kvsname)

    def _getjobattr(self, client, st, req):
        err = self._need(client, req, "key")
        if err:
            return err
        key = req["key"]
        if key == "universeSize":
            value = str(self.engine.universe_size)
        else:
            value = self.engine._preput.get(key)
        if value is None:
            return self._reply(client, req, rc=0, found=FALSE)
        return self._reply(client, req, rc=0, found=TRUE, value=value)

    def _putnodeattr(self, client, st, req):
        err = self._need(client, req, "key", "value") or self._bad_kv(client, req)
        if err:
            return err
        key, value = req["key"], req["value"]
        self.nodeattrs[key] = value
        for waiter, thrid in self._waiting.pop(key, ()):
            data = self._frame(waiter, "info-getnodeattr-response", thrid,
                               [("rc", 0), ("found", TRUE), ("value", value)])
            self._ops.send(waiter, data)
        return self._reply(client, req, rc=0)

    def _getnodeattr(self, client, st, req):
        err = self._need(client, req, "key")
        if err:
            return err
        key = req["key"]
        value = self.nodeattrs.get(key)
        if value is not None:
            return self._reply(client, req, rc=0, found=TRUE, value=value)
        if not boolean(req, "wait", False):
            return self._reply(client, req, rc=0, found=FALSE)
        self._waiting.setdefault(key, []).append((client, req.get("thrid")))
        return []

    def _bad_kv(self, client, req):
        """An error response for a key or value PMI-1 clients could not share, else None."""
        key, value = req["key"], req["value"]
        if len(key) > MAX_KEYLEN:
            return self._error(client, req, PMI2_ERR_INVALID_KEY_LENGTH,
                               f"key longer than {MAX_KEYLEN} characters")
        if not key or len(key.split()) != 1 or "=" in key:
            return self._error(client, req, PMI2_ERR_INVALID_KEY,
                               f"invalid key {_short(key)!r}: empty, or with white space or '='")
        if len(value) > MAX_VALLEN:
            return self._error(client, req, PMI2_ERR_INVALID_VAL_LENGTH,
                               f"value longer than {MAX_VALLEN} characters")
        if "\n" in value or "\r" in value:
            return self._error(client, req, PMI2_ERR_INVALID_VAL, "value holds a newline")
        return None

    def _kvs_put(self, client, st, req):
        err = self._need(client, req, "key", "value") or self._bad_kv(client, req)
        if err:
            return err
        eng = self.engine
        eng._kvs[req["key"]] = eng._pending[req["key"]] = req["value"]
        return self._reply(client, req, rc=0)

    def _kvs_get(self, client, st, req):
        err = self._need(client, req, "key")
        if err:
            return err
        jobid = req.get("jobid", "")
        if jobid and jobid != self.engine.kvsname:
            return self._error(client, req, PMI2_ERR_INVALID_ARG,
                               f"unknown jobid {_short(jobid)!r} (job-getid gives {self.engine.kvsname})")
        value = self.engine._kvs.get(req["key"])
        if value is None:
            return self._reply(client, req, rc=0, found=FALSE)
        return self._reply(client, req, rc=0, found=TRUE, value=value)

    def _kvs_fence(self, client, st, req):
        eng = self.engine
        eng.barrier_check(st, "kvs-fence")
        if eng._lost:
            return self._error(client, req, PMI2_FAIL, _LOST_MSG)
        st.thrid = req.get("thrid")
        eng.barrier_join(client, st)
        return []

    def _finalize(self, client, st, req):
        st.finalized = True
        frames = self._reply(client, req, rc=0)
        hook = self.engine._finalize_hook
        if hook is not None:
            hook(client)
        return frames

    def _abort(self, client, st, req):
        # PMI2_Abort sends no exit code (MPICH's client exits with -1 after it)
        # and reads no response.
        self._ops.abort(client, 1, req.get("msg", ""))
        return []
