"""``Future``: the pending result of one RPC on a ``Flux`` handle.

Responses are queued on their future as the handle reads them, whichever call
reads the socket (a blocking ``get()`` of another future, or the reactor). A
future is consumed either by blocking (``get``, iteration) or by a continuation
(``then``) that ``Flux.reactor_run()`` calls once per response.
"""

import errno
import os

# The C module: collections imports ~2 ms of modules every command would pay for.
from _collections import deque


class Future:
    """The pending result of one RPC.

    ``get()`` blocks for the next response: it returns the payload or raises
    ``OSError(errnum, errstr)``. A streaming RPC yields several responses: iterate
    the future (``for payload in future``), which stops at the ``ENODATA`` that ends
    the stream, or give it a continuation with ``then``.

    ``done`` becomes true once the last response (of a streaming RPC: the error
    that ends the stream) has been taken with ``get()``.
    """

    def __init__(self, handle, matchtag, topic, streaming):
        self.handle = handle
        self.matchtag = matchtag
        self.topic = topic
        self.streaming = streaming
        self._queue = deque()  # responses received, not yet taken by get()
        self.done = False
        self._ended = False  # the last response was received (no more will come)
        self._then = None  # (callback, args) of the continuation
        self._due = 0  # responses received that the continuation was not called for yet

    def is_ready(self):
        """True when a response is waiting: ``get()`` returns or raises without blocking."""
        return bool(self._queue)

    def wait_for(self, timeout=None):
        """Block until a response is waiting, without taking it; returns the future.

        Raises:
            TimeoutError: none within ``timeout`` seconds.
            ConnectionError: the broker went away.
        """
        q = self._queue
        while not q:
            self.handle._recv_one(timeout)
        return self

    def get(self, timeout=None):
        """Wait for the next response and take it.

        Raises:
            OSError: the response carries an error (errno and text from the service);
                ``ENODATA`` ends a stream.
            TimeoutError: no response within ``timeout`` seconds.
            ConnectionError: the broker went away.
        """
        q = self._queue
        while not q:
            self.handle._recv_one(timeout)
        resp = q.popleft()
        errnum = resp.get("errnum")
        if errnum:
            self._finish()  # an error ends a stream too (RFC 6), not only ENODATA
            raise OSError(errnum, resp.get("errstr") or os.strerror(errnum))
        if not self.streaming:
            self._finish()
        return resp.get("payload")

    def __iter__(self):
        while not self.done:
            try:
                yield self.get()
            except OSError as exc:
                if exc.errno == errno.ENODATA:
                    return
                raise

    def then(self, callback, *args):
        """Call ``callback(future, *args)`` from ``Flux.reactor_run()`` once per
        response: once for a plain RPC, for each response of a streaming one (the
        last call's ``get()`` raises the error that ends the stream, ``ENODATA``
        when it ended normally). The callback takes the response with ``get()``,
        which does not block there; a call is skipped when an earlier one already
        took every waiting response. A later ``then`` replaces the continuation.

        While the continuation waits for responses, ``reactor_run()`` keeps running.
        Returns the future.
        """
        self.handle._reactor_get().then(self, callback, args)
        return self

    def reset(self):
        """Nothing to do (flux-core's streaming futures need it between responses;
        here each response is queued on its own). Returns the future."""
        return self

    def _finish(self):
        self.done = True
        self.handle._futures.pop(self.matchtag, None)
