"""tmpdir: a private directory per job and node, ``FLUX_JOB_TMPDIR``.

Topics: ``shell.init`` creates ``<rundir>/jobtmp-<rank>-<jobid>`` (mode 0700) and
sets the variable for the tasks; ``shell.finish`` removes it with its content.
Failure to create it fails the shell with the path and the reason.
"""

import os
import shutil

from flux_launch.shell.plugstack import Plugin


def _init(shell, _task):
    path = os.path.join(shell.rundir, f"jobtmp-{shell.rank}-{shell.jobid.f58plain}")
    try:
        os.makedirs(path, mode=0o700, exist_ok=True)
    except OSError as exc:
        raise RuntimeError(f"cannot create FLUX_JOB_TMPDIR {path}: {exc.strerror}") from None
    shell.aux_set("tmpdir", path)
    shell.env["FLUX_JOB_TMPDIR"] = path


def _finish(shell, _task):
    path = shell.aux_get("tmpdir")
    if path:
        shutil.rmtree(path, ignore_errors=True)


plugin = Plugin("tmpdir", {"shell.init": _init, "shell.finish": _finish})
