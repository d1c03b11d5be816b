"""Seed 001 (the Python API of job submission) as it is written: its three
examples (tests/data/seed001, copied from the seed; only its NameError fixed) run
inside an instance; FluxExecutor and flux.asyncio beyond the examples: failing
jobs, cancellation, attach, callbacks, shutdown."""

import glob
import os
import sys
import textwrap

import pytest

from flux_launch.testing import Instance

pytestmark = pytest.mark.e2e
DATA = os.path.join(os.path.dirname(__file__), "..", "data", "seed001")


@pytest.fixture(scope="module")
def inst():
    with Instance(size=1) as inst:
        yield inst


def _seed_blocks():
    found = glob.glob("/work/shared/seeds/001_*.txt")
    if not found:
        return []
    with open(found[0]) as f:
        seed = f.read()
    lines, blocks, i = seed.splitlines(), [], 0
    while i < len(lines):
        if lines[i].strip() == ".. code:: python":
            i += 1
            body = []
            while i < len(lines) and (not lines[i].strip() or lines[i].startswith(("\t", " "))):
                body.append(lines[i])
                i += 1
            blocks.append(textwrap.dedent("\n".join(body)).strip("\n") + "\n")
        else:
            i += 1
    return blocks


def test_fixtures_are_the_seed_verbatim():
    blocks = _seed_blocks()
    if not blocks:
        pytest.skip("the seed is not on this machine")  # the fixtures are the copy the other tests run
    names = ["ex1_executor.py", "ex2_event_loop.py", "ex3_asyncio.py"]
    for name, block in zip(names, blocks, strict=True):
        text = open(os.path.join(DATA, name)).read()
        if name == "ex2_event_loop.py":
            first, _, text = text.partition("\n")
            assert first.startswith("# seed 001's own NameError fixed")
            block = block.replace("flux.job.submit_async(f, jobspec)", "flux.job.submit_async(flux_handle, jobspec)")
        assert text == block, name


def _run(inst, name, timeout=60):
    r = inst.run(sys.executable, os.path.join(DATA, name), check=False, timeout=timeout)
    assert r.returncode == 0, r
    return r.stdout


def test_seed_executor_example(inst):
    assert _run(inst, "ex1_executor.py").split() == ["0"] * 5


def test_seed_event_loop_example(inst):
    lines = _run(inst, "ex2_event_loop.py").splitlines()
    assert len(lines) == 5 and all("'result': 'COMPLETED'" in line for line in lines), lines


def test_seed_asyncio_example(inst):
    before = set(inst.flux("jobs", "-a", "-n", "-o", "{id}").stdout.split())
    _run(inst, "ex3_asyncio.py")
    new = [line.split() for line in inst.flux("jobs", "-a", "-n", "-o", "{id} {name}").stdout.splitlines()
           if line.split()[0] not in before]
    assert sorted(name for _id, name in new) == ["echo", "sleep"], new


def _script(inst, tmp_path, text, timeout=60):
    path = tmp_path / "s.py"
    path.write_text(textwrap.dedent(text))
    r = inst.run(sys.executable, str(path), check=False, timeout=timeout)
    assert r.returncode == 0, r
    return r.stdout.splitlines()


def test_executor_results_exceptions_callbacks_attach(inst, tmp_path):
    out = _script(inst, tmp_path, """
        import concurrent.futures, flux, flux.job
        from flux.job import FluxExecutor, JobspecV1, JobException
        seen = []
        with FluxExecutor() as ex:
            f = ex.submit(JobspecV1.from_command(["sh", "-c", "exit 3"]))
            f.add_jobid_callback(lambda fut: seen.append("jobid"))
            f.add_event_callback("start", lambda fut, ev: seen.append(ev.name))
            print("exit", f.result())
            k = ex.submit(JobspecV1.from_command(["sh", "-c", "kill -9 $$"]))
            print("killed", k.result())
            s = ex.submit(JobspecV1.from_command(["sleep", "60"]))
            jobid = s.jobid(timeout=30)
            flux.job.cancel(flux.Flux(), jobid)
            print("cancel", type(s.exception()).__name__, s.exception().type)
            a = ex.attach(jobid)
            print("attach", a.jobid() == jobid, type(a.exception()).__name__)
            bad = ex.submit(JobspecV1.from_command(["true"], num_tasks=64, num_nodes=64))
            print("bad", type(bad.exception()).__name__)
            try:
                bad.jobid()
            except RuntimeError as exc:
                print("badid", "could not be submitted" in str(exc))
            try:
                f.add_event_callback("nonsense", print)
            except ValueError:
                print("valueerror")
            nojob = ex.attach(123456789)
            print("nojob", type(nojob.exception()).__name__)
        print("seen", seen)
        try:
            ex.submit(JobspecV1.from_command(["true"]))
        except RuntimeError:
            print("after-shutdown refused")
    """)
    assert out == ["exit 3", "killed 137", "cancel JobException cancel", "attach True JobException",
                   "bad OSError", "badid True", "valueerror", "nojob ValueError", "seen ['jobid', 'start']",
                   "after-shutdown refused"], out


def test_executor_cancel_before_submit_and_many(inst, tmp_path):
    out = _script(inst, tmp_path, """
        import concurrent.futures
        from flux.job import FluxExecutor, JobspecV1
        ex = FluxExecutor(threads=2)
        futs = [ex.submit(JobspecV1.from_command(["true"])) for _ in range(200)]
        ex.shutdown(wait=True, cancel_futures=False)
        print(sorted({f.result() for f in futs}), len(futs))
        ex = FluxExecutor()
        futs = [ex.submit(JobspecV1.from_command(["true"])) for _ in range(50)]
        ex.shutdown(wait=True, cancel_futures=True)
        n_cancelled = sum(f.cancelled() for f in futs)
        print(all(f.done() for f in futs), all(f.cancelled() or f.result() == 0 for f in futs))
    """, timeout=120)
    assert out == ["[0] 200", "True True"], out


def test_asyncio_many_results_events_cancel(inst, tmp_path):
    out = _script(inst, tmp_path, """
        import asyncio, flux.asyncio, flux.job
        from flux.job import JobspecV1
        async def main():
            ids = await asyncio.gather(*(flux.asyncio.submit(JobspecV1.from_command(["true"])) for _ in range(200)))
            infos = await asyncio.gather(*(flux.asyncio.result(i) for i in ids))
            print(len(infos), sorted({i.result for i in infos}))
            j = await flux.asyncio.submit(JobspecV1.from_command(["sh", "-c", "exit 4"]))
            names = [ev.name async for ev in flux.asyncio.event_watch(j)]
            print(names[0], names[-1], "finish" in names, (await flux.asyncio.result(j)).returncode)
            s = await flux.asyncio.submit(JobspecV1.from_command(["sleep", "60"]))
            await flux.asyncio.wait_for_event(s, "start")
            await flux.asyncio.cancel(s)
            print((await flux.asyncio.result(s)).result)
            try:
                await flux.asyncio.result(123456789)
            except OSError as exc:
                print("nojob", exc.errno)
        asyncio.run(main())
    """, timeout=120)
    assert out == ["200 ['COMPLETED']", "submit clean True 4", "CANCELED", "nojob 2"], out
