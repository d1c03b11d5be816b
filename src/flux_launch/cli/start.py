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
import sys
import time

from flux_launch.cli.base import Parser
from flux_launch.core.proc import exit_now

_PMI_VARS = ("PMI_FD", "PMI_RANK", "PMI_SIZE", "PMI_SPAWNED", "PMI_VERSION", "PMI_SUBVERSION")


def _parser():
    p = Parser("start", description="Start a Flux instance and run COMMAND in it "
                                    "(default: an interactive shell).")
    p.add_argument("-S", "--setattr", action="append", default=[], metavar="ATTR=VAL",
                   help="set a broker attribute")
    p.add_argument("-c", "--config-path", metavar="PATH",
                   help="read the broker configuration from PATH (a TOML file or a directory of them)")
    p.add_argument("-v", "--verbose", action="count", default=0, help="say what is being done")
    p.add_argument("--test-size", type=int, metavar="N", help="start N brokers on this machine")
    p.add_argument("--test-exit-timeout", type=float, default=10.0, metavar="SECONDS",
                   help="after rank 0 exits, kill brokers still running after this long (default 10)")
    p.add_argument("--test-rundir", metavar="DIR", help="use DIR as the rundir of all brokers")
    p.add_argument("--test-rundir-cleanup", action="store_true",
                   help="remove the --test-rundir directory when the instance ends")
    p.add_argument("--test-hosts", metavar="HOSTLIST",
                   help="give the brokers these host names, in rank order (FLUX_FAKE_HOSTNAME)")
    p.add_argument("--test-pmi-clique", metavar="MODE", default="single",
                   help="PMI_process_mapping of the test PMI server: single (default), per-broker or none")
    p.add_argument("-o", "--broker-opts", action="append", default=[], metavar="OPTS",
                   help="broker options, separated by commas (-Sattr=val, -cPATH, -v)")
    p.add_argument("command", nargs=argparse.REMAINDER, help="the initial program")
    return p


def main(cmd, argv):
    p = _parser()
    argv = list(argv)
    takes_value = {"-S", "--setattr", "-c", "--config-path", "--test-size", "--test-exit-timeout",
                   "--test-rundir", "--test-hosts", "--test-pmi-clique"}
    for i, arg in enumerate(argv):  # -o -Sa=b: the broker options start with '-' (argparse would refuse)
        if arg in ("-o", "--broker-opts") and i + 1 < len(argv):
            argv[i:i + 2] = [f"--broker-opts={argv[i + 1]}"]
        elif arg == "--" or (not arg.startswith("-") and (i == 0 or argv[i - 1] not in takes_value)):
            break  # the initial program: its options are its own
    args = p.parse_args(argv)
    command = args.command
    if command and command[0] == "--":
        command = command[1:]
    from flux_launch.broker.main import parse_attrs

    # Like flux-core: the instance finds the same `flux` that started it first on PATH.
    bindir = os.path.dirname(os.path.abspath(sys.argv[0]))
    if os.path.exists(os.path.join(bindir, "flux")):
        path = os.environ.get("PATH", "")
        if path.split(os.pathsep)[0] != bindir:
            os.environ["PATH"] = bindir + os.pathsep + path

    setattrs = list(args.setattr)
    for opts in args.broker_opts:
        for opt in filter(None, opts.split(",")):
            if opt.startswith(("-S", "--setattr=")):
                setattrs.append(opt[2:] if opt.startswith("-S") else opt.split("=", 1)[1])
            elif opt.startswith(("-c", "--config-path=")) and len(opt) > 2:
                args.config_path = opt[2:] if opt.startswith("-c") else opt.split("=", 1)[1]
            elif opt in ("-v", "--verbose"):
                args.verbose += 1
            else:
                p.error(f"unknown broker option {opt!r} in -o (known: -Sattr=val, -cPATH, -v)")
    if args.test_pmi_clique not in ("single", "per-broker", "none"):
        p.error(f"--test-pmi-clique={args.test_pmi_clique}: expected single, per-broker or none")
    hosts = None
    if args.test_hosts is not None:
        from flux_launch.core.hostlist import Hostlist

        try:
            hosts = list(Hostlist(args.test_hosts))
        except ValueError as exc:
            p.error(f"--test-hosts={args.test_hosts}: {exc}")
        if len(hosts) < (args.test_size or 1):
            p.error(f"--test-hosts names {len(hosts)} hosts for {args.test_size or 1} brokers")
    args.hosts = hosts
    if args.test_rundir_cleanup and not args.test_rundir:
        p.error("--test-rundir-cleanup needs --test-rundir")
    attrs = parse_attrs(setattrs)
    from flux_launch.broker.main import check_attrs

    message = check_attrs(attrs)
    if message:  # once here, not once per broker
        print(f"flux-start: {message}", file=sys.stderr)
        return 1
    if not command:
        command = [os.environ.get("SHELL") or "/bin/sh"]
    size = args.test_size
    if size is not None and size < 1:
        p.error("--test-size must be at least 1")
    if args.test_rundir:
        attrs["rundir"] = args.test_rundir
    if args.config_path:
        attrs["config.path"] = args.config_path
    try:
        if size is None or size == 1:
            if size == 1:
                for var in _PMI_VARS:
                    os.environ.pop(var, None)
            if hosts:
                os.environ["FLUX_FAKE_HOSTNAME"] = hosts[0]
            from flux_launch.broker.main import run_broker

            return run_broker(attrs, command)
        return _launch(size, attrs, command, args)
    finally:
        if args.test_rundir_cleanup:
            import shutil

            shutil.rmtree(args.test_rundir, ignore_errors=True)


def _launch(size, attrs, command, args):
    import shutil

    from flux_launch.client.pmi_local import LocalPMIServer

    # Brokers are forked from this process with their modules already imported:
    # N interpreter start-ups and N imports of asyncio and zeromq (~75 ms of CPU
    # each) would otherwise dominate the start of an instance.
    import importlib

    for name in ("flux_launch.broker.boot", "flux_launch.broker.main", "flux_launch.broker.overlay",
                 "flux_launch.services.kvs.service", "flux_launch.services.job_manager",
                 "flux_launch.services.exec.forkserver"):
        importlib.import_module(name)
    sys.modules["flux_launch.services.exec.forkserver"].preload()
    import gc

    # What is imported now is shared by every broker and fork server: keep the
    # collector from walking (and so copying) it in each of them.
    gc.collect()
    gc.freeze()

    from flux_launch.broker.boot import BootError, prepare_rundir

    try:
        rundir, made = prepare_rundir(attrs.get("rundir"))
    except BootError as exc:
        print(f"flux-start: {exc}", file=sys.stderr)
        return 1
    attrs["rundir"] = rundir
    if "tbon.prefertcp" in attrs and attrs["tbon.prefertcp"] not in ("0", ""):
        attrs.setdefault("tbon.interface-hint", "127.0.0.1")
    for var in _PMI_VARS:
        os.environ.pop(var, None)
    # Every broker of a test instance runs on this machine: read its topology once
    # (hwloc takes ~10 ms) and let the forked brokers inherit it.
    from flux_launch.resource import TopologyError, discover_from_env

    try:
        topology = discover_from_env()
    except TopologyError as exc:
        print(f"flux-start: {exc}", file=sys.stderr)
        if made:
            shutil.rmtree(rundir, ignore_errors=True)
        return 1
    server = LocalPMIServer(size, mapping=args.test_pmi_clique)
    pids = {}
    sys.stdout.flush()
    sys.stderr.flush()
    try:
        for rank in range(size):
            pid = os.fork()
            if pid == 0:
                if args.hosts:
                    os.environ["FLUX_FAKE_HOSTNAME"] = args.hosts[rank]
                _broker_child(rank, size, server, attrs, command, topology)
            pids[rank] = pid
            if args.verbose:
                print(f"flux-start: rank {rank} pid {pid}", file=sys.stderr)
        server.close_client_fds()
        # The PMI thread starts only now: no thread may run while this process forks.
        server.start()

        def forward(sig, _frame):
            try:
                os.kill(pids[0], sig)
            except ProcessLookupError:
                pass

        signal.signal(signal.SIGTERM, forward)
        signal.signal(signal.SIGINT, forward)
        rc = _reap(pids, args.test_exit_timeout)
    finally:
        for pid in pids.values():
            try:
                os.kill(pid, signal.SIGKILL)
                os.waitpid(pid, 0)
            except (ProcessLookupError, ChildProcessError):
                pass
        server.stop()
        if made:
            shutil.rmtree(rundir, ignore_errors=True)
    return rc


def _broker_child(rank, size, server, attrs, command, topology):
    """Become the broker of ``rank`` (in a forked child); never returns."""
    code = 1
    try:
        if rank != 0:
            # Brokers other than rank 0 leave the terminal's process group: a Ctrl-C
            # is for the initial program (under rank 0), not for them.
            os.setsid()
        fd = server.keep_only(rank)
        os.environ.update(PMI_FD=str(fd), PMI_RANK=str(rank), PMI_SIZE=str(size))
        from flux_launch.broker.main import run_broker

        code = run_broker(dict(attrs), command if rank == 0 else None, topology)
    except BaseException as exc:  # noqa: BLE001 - a forked child must never return
        try:
            print(f"flux-broker[{rank}]: {exc}", file=sys.stderr)
        except BaseException:  # noqa: BLE001
            pass
    finally:
        exit_now(code)


def _reap(pids, exit_timeout):
    """Wait for rank 0, then for the others until ``exit_timeout``; returns rank 0's code."""
    by_pid = {pid: rank for rank, pid in pids.items()}
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
        code = os.waitstatus_to_exitcode(status)
        if code < 0 and deadline != float("inf"):
            print(f"flux-start: {rank} (pid {pid}) {signal.strsignal(-code)}", file=sys.stderr)
        if rank == 0:
            rc = code if code >= 0 else 128 - code
            deadline = time.monotonic() + exit_timeout
    return 1 if rc is None else rc
