"""The job vocabulary, once: states and results (RFC 21), submit flags, urgency,
wait statuses and the exception event.

States: NEW, DEPEND, PRIORITY, SCHED, RUN, CLEANUP, INACTIVE (bit ``1 << index``
in ``job-list`` filters). Results (once inactive): COMPLETED (exit status 0),
FAILED, CANCELED (a ``cancel`` exception), TIMEOUT (a ``timeout`` exception).

A wait status is the ``wait(2)`` status word, as in ``finish`` events: the exit
code in bits 8-15, or the signal in bits 0-6.
"""

STATES = ("NEW", "DEPEND", "PRIORITY", "SCHED", "RUN", "CLEANUP", "INACTIVE")
STATE_BITS = {name: 1 << i for i, name in enumerate(STATES)}
STATE_SINGLE = {"NEW": "N", "DEPEND": "D", "PRIORITY": "P", "SCHED": "S", "RUN": "R", "CLEANUP": "C",
                "INACTIVE": "I"}
PENDING = ("DEPEND", "PRIORITY", "SCHED")
RUNNING = ("RUN", "CLEANUP")
RESULTS = ("COMPLETED", "FAILED", "CANCELED", "TIMEOUT")
RESULT_BITS = {"COMPLETED": 1, "FAILED": 2, "CANCELED": 4, "TIMEOUT": 8}
RESULT_ABBREV = {"COMPLETED": "CD", "FAILED": "F", "CANCELED": "CA", "TIMEOUT": "TO"}

URGENCY_HOLD = 0
URGENCY_DEFAULT = 16
URGENCY_EXPEDITE = 31

# job-ingest.submit flags (flux-core's FLUX_JOB_*)
FLAG_DEBUG = 1
FLAG_WAITABLE = 4
FLAG_NOVALIDATE = 8
SUBMIT_FLAGS = {"debug": FLAG_DEBUG, "waitable": FLAG_WAITABLE, "novalidate": FLAG_NOVALIDATE}


def exit_code(status):
    """The exit code a wait status means to a shell: the code, or 128+N for a
    process killed by signal N (``None`` stays ``None``)."""
    if status is None:
        return None
    sig = status & 0x7F
    return 128 + sig if sig else (status >> 8) & 0xFF


def status_code(status):
    """The exit code byte of a wait status (bits 8-15), 0 for a signal."""
    return (status >> 8) & 0xFF


def term_signal(status):
    """The signal that killed the process, else 0."""
    return status & 0x7F


def describe_status(status):
    """``exited with exit code N`` or ``killed by signal N`` (flux-core's words)."""
    sig = status & 0x7F
    return f"killed by signal {sig}" if sig else f"exited with exit code {(status >> 8) & 0xFF}"


def waitstatus(code):
    """The wait status of a process that exited with ``code`` (128+N: signal N)."""
    if 128 < code < 128 + 64:
        return code - 128
    return (code & 0xFF) << 8


def exception_context(etype, note="", severity=0, userid=None):
    """The context of an ``exception`` event (RFC 21)."""
    ctx = {"type": etype, "severity": severity, "note": note}
    if userid is not None:
        ctx["userid"] = userid
    return ctx


def raise_payload(jobid, etype, note="", severity=0):
    """The payload of ``job-manager.raise`` (``flux cancel``: type ``cancel``)."""
    return {"id": int(jobid), "type": etype, "severity": severity, "note": note}


def is_fatal(ctx):
    """True when an exception event's context ends the job (severity 0)."""
    return ctx.get("severity", 0) == 0
