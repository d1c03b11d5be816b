"""``flux hwloc info [-l] [-r RANKS]`` and ``flux hwloc topology [-l] [-r RANKS]``:
the hardware the brokers discovered (flux-core's ``flux hwloc``).

``info`` prints ``N Machines, N Cores, N PUs`` (``1 Machine`` for one) for the
ranks of ``-r`` (an idset, or ``all``, the default), each rank one Machine, its
cores and PUs as its broker counted them (``resource.info``); ``-l`` counts this
machine instead.

``topology`` prints hwloc XML: each rank's from its broker (``hwloc.xml``: the
``FLUX_HWLOC_XMLFILE`` it read, or ``lstopo-no-graphics --of xml`` there); one
rank's document as it is, several ranks' Machines under one ``System`` root
object (as flux-core's hwloc 1 custom topology); ``-l``: this machine's.

A rank outside the instance is refused: ``Invalid rank argument: 'RANKS'``.
"""

import subprocess
import sys

from flux_launch.cli.base import Parser, handle


def _parser(cmd):
    p = Parser(cmd, description="Query the instance's hardware topology.",
               usage="flux hwloc info [-l] [-r RANKS]\n       flux hwloc topology [-l] [-r RANKS]")
    sub = p.add_subparsers(dest="sub", metavar="info|topology")
    for name, text in (("info", "short-form dump of instance resources"),
                       ("topology", "dump system topology XML to stdout")):
        s = sub.add_parser(name, help=text, prog=f"flux hwloc {name}")
        s.add_argument("-l", "--local", action="store_true", help="this machine only")
        s.add_argument("-r", "--rank", default="all", metavar="RANKS",
                       help='target these ranks (an idset), or "all" (default)')
    return p


def main(cmd, argv):
    p = _parser(cmd)
    args = p.parse_args(argv)
    if args.sub is None:
        p.error("give a subcommand: info or topology")
    if args.sub == "info":
        return _info(args)
    return _topology(args)


def _ranks(h, text):
    """The ranks of ``-r`` (sorted).

    Raises:
        ValueError: not an idset, or a rank the instance does not have.
    """
    size = int(h.rpc("attr.get", {"name": "size"}).get()["value"])
    if text == "all":
        return list(range(size))
    from flux_launch.core.idset import IDset

    try:
        ranks = sorted(IDset(text))
    except ValueError:
        ranks = None
    if not ranks or ranks[-1] >= size:
        raise ValueError(f"Invalid rank argument: '{text}' (the ranks are 0-{size - 1}, or all)")
    return ranks


def _info(args):
    if args.local:
        from flux_launch.resource import discover_from_env

        topo = discover_from_env()
        machines, cores, pus = 1, topo["ncores"], topo["npus"]
    else:
        h = handle()
        ranks = _ranks(h, args.rank)
        futures = [h.rpc("resource.info", {}, nodeid=r) for r in ranks]
        infos = [f.get() for f in futures]
        machines = len(ranks)
        cores = sum(i.get("ncores", 0) for i in infos)
        pus = sum(i.get("npus", 0) for i in infos)
    print(f"{machines} Machine{'s' if machines > 1 else ''}, {cores} Cores, {pus} PUs")
    return 0


def _topology(args):
    if args.local:
        sys.stdout.write(_local_xml())
        return 0
    h = handle()
    ranks = _ranks(h, args.rank)
    futures = [h.rpc("hwloc.xml", {}, nodeid=r) for r in ranks]
    xmls = [f.get()["xml"] for f in futures]
    sys.stdout.write(xmls[0] if len(xmls) == 1 else combine(xmls))
    return 0


def _local_xml():
    """This machine's XML: ``$FLUX_HWLOC_XMLFILE``, or lstopo's.

    Raises:
        OSError: the file cannot be read, or lstopo is not installed or fails.
    """
    import os
    import shutil

    path = os.environ.get("FLUX_HWLOC_XMLFILE")
    if path:
        with open(path, errors="replace") as f:
            return f.read()
    exe = shutil.which("lstopo-no-graphics") or shutil.which("lstopo")
    if exe is None:
        raise OSError(2, "hwloc's lstopo-no-graphics is not installed (install hwloc)")
    res = subprocess.run([exe, "--restrict", "binding", "--of", "xml", "-"], capture_output=True, text=True)
    if res.returncode != 0:
        raise OSError(5, f"{os.path.basename(exe)} failed: {res.stderr.strip() or res.returncode}")
    return res.stdout


def combine(xmls):
    """One hwloc XML document of several: each document's top objects (its
    Machine) under one ``System`` object.

    Raises:
        ValueError: a document is not hwloc XML.
    """
    import xml.etree.ElementTree as ET

    root = ET.Element("topology", {"version": "2.0"})
    system = ET.SubElement(root, "object", {"type": "System", "os_index": "0"})
    for i, text in enumerate(xmls):
        try:
            doc = ET.fromstring(text.encode())
        except ET.ParseError as exc:
            raise ValueError(f"rank {i}: not hwloc XML ({exc})") from None
        for obj in doc.findall("object"):
            system.append(obj)
    ET.indent(root, "  ")
    body = ET.tostring(root, encoding="unicode")
    return f'<?xml version="1.0" encoding="UTF-8"?>\n<!DOCTYPE topology SYSTEM "hwloc2.dtd">\n{body}\n'
