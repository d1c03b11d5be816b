"""Builtin shell plugins, in the order they are loaded (a test checks it)."""

BUILTIN_NAMES = ("tmpdir", "output", "input", "pty", "pmi", "cpu-affinity", "gpu-affinity", "ptrace", "mpir")


def builtins():
    from flux_launch.shell.plugins import affinity, gpubind, mpir, output, pmi, ptrace, pty, tmpdir
    from flux_launch.shell.plugins import input as _input

    return [tmpdir.plugin, output.plugin, _input.plugin, pty.plugin, pmi.plugin, affinity.plugin, gpubind.plugin,
            ptrace.plugin, mpir.plugin]
