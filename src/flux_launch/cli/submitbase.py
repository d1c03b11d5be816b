"""Options shared by ``flux run`` and ``flux submit``, and the jobspec they make.

Environment rules (``--env``, applied in order to a copy of this environment):
``VAR=VAL`` sets (``$VAR`` expanded), ``-PATTERN`` removes matching variables
(glob), ``PATTERN`` imports matching variables back, ``^FILE`` reads rules from a
file; ``--env-remove=PATTERN`` is ``--env=-PATTERN`` and ``--env-file=FILE`` is
``--env=^FILE``.
"""

import os

from flux_launch.cli.fastparse import REMAINDER, FastParser
from flux_launch.proto import fastjson
from flux_launch.proto.job import SUBMIT_FLAGS, URGENCY_DEFAULT, URGENCY_EXPEDITE, URGENCY_HOLD


def add_options(p):
    p.add_argument("-n", "--ntasks", type=int, metavar="N", help="number of tasks (default 1)")
    p.add_argument("-c", "--cores-per-task", type=int, default=1, metavar="N", help="cores per task")
    p.add_argument("-g", "--gpus-per-task", type=int, metavar="N", help="GPUs per task")
    p.add_argument("-N", "--nodes", type=int, metavar="N", help="number of nodes")
    p.add_argument("--tasks-per-node", type=int, metavar="N", help="tasks on each node")
    p.add_argument("--gpus-per-node", type=int, metavar="N", help="GPUs on each node (with -N)")
    p.add_argument("--cores", type=int, metavar="N", help="total cores (one task per core unless -n)")
    p.add_argument("--exclusive", action="store_true", help="allocate whole nodes")
    add_common_options(p)
    p.add_argument("-u", "--unbuffered", action="store_true", help="do not buffer task output")
    p.add_argument("--input", metavar="RANKS|FILE", help="stdin only to these task ranks, or from a file")
    p.add_argument("-l", "--label-io", action="store_true", help="prefix output lines with the task rank")
    p.add_argument("command", nargs=REMAINDER, metavar="COMMAND")


def add_common_options(p):
    """The options of every submitting command (run, submit, batch, alloc) that are
    not about resources."""
    p.add_argument("-t", "--time-limit", metavar="MIN|FSD",
                   help="time limit in minutes when no units are given, else an FSD (e.g. 30s, 2h)")
    p.add_argument("--job-name", metavar="NAME", help="the job's name")
    p.add_argument("--urgency", default="16", metavar="N",
                   help="urgency 0-31, default (16), hold (0) or expedite (31)")
    p.add_argument("--env", action="append", default=[], metavar="RULE", help="environment rule")
    p.add_argument("--env-remove", action="append", default=[], metavar="PATTERN",
                   help="remove variables matching PATTERN")
    p.add_argument("--env-file", action="append", default=[], metavar="FILE", help="environment rules file")
    p.add_argument("--cwd", metavar="DIR", help="working directory of the tasks (default: this one)")
    p.add_argument("-o", "--setopt", action="append", default=[], metavar="KEY[=VAL]", help="shell option")
    p.add_argument("-S", "--setattr", action="append", default=[], metavar="KEY=VAL", help="jobspec attribute")
    p.add_argument("--flags", default="", metavar="FLAGS", help="waitable, debug, novalidate")
    p.add_argument("--dependency", action="append", default=[], metavar="DEPENDENCY",
                   help="run after another job: afterany, afterok, afternotok or after(start):JOBID "
                   "or :name=JOBNAME, singleton, begin-time:TIMESTAMP (RFC 26)")
    p.add_argument("--begin-time", metavar="+FSD|DATETIME",
                   help="run no sooner than this (e.g. +1h, 'in 10 minutes', 8pm, tomorrow 8am)")
    p.add_argument("--output", metavar="TEMPLATE", help="stdout to a file ({{id}} {{name}} {{node.id}} {{taskid}})")
    p.add_argument("--error", metavar="TEMPLATE", help="stderr to a file (default: with --output)")
    p.add_argument("--dry-run", action="store_true", help="print the jobspec instead of submitting it")
    p.add_argument("-q", "--queue", help="submit to this queue")


def make_parser(cmd, description):
    # A usage line as flux-core's: the full one runs to ten lines before each error.
    p = FastParser(cmd, description=description, usage=f"flux {cmd} [OPTIONS...] COMMAND [ARGS...]")
    add_options(p)
    return p


_JSON_STARTS = tuple('{["-0123456789tfnNI')  # the first characters a JSON text can have


def _json_or_str(text):
    if text.lstrip(" \t\n\r")[:1] not in _JSON_STARTS:  # cannot be JSON (e.g. "off"):
        return text  # no failed parse, whose error would import json
    try:
        return fastjson.loads(text)
    except ValueError:
        return text


def _leaves(tree, prefix=""):
    """``(dotted.key, value)`` for every non-dict value of a nested dict."""
    for key, value in tree.items():
        if isinstance(value, dict) and value:
            yield from _leaves(value, f"{prefix}{key}.")
        else:
            yield prefix + key, value


def _set_path(root, dotted, value):
    node = root
    parts = dotted.split(".")
    for part in parts[:-1]:
        child = node.get(part)
        if not isinstance(child, dict):
            child = node[part] = {}
        node = child
    node[parts[-1]] = value


def environment(args, base=None):
    """The job's environment from this one and the ``--env*`` rules.

    Raises:
        ValueError: a rules file cannot be read.
    """
    src = dict(os.environ if base is None else base)
    env = dict(src)
    rules = list(args.env) + [f"-{p}" for p in args.env_remove] + [f"^{f}" for f in args.env_file]
    if not rules:
        return env
    def fnmatchcase(name, pattern):
        from fnmatch import fnmatchcase  # here: it imports re, which VAR=VAL rules do without

        return fnmatchcase(name, pattern)

    def apply(rule):
        if rule.startswith("^"):
            path = rule[1:]
            try:
                with open(os.path.expanduser(path)) as f:
                    lines = [ln.strip() for ln in f]
            except OSError as exc:
                raise ValueError(f"--env-file {path}: {exc.strerror}") from None
            for line in lines:
                if line and not line.startswith("#"):
                    apply(line)
        elif rule.startswith("-"):
            if not rule[1:]:
                raise ValueError("--env-remove: empty pattern (give a variable name or a glob such as 'MPI_*')")
            for key in [k for k in env if fnmatchcase(k, rule[1:])]:
                del env[key]
        elif "=" in rule:
            key, _, value = rule.partition("=")
            if not key:
                raise ValueError(f"--env {rule!r}: empty variable name (use --env=VAR=VALUE)")
            env[key] = _expand(rule, value, env, src) if "$" in value else value
        elif not rule:
            raise ValueError("--env: empty rule (use VAR=VALUE, VAR, -PATTERN or ^FILE)")
        else:
            env.update({k: v for k, v in src.items() if fnmatchcase(k, rule) and k not in env})

    for rule in rules:
        apply(rule)
    return env


def _expand(rule, value, env, src):
    """``$VAR`` and ``${VAR}`` in an ``--env`` value, from the job's environment as
    built so far, then this one (``$$`` is a ``$``), as flux-core.

    Raises:
        ValueError: a variable is set in neither, or a ``$`` is malformed.
    """
    from string import Template  # here: it imports re, which values without '$' do without

    try:
        return Template(value).substitute({**src, **env})
    except KeyError as exc:
        raise ValueError(f"--env {rule!r}: variable {exc} not found (write $$ for a literal $)") from None
    except ValueError:
        raise ValueError(f"--env {rule!r}: invalid $ substitution (use $VAR, ${{VAR}} or $$)") from None


# (option, dest, minimum) of the integer options, checked before the jobspec is built
_COUNTS = (("-n/--ntasks", "ntasks", 1), ("-c/--cores-per-task", "cores_per_task", 1),
           ("-g/--gpus-per-task", "gpus_per_task", 0), ("-N/--nodes", "nodes", 1),
           ("--tasks-per-node", "tasks_per_node", 1), ("--gpus-per-node", "gpus_per_node", 0),
           ("--cores", "cores", 1))


def _check_args(args):
    """Refuse option values that can never make sense, naming the option.

    Raises:
        ValueError: the first bad value.
    """
    for opt, dest, minimum in _COUNTS:
        value = getattr(args, dest)
        if value is not None and value < minimum:
            raise ValueError(f"{opt}={value}: must be an integer >= {minimum}")
    if args.nodes is not None and args.ntasks is not None and args.nodes > args.ntasks:
        raise ValueError(f"-N/--nodes={args.nodes}: more nodes than the {args.ntasks} tasks of -n "
                         "(every node runs at least one task)")
    if args.exclusive and args.nodes is None:
        raise ValueError("--exclusive can only be used with -N/--nodes")
    check_common(args)


def check_common(args):
    """``_check_args`` for the options of ``add_common_options`` (and ``--input``)."""
    from flux_launch.proto.shellopts import TEMPLATE_FIELDS

    if args.time_limit is not None and not args.time_limit:
        raise ValueError("-t/--time-limit: empty duration (e.g. 30s, 5m, 1h)")
    for opt, value in (("--job-name", args.job_name), ("-q/--queue", args.queue), ("--output", args.output),
                       ("--error", args.error), ("--input", getattr(args, "input", None))):
        if value is not None and not value.strip():
            raise ValueError(f"{opt}: empty value")
    if args.cwd is not None and not os.path.isabs(args.cwd):
        raise ValueError(f"--cwd {args.cwd}: not an absolute path (the tasks start on other nodes)")
    for opt, template in (("--output", args.output), ("--error", args.error)):
        start = template.find("{{") if template else -1
        while start >= 0:
            end = template.find("}}", start)
            field = template[start + 2:end].strip() if end > 0 else None
            if field not in TEMPLATE_FIELDS:
                raise ValueError(f"--{opt.lstrip('-')}: unknown template field "
                                 f"{template[start:end + 2] if end > 0 else template[start:]!r} "
                                 "(use {{id}}, {{name}}, {{taskid}}, {{node.id}} or {{node.name}})")
            start = template.find("{{", end)


_RESOURCE_DESTS = ("ntasks", "nodes", "tasks_per_node", "cores", "gpus_per_task", "gpus_per_node")


def resource_options_given(args):
    """Whether the command line asks for any resources (-n, -N, -c, -g, --cores...)."""
    return args.exclusive or args.cores_per_task != 1 or any(getattr(args, d) is not None for d in _RESOURCE_DESTS)


def whole_instance(args, h):
    """Use case 4.4: in a nested instance (a batch script, an alloc), ``flux run``
    with no resource option runs on the whole instance, one task per core on every
    node, as srun does in an sbatch script; at level 0 it stays one task. Sets
    ``args.nodes``/``args.ntasks``; costs one round trip, two when nested, and only
    when no resource option was given."""
    if resource_options_given(args):
        return
    if h.rpc("attr.get", {"name": "instance-level"}).get()["value"] in ("0", ""):
        return
    status = h.rpc("sched.resource-status", {}).get()
    from flux_launch.core.idset import IDset

    up = set(IDset(status["free"]["ranks"])) | set(IDset(status["allocated"]["ranks"]))
    ncores = status["free"]["ncores"] + status["allocated"]["ncores"]
    if up and ncores:
        args.nodes, args.ntasks = len(up), max(ncores, len(up))


def jobspec(args, command=None, env=None):
    """Build the JobspecV1 for parsed ``args``.

    Raises:
        ValueError: an option's value is invalid (the message names it).
    """
    from flux_launch.job.jobspec import JobspecV1

    _check_args(args)
    ntasks = args.ntasks
    cores_per_task = args.cores_per_task
    gpus_per_task = args.gpus_per_task
    if args.tasks_per_node is not None:
        if not args.nodes:
            raise ValueError("--tasks-per-node needs -N/--nodes")
        if args.ntasks is not None:
            raise ValueError("--tasks-per-node can't be used with -n/--ntasks (use one or the other)")
        ntasks = args.tasks_per_node * args.nodes
    if args.cores:
        if ntasks is None:
            ntasks = args.cores
        if args.cores % ntasks:
            raise ValueError(f"--cores={args.cores} is not a multiple of the {ntasks} tasks")
        cores_per_task = args.cores // ntasks
    if ntasks is None:
        ntasks = args.nodes or 1
    if args.gpus_per_node:
        if not args.nodes:
            raise ValueError("--gpus-per-node needs -N/--nodes")
        per_node = max(1, ntasks // args.nodes)
        if args.gpus_per_node % per_node:
            raise ValueError(f"--gpus-per-node={args.gpus_per_node} does not divide among the {per_node} "
                             "tasks of each node")
        gpus_per_task = args.gpus_per_node // per_node
    # As flux-core's commands do: -N without -n (one task per node, or
    # --tasks-per-node) asks for whole nodes.
    exclusive = args.exclusive or (args.nodes is not None and args.ntasks is None and not args.cores)
    js = JobspecV1.from_command(command or args.command, num_tasks=ntasks, cores_per_task=cores_per_task,
                                gpus_per_task=gpus_per_task, num_nodes=args.nodes, exclusive=exclusive)
    if args.input:
        ranks = input_ranks(args.input)
        if ranks is None:
            path = os.path.abspath(args.input)
            if not os.path.exists(path):
                raise ValueError(f"--input {args.input}: no such file (give a file, or task ranks such as 0-3)")
            if os.path.isdir(path):
                raise ValueError(f"--input {args.input}: is a directory")
            js.input = path
        elif ranks != "all":
            from flux_launch.core.idset import IDset

            last = max(IDset(ranks))
            if last >= ntasks:
                raise ValueError(f"--input={args.input}: task {last} does not exist (the job has {ntasks} "
                                 f"task{'s' if ntasks > 1 else ''}: 0-{ntasks - 1})")
    return apply_common(js, args, env)


def apply_common(js, args, env=None):
    """Set what the options of ``add_common_options`` (and -u, -l) ask on ``js``;
    returns it.

    Raises:
        ValueError: an option's value is invalid (the message names it).
    """
    js.environment = environment(args) if env is None else env
    js.cwd = args.cwd or os.getcwd()
    if args.time_limit:
        try:
            js.duration = _time_limit(args.time_limit)
        except ValueError:
            raise ValueError(f"-t/--time-limit={args.time_limit}: invalid duration (e.g. 30s, 5m, 1h)") from None
    if args.job_name:
        js.setattr("system.job.name", args.job_name)
    if args.output and args.output != "kvs":
        js.output = args.output
        js.error = args.error if args.error and args.error != "kvs" else args.output
    elif args.error and args.error != "kvs":
        js.error = args.error
    if args.queue:
        js.setattr("system.queue", args.queue)
    options = {}
    for opt in args.setopt:
        key, sep, value = opt.partition("=")
        if not all(key.split(".")):
            raise ValueError(f"-o/--setopt {opt!r}: bad option name (use NAME[=VALUE], e.g. verbose=1)")
        _set_path(options, key, _json_or_str(value) if sep else 1)
    if getattr(args, "unbuffered", False):  # as flux-core: no line buffering of either stream
        out = options.setdefault("output", {})
        for stream in ("stdout", "stderr"):
            out.setdefault(stream, {}).setdefault("buffer", {})["type"] = "none"
    if getattr(args, "label_io", False) and (js.output or js.error):  # labels inside the --output/--error files too
        out = options.setdefault("output", {})
        for stream, path in (("stdout", js.output), ("stderr", js.error)):
            if path:
                out.setdefault(stream, {})["label"] = True
    from flux_launch.proto.shellopts import check

    try:
        check(options)
    except ValueError as exc:
        raise ValueError(f"-o {exc}") from None
    for key, value in _leaves(options):  # merged into what --output/--error set
        js.setattr_shell_option(key, value)
    for attr in args.setattr:
        key, sep, value = attr.partition("=")
        if not sep or not all(key.split(".")):
            raise ValueError(f"--setattr {attr!r}: expected KEY=VALUE (e.g. user.project=x)")
        js.setattr(key, _json_or_str(value))
    deps = list(args.dependency)
    if args.begin_time:
        from flux_launch.core import when

        try:
            deps.append(f"begin-time:{when.parse(args.begin_time):.3f}")
        except ValueError as exc:
            raise ValueError(f"--begin-time: {exc}") from None
    if deps:
        js.setattr("system.dependencies", _dependencies(js, deps))
    return js


def _dependencies(js, uris):
    """``attributes.system.dependencies`` with those of ``--dependency=SCHEME:VALUE``
    (RFC 26) appended.

    Raises:
        ValueError: a dependency without a value, or of an unknown scheme.
    """
    from flux_launch.proto.jobspec import DEPENDENCY_SCHEMES

    deps = js._get("system.dependencies") or []
    if not isinstance(deps, list):
        raise ValueError("-S dependencies: must be a list of {scheme, value} (RFC 26)")
    deps = list(deps)
    for uri in uris:
        scheme, _, value = uri.partition(":")
        if not value and scheme != "singleton":
            raise ValueError(f"--dependency={uri}: expected SCHEME:JOBID (e.g. afterok:JOBID, "
                             "afterok:name=JOBNAME, singleton)")
        if scheme not in DEPENDENCY_SCHEMES:
            raise ValueError(f"--dependency={uri}: unknown scheme {scheme!r} (use {', '.join(DEPENDENCY_SCHEMES)})")
        deps.append({"scheme": scheme, "value": value})
    return deps


def _time_limit(text):
    """``-t MIN|FSD`` as flux-core reads it: a bare number is minutes (``-t 5`` is
    5m), anything else a Flux standard duration."""
    try:
        minutes = float(text)
    except ValueError:
        return text
    # inf and nan stay as they are: the FSD parser takes inf and refuses nan
    return f"{text}m" if minutes - minutes == 0 else text


def input_ranks(value):
    """The task ranks of ``--input=RANKS`` (an idset or ``all``), or None for a file."""
    from flux_launch.core.idset import IDset

    if value == "all":
        return "all"
    try:
        return str(IDset(value))
    except ValueError:
        return None


def flags(args):
    """Submit flags from ``--flags``.

    Raises:
        ValueError: an unknown flag.
    """
    out = {}
    for flag in args.flags.split(",") if args.flags else ():
        if flag not in SUBMIT_FLAGS:
            raise ValueError(f"--flags: unknown flag {flag!r} (use waitable, debug, novalidate)")
        out[flag] = True
    return out


_URGENCY_NAMES = {"default": URGENCY_DEFAULT, "hold": URGENCY_HOLD, "expedite": URGENCY_EXPEDITE}


def urgency(args):
    """The ``--urgency``: 0-31 or one of flux-core's names (``default`` 16, ``hold`` 0,
    ``expedite`` 31).

    Raises:
        ValueError: anything else.
    """
    value = args.urgency
    if isinstance(value, int):
        number = value
    elif value in _URGENCY_NAMES:
        return _URGENCY_NAMES[value]
    else:
        try:
            number = int(value)
        except ValueError:
            number = -1
    if not 0 <= number <= 31:
        raise ValueError(f"--urgency={value}: use an integer 0-31, default, hold or expedite")
    return number


def colocate(args, h):
    """``flux run --colocate=JOBID [--tasks-per-node=K | --per-task]`` (beyond
    flux-core, built on its alloc-bypass): the tool's jobspec, on exactly the R of
    the caller's running job JOBID, the scheduler bypassed. One task per node of
    the target, K with ``--tasks-per-node``, or with ``--per-task`` as many on each
    node as the target has there (its resources, task count and ``per-resource``
    copied: the shell then computes the target's very task map). The tasks get
    ``FLUX_TARGET_JOBID``.

    Raises:
        ValueError: a bad job id, resource options that cannot apply, a job of
            another user.
        OSError: the job is unknown or not running.
    """
    from flux_launch.core.jobid import JobID

    for opt, dest in (("-n/--ntasks", "ntasks"), ("-N/--nodes", "nodes"), ("--cores", "cores"),
                      ("-g/--gpus-per-task", "gpus_per_task"), ("--gpus-per-node", "gpus_per_node")):
        if getattr(args, dest) is not None:
            raise ValueError(f"--colocate: {opt} does not apply: the tool runs on the target's nodes "
                             "(use --tasks-per-node=K or --per-task)")
    if args.per_task and args.tasks_per_node is not None:
        raise ValueError("--per-task and --tasks-per-node: use one or the other")
    try:
        jid = JobID(args.colocate)
    except ValueError:
        raise ValueError(f"--colocate={args.colocate}: not a job id") from None
    target = h.rpc("job-manager.target", {"id": int(jid)}).get()
    if target["userid"] != os.getuid():
        raise ValueError(f"--colocate: job {jid} belongs to uid {target['userid']}: a tool may only join "
                         "your own jobs")
    nnodes = len(target["ranks"])
    per_node = args.tasks_per_node or 1
    args.tasks_per_node = None
    args.nodes, args.ntasks = nnodes, nnodes
    js = jobspec(args)
    if args.per_task:
        tjs = target["jobspec"]
        js.jobspec["resources"] = tjs["resources"]
        js.jobspec["tasks"][0]["count"] = tjs["tasks"][0]["count"]
        per_resource = tjs.get("attributes", {}).get("system", {}).get("shell", {}).get("options", {}).get(
            "per-resource")
        if per_resource is not None:
            js.setattr_shell_option("per-resource", per_resource)
    else:
        js.setattr_shell_option("per-resource", {"type": "node", "count": per_node})
    js.setattr("system.alloc-bypass.R", target["R"])
    js.environment = dict(js.environment or {}, FLUX_TARGET_JOBID=str(jid))
    return js
