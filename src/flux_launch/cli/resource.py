"""``flux resource list``: nodes, cores and GPUs by state (free, allocated, down)."""

from flux_launch.cli.base import Parser, handle


def main(cmd, argv):
    p = Parser(cmd)
    sub = p.add_subparsers(dest="sub", required=True)
    ls = sub.add_parser("list", help="list resources by state")
    ls.add_argument("-s", "--states", default="free,allocated,down", help="states to show")
    ls.add_argument("-n", "--no-header", action="store_true")
    ls.add_argument("-v", "--verbose", action="store_true", help="also say how each rank found its resources")
    args = p.parse_args(argv)
    h = handle()
    status = h.rpc("sched.resource-status", {}).get()
    lines = [] if args.no_header else [f"{'STATE':>10} {'NNODES':>6} {'NCORES':>8} {'NGPUS':>8} NODELIST"]
    for state in args.states.split(","):
        entry = status.get(state)
        if entry is None:
            p.error(f"unknown state {state!r} (use free, allocated, down)")
        lines.append(f"{state:>10} {entry['nnodes']:>6} {entry['ncores']:>8} {entry['ngpus']:>8} "
                     f"{entry['nodelist']}".rstrip())
    if args.verbose:
        for rank, source in sorted(status.get("sources", {}).items(), key=lambda kv: int(kv[0])):
            lines.append(f"rank {rank}: {source}")
    print("\n".join(lines))
    return 0
