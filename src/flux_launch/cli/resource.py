"""``flux resource list|info|R|status|drain|undrain|reload``: the instance's
resources as the scheduler sees them (free, allocated, down) and as the
administrator does (avail, draining, drained, offline), draining nodes and
reloading the inventory; names, options and layouts are flux-core's
(flux-resource(1)).

``list`` counts a drained node ``down`` (the scheduler view: it cannot be used
now), ``status`` and ``drain`` show it ``draining`` while jobs still run on it and
``drained`` after; an offline node's state gets a ``*``.
"""

import os
import sys

from flux_launch.cli.base import Parser, handle
from flux_launch.cli.outfmt import OutputFormat, named

LIST_FORMATS = {
    "default": ("Default flux-resource list format string",
                "{state:>10} ?:{queue:<10.10} ?:{propertiesx:<10.10+} {nnodes:>6} {ncores:>8} ?:{ngpus:>8} "
                "{nodelist}"),
    "rlist": ("Format including resource list details",
              "{state:>10} ?:{queue:<8.8} ?:{propertiesx:<10.10+} {nnodes:>6} {ncores:>8} {ngpus:>8} {rlist}"),
}
STATUS_FORMATS = {
    "default": ("Default flux-resource status format string", "{state:>10} {up:>2} {nnodes:>6} {nodelist}"),
    "long": ("Long flux-resource status format string",
             "{state:>10} {up:>2} {nnodes:>6} {reason:<30.30+} {nodelist}"),
}
DRAIN_FORMATS = {
    "default": ("Default flux-resource drain format string",
                "{timestamp!d:%b%d %R::<12} {state:<8.8} {reason:<30.30+} {nodelist}"),
    "long": ("Long flux-resource drain format string",
             "{timestamp!d:%FT%T::<20} {state:<8.8} {ranks:<8.8+} {reason:<30.30+} {nodelist}"),
}
LIST_HEADINGS = {"state": "STATE", "queue": "QUEUE", "properties": "PROPERTIES", "propertiesx": "PROPERTIES",
                 "nnodes": "NNODES", "ncores": "NCORES", "ngpus": "NGPUS", "ranks": "RANKS",
                 "nodelist": "NODELIST", "rlist": "LIST"}
STATUS_HEADINGS = {"state": "STATE", "statex": "STATE", "nnodes": "NNODES", "ranks": "RANKS",
                   "nodelist": "NODELIST", "reason": "REASON", "timestamp": "TIME", "status": "STATUS",
                   "up": "UP", "up.ascii": "UP", "color_up": "", "color_off": ""}
LIST_STATES = ("up", "down", "allocated", "free", "all")
STATUS_STATES = ("all", "online", "avail", "offline", "exclude", "drain", "draining", "drained")
STATUS_DEFAULT = "avail,exclude,draining,drained"


def main(cmd, argv):
    p = Parser(cmd)
    sub = p.add_subparsers(dest="sub", required=True, metavar="{list,info,R,status,drain,undrain,reload}")
    ls = sub.add_parser("list", help="list resources by state (the scheduler view)")
    ls.add_argument("-s", "--states", default="free,allocated,down", metavar="STATE,...",
                    help="states to show: " + ",".join(LIST_STATES))
    ls.add_argument("-o", "--format", default=os.environ.get("FLUX_RESOURCE_LIST_FORMAT_DEFAULT", "default"),
                    help="output format (a name or a format string; 'help' lists the names)")
    ls.add_argument("-i", "--include", metavar="TARGETS", help="only these ranks or hosts")
    ls.add_argument("-n", "--no-header", action="store_true", help="no header")
    ls.add_argument("-v", "--verbose", action="store_true", help="also say how each rank found its resources")
    info = sub.add_parser("info", help="one line: nodes, cores and GPUs")
    info.add_argument("-s", "--states", default="all", metavar="STATE,...")
    info.add_argument("-i", "--include", metavar="TARGETS")
    rr = sub.add_parser("R", help="the resources as an R document (RFC 20)")
    rr.add_argument("-s", "--states", default="all", metavar="STATE,...")
    rr.add_argument("-i", "--include", metavar="TARGETS")
    st = sub.add_parser("status", help="show nodes by administrative state (avail, drained...)")
    _status_opts(st)
    st.add_argument("-s", "--states", metavar="STATE,...", help="states to show: " + ",".join(STATUS_STATES))
    st.add_argument("--skip-empty", action="store_true", help="skip empty lines even with --states")
    dr = sub.add_parser("drain", help="drain nodes (no targets: list the drained ones)")
    dr.add_argument("-f", "--force", action="count", default=0,
                    help="overwrite the reason of nodes already drained (twice: the timestamp too)")
    dr.add_argument("-u", "--update", action="store_true", help="leave nodes already drained as they are")
    _status_opts(dr)
    dr.add_argument("targets", nargs="?", help="ranks (an idset) or hosts (a hostlist)")
    dr.add_argument("reason", nargs="*", help="why (recorded with the drain)")
    ud = sub.add_parser("undrain", help="make drained nodes schedulable again")
    ud.add_argument("-f", "--force", action="store_true", help="do not fail on nodes that are not drained")
    ud.add_argument("targets", help="ranks (an idset) or hosts (a hostlist)")
    ud.add_argument("reason", nargs="*", help="why (recorded with the undrain)")
    rl = sub.add_parser("reload", help="reload the resource inventory (no job may be running)")
    rl.add_argument("-x", "--xml", action="store_true", help="PATH is a directory of hwloc <rank>.xml files")
    rl.add_argument("-f", "--force", action="store_true", help="leave out ranks the instance does not have")
    rl.add_argument("path", help="an R document (RFC 20), or with -x a directory of <rank>.xml")
    args = p.parse_args(argv)
    return {"list": _list, "info": _info, "R": _R, "status": _status, "drain": _drain, "undrain": _undrain,
            "reload": _reload}[args.sub](args)


def _status_opts(sp):
    sp.add_argument("-o", "--format", default=None, help="output format (a name or a format string; 'help' "
                    "lists the names)")
    sp.add_argument("-i", "--include", metavar="TARGETS", help="only these ranks or hosts")
    sp.add_argument("-n", "--no-header", action="store_true", help="no header")
    sp.add_argument("-L", "--color", nargs="?", const="always", default="auto", choices=("never", "always", "auto"),
                    metavar="WHEN", help="accepted for flux-core's command lines; output is never colored")


def _rpc0(topic, payload=None):
    with handle() as h:
        return h.rpc(topic, payload or {}, nodeid=0).get()


def _included(spec, nodes):
    """The ranks of ``nodes`` (``[{rank, hostname}]``) that ``-i TARGETS`` names
    (an idset or a hostlist; names the instance lacks are not an error)."""
    if spec is None:
        return None
    from flux_launch.core.hostlist import Hostlist
    from flux_launch.core.idset import decode

    try:
        return set(decode(spec))
    except ValueError:
        pass
    try:
        hosts = set(Hostlist(spec))
    except ValueError as exc:
        raise ValueError(f"-i/--include: {spec!r} is neither an idset of ranks nor a hostlist: {exc}") from None
    return {n["rank"] for n in nodes if n["hostname"] in hosts}


def _states(text, valid):
    states = [s for s in text.split(",") if s]
    for s in states:
        if s not in valid:
            raise ValueError(f"Invalid resource state {s} specified (valid states: {','.join(valid)})")
    return states


# ---- list / info: the scheduler view ----------------------------------------------

def _rlist(parts):
    """flux-core's short form: ``rank[0-3]/core[0-1],gpu0`` per group of like ranks."""
    from flux_launch.core.idset import IDset

    groups = {}
    for rank, core, gpu in parts:
        groups.setdefault((core, gpu), []).append(rank)
    out = []

    def ids(name, s):
        return f"{name}{s}" if s.isdigit() else f"{name}[{s}]"

    for (core, gpu), ranks in sorted(groups.items(), key=lambda kv: kv[1][0]):
        text = ids("rank", str(IDset(ranks))) + "/" + ",".join(ids(n, s) for n, s in (("core", core), ("gpu", gpu))
                                                                 if s)
        out.append(text)
    return " ".join(out)


def _list_rows(status, states, fields, include):
    from flux_launch.core.hostlist import Hostlist
    from flux_launch.core.idset import IDset, decode

    uniq = [f for f in ("state", "properties", "propertiesx", "queue") if f in fields] \
        if len(fields) > 1 or "state" in fields else []
    lines = {}
    for state in states:
        found = False
        for n in status["nodes"]:
            if include is not None and n["rank"] not in include:
                continue
            usable = n["up"] and not n["drained"]
            core, gpu = n["core"], n["gpu"]
            if state == "free":
                core, gpu = n["free_core"], n["free_gpu"]
            elif state == "allocated":
                free_c, free_g = set(decode(n["free_core"])), set(decode(n["free_gpu"]))
                core = str(IDset(i for i in decode(n["core"]) if i not in free_c))
                gpu = str(IDset(i for i in decode(n["gpu"]) if i not in free_g))
            if (state == "up" and not usable) or (state == "down" and usable) \
                    or (state == "free" and (not usable or not (core or gpu))) \
                    or (state == "allocated" and not (core or gpu)):
                continue
            found = True
            props = ",".join(n.get("properties") or ())
            row = {"state": state, "queue": "", "properties": props, "propertiesx": props}
            key = tuple(row[f] for f in uniq)
            line = lines.setdefault(key, {**row, "ranks": [], "hosts": [], "ncores": 0, "ngpus": 0, "parts": []})
            line["ranks"].append(n["rank"])
            line["hosts"].append(n["hostname"])
            line["ncores"] += len(decode(core))
            line["ngpus"] += len(decode(gpu))
            line["parts"].append((n["rank"], core, gpu))
        if not found:  # a state with nothing in it still gets its line
            row = {"state": state, "queue": "", "properties": "", "propertiesx": ""}
            lines.setdefault(tuple(row[f] for f in uniq),
                             {**row, "ranks": [], "hosts": [], "ncores": 0, "ngpus": 0, "parts": []})
    rows = []
    for line in lines.values():
        ranks = sorted(set(line["ranks"]))
        rows.append({**line, "nnodes": len(ranks), "ranks": str(IDset(ranks)),
                     "nodelist": str(Hostlist(h for r, h in sorted(set(zip(line["ranks"], line["hosts"]))))),
                     "rlist": _rlist(line["parts"])})
    return rows


def _list(args):
    states = _states(args.states, LIST_STATES)
    fmt = OutputFormat(named(args.format, LIST_FORMATS, "flux-resource list"), LIST_HEADINGS)
    status = _rpc0("sched.resource-status")
    rows = _list_rows(status, states, fmt.fields, _included(args.include, status["nodes"]))
    fmt.print_rows(rows, args.no_header)
    if args.verbose:
        for rank, source in sorted(status.get("sources", {}).items(), key=lambda kv: int(kv[0])):
            print(f"rank {rank}: {source}")
    return 0


def _info(args):
    states = _states(args.states, LIST_STATES)
    status = _rpc0("sched.resource-status")
    fmt = OutputFormat("{nnodes} Nodes, {ncores} Cores, {ngpus} GPUs", LIST_HEADINGS)
    fmt.print_rows(_list_rows(status, states, fmt.fields, _included(args.include, status["nodes"])), True)
    return 0


def _R(args):
    import json

    from flux_launch.proto import rv1

    states = _states(args.states, LIST_STATES)
    status = _rpc0("sched.resource-status")
    fields = ["state", "properties"]
    ranks, hosts, props = {}, {}, {}
    for row in _list_rows(status, states, fields, _included(args.include, status["nodes"])):
        for rank, core, gpu in row["parts"]:
            have = ranks.setdefault(rank, {"core": set(), "gpu": set()})
            have["core"].update(_ids(core))
            have["gpu"].update(_ids(gpu))
    for n in status["nodes"]:
        hosts[n["rank"]] = n["hostname"]
        for prop in n.get("properties") or ():
            if n["rank"] in ranks:
                props.setdefault(prop, []).append(n["rank"])
    nodelist = [hosts[r] for r in sorted(ranks)]
    R = rv1.encode({r: {"core": sorted(v["core"]), "gpu": sorted(v["gpu"])} for r, v in ranks.items()},
                   nodelist if all(nodelist) else None, properties=props or None)
    print(json.dumps(R, separators=(",", ":")))
    return 0


def _ids(text):
    from flux_launch.core.idset import decode

    return list(decode(text)) if text else []


# ---- status / drain: the administrative view ---------------------------------------

def _status_lines(nodes, states, fields, include_online, include_offline):
    from flux_launch.core.hostlist import Hostlist
    from flux_launch.core.idset import IDset

    lines = {}  # rows of like fields (ranks, nodelist and nnodes aside) are one line

    def add(state, online, node=None, drain=None):
        row = {"statex": state, "state": state + ("" if online else "*"), "status":
               "online" if online else "offline", "up": "✔" if online else "✗", "up.ascii": "y" if online else "n",
               "color_up": "", "color_off": "", "reason": (drain or {}).get("reason") or "",
               "timestamp": round((drain or {}).get("timestamp") or 0)}
        key = tuple(row[f] for f in fields if f not in ("nodelist", "ranks", "nnodes")) + (state, online)
        line = lines.setdefault(key, {**row, "_nodes": []})
        if node is not None:
            line["_nodes"].append(node)

    want = set(states)
    for state in ("avail", "exclude"):
        if not want & {state, "all"}:
            continue
        for online in (True, False):
            if (online and not include_online) or (not online and not include_offline):
                continue
            add(state, online)
            if state == "avail":
                for n in nodes:
                    if not n["drained"] and n["online"] == online:
                        add(state, online, n)
    for state in ("draining", "drained"):
        if not want & {state, "all", "drain"}:
            continue
        picked = [n for n in nodes if n["drained"] and n["allocated"] == (state == "draining")]
        if not picked and include_online:
            add(state, True)
        for n in picked:
            if (n["online"] and include_online) or (not n["online"] and include_offline):
                add(state, n["online"], n, n)
    rows = []
    for line in lines.values():
        ns = sorted(line.pop("_nodes"), key=lambda n: n["rank"])
        rows.append({**line, "nnodes": len(ns), "ranks": str(IDset(n["rank"] for n in ns)),
                     "nodelist": str(Hostlist(n["hostname"] for n in ns)), "_offline": line["status"] == "offline"})
    return rows


def _status(args, formats=STATUS_FORMATS, env="FLUX_RESOURCE_STATUS_FORMAT_DEFAULT", drain_list=False):
    if args.states == "help":
        print(f"valid states: {','.join(STATUS_STATES)}", file=sys.stderr)
        return 0
    states = _states(args.states or STATUS_DEFAULT, STATUS_STATES)
    if not [s for s in states if s not in ("online", "offline")]:
        states += STATUS_DEFAULT.split(",")
    fmt_text = named(args.format or os.environ.get(env) or "default", formats,
                     "flux-resource drain" if drain_list else "flux-resource status")
    fmt = OutputFormat(fmt_text, STATUS_HEADINGS)
    nodes = _rpc0("resource.status")["nodes"]
    include = _included(args.include, nodes)
    if include is not None:
        nodes = [n for n in nodes if n["rank"] in include]
    include_online = "online" in states or "offline" not in states
    include_offline = "offline" in states or "online" not in states
    skip_empty = args.skip_empty or not args.states
    rows = [r for r in _status_lines(nodes, states, fmt.fields, include_online, include_offline)
            if r["nnodes"] or not (skip_empty or (r["_offline"] and "offline" not in states))]
    fmt.print_rows(rows, args.no_header)
    return 0


def _drain(args):
    if args.targets is None:
        args.states, args.skip_empty = "drain", True
        return _status(args, DRAIN_FORMATS, "FLUX_RESOURCE_DRAIN_FORMAT_DEFAULT", drain_list=True)
    if args.update and args.force:
        raise ValueError("Only one of --force and --update may be specified")
    payload = {"targets": args.targets}
    if args.update:
        payload["mode"] = "update"
    elif args.force:
        payload["mode"] = "overwrite" if args.force == 1 else "force-overwrite"
    if args.reason:
        payload["reason"] = " ".join(args.reason)
    _rpc0("resource.drain", payload)
    return 0


def _undrain(args):
    payload = {"targets": args.targets}
    if args.force:
        payload["mode"] = "force"
    if args.reason:
        payload["reason"] = " ".join(args.reason)
    _rpc0("resource.undrain", payload)
    return 0


def _reload(args):
    path = os.path.realpath(args.path)
    if not os.path.exists(path):
        raise ValueError(f"{args.path}: no such file or directory")
    if args.xml and not os.path.isdir(path):
        raise ValueError(f"{args.path}: not a directory (-x wants a directory of <rank>.xml files)")
    _rpc0("resource.reload", {"path": path, "xml": args.xml, "force": args.force})
    return 0
