"""The handle's reactor against a real instance: continuations on a streaming
watch, a message watcher on published events, ``result_async().then``, and
``flux exec`` forwarding stdin that is a regular file or /dev/null (selectors'
epoll refused both, and the commands waited for an EOF that never came)."""

import os
import subprocess
import sys

import pytest

import flux_launch.job as job
from flux_launch.client.handle import MSGTYPE_EVENT, STREAMING, Flux
from flux_launch.job.jobspec import JobspecV1

pytestmark = pytest.mark.e2e

FLUX = os.path.join(os.path.dirname(sys.executable), "flux")


@pytest.fixture(scope="module")
def inst2():
    from flux_launch.testing import Instance

    with Instance(size=2) as inst:
        yield inst


def _guard(h, seconds=30):
    def expired(*_):
        raise AssertionError(f"reactor still running after {seconds}s")

    return h.timer_watcher_create(seconds, expired).start().unref()  # never what keeps the run going


def test_streaming_watch_continuation_and_event_watcher(inst2):
    """A kvs watch's continuation sees each value; a message watcher sees the event
    the continuation publishes, and stops the reactor."""
    with Flux(inst2.uri) as h:
        h.event_subscribe("reactor-test.")
        values, events = [], []

        def on_value(fut):
            values.append(fut.get()["value"])
            if len(values) < 3:
                h.rpc("kvs.commit", {"ops": [{"op": "put", "key": "rt.k", "value": len(values)}]})
            else:
                h.rpc("event.pub", {"topic": "reactor-test.done", "payload": {"n": len(values)}})

        def on_event(handle, watcher, msg, _args):
            events.append((msg["topic"], msg["payload"]))
            watcher.stop()
            handle.reactor_stop()

        h.rpc("kvs.commit", {"ops": [{"op": "put", "key": "rt.k", "value": 0}]}).get(timeout=10)
        watch = h.rpc("kvs.watch", {"key": "rt.k"}, flags=STREAMING).then(on_value)
        h.msg_watcher_create(on_event, MSGTYPE_EVENT, "reactor-test.*").start()
        guard = _guard(h)
        h.reactor_run()
        guard.stop()
        assert values == [0, 1, 2]
        assert events == [("reactor-test.done", {"n": 3})]
        assert not watch.done  # the watch goes on; the reactor stopped on the event


def test_result_async_then(inst2):
    with Flux(inst2.uri) as h:
        js = JobspecV1.from_command(["true"])
        done_first = job.submit(h, js)
        job.result(h, done_first)  # inactive before then(): called back all the same
        running = job.submit(h, JobspecV1.from_command(["sleep", "0.3"]))
        got = []
        for jobid in (done_first, running):
            job.result_async(h, jobid).then(lambda fut, tag: got.append((tag, fut.get_info()["result"])), jobid)
        guard = _guard(h)
        h.reactor_run()
        guard.stop()
        assert sorted(got) == sorted([(done_first, "COMPLETED"), (running, "COMPLETED")])


@pytest.mark.parametrize("source", ["file", "devnull"])
def test_exec_forwards_stdin_from_a_file_or_devnull(inst2, tmp_path, source):
    path = tmp_path / "in.txt"
    path.write_text("one\ntwo\n")
    with open(path if source == "file" else os.devnull) as stdin:
        r = subprocess.run([FLUX, "exec", "-l", "cat"], stdin=stdin, env=inst2.env, capture_output=True,
                           text=True, timeout=30)
    assert r.returncode == 0, r.stderr
    expect = "0: one\n0: two\n1: one\n1: two\n" if source == "file" else ""
    assert "".join(sorted(r.stdout.splitlines(keepends=True))) == expect
