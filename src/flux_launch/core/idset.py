"""Idset: a set of non-negative integer ids (Flux RFC 22).

An idset string lists ids in ascending order, separated by commas, with
consecutive ids optionally compressed into ``lo-hi`` ranges and the whole
string optionally wrapped in square brackets, e.g. ``"0-3,7"`` or
``"[0-3,7]"``.  The empty string is the empty set.

Decoding is strict, like flux-core's ``idset_decode()``: ids must appear in
ascending order without repeats, must not have leading zeros, and nothing
but digits, commas, hyphens and one pair of enclosing brackets is allowed.

Internally an :class:`IDset` is a sorted list of disjoint, non-adjacent
``(lo, hi)`` ranges, so huge ranges such as ``"0-1000000000"`` cost nothing.
"""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Iterable, Iterator

__all__ = ["IDset", "decode", "encode"]

_DIGITS = frozenset("0123456789")


def _invalid(text: str, why: str) -> ValueError:
    return ValueError(f"invalid idset {text!r}: {why}")


def _parse_id(tok: str, text: str) -> int:
    if not tok:
        raise _invalid(text, "empty id")
    if not _DIGITS.issuperset(tok):
        raise _invalid(text, f"{tok!r} is not a non-negative decimal integer")
    if len(tok) > 1 and tok[0] == "0":
        raise _invalid(text, f"id {tok!r} has a leading zero")
    return int(tok)


def _normalize(ranges: list[tuple[int, int]]) -> list[tuple[int, int]]:
    """Sort ranges and merge overlapping or adjacent ones."""
    ranges.sort()
    out: list[tuple[int, int]] = []
    for lo, hi in ranges:
        if out and lo <= out[-1][1] + 1:
            if hi > out[-1][1]:
                out[-1] = (out[-1][0], hi)
        else:
            out.append((lo, hi))
    return out


class IDset:
    """A set of non-negative integers with RFC 22 string encoding.

    Args:
        value: ``None`` (empty set), an idset string (see :meth:`decode`),
            another :class:`IDset` (copied), or an iterable of non-negative
            ints.

    Raises:
        ValueError: if ``value`` is a malformed idset string or an iterable
            containing a negative id.
        TypeError: if ``value`` (or one of its items) is of an unsupported
            type.
    """

    __slots__ = ("_ranges",)

    def __init__(self, value: str | Iterable[int] | None = None) -> None:
        self._ranges: list[tuple[int, int]] = []
        if value is None:
            return
        if isinstance(value, str):
            self._ranges = IDset.decode(value)._ranges
        elif isinstance(value, IDset):
            self._ranges = list(value._ranges)
        else:
            ids: list[tuple[int, int]] = []
            for i in value:
                if not isinstance(i, int) or isinstance(i, bool):
                    raise TypeError(f"idset ids must be int, not {type(i).__name__}")
                if i < 0:
                    raise ValueError(f"invalid idset id {i}: ids must be non-negative")
                ids.append((i, i))
            self._ranges = _normalize(ids)

    # -- construction -----------------------------------------------------

    @classmethod
    def decode(cls, s: str) -> IDset:
        """Parse an RFC 22 idset string such as ``"0-3,7"`` or ``"[0-3,7]"``.

        Args:
            s: the idset string.  ``""`` and ``"[]"`` give the empty set.

        Returns:
            A new IDset.

        Raises:
            ValueError: if ``s`` is malformed: unbalanced or nested brackets,
                empty elements, non-digit characters (whitespace included),
                leading zeros, a range whose end is before its start, or ids
                that are not strictly ascending (repeats, overlaps).
            TypeError: if ``s`` is not a string.
        """
        if not isinstance(s, str):
            raise TypeError(f"idset string expected, not {type(s).__name__}")
        body = s
        if body.startswith("["):
            if not body.endswith("]") or len(body) < 2:
                raise _invalid(s, "unbalanced brackets")
            body = body[1:-1]
        if "[" in body or "]" in body:
            raise _invalid(s, "unexpected bracket")
        new = cls()
        if body == "":
            return new
        ranges = new._ranges
        prev = -1
        for elem in body.split(","):
            lo_s, sep, hi_s = elem.partition("-")
            lo = _parse_id(lo_s, s)
            hi = _parse_id(hi_s, s) if sep else lo
            if hi < lo:
                raise _invalid(s, f"range end before start in {elem!r}")
            if lo <= prev:
                raise _invalid(s, f"{elem!r} is not in ascending order")
            if ranges and lo == prev + 1:
                ranges[-1] = (ranges[-1][0], hi)
            else:
                ranges.append((lo, hi))
            prev = hi
        return new

    @classmethod
    def from_ranges(cls, ranges: Iterable[tuple[int, int]]) -> IDset:
        """Build an IDset from inclusive ``(lo, hi)`` pairs in any order.

        Raises:
            ValueError: if a pair has ``hi < lo`` or a negative bound.
        """
        rl = []
        for lo, hi in ranges:
            if lo < 0 or hi < lo:
                raise ValueError(f"invalid idset range ({lo}, {hi})")
            rl.append((int(lo), int(hi)))
        new = cls()
        new._ranges = _normalize(rl)
        return new

    # -- encoding ---------------------------------------------------------

    def encode(self, ranges: bool = True, brackets: bool = False) -> str:
        """Return the RFC 22 string form of the set.

        Args:
            ranges: compress runs of consecutive ids into ``lo-hi``.
            brackets: wrap the result in ``[ ]`` when it holds more than one
                id (as flux-core's ``IDSET_FLAG_BRACKETS`` does).

        Returns:
            For example ``"0-3,7"``; ``""`` for the empty set.
        """
        parts: list[str] = []
        for lo, hi in self._ranges:
            if lo == hi:
                parts.append(str(lo))
            elif ranges:
                parts.append(f"{lo}-{hi}")
            else:
                parts.extend(str(i) for i in range(lo, hi + 1))
        s = ",".join(parts)
        if brackets and len(self) > 1:
            s = f"[{s}]"
        return s

    def ranges(self) -> list[tuple[int, int]]:
        """Return the set as a sorted list of disjoint inclusive ranges."""
        return list(self._ranges)

    def __str__(self) -> str:
        return self.encode()

    def __repr__(self) -> str:
        return f"IDset({self.encode()!r})"

    # -- container protocol -----------------------------------------------

    def __len__(self) -> int:
        return sum(hi - lo + 1 for lo, hi in self._ranges)

    def __bool__(self) -> bool:
        return bool(self._ranges)

    def __iter__(self) -> Iterator[int]:
        for lo, hi in self._ranges:
            yield from range(lo, hi + 1)

    def __reversed__(self) -> Iterator[int]:
        for lo, hi in reversed(self._ranges):
            yield from range(hi, lo - 1, -1)

    def __contains__(self, item: object) -> bool:
        if not isinstance(item, int):
            return False
        i = bisect_right(self._ranges, (item, float("inf"))) - 1
        return i >= 0 and self._ranges[i][0] <= item <= self._ranges[i][1]

    def first(self) -> int:
        """Return the smallest id.

        Raises:
            ValueError: if the set is empty.
        """
        if not self._ranges:
            raise ValueError("first() of empty idset")
        return self._ranges[0][0]

    def last(self) -> int:
        """Return the largest id.

        Raises:
            ValueError: if the set is empty.
        """
        if not self._ranges:
            raise ValueError("last() of empty idset")
        return self._ranges[-1][1]

    def copy(self) -> IDset:
        """Return an independent copy."""
        return IDset(self)

    # -- mutation ---------------------------------------------------------

    def add(self, lo: int, hi: int | None = None) -> None:
        """Add id ``lo`` (or the inclusive range ``lo..hi``).

        Raises:
            ValueError: if an id is negative or ``hi < lo``.
        """
        hi = lo if hi is None else hi
        if lo < 0 or hi < lo:
            raise ValueError(f"invalid idset range ({lo}, {hi})")
        self._ranges = _normalize(self._ranges + [(lo, hi)])

    def discard(self, lo: int, hi: int | None = None) -> None:
        """Remove id ``lo`` (or the range ``lo..hi``) if present; never raises
        for absent ids."""
        hi = lo if hi is None else hi
        self._ranges = _subtract(self._ranges, [(lo, hi)])

    # -- set algebra ------------------------------------------------------

    def _coerce(self, other: object) -> IDset | None:
        if isinstance(other, IDset):
            return other
        if isinstance(other, (set, frozenset)):
            return IDset(other)
        return None

    def __or__(self, other: object) -> IDset:
        o = self._coerce(other)
        if o is None:
            return NotImplemented
        new = IDset()
        new._ranges = _normalize(self._ranges + o._ranges)
        return new

    __ror__ = __or__

    def __and__(self, other: object) -> IDset:
        o = self._coerce(other)
        if o is None:
            return NotImplemented
        out: list[tuple[int, int]] = []
        a, b = self._ranges, o._ranges
        i = j = 0
        while i < len(a) and j < len(b):
            lo = max(a[i][0], b[j][0])
            hi = min(a[i][1], b[j][1])
            if lo <= hi:
                out.append((lo, hi))
            if a[i][1] < b[j][1]:
                i += 1
            else:
                j += 1
        new = IDset()
        new._ranges = out
        return new

    __rand__ = __and__

    def __sub__(self, other: object) -> IDset:
        o = self._coerce(other)
        if o is None:
            return NotImplemented
        new = IDset()
        new._ranges = _subtract(self._ranges, o._ranges)
        return new

    def __rsub__(self, other: object) -> IDset:
        o = self._coerce(other)
        if o is None:
            return NotImplemented
        return o - self

    def __xor__(self, other: object) -> IDset:
        o = self._coerce(other)
        if o is None:
            return NotImplemented
        return (self - o) | (o - self)

    def union(self, other: IDset) -> IDset:
        """Return ``self | other``."""
        return self | IDset(other)

    def intersection(self, other: IDset) -> IDset:
        """Return ``self & other``."""
        return self & IDset(other)

    def difference(self, other: IDset) -> IDset:
        """Return ``self - other``."""
        return self - IDset(other)

    def issubset(self, other: IDset) -> bool:
        """Return True if every id of ``self`` is in ``other``."""
        return not (self - IDset(other))

    def __le__(self, other: object) -> bool:
        o = self._coerce(other)
        if o is None:
            return NotImplemented
        return not (self - o)

    def __ge__(self, other: object) -> bool:
        o = self._coerce(other)
        if o is None:
            return NotImplemented
        return not (o - self)

    def __eq__(self, other: object) -> bool:
        o = self._coerce(other)
        if o is None:
            return NotImplemented
        return self._ranges == o._ranges

    __hash__ = None  # type: ignore[assignment]  # mutable


def _subtract(
    a: list[tuple[int, int]], b: list[tuple[int, int]]
) -> list[tuple[int, int]]:
    """Return ranges ``a`` minus ranges ``b`` (both sorted and disjoint)."""
    out: list[tuple[int, int]] = []
    j = 0
    for lo, hi in a:
        while j < len(b) and b[j][1] < lo:
            j += 1
        k = j
        cur = lo
        while k < len(b) and b[k][0] <= hi:
            if b[k][0] > cur:
                out.append((cur, b[k][0] - 1))
            cur = max(cur, b[k][1] + 1)
            k += 1
        if cur <= hi:
            out.append((cur, hi))
    return out


def decode(s: str) -> IDset:
    """Parse an idset string; see :meth:`IDset.decode`.

    Raises:
        ValueError: if ``s`` is not a valid RFC 22 idset string.
    """
    return IDset.decode(s)


def encode(ids: Iterable[int], ranges: bool = True, brackets: bool = False) -> str:
    """Encode an iterable of ids (any order, repeats allowed) as a string.

    Raises:
        ValueError: if an id is negative.
        TypeError: if an id is not an int.
    """
    return IDset(ids).encode(ranges=ranges, brackets=brackets)
