"""Hot paths with a C implementation (``_c``, built by cffi from ``csrc/``) and a
pure-Python twin (``_py``) of identical behaviour.

``FLUX_LAUNCH_ACCEL=c`` forces the C backend (an ImportError if it was not built),
``FLUX_LAUNCH_ACCEL=py`` the Python one; by default C is used when it was built.
``BACKEND`` names the one in use.
"""

import os

from flux_launch._accel import _py

_choice = os.environ.get("FLUX_LAUNCH_ACCEL", "")
if _choice not in ("", "c", "py"):
    raise ImportError(f"FLUX_LAUNCH_ACCEL={_choice!r}: expected 'c' or 'py'")

_c = None
if _choice != "py":
    try:
        from flux_launch._accel import _cwrap as _c
    except ImportError as exc:
        if _choice == "c":
            raise ImportError(f"FLUX_LAUNCH_ACCEL=c but the C accelerations are not built ({exc}); "
                              "reinstall with a C compiler, or set FLUX_LAUNCH_ACCEL=py") from None
        _c = None

if _c is not None:
    BACKEND = "c"
    label_lines = _c.label_lines
    label_flush = _c.label_flush
    json_escape = _c.json_escape
    json_unescape = _c.json_unescape
else:
    BACKEND = "py"
    label_lines = _py.label_lines
    label_flush = _py.label_flush
    json_escape = _py.json_escape
    json_unescape = _py.json_unescape
