"""``flux R SUBCOMMAND``: make, combine and read RFC 20 resource sets (R version 1),
as flux-core's flux-R(1). Sets are read from standard input as a stream of JSON
objects (``flux job info ID R``, ``flux resource R``, ``flux R encode``...); the
result is printed as one compact R object.

- ``encode [-r IDSET] [-c IDS] [-g IDS] [-H HOSTS] [-p NAME[:RANKS]]... [-l | -f XML]``:
  a set of ranks IDSET (default: as many as HOSTS, else rank 0), each with cores
  IDS (default ``0``, none when only ``-g`` is given) and GPUs IDS, named HOSTS
  (default: this host's name for each), with properties; ``-l``/``-f`` take each
  rank's cores and GPUs from this machine's or an XML file's hwloc topology.
- ``append``: the union of sets that must not overlap; ``diff``: the first set less
  the others; ``intersect``: what all sets share; ``remap``: the union with ranks
  renumbered from 0; ``rerank HOSTLIST``: the union with each host's rank its index
  in HOSTLIST.
- ``decode [-i RANKS] [-x RANKS] [-p PROP,...] [-s] [-n] [-r] [-c node|core|gpu]``:
  the union, restricted, then shown short (``rank[0-1]/core[0-3],gpu0``), as a
  nodelist, ranks or a count, or as R.
- ``verify``: two sets, expected then actual: fails (exit 1) if a rank of the actual
  set is not expected, has another host name, or lacks expected resources; extra
  resources are reported but pass.
- ``set-property NAME[:RANKS]...``: the set with those properties (all its ranks by
  default).

Errors, one line each, exit 1: input that is not R, an overlap on append, fewer
sets than an operation needs, a host or rank that does not fit; exit 2 for a bad
command line.
"""

import json
import socket
import sys

from flux_launch.cli.base import Parser
from flux_launch.core.hostlist import Hostlist
from flux_launch.core.idset import IDset
from flux_launch.proto import rv1


class RError(ValueError):
    pass


def _parser():
    p = Parser("R", description="Read, make and combine RFC 20 resource sets (R).", usage="flux R SUBCOMMAND ...")
    sub = p.add_subparsers(dest="sub", metavar="SUBCOMMAND")
    sub.required = True
    e = sub.add_parser("encode", help="make an R")
    e.add_argument("-r", "--ranks", metavar="IDSET", help="the ranks (default: one per host, or rank 0)")
    e.add_argument("-c", "--cores", metavar="IDS", help="core ids of each rank (default 0)")
    e.add_argument("-g", "--gpus", metavar="IDS", help="GPU ids of each rank (default none)")
    e.add_argument("-H", "--hosts", metavar="HOSTS", help="host names of the ranks (default: this host's)")
    e.add_argument("-p", "--property", action="append", default=[], metavar="NAME[:RANKS]",
                   help="a property of RANKS (default all); repeatable")
    src = e.add_mutually_exclusive_group()
    src.add_argument("-l", "--local", action="store_true", help="each rank's resources from this machine (hwloc)")
    src.add_argument("-f", "--xml", metavar="FILE", help="each rank's resources from an hwloc XML file")
    for name, text in (("append", "the union of sets that do not overlap"),
                       ("diff", "the first set less the others"),
                       ("intersect", "the resources all sets share"),
                       ("remap", "the union, ranks renumbered from 0"),
                       ("verify", "check that the second set has the first's resources on its ranks")):
        sub.add_parser(name, help=text)
    r = sub.add_parser("rerank", help="the union, each host's rank its index in HOSTLIST")
    r.add_argument("hostlist", metavar="HOSTLIST")
    d = sub.add_parser("decode", help="the union, shown")
    d.add_argument("-s", "--short", action="store_true", help="short form: rank[0-1]/core[0-3],gpu0")
    d.add_argument("-n", "--nodelist", action="store_true", help="the host names, as a hostlist")
    d.add_argument("-r", "--ranks", action="store_true", help="the ranks, as an idset")
    d.add_argument("-c", "--count", metavar="TYPE", choices=("node", "core", "gpu", "ranks"),
                   help="the count of node, core or gpu")
    d.add_argument("-i", "--include", metavar="RANKS", help="only these ranks")
    d.add_argument("-x", "--exclude", metavar="RANKS", help="not these ranks")
    d.add_argument("-p", "--properties", metavar="LIST", help="only ranks with all these properties (^P: without)")
    s = sub.add_parser("set-property", help="set properties of ranks")
    s.add_argument("props", nargs="+", metavar="NAME[:RANKS]")
    return p


def main(cmd, argv):
    p = _parser()
    args = p.parse_args(argv)
    try:
        if args.sub == "encode":
            rs = _encode(args)
        elif args.sub == "verify":
            return _verify(_read(2, exactly=True))
        else:
            rs = _RUN[args.sub](args)
    except RError as exc:
        sys.stderr.write(f"flux-R: {exc}\n")
        return 1
    if rs is not None:
        print(json.dumps(rv1.encode(rs), separators=(",", ":")))
    return 0


# ---- input -----------------------------------------------------------------------

def _read(minimum=1, exactly=False, what=None):
    """The R objects on stdin, decoded."""
    text = sys.stdin.read()
    dec = json.JSONDecoder()
    sets, pos = [], 0
    while True:
        while pos < len(text) and text[pos].isspace():
            pos += 1
        if pos >= len(text):
            break
        try:
            obj, pos = dec.raw_decode(text, pos)
        except json.JSONDecodeError as exc:
            raise RError(f"R object {len(sets) + 1} on stdin is not JSON: {exc.msg} at char {exc.pos}") from None
        try:
            sets.append(rv1.decode(obj))
        except ValueError as exc:
            raise RError(f"R object {len(sets) + 1} on stdin: {exc}") from None
    if not sets:
        raise RError("no R object on stdin (pipe in flux job info ID R, flux resource R or flux R encode)")
    if exactly and len(sets) != minimum:
        raise RError(f"{what or 'verify'} requires exactly {minimum} R objects on stdin, got {len(sets)}")
    if len(sets) < minimum:
        raise RError(f"{what} requires at least {minimum} resource sets on stdin, got {len(sets)}")
    return sets


def _union(sets):
    out = sets[0]
    for other in sets[1:]:
        out = out.union(other)
    return out


# ---- subcommands -------------------------------------------------------------------

def _ids(text, opt):
    try:
        return list(IDset(text)) if text else []
    except ValueError:
        raise RError(f"{opt}={text}: not an idset (e.g. 0-3,7)") from None


def _encode(args):
    if (args.cores or args.gpus) and (args.local or args.xml):
        raise RError("do not give --cores or --gpus with --local or --xml")
    cores = _ids(args.cores if args.cores or args.gpus else "0", "--cores")
    gpus = _ids(args.gpus, "--gpus")
    if args.hosts is not None:
        try:
            hosts = list(Hostlist(args.hosts))
        except ValueError as exc:
            raise RError(f"--hosts: invalid hostlist {args.hosts!r}: {exc}") from None
    if args.ranks is not None:
        ranks = _ids(args.ranks, "--ranks")
        if args.hosts is None:
            hosts = [socket.gethostname()] * len(ranks)
        elif len(hosts) != len(ranks):
            raise RError(f"hostname count in '{args.hosts}' does not match nranks ({len(ranks)})")
    else:
        if args.hosts is None:
            hosts = [socket.gethostname()]
        ranks = list(range(len(hosts)))
    if args.local or args.xml:
        from flux_launch.resource import TopologyError, discover

        try:
            topo = discover(args.xml)
        except TopologyError as exc:
            raise RError(str(exc)) from None
        cores, gpus = list(range(topo["ncores"])), list(range(len(topo["gpus"])))
    rs = rv1.ResourceSet({r: {"core": cores, "gpu": gpus} for r in ranks}, hosts)
    return _set_properties(rs, args.property)


def _set_properties(rs, specs):
    props = {k: list(v) for k, v in rs.properties.items()}
    for spec in specs:
        name, colon, ranks = spec.partition(":")
        if not name or (colon and not ranks):
            raise RError(f"property {spec!r}: give NAME or NAME:RANKS (e.g. debug:0-1)")
        ids = _ids(ranks, f"property {name}") if colon else list(rs.ranks)
        missing = [r for r in ids if r not in rs.ranks]
        if missing:
            raise RError(f"failed to assign properties: rank {missing[0]} of property {name!r} is not in the set "
                         f"(ranks {IDset(rs.ranks).encode()})")
        props[name] = sorted(set(props.get(name, [])) | set(ids))
    if not specs:
        return rs
    try:
        return rv1.ResourceSet(rs.ranks, rs.nodelist, rs.starttime, rs.expiration, props)
    except ValueError as exc:
        raise RError(f"failed to assign properties: {exc}") from None


def _append(args):
    sets = _read(1, what="append")
    out = sets[0]
    for other in sets[1:]:
        if out.intersection(other).ranks:
            raise RError(f"R objects '{short(out)}' and '{short(other)}' overlap")
        out = out.union(other)
    return out


def _fold(name, op):
    def run(args):
        sets = _read(2, what=name)
        out = sets[0]
        for other in sets[1:]:
            out = getattr(out, op)(other)
        return out
    return run


def _remap(args):
    return rv1.rerank(_union(_read(1, what="remap")))


def _rerank(args):
    rs = _union(_read(1, what="rerank"))
    try:
        order = list(Hostlist(args.hostlist))
    except ValueError as exc:
        raise RError(f"invalid hostlist {args.hostlist!r}: {exc}") from None
    hosts = rs.hosts()
    if not hosts:
        raise RError("the R on stdin has no nodelist: nothing to rerank by")
    if len(order) > rs.nnodes:
        raise RError(f"Too many hosts specified (expected {rs.nnodes})")
    if len(order) < rs.nnodes:
        raise RError(f"Too few hosts specified (expected {rs.nnodes})")
    by_host = {h: r for r, h in hosts.items()}
    missing = [h for h in order if h not in by_host]
    if missing or len(set(order)) != len(order):
        raise RError(f"failed to find one or more provided hosts in R ({', '.join(missing) or 'a host twice'})")
    new = {by_host[h]: i for i, h in enumerate(order)}
    return rv1.ResourceSet({new[r]: c for r, c in rs.ranks.items()}, [hosts[r] for r in sorted(new, key=new.get)],
                           rs.starttime, rs.expiration,
                           {n: [new[r] for r in rl] for n, rl in rs.properties.items()})


def _restrict(rs, keep):
    keep = [r for r in rs.ranks if r in keep]
    hosts = rs.hosts()
    return rv1.ResourceSet({r: rs.ranks[r] for r in keep}, [hosts[r] for r in keep] if hosts else None,
                           rs.starttime, rs.expiration,
                           {n: [r for r in rl if r in keep] for n, rl in rs.properties.items()})


def _decode(args):
    rs = _union(_read(1, what="decode"))
    if args.properties:
        keep = set(rs.ranks)
        for prop in args.properties.split(","):
            neg = prop.startswith("^")
            have = set(rs.properties.get(prop.lstrip("^"), ()))
            keep &= (set(rs.ranks) - have) if neg else have
        rs = _restrict(rs, keep)
    if args.include is not None:
        rs = _restrict(rs, set(_ids(args.include, "--include")))
    if args.exclude is not None:
        rs = _restrict(rs, set(rs.ranks) - set(_ids(args.exclude, "--exclude")))
    lines = []
    if args.short:
        lines.append(short(rs))
    if args.nodelist:
        lines.append(str(Hostlist(rs.nodelist)) if rs.nodelist else "")
    if args.ranks:
        lines.append(IDset(rs.ranks).encode())
    if args.count:
        lines.append(str({"node": rs.nnodes, "ranks": rs.nnodes, "core": rs.ncores, "gpu": rs.ngpus}[args.count]))
    if not lines:
        return rs
    print("\n".join(lines))
    return None


def _set_property(args):
    return _set_properties(_union(_read(1, what="set-property")), args.props)


def _verify(sets):
    expected, actual = sets
    hosts_e, hosts_a = expected.hosts(), actual.hosts()
    errors, extra = [], []
    for rank, have in actual.ranks.items():
        want = expected.ranks.get(rank)
        where = f"rank {rank}" + (f" ({hosts_a[rank]})" if rank in hosts_a else "")
        if want is None:
            errors.append(f"{where}: not in the expected ranks ({IDset(expected.ranks).encode()})")
            continue
        if rank in hosts_a and rank in hosts_e and hosts_a[rank] != hosts_e[rank]:
            errors.append(f"{where}: got hostname {hosts_a[rank]}, expected {hosts_e[rank]}")
        missing = _kids({k: sorted(set(want[k]) - set(have[k])) for k in ("core", "gpu")})
        if missing:
            errors.append(f"{where} missing resources: {missing}")
        more = _kids({k: sorted(set(have[k]) - set(want[k])) for k in ("core", "gpu")})
        if more:
            extra.append(f"{where} has extra resources: {more}")
    for line in errors or extra:
        sys.stderr.write(f"flux-R: {line}\n")
    return 1 if errors else 0


_RUN = {"append": _append, "diff": _fold("diff", "difference"), "intersect": _fold("intersect", "intersection"),
        "remap": _remap, "rerank": _rerank, "decode": _decode, "set-property": _set_property}


# ---- short form ----------------------------------------------------------------------

def _kids(children):
    parts = []
    for kind in ("core", "gpu"):
        ids = children.get(kind) or []
        if ids:
            text = IDset(ids).encode()
            parts.append(f"{kind}{text}" if "," not in text and "-" not in text else f"{kind}[{text}]")
    return ",".join(parts)


def short(rs):
    """flux-core's short form: ``rank[0-1]/core[0-3],gpu0 rank2/core0`` (ranks with the
    same children grouped)."""
    groups = {}
    for rank, children in rs.ranks.items():
        groups.setdefault(_kids(children), []).append(rank)
    out = []
    for kids, ranks in groups.items():
        text = IDset(ranks).encode()
        r = f"rank{text}" if "," not in text and "-" not in text else f"rank[{text}]"
        out.append(f"{r}/{kids}" if kids else r)
    return " ".join(out)
