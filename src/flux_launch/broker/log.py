"""The broker's log: what its modules log (Python ``logging`` under
``flux_launch``) and what clients append (``flux logger``), as flux-core's broker
log service (flux-broker-attributes(7), LOGGING):

- ``log-level`` (default 7, debug): entries at or under it enter the log: the
  broker's ring buffer of ``log-ring-size`` entries (default 1024), read by
  ``flux dmesg`` (``log.dmesg``, streaming; ``follow`` and ``nobacklog``) and
  emptied by ``log.clear``;
- ``log-stderr-mode``: ``leader`` (default): followers forward entries at or under
  ``log-forward-level`` (default 3, err) to rank 0, which prints its own and
  the forwarded ones at or under ``log-stderr-level`` on stderr; ``local``: each
  broker prints its own. A follower prints locally what it cannot forward (not
  yet, or no longer, linked to its parent) and entries at or under
  ``log-critical-level`` (default 2);
- ``log-filename``: rank 0 also appends what it prints, and everything that
  entered its log, to this file.

Levels are syslog's numbers (0 emerg ... 7 debug). An entry is ``{"pri",
"rank", "appname", "timestamp", "message"}``; the appname is the first word of
a message written ``"appname: text"`` (``broker``, ``job-manager``...).
"""

import collections
import errno
import logging
import sys
import threading
import time

SEVERITIES = ("emerg", "alert", "crit", "err", "warning", "notice", "info", "debug")
_PY_TO_SYSLOG = {logging.CRITICAL: 2, logging.ERROR: 3, logging.WARNING: 4, logging.INFO: 6, logging.DEBUG: 7}
_SYSLOG_TO_PY = {0: 50, 1: 50, 2: 50, 3: 40, 4: 30, 5: 20, 6: 20, 7: 10}
_STDERR_NAMES = {0: "EMERG", 1: "ALERT", 2: "CRITICAL", 3: "ERROR", 4: "WARNING", 5: "NOTICE", 6: "INFO",
                 7: "DEBUG"}
DEFAULTS = {"log-level": 7, "log-stderr-level": 4, "log-forward-level": 3, "log-critical-level": 2,
            "log-ring-size": 1024}
LEVEL_ATTRS = ("log-level", "log-stderr-level", "log-forward-level", "log-critical-level")


def severity(text):
    """A severity from a number or a name (``err``, ``warning``...); ValueError else."""
    text = str(text).strip().lower()
    if text.lstrip("-").isdigit():
        return int(text)
    if text in SEVERITIES:
        return SEVERITIES.index(text)
    aliases = {"error": 3, "warn": 4, "crit": 2, "critical": 2, "emergency": 0}
    if text in aliases:
        return aliases[text]
    raise ValueError(f"unknown severity {text!r} (use 0-7 or {', '.join(SEVERITIES)})")


def check_attrs(attrs):
    """The one-line error for a bad logging attribute, or None."""
    for name in LEVEL_ATTRS + ("log-ring-size",):
        if name in attrs:
            try:
                value = int(attrs[name])
            except ValueError:
                return f"{name}={attrs[name]!r}: expected an integer"
            if name == "log-ring-size" and value < 0:
                return f"log-ring-size={value}: expected 0 or more"
    mode = attrs.get("log-stderr-mode", "leader")
    if mode not in ("leader", "local"):
        return f"log-stderr-mode={mode!r}: expected leader or local"
    return None


class BrokerLog(logging.Handler):
    """The handler of the ``flux_launch`` loggers in a broker process, and the
    ``log`` service once ``attach(broker)`` has run."""

    def __init__(self, attrs, rank_hint="0"):
        super().__init__(logging.DEBUG)
        self.attrs = attrs
        self.rank = int(rank_hint) if str(rank_hint).isdigit() else 0
        self.broker = None
        self.ring = collections.deque(maxlen=self._int("log-ring-size"))
        self.seq = 0
        self.followers = []  # dmesg requests following the log
        self._file = None
        self._lock = threading.Lock()

    def _int(self, name):
        try:
            return int(self.attrs.get(name, DEFAULTS[name]))
        except ValueError:
            return DEFAULTS[name]

    # ---- entries ---------------------------------------------------------------

    def emit(self, record):
        try:
            text = record.getMessage()
            if record.exc_info:
                text += "\n" + logging.Formatter().formatException(record.exc_info)
        except Exception:  # noqa: BLE001 - a bad format string must not break the broker
            text = str(record.msg)
        appname, sep, rest = text.partition(": ")
        if not sep or " " in appname or len(appname) > 32:
            appname, rest = "broker", text
        pri = _PY_TO_SYSLOG.get(record.levelno, 7 if record.levelno < 20 else 3)
        self.add({"pri": pri, "rank": self.rank, "appname": appname, "timestamp": record.created,
                  "message": rest, "bare": rest is text})

    def add(self, entry, forwarded=False):
        """Let ``entry`` into the log (ring, stderr, file, leader) as its level says."""
        pri = entry["pri"]
        if pri > self._int("log-level"):
            return
        loop = getattr(self.broker, "loop", None)
        if loop is not None and threading.current_thread() is not threading.main_thread():
            loop.call_soon_threadsafe(self.add, entry, forwarded)  # the ZAP thread logs too
            return
        with self._lock:
            self.seq += 1
            entry = dict(entry, seq=self.seq)
            if self.ring.maxlen != self._int("log-ring-size"):
                self.ring = collections.deque(self.ring, maxlen=self._int("log-ring-size"))
            self.ring.append(entry)
        for req in list(self.followers):
            self.broker.respond(req, entry)
        leader_mode = self.attrs.get("log-stderr-mode", "leader") != "local"
        sent = self.rank != 0 and self._forward(entry, forwarded)
        if self.rank == 0:
            show = leader_mode or not forwarded  # local mode: its own broker printed it
        else:
            show = not leader_mode or not sent
        printed = False
        if show and pri <= self._int("log-stderr-level"):
            self._stderr(entry)
            printed = True
        if not printed and pri <= self._int("log-critical-level"):
            self._stderr(entry)
        if self.rank == 0 and self.attrs.get("log-filename"):
            self._to_file(entry)

    def _forward(self, entry, forwarded):
        """Send a follower's entry to rank 0 if its level says so; False when it
        should but cannot (so it is printed here)."""
        broker = self.broker
        if forwarded or entry["pri"] > self._int("log-forward-level"):
            return True  # not for the leader: nothing to print here either
        overlay = getattr(broker, "overlay", None)
        if broker is None or overlay is None or not overlay.parent_up or getattr(broker, "_finished", False):
            return False
        broker.rpc("log.append", {"entry": entry}, 0)
        return True

    def _stderr(self, entry):
        text = entry["message"] if entry.get("bare") else f"{entry['appname']}: {entry['message']}"
        try:
            sys.stderr.write(f"flux-broker[{entry['rank']}]: {_STDERR_NAMES.get(entry['pri'], 'DEBUG')}: {text}\n")
            sys.stderr.flush()
        except (OSError, ValueError):
            pass

    def _to_file(self, entry):
        path = self.attrs["log-filename"]
        try:
            if self._file is None or self._file.name != path:
                if self._file is not None:
                    self._file.close()
                self._file = open(path, "a")
            self._file.write(format_entry(entry) + "\n")
            self._file.flush()
        except OSError as exc:
            self.attrs.pop("log-filename", None)
            self._stderr({"pri": 3, "rank": self.rank, "appname": "broker",
                          "message": f"broker: log-filename {path}: {exc.strerror}; no longer logging to it"})

    def close(self):
        if self._file is not None:
            self._file.close()
            self._file = None
        super().close()

    # ---- service ---------------------------------------------------------------

    def attach(self, broker):
        """Serve ``log.append|dmesg|clear|cancel`` on ``broker``."""
        from functools import partial

        from flux_launch.services.base import Service

        self.broker = broker
        self.rank = broker.rank
        Service(broker, "log", {"append": self._append, "dmesg": self._dmesg, "clear": self._clear,
                                "disconnect": self._disconnect}).register()
        broker.closers.append(partial(self._end_follows))

    def _append(self, msg, p):
        from flux_launch.services.base import ServiceError

        entry = p.get("entry")
        if not isinstance(entry, dict):
            raise ServiceError(errno.EPROTO, "log.append: expected {entry: {pri, appname, message}}")
        pri, message = entry.get("pri"), entry.get("message")
        if type(pri) is not int or not 0 <= pri <= 7 or not isinstance(message, str):
            raise ServiceError(errno.EPROTO, "log.append: entry needs pri (0-7) and a message string")
        appname = entry.get("appname") if isinstance(entry.get("appname"), str) else "logger"
        rank = entry.get("rank") if type(entry.get("rank")) is int else self.rank
        ts = entry.get("timestamp")
        clean = {"pri": pri, "rank": rank, "appname": appname[:64] or "logger",
                 "timestamp": ts if isinstance(ts, (int, float)) else time.time(), "message": message,
                 "bare": entry.get("bare") is True}
        self.add(clean, forwarded=rank != self.rank)
        self.broker.respond(msg, {})

    def _dmesg(self, msg, p):
        if not p.get("nobacklog"):
            for entry in list(self.ring):
                self.broker.respond(msg, entry)
        if p.get("follow"):
            self.followers.append(msg)
        else:
            self.broker.respond_error(msg, errno.ENODATA)

    def _clear(self, msg, p):
        self.ring.clear()
        self.broker.respond(msg, {})

    def _disconnect(self, msg, p):
        route = msg.get("route")
        self.followers = [r for r in self.followers if r.get("route") != route]

    def _end_follows(self):
        for req in self.followers:
            self.broker.respond_error(req, errno.ENODATA)
        self.followers = []


def format_entry(entry):
    """An entry as ``flux dmesg`` prints it: ISO time, ``appname.severity[rank]: message``."""
    ts = entry.get("timestamp", 0.0)
    iso = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(ts)) + f".{int(ts % 1 * 1e6):06d}Z"
    sev = SEVERITIES[entry["pri"]] if 0 <= entry.get("pri", 7) <= 7 else "debug"
    return f"{iso} {entry.get('appname', 'broker')}.{sev}[{entry.get('rank', 0)}]: {entry.get('message', '')}"


def setup(attrs, rank_hint="0"):
    """Install the broker's log handler on the ``flux_launch`` loggers; returns it."""
    handler = BrokerLog(attrs, rank_hint)
    root = logging.getLogger("flux_launch")
    root.handlers[:] = [handler]
    level = max(handler._int("log-level"), handler._int("log-stderr-level"))
    root.setLevel(_SYSLOG_TO_PY.get(min(max(level, 0), 7), 10))
    root.propagate = False
    return handler
