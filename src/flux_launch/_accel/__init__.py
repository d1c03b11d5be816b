"""Hot paths with a C implementation (``_c``, built by cffi from ``csrc/``) and a
pure-Python twin (``_py``) of identical behaviour.

``FLUX_LAUNCH_ACCEL=c`` forces the C backend (an ImportError if it was not built),
``FLUX_LAUNCH_ACCEL=py`` the Python one; by default C is used when it was built.
``BACKEND`` names the one in use. ``select(choice)`` gives the module of a backend
for code that serves another environment than its own (the job shell follows the
job's ``FLUX_LAUNCH_ACCEL``).
"""

import os

from flux_launch._accel import _py


def select(choice=""):
    """The backend module for ``choice`` (``"c"``, ``"py"``, or ``""``: C if built).

    Raises:
        ImportError: an unknown choice, or ``"c"`` when the C accelerations are not built.
    """
    if choice not in ("", "c", "py"):
        raise ImportError(f"FLUX_LAUNCH_ACCEL={choice!r}: expected 'c' or 'py'")
    if choice == "py":
        return _py
    try:
        from flux_launch._accel import _cwrap
    except ImportError as exc:
        if choice == "c":
            raise ImportError(f"FLUX_LAUNCH_ACCEL=c but the C accelerations are not built ({exc}); "
                              "reinstall with a C compiler, or set FLUX_LAUNCH_ACCEL=py") from None
        return _py
    return _cwrap


_mod = select(os.environ.get("FLUX_LAUNCH_ACCEL", ""))
BACKEND = "py" if _mod is _py else "c"
label_lines = _mod.label_lines
label_flush = _mod.label_flush
json_escape = _mod.json_escape
json_unescape = _mod.json_unescape
