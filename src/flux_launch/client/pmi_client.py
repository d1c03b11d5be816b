"""Blocking PMI-1 simple-protocol client over an inherited file descriptor.

A process launched with ``PMI_FD``, ``PMI_RANK`` and ``PMI_SIZE`` in its environment
(RFC 13 "Environment") talks to its process manager with :class:`PMIClient`: each
call sends one request line and reads one response line (PMI-1 is lock-step and not
thread safe: use one client from one thread at a time).
"""

import os
import select

from flux_launch.proto.pmi1 import PMIProtocolError, parse_reply, request

# A response longer than this is a broken server, not a real value.
_MAX_RESPONSE = 64 * 1024


class PMIError(RuntimeError):
    """The PMI server answered a request with a nonzero rc.

    Attributes:
        rc: the PMI return code.
    """

    def __init__(self, message, rc):
        super().__init__(message)
        self.rc = rc


class PMIClient:
    """PMI-1 client on a connected stream file descriptor.

    Args:
        fd: the descriptor (owned by the client from now on: :meth:`close` closes it).
        rank: this process's rank in the job.
        size: the number of processes in the job.
        timeout: seconds to wait for each response (None: forever).
    """

    def __init__(self, fd, rank, size, *, timeout=None):
        self.fd = fd
        self.rank = rank
        self.size = size
        self.timeout = timeout
        self._buf = bytearray()
        self._kvsname = None

    @classmethod
    def from_env(cls, environ=None, *, timeout=None):
        """Create a client from ``PMI_FD``, ``PMI_RANK`` and ``PMI_SIZE``.

        Args:
            environ: mapping to read (defaults to ``os.environ``).
            timeout: see the class.

        Raises:
            RuntimeError: a variable is unset or not an integer, or the rank is
                outside 0..size-1; the message names the variable.
        """
        env = os.environ if environ is None else environ
        values = {}
        for name in ("PMI_FD", "PMI_RANK", "PMI_SIZE"):
            text = env.get(name)
            if text is None:
                raise RuntimeError(f"{name} is not set: this process was not "
                                   "launched by a PMI-1 (simple PMI) process manager")
            try:
                values[name] = int(text)
            except ValueError:
                raise RuntimeError(f"{name}={text!r} is not an integer") from None
        fd, rank, size = values["PMI_FD"], values["PMI_RANK"], values["PMI_SIZE"]
        if fd < 0:
            raise RuntimeError(f"PMI_FD={fd} is not a file descriptor")
        if size < 1 or not 0 <= rank < size:
            raise RuntimeError(f"PMI_RANK={rank} is outside 0..PMI_SIZE-1 "
                               f"(PMI_SIZE={size})")
        return cls(fd, rank, size, timeout=timeout)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def close(self):
        """Close the descriptor (idempotent; errors on close are ignored)."""
        if self.fd >= 0:
            fd, self.fd = self.fd, -1
            try:
                os.close(fd)
            except OSError:
                pass

    # --- PMI operations: each raises ConnectionError when the server closed the
    # --- connection, TimeoutError past the timeout, PMIProtocolError on a
    # --- malformed or unexpected response.

    def init(self):
        """Do the init handshake (PMI 1.1).

        Raises:
            PMIError: the server refused (rc != 0) or chose a version other than 1.
        """
        reply = self._call("response_to_init", "init", pmi_version=1,
                           pmi_subversion=1)
        self._check(reply, "init")
        if reply.get("pmi_version", "1") != "1":
            raise PMIError("PMI server chose unsupported version "
                           f"{reply.get('pmi_version')}", -1)

    def kvsname(self):
        """Return the job's KVS name (asked once, then cached).

        Raises:
            PMIError: error rc.
        """
        if self._kvsname is None:
            reply = self._check(self._call("my_kvsname", "get_my_kvsname"),
                                "get_my_kvsname")
            if not reply.get("kvsname"):
                raise PMIProtocolError("PMI my_kvsname response has no kvsname")
            self._kvsname = reply["kvsname"]
        return self._kvsname

    def put(self, key, value):
        """Put a key; other processes see it after :meth:`barrier`.

        Raises:
            ValueError: a key with white space or '=', or a value with a newline.
            PMIError: error rc (e.g. a value over the server's vallen_max).
        """
        if not key or "=" in key or len(key.split()) != 1:
            raise ValueError(f"invalid PMI key {key!r}")
        if "\n" in value or "\r" in value:
            raise ValueError(f"PMI value for {key!r} holds a newline")
        self._check(self._call("put_result", "put", kvsname=self.kvsname(),
                               key=key, value=value), f"put {key}")

    def get(self, key):
        """Return a key's value.

        Raises:
            KeyError: error rc (the key is not found, among others). RFC 13 lets a
                PMI library return "" for a missing ``PMI_*`` key; this client
                leaves that choice to its caller.
            ValueError: a key with white space or '='.
        """
        if not key or "=" in key or len(key.split()) != 1:
            raise ValueError(f"invalid PMI key {key!r}")
        reply = self._call("get_result", "get", kvsname=self.kvsname(), key=key)
        if _rc(reply) != 0:
            raise KeyError(key)
        return reply.get("value", "")

    def barrier(self):
        """Enter the barrier and wait until every process has.

        Raises:
            PMIError: the barrier failed (rc != 0).
        """
        self._check(self._call("barrier_out", "barrier_in"), "barrier")

    def finalize(self):
        """Tell the server this process is done with PMI.

        Raises:
            PMIError: error rc.
        """
        self._check(self._call("finalize_ack", "finalize"), "finalize")

    def abort(self, exitcode, msg=""):
        """Ask the server to abort the job; no response is awaited.

        Unlike ``PMI_Abort()`` this does not exit the process: the caller does.

        Raises:
            ConnectionError, OSError: the request could not be written.
        """
        msg = " ".join(str(msg).split())
        if msg:
            self._send(request("abort", exitcode=int(exitcode), error_msg=msg))
        else:
            self._send(request("abort", exitcode=int(exitcode)))

    def universe_size(self):
        """Return the universe size.

        Raises:
            PMIError: error rc.
        """
        reply = self._check(self._call("universe_size", "get_universe_size"),
                            "get_universe_size")
        return _int_field(reply, "size")

    def appnum(self):
        """Return the application number.

        Raises:
            PMIError: error rc.
        """
        reply = self._check(self._call("appnum", "get_appnum"), "get_appnum")
        return _int_field(reply, "appnum")

    # --- plumbing ---

    def _check(self, reply, what):
        rc = _rc(reply)
        if rc != 0:
            msg = reply.get("msg")
            raise PMIError(f"PMI {what} failed (rc={rc})" + (f": {msg}" if msg else ""),
                           rc)
        return reply

    def _call(self, expect, cmd, **fields):
        self._send(request(cmd, **fields))
        reply = parse_reply(self._readline())
        if reply.get("cmd") != expect:
            raise PMIProtocolError(f"PMI {cmd}: expected a {expect} response, got "
                                   f"{reply.get('cmd')!r}")
        return reply

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

    def _readline(self):
        if self.fd < 0:
            raise ConnectionError("PMI client is closed")
        while True:
            i = self._buf.find(b"\n")
            if i >= 0:
                line = bytes(self._buf[:i + 1])
                del self._buf[:i + 1]
                return line
            if len(self._buf) > _MAX_RESPONSE:
                raise PMIProtocolError(
                    f"PMI response longer than {_MAX_RESPONSE} bytes")
            if self.timeout is not None:
                self._wait(select.POLLIN)
            try:
                data = os.read(self.fd, 4096)
            except BlockingIOError:
                self._wait(select.POLLIN)
                continue
            except ConnectionResetError:
                data = b""
            if not data:
                raise ConnectionError("PMI server closed the connection")
            self._buf += data


def _rc(reply):
    # RFC 13: rc may be omitted on success.
    try:
        return int(reply.get("rc", "0"))
    except ValueError:
        raise PMIProtocolError(f"PMI response has a non-integer rc "
                               f"{reply.get('rc')!r}") from None


def _int_field(reply, name):
    try:
        return int(reply[name])
    except (KeyError, ValueError):
        raise PMIProtocolError(f"PMI {reply.get('cmd')} response lacks an integer "
                               f"{name}") from None
