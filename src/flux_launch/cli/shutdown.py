"""``flux shutdown [--background] [--quiet] [-v] [TARGET]``: shut the instance
down from inside (flux-core's flux-shutdown(1)).

Rank 0 is asked to leave the RUN state (``shutdown.start``, broker/admin.py): an
initial program still running is sent SIGHUP, so ``flux start`` exits 129 as
flux-core's does; without one the instance ends as on SIGTERM and ``flux start``
exits 0. The command then prints the broker log entries posted during the
shutdown on stderr (``info`` and more severe; ``--quiet``: ``warning`` and more
severe; ``-v``: all) until the broker finishes; ``--background`` returns at once.

TARGET is a URI or a job id (resolved as ``flux uri`` does). ``--gc``,
``--dump`` and ``--skip-gc`` need a KVS dump, which this implementation does not
have: they are refused with one line; ``-y``/``-n`` are accepted (there is no
question to answer).
"""

import sys

from flux_launch.cli.base import Parser

_NO_DUMP = "not supported: this instance has no KVS dump (flux dump) to write at shutdown"


def _parser(cmd):
    p = Parser(cmd, description="Shut down the Flux instance.", usage="flux shutdown [OPTIONS] [TARGET]")
    p.add_argument("--background", action="store_true", help="exit right after starting the shutdown")
    p.add_argument("--quiet", action="store_true", help="show only log messages <= LOG_WARNING level")
    p.add_argument("-v", "--verbose", action="count", default=0,
                   help="--verbose=0: show log messages <= LOG_INFO level (default), 1 (or -v): show all")
    p.add_argument("--gc", action="store_true", help="garbage collect the KVS (not supported)")
    p.add_argument("--dump", metavar="PATH", help="dump KVS content to PATH (not supported)")
    p.add_argument("--skip-gc", action="store_true", help="skip KVS garbage collection (nothing to skip)")
    p.add_argument("-y", "--yes", action="store_true", help="answer yes to any yes/no questions")
    p.add_argument("-n", "--no", action="store_true", help="answer no to any yes/no questions")
    p.add_argument("target", nargs="?", metavar="TARGET", help="a URI or job id (default: this instance)")
    return p


def main(cmd, argv):
    from flux_launch.cli.pmi_cmd import verbose_level

    p = _parser(cmd)
    argv, level = verbose_level(p, argv)
    args = p.parse_args(argv)
    if level is not None:
        args.verbose = level
    if args.gc and (args.skip_gc or args.dump):
        sys.stderr.write("flux-shutdown: --gc is incompatible with --skip-gc or --dump\n")
        return 1
    if args.gc or args.dump:
        sys.stderr.write(f"flux-shutdown: {'--gc' if args.gc else '--dump'}: {_NO_DUMP}\n")
        return 1
    from flux_launch.client.handle import NODEID_ANY, STREAMING, Flux

    uri = None
    if args.target:
        uri = _resolve(args.target)
        if uri is None:
            return 1
    h = Flux(uri)
    loglevel = 4 if args.quiet else 6 if args.verbose == 0 else 7
    log = None
    if not args.background:
        # follow the log from now on, before the shutdown can end it
        log = h.rpc("log.dmesg", {"follow": True, "nobacklog": True}, flags=STREAMING)
    fut = h.rpc("shutdown.start", {"loglevel": loglevel}, nodeid=NODEID_ANY,
                flags=0 if args.background else STREAMING)
    if args.background:
        _get(fut)
        return 0
    if not _started(fut):
        return 1
    _follow(log, loglevel)
    return 0


def _resolve(target):
    """The URI of TARGET (as ``flux uri`` resolves it), or None after saying why not."""
    from flux_launch.cli.uri import resolve

    try:
        return resolve(target)
    except (ValueError, OSError):
        sys.stderr.write(f"flux-shutdown: failed to resolve target {target} to a Flux URI\n")
        return None


def _get(fut):
    fut.get()


def _started(fut):
    """False after printing why rank 0 refused the shutdown. A refusal comes at
    once; an accepted streaming request stays open until the broker finishes
    (then ``ENODATA``, or the connection closes)."""
    import errno

    try:
        fut.wait_for(0.5)
        fut.get()
    except (TimeoutError, ConnectionError):
        return True
    except OSError as exc:
        if exc.errno == errno.ENODATA:
            return True
        sys.stderr.write(f"flux-shutdown: {exc.strerror}\n")
        return False
    return True


def _follow(log, loglevel):
    """Print the log entries at or under ``loglevel`` until the broker ends the
    stream or goes away."""
    from flux_launch.broker.log import SEVERITIES

    try:
        for e in log:
            pri = e.get("pri", 7)
            if isinstance(pri, int) and pri <= loglevel:
                sev = SEVERITIES[pri] if 0 <= pri <= 7 else "debug"
                sys.stderr.write(f"{e.get('appname', 'broker')}.{sev}[{e.get('rank', 0)}]: {e.get('message', '')}\n")
                sys.stderr.flush()
    except (OSError, ConnectionError, EOFError):
        pass
