"""``flux proxy [-f] [-n] JOBID|URI [COMMAND...]``: run COMMAND (default ``$SHELL``)
in another instance: a job's nested instance (resolved as ``flux uri`` does) or the
one at a URI.

COMMAND runs as ``$SHELL -c "COMMAND..."`` (``$SHELL`` unset: ``/bin/sh``) with
``FLUX_URI`` set to the target's ``local://`` URI: there is no remote connector,
so the instance must run on this host, and its socket is used directly instead
of relayed. ``flux proxy`` exits with the command's exit code (killed by signal
N: 128+N).

While the command runs, ``flux proxy`` holds a connection to the instance. If the
instance goes away it says ``Lost connection to Flux`` and sends SIGHUP (then
SIGCONT) to the command, unless ``-n/--nohup``, then still waits for it.
SIGINT and SIGQUIT are left to the command (a terminal sends them to both);
SIGTERM, SIGHUP, SIGUSR1 and SIGUSR2 are forwarded to it.
"""

import argparse
import os
import signal
import subprocess
import sys

from flux_launch.cli.base import Parser

FORWARD = (signal.SIGTERM, signal.SIGHUP, signal.SIGUSR1, signal.SIGUSR2)
LEAVE = (signal.SIGINT, signal.SIGQUIT)


def _say(text):
    sys.stderr.write(f"flux-proxy: {text}\n")
    sys.stderr.flush()


def _check_version(h, force):
    """Refuse a broker of another major.minor version (as flux-core), unless ``force``."""
    from flux_launch import __version__

    theirs = h.rpc("attr.get", {"name": "version"}).get()["value"]
    if theirs.split(".")[:2] != __version__.split(".")[:2] and not force:
        raise ValueError(f"fatal: proxy version {__version__} may not interoperate with broker version "
                         f"{theirs} (--force to connect anyway)")


def command_argv(command):
    """What runs: ``$SHELL`` alone, or ``$SHELL -c "COMMAND..."``."""
    shell = os.environ.get("SHELL") or "/bin/sh"
    return [shell, "-c", " ".join(command)] if command else [shell]


def run(h, local_uri, command, nohup=False):
    """Run ``command`` with ``FLUX_URI=local_uri`` while watching the connection
    ``h`` to that instance; returns its exit code (signal N: 128+N)."""
    from flux_launch.client.handle import FD_READ

    env = dict(os.environ, FLUX_URI=local_uri)
    env.pop("FLUX_KVS_NAMESPACE", None)
    argv = command_argv(command)
    try:
        child = subprocess.Popen(argv, env=env)
    except OSError as exc:
        raise OSError(exc.errno, f"cannot run {argv[0]}: {exc.strerror}") from None
    pidfd = os.pidfd_open(child.pid)

    def exited(handle, watcher, fd, revents, args):
        handle.reactor_stop()

    def forward(handle, watcher, signum, args):
        if child.poll() is None:
            child.send_signal(signum)

    watchers = [h.fd_watcher_create(pidfd, exited, FD_READ)]
    watchers += [h.signal_watcher_create(s, forward) for s in FORWARD]
    watchers += [h.signal_watcher_create(s, lambda *a: None) for s in LEAVE]
    for w in watchers:
        w.start()
    try:
        h.reactor_run()
    except ConnectionError:
        _say("Lost connection to Flux")
        if not nohup and child.poll() is None:
            _say("Sending SIGHUP to child processes")
            child.send_signal(signal.SIGHUP)
            child.send_signal(signal.SIGCONT)
        # still waiting for the command: its signals are handled as before
        for w in watchers:
            w.stop()
        for s in LEAVE:
            signal.signal(s, lambda *a: None)
        for s in FORWARD:
            signal.signal(s, lambda signum, frame: child.poll() is None and child.send_signal(signum))
    finally:
        os.close(pidfd)
    code = child.wait()
    return 128 - code if code < 0 else code


def main(cmd, argv):
    p = Parser(cmd, description="Run COMMAND (default $SHELL) in the instance of a job, or at a URI.",
               usage="flux proxy [OPTIONS] JOBID|URI [COMMAND...]")
    p.add_argument("-f", "--force", action="store_true", help="skip the broker version check")
    p.add_argument("-n", "--nohup", action="store_true",
                   help="do not send SIGHUP to the command when the connection is lost")
    p.add_argument("target", metavar="JOBID|URI", nargs="?", help="a job id (ID/ID... nested), or a URI")
    p.add_argument("command", nargs=argparse.REMAINDER, help="the command (default: $SHELL)")
    args = p.parse_args(argv)
    if not args.target:
        p.error("URI argument is required")
    from flux_launch.cli.uri import resolve
    from flux_launch.client.handle import Flux, uri_path

    try:
        uri = resolve(args.target)
    except ValueError as exc:
        _say(f"Unable to resolve {args.target} to a URI: {exc}")
        return 1
    try:
        h = Flux(uri)
    except OSError as exc:
        _say(f"{args.target}: {exc.strerror or exc}")
        return 1
    _check_version(h, args.force)
    return run(h, "local://" + uri_path(uri), args.command, nohup=args.nohup)
