"""The plugin stack's contract (load order, flux-core's topics, a failing callback
caught and reported as one line), the shell's loop (fd watchers, timers), the
shell's services to plugins (log sinks, events, completion references, its
service), and ``python -m flux_launch.shell``'s argument errors."""

import errno
import os

import pytest

from flux_launch.job.jobspec import JobspecV1
from flux_launch.proto import message
from flux_launch.shell import __main__ as shell_cmd
from flux_launch.shell.loop import READ
from flux_launch.shell.main import Shell
from flux_launch.shell.plugins import BUILTIN_NAMES, builtins
from flux_launch.shell.plugstack import FATAL_TOPICS, TOPICS, Plugin, PluginError, PlugStack

from fake_broker import BrokerEnd, accept, listener


class Recorder:
    def __init__(self):
        self.calls = []
        self.logs = []

    def log(self, level, text):
        self.logs.append((level, text))


def _cb(name, calls, fail=None):
    def fn(shell, task):
        calls.append((name, task))
        if fail:
            raise fail

    return fn


def test_topics_are_flux_cores():
    assert TOPICS == ("shell.init", "shell.post-init", "task.init", "task.exec", "task.fork", "shell.start",
                      "task.exit", "shell.finish", "shell.exit")
    assert FATAL_TOPICS == {"shell.init", "shell.post-init", "task.init", "task.fork", "shell.start"}


def test_unknown_topic_is_refused():
    with pytest.raises(ValueError, match="plugin x: unknown topic shell.bogus"):
        Plugin("x", {"shell.bogus": print})


def test_callbacks_run_in_load_order():
    shell = Recorder()
    stack = PlugStack([Plugin("a", {"task.init": _cb("a", shell.calls)}),
                       Plugin("b", {"shell.init": _cb("b-init", shell.calls)}),
                       Plugin("c", {"task.init": _cb("c", shell.calls)})])
    stack.call("task.init", shell, "T")
    assert shell.calls == [("a", "T"), ("c", "T")]
    assert stack.names() == ["a", "b", "c"]
    assert stack.has("shell.init") and not stack.has("task.exec")


@pytest.mark.parametrize("topic", sorted(FATAL_TOPICS))
def test_failure_on_a_fatal_topic_fails_the_shell(topic):
    shell = Recorder()
    stack = PlugStack([Plugin("bad", {topic: _cb("bad", shell.calls, RuntimeError("no luck"))}),
                       Plugin("after", {topic: _cb("after", shell.calls)})])
    with pytest.raises(PluginError) as info:
        stack.call(topic, shell)
    assert str(info.value) == f"plugin 'bad': {topic} failed: no luck"
    assert [c[0] for c in shell.calls] == ["bad"]  # the shell stops there
    assert not shell.logs


@pytest.mark.parametrize("topic", sorted(set(TOPICS) - FATAL_TOPICS))
def test_failure_elsewhere_is_logged_and_the_next_plugins_run(topic):
    shell = Recorder()
    stack = PlugStack([Plugin("bad", {topic: _cb("bad", shell.calls, OSError(errno.EIO, "I/O error"))}),
                       Plugin("after", {topic: _cb("after", shell.calls)})])
    stack.call(topic, shell)
    assert [c[0] for c in shell.calls] == ["bad", "after"]
    assert shell.logs == [("ERROR", f"plugin 'bad': {topic} failed: [Errno 5] I/O error")]


def test_system_exit_is_not_swallowed():
    stack = PlugStack([Plugin("quit", {"task.exit": _cb("quit", [], SystemExit(1))})])
    with pytest.raises(SystemExit):
        stack.call("task.exit", Recorder())


def test_builtins_are_plugins_on_known_topics():
    plugins = builtins()
    assert tuple(p.name for p in plugins) == BUILTIN_NAMES
    for p in plugins:
        assert isinstance(p, Plugin) and set(p.callbacks) <= set(TOPICS)


# ---- the loop and the shell's services, on a fake broker -------------------------------

def _shell(uri="local:///nowhere", ntasks=2):
    spec = JobspecV1.from_command(["true"], num_tasks=ntasks, environment={}).jobspec
    R = {"version": 1, "execution": {"R_lite": [{"rank": "0", "children": {"core": f"0-{ntasks - 1}"}}],
                                     "nodelist": ["localhost"]}}
    return Shell({"id": 1234, "jobspec": spec, "R": R, "rank": 0, "uri": uri})


@pytest.fixture
def connected(tmp_path):
    """``(shell, fake broker)``: a shell connected to a socket the test answers on."""
    path = str(tmp_path / "local-0")
    srv = listener(path)
    shell = _shell(uri=f"local://{path}")
    shell.connect()
    conn = accept(srv)
    yield shell, BrokerEnd(conn)
    shell.handle.close()
    conn.close()


def test_loop_fd_watcher_and_timers(connected):
    shell, _ = connected
    r, w = os.pipe()
    os.set_blocking(r, False)  # a second watcher's read fails instead of waiting
    seen = []
    shell.watch_fd(r, READ, lambda fd, ev: seen.append(os.read(fd, 10)))
    shell.timer(0.0, lambda: seen.append("t0"))
    dropped = shell.timer(0.0, lambda: seen.append("dropped"))
    dropped.stop()
    os.write(w, b"x")
    shell.loop.run_once(1)
    assert seen == [b"x", "t0"]
    shell.watch_fd(r, READ, lambda fd, ev: seen.append(os.read(fd, 1)))  # replaces the first
    os.write(w, b"zz")
    shell.loop.run_once(1)
    assert seen[2:] == [b"z"]
    shell.unwatch_fd(r)
    shell.unwatch_fd(r)  # twice is harmless
    os.write(w, b"y")
    shell.timer(0.05, lambda: seen.append("t1"))
    shell.loop.run_once()  # waits for the timer, not for the (unwatched) pipe
    assert seen[-1] == "t1"
    shell.loop.run_once(0.01)  # bounded: nothing is due
    assert seen[-1] == "t1"
    os.close(r)
    os.close(w)


def test_a_timer_stopped_by_an_earlier_one_of_the_same_step_does_not_fire(connected):
    shell, _ = connected
    seen = []
    second = None

    def first():
        seen.append("first")
        second.stop()

    shell.timer(0.0, first)
    second = shell.timer(0.0, lambda: seen.append("second"))
    shell.loop.run_once(1)
    assert seen == ["first"]


def test_rpc_answers_and_errors_come_back_in_the_loop(connected, capfd):
    shell, broker = connected
    got = []
    shell.rpc("a.b", {"x": 1}, then=got.append)
    req = broker.request()
    assert (req["topic"], req["payload"]) == ("a.b", {"x": 1})
    broker.send(message.response(req, {"y": 2}))
    shell.rpc("c.d")  # no callback: an error goes to stderr
    broker.send(message.response(broker.request(), None, errno.EPERM, "not you"))
    watch = []
    shell.rpc("e.f", streaming=True, then=watch.append, error=lambda exc: watch.append(exc.errno))
    req = broker.request()
    for i in range(3):
        broker.send(message.response(req, {"n": i}))
    broker.send(message.response(req, None, errno.ENODATA))
    while len(watch) < 4 or not got:
        shell.loop.run_once(5)
    assert got == [{"y": 2}] and watch == [{"n": 0}, {"n": 1}, {"n": 2}, errno.ENODATA]
    assert capfd.readouterr().err == "flux-shell[0]: ERROR: c.d: not you\n"
    shell._drain()  # the plain RPCs were answered: nothing to wait for
    assert shell._waited == []


def test_drain_waits_for_the_answers_the_shell_must_have(connected):
    shell, broker = connected
    got = []
    shell.rpc("kvs.commit", {}, then=got.append)
    shell.rpc("no.answer", {}, wait=False)
    req = broker.request()
    broker.request()
    broker.send(message.response(req, {"done": True}))
    shell._drain()
    assert got == [{"done": True}]


def test_a_lost_broker_kills_the_shell(connected, capfd):
    shell, broker = connected
    broker.conn.close()
    with pytest.raises(SystemExit):
        shell.loop.run_once(5)
    assert "FATAL: lost the broker connection" in capfd.readouterr().err


def test_service_methods_are_routed_and_others_refused(connected):
    shell, broker = connected
    got = []
    shell.service_register("ping", lambda req: (got.append(req["topic"]), shell.respond(req, {"pong": 1})))
    shell.service_register("pong", got.append)
    assert broker.request()["payload"] == {"name": "shell-1234"}  # registered once
    for topic in ("shell-1234.ping", "shell-1234.nope", "shell-99.ping"):
        broker.send(message.request(topic, {}, 0, 7))
    answers = []
    while len(answers) < 3:
        shell.loop.run_once(5)
        broker.conn.settimeout(0.1)
        try:
            answers.extend(broker.decoder.feed(broker.conn.recv(65536)))
        except TimeoutError:
            pass
    assert got == ["shell-1234.ping"]
    assert [(a.get("topic"), a.get("payload"), a.get("errnum"), a.get("errstr")) for a in answers] == [
        ("shell-1234.ping", {"pong": 1}, None, None),
        ("shell-1234.nope", None, errno.ENOSYS, "shell-1234.nope: not served by this shell"),
        ("shell-99.ping", None, errno.ENOSYS, "shell-99.ping: not served by this shell")]


def test_raise_exception_once_with_the_proto_payload(connected):
    shell, broker = connected
    logged = []
    shell.add_log_sink(lambda level, text: logged.append((level, text)))
    shell.raise_exception("exec", "first")
    shell.raise_exception("exec", "second")
    req = broker.request()
    assert (req["topic"], req["payload"]) == ("job-manager.raise", {"id": 1234, "type": "exec", "severity": 0,
                                                                     "note": "first"})
    assert not broker.pending
    assert logged == [("FATAL", "first")] and shell.fatal == "first"


def test_log_goes_to_the_sinks_or_else_stderr(capfd):
    shell = _shell()
    shell.log("ERROR", "before any sink")
    assert capfd.readouterr().err == "flux-shell[0]: ERROR: before any sink\n"
    got = []
    shell.add_log_sink(lambda level, text: got.append((level, text)))
    shell.log("WARN", "kept")
    assert got == [("WARN", "kept")] and capfd.readouterr().err == ""


def test_events_go_to_every_sink():
    shell = _shell()
    a, b = [], []
    shell.add_event_sink(lambda name, ctx: a.append(name))
    shell.add_event_sink(lambda name, ctx: b.append(ctx))
    shell.emit_event("shell.init", {"size": 1})
    assert a == ["shell.init"] and b == [{"size": 1}]


def test_completion_references_are_counted_per_name():
    shell = _shell()
    shell.add_completion_ref("output")
    shell.add_completion_ref("output")
    shell.add_completion_ref("tasks")
    shell.remove_completion_ref("output")
    assert shell._refs == {"output": 1, "tasks": 1}
    shell.remove_completion_ref("output")
    shell.remove_completion_ref("tasks")
    assert not shell._refs


def test_aux_keeps_plugin_state():
    shell = _shell()
    assert shell.aux_get("pmi") is None
    shell.aux_set("pmi", state := object())
    assert shell.aux_get("pmi") is state


# ---- python -m flux_launch.shell --------------------------------------------------------

def test_cmd_help_and_missing_jobid(capsys):
    with pytest.raises(SystemExit) as info:
        shell_cmd.main(["--help"])
    assert info.value.code == 0 and "JOBID" in capsys.readouterr().out
    with pytest.raises(SystemExit) as info:
        shell_cmd.main([])
    assert info.value.code == 2 and "JOBID" in capsys.readouterr().err


def test_cmd_bad_jobid_is_one_line(capsys):
    assert shell_cmd.main(["not-a-job"]) == 1
    assert capsys.readouterr().err == "flux-shell: invalid job id 'not-a-job'\n"


def test_cmd_without_an_instance_is_one_line(capsys, monkeypatch):
    monkeypatch.delenv("FLUX_URI", raising=False)
    assert shell_cmd.main(["f1234"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("flux-shell: FLUX_URI is not set") and err.count("\n") == 1
