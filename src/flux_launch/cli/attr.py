"""``flux getattr NAME``, ``flux setattr NAME VALUE``, ``flux lsattr [-v]``: broker attributes."""

from flux_launch.cli.base import Parser, handle


def main(cmd, argv):
    p = Parser(cmd)
    if cmd == "getattr":
        p.add_argument("name")
    elif cmd == "setattr":
        p.add_argument("name")
        p.add_argument("value")
    else:
        p.add_argument("-v", "--values", action="store_true", help="show values too")
    args = p.parse_args(argv)
    h = handle()
    if cmd == "getattr":
        print(h.rpc("attr.get", {"name": args.name}).get()["value"])
    elif cmd == "setattr":
        h.rpc("attr.set", {"name": args.name, "value": args.value}).get()
    else:
        names = h.rpc("attr.list").get()["names"]
        if not args.values:
            print("\n".join(names))
        else:
            futures = [(n, h.rpc("attr.get", {"name": n})) for n in names]
            width = max((len(n) for n in names), default=0)
            for name, fut in futures:
                try:
                    value = fut.get()["value"]
                except OSError:
                    value = "-"
                print(f"{name:<{width}}  {value}")
    return 0
