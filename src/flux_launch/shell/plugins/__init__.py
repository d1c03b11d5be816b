"""Builtin shell plugins, in the order they are loaded (a test checks it)."""

BUILTIN_NAMES = ("tmpdir", "output", "input", "pmi")


def builtins():
    from flux_launch.shell.plugins import input as _input
    from flux_launch.shell.plugins import output, pmi, tmpdir

    return [tmpdir.plugin, output.plugin, _input.plugin, pmi.plugin]
