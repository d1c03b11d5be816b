"""Clients of the instance and of PMI: the broker handle (``Flux``), the PMI-1
client and the local PMI server. The I/O lives here; ``proto`` and ``core`` hold
none."""
