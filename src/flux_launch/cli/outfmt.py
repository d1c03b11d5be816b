"""Output formats of the listing commands other than ``flux jobs`` (``flux resource
list|status|drain``): flux-core's ``OutputFormat`` on rows that are flat dicts.

A format is Python's format syntax over field names (``{state:>10}``,
``{up.ascii}``): a row maps each field name to its value. As in flux-core, ``?:``
before a field drops its column where it is empty in every row, a spec ending in
``+`` marks a cut value with ``+``, and ``!d`` formats a timestamp with
``strftime`` (``{timestamp!d:%b%d %R::<12}``: the part before ``::`` is the time
format, the rest the spec). Column titles come from a ``headings`` map.
"""

import re
import string
import time

BLANK = ("", "0s", "0.0", "0:00:00")  # what ?: counts as empty (as flux jobs)


class UnknownField(ValueError):
    """A format names a field the command does not have."""

    def __init__(self, field):
        super().__init__(f"Unknown format field: {field}")
        self.field = field


class OutputFormat:
    """A format over ``headings``' fields: ``format(row)``, ``header()``,
    ``filter(rows)``, ``print_rows(rows, no_header)``.

    Raises:
        UnknownField: a field not in ``headings``.
        ValueError: ``invalid format FMT: why``.
    """

    def __init__(self, fmt, headings):
        self.fmt, self.headings = fmt, headings
        try:
            parsed = list(string.Formatter().parse(fmt))
        except ValueError as exc:
            raise ValueError(f"invalid format {fmt!r}: {exc}") from None
        self.parts = []  # (text, field, spec, conversion, optional)
        for text, field, spec, conv in parsed:
            optional = field is not None and text.endswith("?:")
            if field is not None and field not in headings:
                raise UnknownField(field)
            if conv not in (None, "d", "s", "r"):
                raise ValueError(f"invalid format {fmt!r}: unknown conversion !{conv}")
            self.parts.append((text[:-2] if optional else text, field, spec or "", conv, optional))
        self.fields = [p[1] for p in self.parts if p[1] is not None]

    @staticmethod
    def _value(row, field, conv):
        value = row.get(field, "")
        if conv == "d":
            return ("time", float(value) if value not in ("", None) else 0.0)
        if conv == "r":
            return repr(value)
        return value

    @staticmethod
    def _field(value, spec):
        if isinstance(value, tuple):  # a !d time
            tfmt, _, spec = spec.partition("::")
            value = time.strftime(tfmt or "%FT%T", time.localtime(value[1])) if value[1] else ""
        mark = spec.endswith("+")
        if mark:
            spec = spec[:-1]
        if isinstance(value, str) and mark and "." in spec:
            cut = spec.rpartition(".")[2]
            if cut.isdigit() and 0 < int(cut) < len(value):
                value = value[:int(cut) - 1] + "+"
        try:
            return format(value, spec)
        except ValueError as exc:
            raise ValueError(f"invalid format spec {spec!r}: {exc}") from None

    def format(self, row):
        """``row`` in this format (ValueError: a spec its values refuse)."""
        out = []
        for text, field, spec, conv, _o in self.parts:
            out.append(text)
            if field is not None:
                out.append(self._field(self._value(row, field, conv), spec))
        return "".join(out)

    def header(self):
        out = []
        for text, field, spec, conv, _o in self.parts:
            out.append(text)
            if field is None:
                continue
            if conv == "d":
                spec = spec.partition("::")[2]
            spec = re.sub(r"(0?\.)?(\d+)?[bcdoxXeEfFgGn%]$", r"\2", spec.rstrip("+"))
            m = re.match(r"(.?[<>=^])?(\d+)(\.\d+)?", spec)
            out.append(format(self.headings[field], m[0] if m else ""))
        return "".join(out)

    def filter(self, rows):
        """This format without its ``?:`` fields that are empty in every row."""
        out, dropped = [], False
        for text, field, spec, conv, optional in self.parts:
            if dropped and text.startswith(" "):  # the column went, and the space after it
                text = text[1:]
            dropped = optional and all(str(r.get(field, "")).strip() in BLANK for r in rows)
            out.append(text.replace("{", "{{").replace("}", "}}"))
            if not dropped and field is not None:
                out.append("{" + field + (f"!{conv}" if conv else "") + (f":{spec}" if spec else "") + "}")
        return OutputFormat("".join(out), self.headings)

    def print_rows(self, rows, no_header=False):
        """Print ``rows`` (and the header) in this format, trailing spaces cut."""
        fmt = self.filter(rows)
        lines = [] if no_header else [fmt.header().rstrip()]
        lines += [fmt.format(r).rstrip() for r in rows]
        if lines:
            print("\n".join(lines))


def named(fmt, formats, command):
    """The format string ``fmt`` names (``default``, ``long``...) or ``fmt`` itself;
    ``help`` prints the names and exits (as flux-core's ``-o help``)."""
    if fmt == "help":
        print(f"\nConfigured {command} output formats:\n")
        for name, (desc, _f) in formats.items():
            print(f"  {name:<12} {desc}")
        raise SystemExit(0)
    if fmt in formats:
        return formats[fmt][1]
    if "{" not in fmt:
        raise ValueError(f"unknown format name {fmt!r} (named formats: {', '.join(formats)}; -o help lists them)")
    return fmt
