"""``flux event pub [-r] [-s] [-l] [-p] TOPIC [PAYLOAD...]`` and ``flux event sub
[-c N] [TOPIC...]`` (flux-core's flux-event(1)).

``pub`` publishes an event through rank 0 (``event.pub``); the payload words are
joined with one space and read as JSON (an object, array, string, number...),
or taken as text with ``-r``. ``-s`` waits for the sequence number (the command
always waits for rank 0's answer, so ``-s`` changes nothing), ``-l`` subscribes
first and waits to receive its own event, ``-p`` (privacy) is accepted: every
event reaches only the instance's own clients here.

``sub`` subscribes to the topic prefixes given (all events without one) and
prints each event as ``TOPIC<tab>PAYLOAD`` (the payload as compact JSON, raw text
as it is, nothing when there is none), line by line, until interrupted or, with
``-c N``, after N events.
"""

import json
import sys

from flux_launch.cli.base import Parser, handle


def _parser(cmd):
    p = Parser(cmd, description="Publish or subscribe to Flux events.",
               usage="flux event pub [OPTIONS] TOPIC [PAYLOAD...]\n       flux event sub [OPTIONS] [TOPIC...]")
    sub = p.add_subparsers(dest="sub", metavar="pub|sub")
    pub = sub.add_parser("pub", help="publish an event", prog="flux event pub")
    pub.add_argument("-r", "--raw", action="store_true", help="take the payload as raw text, not JSON")
    pub.add_argument("-s", "--synchronous", action="store_true", help="wait for the event's sequence number")
    pub.add_argument("-l", "--loopback", action="store_true", help="wait to receive the published event")
    pub.add_argument("-p", "--private", action="store_true", help="set the privacy flag (accepted; no effect)")
    pub.add_argument("topic", metavar="TOPIC")
    pub.add_argument("payload", nargs="*", metavar="PAYLOAD")
    s = sub.add_parser("sub", help="print events", prog="flux event sub")
    s.add_argument("-c", "--count", type=int, default=0, metavar="N", help="print N events, then exit")
    s.add_argument("topics", nargs="*", metavar="TOPIC")
    return p


def main(cmd, argv):
    p = _parser(cmd)
    args = p.parse_args(argv)
    if args.sub is None:
        p.error("give a subcommand: pub or sub")
    if args.sub == "pub":
        return _pub(args)
    if args.count < 0:
        p.error(f"-c/--count={args.count}: must be >= 0")
    return _sub(args)


def _pub(args):
    text = " ".join(args.payload) if args.payload else None
    payload = text
    if text is not None and not args.raw:
        try:
            payload = json.loads(text)
        except ValueError as exc:
            sys.stderr.write(f"flux-event: payload is not valid JSON ({exc}); use -r for raw text\n")
            return 1
    h = handle()
    if args.loopback:
        h.event_subscribe(args.topic)
    h.rpc("event.pub", {"topic": args.topic, "payload": payload}).get()
    if args.loopback:
        while h.event_recv()[0] != args.topic:  # subscribed by prefix: wait for this very topic
            pass
    return 0


def _format(payload):
    if payload is None:
        return ""
    if isinstance(payload, str):
        return payload
    return json.dumps(payload, separators=(",", ":"), ensure_ascii=False)


def _sub(args):
    h = handle()
    for topic in args.topics or [""]:
        h.event_subscribe(topic)
    n = 0
    while not args.count or n < args.count:
        topic, payload = h.event_recv()
        sys.stdout.write(f"{topic}\t{_format(payload)}\n")
        sys.stdout.flush()
        n += 1
    return 0
