"""The Python job API (``flux.job``) end to end: seed examples run unchanged as
scripts inside an instance, with the interpreter of this test run."""

import json
import sys
import textwrap

import pytest

from flux_launch.testing import Instance

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def api1():
    with Instance(size=1) as inst:
        yield inst


def _script(inst, tmp_path, text, timeout=60):
    """Run ``text`` as a Python script inside the instance; returns its stdout."""
    path = tmp_path / "script.py"
    path.write_text(textwrap.dedent(text))
    r = inst.run(sys.executable, str(path), check=False, timeout=timeout)
    if r.returncode != 0:
        last = inst.flux("jobs", "-a", "-o", "{id.f58} {name} {result}", check=False).stdout
        pytest.fail(f"script exited {r.returncode}\nstdout: {r.stdout}\nstderr: {r.stderr}\njobs:\n{last}")
    return r.stdout


def test_seed_submit_and_result(api1, tmp_path):
    out = _script(api1, tmp_path, """
        import flux, flux.job
        h = flux.Flux()
        js = flux.job.JobspecV1.from_command(["/bin/true"])
        jobid = flux.job.submit(h, js)
        print(flux.job.result(h, jobid).result)
    """)
    assert out == "COMPLETED\n"


def test_result_of_failing_job(api1, tmp_path):
    out = _script(api1, tmp_path, """
        import flux, flux.job
        h = flux.Flux()
        jobid = flux.job.submit(h, flux.job.JobspecV1.from_command(["sh", "-c", "exit 3"]))
        info = flux.job.result(h, jobid)
        print(info.result, info.returncode, info.id == jobid)
    """)
    assert out.split() == ["FAILED", "3", "True"]


def test_submit_async_then(api1, tmp_path):
    out = _script(api1, tmp_path, """
        import flux, flux.job
        h = flux.Flux()
        js = flux.job.JobspecV1.from_command(["/bin/true"])
        ids = []

        def cb(fut, tag):
            jobid = fut.get_id()
            ids.append(jobid)
            print("submitted", tag, jobid.f58)

        for tag in ("a", "b", "c"):
            flux.job.submit_async(h, js).then(cb, tag)
        h.reactor_run()
        for jobid in ids:
            print("result", flux.job.result(h, jobid).result)
    """)
    lines = out.splitlines()
    assert [line.split()[:2] for line in lines[:3]] == [["submitted", t] for t in "abc"], out
    assert all(line.split()[2].startswith("ƒ") for line in lines[:3])
    assert lines[3:] == ["result COMPLETED"] * 3, out


def test_event_watch_and_event_wait(api1, tmp_path):
    out = _script(api1, tmp_path, """
        import flux, flux.job
        h = flux.Flux()
        jobid = flux.job.submit(h, flux.job.JobspecV1.from_command(["/bin/true"]))
        ev = flux.job.event_wait(h, jobid, "start")
        print("waited", ev.name, ev.timestamp > 0)
        names = [e.name for e in flux.job.event_watch(h, jobid)]
        print(" ".join(names))
        ev = flux.job.event_wait(h, jobid, "finish")
        print("finish", ev.context["status"])
    """)
    lines = out.splitlines()
    assert lines[0] == "waited start True"
    names = lines[1].split()
    assert names[0] == "submit" and names[-1] == "clean", names
    for name in ("alloc", "start", "finish", "free"):
        assert name in names, names
    assert names.index("alloc") < names.index("start") < names.index("finish") < names.index("clean")
    assert lines[2] == "finish 0"


def test_kill_and_wait_waitable(api1, tmp_path):
    out = _script(api1, tmp_path, """
        import signal
        import flux, flux.job
        h = flux.Flux()
        ok = flux.job.submit(h, flux.job.JobspecV1.from_command(["/bin/true"]), waitable=True)
        res = flux.job.wait(h, ok)
        print("ok", res.success, repr(res.errstr), res.jobid == ok)
        bad = flux.job.submit(h, flux.job.JobspecV1.from_command(["sh", "-c", "exit 2"]), waitable=True)
        res = flux.job.wait(h, bad)
        print("bad", res.success, res.errstr)
        long = flux.job.submit(h, flux.job.JobspecV1.from_command(["sh", "-c", "echo ready; exec sleep 60"]),
                               waitable=True)
        flux.job.event_wait(h, long, "data", eventlog="guest.output")  # the task runs
        flux.job.kill(h, long, signal.SIGUSR1)
        res = flux.job.wait(h, long)
        print("killed", res.success, res.errstr)
        print("info", flux.job.result(h, long).result)
        try:
            flux.job.wait(h, ok)
        except OSError as exc:
            print("again", exc.errno)
        try:
            flux.job.wait(h)
        except OSError as exc:
            print("none left", exc.errno)
    """)
    lines = out.splitlines()
    assert lines[0] == "ok True '' True", out
    assert lines[1].startswith("bad False ") and "exit code 2" in lines[1], out
    # the task died of SIGUSR1 (10): 128+10 or the signal itself
    assert lines[2].startswith("killed False ") and ("138" in lines[2] or "signal 10" in lines[2]), out
    assert lines[3] == "info FAILED"
    assert lines[4] == "again 10"  # ECHILD
    assert lines[5] == "none left 10"


def test_kill_right_after_start_reaches_the_tasks(api1, tmp_path):
    out = _script(api1, tmp_path, """
        import signal
        import flux, flux.job
        h = flux.Flux()
        for _ in range(5):
            jobid = flux.job.submit(h, flux.job.JobspecV1.from_command(["sleep", "60"]), waitable=True)
            flux.job.event_wait(h, jobid, "start")
            flux.job.kill(h, jobid, signal.SIGUSR1)
            print(flux.job.wait(h, jobid).errstr)
    """)
    for line in out.splitlines():
        assert "exec" not in line and ("138" in line or "signal 10" in line), out


def test_cancel_and_job_exception(api1, tmp_path):
    out = _script(api1, tmp_path, """
        import flux, flux.job
        h = flux.Flux()
        jobid = flux.job.submit(h, flux.job.JobspecV1.from_command(["sleep", "60"]))
        flux.job.event_wait(h, jobid, "start")
        flux.job.cancel(h, jobid, "api cancel")
        print(flux.job.result(h, jobid).result)
        try:
            flux.job.event_wait(h, jobid, "never")
        except flux.job.JobException as exc:
            print("exception", exc.type, exc.note)
        try:
            flux.job.cancel(h, jobid)
        except OSError as exc:
            print("inactive", exc.errno)
    """)
    assert out.splitlines() == ["CANCELED", "exception cancel api cancel", "inactive 22"], out


def test_no_such_job(api1, tmp_path):
    out = _script(api1, tmp_path, """
        import flux, flux.job
        h = flux.Flux()
        for fn in (lambda: flux.job.event_wait(h, 12345, "start"), lambda: flux.job.cancel(h, 12345),
                   lambda: flux.job.kill(h, 12345), lambda: flux.job.result(h, 12345)):
            try:
                fn()
                print("no error")
            except OSError as exc:
                print(exc.errno, "no such job" in str(exc))
    """)
    assert out.splitlines() == ["2 True"] * 4, out


def test_jobid_encodings(api1, tmp_path):
    out = _script(api1, tmp_path, """
        import json
        import flux, flux.job
        from flux.job import JobID
        h = flux.Flux()
        jobid = flux.job.submit(h, flux.job.JobspecV1.from_command(["/bin/true"]))
        flux.job.result(h, jobid)
        enc = {"dec": jobid.dec, "f58": jobid.f58, "f58plain": jobid.f58plain, "hex": jobid.hex,
               "dothex": jobid.dothex, "kvs": jobid.kvs, "words": jobid.words, "int": int(jobid), "str": str(jobid)}
        enc["same"] = all(JobID(v) == jobid for k, v in enc.items() if k != "int") and JobID(int(jobid)) == jobid
        print(json.dumps(enc))
    """)
    enc = json.loads(out)
    assert enc["same"] is True, enc
    assert enc["str"] == enc["f58"] and enc["f58"].startswith("ƒ")
    assert enc["f58plain"] == "f" + enc["f58"][1:]
    assert int(enc["dec"]) == enc["int"] and int(enc["hex"], 16) == enc["int"]
    assert enc["kvs"] == "job." + enc["dothex"]
    assert int(enc["dothex"].replace(".", ""), 16) == enc["int"]
    # the CLI agrees
    assert api1.flux("job", "id", "--to=f58", str(enc["int"])).stdout.strip() == enc["f58"]
    assert api1.flux("job", "id", "--to=words", enc["f58"]).stdout.strip() == enc["words"]


def test_invalid_jobspec_dict_is_refused(api1, tmp_path):
    out = _script(api1, tmp_path, """
        import copy, json
        import flux, flux.job
        h = flux.Flux()
        good = flux.job.JobspecV1.from_command(["/bin/true"]).jobspec
        n_before = len(h.rpc("job-list.list", {"states": 127}).get()["jobs"])

        def tweak(fn):
            js = copy.deepcopy(good)
            fn(js)
            return js

        cases = {
            "tasks": tweak(lambda js: js.pop("tasks")),
            "command": tweak(lambda js: js["tasks"][0].__setitem__("command", "true")),
            "count": tweak(lambda js: js["resources"][0].__setitem__("count", 0)),
            "version": tweak(lambda js: js.__setitem__("version", 2)),
            "duration": tweak(lambda js: js["attributes"]["system"].__setitem__("duration", -1)),
        }
        for field, js in cases.items():
            try:
                flux.job.submit(h, js)
                print(field, "ACCEPTED")
            except OSError as exc:
                print(field, exc.errno, field in str(exc), str(exc).replace(" ", "_"))
        print("queued", len(h.rpc("job-list.list", {"states": 127}).get()["jobs"]) - n_before)
    """)
    lines = out.splitlines()
    assert lines[-1] == "queued 0", out
    for line in lines[:-1]:
        field, errnum, named = line.split()[:3]
        assert (errnum, named) == ("22", "True"), out


def test_jobspec_errors_before_submit(api1, tmp_path):
    out = _script(api1, tmp_path, """
        import flux, flux.job
        for kwargs in ({"num_tasks": 0}, {"cores_per_task": 0}, {"num_nodes": 3, "num_tasks": 2}):
            try:
                flux.job.JobspecV1.from_command(["true"], **kwargs)
                print("ACCEPTED")
            except ValueError as exc:
                print(list(kwargs)[0] in str(exc) or "num_nodes" in str(exc))
        try:
            flux.job.JobspecV1.from_command("true")
        except ValueError as exc:
            print("command" in str(exc))
    """)
    assert out.splitlines() == ["True"] * 4, out
