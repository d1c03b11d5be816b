"""The ``flux`` command: dispatches ``flux CMD ...`` to ``flux_launch.cli.<module>``.

Errors reach the user as one line, ``flux-CMD: message``, with exit code 1 (usage
errors: 2). A traceback is printed only with ``FLUX_LAUNCH_DEBUG=1``.
"""

import os
import sys

# command -> module in flux_launch.cli (imported only when used: flux run's start-up
# must not pay for every command)
COMMANDS = {
    "start": "start",
    "kvs": "kvs",
    "exec": "exec",
    "getattr": "attr",
    "setattr": "attr",
    "lsattr": "attr",
    "uptime": "uptime",
    "ping": "ping",
    "overlay": "overlay",
    "run": "run",
    "submit": "submit",
    "jobs": "jobs",
    "cancel": "cancel",
    "job": "job",
    "queue": "queue",
    "resource": "resource",
    "broker": "broker",
    "batch": "batch",
    "alloc": "alloc",
    "uri": "uri",
    "proxy": "proxy",
    "pstree": "pstree",
    "watch": "watch",
    "config": "config",
    "keygen": "keygen",
    "hostlist": "hostlist",
    "update": "update",
    "multi-prog": "multi_prog",
    "startlog": "startlog",
    "R": "rset",
    "dmesg": "dmesg",
    "version": "misc",
    "env": "misc",
    "python": "misc",
    "help": "misc",
    "logger": "dmesg",
    "bulksubmit": "bulksubmit",
    "shutdown": "shutdown",
    "event": "event",
    "pgrep": "pgrep",
    "pkill": "pgrep",
    "hwloc": "hwloc",
    "pmi": "pmi_cmd",
}

USAGE = """\
Usage: flux [OPTIONS] COMMAND ARGS
  -h, --help      show this help
  -V, --version   print the version
  -p, --parent    run COMMAND in the enclosing instance's parent (repeatable)
  -r, --root      run COMMAND in the root instance

Commands:
  start      start a Flux instance (flux start --test-size=N [COMMAND])
  exec       run a command on broker ranks, without the scheduler
  kvs        get, put and watch keys in the key-value store
  getattr    print a broker attribute
  setattr    set a broker attribute
  lsattr     list broker attributes
  uptime     show how long the instance has run, its size and lost ranks
  startlog   list the instance's starts and stops (and crashes) on its statedir
  ping       send a request to a broker and time the answer
  overlay    show the state of the overlay network
  run        run a parallel job interactively
  submit     submit a job to the queue
  bulksubmit submit one job per input combination (::: lists, stdin)
  multi-prog run a different program in each task of a job (MPMD)
  shutdown   shut the instance down (flux start then exits 129 if an initial program ran)
  event      publish (pub) or print (sub) events
  pgrep      list jobs whose name or id range matches an expression
  pkill      cancel jobs whose name or id range matches an expression
  hwloc      the brokers' hardware: info (Machines, Cores, PUs), topology (hwloc XML)
  pmi        a PMI test client: barrier, exchange, get (under a launcher or flux run)
  jobs       list jobs
  cancel     cancel jobs
  update     change a pending or running job's duration or name
  job        job utilities: attach, info, eventlog, wait-event, status, wait, last, kill, id, taskmap, timeleft
  queue      the job queue: status, stop/start, disable/enable, idle, drain, list
  resource   resources: list, info, R, status, drain/undrain, reload
  R          make, combine and read RFC 20 resource sets (encode, decode, append, diff...)
  batch      submit a batch script, run in a nested instance
  alloc      run a nested instance interactively (or a command in one)
  broker     run one broker (what batch and alloc start on each node)
  uri        resolve a job id (or ID/ID... through nested instances) to a URI
  proxy      run a command (default $SHELL) in another instance: a job's or a URI's
  pstree     show the tree of jobs, through nested instances
  watch      print the output of jobs (running or inactive) and wait for them
  config     print the instance's configuration (flux broker -c)
  keygen     make the CURVE certificate of a config-booted instance
  hostlist   combine and print host lists of the instance, jobs or arguments
  dmesg      print the broker's log ring buffer (-f: follow, -H: human times)
  logger     append a message to the broker's log
  version    print the versions of the commands and of the broker
  env        print the environment flux gives its commands, or run COMMAND in it
  python     run the Python interpreter of flux (flux importable)
  help       list the commands, or show a command's help (flux help COMMAND)
"""


def die(cmd, text, code=1):
    sys.stderr.write(f"flux-{cmd}: {text}\n")
    return code


def main(argv=None):
    args = list(sys.argv[1:] if argv is None else argv)
    if not args or args[0] in ("-h", "--help"):
        sys.stdout.write(USAGE) if args else sys.stderr.write(USAGE)
        return 0 if args else 2
    if args[0] in ("-V", "--version"):
        args[0] = "version"
    up = 0  # -p/--parent: how many levels up; -1: -r/--root
    while args and (args[0] in ("--parent", "--root") or _short_up(args[0])):
        opt = args.pop(0)
        for c in ("p" if opt == "--parent" else "r" if opt == "--root" else opt[1:]):
            up = -1 if c == "r" or up < 0 else up + 1
    if up:
        code = _go_up(up)
        if code:
            return code
        if not args:
            sys.stderr.write(USAGE)
            return 2
    cmd = args[0]
    if cmd.startswith("-"):
        sys.stderr.write(f"flux: unknown option '{cmd}'\n{USAGE}")
        return 2
    modname = COMMANDS.get(cmd)
    if modname is None:
        sys.stderr.write(f"flux: '{cmd}' is not a flux command. See 'flux --help'\n")
        return 2
    import importlib

    module = importlib.import_module(f"flux_launch.cli.{modname}")
    try:
        return module.main(cmd, args[1:])
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        return 141
    except (OSError, ValueError, ImportError) as exc:
        if os.environ.get("FLUX_LAUNCH_DEBUG"):
            raise
        text = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        return die(cmd, text)


def _short_up(arg):
    """``-p``, ``-r``, ``-pp``...: flux's own options (getopt style, combinable)."""
    return len(arg) > 1 and arg[0] == "-" and arg[1] != "-" and not arg.strip("-pr")


def _go_up(levels):
    """``flux --parent``/``--root``: point ``FLUX_URI`` at the parent instance,
    ``levels`` times (-1: up to the root). At the root there is no parent: nothing
    changes, as in flux-core. Returns 0, or 1 after saying why it failed."""
    from flux_launch.client.handle import Flux

    while levels:
        levels -= 1
        try:
            with Flux() as h:
                uri = h.rpc("attr.get", {"name": "parent-uri"}).get()["value"]
        except OSError as exc:
            if exc.errno == 2:  # ENOENT: no parent-uri, this is the root instance
                return 0
            sys.stderr.write(f"flux: --parent: {exc.strerror or exc}\n")
            return 1
        os.environ["FLUX_URI"] = uri
        os.environ.pop("FLUX_KVS_NAMESPACE", None)
    return 0


def run():
    """The console script: like ``main`` but skips the interpreter's teardown
    (module and object finalization costs milliseconds every command pays)."""
    code = main()
    try:
        sys.stdout.flush()
        sys.stderr.flush()
    except BrokenPipeError:
        code = code or 141
    os._exit(code if isinstance(code, int) else 1)


if __name__ == "__main__":
    run()
