"""The shape of the overlay: ranks form a k-ary tree (k = ``tbon.fanout``) rooted
at rank 0, parent(r) = (r-1)//k. Pure arithmetic: no zeromq here, so that a
size-1 broker and the router load none.
"""


def parent_of(rank, k):
    """Parent rank of ``rank`` in a k-ary tree (None for rank 0)."""
    return None if rank == 0 else (rank - 1) // k


def children_of(rank, size, k):
    """Ranks of the direct children of ``rank``."""
    first = rank * k + 1
    return list(range(first, min(first + k, size)))


def subtree_of(rank, size, k):
    """``rank`` and all its descendants, in ascending order."""
    out = []
    level = [rank]
    while level:
        out.extend(level)
        level = [c for r in level for c in children_of(r, size, k)]
    return sorted(out)


def child_toward(rank, target, k):
    """The child of ``rank`` on the path down to ``target``, or None if ``target``
    is not below ``rank``."""
    t = target
    while t > rank:
        p = (t - 1) // k
        if p == rank:
            return t
        t = p
    return None
