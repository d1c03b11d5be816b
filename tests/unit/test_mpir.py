"""The MPIR library (exported symbols a debugger reads), its Python twin for
--debug-emulate, the shell's proctable method and the stop-tasks-in-exec option."""

import ctypes
import errno
import os

import pytest

from flux_launch.job import mpir
from flux_launch.job.proctable import _ntasks
from flux_launch.shell.plugins import ptrace
from flux_launch.shell.plugins.mpir import _Proctable


class MPIRProcdesc(ctypes.Structure):
    _fields_ = [("host_name", ctypes.c_char_p), ("executable_name", ctypes.c_char_p), ("pid", ctypes.c_int)]


ENTRIES = [{"rank": 0, "host": "node0", "executable": "/bin/sleep", "pid": 101},
           {"rank": 1, "host": "node1", "executable": "/usr/bin/hello", "pid": 202}]


@pytest.fixture(scope="module")
def lib():
    try:
        from flux_launch.job import _mpir
    except ImportError as exc:
        pytest.fail(f"the MPIR library was not built ({exc}): make setup builds it (setup.py, csrc/build_mpir.py)")
    return _mpir


def test_symbols_are_exported_data_a_debugger_reads(lib):
    """The table, its size and the state are real symbols of the library (read here
    by name with dlsym, as a debugger reads them), not cffi accessors."""
    mpir.fill(lib.lib, ENTRIES)
    lib.lib.mpir_set_debug_state(mpir.MPIR_DEBUG_SPAWNED)
    lib.lib.mpir_set_being_debugged(1)
    so = ctypes.CDLL(lib.__file__)
    assert ctypes.c_int.in_dll(so, "MPIR_proctable_size").value == 2
    assert ctypes.c_int.in_dll(so, "MPIR_debug_state").value == 1
    assert ctypes.c_int.in_dll(so, "MPIR_being_debugged").value == 1
    assert ctypes.c_int.in_dll(so, "MPIR_i_am_starter").value == 1
    assert ctypes.c_int.in_dll(so, "MPIR_partial_attach_ok").value == 1
    table = ctypes.POINTER(MPIRProcdesc).in_dll(so, "MPIR_proctable")
    got = [(table[i].host_name, table[i].executable_name, table[i].pid) for i in range(2)]
    assert got == [(b"node0", b"/bin/sleep", 101), (b"node1", b"/usr/bin/hello", 202)]
    assert hasattr(so, "MPIR_Breakpoint")
    so.MPIR_Breakpoint()


def test_refill_replaces_the_table(lib):
    mpir.fill(lib.lib, ENTRIES)
    mpir.fill(lib.lib, ENTRIES[1:])
    assert lib.lib.mpir_proctable_size() == 1 and lib.lib.mpir_proctable_pid(0) == 202
    assert lib.lib.mpir_proctable_pid(1) == -1  # out of range
    mpir.fill(lib.lib, [])
    assert lib.lib.mpir_proctable_size() == 0


def test_emulation_twin_behaves_like_the_library(lib):
    twin = mpir._Emulated()
    for impl in (lib.lib, twin):
        mpir.fill(impl, ENTRIES)
        impl.mpir_set_debug_state(1)
        assert impl.mpir_proctable_size() == 2
        assert [impl.mpir_proctable_pid(i) for i in range(2)] == [101, 202]
        assert impl.mpir_get_debug_state() == 1
        impl.MPIR_Breakpoint()


def test_debug_without_the_library_is_one_line(monkeypatch):
    import sys

    monkeypatch.setitem(sys.modules, "flux_launch.job._mpir", None)  # import fails
    assert isinstance(mpir.load(emulate=True), mpir._Emulated)
    with pytest.raises(ImportError) as info:
        mpir.load()
    assert "\n" not in str(info.value) and "make setup" in str(info.value)


@pytest.mark.parametrize("value,on", [(1, True), (True, True), ("1", True), (None, False), (0, False),
                                      ("0", False), (False, False), ("off", False)])
def test_stop_tasks_in_exec_values(value, on):
    opts = {} if value is None else {"stop-tasks-in-exec": value}
    assert ptrace.enabled(opts) is on


def test_taskmap_total():
    assert _ntasks({"version": 1, "map": [[0, 2, 2, 1], [2, 1, 3, 2]]}) == 10
    assert _ntasks(None) is None and _ntasks({"map": [[0]]}) is None


# ---- the shell's proctable method -----------------------------------------------------

class _Task:
    def __init__(self, taskid, pid, cmd, status=None):
        self.id, self.pid, self.cmd, self.status = taskid, pid, cmd, status


class _Shell:
    def __init__(self, tasks):
        self.tasks = tasks
        self.answers = []
        self.services = {}

    def service_register(self, method, callback):
        self.services[method] = callback

    def respond(self, req, payload=None, errnum=0, errstr=None):
        self.answers.append((req["id"], payload, errnum, errstr))


def test_proctable_waits_for_the_tasks_then_answers_each_one():
    me = os.getpid()
    shell = _Shell([_Task(4, me, ["x"]), _Task(5, 999999999, ["/bin/prog"], status=0), _Task(6, None, ["bad"])])
    pt = _Proctable(shell)
    pt.request({"id": 1, "topic": "shell-1.proctable", "userid": os.getuid(), "rolemask": 2})
    assert shell.answers == []  # before shell.start: held
    pt.start()
    (rid, payload, errnum, _), = shell.answers
    assert rid == 1 and errnum == 0
    table = payload["proctable"]
    assert [e["rank"] for e in table] == [4, 5]  # the task that never started is left out
    assert table[0]["pid"] == me and table[0]["executable"] == os.readlink("/proc/self/exe")
    assert table[1]["executable"] == "/bin/prog"  # exited: its command
    assert table[0]["host"] == os.uname().nodename


def test_proctable_refuses_another_user():
    shell = _Shell([_Task(0, os.getpid(), ["x"])])
    pt = _Proctable(shell)
    pt.start()
    pt.request({"id": 2, "topic": "shell-1.proctable", "userid": os.getuid() + 1, "rolemask": 2})
    assert shell.answers[0][2] == errno.EPERM and "not your job" in shell.answers[0][3]
    pt.request({"id": 3, "topic": "shell-1.proctable", "userid": os.getuid() + 1, "rolemask": 1})  # the owner
    assert shell.answers[1][2] == 0
