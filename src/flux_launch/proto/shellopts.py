"""Checks of job shell options that must fail at submit, not in the shell (no I/O).

Used by the CLI before submitting and by the shell plugins when they start.
"""


# The fields of --output/--error templates ({{id}}...), as the output plugin
# expands them, and the job id encodings of {{id.ENC}}
ID_ENCODINGS = ("f58", "dec", "hex", "dothex", "words")
TEMPLATE_FIELDS = ("id", "jobid", "name", "taskid", "node.id", "node.name") + tuple(f"id.{e}" for e in ID_ENCODINGS)

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
    if not 0 <= value < float("inf"):
        raise ValueError(f"output.limit: invalid size {text!r} (e.g. 100M, 1G)")
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


def _is_int(value):
    return type(value) is int  # not bool (isinstance would accept True)


def _section(options, name):
    """``options[name]``, which must be a mapping when given."""
    value = options.get(name)
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise ValueError(f"{name}: expected options under it (e.g. {name}.KEY=VALUE), got {value!r}")
    return value


def _stream(section, prefix, stream, types):
    entry = section.get(stream)
    if entry is None:
        return
    if not isinstance(entry, dict):
        raise ValueError(f"{prefix}.{stream}: expected options under it, got {entry!r}")
    kind = entry.get("type", types[0])
    if kind not in types:
        raise ValueError(f"{prefix}.{stream}.type: {kind!r} (use {' or '.join(types)})")
    if kind == "file" and (not isinstance(entry.get("path"), str) or not entry.get("path")):
        raise ValueError(f"{prefix}.{stream}.path: a file needs a path")
    if "label" in entry and not isinstance(entry["label"], (bool, int)):
        raise ValueError(f"{prefix}.{stream}.label: {entry['label']!r} (use true or false)")
    buf = entry.get("buffer")
    if buf is not None and (not isinstance(buf, dict) or buf.get("type", "line") not in ("line", "none")):
        kind = buf.get("type") if isinstance(buf, dict) else buf
        raise ValueError(f"{prefix}.{stream}.buffer.type: {kind!r} (use line or none)")


def exit_timeout(value):
    """Seconds of ``-o exit-timeout`` (an FSD or a number of seconds), or None for
    ``none``; ValueError naming what is wrong."""
    if value == "none":
        return None
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        seconds = float(value)
    elif isinstance(value, str):
        from flux_launch.core import fsd

        try:
            seconds = fsd.parse(value)
        except ValueError:
            seconds = -1.0
    else:
        seconds = -1.0
    if not 0 <= seconds < float("inf"):
        raise ValueError(f"exit-timeout: {value!r} (use a duration such as 30s or 1m, or none)")
    return seconds


def pty_ranks(opt):
    """The task ranks ``-o pty`` (``opt``: the ``pty`` option) gives a pty: None,
    ``"all"`` or an IDset; ValueError naming what is wrong. ``pty.interactive``
    alone: task 0 only (flux-core's rule)."""
    if opt is None or opt is False or opt == 0:
        return None
    if not isinstance(opt, dict):
        return "all"
    ranks = opt.get("ranks")
    if ranks is None:
        return "all" if opt.get("capture") or not opt.get("interactive") else _idset("0")
    if ranks == "all":
        return "all"
    try:
        return _idset(str(ranks))
    except ValueError:
        raise ValueError(f"pty.ranks: {ranks!r} is not an idset or 'all' (e.g. pty.ranks=0-3)") from None


def _idset(text):
    from flux_launch.core.idset import IDset

    return IDset(text)


PMI_NAMES = ("simple", "off", "none")


def check(options):
    """Validate the shell options the job shell reads; raises ValueError with a
    one-line reason (the option and what to use). Options no builtin plugin
    reads are left alone, as flux-core's shell does (plugins of a site may read them)."""
    cpu_affinity(options.get("cpu-affinity"))
    gpu_affinity(options.get("gpu-affinity"))
    if "verbose" in options:
        v = options["verbose"]
        if not (_is_int(v) or isinstance(v, bool)) or v < 0:
            raise ValueError(f"verbose: {v!r} (use a level 0, 1, 2...)")
    if "exit-timeout" in options:
        exit_timeout(options["exit-timeout"])
    if "pmi" in options:
        names = options["pmi"].split(",") if isinstance(options["pmi"], str) else [options["pmi"]]
        for name in names:
            if name not in PMI_NAMES:
                raise ValueError(f"pmi: {name!r} is not a PMI this shell offers (use simple, or off/none)")
    k = _section(_section(options, "pmi-simple"), "exchange").get("k", 1)
    if not _is_int(k) or k < 1:
        raise ValueError(f"pmi-simple.exchange.k: {k!r} (use a tree fanout >= 1)")
    out = _section(options, "output")
    if "limit" in out:
        parse_size(out["limit"])
    if "batch-timeout" in out:
        bt = out["batch-timeout"]
        if isinstance(bt, bool) or not isinstance(bt, (int, float)) or bt < 0:
            raise ValueError(f"output.batch-timeout: {bt!r} is not a number of seconds >= 0")
    if out.get("mode", "truncate") not in ("truncate", "append"):
        raise ValueError(f"output.mode: {out['mode']!r} (use truncate or append)")
    for stream in ("stdout", "stderr"):
        _stream(out, "output", stream, ("kvs", "file"))
    _stream(_section(options, "input"), "input", "stdin", ("kvs", "file"))
    pty_ranks(options.get("pty"))
    pr = options.get("per-resource")
    if pr is not None:
        if not isinstance(pr, dict) or pr.get("type") not in ("core", "node"):
            raise ValueError("per-resource.type must be core or node")
        if type(pr.get("count", 1)) is not int or pr.get("count", 1) < 1:
            raise ValueError("per-resource.count must be a positive integer")
