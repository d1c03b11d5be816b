"""The job manager on rank 0, one module per role:

- ``ingest.py``: ``job-ingest.submit``, the checks a submission must pass;
- ``manager.py``: the state machine (events, states, raise/kill/urgency/wait,
  the scheduler and exec glue), ``JobManager``, which owns the others;
- ``info.py``: ``job-info.*`` and ``job-list.*``, what clients read of the jobs;
- ``depend.py``: dependencies (RFC 26), the jobs they hold in DEPEND;
- ``purge.py``: inactive jobs' limits, ``job-manager.purge`` and ``stats-get``;
- ``job.py``: a job's record, rebuilt from its eventlog on a restart.

Each serves its topics through ``services/base.py``'s ``Service``.
"""

from flux_launch.services.job_manager.manager import JobManager

__all__ = ["JobManager"]
