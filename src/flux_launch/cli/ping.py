"""``flux ping [-c COUNT] [-i SECONDS] [-p BYTES] TARGET``: time requests to a broker.

TARGET is a rank, ``RANK!SERVICE`` or a service name (default service ``broker``,
method ``ping``). Each answer prints ``RANK!TOPIC pad=N seq=N time=MS ms (ROUTE)``.
"""

import time

from flux_launch.cli.base import Parser, handle


def main(cmd, argv):
    p = Parser(cmd)
    p.add_argument("-c", "--count", type=int, default=0, help="stop after COUNT requests (default: forever)")
    p.add_argument("-i", "--interval", type=float, default=1.0, help="seconds between requests (default 1)")
    p.add_argument("-p", "--pad", type=int, default=0, help="bytes of padding in each request")
    p.add_argument("target", help="rank, RANK!SERVICE or SERVICE")
    args = p.parse_args(argv)
    rank, sep, service = args.target.partition("!")
    if not sep:
        rank, service = (rank, "broker") if rank.isdigit() or rank == "any" else ("any", rank)
    nodeid = -1 if rank == "any" else int(rank)
    topic = f"{service}.ping"
    h = handle()
    pad = "x" * args.pad
    seq = 0
    while True:
        t0 = time.perf_counter()
        resp = h.rpc(topic, {"seq": seq, "pad": pad}, nodeid=nodeid).get()
        ms = (time.perf_counter() - t0) * 1000
        print(f"{resp.get('rank', rank)}!{topic} pad={args.pad} seq={seq} time={ms:.3f} ms "
              f"({resp.get('route', '')})", flush=True)
        seq += 1
        if args.count and seq >= args.count:
            return 0
        time.sleep(args.interval)
