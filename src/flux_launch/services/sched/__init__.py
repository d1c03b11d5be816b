"""Scheduler engine: resource pool (:mod:`.pool`) and queue policy (:mod:`.policy`)."""
