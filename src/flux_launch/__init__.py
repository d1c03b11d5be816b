"""flux_launch: an MPI-aware launcher and job shell that behaves like Flux."""

__version__ = "0.1.0"
