"""What ``flux jobs`` adds to a listing (cli/jobs.py): job statistics
(``--stats``), the filters the job-list service does not apply (``--since``,
``--name``, ``-q/--queue``, ``-i/--include``), ``--sort``, ``--color`` and the
named formats of configuration files (flux-core's ``flux-jobs.{json,toml}``).

Statistics come from the job manager's ``job-list.job-stats`` (flux-core's
payload, purged jobs counted too).
"""

import json
import os
import sys
import time


# flux-core's colors of a job's line (by result; blue: a running instance)
RESULT_COLORS = {"COMPLETED": "\033[01;32m", "FAILED": "\033[01;31m", "CANCELED": "\033[37m",
                 "TIMEOUT": "\033[01;31m"}
INSTANCE_COLOR = "\033[01;34m"
COLOR_RESET = "\033[0;0m"


# ---- statistics ------------------------------------------------------------------

class JobStats:
    """Job counts of an instance, flux-core's ``flux.job.stats.JobStats``:
    ``pending``, ``running``, ``successful``, ``failed`` (every unsuccessful end:
    failed, canceled and timed out), ``inactive_purged``, ``active``."""

    FIELDS = ("depend", "priority", "sched", "run", "cleanup", "inactive", "total", "successful", "failed",
              "timeout", "canceled", "inactive_purged")

    def __init__(self, counts):
        for key in self.FIELDS:
            setattr(self, key, counts.get(key, 0))
        self.pending = self.depend + self.priority + self.sched
        self.running = self.run + self.cleanup
        self.active = self.total - self.inactive
        self.failed += self.timeout + self.canceled

    def line(self, purged=True):
        """``N running, N completed, N failed, N pending[, N inactive purged]``."""
        text = f"{self.running} running, {self.successful} completed, {self.failed} failed, {self.pending} pending"
        return f"{text}, {self.inactive_purged} inactive purged" if purged else text


def job_stats(h, queues=()):
    """The ``JobStats`` of the instance on ``h``; with ``queues``, the sum of theirs.

    Raises:
        ValueError: ``no stats available for queue Q`` (no job of the instance
            is in queue Q).
        OSError: the instance did not answer.
    """
    resp = h.rpc("job-list.job-stats", {}).get()
    if not queues:
        return JobStats(_flat(resp))
    by_name = {q.get("name"): _flat(q) for q in resp.get("queues", ())}
    total = {}
    for name in queues:
        if name not in by_name:
            raise ValueError(f"error retrieving job stats: no stats available for queue {name} "
                             f"(queues with jobs: {', '.join(sorted(by_name)) or 'none'})")
        for key, value in by_name[name].items():
            total[key] = total.get(key, 0) + value
    return JobStats(total)


def _flat(stats):
    """flux-core's ``{job_states: {...}, successful...}`` as one dict of counts."""
    return {**stats.get("job_states", {}), **{k: v for k, v in stats.items() if isinstance(v, int)}}


# ---- filters ---------------------------------------------------------------------

def parse_since(text, now=None):
    """``--since=WHEN`` as a timestamp: a number (a timestamp), ``-FSD``/``+FSD``
    (an offset from now, e.g. ``-6h``), ``now``, ``today``, ``yesterday``, or an ISO
    8601 date and time (``2021-06-21 06:00``, local time).

    Raises:
        ValueError: a WHEN none of these, or one in the future.
    """
    from datetime import datetime

    from flux_launch.core import fsd

    now = time.time() if now is None else now
    word = text.strip().lower()
    try:
        if word[:1] in ("-", "+"):
            t = now + (-1 if word[0] == "-" else 1) * fsd.parse(word[1:])
        elif _number(word):
            t = float(word)
        elif word in ("now", "today", "yesterday"):
            midnight = datetime.fromtimestamp(now).replace(hour=0, minute=0, second=0, microsecond=0).timestamp()
            t = {"now": now, "today": midnight, "yesterday": midnight - 86400}[word]
        else:
            t = datetime.fromisoformat(text.strip()).timestamp()
    except ValueError:
        raise ValueError(f"--since={text}: invalid time (use a timestamp, an offset such as -6h or -1d, "
                         "now, today, yesterday, or a date such as 2021-06-21T06:00)") from None
    if t > now:
        raise ValueError(f"--since={text} appears to be in the future")
    return t


def _number(text):
    try:
        float(text)
    except ValueError:
        return False
    return True


def parse_include(text):
    """``-i/--include=HOSTS|RANKS``: a predicate on a job record, true when the
    job was allocated one of RANKS (an idset) or else of HOSTS (a hostlist).

    Raises:
        ValueError: ``-i/--include: invalid targets: TEXT`` (flux-core's words).
    """
    from flux_launch.core import hostlist, idset

    try:
        ranks = set(idset.decode(text))
        return lambda rec: bool(ranks & set(idset.decode(rec.get("ranks") or "")))
    except ValueError:
        pass
    try:
        hosts = set(hostlist.decode(text))
    except ValueError:
        raise ValueError(f"-i/--include: invalid targets: {text} (give ranks such as 0-3 or hosts such as "
                         "node[1-4])") from None
    return lambda rec: bool(hosts & set(hostlist.decode(rec.get("nodelist") or "")))


def selector(since=0.0, names=None, queues=None, include=None):
    """A predicate on job records: active or inactive after ``since``, of a name
    in ``names``, of a queue in ``queues``, allocated what ``include`` accepts."""

    def wanted(rec):
        if since and rec.get("t_inactive") and rec["t_inactive"] <= since:
            return False
        if names and rec.get("name") not in names:
            return False
        if queues and rec.get("queue") not in queues:
            return False
        return include is None or include(rec)

    return wanted


# ---- sorting -----------------------------------------------------------------------

def sort_keys(text, known):
    """``--sort=KEY,...`` (or a format's ``sort:KEY,...``) as ``[(field, reverse)]``;
    ``-KEY`` sorts descending.

    Raises:
        ValueError: ``Invalid sort key: KEY`` (flux-core's words) for a key
            ``known(KEY)`` refuses.
    """
    out = []
    for word in filter(None, (w.strip() for w in text.split(","))):
        field = word.lstrip("-")
        if not known(field):
            raise ValueError(f"Invalid sort key: {field} (use a format field such as id, t_submit, ntasks, name)")
        out.append((field, word.startswith("-")))
    return out


def sort_jobs(jobs, keys, value):
    """``jobs`` sorted (stably) by ``keys`` of ``sort_keys``; ``value(job, field)``
    is what a field shows. Empty values come first; numbers before text."""

    def rank(v):
        if v is None or str(v) == "":
            return (0, 0)
        if isinstance(v, (int, float)) and not isinstance(v, bool):
            return (1, v)
        return (2, str(v))

    for field, reverse in reversed(keys):
        jobs.sort(key=lambda job: rank(value(job, field)), reverse=reverse)
    return jobs


def split_sort(fmt):
    """``(keys, format)`` of a format that starts ``sort:KEY,... `` (keys '' if not)."""
    if fmt.startswith("sort:"):
        keys, _, rest = fmt[len("sort:"):].partition(" ")
        return keys, rest
    return "", fmt


# ---- color ---------------------------------------------------------------------

def line_color(info, is_instance):
    """The color of a job's line (flux-core's): by result, else blue for a
    running instance, else none ('')."""
    return RESULT_COLORS.get(info.get("result_str") or "", INSTANCE_COLOR if is_instance else "")


def use_color(when):
    """Whether ``--color=WHEN`` colors stdout."""
    return when == "always" or (when == "auto" and sys.stdout.isatty())


# ---- configured formats ----------------------------------------------------------

def config_files():
    """flux-core's ``flux-jobs.{json,toml}`` paths, lowest precedence first:
    ``$XDG_CONFIG_DIRS/flux`` (its first entry last) or ``/etc/xdg/flux``, then
    ``$XDG_CONFIG_HOME/flux`` or ``~/.config/flux``."""
    dirs = list(reversed([d for d in os.environ.get("XDG_CONFIG_DIRS", "/etc/xdg").split(":") if d]))
    dirs.append(os.environ.get("XDG_CONFIG_HOME") or os.path.join(os.path.expanduser("~"), ".config"))
    out = []
    for d in dirs:
        for ext in ("json", "toml"):  # flux-core's lexical order
            path = os.path.join(d, "flux", f"flux-jobs.{ext}")
            if os.path.isfile(path):
                out.append(path)
    return out


def load_formats(builtin):
    """``{name: {"format", "description"?}}``: ``builtin`` and those of the
    configuration files (a later file's wins; a built-in one may not be redefined).

    Raises:
        ValueError: ``PATH: ...``, what is wrong with a file.
    """
    formats = {name: dict(entry) for name, entry in builtin.items()}
    for path in config_files():
        try:
            if path.endswith(".json"):
                with open(path) as f:
                    config = json.load(f)
            else:
                import tomllib

                with open(path, "rb") as f:
                    config = tomllib.load(f)
        except (OSError, ValueError) as exc:
            raise ValueError(f"{path}: {exc}") from None
        for key, value in (config.items() if isinstance(config, dict) else [(None, None)]):
            if key != "formats":
                raise ValueError(f"{path}: invalid key {key} (only 'formats' is read)")
            _check_formats(path, value, builtin)
            formats.update(value)
    return formats


def _check_formats(path, formats, builtin):
    if not isinstance(formats, dict):
        raise ValueError(f"{path}: the 'formats' key must be a mapping")
    for name, entry in formats.items():
        if name in builtin:
            raise ValueError(f"{path}: override of builtin format '{name}' not permitted (give it another name)")
        if not isinstance(entry, dict):
            raise ValueError(f"{path}: 'formats.{name}' must be a mapping")
        if "format" not in entry:
            raise ValueError(f"{path}: formats.{name}: required key 'format' missing")
        if not isinstance(entry["format"], str):
            raise ValueError(f"{path}: formats.{name}: 'format' key must be a string")
