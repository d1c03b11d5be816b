"""Events published at one broker reach subscribers on another."""

import pytest

from flux_launch.client.handle import Flux

pytestmark = pytest.mark.e2e


def _uri_of(inst, rank):
    uri = inst.flux("exec", "-r", str(rank), "flux", "getattr", "local-uri").stdout.strip()
    assert uri.startswith("local://") and uri.endswith(f"local-{rank}")
    return uri


def test_event_from_rank0_reaches_rank2(instance4):
    with Flux(_uri_of(instance4, 2)) as h2, Flux(instance4.uri) as h0:
        h2.event_subscribe("e2e-test.")
        seq1 = h0.rpc("event.pub", {"topic": "unrelated.topic", "payload": {"n": 0}}).get(timeout=10)["seq"]
        seq2 = h0.rpc("event.pub", {"topic": "e2e-test.hello", "payload": {"n": 1}}).get(timeout=10)["seq"]
        assert seq2 > seq1
        assert h2.event_recv(timeout=10) == ("e2e-test.hello", {"n": 1})
        # published from rank 2 (forwarded to rank 0), seen on rank 2 and rank 3
        with Flux(_uri_of(instance4, 3)) as h3:
            h3.event_subscribe("e2e-test.")
            h2.rpc("event.pub", {"topic": "e2e-test.from2", "payload": [1, 2]}).get(timeout=10)
            assert h2.event_recv(timeout=10) == ("e2e-test.from2", [1, 2])
            assert h3.event_recv(timeout=10) == ("e2e-test.from2", [1, 2])


def test_unsubscribe(instance4):
    with Flux(_uri_of(instance4, 1)) as h1, Flux(instance4.uri) as h0:
        h1.event_subscribe("e2e-unsub.")
        h1.rpc("event.unsubscribe", {"topic": "e2e-unsub."}).get(timeout=10)
        h1.event_subscribe("e2e-keep.")
        h0.rpc("event.pub", {"topic": "e2e-unsub.x"}).get(timeout=10)
        h0.rpc("event.pub", {"topic": "e2e-keep.y"}).get(timeout=10)
        assert h1.event_recv(timeout=10) == ("e2e-keep.y", None)


def test_event_pub_without_topic(instance4):
    with Flux(instance4.uri) as h:
        with pytest.raises(OSError) as exc:
            h.rpc("event.pub", {"payload": 1}).get(timeout=10)
        assert exc.value.errno == 71
