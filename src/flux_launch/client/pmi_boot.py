"""The PMI client a broker boots with: the one its launcher speaks.

``open_boot_pmi()`` returns a client that has done its init handshake, with
``rank``, ``size``, ``put(key, value)``, ``get(key)`` (a ``PMI_*`` key such as
``PMI_process_mapping`` is a job attribute), ``barrier()``, ``finalize()`` and
``close()``, or None for a singleton.

As flux-core's broker, it tries the methods named in ``FLUX_PMI_CLIENT_METHODS``
(default ``simple libpmi2 libpmi single``) in order, the first that applies wins:

- ``simple``: the wire protocol on ``PMI_FD`` (with ``PMI_RANK``, ``PMI_SIZE``):
  PMI-2 when the launcher says so (``PMI_JOBID`` set, as Slurm's
  ``--mpi=pmi2`` does, or ``SLURM_MPI_TYPE=pmi2``), falling back to PMI-1 on the
  same descriptor if the server refuses PMI-2; otherwise PMI-1 (Hydra, our job
  shell, ``flux start --test-size``). ``simple1`` and ``simple2`` force one version.
- ``libpmi2[:PATH]``, ``libpmi[:PATH]``: a PMI library loaded with cffi, at PATH
  or found as ``libpmi2.so`` / ``libpmi.so`` in the colon-separated directories
  of ``FLUX_PMI_CLIENT_SEARCHPATH`` (without either, the method does not apply).
- ``single``: no launcher: a singleton (None); refused under ``srun`` with more
  than one task (``SLURM_STEP_NUM_TASKS``), where N singletons are never wanted.

A method that does not apply (no ``PMI_FD``, no library) passes to the next; one
that applies but fails raises at once, so a broken launcher never silently
yields N singletons.
"""

import os

DEFAULT_METHODS = "simple libpmi2 libpmi single"


class _NotApplicable(Exception):
    """This method does not apply here (the reason is the message)."""


def _pmi_fd(env):
    if "PMI_FD" not in env:
        raise _NotApplicable("PMI_FD is not set")


def _wire(env, version, fallback=False):
    from flux_launch.client.pmi2_client import PMI2Client, PMI2Refused
    from flux_launch.client.pmi_client import PMIClient

    _pmi_fd(env)
    if version == 1:
        pmi = PMIClient.from_env(env)
        return _init(pmi)
    pmi = PMI2Client.from_env(env)
    try:
        pmi.init()
        return pmi
    except PMI2Refused:
        if not fallback:
            pmi.close()
            raise
        # A PMI-1 server (our flux start --test-size one) refuses version 2 and
        # keeps the connection: speak PMI-1 on it.
        return _init(PMIClient(pmi.detach(), pmi.rank, pmi.size))
    except BaseException:
        pmi.close()
        raise


def _init(pmi):
    try:
        pmi.init()
    except BaseException:
        pmi.close()
        raise
    return pmi


def _says_pmi2(env):
    return bool(env.get("PMI_JOBID")) or env.get("SLURM_MPI_TYPE", "").startswith("pmi2")


def _library(env, name, path):
    if path:
        if not os.path.exists(path):
            raise FileNotFoundError(f"{name}: no PMI library at {path}")
        return path
    searchpath = env.get("FLUX_PMI_CLIENT_SEARCHPATH", "")
    for d in searchpath.split(":"):
        if d and os.path.exists(os.path.join(d, f"{name}.so")):
            return os.path.join(d, f"{name}.so")
    if not searchpath:
        raise _NotApplicable("FLUX_PMI_CLIENT_SEARCHPATH is not set")
    raise _NotApplicable(f"no {name}.so in FLUX_PMI_CLIENT_SEARCHPATH={searchpath}")


def _libpmi2(env, path):
    from flux_launch.client.pmi_lib import LibPMI2Client

    return _init(LibPMI2Client(_library(env, "libpmi2", path)))


def _libpmi(env, path):
    from flux_launch.client.pmi_lib import LibPMIClient

    return _init(LibPMIClient(_library(env, "libpmi", path)))


def _single(env):
    ntasks = env.get("SLURM_STEP_NUM_TASKS", "")
    if ntasks.isdigit() and int(ntasks) > 1 and env.get("SLURM_STEP_ID") is not None:
        raise RuntimeError(f"started by srun with {ntasks} tasks but no PMI to join them (each would be an "
                           "instance of size 1): use srun --mpi=pmi2, or name Slurm's libpmi in "
                           "FLUX_PMI_CLIENT_SEARCHPATH")
    return None


_METHODS = {
    "simple": lambda env, arg: _wire(env, 2, fallback=True) if _says_pmi2(env) else _wire(env, 1),
    "simple1": lambda env, arg: _wire(env, 1),
    "simple2": lambda env, arg: _wire(env, 2),
    "libpmi2": _libpmi2,
    "libpmi": _libpmi,
    "single": lambda env, arg: _single(env),
}


def open_boot_pmi(environ=None):
    """A ready client for the launcher in ``environ`` (default ``os.environ``),
    or None when no launcher started this process (the ``single`` method).

    Raises:
        RuntimeError: an unknown method in ``FLUX_PMI_CLIENT_METHODS``, or no
            method applied (the message lists why each did not).
        OSError, PMIError: the method that applied failed; the message says how.
    """
    env = os.environ if environ is None else environ
    methods = env.get("FLUX_PMI_CLIENT_METHODS", "").split() or DEFAULT_METHODS.split()
    skipped = []
    for spec in methods:
        name, _, arg = spec.partition(":")
        opener = _METHODS.get(name)
        if opener is None:
            raise RuntimeError(f"FLUX_PMI_CLIENT_METHODS: unknown method {spec!r} "
                               f"(known: {' '.join(_METHODS)})")
        try:
            return opener(env, arg)
        except _NotApplicable as why:
            skipped.append(f"{name}: {why}")
    raise RuntimeError("no PMI method applied (FLUX_PMI_CLIENT_METHODS="
                       f"{' '.join(methods)}): " + "; ".join(skipped))
