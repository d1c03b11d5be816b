"""R version 1: the resource set format of Flux RFC 20.

An *R* document describes concrete resources: which cores and GPUs on
which broker ranks.  The scheduler writes one for each allocation; the
execution system reads it, and releases parts of it back.  Its shape::

    {"version": 1,
     "execution": {
         "R_lite": [{"rank": "0-1", "children": {"core": "0-3", "gpu": "0"}}],
         "nodelist": ["node[0-1]"],
         "properties": {"debug": "1"},
         "starttime": 0.0,
         "expiration": 0.0}}

``R_lite`` entries group ranks whose children are identical into one RFC 22
idset (as flux-core's librlist does), sorted by their lowest rank.  The
``nodelist`` is an array of RFC 29 hostlists naming the host of every rank,
in ascending rank order; ``properties`` maps a property name to the idset
of ranks having it.  ``starttime``/``expiration`` are seconds since the
epoch, 0 meaning unset.

In memory a resource set is a :class:`ResourceSet` whose :attr:`ranks`
is the *alloc* mapping used by the scheduler:
``{rank: {"core": [ids...], "gpu": [ids...]}}`` with sorted id lists.

Decoding is strict about what the execution system relies on (version,
``R_lite`` shape, idsets, host count, times) and raises ``ValueError``
with a message starting ``"R: "``.  As in flux-core, ``nodelist`` may be
absent (older producers); unknown keys (``scheduling``, ``nslots``,
future ``children`` types) are ignored.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from flux_launch.core.hostlist import Hostlist
from flux_launch.core.idset import IDset

__all__ = ["ResourceSet", "decode", "encode"]

_BAD_PROPERTY_CHARS = frozenset("!&'\"^`|()")


def _err(msg: str) -> ValueError:
    return ValueError(f"R: {msg}")


def _as_rank(key: object) -> int:
    """Accept int ranks and decimal-string ranks (JSON object keys)."""
    if isinstance(key, bool):
        raise _err(f"invalid rank {key!r}")
    if isinstance(key, int):
        rank = key
    elif isinstance(key, str) and key.isdigit():
        rank = int(key)
    else:
        raise _err(f"invalid rank {key!r}")
    if rank < 0:
        raise _err(f"invalid rank {key!r}")
    return rank


def _as_ids(value: object, what: str) -> list[int]:
    """Normalize an idset string or iterable of ints to a sorted list."""
    try:
        if value is None:
            return []
        return list(IDset(value))  # type: ignore[arg-type]
    except (ValueError, TypeError) as exc:
        raise _err(f"invalid {what}: {exc}") from None


def _as_time(value: object, what: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise _err(f"{what} must be a number, not {type(value).__name__}")
    if value != value or value < 0:  # NaN or negative
        raise _err(f"invalid {what} {value!r}")
    return float(value)


def _check_property_name(name: object) -> str:
    if not isinstance(name, str) or not name:
        raise _err(f"invalid property name {name!r}")
    bad = _BAD_PROPERTY_CHARS.intersection(name)
    if bad:
        raise _err(f"property name {name!r} contains illegal character "
                   f"{''.join(sorted(bad))!r}")
    return name


class ResourceSet:
    """A decoded R version 1 resource set.

    Args:
        ranks: the alloc mapping ``{rank: {"core": ids, "gpu": ids}}``
            (ids as iterables of ints or idset strings; "gpu" optional).
        nodelist: host names (or RFC 29 hostlist strings) for the ranks in
            ascending rank order; ``None`` or empty when unknown.
        starttime: seconds since the epoch the set is valid from (0: unset).
        expiration: seconds since the epoch the set expires (0: unset).
        properties: ``{name: ranks}`` with ranks as an iterable or idset.

    Raises:
        ValueError: ``"R: ..."`` for a negative or non-integer rank or id,
            a malformed idset, a nodelist whose host count differs from the
            number of ranks, a negative time, an expiration before the
            start time, a property name with an illegal character, or a
            property naming a rank not in the set.

    Attributes:
        ranks: ``{rank: {"core": [...], "gpu": [...]}}``, sorted lists.
        nodelist: one host name per rank in ascending rank order, or ``[]``.
        starttime: float seconds.
        expiration: float seconds.
        properties: ``{name: sorted list of ranks}``.
    """

    __slots__ = ("ranks", "nodelist", "starttime", "expiration", "properties")

    def __init__(self, ranks: Mapping[object, Mapping[str, object]] | None = None,
                 nodelist: Iterable[str] | str | None = None,
                 starttime: float = 0.0, expiration: float = 0.0,
                 properties: Mapping[str, object] | None = None) -> None:
        self.ranks: dict[int, dict[str, list[int]]] = {}
        for key in sorted(ranks or {}, key=_as_rank):
            rank = _as_rank(key)
            if rank in self.ranks:
                raise _err(f"rank {rank} given twice")
            children = ranks[key]  # type: ignore[index]
            if not isinstance(children, Mapping):
                raise _err(f"rank {rank}: resources must be a mapping")
            self.ranks[rank] = {
                "core": _as_ids(children.get("core"), f"core ids of rank {rank}"),
                "gpu": _as_ids(children.get("gpu"), f"gpu ids of rank {rank}"),
            }
        self.nodelist: list[str] = []
        if nodelist:
            try:
                hosts = list(Hostlist(nodelist))
            except (ValueError, TypeError) as exc:
                raise _err(f"invalid nodelist: {exc}") from None
            if len(hosts) != len(self.ranks):
                raise _err(f"nodelist has {len(hosts)} hosts but the set has "
                           f"{len(self.ranks)} ranks")
            self.nodelist = hosts
        self.starttime = _as_time(starttime, "starttime")
        self.expiration = _as_time(expiration, "expiration")
        if self.expiration and self.expiration < self.starttime:
            raise _err(f"expiration {self.expiration} is before starttime "
                       f"{self.starttime}")
        self.properties: dict[str, list[int]] = {}
        for name, ids in (properties or {}).items():
            name = _check_property_name(name)
            plist = _as_ids(ids, f"ranks of property {name!r}")
            missing = [r for r in plist if r not in self.ranks]
            if missing:
                raise _err(f"property {name!r} names rank {missing[0]} "
                           "which is not in the set")
            if plist:
                self.properties[name] = plist

    # -- queries ----------------------------------------------------------

    def rank_list(self) -> list[int]:
        """Return the ranks in ascending order."""
        return list(self.ranks)

    @property
    def nnodes(self) -> int:
        """Number of ranks in the set."""
        return len(self.ranks)

    @property
    def ncores(self) -> int:
        """Total number of cores over all ranks."""
        return sum(len(c["core"]) for c in self.ranks.values())

    @property
    def ngpus(self) -> int:
        """Total number of GPUs over all ranks."""
        return sum(len(c["gpu"]) for c in self.ranks.values())

    def host(self, rank: int) -> str | None:
        """Return the host name of ``rank``, or None if unknown.

        Raises:
            KeyError: if ``rank`` is not in the set.
        """
        if rank not in self.ranks:
            raise KeyError(rank)
        if not self.nodelist:
            return None
        return self.nodelist[list(self.ranks).index(rank)]

    def hosts(self) -> dict[int, str]:
        """Return ``{rank: hostname}`` (empty if the nodelist is unknown)."""
        if not self.nodelist:
            return {}
        return dict(zip(self.ranks, self.nodelist))

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, ResourceSet):
            return NotImplemented
        return (self.ranks == other.ranks and self.nodelist == other.nodelist
                and self.starttime == other.starttime
                and self.expiration == other.expiration
                and self.properties == other.properties)

    __hash__ = None  # type: ignore[assignment]  # mutable

    def __repr__(self) -> str:
        return f"ResourceSet({self.to_dict()!r})"

    # -- conversions ------------------------------------------------------

    def to_dict(self) -> dict:
        """Return the R version 1 document (see :func:`encode`)."""
        return encode(self)

    def copy(self) -> ResourceSet:
        """Return an independent copy."""
        new = ResourceSet.__new__(ResourceSet)
        new.ranks = {r: {"core": list(c["core"]), "gpu": list(c["gpu"])}
                     for r, c in self.ranks.items()}
        new.nodelist = list(self.nodelist)
        new.starttime = self.starttime
        new.expiration = self.expiration
        new.properties = {k: list(v) for k, v in self.properties.items()}
        return new

    # -- set algebra ------------------------------------------------------

    def _combine(self, other: ResourceSet, op: str) -> ResourceSet:
        hosts = {**other.hosts(), **self.hosts()}
        out: dict[int, dict[str, list[int]]] = {}
        for rank in sorted(set(self.ranks) | set(other.ranks)):
            a = self.ranks.get(rank)
            b = other.ranks.get(rank)
            if op == "union":
                if a is None or b is None:
                    out[rank] = a or b  # type: ignore[assignment]
                    continue
                res = {k: sorted(set(a[k]) | set(b[k])) for k in ("core", "gpu")}
            elif op == "difference":
                if a is None:
                    continue
                if b is None:
                    out[rank] = a
                    continue
                res = {k: sorted(set(a[k]) - set(b[k])) for k in ("core", "gpu")}
            else:  # intersection
                if a is None or b is None:
                    continue
                res = {k: sorted(set(a[k]) & set(b[k])) for k in ("core", "gpu")}
            if res["core"] or res["gpu"]:
                out[rank] = res
        new = ResourceSet.__new__(ResourceSet)
        new.ranks = {r: {"core": list(c["core"]), "gpu": list(c["gpu"])}
                     for r, c in out.items()}
        new.nodelist = ([hosts[r] for r in new.ranks]
                        if all(r in hosts for r in new.ranks) else [])
        new.starttime = self.starttime
        new.expiration = self.expiration
        props: dict[str, list[int]] = {}
        for src in (self.properties, other.properties):
            for name, rl in src.items():
                kept = [r for r in rl if r in new.ranks]
                if kept:
                    props[name] = sorted(set(props.get(name, [])) | set(kept))
        new.properties = props
        return new

    def union(self, other: ResourceSet) -> ResourceSet:
        """Return a set holding the resources of both sets.

        Times come from ``self``; host names and properties from both.
        """
        return self._combine(other, "union")

    def difference(self, other: ResourceSet) -> ResourceSet:
        """Return the resources of ``self`` not in ``other``; ranks left
        with no cores and no GPUs are dropped."""
        return self._combine(other, "difference")

    def intersection(self, other: ResourceSet) -> ResourceSet:
        """Return the resources present in both sets."""
        return self._combine(other, "intersection")


def encode(alloc: Mapping[object, Mapping[str, object]],
           nodelist: Iterable[str] | str | None = None,
           starttime: float = 0.0, expiration: float = 0.0,
           properties: Mapping[str, object] | None = None) -> dict:
    """Build an R version 1 document from an alloc mapping.

    Args:
        alloc: ``{rank: {"core": ids, "gpu": ids}}``; ids are iterables of
            ints or idset strings, "gpu" may be missing or empty.  A
            :class:`ResourceSet` is accepted too (the other arguments are
            then ignored).
        nodelist: host names (or hostlist strings) of the ranks in
            ascending rank order; omitted from the result when ``None``.
        starttime: seconds since the epoch, 0 for unset.
        expiration: seconds since the epoch, 0 for unset.
        properties: ``{name: ranks}`` (iterable of ints or idset string);
            included only when non-empty.

    Returns:
        The R dict.  Ranks whose children are identical share one
        ``R_lite`` entry; entries are ordered by lowest rank; "gpu" is
        omitted from children when empty; the nodelist is one compressed
        hostlist string in a list, e.g. ``["node[0-3]"]``.

    Raises:
        ValueError: ``"R: ..."`` for invalid ranks, ids, nodelist (wrong
            host count), times or properties, as :class:`ResourceSet`.
    """
    if isinstance(alloc, ResourceSet):
        rs = alloc
    else:
        rs = ResourceSet(alloc, nodelist, starttime, expiration, properties)
    groups: dict[tuple[str, str], list[int]] = {}
    for rank, children in rs.ranks.items():
        key = (IDset(children["core"]).encode(), IDset(children["gpu"]).encode())
        groups.setdefault(key, []).append(rank)
    r_lite = []
    for (cores, gpus), ranks in groups.items():  # insertion order = lowest rank
        kids = {"core": cores}
        if gpus:
            kids["gpu"] = gpus
        r_lite.append({"rank": IDset(ranks).encode(), "children": kids})
    execution: dict = {"R_lite": r_lite}
    if rs.nodelist:
        execution["nodelist"] = [Hostlist(rs.nodelist).encode()]
    execution["starttime"] = rs.starttime
    execution["expiration"] = rs.expiration
    if rs.properties:
        execution["properties"] = {name: IDset(rl).encode()
                                   for name, rl in rs.properties.items()}
    return {"version": 1, "execution": execution}


def decode(R: object) -> ResourceSet:
    """Parse an R version 1 document.

    Args:
        R: the R dict (already JSON-decoded).

    Returns:
        A :class:`ResourceSet`.

    Raises:
        ValueError: ``"R: ..."`` if ``R`` is not an object, its version is
            missing or not 1, ``execution`` or ``R_lite`` is missing or not
            of the right type, an entry lacks ``rank``/``children`` or the
            ``core`` idset, an idset is malformed, a core or GPU appears
            twice on one rank, the nodelist is malformed or its host count
            differs from the number of ranks, a time is invalid, or a
            property is invalid.
    """
    if not isinstance(R, Mapping):
        raise _err(f"expected a JSON object, not {type(R).__name__}")
    if "version" not in R:
        raise _err("missing version")
    version = R["version"]
    if isinstance(version, bool) or version != 1:
        raise _err(f"unsupported version {version!r} (expected 1)")
    ex = R.get("execution")
    if ex is None:
        raise _err("missing execution")
    if not isinstance(ex, Mapping):
        raise _err("execution must be an object")
    r_lite = ex.get("R_lite")
    if r_lite is None:
        raise _err("missing execution.R_lite")
    if not isinstance(r_lite, list):
        raise _err("execution.R_lite must be an array")
    ranks: dict[int, dict[str, list[int]]] = {}
    for i, entry in enumerate(r_lite):
        if not isinstance(entry, Mapping):
            raise _err(f"R_lite[{i}] must be an object")
        if not isinstance(entry.get("rank"), str):
            raise _err(f"R_lite[{i}]: missing or non-string rank")
        children = entry.get("children")
        if not isinstance(children, Mapping):
            raise _err(f"R_lite[{i}]: missing or non-object children")
        if not isinstance(children.get("core"), str):
            raise _err(f"R_lite[{i}]: missing or non-string children.core")
        gpu = children.get("gpu", "")
        if not isinstance(gpu, str):
            raise _err(f"R_lite[{i}]: children.gpu must be a string")
        rank_ids = _as_ids(entry["rank"], f"R_lite[{i}].rank")
        cores = _as_ids(children["core"], f"R_lite[{i}].children.core")
        gpus = _as_ids(gpu, f"R_lite[{i}].children.gpu")
        for rank in rank_ids:
            have = ranks.get(rank)
            if have is None:
                ranks[rank] = {"core": list(cores), "gpu": list(gpus)}
                continue
            for kind, ids in (("core", cores), ("gpu", gpus)):
                dup = set(have[kind]).intersection(ids)
                if dup:
                    raise _err(f"rank {rank} {kind} {min(dup)} appears twice")
                have[kind] = sorted(have[kind] + ids)
    nodelist = ex.get("nodelist")
    if nodelist is not None:
        if not isinstance(nodelist, list) or not all(
                isinstance(h, str) for h in nodelist):
            raise _err("execution.nodelist must be an array of strings")
    props = ex.get("properties")
    if props is not None:
        if not isinstance(props, Mapping):
            raise _err("execution.properties must be an object")
        for name, ids in props.items():
            if not isinstance(ids, str):
                raise _err(f"property {name!r}: ranks must be an idset string")
    return ResourceSet(ranks, nodelist, ex.get("starttime", 0.0),
                       ex.get("expiration", 0.0), props)


def rerank(R: Mapping | ResourceSet) -> ResourceSet:
    """The set with its ranks renumbered 0..N-1 in ascending order (host names,
    properties, times kept): the resources of a job as the nested instance that
    runs on them numbers its brokers."""
    rs = R if isinstance(R, ResourceSet) else decode(R)
    new = {old: i for i, old in enumerate(sorted(rs.ranks))}
    return ResourceSet({new[r]: c for r, c in rs.ranks.items()}, rs.nodelist, rs.starttime, rs.expiration,
                       {name: [new[r] for r in ranks] for name, ranks in rs.properties.items()})
