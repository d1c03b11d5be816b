"""``flux keygen [--name=NAME] [PATH]``: make the CURVE certificate that the
brokers of a config-booted instance share (``[bootstrap] curve_cert``). Written
mode 0600; without PATH it goes to standard output. An existing PATH is not
overwritten."""

import os
import sys

from flux_launch.cli.base import Parser


def main(cmd, argv):
    p = Parser(cmd, description="Generate a CURVE certificate for the overlay network.")
    p.add_argument("-n", "--name", help="the certificate's name (default: this host's name)")
    p.add_argument("path", nargs="?", help="where to write it (default: standard output)")
    args = p.parse_args(argv)
    from flux_launch.broker.boot_config import cert_text

    text = cert_text(args.name)
    if not args.path:
        sys.stdout.write(text)
        return 0
    try:
        fd = os.open(args.path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        sys.stderr.write(f"flux-keygen: {args.path} exists: remove it first or give another path\n")
        return 1
    except OSError as exc:
        sys.stderr.write(f"flux-keygen: {args.path}: {exc.strerror}\n")
        return 1
    with os.fdopen(fd, "w") as f:
        f.write(text)
    return 0
