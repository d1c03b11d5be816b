"""``JobspecV1.from_batch_command`` / ``from_nest_command`` end to end: the jobspecs
they build are submitted with the Python API (``flux.job.submit``, ``result``,
``wait``, ``event_watch``, ``cancel``) from scripts run inside a real 4-broker
instance (2 cores a broker), and must really run as nested instances of the
requested size.

Seed 001 (Flux Python bindings, "Job submission") names the two methods as
"helper methods replicating the jobspecs created by the ... command-line
utilities" but shows no code for them; the first test checks that statement
against ``flux batch --dry-run`` / ``flux alloc --dry-run`` and submits the
result the way the seed describes (create, populate, ``flux.job.submit``).
"""

import json
import sys
import textwrap

import pytest

from flux_launch.testing import Instance

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def inst4():
    with Instance(size=4) as inst:
        yield inst


def _py(inst, tmp_path, text, timeout=120):
    """Run ``text`` (``OUT`` replaced by ``tmp_path``) as a Python script inside the
    instance, from ``tmp_path``; returns its stdout."""
    path = tmp_path / "api.py"
    path.write_text(textwrap.dedent(text).replace("OUT", str(tmp_path)))
    r = inst.run("sh", "-c", f'cd "{tmp_path}" && exec "{sys.executable}" api.py', check=False, timeout=timeout)
    if r.returncode != 0:
        jobs = inst.flux("jobs", "-a", "-o", "{id.f58} {name} {result}", check=False).stdout
        outs = {p.name: p.read_text() for p in tmp_path.glob("*.out")}
        pytest.fail(f"script exited {r.returncode}\nstdout: {r.stdout}\nstderr: {r.stderr}\njobs:\n{jobs}\n"
                    f"job output: {outs}")
    return r.stdout


def _fields(line):
    """``free NNODES NCORES NGPUS ...`` of ``flux resource list -n -s free`` -> (nodes, cores)."""
    parts = line.split()
    assert parts[0] == "free", line
    return int(parts[1]), int(parts[2])


def test_seed_helpers_replicate_the_cli_jobspecs_and_run(inst4, tmp_path):
    (tmp_path / "hi.sh").write_text("#!/bin/sh\necho hi \"$@\" level=$(flux getattr instance-level)\n")
    batch = json.loads(inst4.run("sh", "-c", f"cd {tmp_path} && flux batch --dry-run -n2 -c2 -N2 hi.sh a b").stdout)
    alloc = json.loads(inst4.run("sh", "-c", f"cd {tmp_path} && flux alloc --dry-run -n2 -N2 hostname").stdout)
    out = _py(inst4, tmp_path, """
        import json, os
        import flux, flux.job
        from flux.job import JobspecV1
        h = flux.Flux()
        script = open("hi.sh").read()
        js = JobspecV1.from_batch_command(script, "hi.sh", args=["a", "b"], num_slots=2, cores_per_slot=2,
                                          num_nodes=2)
        nest = JobspecV1.from_nest_command(["hostname"], num_slots=2, num_nodes=2)
        print(json.dumps([js.jobspec, nest.jobspec]))
        js.cwd = os.getcwd()
        js.stdout = "OUT/seed.out"
        jobid = flux.job.submit(h, js)
        print(flux.job.result(h, jobid).result)
    """)
    lines = out.splitlines()
    mine, nest = json.loads(lines[0])
    assert lines[1] == "COMPLETED", out
    assert mine["resources"] == batch["resources"] and mine["tasks"] == batch["tasks"]
    assert mine["version"] == batch["version"] == 1
    for key in ("files", "job", "duration"):
        assert mine["attributes"]["system"][key] == batch["attributes"]["system"][key], key
    options = dict(batch["attributes"]["system"]["shell"]["options"])
    options.pop("output")  # flux batch's default flux-{{id}}.out
    assert mine["attributes"]["system"]["shell"]["options"] == options
    assert nest["resources"] == alloc["resources"] and nest["tasks"] == alloc["tasks"]
    alloc_opts = alloc["attributes"]["system"]["shell"]["options"]
    assert {k: alloc_opts[k] for k in ("per-resource", "mpi", "exit-timeout", "pmi")} == \
        nest["attributes"]["system"]["shell"]["options"]
    assert (tmp_path / "seed.out").read_text() == "hi a b level=1\n"


def test_batch_script_runs_in_nested_instance(inst4, tmp_path):
    out = _py(inst4, tmp_path, r'''
        import json, os
        import flux, flux.job
        from flux.job import JobspecV1
        h = flux.Flux()
        script = """#!/bin/sh
        printf '%s|' "$@"; echo
        echo level=$(flux getattr instance-level) size=$(flux getattr size) jobid=$(flux getattr jobid)
        flux resource list -n -s free
        stat -c %a "$0"
        test "$(dirname "$0")" = "$FLUX_JOB_TMPDIR" && echo in-tmpdir
        echo tasks=$(flux run -n4 hostname | wc -l)
        """.replace("\n        ", "\n")
        js = JobspecV1.from_batch_command(script, "api-batch", args=["a b", "$HOME", "*"], num_slots=2,
                                          cores_per_slot=2, num_nodes=2)
        js.cwd = os.getcwd()
        js.stdout = "OUT/b.out"
        jobid = flux.job.submit(h, js)
        print(jobid.f58)
        events = [(ev.name, ev.context) for ev in flux.job.event_watch(h, jobid)]
        print(json.dumps(events))
        info = flux.job.result(h, jobid)
        print(info.result, info.returncode)
    ''')
    f58, events, result = out.splitlines()
    assert result == "COMPLETED 0", out
    events = json.loads(events)
    names = [name for name, _ in events]
    for name in ("alloc", "start", "memo", "finish", "clean"):
        assert name in names, names
    assert names.index("start") < names.index("finish") < names.index("clean"), names
    assert [ctx for name, ctx in events if name == "memo"][0]["uri"].startswith("ssh://"), events
    lines = (tmp_path / "b.out").read_text().splitlines()
    assert lines[0] == "a b|$HOME|*|", lines
    level, size, jobid = (kv.split("=", 1)[1] for kv in lines[1].split())
    assert (level, size) == ("1", "2"), lines
    assert inst4.flux("job", "id", "--to=f58", jobid).stdout.strip() == f58
    assert _fields(lines[2]) == (2, 4), lines  # the job's 2 nodes x 2 cores, not the instance's
    assert lines[3:6] == ["700", "in-tmpdir", "tasks=4"], lines
    assert inst4.flux("jobs", "-no", "{name}", f58).stdout.strip() == "api-batch"
    files = json.loads(inst4.flux("job", "info", f58, "jobspec").stdout)["attributes"]["system"]["files"]
    assert files["script"]["mode"] == 0o100700 and files["script"]["encoding"] == "utf-8"
    assert files["script"]["data"].startswith("#!/bin/sh\nprintf")


def test_batch_exit_status_result_and_wait(inst4, tmp_path):
    out = _py(inst4, tmp_path, """
        import flux, flux.job
        from flux.job import JobspecV1
        h = flux.Flux()
        jobid = flux.job.submit(h, JobspecV1.from_batch_command("#!/bin/sh\\nexit 5\\n", "ex5"), waitable=True)
        res = flux.job.wait(h, jobid)
        print(res.success, res.errstr)
        info = flux.job.result(h, jobid)
        print(info.result, info.returncode)
    """)
    lines = out.splitlines()
    assert lines[0].startswith("False ") and "exit code 5" in lines[0], out
    assert lines[1] == "FAILED 5", out


def test_batch_python_script_submits_two_levels_down(inst4, tmp_path):
    """A Python batch script uses the API inside its own instance, submitting a
    batch job of its own (level 2)."""
    out = _py(inst4, tmp_path, '''
        import os, sys
        import flux, flux.job
        from flux.job import JobspecV1
        inner = """#!%s
        import os
        import flux, flux.job
        from flux.job import JobspecV1
        h = flux.Flux()
        js = JobspecV1.from_batch_command("#!/bin/sh\\\\necho level=$(flux getattr instance-level)\\\\n", "level2")
        js.cwd = os.getcwd()
        js.stdout = "OUT/level2.out"
        jobid = flux.job.submit(h, js)
        print("inner", flux.job.result(h, jobid).result, os.environ["FLUX_URI"] != "PARENT")
        """.replace("\\n        ", "\\n") % sys.executable
        inner = inner.replace("PARENT", os.environ["FLUX_URI"])
        js = JobspecV1.from_batch_command(inner, "level1", num_slots=2, num_nodes=2)
        js.cwd = os.getcwd()
        js.stdout = "OUT/level1.out"
        js.stderr = "OUT/level1.err"
        h = flux.Flux()
        jobid = flux.job.submit(h, js)
        print(flux.job.result(h, jobid).result)
    ''')
    assert out == "COMPLETED\n", out
    assert (tmp_path / "level1.out").read_text() == "inner COMPLETED True\n"
    assert (tmp_path / "level2.out").read_text() == "level=2\n"


@pytest.mark.parametrize("kwargs,nodes,cores", [
    ({"num_slots": 2, "cores_per_slot": 2, "num_nodes": 2}, 2, 4),
    ({"num_slots": 3, "num_nodes": 3, "exclusive": True}, 3, 6),
    ({"num_slots": 2, "cores_per_slot": 2}, 2, 4),  # a slot fills a node: two nodes, no num_nodes
    ({}, 1, 1),
])
def test_nest_command_instance_has_the_requested_size(inst4, tmp_path, kwargs, nodes, cores):
    out = _py(inst4, tmp_path, f"""
        import os
        import flux, flux.job
        from flux.job import JobspecV1
        h = flux.Flux()
        cmd = ["sh", "-c", "echo $(flux getattr size) $(flux getattr instance-level); flux resource list -n -s free"]
        js = JobspecV1.from_nest_command(cmd, **{kwargs!r})
        js.cwd = os.getcwd()
        js.stdout = "OUT/n.out"
        jobid = flux.job.submit(h, js, waitable=True)
        print(flux.job.wait(h, jobid).success)
    """)
    assert out == "True\n", out
    size_level, free = (tmp_path / "n.out").read_text().splitlines()
    assert size_level == f"{nodes} 1"
    assert _fields(free) == (nodes, cores)


def test_nest_command_without_command_starts_and_exits(inst4, tmp_path):
    """No initial program: the broker runs ``$SHELL``, which reads the (empty) job stdin and exits."""
    out = _py(inst4, tmp_path, """
        import os
        import flux, flux.job
        from flux.job import JobspecV1
        h = flux.Flux()
        js = JobspecV1.from_nest_command([], environment=dict(os.environ, SHELL="/bin/sh"))
        js.cwd = os.getcwd()
        print(flux.job.result(h, flux.job.submit(h, js)).result)
    """)
    assert out == "COMPLETED\n"


def test_broker_opts_reach_the_nested_broker(inst4, tmp_path):
    out = _py(inst4, tmp_path, """
        import os
        import flux, flux.job
        from flux.job import JobspecV1
        h = flux.Flux()
        js = JobspecV1.from_batch_command("#!/bin/sh\\nflux getattr test.api\\n", "opts", broker_opts=["-Stest.api=42"])
        js.cwd = os.getcwd()
        js.stdout = "OUT/o.out"
        print(flux.job.result(h, flux.job.submit(h, js)).result)
        js = JobspecV1.from_nest_command(["flux", "getattr", "test.nest"], broker_opts=("-Stest.nest=x y",))
        js.cwd = os.getcwd()
        js.stdout = "OUT/n.out"
        print(flux.job.result(h, flux.job.submit(h, js)).result)
    """)
    assert out == "COMPLETED\nCOMPLETED\n", out
    assert (tmp_path / "o.out").read_text() == "42\n"
    assert (tmp_path / "n.out").read_text() == "x y\n"


def test_conf_reaches_the_nested_broker(inst4, tmp_path):
    """``conf=`` is written to the job's tmpdir and given to the brokers with -c:
    the nested instance serves it (flux config get) and applies its tunables."""
    out = _py(inst4, tmp_path, """
        import os
        import flux, flux.job
        from flux.job import JobspecV1
        h = flux.Flux()
        script = "#!/bin/sh\\nflux config get resource.noverify\\nflux getattr job-manager.inactive-num-limit\\n"
        js = JobspecV1.from_batch_command(script, "conf", conf={"resource": {"noverify": True},
                                                                "job-manager": {"inactive-num-limit": 7}})
        js.cwd = os.getcwd()
        js.stdout = "OUT/c.out"
        info = flux.job.result(h, flux.job.submit(h, js))
        print(info.result, " ".join(open("OUT/c.out").read().split()))
    """)
    assert out.strip() == "COMPLETED true 7", out


def test_gpus_per_slot(inst4, tmp_path):
    """The instance has no GPUs: a GPU request is unsatisfiable at submit (EOVERFLOW);
    ``gpus_per_slot=0`` asks for none and runs."""
    out = _py(inst4, tmp_path, """
        import os
        import flux, flux.job
        from flux.job import JobspecV1
        h = flux.Flux()
        try:
            flux.job.submit(h, JobspecV1.from_batch_command("#!/bin/sh\\ntrue\\n", "g", gpus_per_slot=1))
            print("ACCEPTED")
        except OSError as exc:
            print(exc.errno, "unsatisfiable" in str(exc))
        js = JobspecV1.from_batch_command("#!/bin/sh\\ntrue\\n", "g0", gpus_per_slot=0)
        js.cwd = os.getcwd()
        print(flux.job.result(h, flux.job.submit(h, js)).result)
    """)
    assert out.splitlines() == ["75 True", "COMPLETED"], out


def test_batch_cancel_and_time_limit_end_the_nested_instance(inst4, tmp_path):
    out = _py(inst4, tmp_path, """
        import os
        import flux, flux.job
        from flux.job import JobspecV1
        h = flux.Flux()
        js = JobspecV1.from_batch_command("#!/bin/sh\\necho up\\nexec sleep 300\\n", "cn", num_slots=2, num_nodes=2)
        js.cwd = os.getcwd()
        js.stdout = "OUT/cn.out"
        jobid = flux.job.submit(h, js)
        flux.job.event_wait(h, jobid, "memo")  # the nested instance is up
        flux.job.cancel(h, jobid, "from the api")
        print(flux.job.result(h, jobid).result)
        assert list(flux.job.event_watch(h, jobid))[-1].name == "clean"
        js = JobspecV1.from_batch_command("#!/bin/sh\\nexec sleep 300\\n", "tl", duration="1s")
        js.cwd = os.getcwd()
        jobid = flux.job.submit(h, js)
        print(flux.job.result(h, jobid).result)
        exc = [e.context for e in flux.job.event_watch(h, jobid) if e.name == "exception"]  # to "clean"
        print(exc[0]["type"])
    """)
    assert out.splitlines() == ["CANCELED", "TIMEOUT", "timeout"], out
    assert inst4.flux("jobs", "-n", "-o", "{id.f58}").stdout.strip() == ""  # none left running
    assert inst4.flux("resource", "list", "-n", "-s", "allocated").stdout.split()[:3] == ["allocated", "0", "0"]


def test_bad_arguments_fail_before_submit(inst4, tmp_path):
    out = _py(inst4, tmp_path, """
        import flux, flux.job
        from flux.job import JobspecV1
        h = flux.Flux()
        n = len(h.rpc("job-list.list", {"states": 127}).get()["jobs"])
        for make in (lambda: JobspecV1.from_batch_command("echo no shebang\\n", "noshebang"),
                     lambda: JobspecV1.from_batch_command("#!/bin/sh\\n", "x", args="a b"),
                     lambda: JobspecV1.from_batch_command("#!/bin/sh\\n", "x", num_slots=0),
                     lambda: JobspecV1.from_nest_command("hostname"),
                     lambda: JobspecV1.from_nest_command(["true"], num_slots=1, num_nodes=2)):
            try:
                flux.job.submit(h, make())
                print("ACCEPTED")
            except ValueError as exc:
                print(exc)
        print("queued", len(h.rpc("job-list.list", {"states": 127}).get()["jobs"]) - n)
    """)
    assert out.splitlines() == [
        "jobspec: attributes.system.files.script: noshebang does not appear to start with '#!'",
        "jobspec: args: must be a list of strings (got str)",
        "jobspec: num_slots: must be an integer >= 1 (got 0)",
        "jobspec: command: must be a list of strings (got str)",
        "jobspec: num_nodes: must not be greater than num_slots (1)",
        "queued 0"], out
