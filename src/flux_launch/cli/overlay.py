"""``flux overlay status``: the tree of brokers and the state of each link.

Each broker is ``full`` (it and everything below it online), ``partial`` (some
rank below it lost or offline), ``lost`` (its parent lost contact with it) or
``offline`` (it never joined).
"""

from flux_launch.cli.base import Parser, handle


def main(cmd, argv):
    p = Parser(cmd)
    sub = p.add_subparsers(dest="sub", required=True)
    sub.add_parser("status", help="show the state of every broker")
    p.parse_args(argv)
    h = handle()
    lines = []
    _walk(h, 0, None, "", "", lines)
    print("\n".join(lines))
    return 0


def _walk(h, rank, state, first, rest, lines):
    """Append the lines of ``rank``'s subtree; returns True if it is all online."""
    if state in ("lost", "offline", "gone"):
        lines.append(f"{first}{rank}: {'lost' if state == 'gone' else state}")
        return False
    try:
        st = h.rpc("overlay.status", nodeid=rank).get(timeout=10)
    except (OSError, TimeoutError) as exc:
        lines.append(f"{first}{rank}: unreachable ({exc})")
        return False
    index = len(lines)
    lines.append(None)
    children = sorted(st["children"].items(), key=lambda kv: int(kv[0]))
    full = True
    for i, (child, cstate) in enumerate(children):
        last = i == len(children) - 1
        full &= _walk(h, int(child), cstate, rest + ("└─ " if last else "├─ "),
                      rest + ("   " if last else "│  "), lines)
    lines[index] = f"{first}{rank} {st.get('hostname')}: {'full' if full else 'partial'}"
    return full
