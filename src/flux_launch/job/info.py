"""``JobInfo``: one job-list record with flux-core's attribute names.

A record (``job-list.list``/``list-id``, what ``flux jobs`` formats) read through
attributes: ``id`` (a ``JobID``), ``userid``, ``username``, ``name``, ``state``
("RUN", "INACTIVE"...; ``state_id`` is the bit), ``state_single``, ``result``
("COMPLETED", "FAILED", "CANCELED", "TIMEOUT"; "" while active; ``result_id``
the bit), ``result_abbrev``, ``status``, ``status_abbrev``, ``returncode`` (the
highest task exit code, ``-signum`` when signaled, -128 for a job canceled before
it ran; "" while active), ``waitstatus``, ``success``, ``t_submit``, ``t_depend``,
``t_run``, ``t_cleanup``, ``t_inactive`` (0.0 until then), ``runtime``,
``duration``, ``expiration``, ``t_remaining``, ``nnodes``, ``ntasks``, ``ncores``,
``ranks``, ``nodelist``, ``queue``, ``cwd``, ``urgency``, ``priority``,
``exception`` (``.occurred``, ``.severity``, ``.type``, ``.note``),
``annotations`` (``.user.KEY``, ``.sched.KEY``), ``dependencies``,
``contextual_info``, ``contextual_time``, ``inactive_reason``.

An attribute the record lacks raises ``AttributeError("invalid JobInfo attribute
'NAME'")``; ``to_dict()`` gives the record as flux-core's ``get_job`` does.
Item access (``info["result"]``) reads the same attributes.
"""

import time

from flux_launch.core.jobid import JobID
from flux_launch.proto.job import PENDING, RESULT_ABBREV, RUNNING, STATE_SINGLE, STATES

# flux-core's defaults for what a record may leave out (its JobInfo.defaults)
DEFAULTS = {
    "t_depend": 0.0, "t_run": 0.0, "t_cleanup": 0.0, "t_inactive": 0.0, "duration": 0.0, "expiration": 0.0,
    "name": "", "cwd": "", "queue": "", "project": "", "bank": "", "ntasks": "", "ncores": "", "nnodes": "",
    "priority": "", "ranks": "", "nodelist": "", "success": "", "result": "", "waitstatus": "",
}
# what to_dict() adds to DEFAULTS' keys (flux-core's JobInfo.properties)
PROPERTIES = ("id", "t_submit", "t_remaining", "state", "result", "username", "userid", "urgency", "runtime",
              "status", "returncode", "dependencies")
_users = {}  # uid -> name


def _username(uid):
    if uid not in _users:
        import pwd

        try:
            _users[uid] = pwd.getpwuid(uid).pw_name
        except KeyError:
            _users[uid] = str(uid)
    return _users[uid]


def inactive_reason(result, returncode, exc):
    """Why an inactive job ended, in flux-core's words (``Canceled: NOTE``, ``Exit 2``,
    ``Exception: type=T note=N``, a signal's name...)."""
    code = returncode if isinstance(returncode, int) else (1 if result == "FAILED" else "")
    if result == "CANCELED":
        return f"Canceled: {exc.note}" if exc.occurred and exc.type == "cancel" and exc.note else "Canceled"
    if result == "TIMEOUT":
        return "Timeout"
    if result == "FAILED":
        if exc.occurred and exc.type != "exec" and exc.severity == 0:
            return f"Exception: type={exc.type}" + (f" note={exc.note}" if exc.note else "")
        if code > 128:
            import signal

            try:
                return signal.strsignal(code - 128) or f"Signaled {code - 128}"
            except ValueError:
                return f"Signaled {code - 128}"
        return {126: "Command invoked cannot execute", 127: "command not found",
                128: "Invalid argument to exit"}.get(code, f"Exit {code}")
    return f"Exit {code}"


class _Empty:
    """A missing annotation: its attributes are missing too; formats as ""."""

    def __getattr__(self, name):
        if name.startswith("__"):
            raise AttributeError(name)
        return self

    def __str__(self):
        return ""

    __repr__ = __str__

    def __format__(self, spec):
        return format("", spec.rstrip("bcdoxXeEfFgGn%"))


EMPTY = _Empty()


class ExceptionInfo:
    """The job's exception: ``occurred``, ``severity``, ``type``, ``note`` ("" when none)."""

    def __init__(self, occurred, severity, type_, note):
        self.occurred = occurred
        self.severity = severity
        self.type = type_
        self.note = note

    def __repr__(self):
        return f"ExceptionInfo({self.__dict__})"


class AnnotationsInfo:
    """Annotations seen through attributes (``annotations.user.uri``); a missing
    one is empty (formats as ""), as in flux-core."""

    def __init__(self, d):
        self.annotationsDict = d if isinstance(d, dict) else {}

    def __getattr__(self, name):
        if name.startswith("__"):
            raise AttributeError(name)
        value = self.annotationsDict.get(name)
        if isinstance(value, dict):
            return AnnotationsInfo(value)
        return EMPTY if value is None else value

    def __repr__(self):
        if not self.annotationsDict:
            return ""
        from flux_launch.proto import fastjson

        return fastjson.dumps(self.annotationsDict)

    __str__ = __repr__

    def __format__(self, spec):
        return format(str(self), spec)


class JobInfo:
    """A job-list record with flux-core's attribute names (see the module docstring).

    Args:
        info_resp: the record (a dict with at least ``id``).
    """

    defaults = DEFAULTS
    properties = PROPERTIES

    def __init__(self, info_resp):
        self._record = info_resp
        self.id = JobID(info_resp["id"])

    def __getattr__(self, name):
        if name.startswith("_"):
            raise AttributeError(name)
        rec = self._record
        derive = _DERIVED.get(name)
        if derive is not None:
            return derive(self, rec)
        if name == "state_id":
            return rec.get("state", 0)
        if name == "result":
            return rec.get("result_str", "")
        if name == "result_id":
            return rec.get("result", "")
        if name == "returncode":
            return _returncode(rec)
        if name == "exception":
            return ExceptionInfo(rec.get("exception_occurred", ""), rec.get("exception_severity", ""),
                                 rec.get("exception_type", ""), rec.get("exception_note", ""))
        if name in ("annotations", "sched", "user"):
            ann = AnnotationsInfo(rec.get("annotations") or {})
            return ann if name == "annotations" else getattr(ann, name)
        if name == "dependencies":
            return list(rec.get("dependencies") or [])
        if name in rec and not (rec[name] is None and name in DEFAULTS):
            return rec[name]
        if name in DEFAULTS:
            return DEFAULTS[name]
        raise AttributeError(f"invalid JobInfo attribute '{name}'")

    def __getitem__(self, key):
        if key == "id":
            return self.id
        try:
            return getattr(self, key)
        except AttributeError:
            raise KeyError(key) from None

    def get_runtime(self):
        """Seconds the job ran (until now while it runs; 0.0 before it starts)."""
        return self.runtime

    def get_remaining_time(self):
        """Seconds left before the job's time limit while it runs, else 0.0."""
        return self.t_remaining

    def to_dict(self, filtered=True):
        """The attributes as a dict, flux-core's way: with ``filtered`` (the
        default), empty values and unset times are left out."""
        out = {}
        for attr in (*DEFAULTS, *PROPERTIES):
            try:
                out[attr] = getattr(self, attr) if attr != "id" else int(self.id)
            except AttributeError:
                continue
        out["annotations"] = dict(self._record.get("annotations") or {})
        out["exception"] = dict(self.exception.__dict__)
        uri = self.uri
        if uri:
            out["uri"] = str(uri)
        if not filtered:
            return out
        for key in list(out):
            value = out[key]
            if value == "" or ((key.startswith("t_") or key in ("runtime", "expiration")) and value == 0):
                del out[key]
        if not out["exception"]["occurred"]:
            out["exception"] = {"occurred": False}
        return out

    def get_info(self):
        """The record as a dict, with ``id`` a ``JobID`` and ``result`` the result's name
        (flux_launch's own, kept for older callers)."""
        return dict(self._record, id=self.id, result=self.result)

    def __repr__(self):
        """``JobInfo({...})`` with what ``to_dict()`` gives (the id in its f58 form)."""
        d = self.to_dict()
        d["id"] = self.id.f58
        return f"JobInfo({d!r})"


def _returncode(rec):
    """flux-core's: "" while active; from the wait status (``-signum`` when the
    shell was signaled); -128 for a job canceled before it ran, 1 for one that
    failed before it ran."""
    result = rec.get("result_str", "")
    if not result:
        return ""
    status = rec.get("waitstatus")
    if not isinstance(status, int):
        return -128 if result == "CANCELED" else (1 if result == "FAILED" else rec.get("returncode", ""))
    if status & 0x7F:  # WIFSIGNALED (a stopped status never ends a job)
        return -(status & 0x7F)
    return (status >> 8) & 0xFF


def _state(info, rec):
    if "state" not in rec:
        raise AttributeError("invalid JobInfo attribute 'state'")
    return STATES[(rec["state"] or 1).bit_length() - 1]


def _status(info, rec, abbrev=False):
    state = _state(info, rec)
    if state == "INACTIVE":
        res = rec.get("result_str", "")
        return RESULT_ABBREV.get(res, res) if abbrev else res
    return STATE_SINGLE[state] if abbrev else state


def _runtime(info, rec):
    t_run = rec.get("t_run")
    return (rec.get("t_cleanup") or time.time()) - t_run if t_run else 0.0


def _contextual_info(info, rec):
    state = _state(info, rec)
    if state in PENDING or state == "NEW":
        if state == "SCHED" and rec.get("priority") == 0:
            return "held" if rec.get("urgency") == 0 else "priority-hold"
        if state == "DEPEND":
            return "depends:" + ",".join(rec.get("dependencies") or ())
        return "priority-wait" if state == "PRIORITY" else ""
    return rec.get("nodelist") or ""


def _t_remaining(info, rec):
    exp = rec.get("expiration") or 0
    return max(0.0, exp - time.time()) if exp and _state(info, rec) in RUNNING else 0.0


def _uri(info, rec):
    return ((rec.get("annotations") or {}).get("user") or {}).get("uri") or ""


# attributes computed from the record
_DERIVED = {
    "state": _state,
    "state_single": lambda info, rec: STATE_SINGLE.get(_state(info, rec), "I"),
    "status": _status,
    "status_abbrev": lambda info, rec: _status(info, rec, abbrev=True),
    "result_abbrev": lambda info, rec: RESULT_ABBREV.get(rec.get("result_str", ""), ""),
    "username": lambda info, rec: _username(rec.get("userid", 0)),
    "runtime": _runtime,
    "contextual_time": lambda info, rec: rec.get("duration", 0.0) if _state(info, rec) in PENDING
    else _runtime(info, rec),
    "contextual_info": _contextual_info,
    "t_remaining": _t_remaining,
    "inactive_reason": lambda info, rec: inactive_reason(rec.get("result_str", ""), info.returncode, info.exception)
    if _state(info, rec) == "INACTIVE" else "",
    "uri": _uri,
}
