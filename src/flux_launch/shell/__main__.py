"""``python -m flux_launch.shell JOBID``: run one job shell by hand, for debugging
(flux-core's ``flux-shell JOBID``).

It connects to ``$FLUX_URI``, reads the job's jobspec and R from the KVS
(``job.<id>.jobspec``, ``job.<id>.R``) and the broker's ``rank`` and ``rundir``,
finds this node's cores and GPUs as the broker does (``$FLUX_HWLOC_XMLFILE`` or the
machine), and runs the shell of that rank of the job in this process: the tasks'
output goes to the job's output eventlog (``flux job attach`` shows it), as from a
shell the instance started; what the shell cannot put there comes to stderr.

Meant for a job the instance runs no shell for, e.g. one submitted with
``--setattr=system.exec.test.run_duration=600`` (the test exec: resources
allocated, no shell); the job's other ranks can be run the same way from their
brokers (``FLUX_URI`` of each).

Exit status: the shell's (the highest task exit code); 1 with one line on stderr
for a bad or unknown job id, a job without resources yet, a rank the job does not
use, or no instance.
"""

import argparse
import sys

PROG = "flux-shell"


def _parser():
    p = argparse.ArgumentParser(prog=PROG, description="Run the job shell of this broker's rank for job JOBID "
                                "(reads its jobspec and R from the KVS of $FLUX_URI).")
    p.add_argument("jobid", metavar="JOBID", help="the job (any job id encoding: f58, decimal, hex...)")
    return p


class _Failed(Exception):
    """One line for the user."""


def _lookup(h, jobid, key):
    try:
        return h.rpc("kvs.get", {"key": f"{jobid.kvs}.{key}"}).get()["value"]
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise _Failed(f"{jobid}: cannot read {key}: {exc.strerror}") from None


def shell_args(h, jobid):
    """The shell's arguments for ``jobid`` on the rank of the broker ``h`` talks to.

    Raises:
        _Failed: an unknown job, one without R yet, or a rank outside the job.
    """
    from flux_launch.proto import rv1

    jobspec = _lookup(h, jobid, "jobspec")
    if jobspec is None:
        raise _Failed(f"{jobid}: unknown job id")
    R = _lookup(h, jobid, "R")
    if R is None:
        raise _Failed(f"{jobid}: the job has no resources yet (not allocated)")
    rank = int(h.rpc("attr.get", {"name": "rank"}).get()["value"])
    rundir = h.rpc("attr.get", {"name": "rundir"}).get()["value"]
    level = int(h.rpc("attr.get", {"name": "instance-level"}).get()["value"])
    ranks = sorted(int(r) for r in rv1.decode(R).ranks)
    if rank not in ranks:
        raise _Failed(f"{jobid}: broker rank {rank} runs no part of the job (its ranks: "
                      f"{','.join(map(str, ranks))}); set FLUX_URI to one of theirs")
    return {"id": int(jobid), "jobspec": jobspec, "R": R, "rank": rank, "uri": h.uri, "rundir": rundir,
            "level": level, "topology": _topology()}


def _topology():
    """This node's cores (PUs of each) and GPUs, as the broker gives them to its shells."""
    from flux_launch.resource import TopologyError, discover_from_env

    try:
        topo = discover_from_env()
    except TopologyError as exc:
        raise _Failed(str(exc)) from None
    return {"cores": topo.get("cores", []), "source": topo.get("source"),
            "gpus": [{"index": g["index"], "vendor": g["vendor"]} for g in topo.get("gpus", ())]}


def main(argv=None):
    """Returns the exit status."""
    args = _parser().parse_args(argv)
    from flux_launch.core.jobid import JobID

    try:
        jobid = JobID(args.jobid)
    except ValueError as exc:
        print(f"{PROG}: {exc}", file=sys.stderr)
        return 1
    from flux_launch.client.handle import Flux

    try:
        with Flux() as h:
            sargs = shell_args(h, jobid)
    except (_Failed, OSError, ConnectionError) as exc:
        print(f"{PROG}: {exc.strerror if isinstance(exc, OSError) and exc.strerror else exc}", file=sys.stderr)
        return 1
    from flux_launch.shell.main import run

    return run(sargs)


if __name__ == "__main__":
    sys.exit(main())
