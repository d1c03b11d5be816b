"""Which tasks run on which rank: the job's slots, from R and the jobspec.

A rank holds ``len(cores) // cores_per_slot`` slots, at most the jobspec's slots
per node when it has a node level: an exclusive node (``-N`` without ``-n``) is
allocated with all its cores, yet runs only the jobspec's slots, as flux-core's
shell runs the jobspec's task count. With ``per_slot`` N each slot runs N tasks;
with ``total`` T the tasks are spread over the slots in order, the first
``T % nslots`` slots taking one more. Task ids are contiguous per rank, in
rank order (block distribution).
"""


class TaskMap:
    """The job's tasks per rank.

    Attributes:
        ranks: broker ranks of the job, ascending.
        counts: tasks on each of those ranks.
        ntasks: total tasks.
    """

    def __init__(self, ranks, counts):
        self.ranks = ranks
        self.counts = counts
        self.ntasks = sum(counts)
        self._first = {}
        n = 0
        for rank, count in zip(ranks, counts):
            self._first[rank] = n
            n += count

    def local(self, rank):
        """Global task ids that run on ``rank``."""
        first = self._first[rank]
        return list(range(first, first + self.counts[self.ranks.index(rank)]))

    def node_index(self, rank):
        return self.ranks.index(rank)

    def rfc34(self):
        """The RFC 34 task map: ``{version: 1, map: [[nodeid, nnodes, ppn, repeat], ...]}``
        (block distribution; runs of nodes with the same task count are merged)."""
        blocks = []
        for nodeid, count in enumerate(self.counts):
            if blocks and blocks[-1][2] == count and blocks[-1][0] + blocks[-1][1] == nodeid:
                blocks[-1][1] += 1
            else:
                blocks.append([nodeid, 1, count, 1])
        return {"version": 1, "map": blocks}


def compute(alloc, summary, per_resource=None):
    """The ``TaskMap`` of a job.

    Args:
        alloc: ``{rank: {"core": [...], ...}}`` (rank keys may be strings).
        summary: ``proto.jobspec.summary()`` of the jobspec.
        per_resource: the shell option ``per-resource`` (flux-core's): ``{"type":
            "core"|"node", "count": N}`` runs N tasks per allocated core or node
            instead of the jobspec's counts (this is how a job oversubscribes).

    Raises:
        ValueError: the allocation holds no slot, or ``per-resource`` is invalid.
    """
    ranks = sorted(int(r) for r in alloc)
    if per_resource:
        if not isinstance(per_resource, dict) or per_resource.get("type") not in ("core", "node"):
            raise ValueError("per-resource.type must be core or node")
        count = per_resource.get("count", 1)
        if type(count) is not int or count < 1:  # not bool, not float
            raise ValueError("per-resource.count must be a positive integer")
        if per_resource["type"] == "node":
            return TaskMap(ranks, [count] * len(ranks))
        return TaskMap(ranks, [count * len(alloc.get(r, alloc.get(str(r), {})).get("core", ())) for r in ranks])
    cps = max(1, summary.get("cores_per_slot", 1))
    slots = [len(alloc.get(r, alloc.get(str(r), {})).get("core", ())) // cps for r in ranks]
    per_node = summary.get("slots_per_node")
    if per_node:  # whole (exclusive) nodes hold more cores than their slots
        slots = [min(s, per_node) for s in slots]
    nslots = sum(slots)
    if nslots == 0:
        raise ValueError("R holds no complete slot for this job")
    if summary.get("per_slot"):
        counts = [s * summary["per_slot"] for s in slots]
    else:
        total = summary.get("total") or summary.get("ntasks") or nslots
        base, extra = divmod(total, nslots)
        counts = []
        slot_index = 0
        for s in slots:
            n = 0
            for _ in range(s):
                n += base + (1 if slot_index < extra else 0)
                slot_index += 1
            counts.append(n)
    return TaskMap(ranks, counts)
