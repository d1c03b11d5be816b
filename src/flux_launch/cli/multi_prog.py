"""``flux multi-prog [-n IDS] CONFIG``: run a different program in each task of a
job (MPMD; flux-core's flux-multi-prog(1))::

    flux run -N4 flux multi-prog myapp.conf

Each non-empty line of CONFIG is ``TASKS COMMAND [ARGS...]``: TASKS an RFC 22
idset of task ranks, or ``*`` for the ranks no other line names. Lines are split
as a shell would (``shlex``: quotes, ``#`` comments). In COMMAND and ARGS, ``%t``
is the task rank and ``%o`` its offset in the line's idset. A task runs (exec) the
command of the line naming ``FLUX_TASK_RANK``.

``-n/--dry-run=IDS`` prints ``RANK: COMMAND ARGS`` for those ranks and runs nothing.

Errors, one line each, exit 1: a line that cannot be split or whose TASKS is no
idset, a rank named on two lines, a second ``*`` line, no line for a task, no
``FLUX_TASK_RANK`` outside a job; a command that cannot be run: exit 127 (126 if
it is not executable), as a shell.
"""

import os
import sys

from flux_launch.cli.base import Parser


class ConfigError(ValueError):
    pass


class MultiProg:
    """A parsed CONFIG: ``lines`` of ``(lineno, ranks or None for *, args)``."""

    def __init__(self, path, text):
        import shlex

        from flux_launch.core.idset import IDset

        self.path = path
        self.lines = []
        self.fallback = None
        owner = {}
        for lineno, line in enumerate(text.splitlines(), 1):
            lexer = shlex.shlex(line, posix=True, punctuation_chars=True)
            lexer.whitespace_split = True
            try:
                words = list(lexer)
            except ValueError as exc:
                raise ConfigError(f"{path}: line {lineno}: {exc} in {line.strip()!r}") from None
            if not words:
                continue
            target, args = words[0], words[1:]
            if not args:
                raise ConfigError(f"{path}: line {lineno}: no command for tasks {target}")
            if target == "*":
                if self.fallback is not None:
                    raise ConfigError(f"{path}: line {lineno}: a second '*' line (the first is line "
                                      f"{self.fallback[0]})")
                self.fallback = (lineno, None, args)
                continue
            try:
                ranks = list(IDset(target))
            except ValueError:
                raise ConfigError(f"{path}: line {lineno}: invalid idset {target!r} (give task ranks like 0-3,5, "
                                  "or *)") from None
            for r in ranks:
                if r in owner:
                    raise ConfigError(f"{path}: line {lineno}: task {r} is already on line {owner[r]} (a task "
                                      "may match one line only)")
                owner[r] = lineno
            self.lines.append((lineno, ranks, args))

    def args(self, rank):
        """The command of task ``rank``, ``%t`` and ``%o`` replaced."""
        for _lineno, ranks, args in self.lines:
            if rank in ranks:
                return _subst(args, rank, ranks.index(rank))
        if self.fallback is not None:
            return _subst(self.fallback[2], rank, 0)
        raise ConfigError(f"{self.path}: no line for task {rank} (add one, or a '*' line)")


def _subst(args, rank, offset):
    import re

    values = {"%t": str(rank), "%o": str(offset)}
    return [re.sub("%[to]", lambda m: values[m.group(0)], a) for a in args]


def main(cmd, argv):
    p = Parser("multi-prog", description="Run a different program in each task of a job (MPMD).",
               usage="flux multi-prog [OPTIONS] CONFIG")
    p.add_argument("-n", "--dry-run", metavar="IDS", help="print what the task ranks IDS would run; run nothing")
    p.add_argument("conf", metavar="CONFIG", help="the configuration: lines of TASKS COMMAND ARGS...")
    args = p.parse_args(argv)
    dry = None
    if args.dry_run is not None:
        from flux_launch.core.idset import IDset

        try:
            dry = list(IDset(args.dry_run))
        except ValueError:
            p.error(f"-n/--dry-run={args.dry_run}: not an idset of task ranks (e.g. 0-3)")
    try:
        with open(args.conf) as f:
            text = f.read()
    except OSError as exc:
        raise OSError(exc.errno, f"{args.conf}: {exc.strerror}") from None
    try:
        mp = MultiProg(args.conf, text)
        if dry is not None:
            import shlex

            for rank in dry:
                print(f"{rank}: {shlex.join(mp.args(rank))}")
            return 0
        rank = os.environ.get("FLUX_TASK_RANK", "")
        if not rank.isdigit():
            raise ConfigError("FLUX_TASK_RANK is not set: run it as a job's command (flux run -n4 flux multi-prog "
                              f"{args.conf}), or try -n/--dry-run=IDS")
        argv = mp.args(int(rank))
    except ConfigError as exc:
        sys.stderr.write(f"flux-multi-prog: {exc}\n")
        return 1
    sys.stdout.flush()
    try:
        os.execvp(argv[0], argv)
    except OSError as exc:
        sys.stderr.write(f"flux-multi-prog: task {rank}: {argv[0]}: {exc.strerror}\n")
        return 126 if isinstance(exc, PermissionError) else 127
