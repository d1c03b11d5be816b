"""The builtin shell plugins against a fake shell (no broker, no task process):
cpu-affinity, gpu-affinity, tmpdir, input and pmi, each through the plugin stack
as the shell calls it. ``FakeShell`` is shared with test_shell_output.py."""

import errno
import os
import select
import socket
import stat
from types import SimpleNamespace

import pytest

from flux_launch.core.jobid import JobID
from flux_launch.proto.output import entry
from flux_launch.shell.main import Task
from flux_launch.shell.plugins import affinity, gpubind, pmi, tmpdir
from flux_launch.shell.plugins import input as input_plugin
from flux_launch.shell.plugstack import PluginError, PlugStack
from flux_launch.shell.rcalc import TaskMap


class FakeTimer:
    def __init__(self, after, callback, timers):
        self.after = after
        self.callback = callback
        self._timers = timers

    def stop(self):
        if self in self._timers:
            self._timers.remove(self)

    def fire(self):
        self.stop()
        self.callback()


class FakeShell:
    """The shell as plugins see it: the job's description, and services that
    record what plugins ask for (log lines, events, watched fds, timers, RPCs)."""

    def __init__(self, counts=(2,), node_index=0, options=None, topology=None, alloc=None, rundir="/tmp",
                 env=None):
        ranks = list(range(len(counts)))
        self.taskmap = TaskMap(ranks, list(counts))
        self.rank = ranks[node_index]
        self.node_index = node_index
        self.leader = node_index == 0
        self.jobid = JobID(123456789)
        self.level = 0
        self.service = f"shell-{int(self.jobid)}"
        self.options = options or {}
        self.alloc = alloc if alloc is not None else {r: {"core": list(range(c))} for r, c in zip(ranks, counts)}
        self.topology = topology or {}
        self.verbose = int(self.options.get("verbose", 0))
        self.env = dict(env or {})
        self.cwd = None
        self.command = ["app"]
        self.jobspec = {}
        self.rundir = rundir
        self.fatal = None
        self.tasks = []
        self.aux = {}
        self.logs = []  # (level, text), every message
        self.sinks = []
        self.event_sinks = []
        self.events = []
        self.refs = {}
        self.fds = {}  # fd -> (events, callback)
        self.timers = []
        self.rpcs = []
        self.services = {}
        self.responses = []
        self.exceptions = []
        self.rpc_errors = []

    # the shell's services, as main.Shell has them
    def aux_set(self, name, obj):
        self.aux[name] = obj

    def aux_get(self, name):
        return self.aux.get(name)

    def log(self, level, text):
        self.logs.append((level, text))
        for log, _flush in self.sinks:
            log(level, text)

    def add_log_sink(self, log, flush=None):
        self.sinks.append((log, flush))

    def emit_event(self, name, context):
        self.events.append((name, context))
        for sink in self.event_sinks:
            sink(name, context)

    def add_event_sink(self, sink):
        self.event_sinks.append(sink)

    def add_completion_ref(self, name):
        self.refs[name] = self.refs.get(name, 0) + 1

    def remove_completion_ref(self, name):
        self.refs[name] -= 1
        if not self.refs[name]:
            del self.refs[name]

    def watch_fd(self, fd, events, callback):
        self.fds[fd] = (events, callback)

    def unwatch_fd(self, fd):
        self.fds.pop(fd, None)

    def timer(self, after, callback):
        t = FakeTimer(after, callback, self.timers)
        self.timers.append(t)
        return t

    def rpc(self, topic, payload=None, nodeid=-1, streaming=False, then=None, error=None, wait=None):
        r = SimpleNamespace(topic=topic, payload=payload, nodeid=nodeid, streaming=streaming, then=then,
                            error=error, wait=wait)
        self.rpcs.append(r)
        return r

    def rpc_failed(self, topic, exc):
        self.rpc_errors.append((topic, exc.errno))

    def service_register(self, method, callback):
        self.services[method] = callback

    def respond(self, req, payload=None, errnum=0, errstr=None):
        self.responses.append((req, payload, errnum, errstr))

    def raise_exception(self, etype, note):
        self.exceptions.append((etype, note))
        if self.fatal is None:
            self.fatal = note

    # helpers of the tests
    def ready(self, fd):
        """The loop found ``fd`` ready: call its watcher."""
        events, callback = self.fds[fd]
        callback(fd, events)


def start(shell, *plugins):
    """shell.init, then task.init for each local task (as the shell does before
    spawning); returns (stack, tasks)."""
    stack = PlugStack(plugins)
    stack.call("shell.init", shell)
    for taskid in shell.taskmap.local(shell.rank):
        task = Task(taskid, len(shell.tasks), ["app"], dict(shell.env), None)
        shell.tasks.append(task)
        stack.call("task.init", shell, task)
    return stack, shell.tasks


# ---- cpu-affinity -----------------------------------------------------------------------

CORES = [[0, 4], [1, 5], [2, 6], [3, 7]]  # 4 cores of 2 PUs


@pytest.fixture
def eight_cpus(monkeypatch):
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: set(range(8)))


@pytest.mark.parametrize("mode, want", [
    ("on", [set(range(8)), set(range(8))]),
    ("per-task", [{0, 4, 1, 5}, {2, 6, 3, 7}]),
    ("map:0-1;6", [{0, 1}, {6}]),
    ("off", [None, None]),
])
def test_cpu_affinity_sets_each_task_cpus(eight_cpus, mode, want):
    shell = FakeShell(counts=(2,), options={"cpu-affinity": mode}, topology={"cores": CORES},
                      alloc={0: {"core": [0, 1, 2, 3]}})
    _, tasks = start(shell, affinity.plugin)
    assert [t.cpus for t in tasks] == want
    assert not shell.logs


def test_cpu_affinity_only_the_jobs_cores(eight_cpus):
    shell = FakeShell(counts=(1,), topology={"cores": CORES}, alloc={0: {"core": [2]}})
    _, tasks = start(shell, affinity.plugin)
    assert tasks[0].cpus == {2, 6}


def test_cpu_affinity_cpus_missing_here_leave_tasks_unbound_with_one_warning(monkeypatch):
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0, 1})
    shell = FakeShell(counts=(2,), options={"cpu-affinity": "per-task"}, topology={"cores": [[8], [9]]},
                      alloc={0: {"core": [0, 1]}})
    _, tasks = start(shell, affinity.plugin)
    assert [t.cpus for t in tasks] == [None, None]
    assert [lvl for lvl, _ in shell.logs] == ["WARN"]
    assert "do not exist on this machine" in shell.logs[0][1]


def test_cpu_affinity_verbose_logs_each_set(eight_cpus):
    shell = FakeShell(counts=(1,), options={"verbose": 1}, topology={"cores": CORES}, alloc={0: {"core": [0, 1]}})
    start(shell, affinity.plugin)
    assert shell.logs == [("INFO", "cpu-affinity: task 0: CPUs 0-1,4-5")]


def test_cpu_affinity_bad_option_fails_the_shell():
    shell = FakeShell(options={"cpu-affinity": "bogus"})
    with pytest.raises(PluginError, match=r"^plugin 'cpu-affinity': shell.init failed: .*affinity"):
        start(shell, affinity.plugin)


# ---- gpu-affinity -----------------------------------------------------------------------

NV2 = [{"index": 0, "vendor": "nvidia"}, {"index": 1, "vendor": "nvidia"}]


@pytest.mark.parametrize("mode, want", [
    ("on", ["0,1", "0,1"]),
    ("per-task", ["0", "1"]),
    ("map:1;0", ["1", "0"]),
])
def test_gpu_affinity_sets_cuda_visible_devices(mode, want):
    shell = FakeShell(counts=(2,), options={"gpu-affinity": mode}, topology={"gpus": NV2},
                      alloc={0: {"core": [0, 1], "gpu": [0, 1]}})
    _, tasks = start(shell, gpubind.plugin)
    assert [t.env["CUDA_VISIBLE_DEVICES"] for t in tasks] == want
    assert all(t.env["CUDA_DEVICE_ORDER"] == "PCI_BUS_ID" for t in tasks)


def test_gpu_affinity_a_job_without_gpus_sees_none():
    shell = FakeShell(counts=(1,), topology={"gpus": NV2}, alloc={0: {"core": [0]}})
    _, tasks = start(shell, gpubind.plugin)
    assert tasks[0].env["CUDA_VISIBLE_DEVICES"] == "-1"


def test_gpu_affinity_vendor_indexes_and_variables():
    gpus = [{"index": 0, "vendor": "amd"}, {"index": 1, "vendor": "nvidia"}, {"index": 2, "vendor": "amd"}]
    shell = FakeShell(counts=(1,), topology={"gpus": gpus}, alloc={0: {"core": [0], "gpu": [1, 2]}})
    _, tasks = start(shell, gpubind.plugin)
    env = tasks[0].env
    assert env["ROCR_VISIBLE_DEVICES"] == "1"  # the node's GPU 2 is AMD's second
    assert env["CUDA_VISIBLE_DEVICES"] == "0"


@pytest.mark.parametrize("topology, options", [({"gpus": NV2}, {"gpu-affinity": "off"}), ({}, {})])
def test_gpu_affinity_off_or_no_gpus_sets_nothing(topology, options):
    shell = FakeShell(counts=(1,), options=options, topology=topology, alloc={0: {"core": [0], "gpu": [0]}})
    _, tasks = start(shell, gpubind.plugin)
    assert not {"CUDA_VISIBLE_DEVICES", "ROCR_VISIBLE_DEVICES", "CUDA_DEVICE_ORDER"} & set(tasks[0].env)


# ---- tmpdir -----------------------------------------------------------------------------

def test_tmpdir_made_for_the_tasks_and_removed_at_finish(tmp_path):
    shell = FakeShell(counts=(1,), rundir=str(tmp_path))
    stack, tasks = start(shell, tmpdir.plugin)
    path = shell.env["FLUX_JOB_TMPDIR"]
    assert os.path.dirname(path) == str(tmp_path) and path.endswith(shell.jobid.f58plain)
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o700
    assert tasks[0].env["FLUX_JOB_TMPDIR"] == path
    with open(os.path.join(path, "left-by-a-task"), "w"):
        pass
    stack.call("shell.finish", shell)
    assert not os.path.exists(path)


def test_tmpdir_that_cannot_be_made_fails_the_shell(tmp_path):
    (tmp_path / "file").write_text("")
    shell = FakeShell(counts=(1,), rundir=str(tmp_path / "file"))
    with pytest.raises(PluginError, match=r"^plugin 'tmpdir': shell.init failed: cannot create FLUX_JOB_TMPDIR "):
        start(shell, tmpdir.plugin)


# ---- input ------------------------------------------------------------------------------

def _read_all(fd):
    os.set_blocking(fd, False)
    out = b""
    while True:
        try:
            data = os.read(fd, 65536)
        except BlockingIOError:
            return out, False
        if not data:
            return out, True
        out += data


def _input_lines(*contexts):
    return b"".join(entry("data", ctx) for ctx in contexts).decode()


def test_input_from_the_kvs_to_all_or_some_tasks():
    shell = FakeShell(counts=(2,), options={"input": {"stdin": {"type": "kvs"}}})
    stack, tasks = start(shell, input_plugin.plugin)
    readers = [os.dup(t.stdin_fd) for t in tasks]
    stack.call("shell.start", shell)
    (watch,) = shell.rpcs
    assert watch.topic == "kvs.watch" and watch.streaming
    assert watch.payload == {"key": f"{shell.jobid.kvs}.guest.input", "append": True, "waitcreate": True}
    watch.then({"value": _input_lines({"stream": "stdin", "rank": "all", "data": "both\n"},
                                      {"stream": "stdin", "rank": "1", "data": "one\n"})})
    watch.then({"value": _input_lines({"stream": "stdin", "rank": "all", "eof": True})})
    assert [_read_all(r) for r in readers] == [(b"both\n", True), (b"both\none\n", True)]


def test_input_base64_data():
    shell = FakeShell(counts=(1,), options={"input": {"stdin": {"type": "kvs"}}})
    stack, tasks = start(shell, input_plugin.plugin)
    reader = os.dup(tasks[0].stdin_fd)
    stack.call("shell.start", shell)
    shell.rpcs[0].then({"value": _input_lines({"stream": "stdin", "rank": "all", "data": "/wA=",
                                                "encoding": "base64"})})
    stack.call("task.exit", shell, tasks[0])  # the task's end closes its pipe
    assert _read_all(reader) == (b"\xff\x00", True)


def test_input_node_without_tasks_watches_nothing():
    shell = FakeShell(counts=(1, 0), node_index=1, options={"input": {"stdin": {"type": "kvs"}}})
    stack, _ = start(shell, input_plugin.plugin)
    stack.call("shell.start", shell)
    assert shell.aux_get("input") is None and not shell.rpcs


def test_input_from_a_file(tmp_path):
    path = tmp_path / "in.txt"
    path.write_text("from a file\n")
    shell = FakeShell(counts=(1,), options={"input": {"stdin": {"type": "file", "path": str(path)}}})
    _, tasks = start(shell, input_plugin.plugin)
    fd = tasks[0].stdin_fd
    assert os.read(fd, 100) == b"from a file\n"
    for fn in tasks[0].after_spawn:
        fn()
    with pytest.raises(OSError):
        os.fstat(fd)


def test_input_file_missing_fails_the_shell(tmp_path):
    shell = FakeShell(counts=(1,), options={"input": {"stdin": {"type": "file", "path": str(tmp_path / "no")}}})
    with pytest.raises(PluginError, match=r"^plugin 'input': task.init failed: cannot open the input file "):
        start(shell, input_plugin.plugin)


def test_input_default_is_dev_null():
    shell = FakeShell(counts=(1,))
    _, tasks = start(shell, input_plugin.plugin)
    assert tasks[0].stdin_fd is None


def test_input_a_full_pipe_waits_for_the_task():
    shell = FakeShell(counts=(1,), options={"input": {"stdin": {"type": "kvs"}}})
    stack, tasks = start(shell, input_plugin.plugin)
    reader = os.dup(tasks[0].stdin_fd)  # the shell closes its copy at shell.start
    os.set_blocking(reader, False)
    stack.call("shell.start", shell)
    big = "x" * (1 << 20)
    shell.rpcs[0].then({"value": _input_lines({"stream": "stdin", "rank": "all", "data": big})})
    (wfd,) = shell.fds  # the write end, watched until the task reads
    got = b""
    while shell.fds:
        got += os.read(reader, 1 << 20)
        shell.ready(wfd)
    got += _read_all(reader)[0]
    assert got == big.encode()


# ---- pmi --------------------------------------------------------------------------------

def _task_socket(task):
    """The task's end of its PMI socketpair (PMI_FD), as the task would use it."""
    fd = int(task.env["PMI_FD"])
    assert fd in task.pass_fds
    return socket.socket(fileno=os.dup(fd))


def _pmi_ready(shell):
    """What the loop does: call the watchers of the fds with something to read."""
    readable, _, _ = select.select(list(shell.fds), [], [], 1)
    for fd in readable:
        shell.ready(fd)


def _talk(shell, sock, line):
    sock.sendall(line.encode() + b"\n")
    _pmi_ready(shell)
    sock.settimeout(1)
    return sock.recv(4096).decode()


def test_pmi_task_environment_and_a_one_node_wire_up(tmp_path):
    shell = FakeShell(counts=(2,), env={"FLUX_JOB_TMPDIR": str(tmp_path)})
    _, tasks = start(shell, pmi.plugin)
    for t in tasks:
        assert (t.env["PMI_RANK"], t.env["PMI_SIZE"]) == (str(t.id), "2")
        assert t.env["OMPI_MCA_btl_vader_backing_directory"] == str(tmp_path)
    socks = [_task_socket(t) for t in tasks]
    for t in tasks:
        for fn in t.after_spawn:  # the shell's copy of the task's end is closed
            fn()
    assert "cmd=response_to_init" in _talk(shell, socks[0], "cmd=init pmi_version=1 pmi_subversion=1")
    assert "rc=0" in _talk(shell, socks[0], "cmd=put kvsname=kvs_123456789 key=k0 value=v0")
    socks[0].sendall(b"cmd=barrier_in\n")
    _pmi_ready(shell)
    assert not shell.events  # one task of two entered
    _talk(shell, socks[1], "cmd=init pmi_version=1 pmi_subversion=1")
    assert "cmd=barrier_out" in _talk(shell, socks[1], "cmd=barrier_in")
    assert "cmd=barrier_out" in socks[0].recv(4096).decode()
    assert shell.events == [("shell.pmi-barrier", {"seq": 1, "rc": 0})]
    assert "value=v0" in _talk(shell, socks[1], "cmd=get kvsname=kvs_123456789 key=k0")
    reply = _talk(shell, socks[1], "cmd=get kvsname=kvs_123456789 key=flux.taskmap")
    assert 'value={"version":1,"map":[[0,1,2,1]]}' in reply, reply


def test_pmi_garbage_closes_the_connection_and_raises_an_exception():
    shell = FakeShell(counts=(1,))
    _, tasks = start(shell, pmi.plugin)
    sock = _task_socket(tasks[0])
    sock.sendall(b"cmd=bogus\n")
    _pmi_ready(shell)
    assert not shell.fds
    assert shell.exceptions and "PMI protocol error" in shell.exceptions[0][1]
    assert shell.logs[0][0] == "ERROR" and "pmi-simple: task 0:" in shell.logs[0][1]


def test_pmi_off():
    shell = FakeShell(counts=(1,), options={"pmi": "off"})
    _, tasks = start(shell, pmi.plugin)
    assert "PMI_FD" not in tasks[0].env and not shell.fds


def test_pmi_exchange_up_the_tree_retries_a_parent_not_yet_serving():
    shell = FakeShell(counts=(1, 1), node_index=1)
    _, tasks = start(shell, pmi.plugin)
    assert "pmi-exchange" in shell.services
    sock = _task_socket(tasks[0])
    _talk(shell, sock, "cmd=init pmi_version=1 pmi_subversion=1")
    _talk(shell, sock, "cmd=put kvsname=kvs_123456789 key=k1 value=v1")
    sock.sendall(b"cmd=barrier_in\n")
    _pmi_ready(shell)
    (up,) = shell.rpcs
    assert up.topic == f"{shell.service}.pmi-exchange" and up.nodeid == 0 and up.wait is False
    assert up.payload == {"seq": 1, "from": 1, "data": {"k1": "v1"}}
    up.error(OSError(errno.ENOSYS, "no service"))
    (retry,) = shell.timers
    assert retry.after == pmi.EXCHANGE_RETRY
    retry.fire()
    again = shell.rpcs[1]
    assert again.payload == up.payload
    again.then({"data": {"k0": "v0", "k1": "v1"}})
    sock.settimeout(1)
    assert "cmd=barrier_out" in sock.recv(4096).decode()
    assert not shell.events  # only the leader marks the wire-up
    assert "value=v0" in _talk(shell, sock, "cmd=get kvsname=kvs_123456789 key=k0")


def test_pmi_exchange_leader_answers_its_children():
    shell = FakeShell(counts=(1, 1), node_index=0)
    _, tasks = start(shell, pmi.plugin)
    serve = shell.services["pmi-exchange"]
    serve({"topic": f"{shell.service}.pmi-exchange", "payload": {}})
    assert shell.responses[-1][2] == errno.ENOSYS
    child = {"topic": f"{shell.service}.pmi-exchange", "payload": {"seq": 1, "from": 1, "data": {"k1": "v1"}}}
    serve(child)
    assert len(shell.responses) == 1  # waits for its own task
    sock = _task_socket(tasks[0])
    _talk(shell, sock, "cmd=init pmi_version=1 pmi_subversion=1")
    _talk(shell, sock, "cmd=put kvsname=kvs_123456789 key=k0 value=v0")
    assert "cmd=barrier_out" in _talk(shell, sock, "cmd=barrier_in")
    assert shell.responses[-1][:2] == (child, {"data": {"k0": "v0", "k1": "v1"}})
    assert shell.events == [("shell.pmi-barrier", {"seq": 1, "rc": 0})]


def test_pmi_exchange_failure_fails_the_barrier_and_the_job():
    shell = FakeShell(counts=(1, 1), node_index=1)
    _, tasks = start(shell, pmi.plugin)
    sock = _task_socket(tasks[0])
    _talk(shell, sock, "cmd=init pmi_version=1 pmi_subversion=1")
    sock.sendall(b"cmd=barrier_in\n")
    _pmi_ready(shell)
    shell.rpcs[0].error(OSError(errno.EHOSTUNREACH, "lost"))
    assert "PMI exchange with the shell of rank 0 failed" in shell.exceptions[0][1]
    sock.settimeout(1)
    reply = sock.recv(4096).decode()
    assert "cmd=barrier_out" in reply and "rc=0" not in reply
