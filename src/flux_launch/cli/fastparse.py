"""A parser for the options of ``flux run`` and ``flux submit`` that does without
``argparse`` on well-formed command lines.

Importing argparse costs ~2 ms, and the regular expressions it needs pull in
``re`` and ``enum`` (~5 ms more): a fifth of a ``flux run -n1 true``. ``FastParser``
records its options with the same ``add_argument`` calls and parses the plain
forms itself: ``--opt VALUE``, ``--opt=VALUE``, ``-n4``, ``-n 4``, clusters of
flags (``-lu``), then the command. Anything else (``-h``, an unknown or abbreviated
option, a missing or bad value, ``--``, a value that starts with ``-`` or is ``--``,
an argument of the command that abbreviates several options) goes to an
``argparse`` parser built from the same calls: argparse stays the authority on
what a command line means and on every message, and a test checks that both give
the same result wherever the fast path answers.
"""

REMAINDER = "..."  # argparse.REMAINDER
_SIMPLE_KEYS = {"action", "type", "default", "metavar", "help", "dest"}


class Namespace:
    """Parsed options as attributes, like ``argparse.Namespace``."""

    def __init__(self, **kw):
        self.__dict__.update(kw)

    def __eq__(self, other):
        return vars(self) == vars(other)

    def __repr__(self):
        return "Namespace(" + ", ".join(f"{k}={v!r}" for k, v in vars(self).items()) + ")"


class _Fallback(Exception):
    """The command line needs argparse."""


class _Option:
    __slots__ = ("dest", "action", "type")

    def __init__(self, dest, action, type_):
        self.dest = dest
        self.action = action
        self.type = type_


class FastParser:
    """``add_argument`` and ``parse_args`` as in argparse, for simple options
    (actions ``store``, ``store_true``, ``append``; ``type=int``) and one
    ``nargs=REMAINDER`` positional.

    ``parse_args`` and ``error`` exit with 2 and argparse's message on a bad
    command line, as argparse does.
    """

    def __init__(self, cmd, description=None, usage=None):
        self.cmd = cmd
        self.description = description
        self.usage = usage
        self.calls = []  # every add_argument, replayed into argparse when needed
        self.options = {}  # "--long" / "-s" -> _Option, or None where argparse must decide
        self.defaults = {}
        self.positional = None  # dest of the REMAINDER positional; False: one we do not handle

    def add_argument(self, *flags, **kw):
        self.calls.append((flags, kw))
        if not flags[0].startswith("-"):
            self.positional = flags[0] if kw.get("nargs") == REMAINDER and len(flags) == 1 else False
            self.defaults[flags[0]] = []
            return
        action = kw.get("action", "store")
        type_ = kw.get("type")
        long = [f for f in flags if f.startswith("--")]
        dest = kw.get("dest") or (long[0] if long else flags[0])[2 if long else 1:].replace("-", "_")
        default = kw.get("default")
        if action == "store_true":
            default = kw.get("default", False)
        if isinstance(default, str) and type_ is not None:
            default = type_(default)  # argparse converts string defaults
        self.defaults[dest] = default
        simple = (set(kw) <= _SIMPLE_KEYS and action in ("store", "store_true", "append")
                  and type_ in (None, int) and (action != "store_true" or type_ is None)
                  and all(len(f) == 2 or f.startswith("--") for f in flags))
        for flag in flags:
            self.options[flag] = _Option(dest, action, type_) if simple else None

    def argparser(self):
        """The argparse parser with the same options."""
        from flux_launch.cli.base import Parser

        p = Parser(self.cmd, description=self.description, usage=self.usage)
        for flags, kw in self.calls:
            p.add_argument(*flags, **kw)
        return p

    def parse_args(self, argv):
        try:
            return self._parse(list(argv))
        except _Fallback:
            return self.argparser().parse_args(argv)

    def error(self, message):
        self.argparser().error(message)

    def _parse(self, argv):
        if not self.positional:
            raise _Fallback
        values = {k: list(v) if isinstance(v, list) else v for k, v in self.defaults.items()}
        i, n = 0, len(argv)
        while i < n:
            arg = argv[i]
            if arg[:1] != "-" or arg == "-":  # the command: the rest is its own
                self._check_command(argv, i)
                values[self.positional] = argv[i:]
                break
            if arg == "--":
                raise _Fallback
            if arg[1] == "-":
                name, eq, value = arg.partition("=")
                opt = self.options.get(name)
                if opt is None:
                    raise _Fallback
                if opt.action == "store_true":
                    if eq:
                        raise _Fallback
                    values[opt.dest] = True
                else:
                    if not eq:
                        i += 1
                        value = _next_value(argv, i)
                    _store(values, opt, value)
            else:
                if "=" in arg:
                    raise _Fallback
                j = 1
                while j < len(arg):
                    opt = self.options.get("-" + arg[j])
                    if opt is None:
                        raise _Fallback
                    if opt.action == "store_true":
                        values[opt.dest] = True
                        j += 1
                        continue
                    value = arg[j + 1:]
                    if not value:
                        i += 1
                        value = _next_value(argv, i)
                    _store(values, opt, value)
                    break
            i += 1
        return Namespace(**values)

    def _check_command(self, argv, start):
        """argparse looks at the command's arguments too (up to a ``--``): one that
        abbreviates several of our long options (``--gpus``) is an error there."""
        longs = [f for f in self.options if f.startswith("--")] + ["--help"]
        for arg in argv[start:]:
            if arg == "--":
                return
            if arg[:2] == "--":
                name = arg.partition("=")[0]
                if arg not in self.options and name not in self.options \
                        and sum(f.startswith(name) for f in longs) > 1:
                    raise _Fallback


def _next_value(argv, i):
    if i >= len(argv) or argv[i][:1] == "-":  # argparse decides what a leading '-' means
        raise _Fallback
    return argv[i]


def _store(values, opt, value):
    if value == "--":  # argparse drops it from an option's values
        raise _Fallback
    if opt.type is not None:
        try:
            value = opt.type(value)
        except ValueError:
            raise _Fallback from None
    if opt.action == "append":
        values[opt.dest].append(value)
    else:
        values[opt.dest] = value
