"""``flux uptime``: the time, how long the instance has run, its owner, depth and
size, and how many ranks are offline (lost or never joined), naming the lost ones."""

import pwd
import time

from flux_launch.cli.base import Parser, handle
from flux_launch.core import fsd


def main(cmd, argv):
    Parser(cmd).parse_args(argv)
    h = handle()
    info = h.rpc("broker.info", nodeid=0).get()
    depth = h.rpc("attr.get", {"name": "instance-level"}, nodeid=0).get()["value"]
    try:
        owner = pwd.getpwuid(info["owner"]).pw_name
    except KeyError:
        owner = str(info["owner"])
    from flux_launch.core.idset import IDset

    online = IDset(info.get("online", ""))
    lost = IDset(info.get("lost", ""))
    offline = info["size"] - len(online)
    line = (f" {time.strftime('%H:%M:%S')} {info['state']} {fsd.format(time.time() - info['starttime'], 2)},"
            f"  owner {owner},  depth {depth},  size {info['size']}")
    if offline:
        line += f",  {offline} offline"
        if len(lost):
            line += f" (lost: {lost})"
    print(line)
    return 0
