"""The MPIR process acquisition interface of ``flux job attach --debug``.

A parallel debugger that runs (or attaches to) the front end reads, by symbol
name, ``MPIR_being_debugged``, ``MPIR_proctable`` (an array of ``{char
*host_name; char *executable_name; int pid;}`` indexed by task rank),
``MPIR_proctable_size`` and ``MPIR_debug_state``, and puts a breakpoint on
``MPIR_Breakpoint()``. These are real exported symbols of the small C library
``flux_launch.job._mpir`` (``csrc/mpir.c``, built by cffi with debug information).

``setup(h, jobid, emulate)`` does what flux-core's attach does once the job's
tasks were started: it fills the proctable from the job's shells, sets
``MPIR_debug_state`` to ``MPIR_DEBUG_SPAWNED``, calls ``MPIR_Breakpoint()`` (where
the debugger, stopped, attaches to the tasks), then, when the tasks wait stopped in
exec (``-o stop-tasks-in-exec``) or with ``emulate``, sends SIGCONT to the job
(the debugger ignores it for the tasks it holds).

``emulate`` (``--debug-emulate``, for tests) does the same without a debugger;
where the C library was not built it keeps the table in Python instead. Without it,
``--debug`` needs the library: an ``ImportError`` with one line saying so.
"""

import signal

MPIR_DEBUG_SPAWNED = 1


class _Emulated:
    """The C library's functions, over Python state (``--debug-emulate`` only)."""

    def __init__(self):
        self.table = []
        self.state = 0
        self.being_debugged = 0
        self.jobid = ""

    def mpir_proctable_alloc(self, n):
        self.table = [None] * n
        return 0

    def mpir_proctable_set(self, i, host, exe, pid):
        self.table[i] = (host, exe, pid)
        return 0

    def mpir_proctable_size(self):
        return len(self.table)

    def mpir_proctable_pid(self, i):
        return self.table[i][2]

    def mpir_set_debug_state(self, state):
        self.state = state

    def mpir_get_debug_state(self):
        return self.state

    def mpir_set_being_debugged(self, value):
        self.being_debugged = value

    def mpir_get_being_debugged(self):
        return self.being_debugged

    def mpir_set_totalview_jobid(self, jobid):
        self.jobid = jobid
        return 0

    def MPIR_Breakpoint(self):  # the interface's name
        pass


def load(emulate=False):
    """The library's functions (``lib``), or with ``emulate`` their Python twin when
    it is not built.

    Raises:
        ImportError: not built, and not ``emulate`` (one line: what to do).
    """
    try:
        from flux_launch.job._mpir import lib
    except ImportError as exc:
        if emulate:
            return _Emulated()
        raise ImportError(f"--debug needs the MPIR library (csrc/mpir.c), which is not built ({exc}): "
                          "reinstall with a C compiler (make setup)") from None
    return lib


def fill(lib, entries):
    """Put ``entries`` (``{"rank", "host", "executable", "pid"}`` in rank order) in
    ``MPIR_proctable``.

    Raises:
        MemoryError: the table could not be allocated.
    """
    if lib.mpir_proctable_alloc(len(entries)) != 0:
        raise MemoryError("MPIR_proctable: cannot allocate")
    for i, e in enumerate(entries):
        if lib.mpir_proctable_set(i, str(e["host"]).encode(), str(e["executable"]).encode(), int(e["pid"])) != 0:
            raise MemoryError("MPIR_proctable: cannot fill")


def setup(h, jobid, emulate=False, timeout=None):
    """Wait for the job's tasks, publish them through the MPIR interface, call
    ``MPIR_Breakpoint()`` and continue tasks stopped in exec; returns the
    ``Proctable``.

    Raises:
        ImportError: ``--debug`` without the library.
        OSError: the job is unknown, not yours, not running or ends before its
            tasks start (``job.proctable``); the SIGCONT failed.
    """
    from flux_launch.job.proctable import proctable

    lib = load(emulate)
    lib.mpir_set_being_debugged(1)
    lib.mpir_set_totalview_jobid(str(int(jobid)).encode())
    table = proctable(h, jobid, timeout, what="debug")
    fill(lib, table.entries)
    lib.mpir_set_debug_state(MPIR_DEBUG_SPAWNED)
    lib.MPIR_Breakpoint()  # a debugger stops here, reads the table and attaches
    if table.sync or emulate:
        h.rpc("job-manager.kill", {"id": int(jobid), "signum": int(signal.SIGCONT)}).get()
    return table
