"""Checks of job shell options that must fail at submit, not in the shell (no I/O).

Used by the CLI before submitting and by the shell plugins when they start.
"""


_UNITS = {"": 1, "k": 1 << 10, "K": 1 << 10, "m": 1 << 20, "M": 1 << 20, "g": 1 << 30, "G": 1 << 30}


def parse_size(text):
    """``"1G"``, ``"100M"``, ``"10k"``, ``"512"`` in bytes; ValueError otherwise."""
    text = str(text).strip()
    unit = text[-1] if text and text[-1] in "kKmMgG" else ""
    number = text[:-1] if unit else text
    try:
        value = float(number)
    except ValueError:
        raise ValueError(f"output.limit: invalid size {text!r} (e.g. 100M, 1G)") from None
    if value < 0:
        raise ValueError(f"output.limit: invalid size {text!r}")
    return int(value * _UNITS[unit])


def _lists(value, what):
    from flux_launch.core.idset import IDset

    out = []
    for part in value[4:].split(";"):
        try:
            ids = IDset(part)
        except ValueError as exc:
            raise ValueError(f"{what}: bad list {part!r} in {value!r}: {exc}") from None
        if not len(ids):
            raise ValueError(f"{what}: empty list in {value!r}")
        out.append(sorted(ids))
    return out


def cpu_affinity(value):
    """``(mode, maps)`` for ``-o cpu-affinity``; ValueError naming what is wrong."""
    if value in (None, "", 1, True, "on"):
        return "on", None
    if value in ("off", 0, False):
        return "off", None
    if value == "per-task":
        return "per-task", None
    if isinstance(value, str) and value.startswith("map:"):
        return "map", [set(x) for x in _lists(value, "cpu-affinity")]
    raise ValueError(f"cpu-affinity: invalid value {value!r} (use on, off, per-task or map:LIST)")


def gpu_affinity(value):
    """``(mode, maps)`` for ``-o gpu-affinity``; the default is ``on`` (as in
    flux-core: every task sees all of the job's GPUs on its node; ``per-task``
    splits them). ValueError naming what is wrong."""
    if value in (None, "", 1, True):
        return "on", None
    if value in ("on", "per-task", "off"):
        return value, None
    if isinstance(value, str) and value.startswith("map:"):
        return "map", _lists(value, "gpu-affinity")
    raise ValueError(f"gpu-affinity: invalid value {value!r} (use on, off, per-task or map:LIST)")


def check(options, gpus_requested=None):
    """Validate the options a user gave; raises ValueError with a one-line reason.

    ``gpus_requested`` is accepted for callers written when the gpu-affinity
    default depended on it; it no longer changes anything."""
    cpu_affinity(options.get("cpu-affinity"))
    gpu_affinity(options.get("gpu-affinity"))
    out = options.get("output")
    if isinstance(out, dict):
        if "limit" in out:
            parse_size(out["limit"])
        if "batch-timeout" in out:
            bt = out["batch-timeout"]
            if isinstance(bt, bool) or not isinstance(bt, (int, float)) or bt < 0:
                raise ValueError(f"output.batch-timeout: {bt!r} is not a number of seconds >= 0")
        for stream in ("stdout", "stderr"):
            buf = out.get(stream, {}).get("buffer") if isinstance(out.get(stream), dict) else None
            if isinstance(buf, dict) and buf.get("type", "line") not in ("line", "none"):
                raise ValueError(f"output.{stream}.buffer.type: {buf.get('type')!r} (use line or none)")
    pr = options.get("per-resource")
    if pr is not None:
        if not isinstance(pr, dict) or pr.get("type") not in ("core", "node"):
            raise ValueError("per-resource.type must be core or node")
        if type(pr.get("count", 1)) is not int or pr.get("count", 1) < 1:  # noqa: E721
            raise ValueError("per-resource.count must be a positive integer")
