"""``flux jobs [-a] [-A] [-f STATES] [-n] [-c N] [-o FORMAT] [ID...]``: list jobs.

Formats use Flux's field names and conversions: ``{id.f58:>12}``, ``{name:<10.10+}``
(``+``: mark truncation), a trailing ``h`` in a spec prints ``-`` for an empty
value, ``!F`` formats seconds as a duration, ``!d`` a time (``{t_submit!d:%H:%M::>8}``),
``?:`` before a field drops the column when it is empty for every job.
Named formats: ``default``, ``long``, ``deps``.
"""

import pwd
import re
import string
import time

from flux_launch.cli.base import Parser, handle
from flux_launch.core import fsd
from flux_launch.core.jobid import JobID
from flux_launch.proto.job import PENDING, RESULT_ABBREV, RESULT_BITS, RUNNING, STATE_BITS, STATE_SINGLE, STATES

FORMATS = {
    "default": "{id.f58:>12} ?:{queue:<8.8} {username:<8.8} {name:<10.10+} {status_abbrev:>2.2} {ntasks:>6} "
               "{nnodes:>6h} {contextual_time!F:>8h} {contextual_info}",
    "long": "{id.f58:>12} ?:{queue:<8.8} {username:<8.8} {name:<10.10+} {status:>9.9} {ntasks:>6} {nnodes:>6h} "
            "{t_submit!d:%b%d %R::>12} {t_remaining!F:>12h} {contextual_time!F:>8h} {contextual_info}",
    "deps": "{id.f58:>12} {username:<8.8} {urgency:>3} {priority:>10} {name:<10.10+} {status_abbrev:>2.2} "
            "{dependencies}",
}
HEADERS = {"id": "JOBID", "queue": "QUEUE", "username": "USER", "userid": "UID", "name": "NAME",
           "status_abbrev": "ST", "status": "STATUS", "state": "STATE", "ntasks": "NTASKS", "nnodes": "NNODES",
           "ncores": "NCORES", "contextual_time": "TIME", "contextual_info": "INFO", "runtime": "RUNTIME",
           "t_submit": "T_SUBMIT", "t_run": "T_RUN", "t_remaining": "T_REMAINING", "result": "RESULT",
           "urgency": "URG", "priority": "PRI", "ranks": "RANKS", "nodelist": "NODELIST",
           "returncode": "RC", "dependencies": "DEPENDENCIES", "duration": "DURATION", "success": "SUCCESS",
           "exception": "EXCEPTION", "waitstatus": "WSTATUS", "cwd": "CWD"}
# Fields a format may name: the headers above, the job-list record's own keys and
# what Row derives (anything else is refused: a typo must not print an empty column)
FIELDS = set(HEADERS) | {"state_single", "result_abbrev", "t_depend", "t_cleanup", "t_inactive", "expiration",
                         "waitable", "exception_occurred"}
PENDING_MASK = sum(STATE_BITS[s] for s in PENDING)
RUNNING_MASK = sum(STATE_BITS[s] for s in RUNNING)
ALL_STATES = sum(STATE_BITS.values())
ACTIVE_MASK = ALL_STATES & ~STATE_BITS["INACTIVE"]
# -f/--filter words: a state, a group of states, or a result (job-list's bits)
FILTERS = {**{name.lower(): bit for name, bit in STATE_BITS.items()},
           "pending": PENDING_MASK, "running": RUNNING_MASK, "active": ACTIVE_MASK}
RESULT_FILTERS = {**{name.lower(): bit for name, bit in RESULT_BITS.items()}, "cancelled": RESULT_BITS["CANCELED"]}


class _Attr:
    """``id.f58`` and friends."""

    def __init__(self, value, attrs):
        self._value = value
        self._attrs = attrs

    def __getattr__(self, name):
        return self._attrs(self._value, name)

    def __format__(self, spec):
        return format(self._value, spec)


class Row:
    """One job, with the derived fields formats use."""

    _users = {}

    def __init__(self, info):
        self.info = info

    def get(self, name):
        info = self.info
        if name == "id":
            return _Attr(JobID(info["id"]), lambda j, enc: j.encode(enc))
        if name == "exception":
            return _Attr(info.get("exception_occurred", False),
                         lambda _v, key: info.get(f"exception_{key}", ""))
        if name == "username":
            uid = info.get("userid", 0)
            if uid not in self._users:
                try:
                    self._users[uid] = pwd.getpwuid(uid).pw_name
                except KeyError:
                    self._users[uid] = str(uid)
            return self._users[uid]
        state = STATES[(info.get("state", 1)).bit_length() - 1]
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
            if "t_run" not in info:
                return 0.0
            return info.get("t_cleanup", time.time()) - info["t_run"]
        if name == "t_remaining":
            exp = info.get("expiration", 0)
            return max(0.0, exp - time.time()) if exp and state in RUNNING else 0.0
        if name == "contextual_time":
            return self.get("runtime") if "t_run" in info else 0.0
        if name == "contextual_info":
            if state in PENDING or state == "NEW":
                if state == "SCHED" and info.get("priority") == 0:
                    return "held"
                return "priority-wait" if state == "PRIORITY" else ("depends:" if state == "DEPEND" else "")
            return info.get("nodelist", "") or ""
        if name == "dependencies":
            return ""
        return info.get(name, "")


class _Formatter(string.Formatter):
    def __init__(self, row):
        self.row = row

    def get_field(self, field_name, args, kwargs):
        first, rest = field_name.split(".", 1) if "." in field_name else (field_name, None)
        obj = self.row.get(first)
        if rest:
            for part in rest.split("."):
                obj = getattr(obj, part)
        return obj, first

    def convert_field(self, value, conversion):
        if conversion == "F":
            return fsd.format(float(value), 2) if value else ""
        if conversion == "d":
            return _Time(value)
        if conversion == "H":
            return _hms(value) if value else ""
        return super().convert_field(value, conversion)

    def format_field(self, value, spec):
        if isinstance(value, _Time):
            fmt, _, spec = spec.partition("::")
            value = time.strftime(fmt or "%FT%T", time.localtime(value.t)) if value.t else ""
        empty_dash = spec.endswith("h")
        if empty_dash:
            spec = spec[:-1]
            if value in (None, "", 0, 0.0):
                value = "-"
        trunc = spec.endswith("+")
        if trunc:
            spec = spec[:-1]
            m = re.search(r"\.(\d+)$", spec)
            if m and isinstance(value, str) and len(value) > int(m.group(1)):
                value = value[:int(m.group(1)) - 1] + "+"
        if isinstance(value, _Attr):
            value = value._value
        if isinstance(value, (int, float)) and not isinstance(value, bool) and spec and spec[-1:].isdigit() \
                and "." in spec and not isinstance(value, float):
            value = str(value)
        try:
            return format(value, spec)
        except ValueError:
            return format(str(value), spec)


class _Time:
    def __init__(self, t):
        self.t = t


def _hms(seconds):
    seconds = int(seconds)
    return f"{seconds // 3600}:{seconds % 3600 // 60:02d}:{seconds % 60:02d}"


def _header(fmt):
    out = []
    for literal, field, spec, conv in string.Formatter().parse(fmt):
        out.append(literal)
        if field is None:
            continue
        name = field.split(".", 1)[0]
        title = HEADERS.get(name, name.upper())
        if conv == "d":
            spec = spec.partition("::")[2]
        spec = spec.rstrip("h").rstrip("+")
        spec = re.sub(r"^([<>^]?)\D*?(\d*)(\.\d+)?$", lambda m: f"{m.group(1) or '<'}{m.group(2)}{m.group(3) or ''}",
                      spec) if spec else ""
        out.append(format(title, spec))
    return "".join(out)


def _drop_empty(fmt, rows):
    """Remove ``?:`` fields that are empty for every row (and keep the others)."""
    def repl(m):
        name = re.split(r"[.!:]", m.group(1))[0]
        return m.group(0)[2:] if any(r.get(name) for r in rows) else ""
    return re.sub(r"\?:\{([^}]*)\} ?", repl, fmt)


def main(cmd, argv):
    p = Parser(cmd, description="List jobs.", usage="flux jobs [OPTIONS] [JOBID...]")
    p.add_argument("-a", action="store_true", help="all jobs of the user, including inactive ones")
    p.add_argument("-A", action="store_true", help="jobs of all users")
    p.add_argument("-u", "--user", help="jobs of this user (name, id or 'all')")
    p.add_argument("-f", "--filter", help="states or results to list, comma-separated")
    p.add_argument("-n", "--no-header", action="store_true", help="print no header")
    p.add_argument("-c", "--count", type=int, default=0, help="list at most N jobs")
    p.add_argument("-o", "--format", default="default", help="a format or a named one (default, long, deps)")
    p.add_argument("ids", nargs="*", metavar="ID")
    args = p.parse_args(argv)
    if args.count < 0:
        p.error(f"-c/--count={args.count}: must be >= 0 (0: no limit)")
    if args.filter is not None and not args.filter.strip(","):
        p.error("-f/--filter: empty (use states such as pending,running or results such as failed)")
    fmt = FORMATS.get(args.format, args.format)
    _check_format(fmt)
    h = handle()
    if args.ids:
        infos = []
        for text in args.ids:
            jobid = JobID(text)
            infos.append(h.rpc("job-list.list-id", {"id": int(jobid)}).get()["job"])
    else:
        states, results = 0, 0
        if args.filter:
            for word in filter(None, args.filter.lower().split(",")):
                if word in FILTERS:
                    states |= FILTERS[word]
                elif word in RESULT_FILTERS:
                    results |= RESULT_FILTERS[word]
                else:
                    p.error(f"invalid filter {word!r}: use states (pending, running, inactive, ...) "
                            "or results (completed, failed, canceled, timeout)")
        elif args.a:
            states = ALL_STATES
        else:
            states = ACTIVE_MASK
        import os

        userid = os.getuid()
        if args.A or args.user == "all":
            userid = -1
        elif args.user:
            try:
                userid = int(args.user) if args.user.isdigit() else pwd.getpwnam(args.user).pw_uid
            except KeyError:
                raise ValueError(f"-u/--user {args.user}: no such user (give a name, a uid or all)") from None
        infos = h.rpc("job-list.list", {"states": states, "results": results, "userid": userid,
                                        "max_entries": args.count}).get()["jobs"]
        infos.sort(key=_order)
    rows = [Row(i) for i in infos]
    fmt = _drop_empty(fmt, rows)
    lines = [] if args.no_header else [_header(fmt).rstrip()]
    for row in rows:
        lines.append(_Formatter(row).format(fmt).rstrip())
    if lines:
        print("\n".join(lines))
    return 0


def _check_format(fmt):
    """Refuse a format with an unknown field, a bad spec or conversion, by
    formatting a sample job with it.

    Raises:
        ValueError: naming the bad field, or what string.Formatter said.
    """
    if not fmt.strip():
        raise ValueError("-o/--format: empty format (e.g. '{id} {name}', or default, long, deps)")
    try:
        fields = [f for _lit, f, _spec, _conv in string.Formatter().parse(fmt.replace("?:{", "{"))
                  if f is not None]
    except ValueError as exc:
        raise ValueError(f"-o/--format {fmt!r}: {exc}") from None
    for field in fields:
        name = field.split(".", 1)[0]
        if name not in FIELDS:
            raise ValueError(f"-o/--format: unknown field {name!r} (e.g. id, name, status, ntasks, nodelist)")
    sample = Row({"id": 1, "userid": 0, "state": 16, "name": "x", "ntasks": 1, "nnodes": 1, "t_submit": 1.0,
                  "t_run": 1.0, "priority": 16, "urgency": 16})
    try:
        _Formatter(sample).format(_drop_empty(fmt, [sample]))
    except (ValueError, AttributeError, KeyError, IndexError, TypeError) as exc:
        raise ValueError(f"-o/--format {fmt!r}: {exc}") from None


def _order(info):
    """Pending first (by priority, then age), then running, then inactive, newest first."""
    state = info.get("state", 1)
    if state & PENDING_MASK:
        return (0, -info.get("priority", 0), info.get("t_submit", 0))
    if state & RUNNING_MASK:
        return (1, -info.get("t_run", 0), 0)
    return (2, -info.get("t_inactive", 0), 0)
