"""The rules of the house about imports: one direction only, and a lean CLI."""

import ast
import pathlib
import re
import subprocess
import sys

import pytest

SRC = pathlib.Path(__file__).resolve().parents[2] / "src" / "flux_launch"

# package -> flux_launch packages it must never import
FORBIDDEN = {
    "core": {"cli", "job", "broker", "services", "shell", "testing", "client", "proto", "_accel"},
    "proto": {"cli", "job", "broker", "services", "shell", "testing", "client", "_accel"},
    "_accel": {"cli", "job", "broker", "services", "shell", "testing", "core", "proto", "client"},
    "client": {"cli", "job", "broker", "services", "shell", "testing"},
    "services": {"cli", "job", "shell", "broker", "testing", "client"},
    "broker": {"cli", "job", "shell", "testing"},
    "job": {"cli", "broker", "services", "shell", "testing"},
    "shell": {"cli", "job", "services", "broker", "testing"},
}

# A module name given as a string (a preload list, ``python -m NAME``, import_module).
_MODULE_NAME = re.compile(r"flux_launch(\.[a-z_][a-z0-9_]*)+")


def _resolve(path, node):
    """The absolute module an ``ImportFrom`` names (relative ones resolved)."""
    if node.level == 0:
        return node.module or ""
    pkg = ["flux_launch", *path.relative_to(SRC).parent.parts]
    if node.level > 1:
        pkg = pkg[:len(pkg) - (node.level - 1)]
    return ".".join(pkg + ([node.module] if node.module else []))


def _string_names(tree):
    """Module names loaded by string: every string constant that is a dotted
    ``flux_launch.x`` name, except logger names."""
    loggers = {id(a) for n in ast.walk(tree) if isinstance(n, ast.Call)
               and getattr(n.func, "attr", getattr(n.func, "id", None)) == "getLogger" for a in n.args}
    for node in ast.walk(tree):
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in loggers:
            if _MODULE_NAME.fullmatch(node.value):
                yield node.value, node.lineno


def imports(path):
    """``(module, line)`` for each flux_launch module ``path`` imports: absolute and
    relative imports, at the top or lazily in a function, and names loaded by string."""
    tree = ast.parse(path.read_text(), str(path))
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for a in node.names:
                yield a.name, node.lineno
        elif isinstance(node, ast.ImportFrom):
            module = _resolve(path, node)
            if module == "flux_launch":  # from flux_launch import proto / from .. import proto
                for a in node.names:
                    yield f"flux_launch.{a.name}", node.lineno
            else:
                yield module, node.lineno
    yield from _string_names(tree)


def imported_packages(path):
    for name, line in imports(path):
        parts = name.split(".")
        if parts[0] == "flux_launch" and len(parts) > 1:
            yield parts[1], line


def _package(path):
    rel = path.relative_to(SRC)
    return rel.parts[0] if len(rel.parts) > 1 else None


# The sanctioned crossings: the exec service's fork server runs the job shell (in
# flux-core, job-exec execs the flux-shell program), so it preloads the shell and
# the shell's client handle.
# And the job shell forks a nested instance's broker (flux batch/alloc) instead of
# executing it: it runs the broker's main in the child.
ALLOWED = {("services/exec/forkserver.py", "shell"), ("services/exec/forkserver.py", "client"),
           ("shell/forkbroker.py", "broker")}


def test_import_directions():
    bad = []
    for pkg, forbidden in FORBIDDEN.items():
        for path in sorted((SRC / pkg).rglob("*.py")) if (SRC / pkg).exists() else []:
            for target, line in imported_packages(path):
                if target in forbidden and (str(path.relative_to(SRC)), target) not in ALLOWED:
                    bad.append(f"{path.relative_to(SRC)}:{line} imports flux_launch.{target}")
    assert not bad, "\n".join(bad)


def test_no_package_cycle():
    """The packages' import graph (every kind of import counted) has no cycle."""
    graph = {}
    for path in SRC.rglob("*.py"):
        pkg = _package(path)
        if pkg is None:
            continue
        for target, _ in imported_packages(path):
            if target != pkg and (str(path.relative_to(SRC)), target) not in ALLOWED:
                graph.setdefault(pkg, set()).add(target)
    done, stack = set(), []

    def visit(node):
        if node in stack:
            raise AssertionError("package cycle: " + " -> ".join(stack[stack.index(node):] + [node]))
        if node in done:
            return
        stack.append(node)
        for nxt in sorted(graph.get(node, ())):
            visit(nxt)
        stack.pop()
        done.add(node)

    for node in sorted(graph):
        visit(node)


def test_modules_named_by_string_exist():
    """A preload list or ``-m NAME`` that names a module moved away fails here, not
    as a slower start or a shell that cannot run."""
    bad = []
    for path in SRC.rglob("*.py"):
        for name, line in _string_names(ast.parse(path.read_text())):
            rel = pathlib.Path(*name.split(".")[1:])
            if not ((SRC / rel).with_suffix(".py").exists() or (SRC / rel / "__init__.py").exists()):
                bad.append(f"{path.relative_to(SRC)}:{line} names {name}, which does not exist")
    assert not bad, "\n".join(bad)


def test_string_names_are_checked():
    """The check above sees the fork server's preload list and flux start's."""
    seen = {name for p in (SRC / "services/exec/forkserver.py", SRC / "cli/start.py")
            for name, _ in _string_names(ast.parse(p.read_text()))}
    assert {"flux_launch.broker.main", "flux_launch.services.exec.forkserver"} <= seen
    assert any(n.startswith("flux_launch.shell.") for n in seen)


def test_relative_imports_are_resolved(tmp_path):
    """``from ..proto import x`` in client/ counts as an import of proto."""
    path = SRC / "client" / "_probe_.py"
    tree = ast.parse("from ..proto.pmi1 import request\nfrom . import handle\nfrom .. import shell\n")
    got = [_resolve(path, n) + (f".{n.names[0].name}" if _resolve(path, n) == "flux_launch" else "")
           for n in tree.body]
    assert got == ["flux_launch.proto.pmi1", "flux_launch.client", "flux_launch.shell"]


# Modules and calls that open sockets, files, processes or threads: none of them in
# proto/ and core/, the I/O-free engines (they take bytes and return bytes; the
# glue that owns the descriptors lives in client/, broker/, services/ and shell/).
IO_MODULES = {"socket", "_socket", "threading", "_thread", "selectors", "select", "subprocess", "asyncio",
              "sqlite3", "zmq", "mmap", "multiprocessing", "io", "tempfile", "shutil", "signal"}
IO_CALLS = {"open", "os.open", "os.pipe", "os.fdopen", "os.socketpair", "os.fork", "os.popen", "os.system",
            "os.posix_spawn", "os.pidfd_open", "os.mkdir", "os.makedirs", "os.remove", "os.unlink", "os.read",
            "os.write", "io.open", "pathlib.Path"}


def _dotted(node):
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        base = _dotted(node.value)
        return f"{base}.{node.attr}" if base else None
    return None


@pytest.mark.parametrize("pkg", ["proto", "core"])
def test_engines_do_no_io(pkg):
    bad = []
    for path in sorted((SRC / pkg).rglob("*.py")):
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            names = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0:
                names = [node.module]
            for name in names:
                if name.split(".")[0] in IO_MODULES:
                    bad.append(f"{path.relative_to(SRC)}:{node.lineno} imports {name}")
            if isinstance(node, ast.Call) and _dotted(node.func) in IO_CALLS:
                bad.append(f"{path.relative_to(SRC)}:{node.lineno} calls {_dotted(node.func)}()")
    assert not bad, "\n".join(bad)


def test_nothing_outside_cli_imports_cli():
    bad = [f"{p.relative_to(SRC)}:{line}" for p in SRC.rglob("*.py")
           if p.relative_to(SRC).parts[0] != "cli"
           for target, line in imported_packages(p) if target == "cli"]
    assert not bad, bad


@pytest.mark.parametrize("module", ["attr", "kvs", "exec", "uptime", "ping", "overlay"])
def test_client_commands_stay_lean(module):
    """A client command loads neither zeromq nor asyncio: they cost ~60 ms a start."""
    code = (f"import sys, flux_launch.cli.main, flux_launch.cli.{module}, flux_launch.client.handle;"
            "heavy = [m for m in ('zmq', 'asyncio', 'sqlite3') if m in sys.modules];"
            "print(','.join(heavy))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == ""


def test_flux_run_stays_lean():
    """flux run's start-up loads none of argparse, json, re, enum, socket.py, selectors
    and collections: ~12 ms of every launch (argparse and json only for help, errors
    and rare options)."""
    code = ("import sys, io; out = sys.stdout; sys.stdout = io.StringIO();"
            "import flux_launch.cli.main, flux_launch.cli.attach, flux_launch.job.submit;"
            "import flux_launch.client.handle, flux_launch._accel;"
            "from flux_launch.cli import run; flux_launch._accel.select('');"
            "run.main('run', ['-n2', '-N1', '-l', '-u', '-o', 'cpu-affinity=off', '--env=A=1', '--dry-run', 'true']);"
            "print(' '.join(m for m in ('argparse', 'json', 're', 'enum', 'socket', 'signal', 'threading',"
            " 'selectors', 'collections')"
            " if m in sys.modules), file=out)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == ""


def test_no_module_over_600_lines():
    """A module that grows past 600 lines is split by role (as the job manager was)."""
    big = [f"{p.relative_to(SRC)}: {n} lines" for p in sorted(SRC.rglob("*.py"))
           if p.name != "_mnemonic_words.py" and (n := len(p.read_text().splitlines())) > 600]
    assert not big, big


def test_only_the_handle_touches_its_internals():
    """``_recv_one`` and ``Future._queue`` are the handle's (client/handle.py and its
    reactor): everyone else uses reactor_run, watchers and then()."""
    bad = [f"{p.relative_to(SRC)}:{i}" for p in sorted(SRC.rglob("*.py"))
           if p.relative_to(SRC).parts[0] != "client"
           for i, line in enumerate(p.read_text().splitlines(), 1) if "_recv_one" in line or "._queue" in line]
    assert not bad, bad
