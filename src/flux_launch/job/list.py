"""Job listings, flux-core's ``flux.job.list``: ``job_list``, ``job_list_inactive``,
``job_list_id``, ``get_job`` and the ``JobList`` query class.

The job-list service filters by states, results, user and count; ``since``,
``name`` and ``queue`` are applied here, on the records it returns (flux-core
sends them as a constraint). Records come newest first.

Failures: an unknown job raises ``OSError(ENOENT)`` from ``job_list_id(...).get_job()``
(``get_job`` returns ``None`` instead; ``JobList(ids=...)`` records it in
``errors``); a bad filter or user raises ``ValueError`` when the query is built.
"""

import errno
import os

from flux_launch.core.jobid import JobID
from flux_launch.proto.job import RESULT_BITS, STATE_BITS

FLUX_USERID_UNKNOWN = 0xFFFFFFFF

_PENDING = STATE_BITS["DEPEND"] | STATE_BITS["PRIORITY"] | STATE_BITS["SCHED"]
_RUNNING = STATE_BITS["RUN"] | STATE_BITS["CLEANUP"]


def _jobinfo(record):
    from flux_launch.job.info import JobInfo

    return JobInfo(record)


class _Query:
    """A pending job-list answer: ``get()`` (the payload), ``then(cb, *args)``
    (``cb(self, *args)`` from the reactor), ``is_ready()``, ``wait_for()``."""

    def __init__(self, fut):
        self._fut = fut
        self._payload = None

    def get(self):
        if self._payload is None:
            self._payload = self._fut.get()
        return self._payload

    def is_ready(self):
        return self._payload is not None or self._fut.is_ready()

    def wait_for(self, timeout=None):
        if self._payload is None:
            self._fut.wait_for(timeout)
        return self

    def then(self, callback, *args):
        self._fut.then(lambda _f: callback(self, *args))
        return self


class JobListRPC(_Query):
    """The answer of ``job_list``: ``get_jobs()`` (dicts), ``get_jobinfos()`` (``JobInfo``s)."""

    def __init__(self, fut, since=0.0, name=None, queue=None, max_entries=0):
        super().__init__(fut)
        self._since = since
        self._name = name
        self._jqueue = queue
        self._max = max_entries

    def get_jobs(self):
        """The records (dicts), newest first.

        Raises:
            OSError: the service refused the query.
        """
        jobs = self.get()["jobs"]
        if self._since or self._name or self._jqueue:
            jobs = [j for j in jobs if self._wanted(j)]
            if self._max:
                jobs = jobs[:self._max]
        return jobs

    def _wanted(self, job):
        if self._name and job.get("name") != self._name:
            return False
        if self._jqueue and job.get("queue") != self._jqueue:
            return False
        # since: jobs still active, or that became inactive after it
        return not (self._since and job.get("t_inactive") and job["t_inactive"] <= self._since)

    def get_jobinfos(self):
        """Yield a ``JobInfo`` for each record."""
        for job in self.get_jobs():
            yield _jobinfo(job)


def job_list(flux_handle, max_entries=1000, attrs=("all",), userid=None, states=0, results=0, since=0.0,
             name=None, queue=None):
    """List jobs: a ``JobListRPC`` (``get_jobs()``, ``get_jobinfos()``).

    Args:
        max_entries: at most this many (0: all).
        attrs: accepted for flux-core's sake; every attribute is returned.
        userid: whose jobs (default: the caller's; ``FLUX_USERID_UNKNOWN``: everyone's).
        states, results: bit masks (``JobList.STATES``/``RESULTS``); a job in either is listed.
        since: leave out jobs that became inactive at or before this time.
        name, queue: only jobs of this name, of this queue.
    """
    if userid is None:
        userid = os.getuid()
    local = bool(since or name or queue)
    payload = {"max_entries": 0 if local else int(max_entries), "states": int(states), "results": int(results),
               "userid": -1 if userid in (FLUX_USERID_UNKNOWN, -1) else int(userid)}
    return JobListRPC(flux_handle.rpc("job-list.list", payload), since, name, queue, int(max_entries))


def job_list_inactive(flux_handle, since=0.0, max_entries=1000, attrs=("all",), name=None, queue=None):
    """``job_list`` of inactive jobs of every user."""
    return job_list(flux_handle, max_entries=max_entries, attrs=attrs, userid=FLUX_USERID_UNKNOWN,
                    states=STATE_BITS["INACTIVE"], since=since, name=name, queue=queue)


class JobListIdRPC(_Query):
    """The answer of ``job_list_id``: ``get_job()`` (a dict), ``get_jobinfo()``."""

    def __init__(self, fut, jobid):
        super().__init__(fut)
        self.jobid = jobid

    def get_job(self):
        """The record.

        Raises:
            OSError: ENOENT for an unknown job.
        """
        return self.get()["job"]

    def get_jobinfo(self):
        return _jobinfo(self.get_job())


def job_list_id(flux_handle, jobid, attrs=("all",)):
    """One job's record: a ``JobListIdRPC``."""
    return JobListIdRPC(flux_handle.rpc("job-list.list-id", {"id": int(JobID(jobid))}), jobid)


def get_job(flux_handle, jobid):
    """One job's attributes as a dict (``JobInfo.to_dict(filtered=False)``), or
    ``None`` when there is no such job."""
    try:
        info = job_list_id(flux_handle, jobid).get_jobinfo()
    except FileNotFoundError:
        return None
    return info.to_dict(filtered=False)


class JobListIdsFuture:
    """The answers of several ``job_list_id`` queries: ``get_jobs()`` returns the
    records found and puts one line per failure in ``errors``."""

    def __init__(self):
        self.children = []
        self.errors = []

    def push(self, child):
        self.children.append(child)

    def get_jobs(self):
        jobs = []
        for child in self.children:
            try:
                jobs.append(child.get_job())
            except OSError as exc:
                self.errors.append(f"JobID {child.jobid} unknown" if exc.errno == errno.ENOENT
                                   else f"rpc: {exc.strerror}")
        return jobs

    def get_jobinfos(self):
        return [_jobinfo(job) for job in self.get_jobs()]


class JobList:
    """A job query, flux-core's: by default the caller's last ``max_entries`` jobs.

    Args:
        flux_handle: a ``flux.Flux()``.
        attrs: accepted for flux-core's sake (all attributes are returned).
        filters: state or result names ("pending", "running", "inactive",
            "completed", "failed", "canceled", "timeout"...; a string may hold
            several, comma separated).
        ids: these jobs only (other filters are ignored).
        user: a user name or id, or "all" (default: the caller).
        max_entries: at most this many.
        since: leave out jobs inactive since before this time.
        name, queue: only jobs of this name, of this queue.

    Raises:
        ValueError: an unknown filter or user.
    """

    STATES = {
        "depend": STATE_BITS["DEPEND"], "priority": STATE_BITS["PRIORITY"], "sched": STATE_BITS["SCHED"],
        "run": STATE_BITS["RUN"], "cleanup": STATE_BITS["CLEANUP"], "inactive": STATE_BITS["INACTIVE"],
        "pending": _PENDING, "running": _RUNNING, "active": _PENDING | _RUNNING,
    }
    RESULTS = {"completed": RESULT_BITS["COMPLETED"], "failed": RESULT_BITS["FAILED"],
               "canceled": RESULT_BITS["CANCELED"], "cancelled": RESULT_BITS["CANCELED"],
               "timeout": RESULT_BITS["TIMEOUT"]}

    def __init__(self, flux_handle, attrs=("all",), filters=(), ids=(), user=None, max_entries=1000, since=0.0,
                 name=None, queue=None):
        self.handle = flux_handle
        self.attrs = list(attrs)
        self.states = 0
        self.results = 0
        self.max_entries = max_entries
        self.since = since
        self.name = name
        self.queue = queue
        self.ids = [JobID(i) for i in ids] if ids else None
        self.errors = []
        for text in filters:
            for fname in text.split(","):
                self.add_filter(fname)
        self.set_user(user)

    def set_user(self, user):
        """List only the jobs of ``user`` (a name or an id; "all": everyone's)."""
        if user is None:
            self.userid = os.getuid()
        elif user == "all":
            self.userid = FLUX_USERID_UNKNOWN
        else:
            import pwd

            try:
                self.userid = pwd.getpwnam(user).pw_uid
            except (KeyError, TypeError):
                try:
                    self.userid = int(user)
                except ValueError:
                    raise ValueError(f"Invalid user {user} specified") from None

    def add_filter(self, fname):
        """Add a state or result filter (see the class docstring).

        Raises:
            ValueError: an unknown name.
        """
        fname = fname.strip().lower()
        if fname in self.STATES:
            self.states |= self.STATES[fname]
        elif fname in self.RESULTS:
            self.results |= self.RESULTS[fname]
        else:
            raise ValueError(f"Invalid filter specified: {fname}")

    def fetch_jobs(self):
        """Send the query: a ``JobListRPC`` (or, with ``ids``, a ``JobListIdsFuture``)."""
        if self.ids:
            listids = JobListIdsFuture()
            for jobid in self.ids:
                listids.push(job_list_id(self.handle, jobid))
            return listids
        return job_list(self.handle, max_entries=self.max_entries, userid=self.userid, states=self.states,
                        results=self.results, since=self.since, name=self.name, queue=self.queue)

    def jobs(self):
        """Run the query and return its ``JobInfo``s (failures by id go to ``errors``)."""
        rpc = self.fetch_jobs()
        jobs = rpc.get_jobs()
        if hasattr(rpc, "errors"):
            self.errors = rpc.errors
        return [_jobinfo(job) for job in jobs]
