"""Resource pool: which cores and GPUs of which broker ranks are free.

A request is a summary of a jobspec (:class:`Request`): ``nslots`` slots of
``cores_per_slot`` cores and ``gpus_per_slot`` GPUs, a slot always lying on
one rank.  Placement follows flux-core's sched-simple (librlist), made
deterministic (lowest ranks, then lowest core/GPU ids first):

* ``nnodes == 0``: first fit -- slots are packed onto ranks in rank order,
  filling each rank's free cores before moving on; a slot is never split.
* ``nnodes > 0``: exactly ``nnodes`` ranks are used, each getting at least
  one slot: ``slots_per_node`` each when given, else the slots are spread
  as evenly as the ranks' free room allows (extra slots to lower ranks).
  The lowest-numbered ranks are used when they have room enough, else
  those with the most room.  As in sched-simple (and flux-core's CLI,
  where ``-N`` alone implies ``--exclusive``), nodes are shared unless the
  request is ``exclusive``.
* ``exclusive``: only ranks with nothing allocated are used, and whole
  ranks (all their cores and GPUs) are allocated.  sched-simple refuses
  ``exclusive`` without ``nnodes``; here it means "pack the slots onto
  whole idle ranks in rank order".

Ranks marked down or drained are never allocated, but count as existing
for :meth:`Pool.feasible` (a request that fits the whole instance is kept
waiting, not rejected).  ``constraints`` is a list of properties a rank
must all have.

Allocations are *alloc* mappings ``{rank: {"core": [...], "gpu": [...]}}``,
the form :func:`flux_launch.proto.rv1.encode` turns into R.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass

from flux_launch.proto import rv1

__all__ = ["Pool", "Request", "coerce_request"]

def _int(d: Mapping, key: str, default: int, minimum: int) -> int:
    v = d.get(key)
    v = default if v is None else v
    if isinstance(v, bool) or not isinstance(v, int):
        raise ValueError(f"invalid request: {key} must be an integer, not {v!r}")
    if v < minimum:
        raise ValueError(f"invalid request: {key} must be >= {minimum}, not {v}")
    return v


@dataclass(frozen=True, slots=True)
class Request:
    """A normalized resource request (see the module docstring).

    Build one with :meth:`from_dict`; ``duration`` is seconds, 0 meaning
    unlimited; ``slots_per_node`` is None or >= 1 and only set together
    with ``nnodes > 0`` (then ``nslots == nnodes * slots_per_node``).
    """

    nslots: int = 1
    cores_per_slot: int = 1
    gpus_per_slot: int = 0
    nnodes: int = 0
    slots_per_node: int | None = None
    exclusive: bool = False
    duration: float = 0.0
    constraints: tuple[str, ...] = ()

    @classmethod
    def from_dict(cls, d: Mapping) -> Request:
        """Normalize a jobspec-summary dict.

        Keys (all optional): ``nnodes`` (0), ``nslots`` (1),
        ``slots_per_node`` (None; ignored when ``nnodes`` is 0),
        ``cores_per_slot`` (1), ``gpus_per_slot`` (0), ``exclusive``
        (False), ``duration`` (0.0), ``constraints`` (list of property
        names).  Other keys are ignored.

        Raises:
            ValueError: ``"invalid request: ..."`` for a non-integer or out
                of range count (``nslots`` and ``cores_per_slot`` must be
                >= 1), a negative or non-numeric duration, a non-list of
                constraint strings, or ``nslots`` differing from
                ``nnodes * slots_per_node``.
        """
        if not isinstance(d, Mapping):
            raise ValueError(f"invalid request: expected a mapping, not {type(d).__name__}")
        nnodes = _int(d, "nnodes", 0, 0)
        cps = _int(d, "cores_per_slot", 1, 1)
        gps = _int(d, "gpus_per_slot", 0, 0)
        spn = None if d.get("slots_per_node") is None else _int(d, "slots_per_node", 1, 1)
        if spn is not None and nnodes > 0:
            total = nnodes * spn
            given = d.get("nslots")
            if given not in (None, 0) and given != total:
                raise ValueError(f"invalid request: nslots={given!r} but nnodes={nnodes}"
                                 f" x slots_per_node={spn} = {total}")
            nslots = total
        else:
            spn = None
            nslots = _int(d, "nslots", 1, 1)
        dur = d.get("duration") or 0.0
        if isinstance(dur, bool) or not isinstance(dur, (int, float)) or not dur >= 0:
            raise ValueError(f"invalid request: duration must be a number >= 0, not {dur!r}")
        cons = d.get("constraints") or ()
        if not isinstance(cons, (list, tuple)) or not all(isinstance(c, str) for c in cons):
            raise ValueError(f"invalid request: constraints must be a list of strings, "
                             f"not {cons!r}")
        return cls(nslots, cps, gps, nnodes, spn, bool(d.get("exclusive", False)),
                   float(dur), tuple(dict.fromkeys(cons)))


def coerce_request(request: Request | Mapping) -> Request:
    """Return ``request`` as a :class:`Request`.

    Raises:
        ValueError: if a dict request is invalid (see :meth:`Request.from_dict`).
    """
    if isinstance(request, Request):
        return request
    return Request.from_dict(request)


def _cap(nc: int, ng: int, cps: int, gps: int) -> int:
    """Number of slots that fit in ``nc`` cores and ``ng`` GPUs."""
    return min(nc // cps, ng // gps) if gps else nc // cps


def _spread(need: int, caps: list[int]) -> list[int]:
    """Split ``need`` slots over nodes as evenly as ``caps`` allow.

    Assumes ``len(caps) <= need <= sum(caps)`` and every cap >= 1; every
    node gets >= 1 slot, extra slots go to the lowest positions.
    """
    n, left = len(caps), need
    counts = [0] * n
    order = sorted(range(n), key=lambda i: (caps[i], i))
    for j, i in enumerate(order):
        fair, rem = divmod(left, n - j)
        if caps[i] <= fair:  # saturated: give it all it holds
            counts[i] = caps[i]
            left -= caps[i]
            continue
        for k, p in enumerate(sorted(order[j:])):  # everyone left has room
            counts[p] = fair + (1 if k < rem else 0)
        break
    return counts


def _plan(req: Request, entries: Iterable[tuple[int, int, int]]) -> list[tuple[int, int]] | None:
    """Place ``req`` on ``entries`` = (rank, ncores, ngpus) in rank order.

    Returns:
        ``[(rank, nslots_on_rank)]`` in rank order, or None if it cannot be
        placed.  Complete: None only if no placement exists at all.
    """
    cps, gps, need, n = req.cores_per_slot, req.gpus_per_slot, req.nslots, req.nnodes
    if n == 0:
        out = []
        for rank, nc, ng in entries:
            cap = _cap(nc, ng, cps, gps)
            if cap > 0:
                k = cap if cap < need else need
                out.append((rank, k))
                need -= k
                if need == 0:
                    return out
        return None
    if n > need:
        return None
    spn = req.slots_per_node
    if spn is not None:
        out = []
        for rank, nc, ng in entries:
            if _cap(nc, ng, cps, gps) >= spn:
                out.append((rank, spn))
                if len(out) == n:
                    return out
        return None
    cands = [(rank, min(cap, need)) for rank, nc, ng in entries
             if (cap := _cap(nc, ng, cps, gps)) > 0]
    if len(cands) < n:
        return None
    chosen = cands[:n]
    if sum(c for _, c in chosen) < need:
        chosen = sorted(cands, key=lambda x: (-x[1], x[0]))[:n]
        if sum(c for _, c in chosen) < need:
            return None
        chosen.sort()
    counts = _spread(need, [c for _, c in chosen])
    return [(rank, k) for (rank, _), k in zip(chosen, counts)]


def _plural(n: int, word: str) -> str:
    return f"{n} {word}" if n == 1 else f"{n} {word}s"


class _Rank:
    __slots__ = ("rank", "cores", "gpus", "hostname", "props", "free_cores",
                 "free_gpus", "up", "drained")

    def __init__(self, rank: int, cores: list[int], gpus: list[int], hostname: str,
                 props: frozenset[str]) -> None:
        self.rank, self.cores, self.gpus = rank, cores, gpus
        self.hostname, self.props, self.up, self.drained = hostname, props, True, False
        self.free_cores, self.free_gpus = list(cores), list(gpus)

    def idle(self) -> bool:
        return (len(self.free_cores) == len(self.cores)
                and len(self.free_gpus) == len(self.gpus))


def _id_list(v: object, what: str) -> list[int]:
    try:
        ids = list(v)  # type: ignore[call-overload]
    except TypeError:
        raise ValueError(f"{what} must be a list of ids, not {v!r}") from None
    if any(isinstance(i, bool) or not isinstance(i, int) or i < 0 for i in ids):
        raise ValueError(f"{what}: ids must be non-negative integers, not {ids!r}")
    if len(set(ids)) != len(ids):
        raise ValueError(f"{what}: duplicate ids")
    return sorted(ids)


class Pool:
    """Free and allocated cores/GPUs of a set of broker ranks.

    Args:
        ranks: ``{rank: {"cores": [ids], "gpus": [ids], "hostname": str,
            "properties": [names]}}``; "gpus", "hostname" and "properties"
            are optional.

    Raises:
        ValueError: for a negative or non-integer rank or id, or a repeated
            id on one rank.
    """

    __slots__ = ("_ranks", "_order")

    def __init__(self, ranks: Mapping[int, Mapping]) -> None:
        self._ranks: dict[int, _Rank] = {}
        for rank in ranks:
            if isinstance(rank, bool) or not isinstance(rank, int) or rank < 0:
                raise ValueError(f"invalid rank {rank!r}")
        for rank in sorted(ranks):
            info = ranks[rank]
            props = info.get("properties") or ()
            if isinstance(props, str):
                raise ValueError(f"rank {rank}: properties must be a list")
            self._ranks[rank] = _Rank(
                rank, _id_list(info.get("cores", ()), f"rank {rank} cores"),
                _id_list(info.get("gpus", ()), f"rank {rank} gpus"),
                str(info.get("hostname") or ""), frozenset(props))
        self._order = list(self._ranks.values())

    @classmethod
    def from_R(cls, R: Mapping | rv1.ResourceSet) -> Pool:
        """Build a pool from an R version 1 document (or ResourceSet), with
        host names and rank properties; ValueError ``"R: ..."`` if invalid."""
        rs = R if isinstance(R, rv1.ResourceSet) else rv1.decode(R)
        hosts = rs.hosts()
        props: dict[int, list[str]] = {}
        for name, rl in rs.properties.items():
            for r in rl:
                props.setdefault(r, []).append(name)
        return cls({r: {"cores": c["core"], "gpus": c["gpu"], "hostname": hosts.get(r, ""),
                        "properties": props.get(r, [])} for r, c in rs.ranks.items()})

    def copy(self) -> Pool:
        """Return an independent copy (free/allocated and up/down state included)."""
        new, new._ranks = Pool.__new__(Pool), {}
        for r, st in self._ranks.items():
            c = _Rank(r, st.cores, st.gpus, st.hostname, st.props)
            c.free_cores, c.free_gpus, c.up = list(st.free_cores), list(st.free_gpus), st.up
            c.drained = st.drained
            new._ranks[r] = c
        new._order = list(new._ranks.values())
        return new

    # -- queries ----------------------------------------------------------

    def _get(self, rank: int) -> _Rank:
        if (st := self._ranks.get(rank)) is None:
            raise ValueError(f"unknown rank {rank!r}")
        return st

    ranks = property(lambda self: list(self._ranks), doc="All ranks, ascending.")
    ncores = property(lambda self: sum(len(st.cores) for st in self._order),
                      doc="Total cores, down ranks included.")
    ngpus = property(lambda self: sum(len(st.gpus) for st in self._order),
                     doc="Total GPUs, down ranks included.")

    def free_counts(self) -> tuple[int, int]:
        """Return (free cores, free GPUs) on up ranks that are not drained."""
        up = [st for st in self._order if st.up and not st.drained]
        return sum(len(s.free_cores) for s in up), sum(len(s.free_gpus) for s in up)

    def free_resources(self, rank: int) -> dict[str, list[int]]:
        """Return ``{"core": [...], "gpu": [...]}`` free on ``rank`` (up or
        not); ValueError if ``rank`` is unknown."""
        st = self._get(rank)
        return {"core": list(st.free_cores), "gpu": list(st.free_gpus)}

    def resources(self, rank: int) -> dict[str, list[int]]:
        """Return ``{"core": [...], "gpu": [...]}`` that ``rank`` has, free or
        not; ValueError if ``rank`` is unknown."""
        st = self._get(rank)
        return {"core": list(st.cores), "gpu": list(st.gpus)}

    def is_up(self, rank: int) -> bool:
        """Tell if ``rank`` is up; ValueError if it is unknown."""
        return self._get(rank).up

    def is_drained(self, rank: int) -> bool:
        """Tell if ``rank`` is drained; ValueError if it is unknown."""
        return self._get(rank).drained

    def is_rank_idle(self, rank: int) -> bool:
        """True if nothing is allocated on ``rank``; ValueError if it is unknown."""
        return self._get(rank).idle()

    def is_idle(self) -> bool:
        """True if nothing is allocated anywhere."""
        return all(st.idle() for st in self._order)

    def properties(self, rank: int) -> list[str]:
        """Return the properties of ``rank``, sorted; ValueError if it is unknown."""
        return sorted(self._get(rank).props)

    def hostname(self, rank: int) -> str:
        """Return the host name of ``rank`` ("" if not known); ValueError
        if the rank is unknown."""
        return self._get(rank).hostname

    def to_R(self, alloc: Mapping[int, Mapping], starttime: float = 0.0,
             expiration: float = 0.0) -> dict:
        """Encode ``alloc`` as R version 1 with host names and properties.

        The nodelist is included only if every rank has a host name.

        Raises:
            ValueError: if a rank is unknown or ``alloc`` is malformed.
        """
        sts = [self._get(r) for r in sorted(alloc)]
        nodelist = [st.hostname for st in sts]
        props: dict[str, list[int]] = {}
        for st in sts:
            for p in sorted(st.props):
                props.setdefault(p, []).append(st.rank)
        return rv1.encode(alloc, nodelist if all(nodelist) else None, starttime,
                          expiration, props or None)

    # -- up / down --------------------------------------------------------

    def set_down(self, rank: int) -> None:
        """Mark ``rank`` down: it gets no new allocations (what it has
        allocated stays so until freed); ValueError if it is unknown."""
        self._get(rank).up = False

    def set_up(self, rank: int) -> None:
        """Mark ``rank`` up again.  Raises ValueError if it is unknown."""
        self._get(rank).up = True

    def set_drained(self, rank: int, drained: bool = True) -> None:
        """Drain ``rank`` (or undrain it): a drained rank gets no new allocations,
        what it has allocated stays so until freed; ValueError if it is unknown."""
        self._get(rank).drained = bool(drained)

    def set_resources(self, rank: int, cores: list[int], gpus: list[int], hostname: str) -> None:
        """Give ``rank`` the resources it reported late (a broker that joined after
        the quorum timeout): only a rank that has nothing allocated; ValueError else."""
        r = self._get(rank)
        if not r.idle():
            raise ValueError(f"rank {rank} has resources allocated")
        r.cores, r.gpus = _id_list(cores, f"rank {rank} cores"), _id_list(gpus, f"rank {rank} gpus")
        r.free_cores, r.free_gpus = list(r.cores), list(r.gpus)
        r.hostname = hostname

    # -- allocation -------------------------------------------------------

    def _entries(self, req: Request) -> Iterator[tuple[int, int, int]]:
        cons, excl = req.constraints, req.exclusive
        for st in self._order:
            if st.up and not st.drained and (not cons or st.props.issuperset(cons)) \
                    and (not excl or st.idle()):
                yield st.rank, len(st.free_cores), len(st.free_gpus)

    def alloc(self, request: Request | Mapping) -> dict[int, dict[str, list[int]]] | None:
        """Allocate ``request`` now (see the module docstring for placement).

        Returns:
            The alloc mapping ``{rank: {"core": [...], "gpu": [...]}}`` (both
            keys always present), or None if it does not fit now; the pool
            is unchanged then.

        Raises:
            ValueError: if ``request`` is an invalid dict.
        """
        req = coerce_request(request)
        plan = _plan(req, self._entries(req))
        if plan is None:
            return None
        cps, gps = req.cores_per_slot, req.gpus_per_slot
        out: dict[int, dict[str, list[int]]] = {}
        for rank, k in plan:
            st = self._ranks[rank]
            if req.exclusive:
                cores, gpus = st.free_cores, st.free_gpus
                st.free_cores, st.free_gpus = [], []
            else:
                nc, ng = k * cps, k * gps
                cores, gpus = st.free_cores[:nc], st.free_gpus[:ng]
                del st.free_cores[:nc]
                del st.free_gpus[:ng]
            out[rank] = {"core": cores, "gpu": gpus}
        return out

    def _check(self, alloc: Mapping[int, Mapping], want_free: bool,
               what: str) -> list[tuple[_Rank, list[int], list[int]]]:
        todo = []
        for rank, res in alloc.items():
            st = self._get(rank)
            cores, gpus = list(res.get("core", ())), list(res.get("gpu", ()))
            for kind, ids, total, free in (("core", cores, st.cores, st.free_cores),
                                           ("gpu", gpus, st.gpus, st.free_gpus)):
                if len(set(ids)) != len(ids):
                    raise ValueError(f"{what}: rank {rank} {kind} ids repeated")
                have, fset = set(total), set(free)
                for i in ids:
                    if i not in have:
                        raise ValueError(f"{what}: rank {rank} has no {kind} {i!r}")
                    if (i in fset) != want_free:
                        state = "free" if want_free else "allocated"
                        raise ValueError(f"{what}: rank {rank} {kind} {i} is not {state}")
            todo.append((st, cores, gpus))
        return todo

    def free(self, alloc: Mapping[int, Mapping]) -> None:
        """Return ``alloc`` (or any part of one) to the pool.

        Raises:
            ValueError: if a rank or id is unknown, or some listed resource
                is not allocated (double free); nothing is freed then.
        """
        for st, cores, gpus in self._check(alloc, False, "free"):
            if cores:
                st.free_cores = sorted(st.free_cores + cores)
            if gpus:
                st.free_gpus = sorted(st.free_gpus + gpus)

    def claim(self, alloc: Mapping[int, Mapping]) -> None:
        """Mark exactly the resources in ``alloc`` allocated (e.g. to
        re-attach jobs that were running before a restart).  Down ranks may
        be claimed.

        Raises:
            ValueError: if a rank or id is unknown or a listed resource is
                already allocated; nothing is claimed then.
        """
        for st, cores, gpus in self._check(alloc, True, "claim"):
            cs, gs = set(cores), set(gpus)
            st.free_cores = [i for i in st.free_cores if i not in cs]
            st.free_gpus = [i for i in st.free_gpus if i not in gs]

    def hold(self, alloc: Mapping[int, Mapping]) -> dict[int, dict[str, list[int]]]:
        """Claim whatever part of ``alloc`` is free now; return that part
        (an alloc mapping to :meth:`free` later).  Unknown ranks and ids
        are skipped."""
        held: dict[int, dict[str, list[int]]] = {}
        for rank, res in alloc.items():
            if (st := self._ranks.get(rank)) is None:
                continue
            fc, fg = set(st.free_cores), set(st.free_gpus)
            cores = [i for i in res.get("core", ()) if i in fc]
            gpus = [i for i in res.get("gpu", ()) if i in fg]
            if cores or gpus:
                held[rank] = {"core": cores, "gpu": gpus}
        self.claim(held)
        return held

    # -- feasibility ------------------------------------------------------

    def feasible(self, request: Request | Mapping) -> tuple[bool, str]:
        """Tell whether ``request`` could ever be satisfied: with every
        resource free and every rank (down ones included) usable.

        Returns:
            ``(True, "")``, or ``(False, reason)`` where reason starts with
            ``"unsatisfiable request: "`` (or ``"invalid request: "`` for
            a malformed dict).  Exact: uses the same placement as
            :meth:`alloc`.
        """
        try:
            req = coerce_request(request)
        except ValueError as exc:
            return False, str(exc)
        cons = req.constraints
        elig = [st for st in self._order if not cons or st.props.issuperset(cons)]
        if _plan(req, ((st.rank, len(st.cores), len(st.gpus)) for st in elig)):
            return True, ""
        pre = "unsatisfiable request: "
        where = f" with properties {','.join(cons)}" if cons else ""
        if not elig:
            return False, f"{pre}no node has properties {','.join(cons)}"
        cps, gps, n, ns = req.cores_per_slot, req.gpus_per_slot, req.nnodes, req.nslots
        if n > ns:
            return False, f"{pre}{_plural(n, 'node')} requested for only {_plural(ns, 'slot')}"
        if n > len(elig):
            return False, f"{pre}{_plural(n, 'node')} requested, the instance has {len(elig)}{where}"
        tc, tg = sum(len(st.cores) for st in elig), sum(len(st.gpus) for st in elig)
        slot = f"{_plural(ns, 'slot')} of {_plural(cps, 'core')}"
        if gps and tg == 0:
            return False, f"{pre}gpus requested, the instance has no GPUs{where}"
        if ns * cps > tc:
            return False, f"{pre}{slot} requested, the instance has {_plural(tc, 'core')}{where}"
        if gps and ns * gps > tg:
            return False, (f"{pre}{_plural(ns, 'slot')} of {_plural(gps, 'GPU')} requested, "
                           f"the instance has {_plural(tg, 'GPU')}{where}")
        mc = max(len(st.cores) for st in elig)
        if cps > mc:
            return False, (f"{pre}slots of {_plural(cps, 'core')} requested, the largest node "
                           f"has {_plural(mc, 'core')}{where}")
        mg = max(len(st.gpus) for st in elig)
        if gps > mg:
            return False, (f"{pre}slots of {_plural(gps, 'GPU')} requested, the largest node "
                           f"has {_plural(mg, 'GPU')}{where}")
        if gps:
            slot += f" and {_plural(gps, 'GPU')}"
        on = f"{_plural(n, 'node')} of " if n else ""
        per = f" ({req.slots_per_node} per node)" if req.slots_per_node else ""
        return False, (f"{pre}{slot}{per} do not fit on {on}the instance "
                       f"({_plural(tc, 'core')} on {_plural(len(elig), 'node')}{where})")
