"""A small PMI-1 server for N local processes on one node.

``flux start --test-size=N`` bootstraps N brokers with it, the way flux-core's
``flux start`` does: one socketpair per rank, the child end inherited by the
process (``pass_fds``) and named in its ``PMI_FD``, the server end served by a
daemon thread. With a single node the barrier completes as soon as every rank has
entered it. ``PMI_process_mapping`` is preput as ``(vector,(0,1,N))``.

A client that breaks the protocol is logged on ``flux_launch.pmi`` and dropped
(its connection closed); the server keeps serving the others. A rank lost before
finalize (dropped, or its connection closed) makes the barrier impossible: ranks
waiting in it, or entering it later, get an error response instead of hanging.
"""

import logging
import os
import selectors
import socket
import threading

from flux_launch.proto.pmi1 import PMIProtocolError, process_mapping
from flux_launch.proto.pmi1_server import Ops, SimpleServer

log = logging.getLogger("flux_launch.pmi")

_READ = selectors.EVENT_READ
_WRITE = selectors.EVENT_WRITE


class _Conn:
    __slots__ = ("rank", "sock", "inbuf", "outbuf", "closed")

    def __init__(self, rank, sock):
        self.rank = rank
        self.sock = sock
        self.inbuf = bytearray()
        self.outbuf = bytearray()
        self.closed = False


class _LocalOps(Ops):
    """Engine callbacks; they run on the server thread."""

    def __init__(self, server):
        self._server = server

    def barrier_enter(self, pending_puts):
        # One node: nothing to exchange, every rank has entered.
        srv = self._server
        srv._deliver(srv._engine.barrier_complete(0))

    def abort(self, client, exitcode, msg):
        self._server._aborted(client, exitcode, msg)

    def finalize(self, client):
        self._server._rank_done(client, finalized=True)

    def trace(self, client, direction, line):
        self._server._trace(client, direction, line)


class LocalPMIServer:
    """PMI-1 server for ``size`` local processes over socketpairs.

    Args:
        size: number of processes (ranks 0..size-1).
        kvsname: the KVS name handed to clients.
        on_abort: ``on_abort(rank, exitcode, msg)``, called on the server thread
            when a rank sends ``cmd=abort``; if None the abort is only logged.
        trace: ``trace(rank, direction, line)`` called for every line in ("C")
            and out ("S"), or True to log them at INFO as ``pmi-simple: RANK: C:
            LINE``; None or False for no tracing.
        appnum: the application number handed to clients.

    Raises:
        ValueError: size < 1.
        OSError: socketpairs or the wake-up pipe could not be created.
    """

    def __init__(self, size, kvsname="kvs_0", on_abort=None, trace=None, *,
                 appnum=0, mapping="single"):
        if size < 1:
            raise ValueError(f"PMI size must be at least 1, not {size}")
        self.size = size
        self.kvsname = kvsname
        self._on_abort = on_abort
        self._trace_cb = trace
        self._engine = SimpleServer(size, _LocalOps(self), kvsname=kvsname,
                                    appnum=appnum, trace=bool(trace))
        # flux start --test-pmi-clique: single (one node), per-broker, none
        if mapping == "single":
            self._engine.preput("PMI_process_mapping", process_mapping([(0, 1, size)]))
        elif mapping == "per-broker":
            self._engine.preput("PMI_process_mapping", process_mapping([(0, size, 1)]))
        self._conns = []
        self._children = []
        self._wake_r = self._wake_w = -1
        self._sel = None
        self._thread = None
        self._stopping = False
        self._closed = False
        self._lock = threading.Lock()
        self._done = set()
        self._lost = set()
        self._finalized = set()
        self._all_done = threading.Event()
        try:
            for rank in range(size):
                parent, child = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
                self._children.append(child)
                parent.setblocking(False)
                self._conns.append(_Conn(rank, parent))
            self._wake_r, self._wake_w = os.pipe()
            os.set_blocking(self._wake_r, False)
            os.set_blocking(self._wake_w, False)
        except BaseException:
            self._close_all()
            raise

    @property
    def engine(self):
        """The :class:`SimpleServer` (touch it only before :meth:`start`)."""
        return self._engine

    @property
    def lost_ranks(self):
        """Ranks dropped or disconnected before finalize (a frozenset)."""
        with self._lock:
            return frozenset(self._lost)

    @property
    def finalized_ranks(self):
        """Ranks that sent ``cmd=finalize`` (a frozenset)."""
        with self._lock:
            return frozenset(self._finalized)

    def preput(self, key, value):
        """Add a key to the KVS before :meth:`start`.

        Raises:
            RuntimeError: the server already started.
            ValueError: see :meth:`SimpleServer.preput`.
        """
        if self._thread is not None:
            raise RuntimeError("preput after LocalPMIServer.start()")
        self._engine.preput(key, value)

    def client_fd(self, rank):
        """Return the child end of ``rank``'s socketpair (still owned by the server).

        Pass it in ``pass_fds`` and its number in ``PMI_FD``. To hand it to an
        owner in this process (e.g. a :class:`PMIClient`), pass ``os.dup()`` of it.

        Raises:
            IndexError: rank outside 0..size-1.
            ValueError: the client fds were closed.
        """
        if not 0 <= rank < self.size:
            raise IndexError(f"PMI rank {rank} outside 0..{self.size - 1}")
        fd = self._children[rank].fileno()
        if fd < 0:
            raise ValueError("PMI client fds already closed")
        return fd

    def keep_only(self, rank):
        """In a process forked for ``rank`` (before :meth:`start`): close every
        descriptor of the server but ``rank``'s own end, and return that end's fd.

        Each forked process would otherwise hold the other ranks' ends open, and
        the server would never see their EOF.
        """
        fd = self.client_fd(rank)
        for i, sock in enumerate(self._children):
            if i != rank:
                sock.close()
        for conn in self._conns:
            conn.sock.close()
        for end in (self._wake_r, self._wake_w):
            if end >= 0:
                os.close(end)
        self._children[rank].detach()
        return fd

    def close_client_fds(self):
        """Close the child ends (in the parent, once the processes are spawned)."""
        for sock in self._children:
            sock.close()

    def start(self):
        """Start serving on a daemon thread.

        Raises:
            RuntimeError: already started, or stopped.
        """
        if self._thread is not None or self._closed:
            raise RuntimeError("LocalPMIServer already started or stopped")
        self._sel = selectors.DefaultSelector()
        self._sel.register(self._wake_r, _READ, None)
        for conn in self._conns:
            self._sel.register(conn.sock, _READ, conn)
        self._thread = threading.Thread(target=self._run, name="flux-pmi-local",
                                        daemon=True)
        self._thread.start()

    def wait(self, timeout=None):
        """Wait until every rank has finalized or been lost; False on timeout."""
        return self._all_done.wait(timeout)

    def stop(self, timeout=5.0):
        """Stop the thread and close every descriptor (idempotent, never hangs).

        A thread still running after ``timeout`` seconds is logged and abandoned.
        Called from a callback on the server thread, it closes without joining.
        """
        if self._closed:
            return
        self._stopping = True
        thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            try:
                os.write(self._wake_w, b"x")
            except OSError:
                pass
            thread.join(timeout)
            if thread.is_alive():
                log.warning("PMI server thread did not stop within %ss", timeout)
        self._close_all()

    def __enter__(self):
        if self._thread is None:
            self.start()
        return self

    def __exit__(self, *exc):
        self.stop()

    # --- server thread ---

    def _run(self):
        sel = self._sel
        try:
            while not self._stopping:
                for key, mask in sel.select():
                    conn = key.data
                    if conn is None:
                        self._drain_wake()
                        continue
                    if conn.closed:
                        continue
                    try:
                        if mask & _WRITE:
                            self._flush(conn)
                        if mask & _READ and not conn.closed:
                            self._read(conn)
                    except Exception:
                        log.exception("PMI rank %d: internal error, dropping it",
                                      conn.rank)
                        self._drop(conn)
        except Exception:
            if not self._stopping:
                log.exception("PMI server thread failed")

    def _drain_wake(self):
        try:
            while os.read(self._wake_r, 512):
                pass
        except (BlockingIOError, OSError):
            pass

    def _read(self, conn):
        try:
            data = conn.sock.recv(65536)
        except (BlockingIOError, InterruptedError):
            return
        except OSError as e:
            log.info("PMI rank %d: read failed: %s", conn.rank, e)
            data = b""
        if not data:
            if not self._engine.finalized(conn.rank):
                log.info("PMI rank %d: connection closed before finalize", conn.rank)
            self._drop(conn)
            return
        conn.inbuf += data
        engine = self._engine
        while not conn.closed:
            i = conn.inbuf.find(b"\n")
            if i < 0:
                if len(conn.inbuf) > engine.max_line:
                    log.error("PMI rank %d: protocol error: request longer than %d "
                              "bytes without newline, dropping it", conn.rank,
                              engine.max_line)
                    self._drop(conn)
                return
            line = bytes(conn.inbuf[:i + 1])
            del conn.inbuf[:i + 1]
            try:
                replies = engine.handle(conn.rank, line)
            except PMIProtocolError as e:
                log.error("PMI rank %d: protocol error: %s; dropping it", conn.rank, e)
                self._drop(conn)
                return
            for reply in replies:
                self._send(conn, reply)

    def _send(self, conn, data):
        if conn.closed:
            return
        if conn.outbuf:
            conn.outbuf += data
            return
        try:
            n = conn.sock.send(data)
        except (BlockingIOError, InterruptedError):
            n = 0
        except OSError as e:
            log.info("PMI rank %d: write failed: %s", conn.rank, e)
            self._drop(conn)
            return
        if n < len(data):
            conn.outbuf += data[n:]
            self._sel.modify(conn.sock, _READ | _WRITE, conn)

    def _flush(self, conn):
        try:
            n = conn.sock.send(conn.outbuf)
        except (BlockingIOError, InterruptedError):
            return
        except OSError as e:
            log.info("PMI rank %d: write failed: %s", conn.rank, e)
            self._drop(conn)
            return
        del conn.outbuf[:n]
        if not conn.outbuf:
            self._sel.modify(conn.sock, _READ, conn)

    def _deliver(self, pairs):
        for rank, line in pairs:
            self._send(self._conns[rank], line)

    def _drop(self, conn):
        if conn.closed:
            return
        conn.closed = True
        try:
            self._sel.unregister(conn.sock)
        except (KeyError, ValueError):
            pass
        conn.sock.close()
        self._rank_done(conn.rank, finalized=False)
        self._deliver(self._engine.disconnect(conn.rank))

    def _rank_done(self, rank, finalized):
        with self._lock:
            if finalized:
                self._finalized.add(rank)
            elif rank not in self._finalized:
                self._lost.add(rank)
            self._done.add(rank)
            if len(self._done) == self.size:
                self._all_done.set()

    def _aborted(self, rank, exitcode, msg):
        if self._on_abort is None:
            log.error("PMI rank %d aborted the job (exit code %d): %s", rank,
                      exitcode, msg)
            return
        try:
            self._on_abort(rank, exitcode, msg)
        except Exception:
            log.exception("PMI on_abort callback failed")

    def _trace(self, rank, direction, line):
        cb = self._trace_cb
        if cb is True:
            log.info("pmi-simple: %d: %s: %s", rank, direction, line)
        elif cb is not None:
            try:
                cb(rank, direction, line)
            except Exception:
                log.exception("PMI trace callback failed")

    def _close_all(self):
        self._closed = True
        if self._sel is not None:
            self._sel.close()
        for conn in self._conns:
            conn.closed = True
            conn.sock.close()
        self.close_client_fds()
        for fd in (self._wake_r, self._wake_w):
            if fd >= 0:
                try:
                    os.close(fd)
                except OSError:
                    pass
        self._wake_r = self._wake_w = -1
