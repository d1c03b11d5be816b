"""Jobspec validation and summary (Flux RFC 14 and RFC 25), without any I/O.

:func:`validate` enforces RFC 25 (version 1): keys ``resources``, ``tasks``,
``attributes``, ``version`` (1) only; one ``node`` or ``slot`` vertex, graphs
``slot>core``, ``slot>(core,gpu)``, ``node>slot>core``, ``node>slot>(core,gpu)``
only; every ``count`` a positive integer (no RFC 14 range objects); one task
with a non-empty string-list ``command``, ``slot`` equal to the slot label
and ``count`` holding one of ``per_slot`` or ``total`` (``per_resource`` is
not V1).  ``total`` must lie between the node count and the total slot count
(RFC 25).  RFC 25 says ``per_slot`` MUST be 1; like flux-core we accept any
positive integer.  ``attributes.system`` with ``duration`` (finite number
>= 0, 0 = unlimited) is required; known system attributes are type-checked
(``environment``: str -> str or null, ``cwd``/``queue``/``bank``/``project``:
str, ``job``: str -> str, ``shell.options``, ``dependencies`` (RFC 26),
``constraints`` (RFC 31), ``files`` (RFC 37), ``preemptible-after``,
``exec.test`` (the test exec method); shell options by the types the shell
reads, then :func:`flux_launch.proto.shellopts.check`);
unknown ones are accepted as they are (RFC 14: "no more than a warning").
``user`` is free-form.

Failures raise :class:`JobspecError` naming the bad field, e.g. ``jobspec:
tasks[0].command: must be a non-empty list of strings``.
:func:`validate_canonical` does the looser RFC 14 checks used by ``Jobspec``.
"""

from __future__ import annotations

import math

from flux_launch.proto import fastjson

__all__ = ["JobspecError", "validate", "validate_canonical", "parse", "decode", "summary"]

_TOP_KEYS = ("resources", "tasks", "attributes", "version")
_VERTEX_KEYS = frozenset(("type", "count", "unit", "with", "label", "exclusive"))
_TASK_KEYS = frozenset(("command", "slot", "count", "attributes"))
_STRING_ATTRS = ("cwd", "queue", "bank", "project")
_CONSTRAINT_OPS = frozenset(("and", "or", "not", "properties", "hostlist", "ranks"))


class JobspecError(ValueError):
    """An invalid jobspec; the message is ``jobspec: FIELD: WHY``."""


def _err(field: str, why: str) -> JobspecError:
    text = f"jobspec: {field}: {why}" if field else f"jobspec: {why}"
    if not text.isprintable():  # keys are the user's: the error stays one line
        text = "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)
    return JobspecError(text)


def _tname(v: object) -> str:
    return "null" if v is None else type(v).__name__


def _is_int(v: object) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _is_number(v: object) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def _pos_int(v: object, field: str) -> int:
    if isinstance(v, dict):
        raise _err(field, "must be a positive integer (RFC 25 V1 does not allow range counts)")
    if not _is_int(v):
        raise _err(field, f"must be a positive integer (got {_tname(v)} {v!r})")
    if v < 1:
        raise _err(field, f"must be a positive integer (got {v})")
    return v


def _check_top(obj: object) -> None:
    if not isinstance(obj, dict):
        raise _err("", f"must be a mapping (got {_tname(obj)})")
    for key in _TOP_KEYS:
        if key not in obj:
            raise _err(key, "missing (required)")
    for key in obj:
        if key not in _TOP_KEYS:
            raise _err(str(key), "unknown top-level key")


def _vertex(v: object, field: str, types: tuple[str, ...]) -> dict:
    if not isinstance(v, dict):
        raise _err(field, f"must be a resource vertex mapping (got {_tname(v)})")
    rtype = v.get("type")
    if rtype not in types:
        want = " or ".join(repr(t) for t in types)
        raise _err(f"{field}.type", f"must be {want} (got {rtype!r})")
    for key in v:
        if key not in _VERTEX_KEYS:
            raise _err(f"{field}.{key}", f"unknown key in {rtype} vertex")
    if "count" not in v:
        raise _err(f"{field}.count", "missing (required)")
    _pos_int(v["count"], f"{field}.count")
    for key in ("unit", "label"):
        if key in v and not isinstance(v[key], str):
            raise _err(f"{field}.{key}", "must be a string")
    if "exclusive" in v:
        if rtype not in ("node", "slot"):
            raise _err(f"{field}.exclusive", f"not allowed on a {rtype} vertex")
        if not isinstance(v["exclusive"], bool):
            raise _err(f"{field}.exclusive", "must be a boolean")
    if "with" in v and rtype not in ("node", "slot"):
        raise _err(f"{field}.with", f"a {rtype} vertex cannot have children in V1")
    return v


def _slot(v: object, field: str) -> dict:
    _vertex(v, field, ("slot",))
    label = v.get("label")
    if not isinstance(label, str) or not label:
        raise _err(f"{field}.label", "a slot must have a non-empty string label")
    children = v.get("with")
    if not isinstance(children, list) or not 1 <= len(children) <= 2:
        raise _err(f"{field}.with", "must be a list of a core vertex and optionally a gpu vertex")
    seen = set()
    for i, child in enumerate(children):
        cfield = f"{field}.with[{i}]"
        _vertex(child, cfield, ("core", "gpu"))
        if child["type"] in seen:
            raise _err(f"{cfield}.type", f"duplicate {child['type']} vertex")
        seen.add(child["type"])
    if "core" not in seen:
        raise _err(f"{field}.with", "must contain a core vertex (gpu alone is not allowed)")
    return v


def _resources(resources: object) -> tuple[dict | None, dict]:
    if not isinstance(resources, list) or len(resources) != 1:
        raise _err("resources", "must be a list of exactly one node or slot vertex")
    top = _vertex(resources[0], "resources[0]", ("node", "slot"))
    if top["type"] == "slot":
        return None, _slot(top, "resources[0]")
    children = top.get("with")
    if not isinstance(children, list) or len(children) != 1:
        raise _err("resources[0].with", "a node must have exactly one slot vertex")
    return top, _slot(children[0], "resources[0].with[0]")


def _command(cmd: object, field: str) -> None:
    if not isinstance(cmd, list) or not cmd or not all(isinstance(a, str) for a in cmd):
        raise _err(field, "must be a non-empty list of strings")


def _tasks(tasks: object, node: dict | None, slot: dict) -> None:
    if not isinstance(tasks, list) or len(tasks) != 1:
        n = len(tasks) if isinstance(tasks, list) else _tname(tasks)
        raise _err("tasks", f"must be a list of exactly one task (got {n})")
    task = tasks[0]
    if not isinstance(task, dict):
        raise _err("tasks[0]", f"must be a mapping (got {_tname(task)})")
    for key in ("command", "slot", "count"):
        if key not in task:
            raise _err(f"tasks[0].{key}", "missing (required)")
    for key in task:
        if key not in _TASK_KEYS:
            raise _err(f"tasks[0].{key}", "unknown key in task")
    _command(task["command"], "tasks[0].command")
    if not isinstance(task["slot"], str):
        raise _err("tasks[0].slot", "must be a string")
    if task["slot"] != slot["label"]:
        raise _err("tasks[0].slot", f"{task['slot']!r} does not match the slot label {slot['label']!r}")
    if "attributes" in task and not isinstance(task["attributes"], dict):
        raise _err("tasks[0].attributes", "must be a mapping")
    count = task["count"]
    if not isinstance(count, dict):
        raise _err("tasks[0].count", "must be a mapping with per_slot or total")
    if "per_resource" in count:
        raise _err("tasks[0].count.per_resource", "not supported in jobspec V1")
    keys = [k for k in ("per_slot", "total") if k in count]
    if len(keys) != 1 or len(count) != 1:
        raise _err("tasks[0].count", "must have exactly one of per_slot or total")
    n = _pos_int(count[keys[0]], f"tasks[0].count.{keys[0]}")
    if keys[0] == "total":
        nnodes = node["count"] if node else 1
        nslots = slot["count"] * nnodes
        if n < nnodes or n > nslots:
            raise _err("tasks[0].count.total",
                       f"must be between the node count ({nnodes}) and the slot count ({nslots}) (got {n})")


def _nonneg_number(v: object, field: str) -> None:
    if not _is_number(v):
        raise _err(field, f"must be a number of seconds (got {_tname(v)} {v!r})")
    if not math.isfinite(v) or v < 0:
        raise _err(field, f"must be a finite number >= 0 (got {v!r})")


def _constraints(c: object, field: str) -> None:
    if not isinstance(c, dict):
        raise _err(field, "must be a mapping (RFC 31)")
    for op, args in c.items():
        if op not in _CONSTRAINT_OPS:
            raise _err(f"{field}.{op}", "unknown constraint operator")
        if not isinstance(args, list):
            raise _err(f"{field}.{op}", "must be a list")
        for i, arg in enumerate(args):
            if op in ("and", "or", "not"):
                _constraints(arg, f"{field}.{op}[{i}]")
            elif not isinstance(arg, str):
                raise _err(f"{field}.{op}[{i}]", "must be a string")


def _system(system: object, v1: bool) -> None:
    field = "attributes.system"
    if not isinstance(system, dict):
        raise _err(field, "must be a mapping")
    if "duration" in system:
        _nonneg_number(system["duration"], f"{field}.duration")
    elif v1:
        raise _err(f"{field}.duration", "missing (required in jobspec V1)")
    if "preemptible-after" in system:
        _nonneg_number(system["preemptible-after"], f"{field}.preemptible-after")
    env = system.get("environment")
    if env is not None or "environment" in system:
        if not isinstance(env, dict):
            raise _err(f"{field}.environment", "must be a mapping of name to string")
        for name, value in env.items():
            if value is not None and not isinstance(value, str):
                raise _err(f"{field}.environment.{name}",
                           f"must be a string or null (got {_tname(value)})")
    for key in _STRING_ATTRS:
        if key in system and not isinstance(system[key], str):
            raise _err(f"{field}.{key}", "must be a string")
    if "job" in system:
        job = system["job"]
        if not isinstance(job, dict):
            raise _err(f"{field}.job", "must be a mapping")
        for key, value in job.items():
            if not isinstance(value, str):
                raise _err(f"{field}.job.{key}", "must be a string")
    if "shell" in system:
        shell = system["shell"]
        if not isinstance(shell, dict):
            raise _err(f"{field}.shell", "must be a mapping")
        if "options" in shell:
            _shell_options(shell["options"], f"{field}.shell.options")
    if "exec" in system:
        _exec(system["exec"], f"{field}.exec")
    if "dependencies" in system:
        _dependencies(system["dependencies"], f"{field}.dependencies")
    if "constraints" in system:
        _constraints(system["constraints"], f"{field}.constraints")
    if "files" in system and not isinstance(system["files"], dict):
        raise _err(f"{field}.files", "must be a mapping (RFC 37)")


def _fsd(v: object, field: str, allow_none: bool = False) -> None:
    """A duration: a number of seconds >= 0 or an FSD string (``"1.5m"``)."""
    from flux_launch.core import fsd

    if allow_none and v == "none":
        return
    if _is_number(v):
        _nonneg_number(v, field)
        return
    if isinstance(v, str):
        try:
            fsd.parse(v)
            return
        except ValueError:
            pass
    what = ' or "none"' if allow_none else ""
    raise _err(field, f"must be a duration such as 30 or \"1.5m\"{what} (got {_tname(v)} {v!r})")


def _mapping(v: object, field: str) -> dict:
    if not isinstance(v, dict):
        raise _err(field, f"must be a mapping (got {_tname(v)})")
    return v


def _opt_str(d: dict, key: str, field: str) -> None:
    if key in d and not isinstance(d[key], str):
        raise _err(f"{field}.{key}", f"must be a string (got {_tname(d[key])})")


def _shell_options(opts: object, field: str) -> None:
    """The shell options the job shell and exec read, by type; then the checks the
    CLI makes (:func:`flux_launch.proto.shellopts.check`), so that a bad option is
    refused at submit instead of failing the job's shells."""
    from flux_launch.proto import shellopts

    _mapping(opts, field)
    if "verbose" in opts and not _is_int(opts["verbose"]) and not isinstance(opts["verbose"], bool):
        raise _err(f"{field}.verbose", f"must be an integer (got {_tname(opts['verbose'])})")
    if "exit-timeout" in opts:
        _fsd(opts["exit-timeout"], f"{field}.exit-timeout", allow_none=True)
    _opt_str(opts, "pmi", field)
    if "pmi-simple" in opts:
        pmi = _mapping(opts["pmi-simple"], f"{field}.pmi-simple")
        if "exchange" in pmi:
            k = _mapping(pmi["exchange"], f"{field}.pmi-simple.exchange").get("k", 1)
            _pos_int(k, f"{field}.pmi-simple.exchange.k")
    for name, streams in (("output", ("stdout", "stderr")), ("input", ("stdin",))):
        if name not in opts:
            continue
        section = _mapping(opts[name], f"{field}.{name}")
        for stream in streams:
            if stream in section:
                entry = _mapping(section[stream], f"{field}.{name}.{stream}")
                for key in ("type", "path"):
                    _opt_str(entry, key, f"{field}.{name}.{stream}")
    try:
        shellopts.check(opts)
    except (ValueError, TypeError, AttributeError) as exc:
        raise _err(field, str(exc)) from None


def _exec(ex: object, field: str) -> None:
    """``exec``: ``test`` (the test exec method) with ``run_duration`` (a duration),
    ``wait_status`` (an integer 0-65535), ``mock_exception`` (init or run)."""
    _mapping(ex, field)
    if "test" not in ex:
        return
    test = _mapping(ex["test"], f"{field}.test")
    if "run_duration" in test:
        _fsd(test["run_duration"], f"{field}.test.run_duration")
    if "wait_status" in test:
        ws = test["wait_status"]
        if not _is_int(ws) or not 0 <= ws <= 0xFFFF:
            raise _err(f"{field}.test.wait_status", f"must be a wait status, an integer 0-65535 (got {ws!r})")
    if "mock_exception" in test and test["mock_exception"] not in ("init", "run"):
        raise _err(f"{field}.test.mock_exception", f"must be init or run (got {test['mock_exception']!r})")


# The dependency schemes (RFC 26) the job manager knows: flux-core's dependency-after
# plugin's (``after`` and ``afterstart`` alike: the target started), and
# ``afterstarted``, another name for them; flux-core's ``begin-time`` (a timestamp)
# and ``singleton`` (one active job per user and name, as Slurm's).
DEPENDENCY_SCHEMES = ("afterany", "afterok", "afternotok", "after", "afterstart", "afterstarted", "afterexcept",
                      "begin-time", "singleton")


def _dependencies(deps: object, field: str) -> None:
    if not isinstance(deps, list):
        raise _err(field, "must be a list (RFC 26)")
    for i, dep in enumerate(deps):
        if not isinstance(dep, dict):
            raise _err(f"{field}[{i}]", "must be a mapping")
        for key in ("scheme", "value"):
            if not isinstance(dep.get(key), str):
                raise _err(f"{field}[{i}].{key}", "must be a string")
        if dep["scheme"] not in DEPENDENCY_SCHEMES:
            raise _err(f"{field}[{i}].scheme", f"unknown dependency scheme {dep['scheme']!r} "
                       f"(use {', '.join(DEPENDENCY_SCHEMES)})")
        if dep["scheme"] == "begin-time":
            try:
                when = float(dep["value"])
            except ValueError:
                when = -1.0
            if not 0 <= when < float("inf"):
                raise _err(f"{field}[{i}].value", f"Invalid begin-time={dep['value']} (a timestamp, seconds "
                           "since the epoch: use --begin-time=+FSD or a date)")
        elif dep["scheme"] != "singleton" and dep["value"] in ("", "name="):
            raise _err(f"{field}[{i}].value", f"{dep['scheme']}: a job id or name=JOBNAME is required")


def _attributes(attrs: object, v1: bool) -> None:
    if not isinstance(attrs, dict):
        raise _err("attributes", "must be a mapping")
    for key in attrs:
        if key not in ("system", "user"):
            raise _err(f"attributes.{key}", "unknown section (only system and user)")
    if "user" in attrs and not isinstance(attrs["user"], dict):
        raise _err("attributes.user", "must be a mapping")
    if "system" in attrs:
        _system(attrs["system"], v1)
    elif v1:
        raise _err("attributes.system", "missing (required in jobspec V1)")


def validate(obj: object) -> dict:
    """Validate a decoded jobspec (normally a dict from JSON) against RFC 25 V1.

    Returns:
        ``obj`` itself, unchanged.

    Raises:
        JobspecError: naming the first bad field found, e.g.
            ``jobspec: version: unsupported version 2 (must be 1)``.
    """
    _check_top(obj)
    version = obj["version"]
    if not _is_int(version):
        raise _err("version", f"must be the integer 1 (got {_tname(version)} {version!r})")
    if version != 1:
        raise _err("version", f"unsupported version {version} (must be 1)")
    node, slot = _resources(obj["resources"])
    _tasks(obj["tasks"], node, slot)
    _attributes(obj["attributes"], v1=True)
    return obj


def _range(count: dict, field: str) -> None:
    for key in count:
        if key not in ("min", "max", "operator", "operand"):
            raise _err(f"{field}.{key}", "unknown key in count range")
    if "min" not in count:
        raise _err(f"{field}.min", "missing (required in a count range)")
    for key in ("min", "max", "operand"):
        if key in count:
            _pos_int(count[key], f"{field}.{key}")
    if "max" in count and count["max"] < count["min"]:
        raise _err(f"{field}.max", "must be >= min")
    if ("operator" in count) != ("operand" in count):
        raise _err(field, "operator and operand must be given together")
    op = count.get("operator")
    if op is not None:
        if op not in ("+", "*", "^"):
            raise _err(f"{field}.operator", "must be one of '+', '*', '^'")
        if op in ("*", "^") and count["operand"] < 2:
            raise _err(f"{field}.operand", f"must be > 1 for operator {op!r}")
        if op == "^" and count["min"] < 2:
            raise _err(f"{field}.min", "must be > 1 for operator '^'")


def _canonical_vertices(vertices: object, field: str) -> None:
    if not isinstance(vertices, list):
        raise _err(field, "must be a list")
    for i, v in enumerate(vertices):
        vf = f"{field}[{i}]"
        if not isinstance(v, dict):
            raise _err(vf, "must be a mapping")
        if not isinstance(v.get("type"), str):
            raise _err(f"{vf}.type", "missing or not a string")
        if "count" not in v:
            raise _err(f"{vf}.count", "missing (required)")
        count = v["count"]
        if isinstance(count, dict):
            _range(count, f"{vf}.count")
        elif not _is_int(count):
            raise _err(f"{vf}.count", "must be an integer or a range mapping")
        elif count < (1 if v["type"] in ("node", "slot", "core") else 0):
            raise _err(f"{vf}.count", f"must be positive for {v['type']} (got {count})")
        for key in ("id", "unit", "label"):
            if key in v and not isinstance(v[key], str):
                raise _err(f"{vf}.{key}", "must be a string")
        if "exclusive" in v and not isinstance(v["exclusive"], bool):
            raise _err(f"{vf}.exclusive", "must be a boolean")
        if v["type"] == "slot" and not isinstance(v.get("label"), str):
            raise _err(f"{vf}.label", "a slot must have a string label")
        if "with" in v:
            _canonical_vertices(v["with"], f"{vf}.with")


def validate_canonical(obj: object) -> dict:
    """Validate a decoded jobspec against the looser RFC 14 canonical rules.

    Resource counts may be RFC 14 range mappings, any resource types are
    allowed, several tasks may be given, and ``per_resource`` task counts
    are accepted.  ``attributes.system`` is optional.

    Returns:
        ``obj`` itself, unchanged.

    Raises:
        JobspecError: naming the first bad field (the version must be an
            integer >= 1).
    """
    _check_top(obj)
    version = obj["version"]
    if not _is_int(version) or version < 1:
        raise _err("version", f"must be an integer >= 1 (got {version!r})")
    _canonical_vertices(obj["resources"], "resources")
    tasks = obj["tasks"]
    if not isinstance(tasks, list):
        raise _err("tasks", "must be a list")
    for i, task in enumerate(tasks):
        tf = f"tasks[{i}]"
        if not isinstance(task, dict):
            raise _err(tf, "must be a mapping")
        for key in ("command", "slot", "count"):
            if key not in task:
                raise _err(f"{tf}.{key}", "missing (required)")
        _command(task["command"], f"{tf}.command")
        if not isinstance(task["slot"], str):
            raise _err(f"{tf}.slot", "must be a string")
        count = task["count"]
        if not isinstance(count, dict) or len(count) != 1:
            raise _err(f"{tf}.count", "must be a mapping with exactly one key")
        key, n = next(iter(count.items()))
        if key in ("per_slot", "total"):
            _pos_int(n, f"{tf}.count.{key}")
        elif key != "per_resource":
            raise _err(f"{tf}.count.{key}", "must be per_slot, per_resource or total")
        if "attributes" in task and not isinstance(task["attributes"], dict):
            raise _err(f"{tf}.attributes", "must be a mapping")
    _attributes(obj["attributes"], v1=False)
    return obj


def _reject_constant(c: str) -> object:
    raise ValueError(f"{c} is not valid JSON")


_decoder = fastjson.Decoder(parse_constant=_reject_constant)  # no NaN/Infinity


def parse(data: bytes | str) -> object:
    """Parse JSON, or YAML when the text is not JSON, without validating.

    ``data`` is text, or UTF-8 ``bytes``.  Returns the decoded object.

    Raises:
        JobspecError: ``jobspec: invalid JSON: ...`` for bad JSON-looking
            text (starting with ``{`` or ``[``, or empty), for bytes that are
            not UTF-8, and for other non-JSON text when PyYAML is missing (then
            adding ``(YAML jobspecs need PyYAML)``); ``jobspec: invalid YAML:
            ...`` when other non-JSON text is not YAML either.
    """
    if isinstance(data, (bytes, bytearray, memoryview)):
        try:
            data = bytes(data).decode("utf-8")
        except UnicodeDecodeError as e:
            raise _err("", f"invalid JSON: not UTF-8: {e}") from None
    elif not isinstance(data, str):
        raise TypeError(f"jobspec: expected bytes or str, not {type(data).__name__}")
    try:
        return _decoder.decode(data)
    except ValueError as e:
        if data.lstrip()[:1] in ("{", "[", ""):  # JSON-looking: no YAML retry
            raise _err("", f"invalid JSON: {e}") from None
        json_error = str(e)
    try:
        import yaml  # lazy: the JSON path must stay cheap
    except ImportError:
        raise _err("", f"invalid JSON: {json_error} (YAML jobspecs need PyYAML)") from None
    try:
        return yaml.safe_load(data)
    except yaml.YAMLError as e:
        raise _err("", f"invalid YAML: {' '.join(str(e).split())}") from None


def decode(data: bytes | str) -> dict:
    """Parse a JSON (or YAML) jobspec and validate it as version 1.

    Returns:
        The decoded, validated jobspec dict.

    Raises:
        JobspecError: on bad JSON/YAML (see :func:`parse`) or an invalid
            jobspec (see :func:`validate`).
    """
    return validate(parse(data))


def summary(jobspec: dict) -> dict:
    """Compute what a scheduler needs from a valid V1 jobspec.

    Args:
        jobspec: a jobspec that passed :func:`validate`.

    Returns:
        A dict with ``nnodes`` (0 without a node level), ``nslots`` (total
        slots: slots per node times nodes, or the slot count),
        ``slots_per_node`` (``None`` without a node level),
        ``cores_per_slot``, ``gpus_per_slot`` (0 if none), ``exclusive``
        (the node vertex's ``exclusive`` flag), ``duration`` (float seconds,
        0 meaning unlimited), ``ntasks`` (``per_slot * nslots`` or
        ``total``), ``per_slot`` and ``total`` (each ``None`` unless given).

    Raises:
        JobspecError: if ``jobspec`` is too malformed to summarize (it was
            not validated first).
    """
    try:
        top = jobspec["resources"][0]
        if top["type"] == "node":
            nnodes = top["count"]
            exclusive = bool(top.get("exclusive", False))
            slot = top["with"][0]
            slots_per_node = slot["count"]
            nslots = slots_per_node * nnodes
        else:
            nnodes, exclusive, slot, slots_per_node = 0, False, top, None
            nslots = slot["count"]
        cores = gpus = 0
        for child in slot["with"]:
            if child["type"] == "core":
                cores = child["count"]
            elif child["type"] == "gpu":
                gpus = child["count"]
        count = jobspec["tasks"][0]["count"]
        per_slot = count.get("per_slot")
        total = count.get("total")
        ntasks = total if total is not None else per_slot * nslots
        duration = float(jobspec["attributes"]["system"].get("duration", 0))
    except (KeyError, IndexError, TypeError, AttributeError) as e:
        raise _err("", f"cannot summarize an invalid jobspec ({type(e).__name__}: {e})") from None
    return {"nnodes": nnodes, "nslots": nslots, "slots_per_node": slots_per_node,
            "cores_per_slot": cores, "gpus_per_slot": gpus, "exclusive": exclusive,
            "duration": duration, "ntasks": ntasks, "per_slot": per_slot, "total": total}
