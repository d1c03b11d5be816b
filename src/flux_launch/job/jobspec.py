"""Jobspec builders, mirroring flux-core's ``flux.job.Jobspec`` and ``JobspecV1``.

:class:`Jobspec` wraps a canonical (RFC 14) jobspec dict; :class:`JobspecV1`
enforces RFC 25 (version 1) on construction and adds the factories
``from_command``, ``from_nest_command`` and ``from_batch_command``.  As in
flux-core, only construction validates; later ``setattr()`` calls are not
re-validated (setters such as ``duration`` check their own argument).
Validation failures raise :class:`~flux_launch.proto.jobspec.JobspecError`
(a ``ValueError``) naming the bad field; wrong argument types for the stdio,
``queue``, ``unbuffered`` and ``duration`` setters raise ``TypeError``.
"""

from __future__ import annotations

from flux_launch.proto import fastjson
import math
import os
from _collections_abc import Mapping  # collections.abc, without importing collections (~1.5 ms)

from flux_launch.core import fsd
from flux_launch.proto.jobspec import JobspecError, parse, validate, validate_canonical

__all__ = ["Jobspec", "JobspecV1", "JobspecError", "BROKER_COMMAND"]

#: How nested instances start a broker (as flux-core: ``flux broker ...``).
BROKER_COMMAND = ("flux", "broker")

_S_IFREG = 0o100000  # stat.S_IFREG, for RFC 37 file modes


def _fail(field: str, why: str) -> JobspecError:
    return JobspecError(f"jobspec: {field}: {why}")


def _attr_key(key: str) -> str:
    """Prefix ``attributes.`` (and ``system.`` unless ``user.``/``system.``)."""
    if not key.startswith("attributes."):
        if not key.startswith(("user.", "system.")):
            key = "system." + key
        key = "attributes." + key
    return key


def _check_int(value, field: str, minimum: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise _fail(field, f"must be an integer >= {minimum} (got {value!r})")


def _strings(value, field: str) -> list:
    """``value`` as a list of str; ``JobspecError`` for a str (which would split
    into characters), a non-iterable or a non-str item."""
    if isinstance(value, (str, bytes)) or not hasattr(value, "__iter__"):
        raise _fail(field, f"must be a list of strings (got {type(value).__name__})")
    value = list(value)
    for item in value:
        if not isinstance(item, str):
            raise _fail(field, f"must be a list of strings (got item {item!r})")
    return value


def _check_slots(count, cores, gpus, num_nodes, unit="slot") -> None:
    """The count arguments (``num_{unit}s``, ``cores_per_{unit}``, ``gpus_per_{unit}``,
    ``num_nodes``; ``unit``: slot for a nested instance, task for a command), named
    as the caller gave them."""
    _check_int(count, f"num_{unit}s", 1)
    _check_int(cores, f"cores_per_{unit}", 1)
    if gpus is not None:
        _check_int(gpus, f"gpus_per_{unit}", 0)
    if num_nodes is not None:
        _check_int(num_nodes, "num_nodes", 1)
        if num_nodes > count:
            raise _fail("num_nodes", f"must not be greater than num_{unit}s ({count})")


def _io_property(iotype: str, stream: str):
    key = f"shell.options.{iotype}.{stream}"

    def get(self):
        return self._get(key + ".path")

    def set_(self, path):
        if isinstance(path, os.PathLike):
            path = os.fspath(path)
        if not isinstance(path, str):
            raise TypeError(f"The path must be a string or pathlib object, got {type(path).__name__}")
        self.setattr(key + ".type", "file")
        self.setattr(key + ".path", path)

    return property(get, set_, doc=f"File path for {stream} (shell option ``{iotype}.{stream}``)"
                    " or None; setting a non-str, non-os.PathLike raises TypeError.")


def _ng_one_job(doc):
    """The Jobspec V1 of a JobSpec NG document that is one job (one task, no
    replicas, local tasks or groups), with its first resource alternative.

    Raises:
        JobspecError: a workflow of several jobs (submit it whole instead), or a
            document with an error (its NG path first).
    """
    from flux_launch.job.ng.plan import build
    from flux_launch.job.ng.schema import NGError

    try:
        plan = build(doc)
    except NGError as exc:
        raise JobspecError(f"jobspec: {exc}") from None
    units = [u for u in plan.units if u.kind != "stage"]
    if len(units) != 1 or units[0].kind != "job" or units[0].replicas != 1:
        raise JobspecError(f"jobspec: a JobSpec NG workflow of {len(units)} tasks is not one jobspec: submit it "
                           "whole with flux.job.submit(h, doc) or flux job submit FILE")
    return units[0].alternatives[0]


class Jobspec:
    """A canonical jobspec (RFC 14), kept (not copied) as the dict :attr:`jobspec`.

    Raises ``JobspecError`` if the sections do not form a valid canonical
    jobspec (for :class:`JobspecV1`: a valid version 1 jobspec)."""

    top_level_keys = frozenset(("resources", "tasks", "attributes", "version"))
    _validator = staticmethod(validate_canonical)

    def __init__(self, resources, tasks, attributes, version):
        self.jobspec = {"resources": resources, "tasks": tasks,
                        "attributes": attributes, "version": version}
        self._validator(self.jobspec)

    @classmethod
    def from_yaml_stream(cls, yaml_stream):
        """Create a jobspec from YAML or JSON text (str/bytes) or a file-like object.

        Raises:
            JobspecError: unparsable text (``YAML jobspecs need PyYAML`` if not
                JSON and PyYAML is missing), a missing or unknown top-level
                key, or an invalid jobspec.
        """
        data = yaml_stream.read() if hasattr(yaml_stream, "read") else yaml_stream
        return cls._from_obj(parse(data))

    @classmethod
    def _from_obj(cls, obj):
        from flux_launch.job.ng import is_ng

        if is_ng(obj):
            obj = _ng_one_job(obj)
        if not isinstance(obj, dict):
            raise JobspecError(f"jobspec: must be a mapping (got {type(obj).__name__})")
        for key in sorted(cls.top_level_keys.difference(obj)):
            raise _fail(key, "missing (required)")
        for key in obj:
            if key not in cls.top_level_keys:
                raise _fail(str(key), "unknown top-level key")
        return cls(**obj)

    @classmethod
    def from_yaml_file(cls, filename):
        """Create a jobspec from a YAML or JSON file (``OSError`` if unreadable,
        else as :meth:`from_yaml_stream`)."""
        with open(filename, "rb") as infile:
            return cls.from_yaml_stream(infile)

    def getattr(self, key):
        """Get an attribute by dotted key (one not starting with ``attributes.``,
        ``system.`` or ``user.`` is under ``attributes.system``); ``KeyError``
        if a component of ``key`` does not exist (or is null)."""
        value = self.jobspec
        for part in _attr_key(key).split("."):
            if not isinstance(value, dict) or value.get(part) is None:
                raise KeyError(key)
            value = value[part]
        return value

    def setattr(self, key, val):
        """Set an attribute by dotted key (as :meth:`getattr`), creating levels;
        ``TypeError`` if a component along the path is not a mapping."""
        full = _attr_key(key)
        parts = full.split(".")
        node = self.jobspec
        for part in parts[:-1]:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise TypeError(f"failed to set {full} to {val!r}: {part} is not a mapping")
        node[parts[-1]] = val

    def setattr_shell_option(self, key, val):
        """Set ``attributes.system.shell.options.KEY`` (dotted) to ``val``."""
        self.setattr("system.shell.options." + key, val)

    def _get(self, key, default=None):
        try:
            return self.getattr(key)
        except KeyError:
            return default

    @property
    def duration(self):
        """Time limit in seconds (``0`` = unlimited) or ``None``.  Set seconds, an
        RFC 23 FSD string (``"10m"``) or a ``timedelta`` (stored as float):
        ``JobspecError`` if negative, NaN, infinite or a bad FSD string,
        ``TypeError`` for any other type."""
        return self._get("system.duration")

    @duration.setter
    def duration(self, duration):
        field = "attributes.system.duration"
        if isinstance(duration, str):
            try:
                time = fsd.parse(duration)
            except ValueError as e:
                raise _fail(field, str(e)) from None
        elif hasattr(duration, "total_seconds"):  # datetime.timedelta
            time = float(duration.total_seconds())
        elif isinstance(duration, (int, float)) and not isinstance(duration, bool):
            time = float(duration)
        else:
            raise TypeError("duration must be an int, float, string, or timedelta")
        if time < 0:
            raise _fail(field, "must not be negative")
        if math.isnan(time) or math.isinf(time):
            raise _fail(field, "must be a normal, finite value")
        self.setattr("system.duration", time)

    @property
    def queue(self):
        """Target queue, or ``None``; setting a non-string raises ``TypeError``."""
        return self._get("system.queue")

    @queue.setter
    def queue(self, queue):
        if not isinstance(queue, str):
            raise TypeError("queue must be a string")
        self.setattr("system.queue", queue)

    @property
    def cwd(self):
        """Working directory or ``None``; non-str, non-PathLike: ``JobspecError``."""
        return self._get("system.cwd")

    @cwd.setter
    def cwd(self, cwd):
        if isinstance(cwd, os.PathLike):
            cwd = os.fspath(cwd)
        if not isinstance(cwd, str):
            raise _fail("attributes.system.cwd", "must be a string")
        self.setattr("system.cwd", cwd)

    @property
    def environment(self):
        """The job environment (name -> str), or ``None``.  A dict is stored as is,
        another mapping copied; ``JobspecError`` if not a mapping or a name or
        value is not a str (a ``None`` value unsets the variable, RFC 14)."""
        return self._get("system.environment")

    @environment.setter
    def environment(self, environ):
        field = "attributes.system.environment"
        if not isinstance(environ, Mapping):
            raise _fail(field, "must be a mapping")
        environ = environ if isinstance(environ, dict) else dict(environ)
        for name, value in environ.items():
            if not isinstance(name, str):
                raise _fail(field, f"name {name!r} is not a string")
            if value is not None and not isinstance(value, str):
                raise _fail(f"{field}.{name}", f"must be a string or None (got {type(value).__name__})")
        self.setattr("system.environment", environ)

    input = _io_property("input", "stdin")
    output = _io_property("output", "stdout")
    error = _io_property("output", "stderr")
    stdin, stdout, stderr = input, output, error  # aliases, as in flux-core

    @property
    def unbuffered(self):
        """True if stdout and stderr have buffer type ``none``.  Setting True also
        sets ``output.batch-timeout`` 0.05 and ``input.batch-timeout`` 0; False
        undoes all that; a non-bool raises ``TypeError``."""
        return (self._get("shell.options.output.stdout.buffer.type") == "none"
                and self._get("shell.options.output.stderr.buffer.type") == "none")

    @unbuffered.setter
    def unbuffered(self, value):
        if not isinstance(value, bool):
            raise TypeError("unbuffered must be True or False")
        if value:
            for key, val in (("output.stdout.buffer.type", "none"),
                             ("output.stderr.buffer.type", "none"),
                             ("output.batch-timeout", 0.05), ("input.batch-timeout", 0.0)):
                self.setattr_shell_option(key, val)
            return
        opts = self._get("shell.options", {})
        for iotype, streams, timeout in (("output", ("stdout", "stderr"), 0.05), ("input", (), 0.0)):
            section = opts.get(iotype)
            if isinstance(section, dict):
                for stream in (s for s in streams if isinstance(section.get(s), dict)):
                    section[stream].pop("buffer", None)
                    if not section[stream]:
                        del section[stream]
                if section.get("batch-timeout") == timeout:
                    del section["batch-timeout"]
                if not section:
                    del opts[iotype]

    def add_file(self, path, data, perms=None, encoding=None):
        """Add a file to ``attributes.system.files`` (RFC 37 archive).

        ``data`` is a dict (JSON content), str content (if it has a newline or
        ``encoding``, ``"utf-8"`` or ``"base64"``, is given), or else the path
        of a local file to read (keeping its mode).  ``perms`` default 0o600.

        Raises:
            TypeError: if ``data`` is neither a mapping nor a string.
            JobspecError: for an unknown ``encoding``.
            OSError: if ``data`` names a local file that cannot be read.
        """
        if not isinstance(data, (Mapping, str)):
            raise TypeError("data must be a Mapping or string")
        if encoding is None and isinstance(data, str) and "\n" in data:
            encoding = "utf-8"
        ref = {"mode": (0o600 if perms is None else perms) | _S_IFREG}
        if isinstance(data, Mapping):
            ref["data"] = dict(data)
        elif encoding is not None:
            if encoding not in ("utf-8", "base64"):
                raise _fail(f"attributes.system.files.{path}.encoding", f"invalid encoding {encoding!r}")
            ref["data"], ref["encoding"] = data, encoding
        else:
            with open(data, "rb") as f:
                st, raw = os.fstat(f.fileno()), f.read()
            ref = {"mode": st.st_mode, "size": st.st_size}
            try:
                ref["data"], ref["encoding"] = raw.decode("utf-8"), "utf-8"
            except UnicodeDecodeError:
                import base64  # a rare path
                ref["data"], ref["encoding"] = base64.b64encode(raw).decode("ascii"), "base64"
        system = self.jobspec["attributes"].setdefault("system", {})
        system.setdefault("files", {})[path] = ref  # not setattr(): names hold dots

    def dumps(self, **kwargs):
        """Encode as JSON, compact unless ``separators``/``indent`` given
        (``TypeError`` if something stored is not JSON-serializable)."""
        kwargs.setdefault("separators", None if "indent" in kwargs else (",", ":"))
        if set(kwargs) - {"separators", "sort_keys"}:  # indent, default...: json's own options
            import json

            return json.dumps(self.jobspec, ensure_ascii=False, **kwargs)
        return fastjson.dumps(self.jobspec, ensure_ascii=False, **kwargs)

    resources = property(lambda self: self.jobspec.get("resources"), doc="The resources section.")
    tasks = property(lambda self: self.jobspec.get("tasks"), doc="The tasks section.")
    attributes = property(lambda self: self.jobspec.get("attributes"), doc="The attributes section.")
    version = property(lambda self: self.jobspec.get("version"), doc="The jobspec version.")

    def __iter__(self):
        """Iterate over resource vertices, depth-first, pre-order."""
        return (v for _, v, _ in self.resource_walk())

    def resource_walk(self):
        """Yield ``(parent, vertex, count)`` depth-first; ``count`` multiplies in
        all ancestors' counts (a range count uses its ``min``)."""
        def walk(vertices, parent, mult):
            for v in vertices:
                count = v["count"]
                total = mult * (count["min"] if isinstance(count, dict) else count)
                yield parent, v, total
                yield from walk(v.get("with", []), v, total)

        return walk(self.resources, None, 1)

    def resource_counts(self):
        """Total count of each resource type, e.g. ``{"slot": 4, "core": 8}``."""
        counts: dict[str, int] = {}
        for _, v, n in self.resource_walk():
            counts[v["type"]] = counts.get(v["type"], 0) + n
        return counts

    def __repr__(self):
        return (f"{type(self).__name__}({self.resources}, {self.tasks}, "
                f"attributes={self.attributes}, version={self.version})")

    def __str__(self):
        return str(self.jobspec)


class JobspecV1(Jobspec):
    """A version 1 jobspec (RFC 25); ``JobspecError`` if invalid on construction."""

    _validator = staticmethod(validate)

    def __init__(self, resources, tasks, attributes, version=1):
        super().__init__(resources, tasks, attributes, version)

    @staticmethod
    def _vertex(rtype, count, children=None, exclusive=False):
        res = {"type": rtype, "count": count}
        if exclusive:
            res["exclusive"] = True
        if children:
            res["with"] = children
        return res

    def _set_extra_options(self, duration=None, environment=None, env_expand=None, cwd=None,
                           rlimits=None, name=None, input=None, output=None, error=None,
                           label_io=False, unbuffered=False, queue=None, bank=None):
        if duration is not None:
            self.duration = duration
        self.environment = dict(os.environ) if environment is None else environment
        for arg, value, option in (("env_expand", env_expand, "env-expand"),
                                   ("rlimits", rlimits, "rlimit")):
            if value is not None:
                if not isinstance(value, Mapping):
                    raise _fail(arg, "must be a mapping")
                self.setattr_shell_option(option, value)
        if cwd is not None:
            self.cwd = cwd
        for key, value in (("job.name", name), ("bank", bank)):
            if value is not None:
                if not isinstance(value, str):
                    raise _fail("attributes.system." + key, "must be a string")
                self.setattr(key, value)
        if input is not None:
            self.input = input
        for attr, stream, path in (("output", "stdout", output), ("error", "stderr", error)):
            if path is not None and path not in ("none", "kvs"):
                setattr(self, attr, path)
                if label_io:
                    self.setattr_shell_option(f"output.{stream}.label", True)
        if unbuffered:
            self.unbuffered = True
        if queue is not None:
            self.queue = queue
        return self

    @classmethod
    def from_command(cls, command, num_tasks=1, cores_per_task=1, gpus_per_task=None,
                     num_nodes=None, exclusive=False, duration=None, environment=None,
                     env_expand=None, cwd=None, rlimits=None, name=None, input=None,
                     output=None, error=None, label_io=False, unbuffered=False,
                     queue=None, bank=None):
        """Build the minimal V1 jobspec running ``command``, laid out as flux-core:

        * without ``num_nodes``: ``slot[num_tasks]>core[cores_per_task]`` (plus
          ``gpu[gpus_per_task]`` if non-zero), task count ``per_slot: 1``;
        * with it: ``node[num_nodes]>slot[ceil(num_tasks/num_nodes)]>...`` with
          ``per_slot: 1`` if ``num_tasks`` divides evenly, else ``total: num_tasks``.

        The slot label is ``"task"``, ``duration`` starts at ``0`` (unlimited),
        and ``cwd`` stays unset unless given (the CLI sets it).

        Args:
            command: executable and arguments (a sequence of str, not a str).
            num_tasks, cores_per_task: tasks, and cores per task (each >= 1).
            gpus_per_task: GPUs per task (>= 0; 0 or None: no gpu vertex).
            num_nodes: spread the tasks over this many nodes (1..num_tasks).
            exclusive: allocate whole nodes (needs ``num_nodes``).
            duration: time limit: seconds, FSD string or timedelta.
            environment: mapping name -> str; default: a copy of ``os.environ``.
            env_expand: mustache-template variables (shell option ``env-expand``).
            cwd: working directory (default: unset).
            rlimits: limit name -> value (shell option ``rlimit``).
            name: job name (``attributes.system.job.name``).
            input, output, error: stdio file paths (``"none"``/``"kvs"``: no file).
            label_io, unbuffered: label file output lines with task ranks;
                turn off output buffering.
            queue, bank: target queue and bank (str).

        Raises:
            JobspecError: naming the bad argument (``num_tasks``) or field.
            TypeError: for a non-path stdio argument, non-str queue or bad
                duration type.
        """
        if isinstance(command, (str, bytes)) or not hasattr(command, "__iter__"):
            raise _fail("tasks[0].command", "must be a non-empty list of strings")
        _check_slots(num_tasks, cores_per_task, gpus_per_task, num_nodes, unit="task")
        if num_nodes is None and exclusive:
            raise _fail("exclusive", "can only be set with a node count")
        children = [cls._vertex("core", cores_per_task)]
        if gpus_per_task:
            children.append(cls._vertex("gpu", gpus_per_task))
        count = {"per_slot": 1}
        if num_nodes is not None:
            slot = cls._vertex("slot", math.ceil(num_tasks / num_nodes), children)
            slot["label"] = "task"
            top = cls._vertex("node", num_nodes, [slot], exclusive)
            if num_tasks % num_nodes:
                count = {"total": num_tasks}  # uneven: spare slots are wasted
        else:
            top = cls._vertex("slot", num_tasks, children)
            top["label"] = "task"
        tasks = [{"command": list(command), "slot": "task", "count": count}]
        jobspec = cls([top], tasks, {"system": {"duration": 0}})
        return jobspec._set_extra_options(
            duration=duration, environment=environment, env_expand=env_expand, cwd=cwd,
            rlimits=rlimits, name=name, input=input, output=output, error=error,
            label_io=label_io, unbuffered=unbuffered, queue=queue, bank=bank)

    @classmethod
    def from_nest_command(cls, command, num_slots=1, cores_per_slot=1, gpus_per_slot=None,
                          num_nodes=None, broker_opts=None, exclusive=False, conf=None,
                          **kwargs):
        """Build a jobspec for a nested instance whose initial program is ``command``.

        Runs ``flux broker [BROKER_OPTS...] COMMAND...`` (:data:`BROKER_COMMAND`),
        one task per slot, with shell options ``per-resource.type=node``,
        ``mpi=none``, ``exit-timeout=none``, ``pmi=simple``.  A ``conf`` dict
        becomes RFC 37 file ``conf.json`` plus broker option
        ``-c{{tmpdir}}/conf.json``.  ``kwargs`` go to :meth:`from_command`,
        which raises as documented there.

        Raises:
            JobspecError: ``command``, ``broker_opts`` not a list of str; a bad
                slot count (named ``num_slots``, ``cores_per_slot``...).
        """
        command = _strings(command, "command")
        broker_opts = _strings(broker_opts, "broker_opts") if broker_opts is not None else []
        _check_slots(num_slots, cores_per_slot, gpus_per_slot, num_nodes)
        if conf is not None:
            broker_opts.append("-c{{tmpdir}}/conf.json")
        jobspec = cls.from_command(
            command=[*BROKER_COMMAND, *broker_opts, *command], num_tasks=num_slots,
            cores_per_task=cores_per_slot, gpus_per_task=gpus_per_slot, num_nodes=num_nodes,
            exclusive=exclusive, **kwargs)
        for key, val in (("per-resource.type", "node"), ("mpi", "none"),
                         ("exit-timeout", "none"), ("pmi", "simple")):
            jobspec.setattr_shell_option(key, val)
        if conf is not None:
            jobspec.add_file("conf.json", conf)
        return jobspec

    @classmethod
    def from_batch_command(cls, script, jobname, args=None, num_slots=1, cores_per_slot=1,
                           gpus_per_slot=None, num_nodes=None, broker_opts=None,
                           exclusive=False, conf=None, **kwargs):
        """Build a jobspec for a nested instance that runs the batch ``script``.

        The script is stored as RFC 37 file ``script`` (mode 0700, utf-8) in
        ``attributes.system.files`` (the job shell unpacks it into its temp
        dir); the initial program is ``{{tmpdir}}/script ARGS...``; ``jobname``
        becomes ``attributes.system.job.name``.  Else as :meth:`from_nest_command`.

        Raises:
            JobspecError: if ``script`` does not start with ``#!``, ``args`` is
                not a list of str, or as :meth:`from_nest_command`.
        """
        if not isinstance(script, str) or not script.startswith("#!"):
            raise _fail("attributes.system.files.script",
                        f"{jobname} does not appear to start with '#!'")
        args = _strings(args, "args") if args is not None else []
        jobspec = cls.from_nest_command(
            command=["{{tmpdir}}/script", *args], num_slots=num_slots,
            cores_per_slot=cores_per_slot, gpus_per_slot=gpus_per_slot, num_nodes=num_nodes,
            broker_opts=broker_opts, exclusive=exclusive, conf=conf, name=jobname, **kwargs)
        jobspec.add_file("script", script, perms=0o700, encoding="utf-8")
        return jobspec

