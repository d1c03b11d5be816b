"""The rules of the house about imports: one direction only, and a lean CLI."""

import ast
import pathlib
import subprocess
import sys

import pytest

SRC = pathlib.Path(__file__).resolve().parents[2] / "src" / "flux_launch"

# package -> flux_launch packages it must never import
FORBIDDEN = {
    "core": {"cli", "job", "broker", "services", "shell", "testing"},
    "proto": {"cli", "job", "broker", "services", "shell", "testing"},
    "_accel": {"cli", "job", "broker", "services", "shell", "testing", "core", "proto"},
    "services": {"cli", "job", "shell", "broker", "testing"},
    "broker": {"cli", "job", "shell", "testing"},
    "job": {"cli", "broker", "services", "shell", "testing"},
    "shell": {"cli", "job", "services", "testing"},
}


def imported_packages(path):
    tree = ast.parse(path.read_text(), str(path))
    for node in ast.walk(tree):
        names = []
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [node.module]
        for name in names:
            parts = name.split(".")
            if parts[0] == "flux_launch" and len(parts) > 1:
                yield parts[1], node.lineno


# The one sanctioned crossing: the exec service's fork server runs the job shell
# (in flux-core, job-exec execs the flux-shell program).
ALLOWED = {("services/exec/forkserver.py", "shell")}


def test_import_directions():
    bad = []
    for pkg, forbidden in FORBIDDEN.items():
        for path in sorted((SRC / pkg).rglob("*.py")) if (SRC / pkg).exists() else []:
            for target, line in imported_packages(path):
                if target in forbidden and (str(path.relative_to(SRC)), target) not in ALLOWED:
                    bad.append(f"{path.relative_to(SRC)}:{line} imports flux_launch.{target}")
    assert not bad, "\n".join(bad)


def test_nothing_outside_cli_imports_cli():
    bad = [f"{p.relative_to(SRC)}:{line}" for p in SRC.rglob("*.py")
           if p.relative_to(SRC).parts[0] != "cli"
           for target, line in imported_packages(p) if target == "cli"]
    assert not bad, bad


@pytest.mark.parametrize("module", ["attr", "kvs", "exec", "uptime", "ping", "overlay"])
def test_client_commands_stay_lean(module):
    """A client command loads neither zeromq nor asyncio: they cost ~60 ms a start."""
    code = (f"import sys, flux_launch.cli.main, flux_launch.cli.{module}, flux_launch.core.handle;"
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
            "import flux_launch.core.handle, flux_launch._accel;"
            "from flux_launch.cli import run; flux_launch._accel.select('');"
            "run.main('run', ['-n2', '-N1', '-l', '-u', '-o', 'cpu-affinity=off', '--env=A=1', '--dry-run', 'true']);"
            "print(' '.join(m for m in ('argparse', 'json', 're', 'enum', 'socket', 'signal', 'threading',"
            " 'selectors', 'collections')"
            " if m in sys.modules), file=out)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == ""
