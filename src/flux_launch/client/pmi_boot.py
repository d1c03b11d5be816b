"""The PMI client a broker boots with: the one its launcher speaks.

``open_boot_pmi()`` returns a client that has done its init handshake, with
``rank``, ``size``, ``put(key, value)``, ``get(key)`` (a ``PMI_*`` key such as
``PMI_process_mapping`` is a job attribute), ``barrier()``, ``finalize()`` and
``close()``. Today: PMI-1 over ``PMI_FD``; with no ``PMI_FD`` there is no
launcher (``None``: the broker is a singleton).
"""

import os

from flux_launch.client.pmi_client import PMIClient


def open_boot_pmi(environ=None):
    """A ready client for the launcher in ``environ`` (default ``os.environ``),
    or None when no launcher started this process.

    Raises:
        RuntimeError, OSError, PMIError: no launcher, or its PMI refused; the
            message says which.
    """
    env = os.environ if environ is None else environ
    if "PMI_FD" not in env:
        return None
    pmi = PMIClient.from_env(env)
    try:
        pmi.init()
    except BaseException:
        pmi.close()
        raise
    return pmi
