"""``flux bulksubmit [OPTIONS] COMMAND... [::: INPUTS...]``: one job per input
combination, as flux-core's (an interface like GNU parallel's).

Inputs: lists after ``:::`` on the command line, files after ``::::`` (one input
per line; ``-`` is stdin), stdin when there is neither. Lists are combined (every
combination, the first list outermost); ``:::+`` / ``::::+`` link a list to the
ones before instead (one of its inputs per combination, cycled when shorter).

Each argument (options included) is a Python ``str.format`` template given the
combination's inputs: ``{}`` (one list), ``{0}`` ``{1}``..., and attributes of an
input: ``{.%}`` without its extension, ``{./}`` its basename, ``{./%}`` both,
``{.//}`` its dirname (``{1.%}``... with several lists), ``--define=NAME=CODE``
attributes (``{.NAME}``: CODE evaluated with ``x`` the input), ``{seq}`` /
``{seq1}`` the combination's number from 0 / 1; ``{cc}`` is left for
``--cc``/``--bcc`` (a second pass). ``--dry-run`` prints ``bulksubmit: submit
ARGS`` per job and submits nothing. ``--wait``, ``--watch``, ``--progress`` and ``--jps`` as ``flux submit``'s.
"""

import os
import sys

from flux_launch.cli import submit, submitbase

DELIMS = (":::", ":::+", "::::", "::::+")


class BulkError(ValueError):
    """A bad input list or template; one line."""


def split_inputs(argv, stdin):
    """``(template args, [(values, linked)...])``.

    Raises:
        BulkError: a delimiter with nothing after it, or a file that cannot be read.
    """
    cut = next((i for i, a in enumerate(argv) if a in DELIMS), len(argv))
    template, rest = argv[:cut], argv[cut:]
    lists = []
    while rest:
        delim = rest[0]
        end = next((i for i, a in enumerate(rest[1:], 1) if a in DELIMS), len(rest))
        values = rest[1:end]
        rest = rest[end:]
        if not values:
            raise BulkError(f"{delim} must be followed by inputs")
        if delim.startswith("::::"):
            lines = []
            for name in values:
                lines += _read_lines(stdin if name == "-" else None, name)
            values = lines
        lists.append((values, delim.endswith("+")))
    if not lists:
        lists.append((_read_lines(stdin, "-"), False))
    return template, lists


def _read_lines(stream, name):
    try:
        if stream is None:
            with open(name) as f:
                text = f.read()
        else:
            text = stream.read()
    except OSError as exc:
        raise BulkError(f"{name}: {exc.strerror}") from None
    return [line for line in text.splitlines() if line]


def combinations(lists):
    """Every combination of the lists, linked ones cycled alongside."""
    combos = [()]
    for values, linked in lists:
        if not values:
            return []
        if linked and combos != [()]:
            combos = [c + (values[i % len(values)],) for i, c in enumerate(combos)]
        else:
            combos = [c + (v,) for c in combos for v in values]
    return combos


class Input(str):
    """One input, with flux-core's substitution attributes (and ``--define``'s)."""

    defines = {}

    def __getattr__(self, name):
        s = str(self)
        if name == "%":
            return os.path.splitext(s)[0]
        if name == "/":
            return os.path.basename(s)
        if name == "/%":
            return os.path.splitext(os.path.basename(s))[0]
        if name == "//":
            return os.path.dirname(s)
        code = self.defines.get(name)
        if code is None:
            raise AttributeError(name)
        try:
            return eval(code, {"__builtins__": __builtins__}, {"x": s})  # the user's own expression
        except Exception as exc:  # noqa: BLE001 - any error of the user's expression, in one line
            raise BulkError(f"--define {name}={code}: {type(exc).__name__}: {exc}") from None


def substitute(arg, combo, seq):
    """``arg`` with the combination's inputs put in (``{cc}`` left as it is)."""
    if "{" not in arg:
        return arg
    try:
        return arg.format(*[Input(v) for v in combo], seq=seq, seq1=seq + 1, cc="{cc}")
    except BulkError:
        raise
    except (IndexError, KeyError, AttributeError, ValueError) as exc:
        what = f"no input {exc}" if isinstance(exc, IndexError) else f"{type(exc).__name__}: {exc}"
        raise BulkError(f"cannot substitute {arg!r}: {what}") from None


def _without_own(args, own):
    """The arguments without bulksubmit's own options (and their values)."""
    out = []
    it = iter(args)
    for a in it:
        name, sep, _ = a.partition("=")
        if name in own:
            if not sep and name in ("--define", "--log"):
                next(it, None)
            continue
        if a == "--" or not a.startswith("-"):
            out.append(a)
            out.extend(it)
            break
        out.append(a)
    return out


def _shown(args):
    """``-n 4`` as flux-core shows it, ``-n4``."""
    out = []
    it = iter(args)
    for a in it:
        if len(a) == 2 and a[0] == "-" and a[1] != "-" and a[1] in "nNcgt":
            out.append(a + next(it, ""))
        else:
            out.append(a)
    return " ".join(out)


def _own_options(template):
    """``--define`` and ``--log`` values from the unsubstituted template (they are
    needed before it is substituted)."""
    defines, log = [], None
    it = iter(template)
    for a in it:
        if a == "--" or not a.startswith("-"):
            break
        name, sep, value = a.partition("=")
        if name in ("--define", "--log"):
            value = value if sep else next(it, "")
            if name == "--define":
                defines.append(value)
            else:
                log = value
    return defines, log


def main(cmd, argv):
    try:
        template, lists = split_inputs(argv, sys.stdin)
    except BulkError as exc:
        sys.stderr.write(f"flux-{cmd}: {exc}\n")
        return 1
    p = submitbase.make_parser(cmd, "Submit one job per input combination.")
    submit.add_submit_options(p)
    p.add_argument("--define", action="append", default=[], metavar="NAME=CODE",
                   help="an input attribute {.NAME}: CODE evaluated with x the input")
    p.add_argument("--log", metavar="FILE", help="print job ids (or --dry-run lines) to FILE")
    define_items, log = _own_options(template)
    defines = {}
    for item in define_items:
        name, sep, code = item.partition("=")
        if not sep or not name.isidentifier():
            p.error(f"--define: {item!r}: expected NAME=CODE")
        defines[name] = code
    Input.defines = defines
    if not any("{" in a for a in template):  # as GNU parallel: the inputs go at the end
        template = template + ["{%d}" % i for i in range(len(lists))]
    own = {"--define", "--log", "--dry-run", "--quiet", "--wait", "--watch", "--progress", "--jps"}
    specs, shown, base = [], [], None
    try:
        for seq, combo in enumerate(combinations(lists)):
            args = [substitute(a, combo, seq) for a in template]
            parsed = p.parse_args(args)
            if not parsed.command:
                p.error("a COMMAND is required")
            base = base or parsed
            if not parsed.dry_run:
                specs += submit.expand_cc(p, parsed, parsed.command)
            shown.append(_shown(_without_own(args, own)))
    except BulkError as exc:
        sys.stderr.write(f"flux-{cmd}: {exc}\n")
        return 1
    if base is None:
        sys.stderr.write(f"flux-{cmd}: no inputs: nothing submitted\n")
        return 1
    flags = submitbase.flags(base)  # checked before --dry-run returns
    urgency = submitbase.urgency(base)
    try:
        out = open(log, "w") if log else sys.stdout
    except OSError as exc:
        sys.stderr.write(f"flux-{cmd}: --log {log}: {exc.strerror}\n")
        return 1
    try:
        if base.dry_run:
            out.write("".join(f"bulksubmit: submit {line}\n" for line in shown))
            return 0
        return submit.submit_and_report(cmd, specs, base, flags, urgency, out)
    finally:
        if out is not sys.stdout:
            out.close()
