"""Job records as ``flux jobs`` and ``flux pstree`` print them (flux-core's
JobInfo and JobInfoFormat), and what ``instance.*`` fields show of a running job
that is itself an instance.

Fields: a job-list record's keys, what ``Job`` derives (``username``, ``status``,
``status_abbrev``, ``runtime``, ``contextual_time``, ``contextual_info``...),
``id.ENCODING``, ``exception.{occurred,severity,type,note}``, ``annotations.*``
(``sched.*``, ``user.*`` for short) and, for a running job that published its
``uri`` memo, ``instance.stats`` (``PD:N R:N CD:N F:N``), ``instance.stats.total``
(and ``.pending``...), ``instance.progress`` (inactive / total),
``instance.utilization``, ``instance.gpu_utilization`` (allocated / all) and
``instance.resources.{all,up,down,allocated,free}.{nnodes,ncores,ngpus}``: empty
for any other job, and for an instance that cannot be reached.

Conversions: ``!F`` (a duration such as ``8.539s``), ``!H`` (``H:MM:SS``), ``!P``
(a percentage), ``!d`` (a time: ``{t_submit!d:%b%d %R::>12}``), ``!D`` (ISO 8601).
A spec ending in ``h`` prints ``-`` for an empty value, one ending in ``+`` marks a
cut with ``+``; ``?:`` before a field drops it where it is empty for every job,
``+:`` widens it to its widest value, ``?+:`` does both (``Format.filter``).
"""

import pwd
import re
import string
import time

from flux_launch.core.jobid import JobID
from flux_launch.proto.job import PENDING, RESULT_ABBREV, RESULT_BITS, RUNNING, STATE_BITS, STATE_SINGLE, STATES

RUN = STATE_BITS["RUN"]
PENDING_BITS = sum(STATE_BITS[s] for s in PENDING)
RUNNING_BITS = sum(STATE_BITS[s] for s in RUNNING)
ALL_STATES = sum(STATE_BITS.values())
ACTIVE_BITS = ALL_STATES & ~STATE_BITS["INACTIVE"]
# -f/--filter words: a state, a group of states, or a result (job-list's bits)
FILTERS = {**{name.lower(): bit for name, bit in STATE_BITS.items()},
           "pending": PENDING_BITS, "running": RUNNING_BITS, "active": ACTIVE_BITS}
RESULT_FILTERS = {**{name.lower(): bit for name, bit in RESULT_BITS.items()}, "cancelled": RESULT_BITS["CANCELED"]}
HEADINGS = {
    "id": "JOBID", "userid": "UID", "username": "USER", "urgency": "URG", "priority": "PRI", "state": "STATE",
    "state_single": "S", "name": "NAME", "cwd": "CWD", "queue": "QUEUE", "project": "PROJECT", "bank": "BANK",
    "ntasks": "NTASKS", "ncores": "NCORES", "duration": "DURATION", "nnodes": "NNODES",
    "expiration": "EXPIRATION", "t_remaining": "T_REMAINING", "ranks": "RANKS", "nodelist": "NODELIST",
    "success": "SUCCESS", "result": "RESULT", "result_abbrev": "RS", "t_submit": "T_SUBMIT",
    "t_depend": "T_DEPEND", "t_run": "T_RUN", "t_cleanup": "T_CLEANUP", "t_inactive": "T_INACTIVE",
    "runtime": "RUNTIME", "status": "STATUS", "status_abbrev": "ST", "waitstatus": "WSTATUS", "returncode": "RC",
    "annotations": "ANNOTATIONS", "dependencies": "DEPENDENCIES", "contextual_info": "INFO",
    "contextual_time": "TIME", "inactive_reason": "INACTIVE-REASON", "sched": "SCHED", "user": "USER",
    "uri": "URI",
    "annotations.sched.t_estimate": "T_ESTIMATE", "annotations.sched.reason_pending": "REASON",
    "annotations.sched.resource_summary": "RESOURCES", "sched.t_estimate": "T_ESTIMATE",
    "sched.reason_pending": "REASON", "sched.resource_summary": "RESOURCES",
    # flux_launch's own before it followed flux-core's names: still accepted
    "exception": "EXCEPTION", "exception_occurred": "EXCEPTION", "waitable": "WAITABLE",
    "instance.stats": "STATS", "instance.stats.total": "NJOBS", "instance.utilization": "CORE%",
    "instance.gpu_utilization": "GPU%", "instance.progress": "PROG",
}
for _enc in ("dec", "hex", "f58", "f58plain", "emoji", "kvs", "words", "dothex"):
    HEADINGS[f"id.{_enc}"] = "JOBID"
for _key in ("occurred", "severity", "type", "note"):
    HEADINGS[f"exception.{_key}"] = f"EXCEPTION-{_key.upper()}"
for _key in ("pending", "running", "successful", "failed", "canceled", "timeout", "inactive", "active"):
    HEADINGS[f"instance.stats.{_key}"] = f"STATS.{_key.upper()}"
for _state, _title in (("all", None), ("up", "UP"), ("down", "DOWN"), ("allocated", "USED"), ("free", "FREE")):
    for _kind, _all in (("nnodes", "NODES"), ("ncores", "CORES"), ("ngpus", "GPUS")):
        HEADINGS[f"instance.resources.{_state}.{_kind}"] = _title or _all
OPEN_FIELDS = ("annotations.", "sched.", "user.")  # any key below these (the scheduler's, the user's)
DASHED = ("", "0", "0.0", "0s", "0:00:00", "None")  # what a spec ending in h prints as -
BLANK = ("", "0s", "0.0", "0:00:00")  # what ?: counts as empty
_TYPES = tuple("bcdoxXeEfFgGn%")  # a spec's last character that asks for a number


def parse_filter(text):
    """``(states, results)``: the job-list bits of -f/--filter's comma-separated words.

    Raises:
        ValueError: a word that is neither a state nor a result.
    """
    states = results = 0
    for word in filter(None, text.lower().split(",")):
        if word in FILTERS:
            states |= FILTERS[word]
        elif word in RESULT_FILTERS:
            results |= RESULT_FILTERS[word]
        else:
            raise ValueError(f"-f/--filter: invalid state or result {word!r} (use e.g. pending,running,inactive "
                             "or completed,failed,canceled,timeout)")
    return states, results


def order(info):
    """flux-core's order of a job list: pending (by priority, oldest first),
    running, inactive (newest first)."""
    state = info.get("state", 1)
    if state & PENDING_BITS or state == 1:
        return (0, -info.get("priority", 0), info.get("id", 0))
    if state & RUNNING_BITS:
        return (1, -info.get("t_run", 0), -info.get("id", 0))
    return (2, -info.get("t_inactive", 0), -info.get("id", 0))


# ---- values -----------------------------------------------------------------------

class _Empty:
    """A missing value: every attribute is missing too; formats as empty."""

    def __getattr__(self, name):
        return self

    def __str__(self):
        return ""

    def __format__(self, spec):
        return format("", spec[:-1] if spec[-1:] in _TYPES else spec)


EMPTY_VALUE = _Empty()


class _Obj:
    """A dict seen through attributes (missing keys: empty)."""

    def __init__(self, d):
        self._d = d

    def __getattr__(self, name):
        v = self._d.get(name, EMPTY_VALUE) if isinstance(self._d, dict) else EMPTY_VALUE
        return _Obj(v) if isinstance(v, dict) else v

    def __str__(self):
        return str(self._d) if self._d else ""

    def __format__(self, spec):
        return format(str(self), spec)


class _ID:
    """``id`` and its encodings (``id.f58``...); the stand-in root's are ``.``."""

    def __init__(self, value):
        self.value = None if value is None else JobID(value)

    def __getattr__(self, enc):
        if enc.startswith("_"):
            raise AttributeError(enc)
        return "." if self.value is None else self.value.encode(enc)

    def __str__(self):
        return "." if self.value is None else str(self.value)

    def __format__(self, spec):
        return format("." if self.value is None else self.value, spec)


class _Exception:
    """``exception.occurred``/``.severity``/``.type``/``.note`` of a record."""

    def __init__(self, info):
        self.occurred = info.get("exception_occurred", "")
        self.severity = info.get("exception_severity", "")
        self.type = info.get("exception_type", "")
        self.note = info.get("exception_note", "")

    def __format__(self, spec):
        return format(str(self.occurred), spec)


class Stats:
    """An instance's job counts (``PD:N R:N CD:N F:N``)."""

    def __init__(self, jobs):
        self.pending = self.running = self.successful = self.failed = 0
        self.canceled = self.timeout = self.inactive = 0
        for job in jobs:
            state = job.get("state", 0)
            if state & PENDING_BITS:
                self.pending += 1
            elif state & RUNNING_BITS:
                self.running += 1
            elif state == STATE_BITS["INACTIVE"]:
                self.inactive += 1
                if job.get("success"):
                    self.successful += 1
                elif job.get("exception_type") == "cancel" and job.get("exception_occurred"):
                    self.canceled += 1
                elif job.get("exception_type") == "timeout" and job.get("exception_occurred"):
                    self.timeout += 1
                else:
                    self.failed += 1
        self.total = len(jobs)
        self.active = self.total - self.inactive

    def __str__(self):
        return f"PD:{self.pending} R:{self.running} CD:{self.successful} F:{self.failed}"

    def __format__(self, spec):
        return format(str(self), spec)


class Instance:
    """What ``instance.*`` fields show of a running instance, fetched on ``h``.

    Raises:
        OSError: the instance did not answer.
    """

    def __init__(self, h):
        jobs = h.rpc("job-list.list", {"states": 0, "results": 0, "userid": -1})
        status = h.rpc("sched.resource-status")  # both asked before either answer is awaited
        self.stats = Stats(jobs.get()["jobs"])
        self.resources = _Obj(_resources(status.get()))
        all_, gpus = self.resources.all.ncores, self.resources.all.ngpus
        self.utilization = self.resources.allocated.ncores / all_ if all_ else ""
        self.gpu_utilization = self.resources.allocated.ngpus / gpus if gpus else ""
        self.progress = self.stats.inactive / self.stats.total if self.stats.total else ""


def _resources(status):
    """``{all, up, down, allocated, free}: {nnodes, ncores, ngpus}`` from ``sched.resource-status``."""
    from flux_launch.core.idset import decode

    ranks = {k: set(decode(status.get(k, {}).get("ranks", "") or "")) for k in ("free", "allocated", "down")}
    out = {}
    for name, parts in (("all", ("free", "allocated", "down")), ("up", ("free", "allocated")),
                        ("down", ("down",)), ("allocated", ("allocated",)), ("free", ("free",))):
        out[name] = {"nnodes": len(set().union(*(ranks[p] for p in parts))),
                     "ncores": sum(status.get(p, {}).get("ncores", 0) for p in parts),
                     "ngpus": sum(status.get(p, {}).get("ngpus", 0) for p in parts)}
    return out


def connect(uri):
    """A handle on the instance at ``uri``.

    Raises:
        OSError: nothing answers there.
    """
    from flux_launch.client.handle import Flux

    return Flux(uri)


def instance(h):
    """``Instance(h)``, or None when the instance does not answer."""
    try:
        return Instance(h)
    except OSError:
        return None


def fetch_instances(jobs):
    """Fetch ``job.instance`` for each job that is a running instance (one that
    cannot be reached keeps None: its ``instance.*`` fields print empty)."""
    for job in jobs:
        if job.instance is None and job.is_parent:
            try:
                with connect(job.uri) as h:
                    job.instance = instance(h)
            except OSError:
                pass


# ---- a job --------------------------------------------------------------------------

class Job:
    """One job-list record with the fields formats name; ``instance``: what
    ``instance.*`` shows (None: empty); ``root``: the enclosing instance's
    stand-in (its ``id`` is ``.``)."""

    _users = {}

    def __init__(self, info, instance=None, root=False):
        self.info = info
        self.instance = instance
        self.root = root

    @property
    def state(self):
        return STATES[(self.info.get("state") or 1).bit_length() - 1]

    @property
    def uri(self):
        return ((self.info.get("annotations") or {}).get("user") or {}).get("uri")

    @property
    def is_parent(self):
        """A running job that is an instance (it published its URI)."""
        return bool(self.uri) and self.info.get("state") == RUN

    def get(self, name):
        """The value of field ``name`` (its first part: ``id`` of ``id.f58``)."""
        info = self.info
        if name == "id":
            return _ID(None if self.root else info["id"])
        if name == "instance":
            return self.instance if self.instance is not None else EMPTY_VALUE
        if name == "exception":
            return _Exception(info)
        if name == "username":
            uid = info.get("userid", 0)
            if uid not in self._users:
                try:
                    self._users[uid] = pwd.getpwuid(uid).pw_name
                except KeyError:
                    self._users[uid] = str(uid)
            return self._users[uid]
        if name in ("annotations", "sched", "user"):
            ann = info.get("annotations") or {}
            return _Obj(ann if name == "annotations" else ann.get(name, {}))
        if name == "uri":
            return self.uri or ""
        state = self.state
        if name == "state":
            return state
        if name == "state_single":
            return STATE_SINGLE.get(state, "I")
        if name in ("status", "status_abbrev"):
            if state == "INACTIVE":
                res = info.get("result_str", "")
                return RESULT_ABBREV.get(res, res) if name == "status_abbrev" else res
            return STATE_SINGLE[state] if name == "status_abbrev" else state
        if name == "result":
            return info.get("result_str", "")
        if name == "result_abbrev":
            return RESULT_ABBREV.get(info.get("result_str", ""), "")
        if name == "runtime":
            return (info.get("t_cleanup") or time.time()) - info["t_run"] if info.get("t_run") else 0.0
        if name == "contextual_time":  # pending: the time limit asked for
            return info.get("duration", 0.0) if state in PENDING else self.get("runtime")
        if name == "t_remaining":
            exp = info.get("expiration", 0)
            return max(0.0, exp - time.time()) if exp and state in RUNNING else 0.0
        if name == "contextual_info":
            if state in PENDING or state == "NEW":
                if state == "SCHED" and info.get("priority") == 0:
                    return "held"
                if state == "DEPEND":  # flux-core: the dependencies still waited for
                    return "depends:" + ",".join(info.get("dependencies") or ())
                return "priority-wait" if state == "PRIORITY" else ""
            return info.get("nodelist", "") or ""
        if name == "dependencies":
            return ",".join(info.get("dependencies") or ())
        if name == "inactive_reason":
            return _inactive_reason(info) if state == "INACTIVE" else ""
        return info.get(name, "")


def _inactive_reason(info):
    """Why an inactive job ended, in flux-core's words (``Canceled: NOTE``, ``Exit 2``...)."""
    from flux_launch.job.info import inactive_reason

    return inactive_reason(info.get("result_str", ""), info.get("returncode"), _Exception(info))


# ---- formats ------------------------------------------------------------------------

def fsd(secs):
    """flux-core's short duration: ``8.539s``, ``10.68s``, ``2.5m``..."""
    if secs < 1.0e-3:
        return "0s"
    if secs < 10.0:
        return "%.03fs" % secs
    for limit, div, unit in ((60.0, 1.0, "s"), (3600.0, 60.0, "m"), (86400.0, 3600.0, "h")):
        if secs < limit:
            return "%.4g%s" % (secs / div, unit)
    return "%.4gd" % (secs / 86400.0)


class _Time:
    def __init__(self, t):
        self.t = t


class _Formatter(string.Formatter):
    def get_field(self, field_name, args, kwargs):
        first, _, rest = field_name.partition(".")
        obj = args[0].get(first)
        for part in filter(None, rest.split(".")):
            obj = getattr(obj, part)
        return obj, first

    def convert_field(self, value, conversion):
        if conversion in ("F", "H", "P", "d", "D") and (isinstance(value, _Empty) or value == ""):
            return _Time(0) if conversion == "d" else ""
        if conversion == "F":
            return fsd(float(value))
        if conversion == "H":
            value = float(value)
            value = 1 if 0 < value < 1 else round(value)
            return f"{value // 3600}:{value % 3600 // 60:02d}:{value % 60:02d}"
        if conversion == "P":
            value = float(value) * 100
            return f"{value:.2f}%" if 0 < value < 1 else f"{value:.3g}%"
        if conversion == "d":
            return _Time(float(value))
        if conversion == "D":
            return time.strftime("%FT%T", time.localtime(float(value))) if value else ""
        return super().convert_field(value, conversion)

    def format_field(self, value, spec):
        if isinstance(value, _Time):
            fmt, _, spec = spec.partition("::")
            value = time.strftime(fmt or "%FT%T", time.localtime(value.t)) if value.t else ""
        if not spec:
            return format(value)
        mark = spec[-1] == "+"
        if mark:
            spec = spec[:-1]
        if spec[-1:] == "h":
            spec = spec[:-1]
            if str(value) in DASHED:
                value = "-"
        numeric = spec[-1:] in _TYPES
        if isinstance(value, int) and not isinstance(value, bool) and "." in spec and not numeric:
            value = str(value)  # {ntasks:>6.6}: a width and a cut, as for text
        if isinstance(value, str):
            if numeric:  # an empty numeric field: blank
                spec = spec[:-1]
            cut = spec.rpartition(".")[2] if mark and "." in spec else ""
            if cut.isdigit() and 0 < int(cut) < len(value):
                value = value[:int(cut) - 1] + "+"
        return format(value, spec)


class UnknownField(ValueError):
    """A format names a field no job has (``field``: its name)."""

    def __init__(self, field):
        super().__init__(f"Unknown format field: {field}")
        self.field = field


def known(field):
    """Whether ``field`` (``id.f58``, ``instance.stats``...) is one a format may name."""
    return field in HEADINGS or (field.startswith(OPEN_FIELDS) and len(field.split(".")) > 1
                                 and all(field.split(".")))


def heading(field):
    """The column title of ``field``: flux-core's (``NJOBS``, ``CORE%``...)."""
    if field in HEADINGS:
        return HEADINGS[field]
    if field.startswith("annotations."):
        return field[len("annotations."):].upper()
    return field.upper()


class Format:
    """A job format: ``format(job)``, its ``header()``, ``filter(jobs)``.

    Raises:
        UnknownField: a field no job has.
        ValueError: ``invalid format FMT: why`` (a malformed format, a bad spec,
            conversion or attribute).
    """

    def __init__(self, fmt):
        self.fmt = fmt
        try:
            parsed = list(string.Formatter().parse(fmt))
        except ValueError as exc:
            raise ValueError(f"invalid format {fmt!r}: {exc}") from None
        # (text, field, spec, conversion, sentinel): the sentinel before a field, without its
        # colon: ? (drop the column when empty), + (widen it to fit), ?+ (both), or ''
        self.parts = []
        for text, field, spec, conv in parsed:
            mark = next((m for m in ("?+", "+", "?") if field is not None and text.endswith(m + ":")), "")
            self.parts.append((text[:-len(mark) - 1] if mark else text, field, spec or "", conv, mark))
        self.fields = [p[1] for p in self.parts if p[1] is not None]
        for field in self.fields:
            if not known(field):
                raise UnknownField(field)
        self.need_instance = any(f.startswith("instance.") for f in self.fields)
        self._f = _Formatter()
        try:  # a bad attribute, spec or conversion: refused now, not on the first job
            self.format(Job({"id": 1, "state": RUN, "name": "x", "userid": 0, "ntasks": 1, "nnodes": 1,
                             "t_submit": 1.0, "t_run": 1.0, "priority": 16, "urgency": 16}))
        except (AttributeError, ValueError, TypeError, KeyError, IndexError) as exc:
            raise ValueError(f"invalid format {fmt!r}: {exc}") from None

    def format(self, job):
        """``job`` in this format.

        Raises:
            ValueError, AttributeError, TypeError: a spec, conversion or attribute
                this job's values refuse (the constructor tried one job).
        """
        f, out = self._f, []
        for text, field, spec, conv, _o in self.parts:
            out.append(text)
            if field is not None:
                out.append(f.format_field(self._value(field, conv, job), spec))
        return "".join(out)

    def value(self, job, field):
        """The value of ``field`` for ``job`` before any conversion, as --sort
        compares it: a number, a string, or '' when the job has none."""
        value = self._f.get_field(field, (job,), None)[0]
        if isinstance(value, _ID):
            return int(value.value) if value.value is not None else ""
        if isinstance(value, (int, float, str)):
            return value
        return str(value)

    def _value(self, field, conv, job):
        return self._f.convert_field(self._f.get_field(field, (job,), None)[0], conv)

    def _blank(self, field, conv, job):
        value = self._value(field, conv, job)
        return (not value.t) if isinstance(value, _Time) else str(value).strip() in BLANK

    def filter(self, jobs, header=True):
        """This format without its ``?:`` fields that are empty for every job in
        ``jobs``, and its ``+:`` fields as wide as their widest value (or heading,
        with ``header``; never narrower than their spec says)."""
        out = []
        first = False  # the first column went: so does the space after it
        for text, field, spec, conv, mark in self.parts:
            if first and text.startswith(" "):
                text = text[1:]
            first = False
            if "?" in mark and all(self._blank(field, conv, j) for j in jobs):
                first = not out  # as flux-core, the column goes with the text before it
                continue
            if "+" in mark:
                spec = self._widen(field, spec, conv, jobs, header)
            out.append(text.replace("{", "{{").replace("}", "}}") + _field(field, spec, conv))
        return Format("".join(out))

    def _widen(self, field, spec, conv, jobs, header):
        """``spec`` with its width (and a string's precision) raised to what
        ``field`` needs for ``jobs`` (flux-core's ``+:``)."""
        head, sep, spec = spec.rpartition("::") if "::" in spec else ("", "", spec)
        m = _SPEC.fullmatch(spec)
        if m is None:
            return head + sep + spec
        width = max(int(m["width"] or 0), len(heading(field)) if header else 0,
                    *(0 if self._blank(field, conv, j) else len(self._f.format_field(self._value(field, conv, j),
                                                                                   head + sep)) for j in jobs))
        prec = m["prec"]
        if prec and int(prec) < width and m["type"] in ("", "s"):
            prec = str(width)
        return head + sep + m["pre"] + str(width) + m["group"] + (f".{prec}" if prec else "") + m["type"] + m["rest"]

    def header(self):
        out = []
        for text, field, spec, conv, _o in self.parts:
            out.append(text)
            if field is None:
                continue
            if conv == "d":
                spec = spec.partition("::")[2]
            spec = re.sub(r"(0?\.)?(\d+)?[bcdoxXeEfFgGn%]$", r"\2", spec.rstrip("+").rstrip("h"))
            m = re.match(r"(.?[<>=^])?(\d+)(\.\d+)?", spec)
            out.append(format(heading(field), m[0] if m else ""))
        return "".join(out)


# a format spec: its part before the width, width, grouping, precision, type, flux-core's suffixes
_SPEC = re.compile(r"(?P<pre>(?:[\s\S]?[<>=^])?[- +]?z?#?0?)(?P<width>\d*)(?P<group>[_,]?)(?:\.(?P<prec>\d+))?"
                   r"(?P<type>[bcdeEfFgGnosxX%]?)(?P<rest>h?\+?)")


def _field(field, spec, conv):
    if field is None:
        return ""
    return "{" + field + (f"!{conv}" if conv else "") + (f":{spec}" if spec else "") + "}"
