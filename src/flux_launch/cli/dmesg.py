"""``flux dmesg [-C] [-c] [-f] [-n] [-H [-d]] [-L[WHEN]]``: print the broker's log
ring buffer (``log.dmesg``), as flux-core's: ``TIME appname.severity[rank]:
message``, the time ISO 8601, or with ``-H`` the minute as ``[Dec06 13:20]`` and
then offsets ``[  +0.012345]``. ``-f`` follows new entries, ``-n`` shows only
new ones, ``-c`` clears after printing, ``-C`` only clears (``log.clear``).

``flux logger [--severity=SEV] [--appname=NAME] MESSAGE...``: append a message to
the log (``log.append``)."""

import sys
import time

from flux_launch.cli.base import Parser, handle

_COLORS = {"name": "\033[33m", "time": "\033[32m", "break": "\033[1m\033[32m", 0: "\033[7m\033[31m",
           1: "\033[7m\033[31m", 2: "\033[1m\033[31m", 3: "\033[31m", 4: "\033[1m", 7: "\033[34m"}
_RESET = "\033[0m"


class _Human:
    """flux-core's --human times: a new minute as ``[Dec06 13:20]``, then offsets."""

    def __init__(self, delta):
        self.delta = delta
        self.last_minute = None
        self.last = 0.0

    def __call__(self, ts, color):
        tm = time.localtime(ts)
        minute = tm[:5]
        if minute == self.last_minute:
            text = f"[{ts - self.last:+11.6f}]"
            if self.delta:
                self.last = ts
            return color("time", text)
        self.last_minute, self.last = minute, ts
        return color("break", time.strftime("[%b%d %H:%M]", tm))


def _iso(ts, color):
    return color("time", time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(ts)) + f".{int(ts % 1 * 1e6):06d}Z")


def main(cmd, argv):
    if cmd == "logger":
        return _logger(argv)
    p = Parser(cmd, description="Print or control the broker's log ring buffer.")
    p.add_argument("-C", "--clear", action="store_true", help="clear the ring buffer")
    p.add_argument("-c", "--read-clear", action="store_true", help="clear the ring buffer after printing")
    p.add_argument("-f", "--follow", action="store_true", help="track new entries as they are logged")
    p.add_argument("-n", "--new", action="store_true", help="show only new log messages")
    p.add_argument("-H", "--human", action="store_true", help="human readable output")
    p.add_argument("-d", "--delta", action="store_true", help="with --human, show the time between messages")
    p.add_argument("-L", "--color", nargs="?", const="always", default="auto", metavar="WHEN",
                   help="colorize output: always (if WHEN is omitted), never or auto (default)")
    args = p.parse_args(argv)
    if args.color not in ("always", "never", "auto"):
        sys.stderr.write(f"flux-dmesg: Invalid argument to --color: '{args.color}'\n")
        return 1
    if args.delta and not args.human:
        sys.stderr.write("flux-dmesg: --delta can only be used with --human\n")
        return 1
    on = args.color == "always" or (args.color == "auto" and sys.stdout.isatty())

    def color(kind, text):
        code = _COLORS.get(kind, "") if on else ""
        return f"{code}{text}{_RESET}" if code else text

    from flux_launch.broker.log import SEVERITIES
    from flux_launch.client.handle import STREAMING

    h = handle()
    stamp = _Human(args.delta) if args.human else _iso
    if not args.clear:
        fut = h.rpc("log.dmesg", {"follow": args.follow, "nobacklog": args.new}, flags=STREAMING)
        try:
            for e in fut:
                pri = e.get("pri", 7)
                sev = SEVERITIES[pri] if isinstance(pri, int) and 0 <= pri <= 7 else "debug"
                name = color("name", f"{e.get('appname', 'broker')}.{sev}[{e.get('rank', 0)}]")
                sys.stdout.write(f"{stamp(e.get('timestamp', 0.0), color)} {name}: "
                                 f"{color(pri, e.get('message', ''))}\n")
                if args.follow:
                    sys.stdout.flush()
        except OSError as exc:
            sys.stderr.write(f"flux-dmesg: log.dmesg: {exc.strerror}\n")
            return 1
        except KeyboardInterrupt:
            return 0
        sys.stdout.flush()
    if args.clear or args.read_clear:
        h.rpc("log.clear", {}).get()
    return 0


def _logger(argv):
    p = Parser("logger", description="Append a message to the broker's log.")
    p.add_argument("-s", "--severity", default="notice", help="severity (name or 0-7, default notice)")
    p.add_argument("-n", "--appname", default="logger", help="application name (default logger)")
    p.add_argument("message", nargs="+", help="the message")
    args = p.parse_args(argv)
    from flux_launch.broker.log import severity

    try:
        pri = severity(args.severity)
        if not 0 <= pri <= 7:
            raise ValueError(f"severity {pri} is out of range 0-7")
    except ValueError as exc:
        sys.stderr.write(f"flux-logger: {exc}\n")
        return 1
    h = handle()
    h.rpc("log.append", {"entry": {"pri": pri, "appname": args.appname, "message": " ".join(args.message),
                                   "timestamp": time.time()}}).get()
    return 0
