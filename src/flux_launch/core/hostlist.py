"""Hostlist: an ordered, compressible list of host names (Flux RFC 29).

A hostlist string is a comma separated list of *hostlist expressions* of the
form ``prefix[idlist]suffix``, e.g. ``"foo[0-3,7],bar1"``.  Decoding and
encoding follow flux-core's libhostlist (the engine behind ``flux hostlist``):

* spaces and tabs separate hosts like commas; empty entries are ignored;
* each element of an idlist keeps the zero padding of its low bound, so
  ``node[01-10]`` is ``node01 .. node10`` and ``[00-2]`` is ``00,01,02``;
* ``foo[1-2]-eth0`` expands to plain names that are never re-compressed
  (``"foo1-eth0,foo2-eth0"``), as in flux-core;
* encoding never reorders hosts: runs of hosts that share a prefix go into
  one bracket, consecutive numbers become ``lo-hi`` ranges, and
  duplicates are kept (``foo[1,1,2]``).

As an extension, several bracket groups in one expression are expanded as a
cartesian product, leftmost slowest: ``rack[1-2]n[0-1]`` is ``rack1n0,
rack1n1, rack2n0, rack2n1``.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator

__all__ = ["Hostlist", "decode", "encode"]

MAX_RANGE = 1 << 20  # largest host count one bracket range may expand to
_SEPARATORS = ", \t"
_DIGITS = "0123456789"


class _Range:
    """``prefix`` + numbers ``lo..hi`` zero padded to ``width``, or, when
    ``single`` is set, exactly one host named ``prefix``."""

    __slots__ = ("prefix", "lo", "hi", "width", "single")

    def __init__(self, prefix: str, lo: int = 0, hi: int = 0, width: int = 0,
                 single: bool = False) -> None:
        self.prefix, self.lo, self.hi = prefix, lo, hi
        self.width, self.single = width, single

    def count(self) -> int:
        return 1 if self.single else self.hi - self.lo + 1

    def host(self, depth: int) -> str:
        if self.single:
            return self.prefix
        return self.prefix + str(self.lo + depth).zfill(self.width)

    def numstr(self) -> str:
        s = str(self.lo).zfill(self.width)
        if self.hi > self.lo:
            s += "-" + str(self.hi).zfill(self.width)
        return s


def _pad(n: int, width: int) -> int:
    return max(width - len(str(n)), 0)


def _width_equiv(n: int, wn: int, m: int, wm: int) -> int | None:
    """Return a width under which both ``n`` (width ``wn``) and ``m`` (width
    ``wm``) render unchanged, or None if there is none (flux's
    ``width_equiv``)."""
    if _pad(n, wn) == _pad(n, wm):
        return wm
    if _pad(m, wm) == _pad(m, wn):
        return wn
    return None


def _host_range(name: str) -> _Range:
    """Split a host name into prefix and trailing number."""
    i = len(name)
    while i > 0 and name[i - 1] in _DIGITS:
        i -= 1
    digits = name[i:]
    if not digits or len(digits) > 19:
        return _Range(name, single=True)
    n = int(digits)
    return _Range(name[:i], n, n, len(digits))


def _within(a: _Range, b: _Range) -> bool:
    """True if ``a`` and ``b`` belong in the same bracket when encoding."""
    return a.prefix == b.prefix and not a.single and not b.single


def _invalid(text: str, why: str) -> ValueError:
    return ValueError(f"invalid hostlist {text!r}: {why}")


def _tokens(s: str) -> Iterator[str]:
    """Split on separators that are not inside brackets."""
    depth = 0
    start = 0
    for i, c in enumerate(s):
        if c == "[":
            depth += 1
            if depth > 1:
                raise _invalid(s, "nested brackets")
        elif c == "]":
            depth -= 1
            if depth < 0:
                raise _invalid(s, "unmatched ']'")
        elif depth == 0 and c in _SEPARATORS:
            if i > start:
                yield s[start:i]
            start = i + 1
        elif c < " " or c == "\x7f" or c.isspace():
            raise _invalid(s, f"invalid character {c!r}")
    if depth:
        raise _invalid(s, "unmatched '['")
    if start < len(s):
        yield s[start:]


def _parse_idlist(body: str, text: str) -> list[tuple[int, int, int]]:
    """Parse ``"1-3,07"`` into ``[(lo, hi, width), ...]``."""
    out = []
    for elem in body.split(","):
        lo_s, sep, hi_s = elem.partition("-")
        if not lo_s or lo_s.strip(_DIGITS) or (sep and (not hi_s or hi_s.strip(_DIGITS))):
            raise _invalid(text, f"bad range {elem!r}")
        lo = int(lo_s)
        hi = int(hi_s) if sep else lo
        if hi < lo:
            raise _invalid(text, f"range end before start in {elem!r}")
        if hi - lo + 1 > MAX_RANGE:
            raise _invalid(text, f"range {elem!r} is too large")
        out.append((lo, hi, len(lo_s)))
    return out


class Hostlist:
    """An ordered list of host names stored in compressed form.

    Args:
        hosts: ``None`` (empty), a hostlist string such as
            ``"foo[0-3,7],bar1"``, another Hostlist (copied), or an iterable
            of hostlist strings (each may itself be an expression).

    Raises:
        ValueError: if a string is not a valid hostlist (unbalanced or
            nested brackets, empty or malformed idlist, range end before
            start, a range of more than 2**20 hosts, control characters).
        TypeError: if ``hosts`` is of an unsupported type.
    """

    __slots__ = ("_ranges", "_count")

    def __init__(self, hosts: str | Iterable[str] | None = None) -> None:
        self._ranges: list[_Range] = []
        self._count = 0
        if hosts is not None:
            self.append(hosts)

    @classmethod
    def decode(cls, s: str) -> Hostlist:
        """Parse a hostlist string; raises ValueError if it is invalid."""
        new = cls()
        new.append(s)
        return new

    # -- building ---------------------------------------------------------

    def _push(self, r: _Range) -> None:
        tail = self._ranges[-1] if self._ranges else None
        if (tail is not None and _within(tail, r) and tail.hi == r.lo - 1):
            w = _width_equiv(tail.lo, tail.width, r.lo, r.width)
            if w is not None:
                tail.hi, tail.width = r.hi, w
                self._count += r.count()
                return
        self._ranges.append(r)
        self._count += r.count()

    def _push_token(self, tok: str, text: str) -> None:
        lb = tok.find("[")
        if lb < 0:  # brackets were already checked by _tokens()
            self._push(_host_range(tok))
            return
        rb = tok.find("]", lb)
        prefix, rest = tok[:lb], tok[rb + 1:]
        body = tok[lb + 1:rb]
        if not body:
            raise _invalid(text, "empty brackets")
        ranges = _parse_idlist(body, text)
        if not rest:
            for lo, hi, width in ranges:
                self._push(_Range(prefix, lo, hi, width))
            return
        for lo, hi, width in ranges:
            for n in range(lo, hi + 1):
                name = prefix + str(n).zfill(width) + rest
                if "[" in rest:
                    self._push_token(name, text)
                else:
                    self._push(_Range(name, single=True))
                if self._count > MAX_RANGE * 16:
                    raise _invalid(text, "expands to too many hosts")

    def append(self, hosts: str | Iterable[str] | Hostlist) -> int:
        """Append hosts to the end of the list.

        Args:
            hosts: a hostlist string, a Hostlist, or an iterable of hostlist
                strings.

        Returns:
            The number of hosts appended.

        Raises:
            ValueError: if a string is not a valid hostlist; that string
                adds nothing.
            TypeError: for unsupported argument types.
        """
        before = self._count
        if isinstance(hosts, Hostlist):
            for r in list(hosts._ranges):
                self._push(_Range(r.prefix, r.lo, r.hi, r.width, r.single))
        elif isinstance(hosts, str):
            tmp = Hostlist()  # parse fully first so errors change nothing
            for tok in _tokens(hosts):
                tmp._push_token(tok, hosts)
            for r in tmp._ranges:
                self._push(r)
        elif isinstance(hosts, Iterable):
            for h in hosts:
                if not isinstance(h, str):
                    raise TypeError(f"host names must be str, not {type(h).__name__}")
                self.append(h)
        else:
            raise TypeError(f"cannot build a hostlist from {type(hosts).__name__}")
        return self._count - before

    extend = append

    # -- encoding ---------------------------------------------------------

    def encode(self) -> str:
        """Return the compressed form, e.g. ``"foo[0-3,7],bar1"``; it
        decodes back to the same list in the same order."""
        out: list[str] = []
        rl = self._ranges
        i = 0
        while i < len(rl):
            first = rl[i]
            bracket = first.count() > 1 or (i + 1 < len(rl) and _within(first, rl[i + 1]))
            nums = []
            while True:
                if not rl[i].single:
                    nums.append(rl[i].numstr())
                i += 1
                if i >= len(rl) or not _within(rl[i], rl[i - 1]):
                    break
            body = ",".join(nums)
            out.append(f"{first.prefix}[{body}]" if bracket else first.prefix + body)
        return ",".join(out)

    def __str__(self) -> str:
        return self.encode()

    def __repr__(self) -> str:
        return f"Hostlist({self.encode()!r})"

    # -- sequence protocol ------------------------------------------------

    def __len__(self) -> int:
        return self._count

    def __iter__(self) -> Iterator[str]:
        for r in self._ranges:
            for depth in range(r.count()):
                yield r.host(depth)

    def __getitem__(self, index: int | slice) -> str | Hostlist:
        """Return the host at ``index`` (negative counts from the end), or a
        new Hostlist for a slice; IndexError if out of range."""
        if isinstance(index, slice):
            new = Hostlist()
            new._rebuild(list(self._items())[index])
            return new
        if not isinstance(index, int):
            raise TypeError(f"hostlist indices must be int, not {type(index).__name__}")
        n = index + self._count if index < 0 else index
        if n < 0 or n >= self._count:
            raise IndexError(f"hostlist index {index} out of range")
        for r in self._ranges:
            c = r.count()
            if n < c:
                return r.host(n)
            n -= c
        raise IndexError(f"hostlist index {index} out of range")  # not reached

    def find(self, host: str) -> int:
        """Return the position of the first occurrence of ``host``, or -1."""
        pos = 0
        for r in self._ranges:
            if r.single:
                if host == r.prefix:
                    return pos
            elif host.startswith(r.prefix):
                digits = host[len(r.prefix):]
                if digits and not digits.strip(_DIGITS):
                    n = int(digits)
                    if r.lo <= n <= r.hi and str(n).zfill(r.width) == digits:
                        return pos + n - r.lo
            pos += r.count()
        return -1

    def index(self, host: str) -> int:
        """Return the position of the first occurrence of ``host``.

        Raises:
            ValueError: if ``host`` is not in the list.
        """
        i = self.find(host)
        if i < 0:
            raise ValueError(f"host {host!r} is not in hostlist")
        return i

    def __contains__(self, host: object) -> bool:
        return isinstance(host, str) and self.find(host) >= 0

    def __eq__(self, other: object) -> bool:
        if isinstance(other, str):
            try:
                other = Hostlist(other)
            except ValueError:
                return False
        if not isinstance(other, Hostlist):
            return NotImplemented
        return self._count == other._count and list(self) == list(other)

    __hash__ = None  # type: ignore[assignment]  # mutable

    def copy(self) -> Hostlist:
        """Return an independent copy."""
        return Hostlist(self)

    # -- reordering -------------------------------------------------------

    def _items(self) -> Iterator[tuple[str, bool]]:
        """Yield ``(name, single)`` pairs; ``single`` marks names that came
        from a bracket with a suffix and so are never re-compressed."""
        for r in self._ranges:
            for depth in range(r.count()):
                yield r.host(depth), r.single

    def _rebuild(self, items: Iterable[tuple[str, bool]]) -> None:
        self._ranges, self._count = [], 0
        for name, single in items:
            self._push(_Range(name, single=True) if single else _host_range(name))

    def sort(self) -> None:
        """Sort hosts by prefix, then (for equal prefixes) plain names before
        numbered ones, unpadded numbers before zero-padded ones, then by
        number."""
        def key(item: tuple[str, bool]) -> tuple:
            r = _Range(item[0], single=True) if item[1] else _host_range(item[0])
            if r.single:
                return (r.prefix, 0, 0, 0)
            padded = r.width if _pad(r.lo, r.width) else 0
            return (r.prefix, 1, padded, r.lo)
        self._rebuild(sorted(self._items(), key=key))

    def uniq(self) -> None:
        """Sort the list and drop duplicate host names."""
        self.sort()
        items = list(self._items())
        self._rebuild(
            it for i, it in enumerate(items) if i == 0 or it[0] != items[i - 1][0]
        )

    def delete(self, hosts: str | Iterable[str]) -> int:
        """Remove the first occurrence of each host in ``hosts``.

        Args:
            hosts: a hostlist string or iterable of host names.

        Returns:
            The number of hosts removed (absent hosts are ignored).

        Raises:
            ValueError: if ``hosts`` is a malformed hostlist string.
        """
        items = list(self._items())
        removed = 0
        for h in Hostlist(hosts):
            for i, (name, _) in enumerate(items):
                if name == h:
                    del items[i]
                    removed += 1
                    break
        if removed:
            self._rebuild(items)
        return removed


def decode(s: str) -> Hostlist:
    """Parse a hostlist string; raises ValueError if it is invalid."""
    return Hostlist.decode(s)


def encode(hosts: Iterable[str]) -> str:
    """Compress host names (or hostlist strings), keeping their order;
    raises ValueError for a malformed hostlist string."""
    return Hostlist(hosts).encode()
