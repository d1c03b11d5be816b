"""The service framework (services/base.py) on a fake broker: methods by topic,
ServiceError to an error response, an unexpected exception to EIO with its
traceback logged, unknown methods to ENOSYS; and builtin services served by it."""

import asyncio
import errno
import logging

import pytest

from fake_broker import ServiceBroker

from flux_launch.broker import builtins
from flux_launch.services.base import Service, ServiceError


class FakeBroker(ServiceBroker):
    """A one-rank broker with two attributes."""

    def __init__(self):
        super().__init__()
        self.attrs = {"rank": "0", "custom": "x"}


@pytest.fixture
def broker():
    return FakeBroker()


def test_handler_gets_the_request_and_an_object_payload(broker):
    seen = []

    def get(msg, p):
        seen.append((msg["topic"], p))
        broker.respond(msg, {"ok": p.get("x")})

    Service(broker, "demo", {"get": get}).register()
    assert broker.request("demo.get", {"x": 1}) == [(1, {"ok": 1}, 0, None)]
    assert broker.request("demo.get", [1, 2]) == [(1, {"ok": None}, 0, None)]  # not an object: {}
    assert seen == [("demo.get", {"x": 1}), ("demo.get", {})]


def test_service_error_is_the_response(broker):
    def get(msg, p):
        raise ServiceError(errno.ENOENT, "a.b: no such key")

    Service(broker, "demo", {"get": get}).register()
    assert broker.request("demo.get") == [(1, None, errno.ENOENT, "a.b: no such key")]


def test_unexpected_exception_is_eio_logged_and_the_service_goes_on(broker, caplog):
    calls = []

    def boom(msg, p):
        calls.append(1)
        raise ValueError("status\nsecond line")

    Service(broker, "demo", {"boom": boom, "ping": lambda msg, p: broker.respond(msg, {})}).register()
    with caplog.at_level(logging.ERROR, logger="flux_launch.services"):
        [(tag, payload, errnum, errstr)] = broker.request("demo.boom")
    assert errnum == errno.EIO and errstr.startswith("demo.boom: internal error: "), errstr
    assert "\n" not in errstr and "status" in errstr
    [record] = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert record.exc_info and record.exc_info[0] is ValueError  # the traceback goes to the log
    assert broker.request("demo.ping", tag=2) == [(2, {}, 0, None)]
    assert calls == [1]


def test_unknown_method_is_enosys_and_disconnect_needs_no_handler(broker):
    Service(broker, "demo", {"get": lambda msg, p: broker.respond(msg, {})}).register()
    assert broker.request("demo.nope") == [(1, None, errno.ENOSYS, "unknown method demo.nope")]
    assert broker.request("demo") == [(1, None, errno.ENOSYS, "unknown method demo")]
    assert broker.request("demo.disconnect") == []


def test_check_refuses_before_the_handler(broker):
    ran = []

    def check(msg, method):
        if msg.get("rolemask") != 1 and method != "disconnect":
            raise ServiceError(errno.EPERM, "demo: owner only")

    Service(broker, "demo", {"get": lambda msg, p: ran.append(1), "disconnect": lambda msg, p: ran.append(2)},
            check=check).register()
    assert broker.request("demo.get", rolemask=2) == [(1, None, errno.EPERM, "demo: owner only")]
    assert broker.request("demo.disconnect", rolemask=2) == []
    assert ran == [2]
    # an unknown method is answered as such, whoever asks
    assert broker.request("demo.nope", rolemask=2)[0][2] == errno.ENOSYS


def test_coroutine_handlers_run_as_tasks_with_the_same_answers(broker, caplog):
    async def slow(msg, p):
        await asyncio.sleep(0)
        if p.get("fail") == "service":
            raise ServiceError(errno.ENOTDIR, "no such directory")
        if p.get("fail") == "bug":
            raise ValueError("oops")
        broker.respond(msg, {"done": True})

    service = Service(broker, "demo", {"slow": slow}).register()

    async def main():
        for tag, fail in ((1, None), (2, "service"), (3, "bug")):
            broker.request("demo.slow", {"fail": fail}, tag=tag)
        assert not broker.responses  # answered later, by the tasks
        while service._tasks:
            await asyncio.sleep(0)

    with caplog.at_level(logging.ERROR, logger="flux_launch.services"):
        asyncio.run(main())
    assert broker.responses[:2] == [(1, {"done": True}, 0, None), (2, None, errno.ENOTDIR, "no such directory")]
    assert broker.responses[2][2] == errno.EIO and "oops" in broker.responses[2][3]


# ---- builtin services on the framework -------------------------------------------

@pytest.fixture
def builtin(broker):
    builtins.register(broker)
    return broker


def test_attr_errors(builtin):
    assert builtin.request("attr.get", {"name": "custom"}) == [(1, {"value": "x"}, 0, None)]
    assert builtin.request("attr.get", {"name": "nope"})[0][2:] == (errno.ENOENT, "no such attribute: nope")
    assert builtin.request("attr.get", {})[0][2:] == (errno.EPROTO, "attr.get: missing attribute name")
    assert builtin.request("attr.set", {"name": "rank", "value": "3"})[0][2:] == (
        errno.EPERM, "attribute rank is read-only")
    assert builtin.request("attr.set", {"name": "custom", "value": "y"}, rolemask=2)[0][2:] == (
        errno.EPERM, "only the instance owner may change custom")
    assert builtin.request("attr.set", {"name": "custom", "value": 5})[0][2:] == (
        errno.EPROTO, "attr.set: value of custom must be a string")
    assert builtin.request("attr.rm", {"name": "custom"}) == [(1, {}, 0, None)]
    assert builtin.request("attr.rm", {"name": "custom"})[0][2:] == (errno.ENOENT, "no such attribute: custom")
    assert builtin.request("attr.frob", {"name": "custom"})[0][2:] == (errno.ENOSYS, "unknown method attr.frob")


def test_rexec_is_for_the_owner_only(builtin):
    assert builtin.request("rexec.list", rolemask=2)[0][2:] == (
        errno.EPERM, "rexec: only the instance owner may run commands")
    assert builtin.request("rexec.list") == [(1, {"procs": []}, 0, None)]
    assert builtin.request("rexec.kill", {"pid": 4242})[0][2:] == (errno.ESRCH, "rexec.kill: no process 4242 on "
                                                                    "rank 0")
    assert builtin.request("rexec.shell", {"id": "x"})[0][2:] == (
        errno.EPROTO, "rexec.shell: id, jobspec and R are required")
    assert builtin.request("rexec.disconnect", rolemask=2) == []


def test_ping_echoes_and_event_pub_needs_a_topic(builtin):
    [(_, payload, errnum, _)] = builtin.request("broker.ping", {"seq": 7})
    assert not errnum and payload == {"seq": 7, "rank": 0, "route": "c1"}
    assert builtin.request("event.pub", {})[0][2:] == (errno.EPROTO, "event.pub: missing topic")
