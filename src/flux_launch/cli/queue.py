"""``flux queue drain [-t TIMEOUT]``: wait until no job is pending or running."""

from flux_launch.cli.base import Parser, handle


def main(cmd, argv):
    p = Parser(cmd)
    sub = p.add_subparsers(dest="sub", required=True)
    d = sub.add_parser("drain", help="wait until the queue is empty and no job runs")
    d.add_argument("-t", "--timeout", help="give up after this long (FSD)")
    args = p.parse_args(argv)
    timeout = None
    if args.timeout:
        from flux_launch.core import fsd

        timeout = fsd.parse(args.timeout)
    h = handle()
    try:
        h.rpc("job-manager.drain", {}).get(timeout=timeout)
    except TimeoutError:
        raise OSError(110, f"queue not drained after {args.timeout}") from None
    return 0
