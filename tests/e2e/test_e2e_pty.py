"""Tasks on a pty (``-o pty``, ``pty.ranks``, ``pty.interactive``) and ``flux alloc``
on a terminal: an interactive shell in the nested instance that prompts, reads
its keys raw (Ctrl-C interrupts the command it runs), and whose exit code is
the command's."""

import os
import pty
import select
import time

import pytest

from flux_launch.testing import Instance

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def inst2():
    with Instance(size=2) as inst:
        yield inst


def test_pty_all_tasks(inst2):
    out = inst2.flux("run", "-n2", "-l", "-o", "pty", "sh", "-c", "tty; test -t 0 && echo in-tty").stdout
    lines = sorted(out.replace("\r", "").splitlines())
    assert [line.split(": ", 1)[0] for line in lines] == ["0", "0", "1", "1"], out
    assert all(line.split(": ", 1)[1] in ("in-tty",) or line.split(": ", 1)[1].startswith("/dev/pts/")
               for line in lines), out


def test_pty_ranks_and_interactive_select_tasks(inst2):
    out = inst2.flux("run", "-n2", "-l", "-o", "pty.ranks=1", "tty", check=False).stdout.replace("\r", "")
    assert "0: not a tty" in out and "1: /dev/pts/" in out, out
    out = inst2.flux("run", "-n2", "-l", "-o", "pty.interactive", "tty", check=False).stdout.replace("\r", "")
    assert "0: /dev/pts/" in out and "1: not a tty" in out, out


def test_pty_stdin_and_its_end(inst2):
    r = inst2.flux("run", "-o", "pty", "sh", "-c", "read x; echo got-$x; cat; echo after-eof",
                   input="hello\nmore\n", timeout=60)
    out = r.stdout.replace("\r", "")
    assert "got-hello" in out and "after-eof" in out, out  # the end of stdin ends cat (VEOF)


def test_pty_exit_code_and_partial_line(inst2):
    r = inst2.flux("run", "-o", "pty", "sh", "-c", "printf no-newline; exit 4", check=False)
    assert r.returncode == 4
    assert r.stdout.endswith("no-newline"), r.stdout


def test_pty_bad_ranks_one_line_nothing_submitted(inst2):
    before = inst2.flux("jobs", "-a", "-n").stdout
    r = inst2.flux("run", "-o", "pty.ranks=foo", "true", check=False)
    assert r.returncode == 1
    assert r.stderr.strip() == "flux-run: -o pty.ranks: 'foo' is not an idset or 'all' (e.g. pty.ranks=0-3)"
    assert inst2.flux("jobs", "-a", "-n").stdout == before


def test_alloc_without_terminal_has_no_pty(inst2):
    r = inst2.flux("alloc", "-N1", "tty", input="", check=False)
    assert r.stdout.strip() == "not a tty", r.stdout


class _Term:
    """A command run on a pty of the test's, read and typed into."""

    def __init__(self, argv, env):
        self.pid, self.fd = pty.fork()
        if self.pid == 0:
            try:
                os.execvpe(argv[0], argv, env)
            finally:
                os._exit(127)
        self.out = b""

    def read_until(self, text, timeout=30):
        deadline = time.monotonic() + timeout
        while text.encode() not in self.out and time.monotonic() < deadline:
            r, _, _ = select.select([self.fd], [], [], 0.1)
            if r:
                try:
                    self.out += os.read(self.fd, 4096)
                except OSError:
                    break
        assert text.encode() in self.out, self.out.decode(errors="replace")

    def type(self, data):
        os.write(self.fd, data)

    def wait(self, timeout=30):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            pid, status = os.waitpid(self.pid, os.WNOHANG)
            if pid:
                os.close(self.fd)
                return os.waitstatus_to_exitcode(status)
            try:
                if select.select([self.fd], [], [], 0.1)[0]:
                    self.out += os.read(self.fd, 4096)
            except OSError:
                time.sleep(0.05)
        os.kill(self.pid, 9)
        raise AssertionError("flux alloc did not exit: " + self.out.decode(errors="replace"))


def test_alloc_interactive_shell_on_a_pty(inst2):
    env = dict(inst2.env, PS1="PROMPT$ ", TERM="dumb")
    term = _Term(["flux", "alloc", "-N1", "bash", "--norc", "--noprofile", "-i"], env)
    try:
        term.read_until("PROMPT$ ")  # an interactive shell prompts: its stdin is a terminal
        term.type(b"tty; echo $((6*7)); flux getattr instance-level\r")
        term.read_until("42")
        term.read_until("PROMPT$ ")
        term.type(b"sleep 120\r")
        time.sleep(0.5)
        term.type(b"\x03")  # Ctrl-C: a byte for the pty, which interrupts sleep
        term.type(b"echo after-$((1+1))\r")
        term.read_until("after-2", timeout=60)
        term.type(b"exit 3\r")
        code = term.wait()
    finally:
        try:
            os.kill(term.pid, 9)
        except ProcessLookupError:
            pass
    text = term.out.decode(errors="replace").replace("\r", "")
    assert "/dev/pts/" in text and "\n1\n" in text, text  # on a pty, at level 1
    assert code == 3, text


def test_pty_with_input_file(inst2, tmp_path):
    """--input=FILE stays the task's stdin; stdout is the pty (its controlling
    terminal), and the input plugin's file is closed once, by it."""
    src = tmp_path / "in.txt"
    src.write_text("from-the-file\n")
    r = inst2.flux("run", "-o", "pty", f"--input={src}", "sh", "-c", "cat; test -t 1 && echo out-tty; tty",
                   check=False)
    out = r.stdout.replace("\r", "")
    assert r.returncode == 1, out  # tty: stdin is the file, not a terminal
    assert "from-the-file" in out and "out-tty" in out and "not a tty" in out, out
