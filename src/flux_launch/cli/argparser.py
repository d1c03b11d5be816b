"""The commands' ``argparse`` parser: named ``flux CMD``, usage errors exit with 2.

``flux run`` and ``flux submit`` import it only for help and for command lines
their fast parser leaves to it (``cli/fastparse.py``).
"""

import argparse
import sys

# argparse looks every message up with gettext, whose first lookup imports locale
# and searches the disk for catalogs (~2 ms of every command's start); there are
# none for these messages: use them as they are.
argparse._ = str
argparse.ngettext = lambda singular, plural, n: singular if n == 1 else plural


def _formatter(prog):
    # The default formatter imports shutil (and with it bz2 and lzma, ~2 ms of every
    # command's start) just to learn the terminal width.
    import os

    try:
        width = int(os.environ.get("COLUMNS", "80")) - 2
    except ValueError:
        width = 78
    return argparse.HelpFormatter(prog, width=width)


class Parser(argparse.ArgumentParser):
    """An ``ArgumentParser`` named ``flux CMD`` whose usage errors exit with 2."""

    def __init__(self, cmd=None, **kw):
        if cmd is not None:
            kw["prog"] = f"flux {cmd}"
        kw.setdefault("formatter_class", _formatter)
        super().__init__(**kw)

    def error(self, message):
        self.print_usage(sys.stderr)
        name = "-".join(self.prog.split()[:2])
        self.exit(2, f"{name}: error: {message}\n")
