"""tmpdir: a private directory per job and node, ``FLUX_JOB_TMPDIR``.

Topics: ``shell.init`` creates ``<rundir>/jobtmp-<rank>-<jobid>`` (mode 0700),
sets the variable for the tasks and writes the jobspec's files there (RFC 37
``attributes.system.files``: ``flux batch``'s ``script``, ``conf.json``);
``task.init`` replaces ``{{tmpdir}}`` in the task's command with the path;
``shell.finish`` removes it with its content. Failure to create it, or a file
that cannot be written (a bad name, bad data), fails the shell with the path and
the reason.
"""

import os
import shutil
import stat

from flux_launch.shell.plugstack import Plugin


def _init(shell, _task):
    path = os.path.join(shell.rundir, f"jobtmp-{shell.rank}-{shell.jobid.f58plain}")
    try:
        os.makedirs(path, mode=0o700, exist_ok=True)
    except OSError as exc:
        raise RuntimeError(f"cannot create FLUX_JOB_TMPDIR {path}: {exc.strerror}") from None
    shell.aux_set("tmpdir", path)
    shell.env["FLUX_JOB_TMPDIR"] = path
    files = shell.jobspec.get("attributes", {}).get("system", {}).get("files")
    if files:
        for name, ref in files.items():
            write_file(path, name, ref)


def write_file(tmpdir, name, ref):
    """Write one RFC 37 entry ``name`` (a relative path) under ``tmpdir``.

    Raises:
        RuntimeError: a name that leaves the directory, an entry that is not a file
            or directory, data that cannot be decoded, or the write failing.
    """
    where = f"attributes.system.files.{name}"
    parts = name.split("/") if isinstance(name, str) else []
    if not parts or name.startswith("/") or any(p in ("", ".", "..") for p in parts):
        raise RuntimeError(f"{where}: not a relative path inside the job's tmpdir")
    if not isinstance(ref, dict):
        raise RuntimeError(f"{where}: must be a mapping with mode and data (RFC 37)")
    mode = ref.get("mode", stat.S_IFREG | 0o600)
    if type(mode) is not int:
        raise RuntimeError(f"{where}.mode: must be an integer")
    target = os.path.join(tmpdir, *parts)
    try:
        if stat.S_ISDIR(mode):
            os.makedirs(target, mode=stat.S_IMODE(mode) | 0o700, exist_ok=True)
            return
        if not stat.S_ISREG(mode) and stat.S_IFMT(mode):
            raise RuntimeError(f"{where}: only files and directories can be staged (mode {mode:o})")
        data = ref.get("data", "")
        encoding = ref.get("encoding")
        if isinstance(data, (dict, list)):
            import json

            raw = json.dumps(data).encode()
        elif not isinstance(data, str):
            raise RuntimeError(f"{where}.data: must be a string or an object")
        elif encoding == "base64":
            import base64
            import binascii

            try:
                raw = base64.b64decode(data, validate=True)
            except binascii.Error as exc:
                raise RuntimeError(f"{where}.data: invalid base64: {exc}") from None
        elif encoding in (None, "utf-8"):
            raw = data.encode()
        else:
            raise RuntimeError(f"{where}.encoding: {encoding!r} (use utf-8 or base64)")
        os.makedirs(os.path.dirname(target), mode=0o700, exist_ok=True)
        fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, stat.S_IMODE(mode) or 0o600)
        try:
            os.fchmod(fd, stat.S_IMODE(mode) or 0o600)
            view = memoryview(raw)
            while view:
                view = view[os.write(fd, view):]
        finally:
            os.close(fd)
    except OSError as exc:
        raise RuntimeError(f"{where}: cannot write {target}: {exc.strerror}") from None


def _task_init(shell, task):
    path = shell.aux_get("tmpdir")
    if path:
        task.cmd = [arg.replace("{{tmpdir}}", path) if "{{tmpdir}}" in arg else arg for arg in task.cmd]


def _finish(shell, _task):
    path = shell.aux_get("tmpdir")
    if path:
        shutil.rmtree(path, ignore_errors=True)


plugin = Plugin("tmpdir", {"shell.init": _init, "task.init": _task_init, "shell.finish": _finish})
