"""``flux config get [NAME]``: print the instance's configuration (``flux broker
-c``), or the value at the dotted NAME (``job-manager.inactive-age-limit``): a
string as it is, anything else as JSON; a NAME that is not set is a one-line
error (exit 1), as flux-core's."""

import json
import sys

from flux_launch.cli.base import Parser, handle


def main(cmd, argv):
    p = Parser(cmd, description="Print the instance's configuration, or one value of it.")
    sub = p.add_subparsers(dest="sub", required=True)
    get = sub.add_parser("get", help="print the configuration object, or the value at NAME")
    get.add_argument("name", nargs="?", help="a dotted key, e.g. job-manager.inactive-age-limit")
    args = p.parse_args(argv)
    value = handle().rpc("config.get", {}, nodeid=0).get()
    if args.name:
        for key in args.name.split("."):
            if not isinstance(value, dict) or key not in value:
                sys.stderr.write(f"flux-config: {args.name} is not set\n")
                return 1
            value = value[key]
    print(value if isinstance(value, str) else json.dumps(value, separators=(",", ":")))
    return 0
