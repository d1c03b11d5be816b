"""Real instances for tests: ``Instance`` starts ``flux start --test-size=N`` and
always tears it down.

    with Instance(size=4) as inst:
        out = inst.flux("exec", "-r", "all", "flux", "getattr", "rank").stdout

The instance's initial program waits on its stdin; ``stop()`` closes it, so the
instance shuts down the way a user's would, and anything still alive after the
timeout is killed (SIGKILL to the whole process group) and reported. Every command
runs with an environment cleaned of ``PMI*``, ``SLURM*`` and ``FLUX_*`` (except
``FLUX_LAUNCH_ACCEL``) and with a timeout; a failed command raises ``CommandError``
whose message holds its stdout, stderr and the broker log.
"""

import os
import signal
import subprocess
import sys
import tempfile
import time

BIN = os.path.dirname(sys.executable)
KEEP = ("FLUX_LAUNCH_ACCEL", "FLUX_LAUNCH_DEBUG")


def clean_env(extra=None):
    """``os.environ`` without PMI*, SLURM*, FLUX_* (our FLUX_LAUNCH_ACCEL stays), with
    this interpreter's bin directory first on PATH."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("PMI_", "SLURM", "FLUX_", "OMPI_", "I_MPI_")) or k in KEEP}
    env["PATH"] = BIN + os.pathsep + env.get("PATH", "")
    if extra:
        env.update(extra)
    return env


class CommandError(AssertionError):
    """A command in a test instance failed; the message has everything to debug it."""


def _shown(out, text):
    """Command output for a failure message: text as it is, bytes as the repr of
    their first 2000."""
    return out if text or out is None else repr(out[:2000])


class Instance:
    """``flux start --test-size=size`` with attributes ``attrs`` (a dict) and
    other ``flux start`` options ``args`` (``["--test-hosts=node[0-3]"]``).

    Raises:
        CommandError: the instance did not come up within ``timeout`` seconds.
    """

    def __init__(self, size=1, attrs=None, timeout=60, env=None, args=()):
        self.size = size
        self.args = list(args)
        self.attrs = dict(attrs or {})
        self.timeout = timeout
        self.env = clean_env(env)
        self.proc = None
        self.uri = None
        self.returncode = None
        self._log = tempfile.NamedTemporaryFile(prefix="flux-broker-log-", suffix=".txt", delete=False)

    def start(self):
        cmd = [os.path.join(BIN, "flux"), "start", f"--test-size={self.size}"]
        for name, value in self.attrs.items():
            cmd.append(f"-S{name}={value}")
        cmd += self.args + ["sh", "-c", 'printf "%s\\n" "$FLUX_URI"; exec cat >/dev/null']
        self.proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=self._log, env=self.env, start_new_session=True)
        line = _readline(self.proc.stdout, self.timeout)
        if not line.startswith("local://"):
            self.kill()
            raise CommandError(f"instance of size {self.size} did not start:\n{self.log()}")
        self.uri = line.strip()
        self.env["FLUX_URI"] = self.uri
        return self

    def log(self):
        """The brokers' stderr so far."""
        try:
            with open(self._log.name, errors="replace") as f:
                return f.read()
        except OSError:
            return ""

    def run(self, *cmd, check=True, timeout=60, input=None, env=None, text=True, cwd=None):
        """Run ``cmd`` inside the instance (in ``cwd``, default this directory);
        returns a ``CompletedProcess`` (text, or
        byte-exact output with ``text=False``, of which failure messages show the
        first 2000 bytes).

        Raises:
            CommandError: it failed (``check``) or ran past ``timeout``.
        """
        full_env = dict(self.env, **(env or {}))
        try:
            res = subprocess.run(list(cmd), capture_output=True, text=text, timeout=timeout,
                                 input=input, env=full_env, stdin=None if input is not None else subprocess.DEVNULL,
                                 cwd=cwd)
        except subprocess.TimeoutExpired as exc:
            raise CommandError(f"{cmd} timed out after {timeout}s\nstdout: {_shown(exc.stdout, text)}\n"
                               f"stderr: {_shown(exc.stderr, text)}\nbroker log:\n{self.log()}") from None
        if check and res.returncode != 0:
            raise CommandError(f"{cmd} exited {res.returncode}\nstdout: {_shown(res.stdout, text)}\n"
                               f"stderr: {_shown(res.stderr, text)}\nbroker log:\n{self.log()}")
        return res

    def flux(self, *args, **kw):
        """``run("flux", *args)``."""
        return self.run(os.path.join(BIN, "flux"), *args, **kw)

    def job_eventlog(self, jobid):
        """A job's eventlog as text, for failure messages (never raises)."""
        r = self.flux("job", "eventlog", str(jobid), check=False)
        return f"eventlog of {jobid}:\n{r.stdout}{r.stderr}"

    def broker_pids(self):
        """PIDs of the broker processes, by rank (from ``broker.pid``)."""
        out = self.flux("exec", "-r", "all", "-l", "flux", "getattr", "broker.pid").stdout
        pids = {}
        for line in out.splitlines():
            rank, _, pid = line.partition(": ")
            pids[int(rank)] = int(pid)
        return pids

    def stop(self, timeout=None):
        """Close the initial program's stdin and wait for the instance to exit;
        returns ``flux start``'s exit code.

        Raises:
            CommandError: it did not exit within the timeout (it is then killed).
        """
        if self.proc is None or self.returncode is not None:
            return self.returncode
        try:
            self.proc.stdin.close()
        except OSError:
            pass
        try:
            self.returncode = self.proc.wait(timeout or self.timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            raise CommandError(f"instance did not shut down within {timeout or self.timeout}s:\n{self.log()}") from None
        finally:
            self.proc.stdout.close()
        return self.returncode

    def kill(self):
        """SIGKILL everything the instance started (its own process group)."""
        if self.proc is not None and self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            self.proc.wait()
        if self.proc is not None:
            self.returncode = self.proc.returncode

    def close(self):
        try:
            self.stop()
        finally:
            self.kill()
            try:
                os.unlink(self._log.name)
            except OSError:
                pass

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.close()


def _readline(stream, timeout):
    import selectors

    sel = selectors.DefaultSelector()
    sel.register(stream, selectors.EVENT_READ)
    deadline = time.monotonic() + timeout
    buf = b""
    while not buf.endswith(b"\n"):
        left = deadline - time.monotonic()
        if left <= 0 or not sel.select(left):
            break
        chunk = os.read(stream.fileno(), 4096)
        if not chunk:
            break
        buf += chunk
    sel.close()
    return buf.decode(errors="replace")


def flux(*args, timeout=60, env=None, input=None):
    """Run ``flux ARGS`` outside any instance (e.g. ``flux start ...``) with a clean
    environment; returns a ``CompletedProcess`` (text). Raises ``CommandError`` on a
    timeout (the command's process group is killed)."""
    proc = subprocess.Popen([os.path.join(BIN, "flux"), *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            stdin=subprocess.PIPE if input is not None else subprocess.DEVNULL, text=True,
                            env=clean_env(env), start_new_session=True)
    try:
        out, err = proc.communicate(input, timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        out, err = proc.communicate()
        raise CommandError(f"flux {' '.join(args)} timed out after {timeout}s\nstdout: {out}\nstderr: {err}") from None
    return subprocess.CompletedProcess(proc.args, proc.returncode, out, err)


def poll(fn, timeout=20.0):
    """Call ``fn`` every 0.1 s until it returns a true value or ``timeout`` seconds
    pass; returns its last value (false on a timeout)."""
    deadline = time.monotonic() + timeout
    while True:
        value = fn()
        if value or time.monotonic() > deadline:
            return value
        time.sleep(0.1)


def wait_gone(pid, timeout=10.0):
    """True once no process ``pid`` exists; False if it still does after ``timeout``."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return True
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
