"""The shell's plugin stack: each plugin is a name and one table of callbacks
bound to the shell's topics, called in the order the plugins were loaded.

Topics, flux-core's, in the order the shell calls them (``shell/main.py``):

- ``shell.init``: the shell has read its job (jobspec, R, task map); plugins set
  up and keep their state with ``shell.aux_set(name, obj)``;
- ``shell.post-init``: every plugin's ``shell.init`` is done, no task started;
- per task: ``task.init`` (before the spawn: its environment, stdio, CPU set),
  ``task.exec`` (in the child, just before it executes), ``task.fork`` (in the
  shell, once it runs);
- ``shell.start``: every local task was started;
- ``task.exit``: per task, once it exited;
- ``shell.finish``: every task exited and its output was read, the loop still
  runs (RPCs can be sent and are waited for);
- ``shell.exit``: the last call, after the loop: synchronous clean-up only.

A callback is ``callback(shell, task)`` (``task`` is None for the ``shell.*``
topics). One that raises is caught by the stack: on the topics where flux-core's
shell dies (``FATAL_TOPICS``) the stack raises ``PluginError`` with the line
``plugin 'NAME': TOPIC failed: why`` and the shell fails with it (logged at
FATAL, and a job exception); on the others that line is logged at ERROR and the
next callbacks still run.
"""

TOPICS = ("shell.init", "shell.post-init", "task.init", "task.exec", "task.fork", "shell.start", "task.exit",
          "shell.finish", "shell.exit")
# where flux-core's shell dies when a plugin fails (shell_die); elsewhere it logs
FATAL_TOPICS = frozenset(("shell.init", "shell.post-init", "task.init", "task.fork", "shell.start"))


class PluginError(RuntimeError):
    """A plugin failed on a topic that fails the shell; the message is the whole
    line (``plugin 'output': shell.init failed: cannot open ...``)."""


class Plugin:
    """``Plugin(name, {topic: callback(shell, task)})``.

    Raises:
        ValueError: a topic that is not one of ``TOPICS``.
    """

    __slots__ = ("name", "callbacks")

    def __init__(self, name, callbacks):
        for topic in callbacks:
            if topic not in TOPICS:
                raise ValueError(f"plugin {name}: unknown topic {topic}")
        self.name = name
        self.callbacks = callbacks


class PlugStack:
    """The loaded plugins, in load order."""

    def __init__(self, plugins):
        self.plugins = list(plugins)

    def names(self):
        return [p.name for p in self.plugins]

    def has(self, topic):
        """True when some plugin has a callback for ``topic`` (the shell sets up
        what a topic needs, e.g. a pre-exec hook, only then)."""
        return any(topic in p.callbacks for p in self.plugins)

    def call(self, topic, shell, task=None):
        """Call every plugin's callback for ``topic``, in load order.

        Raises:
            PluginError: a callback raised on one of ``FATAL_TOPICS`` (the later
                plugins are not called).
        """
        for plugin in self.plugins:
            fn = plugin.callbacks.get(topic)
            if fn is None:
                continue
            try:
                fn(shell, task)
            except Exception as exc:  # a plugin's failure is reported as one line, never a traceback
                line = f"plugin '{plugin.name}': {topic} failed: {exc}"
                if topic in FATAL_TOPICS:
                    raise PluginError(line) from exc
                shell.log("ERROR", line)
