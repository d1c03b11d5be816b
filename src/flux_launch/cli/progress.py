"""``--progress [--jps]``: how far a set of jobs has come, for ``flux submit``,
``flux bulksubmit``, ``flux run``, ``flux watch`` and ``flux job wait --all``.

On a terminal (stdout is a tty, as flux-core draws it): a bar on the terminal's
last line, kept out of the scrolling region so that the jobs' output scrolls above
it, redrawn at each change and every 0.25 s: ``PD:n R:n CD:n F:n |bar| pct%
H:MM:SS`` (``--jps``: jobs/s instead of the elapsed time). Elsewhere (a pipe, a
file): plain lines on stderr, so that stdout keeps only job ids and output: the
first counts, then the counts whenever they changed, at most one line a second,
and always the last ones: ``PD:n R:n CD:n F:n done/total H:MM:SS``.

No progress-bar library is used: the bar shares the terminal with job output that
the attach machinery writes to ``sys.stdout.buffer`` and is redrawn from the
handle's reactor, which tqdm and rich do not follow (tqdm wants its own
``write``; rich's Live redirects only text writes); enlighten, which keeps a bar
below scrolling output in the same way, costs ~130 ms to import and four more
packages, for what these 100 lines do.

``JobStates`` follows jobs' main eventlogs on one handle (without their output),
for the commands that only wait.
"""

import sys
import time

TICK = 0.25  # the bar's redraw period: the elapsed time moves, even when no job does
PLAIN_INTERVAL = 1.0  # at most one plain line a second: a thousand jobs make minutes, not thousands, of lines
# Counting is O(jobs) and events come several per job: between two counts at least
# this long, so that a thousand jobs do not cost millions of steps (the last count
# is always made, and the timer's ticks catch up with what was skipped).
MIN_GAP = 0.05

_EDGE, _FULL = "\u2502", "\u2588"  # the bar's ends and its filled part


def state_counts(jobs):
    """``((PD, n), (R, n), (CD, n), (F, n))`` and the number done, of objects with
    ``status`` (the finish event's, else None), ``exception`` (a fatal one's
    context, else None) and ``started``."""
    pd = r = cd = f = 0
    for a in jobs:
        if a.status is not None:
            cd, f = (cd + 1, f) if a.status == 0 and a.exception is None else (cd, f + 1)
        elif a.exception is not None and not a.started:
            f += 1
        elif a.started:
            r += 1
        else:
            pd += 1
    return (("PD", pd), ("R", r), ("CD", cd), ("F", f)), cd + f


class Progress:
    """The progress of ``total`` jobs; ``poll()`` returns ``(fields, done)``:
    ``fields`` a tuple of ``(name, count)`` shown as ``NAME:count``, ``done`` how
    many of the ``total`` are over.

    ``start(h)`` draws the first state (with a handle, its reactor redraws every
    ``TICK``), ``update()`` after a change, ``stop()`` the last state."""

    def __init__(self, total, poll, jps=False, t0=None):
        self.total = max(total, 1)
        self.poll = poll
        self.jps = jps
        self.t0 = time.time() if t0 is None else t0
        self.tty = sys.stdout.isatty()
        self.timer = None
        self.lines = 0
        self.shown = None  # the plain line's counts last printed
        self.t_shown = self.t_polled = float("-inf")

    def start(self, h=None):
        if self.tty:
            import shutil

            self.lines = shutil.get_terminal_size().lines
            # make room for the bar, then confine scrolling to the lines above it
            sys.stdout.write(f"\n\0337\033[1;{self.lines - 1}r\0338\033[1A")
        self.update()
        if h is not None:
            self.timer = h.timer_watcher_create(TICK, lambda *_: self.update(), repeat=TICK)
            self.timer.start()
        return self

    def _after(self, done):
        elapsed = max(time.time() - self.t0, 1e-3)
        if self.jps:
            return f"{done / elapsed:.1f} job/s"
        secs = round(elapsed)
        return f"{secs // 3600}:{secs % 3600 // 60:02d}:{secs % 60:02d}"

    def text(self, width):
        """The bar, ``width`` columns wide at most."""
        fields, done = self.poll()
        before = "".join(f"{name}:{count:<3} " for name, count in fields)
        after = f"{100.0 * done / self.total:5.1f}% {self._after(done)}"
        room = max(width - len(before) - len(after) - 2, 0)
        fill = room * min(done, self.total) // self.total
        return f"{before}{_EDGE}{_FULL * fill}{' ' * (room - fill)}{_EDGE}{after}"

    def plain(self):
        """The plain line, and the counts it shows."""
        fields, done = self.poll()
        counts = " ".join(f"{name}:{count}" for name, count in fields)
        return f"{counts} {done}/{self.total} {self._after(done)}", (fields, done)

    def update(self, last=False):
        now = time.monotonic()
        if not last and (now - self.t_polled < MIN_GAP or not self.tty and now - self.t_shown < PLAIN_INTERVAL):
            return
        self.t_polled = now
        if self.tty:
            import shutil

            sys.stdout.flush()
            sys.stdout.write(f"\0337\033[{self.lines};1H\033[2K{self.text(shutil.get_terminal_size().columns)}\0338")
            sys.stdout.flush()
            return
        line, counts = self.plain()
        if counts != self.shown:
            self.shown, self.t_shown = counts, now
            sys.stderr.write(line + "\n")
            sys.stderr.flush()

    def stop(self):
        if self.timer is not None:
            self.timer.stop()
            self.timer = None
        if not self.tty:
            self.update(last=True)
            return
        import shutil

        sys.stdout.write(f"\0337\033[{self.lines};1H\033[2K\033[r\0338{self.text(shutil.get_terminal_size().columns)}\n")
        sys.stdout.flush()


class _Job:
    """One followed job: what ``state_counts`` reads."""

    __slots__ = ("jobid", "watch", "status", "exception", "started", "clean")

    def __init__(self, jobid, watch):
        self.jobid = jobid
        self.watch = watch
        self.status = self.exception = None
        self.started = self.clean = False


class JobStates:
    """The main eventlogs of ``jobids``, followed on handle ``h`` from its reactor
    (one streaming watch each, all sent at once); ``on_change()`` is called after
    events; the reactor stops once every job is clean. A job that does not exist
    counts as failed (``missing`` lists it)."""

    def __init__(self, h, jobids, on_change=None):
        from flux_launch.client.handle import STREAMING
        from flux_launch.proto.eventlog import EventlogParser

        self.h = h
        self.on_change = on_change
        self.left = len(jobids)
        self.missing = []
        self.jobs = []
        for jobid in jobids:
            watch = h.rpc("job-info.eventlog-watch", {"id": int(jobid), "path": "eventlog"}, flags=STREAMING)
            job = _Job(jobid, watch)
            self.jobs.append(job)
            watch.then(self._on_event, job, EventlogParser())

    def counts(self):
        return state_counts(self.jobs)

    def run(self):
        """Follow the jobs until all are clean; returns the largest exit code (as
        ``flux job attach`` computes it: 1 for a job that never finished or failed
        with an exception)."""
        from flux_launch.proto.job import exit_code

        if self.left:
            self.h.reactor_run()
        return max((exit_code(j.status) or (1 if j.exception else 0) if j.status is not None else 1
                    for j in self.jobs), default=0)

    def _on_event(self, fut, job, parser):
        from flux_launch.proto.job import is_fatal

        while fut.is_ready():
            try:
                value = fut.get()["value"]
            except OSError as exc:
                if not job.clean:  # the stream ended first: an unknown job
                    self.missing.append(job.jobid)
                    job.exception = {"note": exc.strerror}
                    self._clean(job)
                return
            if job.clean:
                continue
            for ev in parser.feed(value):
                name = ev.get("name")
                ctx = ev.get("context") or {}
                if name == "exception" and is_fatal(ctx) and job.exception is None:
                    job.exception = ctx
                elif name == "start":
                    job.started = True
                elif name == "finish":
                    job.status = ctx.get("status", 0)
                elif name == "clean":
                    from flux_launch.client.handle import NORESPONSE

                    self.h.rpc("job-info.eventlog-watch-cancel", {"matchtag": fut.matchtag}, flags=NORESPONSE)
                    self._clean(job)
                    break
        if self.on_change is not None:
            self.on_change()

    def _clean(self, job):
        job.clean = True
        self.left -= 1
        if self.left <= 0:
            self.h.reactor_stop()


def attach(h, jobid, cmd, label, stdin, jps):
    """``flux run --progress``: ``attach.attach`` with the job's state as a bar."""
    from flux_launch.cli.attach import _Attach

    class _Shown(_Attach):
        def _on_main(self, main):
            super()._on_main(main)
            progress.update()

    a = _Shown(h, jobid, cmd, label, stdin)
    progress = Progress(1, lambda: state_counts([a]), jps).start(h)
    try:
        return a.run()
    finally:
        progress.stop()
