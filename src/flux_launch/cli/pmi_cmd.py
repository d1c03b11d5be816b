"""``flux pmi [-v] [--method=URI] barrier|exchange|get``: a standalone PMI client
(flux-core's flux-pmi(1)), to test the PMI a launcher offers
(``mpiexec.hydra -n 2 flux pmi barrier``, ``flux run -n2 flux pmi exchange``)
with the clients the broker boots with (``client/pmi_boot.py``).

The methods are tried in the order of ``FLUX_PMI_CLIENT_METHODS`` (default
``simple libpmi2 libpmi single``) as the broker does; ``--method=URI`` forces one:
``simple`` (the wire protocol on ``PMI_FD``), ``libpmi2[:PATH]``,
``libpmi[:PATH]`` (a PMI library), ``single`` (a singleton). ``-v`` traces each
PMI operation on stderr.

- ``barrier [--test-count=N] [--test-abort=RANK]``: a barrier, then N timed
  barriers; rank 0 prints ``LABEL: completed pmi barrier on N tasks in T.TTTs.``
  ``--test-abort`` has RANK call PMI abort instead of the timed barriers.
- ``exchange [--count=N]``: a barrier, then N times: put ``key.RANK``, barrier,
  get and check every rank's key, barrier; rank 0 prints ``LABEL: completed pmi
  exchange on N tasks in T.TTTs.``
- ``get [--ranks=IDSET|all] KEY...``: print the values of KEYs (``PMI_*`` keys are
  the launcher's job attributes, e.g. ``PMI_process_mapping``) on the ranks
  given (default 0).

LABEL is ``$FLUX_JOB_CC``, else ``$FLUX_JOB_ID``, else ``0``. Errors are one line
(``flux-pmi: barrier: ...``) with exit status 1.
"""

import os
import sys
import time

from flux_launch.cli.base import Parser

METHODS = ("simple", "simple1", "simple2", "libpmi2", "libpmi", "single")


class _Singleton:
    """The ``single`` method: rank 0 of 1, a local key-value store."""

    rank, size = 0, 1

    def __init__(self):
        self.kvs = {}

    def put(self, key, value):
        self.kvs[key] = value

    def get(self, key):
        if key not in self.kvs:
            raise KeyError(key)
        return self.kvs[key]

    def barrier(self):
        pass

    def finalize(self):
        pass

    def abort(self, exitcode, msg=""):
        sys.stderr.write(f"{msg}\n")
        os._exit(exitcode)

    def close(self):
        pass


class _Traced:
    """Writes ``METHOD: OPERATION: result`` on stderr for each call (``-v``)."""

    def __init__(self, pmi, method):
        self.pmi, self.method = pmi, method
        self.rank, self.size = pmi.rank, pmi.size

    def _trace(self, text):
        sys.stderr.write(f"{self.method}: {text}\n")

    def put(self, key, value):
        self.pmi.put(key, value)
        self._trace(f"put key={key} value={value}: success")

    def get(self, key):
        value = self.pmi.get(key)
        self._trace(f"get key={key}: value={value}")
        return value

    def barrier(self):
        self.pmi.barrier()
        self._trace("barrier: success")

    def finalize(self):
        self.pmi.finalize()
        self._trace("finalize: success")

    def abort(self, exitcode, msg=""):
        self._trace(f"abort: {msg}")
        self.pmi.abort(exitcode, msg)

    def close(self):
        self.pmi.close()


def _parser(cmd):
    p = Parser(cmd, description="Simple PMI test client.",
               usage="flux pmi [-v] [--method=URI] barrier|exchange|get [OPTIONS]")
    p.add_argument("--method", metavar="URI", help="the PMI method: simple, libpmi2[:PATH], libpmi[:PATH], single")
    p.add_argument("-v", "--verbose", action="count", default=0, help="trace PMI operations (--verbose=LEVEL)")
    p.add_argument("--libpmi-noflux", action="store_true", help="accepted (the Flux libpmi.so is never loaded)")
    p.add_argument("--libpmi2-cray", action="store_true", help="not supported: refused")
    sub = p.add_subparsers(dest="sub", metavar="barrier|exchange|get")
    b = sub.add_parser("barrier", help="execute PMI barrier", prog="flux pmi barrier")
    b.add_argument("--test-count", type=int, default=1, metavar="N", help="execute N barrier operations (default 1)")
    b.add_argument("--test-abort", type=int, default=-1, metavar="RANK", help="RANK calls abort instead of barrier")
    e = sub.add_parser("exchange", help="perform an allgather style exchange", prog="flux pmi exchange")
    e.add_argument("--count", type=int, default=1, metavar="N", help="execute N exchange operations (default 1)")
    g = sub.add_parser("get", help="get PMI KVS keys", prog="flux pmi get")
    g.add_argument("--ranks", default="0", metavar="IDSET|all", help="print the values on these ranks (default 0)")
    g.add_argument("keys", nargs="*", metavar="KEY")
    return p


def verbose_level(p, argv):
    """``argv`` with ``--verbose=LEVEL`` taken out (as flux-core's optional
    argument, which a following word never fills), and the level (None: absent)."""
    out, level = [], None
    for arg in argv:
        if arg.startswith("--verbose="):
            try:
                level = int(arg.partition("=")[2])
            except ValueError:
                p.error(f"--verbose={arg.partition('=')[2]}: LEVEL must be an integer")
        else:
            out.append(arg)
    return out, level


def main(cmd, argv):
    p = _parser(cmd)
    argv, level = verbose_level(p, argv)
    args = p.parse_args(argv)
    if level is not None:
        args.verbose = level
    if args.sub is None:
        p.error("give a subcommand: barrier, exchange or get")
    if args.libpmi2_cray:
        return _die("--libpmi2-cray: not supported (no Cray PMI workarounds here)")
    if args.method and args.method.partition(":")[0] not in METHODS:
        return _die(f"--method={args.method}: unknown PMI method (use simple, libpmi2[:PATH], libpmi[:PATH] "
                    "or single)")
    ranks = None
    if args.sub == "get" and args.ranks != "all":
        from flux_launch.core.idset import IDset

        try:
            ranks = set(IDset(args.ranks))
        except ValueError:
            return _die("could not decode --ranks argument (give an idset such as 0-3, or all)")
    try:
        pmi = _open(args)
    except (RuntimeError, OSError) as exc:
        return _die(str(exc) if not isinstance(exc, OSError) or not exc.strerror else exc.strerror)
    label = os.environ.get("FLUX_JOB_CC") or os.environ.get("FLUX_JOB_ID") or "0"
    op = "initialize"
    try:
        if args.sub == "barrier":
            op = "barrier"
            _barrier(pmi, args, label)
        elif args.sub == "exchange":
            op = "exchange"
            _exchange(pmi, args, label)
        elif ranks is None or pmi.rank in ranks:
            for key in args.keys:
                op = f"get {key}"
                print(pmi.get(key))
        op = "finalize"
        pmi.finalize()
    except KeyError as exc:
        return _die(f"{op}: no such key {exc.args[0]}")
    except (RuntimeError, OSError) as exc:
        return _die(f"{op}: {exc.strerror if isinstance(exc, OSError) and exc.strerror else exc}")
    finally:
        pmi.close()
    return 0


def _die(text):
    sys.stderr.write(f"flux-pmi: {text}\n")
    return 1


def _open(args):
    """The initialized client of ``--method`` (or of the method list).

    Raises:
        RuntimeError: no method applied, or the one that applied failed.
    """
    from flux_launch.client.pmi_boot import DEFAULT_METHODS, open_boot_pmi

    env = dict(os.environ)
    if args.method:
        env["FLUX_PMI_CLIENT_METHODS"] = args.method
    methods = env.get("FLUX_PMI_CLIENT_METHODS", "").split() or DEFAULT_METHODS.split()
    pmi = open_boot_pmi(env)
    method = methods[-1] if pmi is None else _method_of(pmi)
    pmi = _Singleton() if pmi is None else pmi
    if args.verbose:
        sys.stderr.write(f"{method}: initialize: rank={pmi.rank} size={pmi.size} name={_name(pmi)}: success\n")
        pmi = _Traced(pmi, method)
    return pmi


def _method_of(pmi):
    name = type(pmi).__name__
    return {"PMIClient": "simple", "PMI2Client": "simple", "LibPMI2Client": "libpmi2",
            "LibPMIClient": "libpmi"}.get(name, name)


def _name(pmi):
    """The PMI KVS name (the launcher's job name), where the client knows it."""
    kvsname = getattr(pmi, "kvsname", None)
    try:
        value = kvsname() if callable(kvsname) else kvsname
    except (RuntimeError, OSError):
        value = None
    if isinstance(value, bytes):
        value = value.decode(errors="replace")
    return value or getattr(pmi, "jobid", None) or "singleton"


def _barrier(pmi, args, label):
    pmi.barrier()  # task launch stragglers do not skew the timing
    if args.test_abort >= 0 and pmi.rank == args.test_abort:
        pmi.abort(1, f"flux-pmi: rank {pmi.rank} is aborting")
    for _ in range(args.test_count):
        t0 = time.monotonic()
        pmi.barrier()
        if pmi.rank == 0:
            print(f"{label}: completed pmi barrier on {pmi.size} tasks in {time.monotonic() - t0:.3f}s.", flush=True)


def _exchange(pmi, args, label):
    name = _name(pmi.pmi if isinstance(pmi, _Traced) else pmi)
    pmi.barrier()
    for _ in range(args.count):
        t0 = time.monotonic()
        pmi.put(f"key.{pmi.rank}", f"{name}-{pmi.rank}-{pmi.size}")
        pmi.barrier()
        for rank in range(pmi.size):
            got = pmi.get(f"key.{rank}")
            if got != f"{name}-{rank}-{pmi.size}":
                raise RuntimeError(f"get key.{rank}: returned unexpected value {got!r}")
        pmi.barrier()
        if pmi.rank == 0:
            print(f"{label}: completed pmi exchange on {pmi.size} tasks in {time.monotonic() - t0:.3f}s.", flush=True)
