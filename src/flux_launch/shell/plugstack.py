"""The shell's plugin stack: each plugin is a name and a table of callbacks bound
to the shell's topics, called in the order the plugins were loaded.

Topics: ``shell.init`` (after the shell read its job), ``task.init`` (per task,
before it is spawned: may change its environment), ``task.exec`` (in the child,
not used by builtins), ``shell.start`` (all tasks spawned), ``task.exit`` (per
task), ``shell.finish`` (all tasks exited, before the shell reports).

A callback that raises fails the shell with that error (``shell.init``,
``task.init``) or is logged (the others).
"""

TOPICS = ("shell.init", "task.init", "task.exec", "shell.start", "task.exit", "shell.finish")


class Plugin:
    """``Plugin(name, {topic: callback(shell, task)})``."""

    __slots__ = ("name", "callbacks")

    def __init__(self, name, callbacks):
        for topic in callbacks:
            if topic not in TOPICS:
                raise ValueError(f"plugin {name}: unknown topic {topic}")
        self.name = name
        self.callbacks = callbacks


class PlugStack:
    def __init__(self, plugins):
        self.plugins = list(plugins)

    def names(self):
        return [p.name for p in self.plugins]

    def call(self, topic, shell, task=None):
        for plugin in self.plugins:
            fn = plugin.callbacks.get(topic)
            if fn is not None:
                fn(shell, task)
