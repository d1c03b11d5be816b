"""Watches that must end: an eventlog watch of a finished job (any eventlog, the
guest ones included) ends after its last entry, a watch of a running job's guest
eventlog ends when the job does, and ``flux kvs get -W`` waits for its key."""

import errno
import subprocess
import sys
import textwrap
import time

import pytest

from flux_launch.client.handle import STREAMING, Flux

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def inst():
    from flux_launch.testing import Instance

    with Instance(size=2) as i:
        yield i


def _python(inst, code, timeout=20):
    """Run ``code`` in a client inside the instance; a hang fails the test."""
    r = inst.run(sys.executable, "-c", textwrap.dedent(code), check=False, timeout=timeout)
    assert r.returncode == 0, f"stdout: {r.stdout}\nstderr: {r.stderr}\n{inst.log()}"
    return r.stdout


def _finished_job(inst):
    jobid = inst.flux("submit", "true").stdout.strip()
    inst.flux("job", "wait-event", jobid, "clean")
    return jobid


@pytest.mark.parametrize("path", ["guest.exec.eventlog", "eventlog", "guest.output"])
def test_event_watch_of_a_finished_job_ends(inst, path):
    jobid = _finished_job(inst)
    out = _python(inst, f"""
        import flux, flux.job
        h = flux.Flux()
        print(" ".join(ev.name for ev in flux.job.event_watch(h, "{jobid}", "{path}")))
    """)
    names = out.split()
    assert names, out
    if path == "eventlog":
        assert names[0] == "submit" and names[-1] == "clean", names
    elif path == "guest.exec.eventlog":
        assert names[:2] == ["init", "starting"] and names[-2:] == ["complete", "done"], names
        assert "shell.init" in names and "shell.task-exit" in names, names


def test_raw_eventlog_watch_of_a_finished_job_ends_without_a_cancel(inst):
    jobid = _finished_job(inst)
    with Flux(inst.uri) as h:
        for path in ("eventlog", "guest.exec.eventlog"):
            fut = h.rpc("job-info.eventlog-watch", {"id": int(flux_id(jobid)), "path": path}, flags=STREAMING)
            text = ""
            with pytest.raises(OSError) as exc:
                while True:
                    text += fut.get(timeout=10)["value"]
            assert exc.value.errno == errno.ENODATA and not isinstance(exc.value, TimeoutError), exc.value
            assert text.endswith("\n") and text.count("\n") >= 2, text


def flux_id(text):
    from flux_launch.core.jobid import JobID

    return JobID(text)


def test_guest_watch_of_a_running_job_ends_when_it_ends(inst):
    jobid = inst.flux("submit", "sh", "-c", "echo ready; exec sleep 1").stdout.strip()
    inst.flux("job", "wait-event", jobid, "start")
    r = inst.flux("job", "eventlog", "-F", "-p", "exec", jobid, timeout=30)
    names = [line.split()[1] for line in r.stdout.splitlines()]
    assert names[:3] == ["init", "starting", "shell.init"] and names[-3:] == ["shell.task-exit", "complete", "done"], \
        r.stdout


def test_guest_watch_of_a_job_that_never_ran_ends_with_an_error(inst):
    jobid = inst.flux("submit", "--urgency=0", "true").stdout.strip()
    with Flux(inst.uri) as h:
        fut = h.rpc("job-info.eventlog-watch", {"id": int(flux_id(jobid)), "path": "guest.exec.eventlog"},
                    flags=STREAMING)
        inst.flux("cancel", jobid)
        with pytest.raises(OSError) as exc:
            fut.get(timeout=10)
        assert exc.value.errno == errno.ENOENT and not isinstance(exc.value, TimeoutError), exc.value
    r = inst.flux("job", "eventlog", "-F", "-p", "guest.exec.eventlog", jobid, check=False, timeout=20)
    assert r.returncode == 1 and len(r.stderr.strip().splitlines()) == 1, r
    assert "Traceback" not in r.stderr


def test_kvs_get_waitcreate_without_watch_waits_for_the_key(inst):
    proc = subprocess.Popen([inst.env["PATH"].split(":")[0] + "/flux", "kvs", "get", "-W", "wc.later"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=inst.env)
    try:
        time.sleep(0.5)  # not for correctness: a get that does not wait has failed by now
        assert proc.poll() is None, f"flux kvs get -W returned before the key existed: {proc.communicate()}"
        inst.flux("kvs", "put", "wc.later=42")
        out, err = proc.communicate(timeout=20)
    finally:
        proc.kill()
    assert proc.returncode == 0 and out == "42\n", (out, err)
    # an existing key: answered at once, with -W or without
    assert inst.flux("kvs", "get", "-W", "wc.later", timeout=20).stdout == "42\n"


def test_kvs_eventlog_get_waitcreate_without_watch_waits_for_the_eventlog(inst):
    proc = subprocess.Popen([inst.env["PATH"].split(":")[0] + "/flux", "kvs", "eventlog", "get", "-W", "wc.log"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=inst.env)
    try:
        time.sleep(0.5)  # not for correctness: a get that does not wait has failed by now
        assert proc.poll() is None, f"flux kvs eventlog get -W returned before the key existed: {proc.communicate()}"
        inst.flux("kvs", "eventlog", "append", "wc.log", "made", '{"n":1}')
        out, err = proc.communicate(timeout=20)
    finally:
        proc.kill()
    assert proc.returncode == 0 and out.split()[1:] == ["made", "n=1"], (out, err)
