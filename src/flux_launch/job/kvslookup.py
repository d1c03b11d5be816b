"""A job's KVS entries, flux-core's ``flux.job.kvslookup`` and ``flux.job.kvs``:
``job_kvs_lookup(h, jobid, keys=["jobspec"])`` -> ``{"id": ID, KEY: value...}``
(``None`` when the job or a key does not exist), ``JobKVSLookup`` for several
jobs, and ``job_kvs(h, jobid)`` / ``job_kvs_guest(h, jobid)``: ``KVSDir``s of the
job's directory and of its ``guest`` part.

Values are decoded (``jobspec`` and ``R`` as dicts, eventlogs as text; ``jobspec`` and
``R`` with ``flux update``'s changes unless ``original=True`` or ``base=True``); with
``decode=False`` a value that is not text comes as its JSON text.

Failures: ``OSError`` from the service, other than ENOENT (no such job or key).
"""

from flux_launch.core.jobid import JobID


def _lookup_fut(flux_handle, jobid, keys, current=True):
    # flux-core's FLUX_JOB_LOOKUP_CURRENT (2): jobspec and R as flux update left them
    return flux_handle.rpc("job-info.lookup", {"id": int(JobID(jobid)), "keys": list(keys),
                                               "flags": 2 if current else 0})


def _result(fut, decode):
    try:
        out = fut.get()
    except FileNotFoundError:
        return None
    if not decode:
        from flux_launch.proto import fastjson

        out = {k: v if k == "id" or isinstance(v, str) else fastjson.dumps(v) for k, v in out.items()}
    return out


def job_kvs_lookup(flux_handle, jobid, keys=("jobspec",), decode=True, original=False, base=False):
    """The job's ``keys`` as a dict with its ``id``, or ``None`` if any is missing
    (jobspec and R as updated, or with ``original``/``base`` as stored)."""
    return _result(_lookup_fut(flux_handle, jobid, keys, not (original or base)), decode)


class JobKVSLookup:
    """``job_kvs_lookup`` of several jobs, sent at once: ``data()`` returns the dicts
    found (in ``ids`` order); a job or key not found goes to ``errors``."""

    def __init__(self, flux_handle, ids=(), keys=("jobspec",), decode=True, original=False, base=False):
        self.keys = list(keys)
        self.decode = decode
        self.errors = []
        self._futs = [(JobID(i), _lookup_fut(flux_handle, i, self.keys, not (original or base))) for i in ids]

    def data(self):
        out = []
        for jobid, fut in self._futs:
            got = _result(fut, self.decode)
            if got is None:
                self.errors.append(f"JobID {jobid} or one of its keys {','.join(self.keys)} not found")
            else:
                out.append(got)
        self._futs = []
        return out


def job_kvs(flux_handle, jobid):
    """The job's KVS directory, a ``KVSDir``."""
    from flux_launch.client.kvs import KVSDir

    return KVSDir(flux_handle, JobID(jobid).kvs)


def job_kvs_guest(flux_handle, jobid):
    """The job's ``guest`` directory (the shell's: exec eventlog, output), a ``KVSDir``."""
    from flux_launch.client.kvs import KVSDir

    return KVSDir(flux_handle, JobID(jobid).kvs + ".guest")
