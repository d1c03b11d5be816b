"""A JobSpec NG document (seed 002) as a plan: the units to submit or run, in an
order where each comes after what it depends on.

A level (the document's top, or a group's tasks) holds units:

- a **job** task: ``replicas`` jobs (Jobspec V1) of its command on its resources;
- a **group**: one ``flux batch`` job (a nested instance) whose script submits the
  group's tasks there (``flux job submit --wait`` of the group's own document) and
  waits for them; groups not named by a ``group:`` task are top-level units;
- a **local** task: a command the submitting command runs itself, in order;
- a **stage** task (``steps`` and no command): its files go into the tmpdir of
  every job of the level.

Resources: a task names an entry of the top-level ``resources`` (``a|b``: the
first the instance can run), gives its own, or inherits its group's; a top-level
task without any gets ``flux submit``'s default (one core). A group without
resources gets the sum of its tasks' nodes. ``node[N]`` without a slot becomes
``node[N]>slot>...`` (one task per node), a bare ``core``/``gpu`` a slot of them;
``cores``/``nodes``/``gpus`` are read as the singular. Attributes (duration,
environment, cwd, watch) and ``requires`` go from the top to the group to the
task, the innermost winning; a task's duration may not exceed its group's.
``depends_on`` names tasks (or groups) of the same level: each dependency is an
``afterok`` on every replica. The tasks after a local task (in document order)
wait for it too, as the seed's "tasks are run in the order provided".
"""

import os
import shlex
import stat

from flux_launch.job.ng.schema import NGError, check

_ALIASES = {"cores": "core", "nodes": "node", "gpus": "gpu", "slots": "slot", "sockets": "socket"}


class Unit:
    """One entry of a level: ``kind`` is job, group, local or stage."""

    def __init__(self, kind, path, name, deps, replicas=1):
        self.kind, self.path, self.name = kind, path, name
        self.dep_names = deps  # [(path of the entry, name)]
        self.deps = []  # the Units
        self.replicas = replicas
        self.alternatives = []  # job/group: [V1 jobspec dict], tried in order
        self.command = None  # local: argv
        self.env = None  # local: environment
        self.cwd = None
        self.watch = False
        self.files = {}  # stage: RFC 37 entries

    def __repr__(self):
        return f"Unit({self.kind}, {self.path}, {self.name!r})"


class Plan:
    """The units of one level in dependency order (document order otherwise)."""

    def __init__(self, units):
        self.units = units

    def jobs(self):
        return [u for u in self.units if u.kind in ("job", "group")]


def _duration(value, where):
    if isinstance(value, dict):
        value = value["duration"]
    if isinstance(value, (int, float)):
        return float(value)
    from flux_launch.core import fsd

    try:
        return fsd.parse(value)
    except ValueError:
        raise NGError(f"{where}: invalid duration {value!r} (e.g. 300s, 5m, 1.5h)") from None


def _vertex(r):
    t = _ALIASES.get(r["type"], r["type"])
    v = {"type": t, "count": r.get("count", 1)}
    if r.get("with"):
        v["with"] = [_vertex(c) for c in r["with"]]
    if r.get("exclusive"):
        v["exclusive"] = True
    if t == "slot":
        v["label"] = r.get("label", "task")
        kids = v.setdefault("with", [])
        if not any(k["type"] == "core" for k in kids):  # RFC 25: a slot holds cores
            kids.append({"type": "core", "count": 1})
    return v


def _has_slot(v):
    return v["type"] == "slot" or any(_has_slot(c) for c in v.get("with", ()))


def v1_resources(r):
    """V1 resources (a list) and the slot label for a NG resource mapping."""
    v = _vertex(r)
    if _has_slot(v):
        label = _find_label(v)
        return [v], label
    if v["type"] == "node":
        inner = v.pop("with", None) or [{"type": "core", "count": 1}]
        if not any(k["type"] == "core" for k in inner):
            inner.append({"type": "core", "count": 1})
        v["with"] = [{"type": "slot", "count": 1, "label": "task", "with": inner}]
        return [v], "task"
    inner = [v] if v["type"] == "core" else [v, {"type": "core", "count": 1}]
    return [{"type": "slot", "count": 1, "label": "task", "with": inner}], "task"


def _find_label(v):
    if v["type"] == "slot":
        return v["label"]
    return next(_find_label(c) for c in v.get("with", ()) if _has_slot(c))


def shape(r):
    """``(nodes, cores per node, gpus per node)`` a NG resource mapping asks for."""
    v = v1_resources(r)[0][0]

    def total(vertex, kind):
        if vertex["type"] == kind:
            return vertex["count"]
        return vertex["count"] * sum(total(c, kind) for c in vertex.get("with", ()))

    if v["type"] == "node":
        return v["count"], sum(total(c, "core") for c in v["with"]), sum(total(c, "gpu") for c in v["with"])
    return 0, total(v, "core"), total(v, "gpu")


class _Builder:
    """The checks and translation of one document, level by level."""

    def __init__(self, doc, base_dir, env, cwd):
        check(doc)
        self.doc = doc
        self.base_dir = base_dir
        self.env = dict(os.environ if env is None else env)
        self.cwd = cwd or os.getcwd()
        self.named = doc.get("resources") or {}
        self.groups = {}
        for i, g in enumerate(doc.get("groups") or ()):
            if g["name"] in self.groups:
                raise NGError(f"groups[{i}].name: a second group named {g['name']!r}")
            self.groups[g["name"]] = (i, g)
        self.referenced = {}
        for i, g in self.groups.values():
            for j, t in enumerate(g["tasks"]):
                if "group" in t:
                    self._ref(t["group"], f"groups[{i}].tasks[{j}].group")
        for j, t in enumerate(doc.get("tasks") or ()):
            if "group" in t:
                self._ref(t["group"], f"tasks[{j}].group")
        self._group_cycles()
        top = doc.get("duration")
        self.top_duration = _duration(top, "duration") if top is not None else None

    def _ref(self, name, where):
        if name not in self.groups:
            known = ", ".join(self.groups) or "none"
            raise NGError(f"{where}: no group named {name!r} (groups: {known})")
        self.referenced.setdefault(name, where)

    def _group_cycles(self):
        def visit(name, trail):
            if name in trail:
                cycle = " -> ".join([*trail[trail.index(name):], name])
                i = self.groups[trail[-1]][0]
                raise NGError(f"groups[{i}]: groups include each other: {cycle}")
            _i, g = self.groups[name]
            for t in g["tasks"]:
                if "group" in t:
                    visit(t["group"], [*trail, name])
        for name in self.groups:
            visit(name, [])

    # ---- resources and attributes ------------------------------------------------------

    def _alternatives(self, spec, where, inherit):
        """The NG resource mappings a task/group may use, in order ([None]: default)."""
        if spec is None:
            return inherit if inherit is not None else [None]
        if isinstance(spec, dict):
            return [spec]
        out = []
        for name in spec.split("|"):
            name = name.strip()
            if name not in self.named:
                known = ", ".join(self.named) or "none defined"
                raise NGError(f"{where}.resources: no resources named {name!r} (top-level resources: {known})")
            out.append(self.named[name])
        return out

    def _attrs(self, outer, item):
        attrs = dict(outer)
        mine = item.get("attributes") or {}
        if "environment" in mine:
            attrs["environment"] = {**outer.get("environment", {}), **mine["environment"]}
        for key in ("duration", "cwd", "watch"):
            if key in mine:
                attrs[key] = mine[key]
        return attrs

    def _jobspec(self, resource, command, name, attrs, requires, files, where, limit):
        resources, label = v1_resources(resource) if resource else (
            [{"type": "slot", "count": 1, "label": "task", "with": [{"type": "core", "count": 1}]}], "task")
        env = dict(self.env)
        env.update({k: str(v).lower() if isinstance(v, bool) else str(v)
                    for k, v in (attrs.get("environment") or {}).items()})
        duration = 0.0
        if "duration" in attrs:
            duration = _duration(attrs["duration"], f"{where}.attributes.duration")
            if limit and duration > limit:
                raise NGError(f"{where}.attributes.duration: {duration:g}s is longer than its group's {limit:g}s")
        elif limit:
            duration = limit
        system = {"duration": duration, "environment": env, "cwd": attrs.get("cwd") or self.cwd,
                  "job": {"name": name}}
        if files:
            system["files"] = dict(files)
        js = {"version": 1, "resources": resources,
              "tasks": [{"command": command, "slot": label, "count": {"per_slot": 1}}],
              "attributes": {"system": system}}
        if requires:
            js["attributes"]["user"] = {"requires": requires}
        return js

    def _stage(self, step, where):
        path = os.path.join(self.base_dir, os.path.expanduser(step["path"]))
        files, size = {}, 0
        root = os.path.basename(os.path.normpath(path))
        try:
            st = os.stat(path)
            if stat.S_ISDIR(st.st_mode):
                files[root] = {"mode": stat.S_IFDIR | 0o700}
                for dirpath, dirs, names in os.walk(path):
                    rel = os.path.relpath(dirpath, os.path.dirname(os.path.normpath(path)))
                    for d in dirs:
                        files[f"{rel}/{d}"] = {"mode": stat.S_IFDIR | 0o700}
                    for n in names:
                        size += self._add_file(files, f"{rel}/{n}", os.path.join(dirpath, n))
            else:
                size += self._add_file(files, root, path)
        except OSError as exc:
            raise NGError(f"{where}.path: cannot stage {step['path']}: {exc.strerror}") from None
        if size > 64 << 20:
            raise NGError(f"{where}.path: {size >> 20} MB is too much to stage with the job (limit 64 MB)")
        return files

    @staticmethod
    def _add_file(files, name, path):
        with open(path, "rb") as f:
            raw = f.read()
            mode = os.fstat(f.fileno()).st_mode
        try:
            files[name] = {"mode": mode, "data": raw.decode("utf-8"), "encoding": "utf-8"}
        except UnicodeDecodeError:
            import base64

            files[name] = {"mode": mode, "data": base64.b64encode(raw).decode("ascii"), "encoding": "base64"}
        return len(raw)

    # ---- a level ---------------------------------------------------------------------

    def level(self, items, prefix, inherit, outer_attrs, outer_requires, limit, group_names=()):
        """A Plan of ``items`` (a tasks list at ``prefix``, plus top-level groups)."""
        units, by_name, stage_files = [], {}, {}
        entries = [(f"{prefix}tasks[{j}]", t, None) for j, t in enumerate(items)]
        entries += [(f"groups[{self.groups[n][0]}]", None, n) for n in group_names]
        for where, task, gname in entries:
            unit = self._unit(where, task, gname, inherit, outer_attrs, outer_requires, limit)
            if unit.name is not None:
                if unit.name in by_name and by_name[unit.name].kind != "stage":
                    raise NGError(f"{where}.name: a second task named {unit.name!r} here")
                by_name[unit.name] = unit
            if unit.kind == "stage":
                stage_files.update(unit.files)
            units.append(unit)
        for unit in units:
            for dep_where, name in unit.dep_names:
                if name not in by_name:
                    known = ", ".join(sorted(by_name)) or "none"
                    raise NGError(f'{dep_where}: no task named "{name}" (named here: {known})')
                if by_name[name] is unit:
                    raise NGError(f"{dep_where}: a task cannot depend on itself")
                unit.deps.append(by_name[name])
        _locals_block_what_follows(units)
        if stage_files:
            for unit in units:
                for js in unit.alternatives:
                    js["attributes"]["system"].setdefault("files", {}).update(stage_files)
        return Plan(_toposort(units))

    def _unit(self, where, task, gname, inherit, outer_attrs, outer_requires, limit):
        if gname is not None:  # a top-level group
            i, g = self.groups[gname]
            deps = [(f"{where}.depends_on[{k}]", d) for k, d in enumerate(g.get("depends_on") or ())]
            unit = Unit("group", where, gname, deps)
            self._group(unit, g, where, inherit, outer_attrs, outer_requires, limit)
            return unit
        deps = [(f"{where}.depends_on[{k}]", d) for k, d in enumerate(task.get("depends_on") or ())]
        name = task.get("name") or task.get("group")
        attrs = self._attrs(outer_attrs, task)
        requires = {**outer_requires, **(task.get("requires") or {})}
        if "group" in task:
            if "command" in task or task.get("local"):
                raise NGError(f"{where}: a task is a group or a command, not both")
            i, g = self.groups[task["group"]]
            unit = Unit("group", where, name, deps, task.get("replicas", 1))
            self._group(unit, g, f"groups[{i}]", inherit, self._attrs(attrs, g), requires, limit)
            return unit
        if "command" not in task:
            if task.get("steps"):
                unit = Unit("stage", where, name, deps)
                for k, step in enumerate(task["steps"]):
                    unit.files.update(self._stage(step, f"{where}.steps[{k}]"))
                return unit
            raise NGError(f"{where}: a task needs a command (or group: NAME, or steps)")
        command = task["command"]
        if isinstance(command, str):
            try:
                command = shlex.split(command)
            except ValueError as exc:
                raise NGError(f"{where}.command: {exc}") from None
            if not command:
                raise NGError(f"{where}.command: must not be empty")
        if task.get("local"):
            if task.get("replicas", 1) != 1 or "resources" in task:
                raise NGError(f"{where}: a local task runs once, where the workflow is submitted "
                              "(no replicas or resources)")
            unit = Unit("local", where, name, deps)
            unit.command = command
            unit.env = dict(self.env)
            unit.env.update({k: str(v) for k, v in (attrs.get("environment") or {}).items()})
            unit.cwd = attrs.get("cwd") or self.cwd
            return unit
        unit = Unit("job", where, name, deps, task.get("replicas", 1))
        unit.watch = bool(attrs.get("watch"))
        files = {}
        for k, step in enumerate(task.get("steps") or ()):
            files.update(self._stage(step, f"{where}.steps[{k}]"))
        jobname = name or os.path.basename(command[0])
        for r in self._alternatives(task.get("resources"), where, inherit):
            self._fits(r, inherit, where)
            unit.alternatives.append(self._jobspec(r, command, jobname, attrs, requires, files, where, limit))
        return unit

    def _fits(self, r, inherit, where):
        """A task in a group asks no more than the group has (seed: a subset)."""
        if r is None or not inherit or inherit[0] is None:
            return
        want, have = shape(r), shape(inherit[0])
        for k, what in enumerate(("nodes", "cores per node", "GPUs per node")):
            if have[k] and want[k] > have[k]:
                raise NGError(f"{where}.resources: asks for {want[k]} {what}, its group has {have[k]}")

    def _group(self, unit, g, where, inherit, attrs, requires, limit):
        """A group: its own level checked and planned now, then one batch jobspec
        per resource alternative carrying that level as a document."""
        attrs = self._attrs(attrs, g) if where.startswith("groups") and unit.path == where else attrs
        requires = {**requires, **(g.get("requires") or {})}
        glimit = limit
        if "duration" in attrs:
            glimit = _duration(attrs["duration"], f"{where}.attributes.duration")
            if limit and glimit > limit:
                raise NGError(f"{where}.attributes.duration: {glimit:g}s is longer than its group's {limit:g}s")
        if g.get("resources") is not None:
            alts = self._alternatives(g["resources"], where, inherit)
        else:
            alts = [self._sum(g, where, inherit)]
        for r in alts:
            self._fits(r, inherit, where)
        inner_attrs = {k: v for k, v in attrs.items() if k != "watch"}
        sub = self.level(g["tasks"], f"{where}.", [alts[0]], inner_attrs, requires, glimit)
        unit.inner = sub
        doc = self._subdoc(g, alts[0], inner_attrs, requires, glimit)
        for r in alts:
            unit.alternatives.append(self._batch(r, doc, g["name"], attrs, requires, glimit, where))

    def _sum(self, g, where, inherit):
        """A group without resources: as many nodes as its tasks ask, together."""
        nodes, cores, gpus = 0, 1, 0
        for j, t in enumerate(g["tasks"]):
            if t.get("local") or ("command" not in t and "group" not in t):
                continue
            spec = t.get("resources")
            if "group" in t and spec is None:
                spec = self.groups[t["group"]][1].get("resources")
            if spec is None:
                continue
            r = self._alternatives(spec, f"{where}.tasks[{j}]", None)[0]
            n, c, gp = shape(r)
            nodes, cores, gpus = nodes + n, max(cores, c), max(gpus, gp)
        if nodes == 0 and inherit and inherit[0] is not None:
            return inherit[0]
        spec = {"type": "node", "count": max(nodes, 1), "with": [{"type": "core", "count": cores}]}
        if gpus:
            spec["with"].append({"type": "gpu", "count": gpus})
        return spec

    def _subdoc(self, g, resource, attrs, requires, limit):
        """The group's tasks as a document of their own (what its batch submits):
        inherited resources and attributes written in, so it stands alone."""
        tasks = []
        for t in g["tasks"]:
            t = dict(t)
            if "command" in t and not t.get("local") and "resources" not in t:
                t["resources"] = resource
            a = dict(attrs)
            a.update(t.get("attributes") or {})
            if "environment" in attrs and "environment" in (t.get("attributes") or {}):
                a["environment"] = {**attrs["environment"], **t["attributes"]["environment"]}
            a.pop("cwd", None) if "cwd" not in (t.get("attributes") or {}) and "cwd" not in attrs else None
            if a and not t.get("group"):
                t["attributes"] = a
            if requires and not t.get("local"):
                t["requires"] = {**requires, **(t.get("requires") or {})}
            for step in t.get("steps") or ():
                step["path"] = os.path.join(self.base_dir, os.path.expanduser(step["path"]))
            tasks.append(t)
        doc = {"version": 1, "tasks": tasks}
        if self.named:
            doc["resources"] = self.named
        reach, todo = [], [t["group"] for t in g["tasks"] if "group" in t]
        while todo:  # the groups its tasks name, and theirs: none is a top-level unit there
            name = todo.pop(0)
            if name not in reach:
                reach.append(name)
                todo += [t["group"] for t in self.groups[name][1]["tasks"] if "group" in t]
        if reach:
            doc["groups"] = [self.groups[n][1] for n in reach]
        if limit:
            doc["duration"] = limit
        return doc

    def _batch(self, r, doc, name, attrs, requires, limit, where):
        from flux_launch.job.jobspec import JobspecV1
        from flux_launch.proto import fastjson

        script = ('#!/bin/sh\n# a JobSpec NG group: submit its tasks here and wait for them\n'
                  'exec flux job submit --wait "$1"\n')
        js = self._jobspec(r, ["true"], name, attrs, requires, None, where, limit)
        nodes = max(shape(r)[0], 1) if r else 1
        batch = JobspecV1.from_batch_command(script, name, args=["{{tmpdir}}/workflow.json"],
                                             num_slots=nodes, num_nodes=nodes)
        batch.output = batch.error = "flux-{{id}}.out"  # as flux batch's
        batch.jobspec["resources"] = js["resources"]
        batch.jobspec["tasks"][0]["slot"] = js["tasks"][0]["slot"]
        batch.jobspec["tasks"][0]["count"] = {"per_slot": 1}
        system = batch.jobspec["attributes"]["system"]
        files = system.pop("files")
        system.update(js["attributes"]["system"])
        system["files"] = {**files, "workflow.json": {"mode": stat.S_IFREG | 0o600,
                                                       "data": fastjson.dumps(doc), "encoding": "utf-8"}}
        if "user" in js["attributes"]:
            batch.jobspec["attributes"]["user"] = js["attributes"]["user"]
        return batch.jobspec


def _locals_block_what_follows(units):
    """Seed 002: tasks run (or are submitted) in the order given, and a local task
    that blocks blocks the ones after it: each unit after a local task waits for
    it, unless the local task itself waits for that unit."""
    def ancestors(unit, seen):
        for dep in unit.deps:
            if id(dep) not in seen:
                seen.add(id(dep))
                ancestors(dep, seen)
        return seen

    before = []
    for unit in units:
        for local in before:
            if local not in unit.deps and id(unit) not in ancestors(local, set()):
                unit.deps.append(local)
        if unit.kind == "local":
            before.append(unit)


def _toposort(units):
    """Units after what they depend on, else in document order; a cycle is an error
    naming it."""
    state, out = {}, []

    def visit(unit, trail):
        if state.get(id(unit)) == "done":
            return
        if state.get(id(unit)) == "open":
            names = [u.name for u in trail[trail.index(unit):]] + [unit.name]
            where = next(w for w, n in trail[-1].dep_names if n == unit.name)
            raise NGError(f"{where}: a cycle: {' -> '.join(names)}")
        state[id(unit)] = "open"
        for dep in unit.deps:
            visit(dep, [*trail, unit])
        state[id(unit)] = "done"
        out.append(unit)

    for unit in units:
        visit(unit, [])
    return out


def build(doc, base_dir=None, env=None, cwd=None):
    """The Plan of a NG document (``NGError``: one line, the path first).

    ``base_dir``: where relative stage paths start (the document's directory);
    ``env``/``cwd``: the jobs' environment and directory (default: this process's).
    """
    b = _Builder(doc, base_dir or os.getcwd(), env, cwd)
    top = [n for n in b.groups if n not in b.referenced]
    attrs = dict(doc.get("attributes") or {})
    return b.level(doc.get("tasks") or [], "", None, attrs, doc.get("requires") or {}, b.top_duration,
                   group_names=top)

