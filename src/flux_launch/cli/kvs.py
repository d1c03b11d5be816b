"""``flux kvs``: get, put, list, remove and watch keys; read, append and wait on eventlogs.

Values are JSON: ``put KEY=VALUE`` stores the text as a string, ``put -j`` parses it
as JSON; ``get`` prints a string as it is and any other value as JSON.
"""

import json
import sys
import time

from flux_launch.cli.base import Parser, handle
from flux_launch.client.handle import NORESPONSE, STREAMING


def _show(value):
    return value if isinstance(value, str) else json.dumps(value, separators=(",", ":"))


def _ns(args):
    return {"namespace": args.namespace} if args.namespace else {}


def _parser():
    p = Parser("kvs")
    p.add_argument("-N", "--namespace", help="use this KVS namespace (default: primary)")
    sub = p.add_subparsers(dest="sub", required=True, metavar="SUBCOMMAND")

    s = sub.add_parser("get", help="print the values of keys")
    s.add_argument("-w", "--watch", action="store_true", help="print each new value of the key")
    s.add_argument("-W", "--waitcreate", action="store_true", help="wait for the key to exist")
    s.add_argument("-c", "--count", type=int, default=0, help="with --watch, stop after COUNT values")
    s.add_argument("-u", "--uniq", action="store_true", help="with --watch, skip repeats of a value")
    s.add_argument("-A", "--append", action="store_true", help="with --watch, print only appended data")
    s.add_argument("keys", nargs="+", metavar="KEY")

    s = sub.add_parser("put", help="store values (KEY=VALUE)")
    s.add_argument("-j", "--json", action="store_true", help="parse VALUE as JSON")
    s.add_argument("-A", "--append", action="store_true", help="append VALUE to the key's string")
    s.add_argument("pairs", nargs="+", metavar="KEY=VALUE")

    s = sub.add_parser("ls", help="list directories")
    s.add_argument("-R", "--recursive", action="store_true")
    s.add_argument("-d", "--directory", action="store_true", help="list directory entries, not contents")
    s.add_argument("-F", "--classify", action="store_true", help="append '.' to directories")
    s.add_argument("-1", "--one", action="store_true", help="one entry per line (always)")
    s.add_argument("keys", nargs="*", metavar="KEY")

    s = sub.add_parser("dir", help="print a directory's keys and values")
    s.add_argument("-R", "--recursive", action="store_true")
    s.add_argument("key", nargs="?", default=".")

    s = sub.add_parser("unlink", help="remove keys")
    s.add_argument("-R", "--recursive", action="store_true", help="remove directories too")
    s.add_argument("-f", "--force", action="store_true", help="ignore keys that do not exist")
    s.add_argument("keys", nargs="+", metavar="KEY")

    s = sub.add_parser("mkdir", help="create empty directories")
    s.add_argument("keys", nargs="+", metavar="KEY")

    s = sub.add_parser("eventlog", help="eventlog get|append|wait-event")
    esub = s.add_subparsers(dest="esub", required=True)
    e = esub.add_parser("get", help="print an eventlog")
    e.add_argument("-w", "--watch", action="store_true")
    e.add_argument("-W", "--waitcreate", action="store_true")
    e.add_argument("-c", "--count", type=int, default=0)
    e.add_argument("-u", "--unformatted", action="store_true", help="print the raw JSON lines")
    e.add_argument("key")
    e = esub.add_parser("append", help="append an event")
    e.add_argument("-t", "--timestamp", type=float, help="use this timestamp instead of now")
    e.add_argument("key")
    e.add_argument("name")
    e.add_argument("context", nargs="?", help="a JSON object")
    e = esub.add_parser("wait-event", help="wait for an event in an eventlog")
    e.add_argument("-t", "--timeout", type=float, help="give up after this many seconds")
    e.add_argument("-u", "--unformatted", action="store_true")
    e.add_argument("-q", "--quiet", action="store_true", help="print nothing")
    e.add_argument("-v", "--verbose", action="store_true", help="print the events before it too")
    e.add_argument("-W", "--waitcreate", action="store_true")
    e.add_argument("key")
    e.add_argument("event")

    s = sub.add_parser("namespace", help="namespace create|remove|list")
    nsub = s.add_subparsers(dest="nsub", required=True)
    n = nsub.add_parser("create")
    n.add_argument("-o", "--owner", type=int)
    n.add_argument("names", nargs="+")
    n = nsub.add_parser("remove")
    n.add_argument("names", nargs="+")
    nsub.add_parser("list")
    return p


def main(cmd, argv):
    args = _parser().parse_args(argv)
    h = handle()
    return globals()["_" + args.sub](h, args)


def _once_created(h, key, args):
    """The value of ``key`` once it exists: a waitcreate watch, ended after its
    first value."""
    fut = h.rpc("kvs.watch", {"key": key, "waitcreate": True, **_ns(args)}, flags=STREAMING)
    value = fut.get()["value"]
    h.rpc("kvs.unwatch", {"matchtag": fut.matchtag}, flags=NORESPONSE)
    return value


def _get(h, args):
    if not args.watch and args.waitcreate:  # each value once it exists (flux-core's WAITCREATE)
        for k in args.keys:
            print(_show(_once_created(h, k, args)))
        return 0
    if not args.watch:
        futures = [h.rpc("kvs.get", {"key": k, **_ns(args)}) for k in args.keys]
        for fut in futures:
            print(_show(fut.get()["value"]))
        return 0
    payload = {"key": args.keys[0], "waitcreate": args.waitcreate, "uniq": args.uniq,
               "append": args.append, **_ns(args)}
    n = 0
    for resp in h.rpc("kvs.watch", payload, flags=STREAMING):
        value = resp["value"]
        sys.stdout.write(value if args.append and isinstance(value, str) else _show(value) + "\n")
        sys.stdout.flush()
        n += 1
        if args.count and n >= args.count:
            break
    return 0


def _put(h, args):
    ops = []
    for pair in args.pairs:
        key, sep, text = pair.partition("=")
        if not sep or not key:
            raise ValueError(f"invalid argument {pair!r}: expected KEY=VALUE")
        value = text
        if args.json:
            try:
                value = json.loads(text)
            except ValueError as exc:
                raise ValueError(f"{key}: value is not JSON: {exc}") from None
        ops.append({"op": "append" if args.append else "put", "key": key, "value": value})
    h.rpc("kvs.commit", {"ops": ops, **_ns(args)}).get()
    return 0


def _ls(h, args):
    keys = args.keys or ["."]
    for key in keys:
        try:
            listing = h.rpc("kvs.get", {"key": key, "dir": True, "recursive": args.recursive, **_ns(args)}).get()
        except OSError as exc:
            if exc.errno != 20:  # ENOTDIR: a value lists as its own name
                raise
            print(key)
            continue
        if args.directory:
            print(key)
            continue
        if len(keys) > 1 or args.recursive:
            print(f"{key}:")
        _print_ls(listing["key"], listing["dir"], args)
    return 0


def _print_ls(path, entries, args):
    for name, entry in sorted(entries.items()):
        isdir = "dir" in entry
        print(name + ("." if isdir and args.classify else ""))
    if args.recursive:
        for name, entry in sorted(entries.items()):
            if "dir" in entry:
                sub = name if path == "." else f"{path}.{name}"
                print(f"\n{sub}:")
                _print_ls(sub, entry["dir"] or {}, args)


def _dir(h, args):
    listing = h.rpc("kvs.get", {"key": args.key, "dir": True, "recursive": args.recursive, **_ns(args)}).get()
    _print_dir(listing["key"], listing["dir"], args.recursive)
    return 0


def _print_dir(path, entries, recursive):
    for name, entry in sorted(entries.items()):
        full = name if path == "." else f"{path}.{name}"
        if "dir" in entry:
            if recursive:
                _print_dir(full, entry["dir"] or {}, True)
            else:
                print(f"{full}.")
        else:
            print(f"{full} = {_show(entry['value'])}")


def _unlink(h, args):
    for key in args.keys:
        try:
            h.rpc("kvs.get", {"key": key, **_ns(args)}).get()
        except OSError as exc:
            if exc.errno == 21 and not args.recursive:  # EISDIR
                raise OSError(exc.errno, f"{key}: is a directory (use -R to remove it)") from None
            if exc.errno == 2 and args.force:
                continue
            if exc.errno != 21:
                raise
    h.rpc("kvs.commit", {"ops": [{"op": "unlink", "key": k} for k in args.keys], **_ns(args)}).get()
    return 0


def _mkdir(h, args):
    h.rpc("kvs.commit", {"ops": [{"op": "mkdir", "key": k} for k in args.keys], **_ns(args)}).get()
    return 0


def format_event(ev):
    """``TIMESTAMP NAME key=value ...`` as ``flux kvs eventlog get`` prints it."""
    ctx = ev.get("context") or {}
    parts = [f"{ev['timestamp']:.6f}", ev["name"]]
    parts += [f"{k}={json.dumps(v, separators=(',', ':'))}" for k, v in ctx.items()]
    return " ".join(parts)


def _watch_events(h, args, key, watch):
    """Yield eventlog entries of ``key`` (following appends when ``watch``)."""
    from flux_launch.proto.eventlog import EventlogParser, decode

    if not watch and getattr(args, "waitcreate", False):  # the eventlog once it exists
        yield from decode(_once_created(h, key, args))
        return
    if not watch:
        value = h.rpc("kvs.get", {"key": key, **_ns(args)}).get()["value"]
        yield from decode(value)
        return
    parser = EventlogParser()
    payload = {"key": key, "append": True, "waitcreate": getattr(args, "waitcreate", False), **_ns(args)}
    for resp in h.rpc("kvs.watch", payload, flags=STREAMING):
        yield from parser.feed(resp["value"])


def _print_event(ev, unformatted):
    if unformatted:
        print(json.dumps(ev, separators=(",", ":")), flush=True)
    else:
        print(format_event(ev), flush=True)


def _eventlog(h, args):
    if args.esub == "get":
        n = 0
        for ev in _watch_events(h, args, args.key, args.watch):
            _print_event(ev, args.unformatted)
            n += 1
            if args.count and n >= args.count:
                break
        return 0
    if args.esub == "append":
        from flux_launch.proto.eventlog import encode_event

        context = None
        if args.context:
            try:
                context = json.loads(args.context)
            except ValueError as exc:
                raise ValueError(f"context is not JSON: {exc}") from None
            if not isinstance(context, dict):
                raise ValueError("context must be a JSON object")
        line = encode_event(args.name, context, args.timestamp if args.timestamp is not None else time.time())
        h.rpc("kvs.commit", {"ops": [{"op": "append", "key": args.key, "value": line}], **_ns(args)}).get()
        return 0
    # wait-event
    if args.timeout is not None:
        import signal

        def expire(_sig, _frame):
            raise TimeoutError(f"timed out waiting for {args.event} in {args.key}")

        signal.signal(signal.SIGALRM, expire)
        signal.setitimer(signal.ITIMER_REAL, args.timeout)
    try:
        for ev in _watch_events(h, args, args.key, True):
            if ev["name"] == args.event or args.verbose:
                if not args.quiet:
                    _print_event(ev, args.unformatted)
            if ev["name"] == args.event:
                return 0
    except TimeoutError as exc:
        sys.stderr.write(f"flux-kvs: {exc}\n")
        return 1
    return 1


def _namespace(h, args):
    if args.nsub == "list":
        spaces = h.rpc("kvs.namespace-list").get()["namespaces"]
        print(f"{'NAMESPACE':<20} {'OWNER':>8}")
        for ns in spaces:
            print(f"{ns['name']:<20} {ns['owner']:>8}")
        return 0
    for name in args.names:
        if args.nsub == "create":
            payload = {"name": name}
            if args.owner is not None:
                payload["owner"] = args.owner
            h.rpc("kvs.namespace-create", payload).get()
        else:
            h.rpc("kvs.namespace-remove", {"name": name}).get()
    return 0
