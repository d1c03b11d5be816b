"""Submission directives in batch scripts (RFC 36): ``#FLUX: -N2 --job-name=x``.

A directive is a line whose start is any run of non-word characters (the
prefix: ``#``, ``# ``, ``--``, ``//``) followed by the tag ``flux:`` or ``FLUX:``;
the rest of the line is split as a POSIX shell would (``shlex``: quotes, and
``#`` starts a comment). Several options may share a line. Lines before the
first directive are ignored (the shebang, code); after it, the first non-blank
line that does not start with the prefix ends the directives, and a directive
after that is an error, as is a change of prefix or tag. A value may run over
several directive lines between triple quotes (three double or single quotes
ending the line that opens them and standing alone on the line that closes them), with the
lines' common indent removed.
"""

import re
import shlex
import textwrap

_DIRECTIVE = re.compile(r"^([^\w]*)((?:flux|FLUX):)(.*)$")


class DirectiveError(ValueError):
    """A directive that cannot be parsed; the message starts with ``line N:``."""


class Directive:
    """One directive: its line number (from 1) and its arguments."""

    __slots__ = ("lineno", "args")

    def __init__(self, lineno, args):
        self.lineno = lineno
        self.args = args

    def __repr__(self):
        return f"Directive(line {self.lineno}: {self.args!r})"


def _split(lineno, value):
    lex = shlex.shlex(value, posix=True, punctuation_chars=False)
    lex.whitespace_split = True
    lex.commenters = "#"
    try:
        return list(lex)
    except ValueError as exc:
        raise DirectiveError(f"line {lineno}: {value.strip()}: {exc}") from None


def parse(text):
    """The directives of script ``text``, in order.

    Raises:
        DirectiveError: ``line N: ...``, naming what is wrong.
    """
    out = []
    sentinel = None  # (prefix, tag) of the first directive
    stopped = None  # the line after which directives are disabled
    lines = text.splitlines()
    i = 0
    while i < len(lines):
        line = lines[i]
        lineno = i + 1
        i += 1
        m = _DIRECTIVE.match(line)
        if m is None:
            if sentinel is not None and stopped is None and line.strip() \
                    and not line.startswith(sentinel[0].rstrip()):
                stopped = lineno - 1
            continue
        prefix, tag, value = m.groups()
        if sentinel is None:
            sentinel = (prefix, tag)
        elif stopped is not None:
            raise DirectiveError(f"line {lineno}: orphan '{tag}' detected: directives disabled after "
                                 f"line {stopped}")
        elif (prefix, tag) != sentinel:
            raise DirectiveError(f"line {lineno}: sentinel changed from '{''.join(sentinel)}' to "
                                 f"'{prefix}{tag}' (all directives of a file must use the same one)")
        for quote in ('"""', "'''"):
            if value.rstrip().endswith(quote) and value.count(quote) % 2 == 1:
                value, i = _multiline(lines, i, lineno, prefix + tag, value.rstrip()[:-3], quote)
                break
        args = _split(lineno, value.replace('"""', '"').replace("'''", "'")) if "\n" not in value \
            else _split_multiline(lineno, value)
        if not args:
            continue
        if not args[0].startswith("-"):
            raise DirectiveError(f"line {lineno}: Unknown directive: {value.strip()}")
        out.append(Directive(lineno, args))
    return out


def _multiline(lines, i, lineno, sentinel, head, quote):
    """Gather a triple-quoted value from the directive lines after ``lineno``;
    returns ``(value, index of the next line)``. The value is kept with a newline
    marking where the quoted text starts (``_split_multiline`` reads it)."""
    body = []
    while i < len(lines):
        m = _DIRECTIVE.match(lines[i])
        if m is None or m.group(1) + m.group(2) != sentinel:
            break
        text = m.group(3)
        i += 1
        if text.strip() == quote:
            return head + "\n" + textwrap.dedent("\n".join(body) + "\n"), i
        if quote in text:
            raise DirectiveError(f"line {i}: improperly terminated triple quoted string at: {text.strip()}")
        body.append(text[1:] if text.startswith(" ") else text)
    raise DirectiveError(f"line {lineno}: unterminated multi-line quote: {head.strip()}{quote}")


def _split_multiline(lineno, value):
    head, _, body = value.partition("\n")
    args = _split(lineno, head)
    if not args:
        raise DirectiveError(f"line {lineno}: a multi-line value needs an option before it")
    args[-1] += body
    return args
