"""``sched.resource-status``: the pool as ``flux resource list`` shows it (no I/O).

As in flux-core's scheduler view, a rank that cannot be used now is ``down``
whatever the reason (lost, never answered, drained), with all its resources
counted there; what is allocated on it still counts as ``allocated`` (a drained
rank whose jobs still run). An up rank's free resources count as ``free``, its
allocated ones as ``allocated`` (a partly used rank is in both).
"""

from flux_launch.core.hostlist import Hostlist
from flux_launch.core.idset import encode


def resource_status(pool, sources):
    """The ``free``, ``allocated`` and ``down`` entries of ``pool``, and its ranks.

    Args:
        pool: the scheduler's :class:`~flux_launch.services.sched.pool.Pool`.
        sources: rank -> where its resources came from (``hwloc``, ``xml``...).

    Returns:
        ``{state: {ranks (an idset string), nnodes, ncores, ngpus, nodelist}}``
        plus ``sources`` (rank as a string -> source) and ``nodes``: one
        ``{rank, hostname, core, gpu, free_core, free_gpu, up, drained,
        properties}`` per rank (ids as idset strings), for ``-o`` formats.
    """
    out = {state: {"ranks": [], "ncores": 0, "ngpus": 0} for state in ("free", "allocated", "down")}
    nodes = []

    def add(state, rank, ncores, ngpus):
        entry = out[state]
        entry["ranks"].append(rank)
        entry["ncores"] += ncores
        entry["ngpus"] += ngpus

    for rank in pool.ranks:
        total = pool.resources(rank)
        free = pool.free_resources(rank)
        ncores, ngpus = len(total["core"]), len(total["gpu"])
        nfree, gfree = len(free["core"]), len(free["gpu"])
        up, drained = pool.is_up(rank), pool.is_drained(rank)
        nodes.append({"rank": rank, "hostname": pool.hostname(rank), "core": encode(total["core"]),
                      "gpu": encode(total["gpu"]), "free_core": encode(free["core"]),
                      "free_gpu": encode(free["gpu"]), "up": up, "drained": drained,
                      "properties": pool.properties(rank)})
        if not up or drained:
            add("down", rank, ncores, ngpus)
        elif nfree or gfree:
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
    out["nodes"] = nodes
    return out
