"""``sched.resource-status``: the pool as ``flux resource list`` shows it (no I/O).

A rank is ``down`` when it is lost or never answered (its resources, when known,
are counted there), else its free resources count as ``free`` and its allocated
ones as ``allocated`` (a partly used rank is in both).
"""

from flux_launch.core.hostlist import Hostlist
from flux_launch.core.idset import encode


def resource_status(pool, sources):
    """The ``free``, ``allocated`` and ``down`` entries of ``pool``.

    Args:
        pool: the scheduler's :class:`~flux_launch.services.sched.pool.Pool`.
        sources: rank -> where its resources came from (``hwloc``, ``xml``...).

    Returns:
        ``{state: {ranks (an idset string), nnodes, ncores, ngpus, nodelist}}``
        plus ``sources`` (rank as a string -> source).
    """
    out = {state: {"ranks": [], "ncores": 0, "ngpus": 0} for state in ("free", "allocated", "down")}

    def add(state, rank, ncores, ngpus):
        entry = out[state]
        entry["ranks"].append(rank)
        entry["ncores"] += ncores
        entry["ngpus"] += ngpus

    for rank in pool.ranks:
        total = pool.resources(rank)
        ncores, ngpus = len(total["core"]), len(total["gpu"])
        if not pool.is_up(rank):
            add("down", rank, ncores, ngpus)
            continue
        free = pool.free_resources(rank)
        nfree, gfree = len(free["core"]), len(free["gpu"])
        if nfree or gfree:
            add("free", rank, nfree, gfree)
        if nfree < ncores or gfree < ngpus:
            add("allocated", rank, ncores - nfree, ngpus - gfree)
    for entry in out.values():
        hosts = Hostlist()
        for rank in entry["ranks"]:
            hosts.append(pool.hostname(rank))
        entry["nnodes"] = len(entry["ranks"])
        entry["nodelist"] = str(hosts)
        entry["ranks"] = encode(entry["ranks"])
    out["sources"] = {str(r): src for r, src in sources.items()}
    return out
