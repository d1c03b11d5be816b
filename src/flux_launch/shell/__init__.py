"""The job shell: one process per node per job (see main.py for its lifecycle)."""
