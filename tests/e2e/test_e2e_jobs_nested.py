"""flux jobs and nested instances, as flux-core's flux-jobs(1): the ``instance.*``
fields of a running batch job (its jobs' counts, progress, core utilization and
resources, fetched from its own instance), ``-R`` (the jobs of each instance below
a ``PATH:`` line, ``ƒA/ƒB`` one level down, ``-L`` levels deep), an instance that
does not answer (empty fields, no traceback), no connection to any instance when
no format asks for one, and an unknown field refused in one line.

Nested jobs wait for a stop file instead of sleeping, so that what the module
leaves running ends when its fixture creates the file."""

import os
import socket
import subprocess

import pytest

from flux_launch.client.handle import Flux
from flux_launch.core.jobid import JobID
from flux_launch.testing import BIN, Instance, clean_env, poll

pytestmark = pytest.mark.e2e

STATS = "{id.f58} {instance.stats} | {instance.stats.total} {instance.progress!P} {instance.utilization!P} " \
        "{instance.resources.all.ncores} {instance.resources.allocated.ncores} {instance.resources.all.nnodes}"


def _waiter(stop):
    """Runs until ``stop`` exists (at most ~5 minutes)."""
    return f"n=0; while [ ! -e {stop} ] && [ $n -lt 3000 ]; do sleep 0.1; n=$((n+1)); done"


def _script(path, text):
    path.write_text("#!/bin/sh\n" + text)
    return str(path)


@pytest.fixture(scope="module")
def nested(tmp_path_factory):
    """``done``: a batch job whose 4 jobs completed; ``outer``: a batch job running
    a batch job ``inner`` (itself with one completed job); ``plain``: a job that
    is not an instance."""
    d = tmp_path_factory.mktemp("nested")
    stop = d / "STOP"
    wait = _waiter(stop)
    done = _script(d / "done.sh", "flux submit --cc=1-4 --flags=waitable true >/dev/null\n"
                   f"flux job wait --all && touch {d}/done.ready\n{wait}\n")
    inner = _script(d / "inner.sh", "flux submit --flags=waitable --job-name=innermost true >/dev/null\n"
                    f"flux job wait --all && flux getattr jobid >{d}/inner.id && touch {d}/inner.ready\n{wait}\n")
    outer = _script(d / "outer.sh", f"flux batch -n1 --job-name=inner --output=/dev/null {inner} >/dev/null\n{wait}\n")
    with Instance(size=3) as inst:  # a node each: done, outer (-N1: the whole node) and plain
        try:
            inst.done = inst.flux("batch", "-N1", "--job-name=done", "--output=/dev/null", done).stdout.strip()
            inst.outer = inst.flux("batch", "-N1", "--job-name=outer", "--output=/dev/null", outer).stdout.strip()
            inst.plain = inst.flux("submit", "--job-name=plain", "sh", "-c", wait).stdout.strip()
            for name in ("done", "inner"):
                assert poll(lambda n=name: (d / f"{n}.ready").exists(), timeout=120), \
                    f"{name}.sh did not get ready\n{inst.log()}"
            inst.inner = (d / "inner.id").read_text().strip()
            yield inst
        finally:
            stop.touch()


def _rows(inst, *args):
    """``flux jobs -n ARGS`` as {first word: the rest of the line}."""
    out = inst.flux("jobs", "-n", *args).stdout
    return {line.split(" ", 1)[0]: line.split(" ", 1)[1] for line in out.splitlines() if line}


def _sections(text):
    """``flux jobs -R`` output as [(path, [lines])]: the top level is path ``""``."""
    out = [("", [])]
    for line in text.splitlines():
        if not line:
            continue
        if line.endswith(":") and " " not in line:
            out.append((line[:-1], []))
        else:
            out[-1][1].append(line)
    return out


def test_instance_stats_progress_and_utilization(nested):
    rows = _rows(nested, "-o", STATS)
    stats, _, rest = rows[nested.done].partition(" | ")
    assert stats == "PD:0 R:0 CD:4 F:0", rows
    total, progress, util, ncores, used, nnodes = rest.split()
    assert (total, progress, util, used, nnodes) == ("4", "100%", "0%", "0", "1"), rows
    assert int(ncores) >= 1, rows
    # outer runs inner (1 core of its node): 1 job running, none done
    stats, _, rest = rows[nested.outer].partition(" | ")
    assert stats == "PD:0 R:1 CD:0 F:0", rows
    total, progress, util, ncores, used, nnodes = rest.split()
    assert (total, used, nnodes) == ("1", "1", "1"), rows
    assert util == f"{100 / int(ncores):.3g}%" and progress == "0%", rows
    assert rows[nested.plain].strip() == "|", rows  # not an instance: every instance field empty


def test_instance_headings_and_dash(nested):
    fmt = "{id.f58:>12} {instance.stats:^20} {instance.stats.total:>6} {instance.progress!P:>5} " \
          "{instance.utilization!P:>5} {instance.gpu_utilization!P:>5h} {instance.resources.all.ncores:>5} " \
          "{instance.resources.free.ncores:>5}"
    out = nested.flux("jobs", "-o", fmt, nested.done, nested.plain).stdout.splitlines()
    assert out[0] == "       JOBID        STATS          NJOBS  PROG CORE%  GPU% CORES  FREE", out
    assert out[1].split()[1:6] == ["PD:0", "R:0", "CD:4", "F:0", "4"] and out[1].split()[8] == "-", out
    assert out[2].split() == [nested.plain, "-"], out  # no GPUs, not an instance: "-" with h


def test_recursive_lists_inner_jobs_under_their_instance(nested):
    out = nested.flux("jobs", "-R", "-a", "-o", "{id.f58} {name} {status_abbrev}").stdout
    sections = _sections(out)
    paths = [p for p, _ in sections]
    assert paths[0] == "" and sections[0][1][0].split() == ["JOBID", "NAME", "ST"], out
    top = {line.split()[0]: line.split()[1:] for line in sections[0][1][1:]}
    assert top[nested.done] == ["done", "R"] and top[nested.plain] == ["plain", "R"], out
    inner_path = f"{nested.outer}/{nested.inner}"
    assert sorted(paths[1:]) == sorted([nested.done, nested.outer, inner_path]), out
    assert paths.index(inner_path) == paths.index(nested.outer) + 1, out  # below its parent, depth first
    body = dict(sections)
    assert [line.split()[1:] for line in body[nested.done]] == [["true", "CD"]] * 4, out
    assert [line.split()[:3] for line in body[nested.outer]] == [[nested.inner, "inner", "R"]], out
    assert [line.split()[1:] for line in body[inner_path]] == [["innermost", "CD"]], out


def test_recursive_filters_and_levels(nested):
    # the default filter (pending,running) applies in every instance: done's jobs are not listed
    body = dict(_sections(nested.flux("jobs", "-R", "-n", "-o", "{id.f58} {name}").stdout))
    assert body[nested.done] == [] and body[f"{nested.outer}/{nested.inner}"] == [], body
    assert [line.split()[1] for line in body[nested.outer]] == ["inner"], body
    one = [p for p, _ in _sections(nested.flux("jobs", "-R", "-L", "1", "-a", "-n").stdout)]
    assert sorted(one) == sorted(["", nested.done, nested.outer]), one
    assert nested.flux("jobs", "-R", "-L", "0", "-a", "-o", "{id.f58} {name}").stdout == \
        nested.flux("jobs", "-a", "-o", "{id.f58} {name}").stdout
    everyone = [p for p, _ in _sections(nested.flux("jobs", "--recurse-all", "-a", "-n").stdout)]
    assert len(everyone) == 4, everyone  # --recurse-all implies -R


def test_unknown_fields_are_one_line_errors(nested):
    for fmt, name in (("{instance.bogus}", "instance.bogus"), ("{instance.resources.all.nsockets}",
                                                              "instance.resources.all.nsockets"),
                      ("{id.f58} {bogus}", "bogus")):
        r = nested.flux("jobs", "-o", fmt, check=False)
        assert r.returncode == 1 and r.stdout == "", r
        assert r.stderr == f"flux-jobs: -o/--format: unknown field '{name}' (e.g. id, name, status, ntasks, " \
                           "nodelist, instance.stats)\n", r.stderr
    r = nested.flux("jobs", "-o", "bogus", check=False)
    assert r.returncode == 1 and r.stderr.startswith("flux-jobs: -o/--format: no such format 'bogus'"), r


def test_format_help_names_the_formats(nested):
    out = nested.flux("jobs", "--format=help").stdout.split("\n")
    assert out[:3] == ["", "Configured flux-jobs output formats:", ""], out
    assert [line.split()[0] for line in out[3:] if line] == ["default", "long", "deps", "endreason"], out


def test_silent_instance_is_connected_only_when_asked_and_shows_empty(tmp_path):
    """A running job whose uri memo names a socket that accepts and never answers:
    plain listings never connect to it; ``instance.*`` and ``-R`` do, and when the
    connection ends without an answer the fields are empty, the job still listed."""
    path = str(tmp_path / "sock")
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(path)
    listener.listen(8)
    listener.settimeout(30)
    with Instance(size=1) as inst, listener:
        jobid = inst.flux("submit", "--job-name=fake", "sleep", "300").stdout.strip()
        inst.flux("job", "wait-event", "-t", "30", jobid, "start")
        with Flux(inst.uri) as h:
            h.rpc("job-manager.memo", {"id": int(JobID(jobid)), "memo": {"uri": f"local://{path}"}}).get()
        for args in ([], ["-a", "-o", "long"], ["-o", "{id} {name} {user.uri}"], ["-R", "-L", "0"]):
            out = inst.flux("jobs", *args).stdout
            assert jobid in out, out
        listener.setblocking(False)
        with pytest.raises(BlockingIOError):
            listener.accept()  # nobody connected
        listener.setblocking(True)
        listener.settimeout(30)
        for args in (["-o", "{id.f58} {name} {instance.stats}|{instance.progress!P}|"], ["-R", "-n"]):
            proc = subprocess.Popen([os.path.join(BIN, "flux"), "jobs", *args], stdout=subprocess.PIPE,
                                    stderr=subprocess.PIPE, text=True, env=clean_env({"FLUX_URI": inst.uri}))
            try:
                conn, _ = listener.accept()
                conn.close()  # the end of the connection, no answer
                out, err = proc.communicate(timeout=30)
            finally:
                proc.kill()
            assert proc.returncode == 0 and err == "", (out, err)
            if args[0] == "-o":
                assert out.splitlines()[1] == f"{jobid} fake ||", out
            else:
                assert out.splitlines()[-2:] == ["", f"{jobid}:"], out
        inst.flux("cancel", jobid)
