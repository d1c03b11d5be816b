"""``flux start``: run a Flux instance for the life of one command.

Without ``--test-size`` this process becomes the broker (booting from an
enclosing PMI when one is present, else as a singleton). With ``--test-size=N``
it launches N brokers on this machine, serves them PMI-1 so that they can find
each other (exactly as another launcher would), waits for rank 0, whose exit status
(that of COMMAND) it returns, and then reaps the others: a broker still alive
``--test-exit-timeout`` seconds later gets SIGKILL, and a broker that died by a
signal is reported on stderr.
"""

import argparse
import os
import signal
import subprocess
import sys
import time

from flux_launch.cli.base import Parser

_PMI_VARS = ("PMI_FD", "PMI_RANK", "PMI_SIZE", "PMI_SPAWNED", "PMI_VERSION", "PMI_SUBVERSION")


def _parser():
    p = Parser("start", description="Start a Flux instance and run COMMAND in it "
                                    "(default: an interactive shell).")
    p.add_argument("-S", "--setattr", action="append", default=[], metavar="ATTR=VAL",
                   help="set a broker attribute")
    p.add_argument("-v", "--verbose", action="count", default=0, help="say what is being done")
    p.add_argument("--test-size", type=int, metavar="N", help="start N brokers on this machine")
    p.add_argument("--test-exit-timeout", type=float, default=10.0, metavar="SECONDS",
                   help="after rank 0 exits, kill brokers still running after this long (default 10)")
    p.add_argument("--test-rundir", metavar="DIR", help="use DIR as the rundir of all brokers")
    p.add_argument("command", nargs=argparse.REMAINDER, help="the initial program")
    return p


def main(cmd, argv):
    p = _parser()
    args = p.parse_args(argv)
    command = args.command
    if command and command[0] == "--":
        command = command[1:]
    from flux_launch.broker.main import parse_attrs

    attrs = parse_attrs(args.setattr)
    if not command:
        command = [os.environ.get("SHELL") or "/bin/sh"]
    size = args.test_size
    if size is not None and size < 1:
        p.error("--test-size must be at least 1")
    if args.test_rundir:
        attrs["rundir"] = args.test_rundir
    if size is None or size == 1:
        if size == 1:
            for var in _PMI_VARS:
                os.environ.pop(var, None)
        from flux_launch.broker.main import run_broker

        return run_broker(attrs, command)
    return _launch(size, attrs, command, args)


def _launch(size, attrs, command, args):
    import shutil
    import tempfile

    from flux_launch.core.pmi_local import LocalPMIServer

    made = None
    rundir = attrs.get("rundir")
    if not rundir:
        rundir = made = tempfile.mkdtemp(prefix="flux-")
    os.chmod(rundir, 0o700)
    attrs["rundir"] = rundir
    if "tbon.prefertcp" in attrs and attrs["tbon.prefertcp"] not in ("0", ""):
        attrs.setdefault("tbon.interface-hint", "127.0.0.1")
    server = LocalPMIServer(size)
    server.start()
    procs = {}
    base = [sys.executable, "-m", "flux_launch.broker"]
    for name, value in attrs.items():
        base += ["-S", f"{name}={value}"]
    env = {k: v for k, v in os.environ.items() if k not in _PMI_VARS}
    env["PMI_SIZE"] = str(size)
    try:
        for rank in range(size):
            fd = server.client_fd(rank)
            env["PMI_FD"] = str(fd)
            env["PMI_RANK"] = str(rank)
            argv = base + ["--"] + command if rank == 0 else base
            # Brokers other than rank 0 leave the terminal's process group: a Ctrl-C
            # is for the initial program (under rank 0), not for them.
            procs[rank] = subprocess.Popen(argv, env=env, pass_fds=(fd,), start_new_session=rank != 0)
            if args.verbose:
                print(f"flux-start: rank {rank} pid {procs[rank].pid}", file=sys.stderr)
        server.close_client_fds()

        def forward(sig, _frame):
            try:
                procs[0].send_signal(sig)
            except ProcessLookupError:
                pass

        signal.signal(signal.SIGTERM, forward)
        signal.signal(signal.SIGINT, forward)
        rc = _reap(procs, args.test_exit_timeout)
    finally:
        for proc in procs.values():
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        server.stop()
        if made:
            shutil.rmtree(made, ignore_errors=True)
    return rc


def _reap(procs, exit_timeout):
    """Wait for rank 0, then for the others until ``exit_timeout``; returns rank 0's code."""
    by_pid = {proc.pid: rank for rank, proc in procs.items()}
    remaining = set(by_pid)
    rc = None
    deadline = None
    while remaining:
        if deadline is None:
            try:
                pid, status = os.waitpid(-1, 0)
            except ChildProcessError:
                break
        else:
            pid, status = os.waitpid(-1, os.WNOHANG)
            if pid == 0:
                if time.monotonic() > deadline:
                    for p in remaining:
                        rank = by_pid[p]
                        print(f"flux-start: rank {rank} (pid {p}) still running after "
                              f"{exit_timeout:g}s; killing it", file=sys.stderr)
                        os.kill(p, signal.SIGKILL)
                    deadline = float("inf")
                time.sleep(0.01)
                continue
        if pid not in by_pid:
            continue
        remaining.discard(pid)
        rank = by_pid[pid]
        procs[rank].returncode = os.waitstatus_to_exitcode(status)
        code = procs[rank].returncode
        if code < 0 and deadline != float("inf"):
            print(f"flux-start: {rank} (pid {pid}) {signal.strsignal(-code)}", file=sys.stderr)
        if rank == 0:
            rc = code if code >= 0 else 128 - code
            deadline = time.monotonic() + exit_timeout
    return 1 if rc is None else rc
