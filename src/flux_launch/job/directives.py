"""Submission directives in batch scripts (RFC 36): ``#FLUX: -N2 --job-name=x``.

A directive is a line whose start is any run of non-word characters (the
prefix: ``#``, ``# ``, ``--``, ``//``) followed by the tag ``flux:`` or ``FLUX:``;
the rest of the line is split as a POSIX shell would (``shlex``: quotes, and
``#`` starts a comment). Several options may share a line. Lines before the
first directive are ignored (the shebang, code); after it, the first non-blank
line that does not start with the prefix ends the directives, and a directive
after that is an error, as is a change of prefix or tag. A triple-quoted string
(three double or three single quotes) is taken literally, quotes and ``#`` included; one opened at the end of
a line and closed at the end of a later line runs over the directive lines in
between, which must carry the same sentinel (the newline after the opening
quotes is dropped; the opening line's indent after the tag is stripped from
each line). Every error is one line, ``line N: ...``.
"""

import re
import shlex

_DIRECTIVE = re.compile(r"^([^\w]*)((?:flux|FLUX):)(.*)$")
_TRIPLE = re.compile("\"\"\"|'''")


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


def _split(lineno, value, shown):
    lex = shlex.shlex(value, posix=True, punctuation_chars=False)
    lex.whitespace_split = True
    lex.commenters = "#"
    try:
        return list(lex)
    except ValueError as exc:
        raise DirectiveError(f"line {lineno}: {shown}: {exc}") from None


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
        shown = value.strip()
        value, quote = _triple_quotes(lineno, value)
        if quote is not None:
            indent = value[:len(value) - len(value.lstrip())]
            body, i = _multiline(lines, i, lineno, prefix + tag, indent, quote, shown)
            value += shlex.quote(body)
        args = _split(lineno, value, shown)
        if not args:
            continue
        if not args[0].startswith("-"):
            raise DirectiveError(f"line {lineno}: Unknown directive: {shown}")
        out.append(Directive(lineno, args))
    return out


def _triple_quotes(lineno, value):
    """Replace each triple-quoted string in ``value`` by its shell-quoted text.

    Returns ``(value, quote)``: ``quote`` is the triple quote left open at the
    end of the line (which starts a multi-line value), else None."""
    out = []
    pos = 0
    while (m := _TRIPLE.search(value, pos)) is not None:
        quote = m.group()
        end = value.find(quote, m.end())
        out.append(value[pos:m.start()])
        if end < 0:
            if value[m.end():].strip():
                raise DirectiveError(f"line {lineno}: unclosed triple quote: {value.strip()}")
            return "".join(out), quote
        out.append(shlex.quote(value[m.end():end]))
        pos = end + 3
    out.append(value[pos:])
    return "".join(out), None


def _multiline(lines, i, lineno, sentinel, indent, quote, shown):
    """Gather the text of a multi-line value opened on line ``lineno`` from
    ``lines[i:]``; returns ``(text, index of the line after the closing one)``."""
    body = []
    while i < len(lines):
        m = _DIRECTIVE.match(lines[i])
        i += 1
        if m is None or m.group(1) + m.group(2) != sentinel:
            break
        text = m.group(3)
        if text.startswith(indent):
            text = text[len(indent):]
        closing = text.rstrip().endswith(quote)
        if closing:
            text = text.rstrip()[:-3]
        if quote in text:
            raise DirectiveError(f"line {i}: improperly terminated triple quoted string at: {text.strip()}")
        body.append(text)
        if closing:
            return "\n".join(body), i
    raise DirectiveError(f"line {lineno}: unterminated multi-line quote: {shown} "
                         f"(no closing {quote} at the end of a '{sentinel}' line)")
