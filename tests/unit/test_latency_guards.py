"""Guards of the start-up and latency tricks on ``flux run``'s launch path that no
other test covers (docs/latency.md lists every trick and the test that guards it).

Each test fails when its trick is undone. Those that change process-wide state
(``gc.freeze``, a patched ``os.fork``) run in a child interpreter. Source checks
read the modules that are imported (``flux_launch.__file__``), not a fixed path.
"""

import ast
import os
import pathlib
import subprocess
import sys

import pytest

import flux_launch
from flux_launch.cli import main as cli_main
from flux_launch.core import proc

SRC = pathlib.Path(flux_launch.__file__).resolve().parent

# What flux run must not import (the same list as test_layers.test_flux_run_stays_lean)
HEAVY = ("argparse", "json", "re", "enum", "socket", "signal", "threading", "selectors", "collections")


def _python(code):
    """Run ``code`` in a fresh interpreter, its stdout buffered as usual (what it
    prints before an ``os._exit`` is lost unless flushed); its stdout."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONUNBUFFERED"}
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=30, env=env)
    assert r.returncode == 0, f"child failed ({r.returncode}):\n{r.stderr}"
    return r.stdout


class _Exit(BaseException):
    """Raised by the patched ``os._exit``."""


@pytest.fixture
def no_exit(monkeypatch):
    """``os._exit`` raises ``_Exit(code)`` instead of ending the test run."""

    def fake_exit(code):
        raise _Exit(code)

    monkeypatch.setattr(os, "_exit", fake_exit)


# ---- the front end --------------------------------------------------------------

def test_flux_command_skips_interpreter_teardown(no_exit, monkeypatch, capsys):
    """The console script ends with os._exit (no module and object finalization:
    ~2.5 ms of every command), after flushing what it printed."""
    monkeypatch.setattr(sys, "argv", ["flux", "--version"])
    with pytest.raises(_Exit) as info:
        cli_main.run()
    assert info.value.args == (0,)
    assert capsys.readouterr().out.startswith("commands:    \t\t")
    pyproject = SRC.parents[1] / "pyproject.toml"
    if pyproject.exists():  # the console script is run, not main (which returns through teardown)
        assert 'flux = "flux_launch.cli.main:run"' in pyproject.read_text()


def test_flux_imports_no_command_module_until_dispatch():
    """``flux`` imports only the command it runs: the COMMANDS table names modules,
    it does not import them (all the others cost ~13 ms)."""
    out = _python("import sys, flux_launch.cli.main;"
                  "print(' '.join(m for m in sys.modules if m.startswith('flux_launch.cli.')))")
    assert out.split() == ["flux_launch.cli.main"]
    missing = [m for m in set(cli_main.COMMANDS.values()) if not (SRC / "cli" / f"{m}.py").exists()]
    assert not missing, f"COMMANDS names modules that do not exist: {missing}"


def test_flux_run_stays_lean_once_it_waits(tmp_path):
    """What flux run imports after the jobspec (the handle, its reactor with fd, timer
    and signal watchers, the output accelerators, job ids) adds none of the heavy
    modules either: test_layers' check stops at the dry run."""
    code = ("import _socket, os, sys\n"
            "from flux_launch.client.handle import Flux\n"
            "import flux_launch.cli.attach, flux_launch._accel, flux_launch.core.jobid\n"
            f"path = {str(tmp_path / 'local-0')!r}\n"
            "srv = _socket.socket(_socket.AF_UNIX, _socket.SOCK_STREAM); srv.bind(path); srv.listen(1)\n"
            "h = Flux('local://' + path)\n"
            "r, w = os.pipe(); os.write(w, b'x')\n"
            "seen = []\n"
            "def on_fd(_h, watcher, *_):\n"
            "    seen.append('fd'); watcher.stop(); sig.stop()\n"
            "sig = h.signal_watcher_create(15, lambda *_: None).start()\n"
            "fdw = h.fd_watcher_create(r, on_fd).start()\n"
            "h.timer_watcher_create(0.0, lambda *_: seen.append('timer')).start()\n"
            "h.reactor_run()\n"
            "flux_launch._accel.label_lines(b'0: ', b'a\\nb')\n"
            "flux_launch.core.jobid.encode(1234, 'f58')\n"
            f"print(sorted(seen), ' '.join(m for m in {HEAVY!r} if m in sys.modules))\n")
    assert _python(code).strip() == "['fd', 'timer']"


# ---- instance start and the fork server ----------------------------------------------

_FROZEN = ("def frozen(names):\n"
           "    # frozen objects are out of the collector's generations (gc.get_objects)\n"
           "    live = {id(o) for o in gc.get_objects()}\n"
           "    return [m for m in names if m in sys.modules and id(vars(sys.modules[m])) in live]\n")


def test_flux_start_forks_preloaded_frozen_brokers(tmp_path):
    """flux start --test-size forks its brokers with the broker's and the shell's
    modules imported (no interpreter start and imports per broker: N=16 started in
    0.9 s before, 0.23 s after), the heap frozen (gc.freeze: shared copy-on-write),
    and the topology discovered once."""
    code = ("import gc, os, sys\n" + _FROZEN +
            "import flux_launch.resource as res\n"
            "calls = []\n"
            "real = res.discover_from_env\n"
            "res.discover_from_env = lambda *a, **k: calls.append(1) or real(*a, **k)\n"
            "class Forked(Exception): pass\n"
            "def fork():\n"
            "    from flux_launch.services.exec.forkserver import SHELL_MODULES\n"
            "    need = ('zmq', 'asyncio', 'flux_launch.broker.main', 'flux_launch.services.kvs.service',\n"
            "            'flux_launch.services.job_manager') + SHELL_MODULES\n"
            "    print('missing', [m for m in need if m not in sys.modules])\n"
            "    print('unfrozen', frozen([m for m in need if m in sys.modules]))\n"
            "    print('discoveries', len(calls))\n"
            "    raise Forked\n"
            "os.fork = fork\n"
            "from flux_launch.cli import start\n"
            "try:\n"
            f"    start.main('start', ['--test-size=2', '--test-rundir', {str(tmp_path / 'run')!r}, 'true'])\n"
            "except Forked:\n"
            "    pass\n")
    out = _python(code).splitlines()
    assert out == ["missing []", "unfrozen []", "discoveries 1"]


def _serve_until_fork(child_code):
    """Code that runs the fork server on a socketpair with one ``start`` queued, with
    ``os.fork`` replaced by ``child_code`` (a function ``fork`` defined in it)."""
    return ("import gc, os, socket, sys\n" + _FROZEN +
            "from flux_launch.proto import message\n"
            "from flux_launch.services.exec import forkserver\n"
            "a, b = socket.socketpair()\n"
            "a.sendall(message.frame({'type': 'ctl', 'topic': 'start', 'id': 1, 'args': {}}))\n"
            + child_code +
            "os.fork = fork\n"
            "forkserver.serve(b)\n")


def test_fork_server_forks_shells_preloaded_and_frozen():
    """When the fork server forks a shell, the shell's modules are imported and frozen
    out of the collector: a shell costs a fork (~2 ms), not an interpreter start and
    its imports (~65 ms), and its first collection copies no shared page."""
    child = ("def fork():\n"
             "    print('missing', [m for m in forkserver.SHELL_MODULES if m not in sys.modules])\n"
             "    print('unfrozen', frozen(forkserver.SHELL_MODULES), flush=True)\n"
             "    os._exit(0)\n")
    assert _python(_serve_until_fork(child)).splitlines() == ["missing []", "unfrozen []"]


def test_forked_shell_runs_without_gc_in_its_own_session_and_exits_at_once():
    """In the forked shell: the collector is off (it would touch the shared heap), the
    shell leads a session of its own, and its end is os._exit after a flush (the
    teardown of the inherited heap took ~11-33 ms per shell)."""
    child = ("import flux_launch.shell.main as shell_main\n"
             "state = {}\n"
             "def fake_run(args):\n"
             "    state.update(gc=gc.isenabled(), session=os.getsid(0) == os.getpid())\n"
             "    print('in the shell', flush=False)\n"
             "    return 7\n"
             "shell_main.run = fake_run\n"
             "real_exit = os._exit\n"
             "def fake_exit(code):\n"
             "    sys.stdout.write(f'exit {code} gc={state[\"gc\"]} session={state[\"session\"]}\\n')\n"
             "    sys.stdout.flush()\n"
             "    real_exit(0)\n"
             "os._exit = fake_exit\n"
             "def fork():\n"
             "    return 0\n")
    assert _python(_serve_until_fork(child)).splitlines() == ["in the shell", "exit 7 gc=False session=True"]


def test_exit_now_flushes_then_skips_teardown(no_exit, monkeypatch):
    flushed = []

    class Out:
        def __init__(self, name):
            self.name = name

        def flush(self):
            flushed.append(self.name)

    monkeypatch.setattr(sys, "stdout", Out("stdout"))
    monkeypatch.setattr(sys, "stderr", Out("stderr"))
    with pytest.raises(_Exit) as info:
        proc.exit_now(3)
    assert info.value.args == (3,) and flushed == ["stdout", "stderr"]


def _child_branches(tree):
    """The bodies of ``if NAME == 0:`` where ``NAME = os.fork()`` in the same function."""
    for fn in ast.walk(tree):
        if not isinstance(fn, ast.FunctionDef):
            continue
        forked = {t.id for n in ast.walk(fn) if isinstance(n, ast.Assign) and isinstance(n.value, ast.Call)
                  and ast.unparse(n.value.func) == "os.fork" for t in n.targets if isinstance(t, ast.Name)}
        for node in ast.walk(fn):
            if isinstance(node, ast.If) and isinstance(node.test, ast.Compare):
                t = node.test
                if (isinstance(t.left, ast.Name) and t.left.id in forked and isinstance(t.ops[0], ast.Eq)
                        and isinstance(t.comparators[0], ast.Constant) and t.comparators[0].value == 0):
                    yield node.lineno, node.body


def _ends_with_exit(fn):
    """``fn`` (a FunctionDef) ends in a ``finally:`` that calls exit_now or os._exit."""
    for node in ast.walk(fn):
        if isinstance(node, ast.Try) and node.finalbody:
            for call in ast.walk(ast.Module(body=node.finalbody, type_ignores=[])):
                if isinstance(call, ast.Call):
                    f = call.func
                    name = f.id if isinstance(f, ast.Name) else f.attr if isinstance(f, ast.Attribute) else ""
                    if name in ("exit_now", "_exit"):
                        return True
    return False


def test_every_forked_child_ends_in_exit_now():
    """Every child forked from a big Python heap (flux start's brokers, the fork
    server, its shells) ends in exit_now: returning would run the parent's atexit
    handlers and finalize the inherited heap."""
    sites, bad = 0, []
    for path in sorted(SRC.rglob("*.py")):
        text = path.read_text()
        if "os.fork()" not in text:
            continue
        tree = ast.parse(text)
        funcs = {n.name: n for n in tree.body if isinstance(n, ast.FunctionDef)}
        for line, body in _child_branches(tree):
            sites += 1
            last = body[-1]
            call = last.value if isinstance(last, ast.Expr) and isinstance(last.value, ast.Call) else None
            name = call.func.id if call is not None and isinstance(call.func, ast.Name) else None
            if name not in ("exit_now",) and not (name in funcs and _ends_with_exit(funcs[name])):
                bad.append(f"{path.relative_to(SRC)}:{line}: the child does not end in exit_now")
    assert sites >= 3, f"found {sites} fork sites (flux start, the broker's fork server, its shells)"
    assert not bad, "\n".join(bad)


def test_shell_lazy_imports_are_preloaded():
    """Every module the job shell, its plugins and its handle import inside functions
    is already loaded by the fork server's preload: an import there would be paid
    by every job (subprocess alone is ~13 ms). traceback is for a failing shell only."""
    # forkbroker's imports are a nested broker's own (in its forked child, or once
    # a task is `flux broker`), not every job's
    files = [p for p in (SRC / "shell").rglob("*.py") if p.name not in ("__main__.py", "forkbroker.py")]
    files += [SRC / "client" / name for name in ("handle.py", "reactor.py", "future.py")]
    lazy = set()
    for path in files:
        tree = ast.parse(path.read_text())
        for fn in ast.walk(tree):
            if not isinstance(fn, (ast.FunctionDef, ast.AsyncFunctionDef)):
                continue
            for node in ast.walk(fn):
                if isinstance(node, ast.Import):
                    lazy.update(a.name for a in node.names)
                elif isinstance(node, ast.ImportFrom) and node.level == 0:
                    lazy.add(node.module)
                    for a in node.names:  # from flux_launch.proto import rv1: a module too
                        sub = SRC.joinpath(*node.module.split(".")[1:], a.name)
                        if node.module.startswith("flux_launch") and (
                                sub.with_suffix(".py").exists() or (sub / "__init__.py").exists()):
                            lazy.add(f"{node.module}.{a.name}")
    lazy -= {"traceback"}
    code = ("import sys\n"
            "from flux_launch.services.exec import forkserver\n"
            "forkserver.preload()\n"
            f"names = {sorted(lazy)!r}\n"
            "print(' '.join(n for n in names if n not in sys.modules))\n")
    assert "subprocess" in lazy  # the check sees the shell's spawn
    assert _python(code).strip() == ""


# ---- the job shell's task spawn ------------------------------------------------------

def _calls(pkg, func_name):
    """Every call of ``*.func_name(...)`` or ``func_name(...)`` in ``pkg``'s modules."""
    for path in sorted((SRC / pkg).rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Call):
                f = node.func
                if (isinstance(f, ast.Attribute) and f.attr == func_name) or \
                        (isinstance(f, ast.Name) and f.id == func_name):
                    yield path, node


def test_tasks_spawn_without_a_pre_exec_hook_so_popen_can_vfork():
    """No builtin plugin has a task.exec callback, and the shell passes Popen a
    preexec_fn only when a plugin has one: without it Popen uses vfork (0.2 ms per
    task instead of 2.3 ms for a fork of the shell's heap)."""
    from flux_launch.shell.plugins import builtins
    from flux_launch.shell.plugstack import PlugStack

    assert not PlugStack(builtins()).has("task.exec")
    spawns = list(_calls("shell", "Popen"))
    assert spawns, "the shell spawns its tasks with subprocess.Popen"
    for path, call in spawns:
        hook = {k.arg: k.value for k in call.keywords}.get("preexec_fn")
        conditional = hook is None or (isinstance(hook, ast.Constant) and hook.value is None) or (
            isinstance(hook, ast.IfExp) and any(isinstance(b, ast.Constant) and b.value is None
                                                for b in (hook.body, hook.orelse)))
        assert conditional, f"{path.relative_to(SRC)}:{call.lineno}: preexec_fn on every spawn forbids vfork"


def test_tasks_get_a_session_and_their_exit_is_a_pidfd():
    """Each task leads its own session (setsid: under load, 32-rank MPICH runs went
    from 3-26 s to ~2 s with it), and task exits come as readable pidfds in the
    shell's one poll (no SIGCHLD handler, no waitpid polling)."""
    spawns = list(_calls("shell", "Popen"))
    assert spawns
    for path, call in spawns:
        session = {k.arg: k.value for k in call.keywords}.get("start_new_session")
        assert isinstance(session, ast.Constant) and session.value is True, \
            f"{path.relative_to(SRC)}:{call.lineno}: tasks must start in a session of their own"
    assert list(_calls("shell", "pidfd_open")), "the shell watches task exits through pidfds"
    assert any(p.name == "forkserver.py" for p, _ in _calls("services/exec", "pidfd_open")), \
        "the fork server watches shell exits through pidfds"


# ---- the job manager ----------------------------------------------------------------

@pytest.fixture
def jm(tmp_path):
    """test_job_manager's job manager on its fake broker: two ranks of two cores."""
    from test_job_manager import make_manager

    manager, kvs = make_manager(tmp_path)
    yield manager
    kvs.close()


def _two_tasks_one_node():
    return {"version": 1, "resources": [{"type": "node", "count": 1, "with": [
        {"type": "slot", "count": 2, "label": "task", "with": [{"type": "core", "count": 1}]}]}],
        "tasks": [{"command": ["app"], "slot": "task", "count": {"per_slot": 1}}],
        "attributes": {"system": {"duration": 0}}}


def test_events_of_one_loop_turn_go_in_one_commit(jm, monkeypatch):
    """A submission's events (submit, validate, depend, priority) and its jobspec are
    one KVS commit: one sqlite transaction and one wake-up of flux run's eventlog
    watch instead of one per event."""
    commits = []
    real = jm.kvs.commit
    monkeypatch.setattr(jm.kvs, "commit", lambda ops, *a, **kw: commits.append(len(ops)) or real(ops, *a, **kw))
    out = jm.broker.call("job-ingest.submit", {"jobspec": _two_tasks_one_node()})
    jm.broker.loop.run()
    jm.flush()
    events = [line for line in jm.kvs.lookup(_eventlog_key(out["id"])).split("\n") if line]
    assert len(events) >= 4, events  # submit, validate, depend, priority
    assert len(commits) == 1, f"{len(commits)} commits for one submission: {commits}"


def _eventlog_key(jobid):
    from flux_launch.services.job_manager.job import kvs_dir

    return f"{kvs_dir(jobid)}.eventlog"


def test_one_shell_per_node_not_per_task(jm):
    """Two tasks on one node start one job shell (one rexec.shell, one fork): the
    shell spawns both tasks."""
    jm.broker.call("job-ingest.submit", {"jobspec": _two_tasks_one_node()})
    jm.broker.loop.run()
    shells = [nodeid for topic, _p, nodeid, _cb in jm.broker.rpcs if topic == "rexec.shell"]
    assert len(shells) == 1, shells


# ---- the handle ---------------------------------------------------------------------

def test_blocking_waits_leave_the_socket_mode_alone(tmp_path):
    """Blocking waits without a timeout do not switch the socket's mode: a socket with
    a timeout polls before every recv (one more system call per answer)."""

    from flux_launch.proto import message

    from fake_broker import connect

    h, conn = connect(str(tmp_path / "local-0"))
    decoder = message.Decoder()
    try:
        modes = []
        real = h._sock

        class Spy:
            def __getattr__(self, name):
                return getattr(real, name)

            def settimeout(self, value):
                modes.append(value)
                real.settimeout(value)

        h._sock = Spy()
        for i in range(3):
            fut = h.rpc("test.echo", {"i": i})
            req = []
            while not req:
                req = decoder.feed(conn.recv(65536))
            conn.sendall(message.frame(message.response(req[0], {"i": i})))
            assert fut.get() == {"i": i}
        assert modes == []
    finally:
        h._sock = real
        h.close()
        conn.close()

