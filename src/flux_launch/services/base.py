"""One way for every service to answer requests: a table of methods per service name.

A service is a name, the first word of its topics (``kvs`` of ``kvs.get``,
``job-manager`` of ``job-manager.raise``), and a table ``{method: handler}``
keyed by the rest of the topic (``get``, ``raise``, ``eventlog-watch``).
``Service.register()`` has the broker route the name's topics to the service,
which for each request:

- looks its method up; an unknown one is answered ``ENOSYS`` ``unknown method
  TOPIC`` (as flux-core does), except ``disconnect``, which a service without
  client state need not declare (it asks for no response);
- runs the service's ``check(msg, method)`` if it has one (a service closed for
  shutdown, an owner-only service), then ``handler(msg, payload)``, ``payload``
  being the request's object (``{}`` when it is not one). The handler answers
  through the broker (``respond``) when and as often as it needs to: at once,
  later (``job-manager.wait``), as a stream (``kvs.watch``), or never (a
  disconnect);
- answers a ``ServiceError(errnum, text)`` raised by ``check`` or the handler
  with that errno and one-line text;
- logs any other exception with its traceback and answers ``EIO`` ``TOPIC:
  internal error: ...``: a service's bug fails one request, never the broker.

A handler that is a coroutine function runs as a task of the running loop, with
the same answers for what it raises.
"""

import asyncio
import errno
import inspect
import logging

log = logging.getLogger("flux_launch.services")


class ServiceError(Exception):
    """A request that fails: the service answers ``errnum`` and ``text`` (one line).

    Attributes:
        errnum: the errno of the error response.
        text: its message, for the requester.
    """

    def __init__(self, errnum, text):
        super().__init__(text)
        self.errnum = errnum
        self.text = text


class Service:
    """The requests of one service name, dispatched by method.

    Args:
        broker: what answers (``respond``, ``respond_error``) and routes
            (``register``).
        name: the service name, the topics' first word.
        methods: ``{method: handler(msg, payload)}``; a handler may be a
            coroutine function.
        check: ``check(msg, method)``, run before a known method's handler;
            it refuses the request by raising ``ServiceError``.
    """

    def __init__(self, broker, name, methods, check=None):
        self.broker = broker
        self.name = name
        self.methods = dict(methods)
        self.check = check
        self._tasks = set()  # running coroutine handlers: the loop keeps only weak references

    def register(self):
        """Have the broker route ``NAME.*`` requests here. Returns self."""
        self.broker.register(self.name, self)
        return self

    def __call__(self, msg):
        topic = msg["topic"]
        method = topic[len(self.name) + 1:] if topic.startswith(self.name + ".") else ""
        handler = self.methods.get(method)
        if handler is None:
            if method != "disconnect":
                self.broker.respond_error(msg, errno.ENOSYS, f"unknown method {topic}")
            return
        payload = msg.get("payload")
        if not isinstance(payload, dict):
            payload = {}
        try:
            if self.check is not None:
                self.check(msg, method)
            if inspect.iscoroutinefunction(handler):
                task = asyncio.get_running_loop().create_task(self._run(handler, msg, payload))
                self._tasks.add(task)
                task.add_done_callback(self._tasks.discard)
            else:
                handler(msg, payload)
        except ServiceError as exc:
            self.broker.respond_error(msg, exc.errnum, exc.text)
        except Exception as exc:  # noqa: BLE001 - a service's bug fails its request, not the broker
            self._internal_error(msg, exc)

    async def _run(self, handler, msg, payload):
        try:
            await handler(msg, payload)
        except ServiceError as exc:
            self.broker.respond_error(msg, exc.errnum, exc.text)
        except Exception as exc:  # noqa: BLE001 - as in __call__
            self._internal_error(msg, exc)

    def _internal_error(self, msg, exc):
        topic = msg.get("topic")
        log.error("%s: internal error", topic, exc_info=exc)
        text = " ".join(str(exc).splitlines())  # one line, whatever the exception says
        self.broker.respond_error(msg, errno.EIO, f"{topic}: internal error: {text}")
