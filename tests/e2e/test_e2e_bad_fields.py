"""Well-framed requests whose fields have the wrong JSON types: each gets an error
response (or is dropped), and neither the connection, the broker, nor the other
clients suffer."""

import errno

import pytest

from flux_launch.client.handle import STREAMING, Flux

pytestmark = pytest.mark.e2e


def _error_of(fut, timeout=3):
    """The errno of the error response to ``fut`` (fails on success or no answer)."""
    try:
        payload = fut.get(timeout=timeout)
    except TimeoutError:
        pytest.fail("no response at all: the client would hang")
    except OSError as exc:
        return exc.errno
    pytest.fail(f"expected an error response, got {payload!r}")


def _healthy(inst):
    with Flux(inst.uri) as h:
        for rank in range(inst.size):
            assert h.rpc("broker.ping", {}, nodeid=rank).get(timeout=10)["rank"] == rank
        info = h.rpc("broker.info", nodeid=0).get(timeout=10)
        assert info["lost"] == "", info
    assert "offline" not in inst.flux("uptime").stdout


def test_nodeid_float_is_eproto(make_instance):
    inst = make_instance(size=2)
    with Flux(inst.uri) as h:
        assert _error_of(h.rpc("attr.get", {"name": "rank"}, nodeid=1.0)) == errno.EPROTO
        assert h.rpc("attr.get", {"name": "rank"}).get(timeout=10) == {"value": "0"}
    _healthy(inst)


def test_nodeid_boolean_does_not_lose_a_rank(make_instance):
    inst = make_instance(size=2)
    with Flux(inst.uri) as h:
        assert _error_of(h.rpc("attr.get", {"name": "rank"}, nodeid=True)) == errno.EPROTO
    _healthy(inst)


def _send_with_flags(h, flags, nodeid):
    """Send attr.get with ``flags`` as given (not an integer) and return the ``Future``
    of its matchtag, so that the test waits for the broker's answer to it."""
    from flux_launch.client.handle import Future

    fut = h._futures[999] = Future(h, 999, "attr.get", False)
    h.send({"type": "req", "topic": "attr.get", "nodeid": nodeid, "matchtag": 999, "flags": flags,
            "payload": {"name": "rank"}})
    return fut


def test_flags_not_int_local(make_instance):
    inst = make_instance(size=1)
    with Flux(inst.uri) as h:
        # the answer proves the broker handled it: EPROTO, not a crash or silence
        assert _error_of(_send_with_flags(h, "x", 0), timeout=10) == errno.EPROTO
        # the connection stays usable
        assert h.rpc("attr.get", {"name": "rank"}).get(timeout=10) == {"value": "0"}
    assert "Traceback" not in inst.log()


def test_flags_not_int_remote(make_instance):
    inst = make_instance(size=2)
    with Flux(inst.uri) as h:
        # answered by rank 1 (the request went there), after any log line of its own
        assert _error_of(_send_with_flags(h, "x", 1), timeout=10) == errno.EPROTO
        assert h.rpc("attr.get", {"name": "rank"}, nodeid=1).get(timeout=10) == {"value": "1"}
    _healthy(inst)
    assert "Traceback" not in inst.log()


def test_bad_subscription_does_not_break_events_rank0(make_instance):
    inst = make_instance(size=1)
    with Flux(inst.uri) as bad, Flux(inst.uri) as good, Flux(inst.uri) as pub:
        good.event_subscribe("e2e-bf.")
        try:
            bad.rpc("event.subscribe", {"topic": 5}).get(timeout=10)
        except OSError as exc:
            assert exc.errno == errno.EPROTO and not isinstance(exc, TimeoutError)
        pub.rpc("event.pub", {"topic": "e2e-bf.x", "payload": 1}).get(timeout=10)
        assert good.event_recv(timeout=4) == ("e2e-bf.x", 1)


def test_bad_subscription_does_not_break_events_rank1(make_instance):
    inst = make_instance(size=2)
    uri1 = inst.flux("exec", "-r", "1", "flux", "getattr", "local-uri").stdout.strip()
    with Flux(uri1) as bad, Flux(uri1) as good, Flux(inst.uri) as pub:
        good.event_subscribe("e2e-bf.")
        try:
            bad.rpc("event.subscribe", {"topic": 5}).get(timeout=10)
        except OSError as exc:
            assert exc.errno == errno.EPROTO and not isinstance(exc, TimeoutError)
        pub.rpc("event.pub", {"topic": "e2e-bf.y", "payload": 2}).get(timeout=10)
        assert good.event_recv(timeout=4) == ("e2e-bf.y", 2)


@pytest.mark.parametrize("payload", [{"cmd": ["true"], "env": {"A": 5}}, {"cmd": ["true"], "cwd": 5}],
                         ids=["env-int", "cwd-int"])
def test_rexec_bad_env_answered(make_instance, payload):
    inst = make_instance(size=1)
    with Flux(inst.uri) as h:
        errnum = _error_of(h.rpc("rexec.exec", payload, nodeid=0, flags=STREAMING))
        assert errnum in (errno.EPROTO, errno.EINVAL)
    _healthy(inst)
