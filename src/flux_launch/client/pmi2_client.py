"""Blocking PMI-2 wire-protocol client over an inherited file descriptor.

What Slurm's ``srun --mpi=pmi2`` (and our job shell) serve on ``PMI_FD``:
:class:`PMI2Client` has :class:`~flux_launch.client.pmi_client.PMIClient`'s
interface (``rank``, ``size``, ``init()``, ``put``, ``get``, ``barrier``,
``finalize``, ``abort``, ``close``), so a broker boots with either. ``get`` of a
``PMI_``-prefixed key (``PMI_process_mapping``) asks for a job attribute
(``info-getjobattr``); other keys come from the KVS (``kvs-get``). Each call sends
one message and reads one response; use one client from one thread at a time.
The wire format is in :mod:`flux_launch.proto.pmi2`.
"""

import os
import select

from flux_launch.client.pmi_client import PMIClient, PMIError
from flux_launch.proto.pmi1 import PMIProtocolError, parse_reply
from flux_launch.proto.pmi2 import (
    INIT_REQUEST,
    MAX_BODY,
    PMI2ProtocolError,
    boolean,
    decode,
    encode,
    response_name,
    split_frame,
)

# PMI2_ID_NULL: "any process" as the srcid of kvs-get.
_ID_NULL = -1


class PMI2Refused(PMIError):
    """The server answered the PMI-2 ``cmd=init`` line with an error: it may speak
    PMI-1 only, and the connection is still usable for a PMI-1 init."""


class PMI2Client:
    """PMI-2 client on a connected stream file descriptor.

    Args:
        fd: the descriptor (owned by the client from now on: :meth:`close` closes it).
        rank: this process's rank as the launcher named it (``PMI_RANK``); the
            server's ``fullinit`` answer replaces it, and ``size`` too.
        size: the number of processes in the job.
        jobid: ``PMI_JOBID`` when the launcher set one (Slurm does), else None.
        timeout: seconds to wait for each response (None: forever).
    """

    def __init__(self, fd, rank, size, *, jobid=None, timeout=None):
        self.fd = fd
        self.rank = rank
        self.size = size
        self.appnum = 0
        self.jobid = jobid
        self.timeout = timeout
        self._buf = b""
        self._kvsname = None

    @classmethod
    def from_env(cls, environ=None, *, timeout=None):
        """Create a client from ``PMI_FD``, ``PMI_RANK``, ``PMI_SIZE`` (and ``PMI_JOBID``).

        Raises:
            RuntimeError: a variable is unset or not an integer, or the rank is
                outside 0..size-1; the message names the variable.
        """
        env = os.environ if environ is None else environ
        base = PMIClient.from_env(env, timeout=timeout)  # the same checks and messages
        return cls(base.fd, base.rank, base.size, jobid=env.get("PMI_JOBID") or None, timeout=timeout)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def detach(self):
        """Give up the descriptor (returned) without closing it, e.g. to retry PMI-1 on it."""
        fd, self.fd = self.fd, -1
        return fd

    def close(self):
        """Close the descriptor (idempotent; errors on close are ignored)."""
        if self.fd >= 0:
            fd, self.fd = self.fd, -1
            try:
                os.close(fd)
            except OSError:
                pass

    # --- PMI-2 operations: each raises ConnectionError when the server closed the
    # --- connection, TimeoutError past the timeout, PMIProtocolError on a
    # --- malformed or unexpected response, PMIError on an error rc.

    def init(self):
        """The ``cmd=init pmi_version=2`` handshake, then ``fullinit``.

        Raises:
            PMI2Refused: the server refused PMI-2 at the init line.
            PMIError: ``fullinit`` failed.
        """
        self._send(INIT_REQUEST)
        reply = parse_reply(self._readline())
        if reply.get("cmd") != "response_to_init":
            raise PMIProtocolError(f"PMI-2 init: expected response_to_init, got {reply.get('cmd')!r}")
        rc = _int(reply, "rc", "0")
        if rc != 0 or reply.get("pmi_version") != "2":
            msg = reply.get("msg") or f"server chose PMI version {reply.get('pmi_version')}"
            raise PMI2Refused(f"PMI-2 init refused (rc={rc}): {msg}", rc or -1)
        fields = [("pmirank", self.rank)]
        if self.jobid:
            fields.append(("pmijobid", self.jobid))
        fields.append(("threaded", "FALSE"))
        resp = self._call("fullinit", fields)
        self.rank = _int(resp, "rank")
        self.size = _int(resp, "size")
        self.appnum = _int(resp, "appnum", "0")
        if self.size < 1 or not 0 <= self.rank < self.size:
            raise PMIProtocolError(f"PMI-2 fullinit gave rank {self.rank} of size {self.size}")

    def kvsname(self):
        """The job id (``job-getid``), asked once then cached."""
        if self._kvsname is None:
            resp = self._call("job-getid")
            if not resp.get("jobid"):
                raise PMIProtocolError("PMI-2 job-getid response has no jobid")
            self._kvsname = resp["jobid"]
        return self._kvsname

    def put(self, key, value):
        """Put a key; other processes see it after :meth:`barrier`.

        Raises:
            ValueError: an empty key or one with white space, '=' or ';' (which
                PMI-1 peers could not read), or a value with a newline.
        """
        _check_key(key)
        if "\n" in value or "\r" in value:
            raise ValueError(f"PMI value for {key!r} holds a newline")
        self._call("kvs-put", [("key", key), ("value", value)])

    def get(self, key):
        """A key's value: a job attribute for ``PMI_*`` keys, else from the KVS.

        Raises:
            KeyError: the server has no such key (``found=FALSE``).
            ValueError: an invalid key (see :meth:`put`).
        """
        _check_key(key)
        if key.startswith("PMI_"):
            resp = self._call("info-getjobattr", [("key", key)])
        else:
            resp = self._call("kvs-get", [("jobid", self.kvsname()), ("srcid", _ID_NULL), ("key", key)])
        if not boolean(resp, "found", False):
            raise KeyError(key)
        return resp.get("value", "")

    def job_attr(self, name):
        """A job attribute (``universeSize``, ``PMI_process_mapping``...), or None if unknown."""
        resp = self._call("info-getjobattr", [("key", name)])
        return resp.get("value", "") if boolean(resp, "found", False) else None

    def put_node_attr(self, name, value):
        """Set a node attribute, seen by the processes on this node."""
        self._call("info-putnodeattr", [("key", name), ("value", value)])

    def get_node_attr(self, name, wait=False):
        """A node attribute, or None if unset (``wait``: block until some local process puts it)."""
        resp = self._call("info-getnodeattr", [("key", name), ("wait", bool(wait))])
        return resp.get("value", "") if boolean(resp, "found", False) else None

    def universe_size(self):
        """The universe size (the job size if the server does not say)."""
        value = self.job_attr("universeSize")
        return self.size if value is None else int(value)

    def barrier(self):
        """``kvs-fence``: wait until every process has entered it; then all puts are visible."""
        self._call("kvs-fence")

    def finalize(self):
        """Tell the server this process is done with PMI."""
        self._call("finalize")

    def abort(self, exitcode, msg=""):
        """Ask the server to abort the job (``isworld=TRUE``); no response is awaited.

        Unlike ``PMI2_Abort()`` this does not exit the process: the caller does.
        ``exitcode`` is not carried by PMI-2 and is ignored.
        """
        self._send(encode("abort", [("isworld", True), ("msg", " ".join(str(msg).split()))]))

    # --- plumbing ---

    def _call(self, cmd, fields=()):
        self._send(encode(cmd, fields))
        resp = decode(self._readframe())
        if resp["cmd"] != response_name(cmd):
            raise PMIProtocolError(f"PMI-2 {cmd}: expected {response_name(cmd)}, got {resp['cmd']!r}")
        rc = _int(resp, "rc")
        if rc != 0:
            msg = resp.get("errmsg")
            raise PMIError(f"PMI-2 {cmd} failed (rc={rc})" + (f": {msg}" if msg else ""), rc)
        return resp

    def _wait(self, event):
        poller = select.poll()
        poller.register(self.fd, event)
        ms = None if self.timeout is None else max(0, int(self.timeout * 1000))
        if not poller.poll(ms):
            raise TimeoutError(f"PMI server did not respond within {self.timeout}s")

    def _send(self, data):
        if self.fd < 0:
            raise ConnectionError("PMI client is closed")
        view = memoryview(data)
        while view:
            try:
                n = os.write(self.fd, view)
            except BlockingIOError:
                self._wait(select.POLLOUT)
                continue
            except (BrokenPipeError, ConnectionResetError):
                raise ConnectionError("PMI server closed the connection") from None
            view = view[n:]

    def _fill(self):
        if self.fd < 0:
            raise ConnectionError("PMI client is closed")
        if self.timeout is not None:
            self._wait(select.POLLIN)
        try:
            data = os.read(self.fd, 65536)
        except BlockingIOError:
            self._wait(select.POLLIN)
            return
        except ConnectionResetError:
            data = b""
        if not data:
            raise ConnectionError("PMI server closed the connection")
        self._buf += data

    def _readline(self):
        while True:
            i = self._buf.find(b"\n")
            if i >= 0:
                line, self._buf = self._buf[:i + 1], self._buf[i + 1:]
                return line
            if len(self._buf) > MAX_BODY:
                raise PMIProtocolError(f"PMI response longer than {MAX_BODY} bytes")
            self._fill()

    def _readframe(self):
        while True:
            cut = split_frame(self._buf)
            if cut is not None:
                body, self._buf = cut
                return body
            self._fill()


def _check_key(key):
    if not key or "=" in key or ";" in key or len(key.split()) != 1:
        raise ValueError(f"invalid PMI key {key!r}")


def _int(resp, name, default=None):
    text = resp.get(name, default)
    try:
        return int(text)
    except (TypeError, ValueError):
        raise PMI2ProtocolError(f"PMI {resp.get('cmd')} response lacks an integer {name}",
                                resp.get("cmd")) from None
