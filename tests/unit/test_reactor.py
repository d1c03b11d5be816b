"""The handle's reactor (``Flux.reactor_run`` and its watchers, ``Future.then``),
against a fake broker: the far end of the handle's UNIX socket, driven by the test."""

import errno
import os
import signal
import time

import pytest

from flux_launch.client.handle import (FD_READ, MSGTYPE_EVENT, MSGTYPE_REQUEST, REACTOR_NOWAIT, REACTOR_ONCE,
                                       STREAMING)
from flux_launch.proto import message

from fake_broker import BrokerEnd, connect


@pytest.fixture
def pair(tmp_path):
    """``(handle, fake broker)`` on one connection."""
    path = str(tmp_path / "local-0")
    h, conn = connect(path)
    yield h, BrokerEnd(conn)
    h.close()
    conn.close()


def _guard(h, seconds=10):
    """A timer that fails the test instead of letting a broken reactor hang it."""

    def expired(*_):
        raise AssertionError(f"reactor still running after {seconds}s")

    w = h.timer_watcher_create(seconds, expired).start()
    return w


def test_run_returns_at_once_when_nothing_is_active(pair):
    h, _ = pair
    t = time.monotonic()
    assert h.reactor_run() == 0
    assert time.monotonic() - t < 1


def test_fd_watcher(pair):
    h, _ = pair
    r, w = os.pipe()
    got = []

    def readable(handle, watcher, fd, revents, args):
        assert handle is h and fd == r and revents & FD_READ
        got.append((os.read(fd, 100), args))
        watcher.stop()

    h.fd_watcher_create(r, readable, args="a").start()
    os.write(w, b"hello")
    h.reactor_run()
    assert got == [(b"hello", "a")]
    os.close(r)
    os.close(w)


def test_fd_watcher_sees_the_end_of_a_pipe(pair):
    h, _ = pair
    r, w = os.pipe()
    os.close(w)
    ends = []

    def readable(_h, watcher, fd, revents, _args):
        ends.append(os.read(fd, 100))
        watcher.stop()

    with h.fd_watcher_create(r, readable):
        h.reactor_run()
    assert ends == [b""]
    os.close(r)


def test_timer_one_shot(pair):
    h, _ = pair
    fired = []
    t0 = time.monotonic()
    w = h.timer_watcher_create(0.05, lambda _h, watcher, _rev, args: fired.append((args, watcher.active)),
                               args=7).start()
    assert h.reactor_run() == 0  # the one-shot timer stopped: nothing left
    assert fired == [(7, False)]
    assert time.monotonic() - t0 >= 0.05
    assert not w.active


def test_timer_repeat_and_stop(pair):
    h, _ = pair
    ticks = []

    def tick(_h, watcher, _rev, _args):
        ticks.append(time.monotonic())
        if len(ticks) == 3:
            watcher.stop()

    t0 = time.monotonic()
    h.timer_watcher_create(0.01, tick, repeat=0.02).start()
    guard = _guard(h)
    while len(ticks) < 3:
        h.reactor_run(REACTOR_ONCE)
    guard.stop()
    assert len(ticks) == 3
    assert ticks[2] - t0 >= 0.05
    assert h.reactor_run() == 0  # the repeating timer stopped itself


def test_stopped_timer_does_not_fire(pair):
    h, _ = pair
    fired = []
    late = h.timer_watcher_create(0.05, lambda *_: fired.append("late")).start()
    h.timer_watcher_create(0.01, lambda *_: late.stop()).start()
    h.reactor_run()
    time.sleep(0.06)
    h.reactor_run()
    assert fired == []


def test_unref_watcher_does_not_keep_the_run_going(pair):
    h, _ = pair
    fired = []
    watchdog = h.timer_watcher_create(30, lambda *_: fired.append("watchdog")).start().unref()
    h.timer_watcher_create(0.01, lambda *_: fired.append("short")).start()
    t = time.monotonic()
    assert h.reactor_run() == 0
    assert fired == ["short"] and watchdog.active and time.monotonic() - t < 10
    watchdog.ref()
    assert h.reactor_run(REACTOR_NOWAIT) == 1
    watchdog.stop()
    assert h.reactor_run() == 0


def test_reactor_stop(pair):
    h, _ = pair
    ticks = []

    def tick(handle, _w, _rev, _args):
        ticks.append(1)
        if len(ticks) == 2:
            handle.reactor_stop()

    w = h.timer_watcher_create(0.0, tick, repeat=0.01).start()
    guard = _guard(h)
    assert h.reactor_run() == 2  # two watchers still active
    assert len(ticks) == 2 and w.active
    w.stop()
    guard.stop()


def test_exception_in_callback_propagates_and_stops(pair):
    h, _ = pair
    calls = []

    def boom(*_):
        calls.append("boom")
        raise ValueError("from a callback")

    h.timer_watcher_create(0.0, boom).start()
    later = h.timer_watcher_create(0.0, lambda *_: calls.append("later")).start()
    with pytest.raises(ValueError, match="from a callback"):
        h.reactor_run()
    assert calls == ["boom"]  # the reactor stopped at the exception
    h.reactor_run()  # what was due runs in the next run
    assert calls == ["boom", "later"] and not later.active


def test_then_plain_rpc(pair):
    h, broker = pair
    got = []
    fut = h.rpc("svc.hello", {"x": 1}).then(lambda f, tag: got.append((tag, f.get())), "t")
    req = broker.request()
    assert req["topic"] == "svc.hello"
    broker.respond(req, {"y": 2})
    assert h.reactor_run() == 0
    assert got == [("t", {"y": 2})]
    assert fut.done


def test_then_streaming_rpc_once_per_response(pair):
    h, broker = pair
    got = []

    def each(f):
        try:
            got.append(f.get()["n"])
        except OSError as exc:
            got.append(exc.errno)

    h.rpc("svc.stream", flags=STREAMING).then(each)
    req = broker.request()
    for n in range(3):
        broker.respond(req, {"n": n})
    broker.respond(req, errnum=errno.ENODATA)
    assert h.reactor_run() == 0  # returns once the stream ended
    assert got == [0, 1, 2, errno.ENODATA]


def test_then_error_response(pair):
    h, broker = pair
    got = []

    def each(f):
        with pytest.raises(OSError) as exc:
            f.get()
        got.append(exc.value.errno)

    h.rpc("svc.fail").then(each)
    broker.respond(broker.request(), errnum=errno.EPERM)
    h.reactor_run()
    assert got == [errno.EPERM]


def test_then_gets_responses_read_by_a_blocking_get(pair):
    """A response that a blocking get() of another future read waits for the reactor."""
    h, broker = pair
    got = []
    h.rpc("svc.a").then(lambda f: got.append(f.get()))
    b = h.rpc("svc.b")
    ra, rb = broker.request(), broker.request()
    broker.respond(ra, "A")
    broker.respond(rb, "B")
    assert b.get(timeout=5) == "B"
    assert got == []  # only the reactor calls continuations
    assert h.reactor_timeout() == 0
    h.reactor_run()
    assert got == ["A"]


def test_then_on_a_future_already_answered(pair):
    h, broker = pair
    fut = h.rpc("svc.a")
    broker.respond(broker.request(), "A")
    fut.wait_for(timeout=5)
    assert fut.is_ready()
    got = []
    fut.then(lambda f: got.append(f.get()))
    h.reactor_run()
    assert got == ["A"]


def test_msg_watcher_on_events(pair):
    h, broker = pair
    got = []

    def on_event(handle, watcher, msg, args):
        got.append((msg["topic"], msg["payload"], args))
        watcher.stop()

    h.msg_watcher_create(on_event, MSGTYPE_EVENT, "job.*", args="x").start()
    broker.send(message.event("other.thing", {"a": 0}))
    broker.send(message.event("job.state", {"a": 1}))
    guard = _guard(h)
    while not got:
        h.reactor_run(REACTOR_ONCE)
    guard.stop()
    assert got == [("job.state", {"a": 1}, "x")]
    assert h.event_recv(timeout=5) == ("other.thing", {"a": 0})  # nobody claimed it


def test_msg_watcher_on_requests(pair):
    h, broker = pair
    answered = []

    def on_request(handle, watcher, msg, _args):
        handle.respond(msg, {"echo": msg["payload"]})
        answered.append(msg["topic"])
        watcher.stop()

    h.msg_watcher_create(on_request, MSGTYPE_REQUEST, "mine.ping").start()
    broker.send(dict(message.request("mine.pingx", 4, matchtag=8), route=["c1"]))  # not the exact topic
    broker.send(dict(message.request("mine.ping", 5, matchtag=9), route=["c1"]))
    h.reactor_run()
    assert answered == ["mine.ping"]
    assert [m["topic"] for m in h.requests] == ["mine.pingx"]  # left for whoever serves it
    resp = broker.request()
    assert resp["type"] == "resp" and resp["matchtag"] == 9 and resp["payload"] == {"echo": 5}


def test_partial_message_does_not_block_the_loop(pair):
    """Half a response in the socket: the timer still fires, and the continuation
    gets the response once the rest arrives."""
    h, broker = pair
    log = []
    h.rpc("svc.slow").then(lambda f: log.append(("resp", f.get())))
    frame = message.frame(message.response(broker.request(), {"big": "x" * 1000}))
    broker.conn.sendall(frame[:10])

    def rest(*_):
        log.append("timer")
        broker.conn.sendall(frame[10:])

    h.timer_watcher_create(0.2, rest).start()
    guard = _guard(h)
    while len(log) < 2:
        h.reactor_run(REACTOR_ONCE)
    guard.stop()
    assert log == ["timer", ("resp", {"big": "x" * 1000})]


def test_nowait_step_does_not_block(pair):
    h, broker = pair
    got = []
    h.rpc("svc.a").then(lambda f: got.append(f.get()))
    h.timer_watcher_create(30, lambda *_: None).start()
    assert 29 < h.reactor_timeout() <= 30
    t = time.monotonic()
    assert h.reactor_run(REACTOR_NOWAIT) == 2
    assert time.monotonic() - t < 1 and got == []
    broker.respond(broker.request(), "A")
    guard = time.monotonic() + 10
    while not got and time.monotonic() < guard:
        h.reactor_run(REACTOR_NOWAIT)
    assert got == ["A"]


def test_signal_watcher(pair):
    h, _ = pair
    got = []
    before = signal.getsignal(signal.SIGUSR1)

    def on_signal(_h, watcher, signum, _args):
        got.append(signum)
        watcher.stop()

    w = h.signal_watcher_create(signal.SIGUSR1, on_signal).start()
    assert signal.getsignal(signal.SIGUSR1) is not before
    h.timer_watcher_create(0.0, lambda *_: os.kill(os.getpid(), signal.SIGUSR1)).start()
    h.reactor_run()
    assert got == [signal.SIGUSR1] and not w.active
    assert signal.getsignal(signal.SIGUSR1) is before


def test_broker_going_away_ends_the_run(pair):
    h, broker = pair
    h.rpc("svc.a").then(lambda f: f.get())
    broker.request()
    broker.conn.close()
    with pytest.raises(ConnectionError):
        h.reactor_run()


def test_watcher_stopped_while_due_is_not_called(pair):
    """Both timers expire in the same step; the first stops the second before its call."""
    h, _ = pair
    fired = []
    second = h.timer_watcher_create(0.0, lambda *_: fired.append("second"))
    h.timer_watcher_create(0.0, lambda *_: (fired.append("first"), second.stop())).start()
    second.start()
    h.reactor_run()
    assert fired == ["first"]


def test_reactor_stop_between_continuations(pair):
    """reactor_stop() in a continuation: the next one, already due, waits for the next run."""
    h, broker = pair
    got = []

    def first(f):
        got.append(f.get())
        h.reactor_stop()

    h.rpc("svc.a").then(first)
    h.rpc("svc.b").then(lambda f: got.append(f.get()))
    ra, rb = broker.request(), broker.request()
    broker.send(message.response(ra, "A"))
    broker.send(message.response(rb, "B"))
    b_only = h.rpc("svc.sync")  # both responses are read before this one is answered
    broker.respond(broker.request(), "sync")
    b_only.get(timeout=5)
    h.reactor_run()
    assert got == ["A"]
    h.reactor_run()
    assert got == ["A", "B"]


def test_receive_without_blocking(pair):
    """The reactor's read of the broker socket returns at once when nothing is there
    (even after a blocking get() with a timeout put the socket in timeout mode)."""
    h, broker = pair
    fut = h.rpc("svc.a")
    broker.respond(broker.request(), "A")
    assert fut.get(timeout=5) == "A"

    def hung(*_):
        raise TimeoutError("the read blocked")

    old = signal.signal(signal.SIGALRM, hung)
    signal.setitimer(signal.ITIMER_REAL, 2.0)
    try:
        h._recv_nowait()
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)
