"""The rest of ``flux.job`` (flux-core's names and behaviour), as scripts inside a
2-broker instance: job listings and ``JobInfo``, ``get_job``, output watches,
the ``_async`` forms with the reactor, cancellation and jobs that fail."""

import json
import sys
import textwrap

import pytest

from flux_launch.testing import Instance

pytestmark = pytest.mark.e2e

PRELUDE = """
import errno, json, os, sys
import flux, flux.job
h = flux.Flux()
def spec(*cmd, **kw):
    return flux.job.JobspecV1.from_command(list(cmd), **kw)
"""


@pytest.fixture(scope="module")
def inst():
    with Instance(size=2) as inst:
        yield inst


def _script(inst, tmp_path, text, timeout=60):
    """Run PRELUDE + ``text`` as a Python script inside the instance; its stdout."""
    path = tmp_path / "script.py"
    path.write_text(PRELUDE + textwrap.dedent(text))
    r = inst.run(sys.executable, str(path), check=False, timeout=timeout)
    if r.returncode != 0:
        jobs = inst.flux("jobs", "-a", "-o", "{id.f58} {name} {result}", check=False).stdout
        pytest.fail(f"script exited {r.returncode}\nstdout: {r.stdout}\nstderr: {r.stderr}\njobs:\n{jobs}")
    return r.stdout


def test_jobinfo_attributes(inst, tmp_path):
    out = _script(inst, tmp_path, """
        ok = flux.job.submit(h, spec("true", num_tasks=2, num_nodes=2))
        bad = flux.job.submit(h, spec("sh", "-c", "exit 3"))
        for j in (ok, bad):
            flux.job.result(h, j)
        hold = flux.job.submit(h, spec("sleep", "300"), urgency=0)
        i = {x.id: x for x in flux.job.JobList(h, ids=[ok, bad, hold]).jobs()}
        a, b, p = i[ok], i[bad], i[hold]
        out = {
            "ok": [a.state, a.result, a.returncode, a.nnodes, a.ntasks, a.name, a.userid == os.getuid(),
                   a.t_run > a.t_submit > 0, a.t_inactive >= a.t_cleanup >= a.t_run, a.runtime >= 0,
                   a.exception.occurred, a.status, a.result_abbrev, a.state_single, a.success, a.waitstatus,
                   bool(a.nodelist), type(a.id).__name__],
            "bad": [b.result, b.returncode, b.waitstatus, b.status_abbrev, b.success, b.inactive_reason],
            "pending": [p.state, p.result, p.returncode, p.t_run, p.runtime, p.contextual_info, p.urgency],
        }
        try:
            a.nosuch
        except AttributeError as exc:
            out["nosuch"] = str(exc)
        flux.job.cancel(h, hold, "not needed")
        c = flux.job.result(h, hold)
        out["canceled"] = [c.result, c.returncode, c.exception.occurred, c.exception.type, c.exception.note,
                           c.exception.severity, c.inactive_reason, c.t_run]
        print(json.dumps(out))
    """)
    r = json.loads(out)
    assert r["ok"] == ["INACTIVE", "COMPLETED", 0, 2, 2, "true", True, True, True, True, False, "COMPLETED",
                       "CD", "I", True, 0, True, "JobID"]
    assert r["bad"] == ["FAILED", 3, 3 << 8, "F", False, "Exit 3"]
    assert r["pending"] == ["SCHED", "", "", 0.0, 0.0, "held", 0]
    assert r["nosuch"] == "invalid JobInfo attribute 'nosuch'"
    assert r["canceled"] == ["CANCELED", -128, True, "cancel", "not needed", 0, "Canceled: not needed", 0.0]


def test_job_list_queries(inst, tmp_path):
    out = _script(inst, tmp_path, """
        ok = flux.job.submit(h, spec("true"))
        bad = flux.job.submit(h, spec("sh", "-c", "exit 3"))
        for j in (ok, bad):
            flux.job.result(h, j)
        hold = flux.job.submit(h, spec("sleep", "300"), urgency=0)
        r = {"ids": [ok, bad, hold]}
        for name, kw in [("all", {}), ("failed", {"filters": ["failed"]}),
                         ("completed", {"filters": ["completed"]}), ("pending", {"filters": ["pending"]}),
                         ("two", {"max_entries": 2}), ("named", {"name": "sleep"}),
                         ("byid", {"ids": [bad, ok]}), ("inactive_all", {"user": "all", "filters": ["inactive"]}),
                         ("future", {"since": 4e9})]:
            r[name] = [x.id for x in flux.job.JobList(h, **kw).jobs()]
        r["job_list"] = [j["id"] for j in flux.job.job_list(h, states=flux.job.JobList.STATES["sched"]).get_jobs()]
        r["inactive"] = [j["id"] for j in flux.job.job_list_inactive(h).get_jobs()]
        r["list_id"] = flux.job.job_list_id(h, bad).get_jobinfo().result
        q = flux.job.JobList(h, ids=[ok, 123456])
        r["found"] = [x.id for x in q.jobs()]
        r["errors"] = q.errors
        try:
            flux.job.JobList(h, filters=["bogus"])
        except ValueError as exc:
            r["badfilter"] = str(exc)
        try:
            flux.job.job_list_id(h, 123456).get_job()
        except OSError as exc:
            r["unknown"] = exc.errno
        got = []
        flux.job.job_list(h, max_entries=1).then(lambda f, tag: got.append((tag, f.get_jobs()[0]["id"])), "cb")
        h.reactor_run()
        r["then"] = got
        flux.job.cancel(h, hold)
        print(json.dumps(r))
    """)
    r = json.loads(out)
    ok, bad, hold = r["ids"]
    for key in ("all", "failed", "completed", "pending", "two", "named", "inactive_all", "future", "job_list",
                "inactive"):  # other tests' jobs left out
        if key != "two":
            r[key] = [i for i in r[key] if i in (ok, bad, hold)]
    assert r["all"][:3] == [hold, bad, ok]  # newest first
    assert bad in r["failed"] and ok not in r["failed"] and hold not in r["failed"]
    assert ok in r["completed"] and bad not in r["completed"] and hold not in r["completed"]
    assert r["pending"] == [hold]
    assert r["two"] == [hold, bad]
    assert r["named"] == [hold]
    assert sorted(r["byid"]) == sorted([bad, ok])
    assert ok in r["inactive_all"] and hold not in r["inactive_all"]
    assert r["future"] == [hold]  # since: active jobs, and jobs inactive after it
    assert r["job_list"] == [hold]
    assert ok in r["inactive"] and hold not in r["inactive"]
    assert r["list_id"] == "FAILED"
    assert r["found"] == [ok] and len(r["errors"]) == 1 and "unknown" in r["errors"][0]
    assert r["badfilter"] == "Invalid filter specified: bogus"
    assert r["unknown"] == 2
    assert r["then"] == [["cb", hold]]


def test_get_job(inst, tmp_path):
    out = _script(inst, tmp_path, """
        bad = flux.job.submit(h, spec("sh", "-c", "exit 5"))
        flux.job.result(h, bad)
        d = flux.job.get_job(h, bad)
        print(json.dumps({"job": d, "id": bad, "none": flux.job.get_job(h, 123456)}))
    """)
    r = json.loads(out)
    d = r["job"]
    assert r["none"] is None
    assert d["id"] == r["id"]
    assert (d["state"], d["result"], d["returncode"], d["status"], d["name"]) == \
        ("INACTIVE", "FAILED", 5, "FAILED", "sh")
    assert d["exception"] == {"occurred": False, "severity": "", "type": "", "note": ""}
    assert d["nnodes"] == 1 and d["ntasks"] == 1 and d["waitstatus"] == 5 << 8
    for key in ("t_submit", "t_run", "t_cleanup", "t_inactive", "runtime", "userid", "username", "urgency",
                "priority", "nodelist", "duration", "annotations", "dependencies", "queue"):
        assert key in d, key


def test_output_watch_and_events(inst, tmp_path):
    out = _script(inst, tmp_path, """
        j = flux.job.submit(h, spec("sh", "-c", "echo out$FLUX_TASK_RANK; echo err >&2", num_tasks=2))
        r = {}
        r["chunks"] = sorted(flux.job.output_watch(h, j))
        r["events"] = [(e.name, type(e).__name__) for e in flux.job.output_event_watch(h, j)]
        r["data"] = sorted((e.stream, str(e.rank), str(e.data), e.eof) for e in flux.job.output_event_watch(h, j)
                           if e.name == "data")
        r["lines"] = sorted(flux.job.output_watch_lines(h, j, labelio=True))
        o = flux.job.job_output(h, j)
        r["job_output"] = [sorted(o.stdout.splitlines()), o.stderr, o.log]
        r["task1"] = flux.job.job_output(h, j, tasks="1").stdout
        r["nowait"] = sorted(flux.job.job_output(h, j, nowait=True).stdout.splitlines())
        missing = flux.job.submit(h, spec("nosuchcommand"))
        r["log"] = [(s, "nosuchcommand" in t) for s, t in flux.job.output_watch(h, missing)]
        r["log_split"] = [s for s, t in flux.job.output_watch(h, missing, log_stderr_level=flux.job.output.LOG_QUIET)]
        print(json.dumps(r))
    """)
    r = json.loads(out)
    assert r["chunks"] == [["stderr", "err\n"], ["stderr", "err\n"], ["stdout", "out0\n"], ["stdout", "out1\n"]]
    assert r["events"][0] == ["header", "OutputHeaderEvent"]
    assert {tuple(e) for e in r["events"][1:]} == {("data", "OutputEvent")}
    assert ["stdout", "1", "out1\n", False] in r["data"] and ["stdout", "1", "None", True] in r["data"]
    assert r["lines"] == [["stderr", "0: err"], ["stderr", "1: err"], ["stdout", "0: out0"], ["stdout", "1: out1"]]
    assert r["job_output"] == [["out0", "out1"], "err\nerr\n", ""]
    assert r["task1"] == "out1\n"
    assert r["nowait"] == ["out0", "out1"]
    assert r["log"] == [["stderr", True]]
    assert r["log_split"] == ["log"]


def test_output_of_running_canceled_and_unknown_jobs(inst, tmp_path):
    out = _script(inst, tmp_path, """
        j = flux.job.submit(h, spec("sh", "-c", "echo first; sleep 300"))
        r = {"got": []}
        for stream, text in flux.job.output_watch(h, j):
            r["got"].append([stream, text])
            if text == "first\\n":
                flux.job.cancel(h, j, "seen enough")
        held = flux.job.submit(h, spec("true"), urgency=0)
        flux.job.cancel(h, held)
        try:
            list(flux.job.output_watch(h, held))
        except OSError as exc:
            r["never"] = [exc.errno, str(exc)]
        try:
            flux.job.job_output(h, held)
        except flux.job.JobException as exc:
            r["job_output"] = [exc.type, exc.note]
        try:
            list(flux.job.output_watch(h, 123456))
        except OSError as exc:
            r["unknown"] = exc.errno
        print(json.dumps(r))
    """)
    r = json.loads(out)
    assert r["got"][0] == ["stdout", "first\n"]
    assert ["stderr", "job.exception: type=cancel severity=0 seen enough\n"] in r["got"]
    assert r["never"][0] == 5 and "never started" in r["never"][1]
    assert r["job_output"] == ["cancel", ""]
    assert r["unknown"] == 2


def test_async_forms_with_the_reactor(inst, tmp_path):
    out = _script(inst, tmp_path, """
        r = {"events": [], "waits": []}
        j = flux.job.submit(h, spec("sleep", "300"))

        def on_event(fut, tag):
            ev = fut.get_event()
            r["events"].append(ev.name if ev is not None else None)

        def on_exec(fut):
            ev = fut.get_event()
            if ev is not None and ev.name == "shell.start":  # its task runs
                fut.cancel(stop=True)
                flux.job.kill_async(h, j, 9).then(lambda f: r.setdefault("kill", f.get()))

        flux.job.event_watch_async(h, j).then(on_event, "tag")
        flux.job.event_watch_async(h, j, "guest.exec.eventlog").then(on_exec)
        waitable = [flux.job.submit(h, spec("sh", "-c", f"exit {n}"), waitable=True) for n in (0, 2)]
        for w in waitable:
            flux.job.wait_async(h, w).then(lambda f: r["waits"].append([int(f.get_status().jobid),
                                                                          f.get_status().success,
                                                                          f.get_status().errstr]))
        h.reactor_run()
        r["result"] = [flux.job.result(h, j).result, flux.job.result(h, j).returncode]
        c = flux.job.submit(h, spec("sleep", "300"), urgency=0)
        flux.job.cancel_async(h, c, "async").then(lambda f: r.setdefault("cancel", f.get()))
        fut = flux.job.result_async(h, c).then(lambda f: r.setdefault("canceled", f.get_info().result))
        h.reactor_run()
        r["get_dict"] = fut.get_dict()["result"]
        try:
            flux.job.cancel_async(h, c).get()
        except OSError as exc:
            r["again"] = exc.errno
        try:
            flux.job.event_watch_async(h, 123456).get_event()
        except OSError as exc:
            r["unknown"] = exc.errno
        w = flux.job.event_watch_async(h, j, "guest.exec.eventlog")
        names = []
        while (ev := w.get_event()) is not None:
            names.append(ev.name)
        r["exec"] = names
        r["ids"] = [int(x) for x in waitable]
        print(json.dumps(r))
    """)
    r = json.loads(out)
    assert r["events"][:6] == ["submit", "validate", "depend", "priority", "alloc", "start"]
    assert r["events"][-2:] == ["clean", None] and "finish" in r["events"]
    assert r["kill"] == {}
    assert r["result"] == ["FAILED", 128 + 9]
    waits = {w[0]: w[1:] for w in r["waits"]}
    assert waits[r["ids"][0]] == [True, ""]
    assert waits[r["ids"][1]][0] is False and waits[r["ids"][1]][1]  # an error text
    assert r["cancel"] == {} and r["canceled"] == "CANCELED" and r["get_dict"] == "CANCELED"
    assert r["again"] == 22
    assert r["unknown"] == 2
    assert {"shell.init", "shell.start", "shell.task-exit"} <= set(r["exec"])


def test_exec_eventlog_watch_of_finished_and_never_run_jobs_ends(inst, tmp_path):
    out = _script(inst, tmp_path, """
        r = {}
        j = flux.job.submit(h, spec("sh", "-c", "exit 1", num_nodes=2, num_tasks=2))
        r["running"] = [e.name for e in flux.job.event_watch(h, j, "guest.exec.eventlog")]
        r["finished"] = [e.name for e in flux.job.event_watch(h, j, "guest.exec.eventlog")]
        r["done_wait"] = flux.job.event_wait(h, j, "shell.start", "guest.exec.eventlog").name
        held = flux.job.submit(h, spec("true"), urgency=0)
        flux.job.cancel(h, held)
        flux.job.result(h, held)
        try:
            list(flux.job.event_watch(h, held, "guest.exec.eventlog"))
        except OSError as exc:
            r["never_ran"] = exc.errno
        print(json.dumps(r))
    """, timeout=30)
    r = json.loads(out)
    assert r["running"] == r["finished"]
    # job-exec's events first and last; between them (flux-core has shell.init first; here a
    # remote shell's task-exit can come before it) the shells'
    assert r["finished"][:2] == ["init", "starting"] and r["finished"][-2:] == ["complete", "done"], r["finished"]
    assert sorted(r["finished"][2:-2]) == ["shell.init", "shell.start", "shell.task-exit", "shell.task-exit"]
    assert r["done_wait"] == "shell.start"
    assert r["never_ran"] == 2


def test_output_watch_async_forms(inst, tmp_path):
    out = _script(inst, tmp_path, """
        j = flux.job.submit(h, spec("sh", "-c", "echo a$FLUX_TASK_RANK; echo b >&2", num_tasks=2))
        r = {"lines": [], "events": []}

        def on_line(fut, tag):
            r["lines"].append([tag, *fut.getline()])

        def on_event(fut):
            ev = fut.get_event()
            r["events"].append(ev.name if ev is not None else None)

        flux.job.output_watch_lines_async(h, j, labelio=True).then(on_line, "t")
        flux.job.output_event_watch_async(h, j).then(on_event)
        h.reactor_run()
        w = flux.job.output_watch_async(h, j)
        chunks = []
        while (item := w.get_output()) != (None, None):
            chunks.append(list(item))
        r["chunks"] = sorted(chunks)
        held = flux.job.submit(h, spec("true"), urgency=0)
        flux.job.cancel(h, held)
        w = flux.job.output_event_watch_async(h, held)
        r["first"] = w.get_event().name
        try:
            w.get_event()
        except OSError as exc:
            r["never"] = exc.errno
        print(json.dumps(r))
    """)
    r = json.loads(out)
    assert sorted(r["lines"][:-1]) == [["t", "stderr", "0: b"], ["t", "stderr", "1: b"],
                                       ["t", "stdout", "0: a0"], ["t", "stdout", "1: a1"]]
    assert r["lines"][-1] == ["t", None, None]
    assert r["events"][0] == "header" and r["events"][-1] is None and r["events"].count("data") == 8
    assert r["chunks"] == [["stderr", "b\n"], ["stderr", "b\n"], ["stdout", "a0\n"], ["stdout", "a1\n"]]
    assert r["first"] == "exception" and r["never"] == 5


def test_job_kvs_lookup_and_job_kvs(inst, tmp_path):
    out = _script(inst, tmp_path, """
        j = flux.job.submit(h, spec("true"))
        flux.job.result(h, j)
        d = flux.job.job_kvs_lookup(h, j, keys=["jobspec", "R", "eventlog"])
        raw = flux.job.job_kvs_lookup(h, j, decode=False)
        many = flux.job.JobKVSLookup(h, ids=[j, 123456])
        print(json.dumps({
            "keys": sorted(d), "id": d["id"] == j, "cmd": d["jobspec"]["tasks"][0]["command"],
            "eventlog": d["eventlog"].splitlines()[0].startswith("{"), "raw": type(raw["jobspec"]).__name__,
            "none": [flux.job.job_kvs_lookup(h, 123456), flux.job.job_kvs_lookup(h, j, keys=["nope"])],
            "many": [len(many.data()), len(many.errors)],
            "dir": sorted(flux.job.job_kvs(h, j)), "guest": sorted(flux.job.job_kvs_guest(h, j)),
        }))
    """)
    r = json.loads(out)
    assert r == {"keys": ["R", "eventlog", "id", "jobspec"], "id": True, "cmd": ["true"], "eventlog": True,
                 "raw": "str", "none": [None, None], "many": [1, 1], "dir": ["R", "eventlog", "guest", "jobspec"],
                 "guest": ["exec", "output"]}
