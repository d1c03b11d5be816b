"""Job output as a stream: line buffering and ``-u``, partial last lines, UTF-8
characters cut by pipe reads, bytes that are not UTF-8, labels inside
``--output`` files, the C and Python escapers giving the same bytes, flow control
towards a stalled reader, and big output kept across a restart."""

import fcntl
import json
import os
import select
import subprocess
import sys
import termios
import time

import pytest

from flux_launch.testing import BIN, Instance

pytestmark = pytest.mark.e2e

FLUX = os.path.join(BIN, "flux")


@pytest.fixture(scope="module")
def inst2():
    with Instance(size=2) as inst:
        yield inst


# ---- helpers --------------------------------------------------------------------------


def _run(inst, *args, env=None, timeout=120, check=True):
    """``flux ARGS`` in the instance with byte-exact stdout and stderr."""
    return inst.flux(*args, env=env, timeout=timeout, check=check, text=False)


def _last_job(inst):
    return inst.flux("job", "last").stdout.strip()


def _output_eventlog(inst, jobid):
    """The entries of the job's ``guest.output`` eventlog (dicts)."""
    text = inst.flux("job", "info", jobid, "guest.output").stdout
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def _data(entries, stream):
    """The ``context`` of every data entry of ``stream`` that carries data."""
    return [e["context"] for e in entries
            if e.get("name") == "data" and e["context"].get("stream") == stream and "data" in e["context"]]


def _same(actual, expected, what):
    """Assert two byte strings are equal, naming the first difference (not MBs of repr)."""
    if actual == expected:
        return
    n = next((i for i, (a, b) in enumerate(zip(actual, expected)) if a != b), min(len(actual), len(expected)))
    raise AssertionError(f"{what}: {len(actual)} bytes, expected {len(expected)}; first difference at "
                         f"offset {n}: got {actual[max(0, n - 40):n + 40]!r}, "
                         f"expected {expected[max(0, n - 40):n + 40]!r}")


def _rss_kib(pid, field="VmRSS"):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise AssertionError(f"no {field} in /proc/{pid}/status")


def _wait_pipe_full(fd, timeout=30.0):
    """Wait until the writer has filled the pipe we do not read (it is then stalled).
    A 64 KiB pipe is 16 page slots and a write that does not fit the last page's
    room takes a new slot, so a full pipe may hold less than 64 KiB (57344 bytes
    seen): full is at least half of it and no change for half a second."""
    deadline = time.monotonic() + timeout
    buf = bytearray(4)
    last, same = -1, 0
    while time.monotonic() < deadline:
        fcntl.ioctl(fd, termios.FIONREAD, buf)
        queued = int.from_bytes(buf, sys.byteorder)
        same = same + 1 if queued == last else 0
        if queued >= 32768 and same >= 5:
            return queued
        last = queued
        time.sleep(0.1)
    raise AssertionError(f"the pipe never filled up ({last} bytes queued)")


def _read_all(proc, timeout=120):
    """Everything on ``proc.stdout`` to EOF, and its exit code."""
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, err = proc.communicate()
        raise AssertionError(f"reader still not done after {timeout}s; got {len(out)} bytes; stderr {err!r}") from None
    return out, err, proc.returncode


# ---- line buffering and partial lines -------------------------------------------------


def test_stdout_is_line_buffered_by_default_and_not_with_u(inst2):
    """Default: a line written in two pieces is one entry; -u: each piece is sent as read."""
    r = _run(inst2, "run", "sh", "-c", "printf abc; sleep 0.3; echo def")
    assert r.stdout == b"abcdef\n"
    entries = _output_eventlog(inst2, _last_job(inst2))
    assert [c["data"] for c in _data(entries, "stdout")] == ["abcdef\n"], entries
    # -u: the task waits until "abc" is in the eventlog before it writes the rest,
    # so this does not depend on how fast the shell reads.
    script = ("printf abc; i=0; until flux job info $FLUX_JOB_ID guest.output | grep -q '\"data\":\"abc\"'; do "
              "i=$((i+1)); [ $i -gt 600 ] && break; sleep 0.05; done; echo def")
    r = _run(inst2, "run", "-u", "sh", "-c", script)
    assert r.stdout == b"abcdef\n"
    entries = _output_eventlog(inst2, _last_job(inst2))
    assert [c["data"] for c in _data(entries, "stdout")] == ["abc", "def\n"], entries


def test_partial_last_line_is_delivered_at_eof(inst2):
    """A last line without newline must not be lost (nor get a newline unless labelled)."""
    assert _run(inst2, "run", "printf", "no newline").stdout == b"no newline"
    assert _run(inst2, "run", "-l", "printf", "no newline").stdout == b"0: no newline\n"
    r = _run(inst2, "run", "-n2", "-l", "sh", "-c", "printf 'a\\nb'; printf 'c\\nd' >&2")
    assert sorted(r.stdout.splitlines(keepends=True)) == [b"0: a\n", b"0: b\n", b"1: a\n", b"1: b\n"]
    assert sorted(r.stderr.splitlines(keepends=True)) == [b"0: c\n", b"0: d\n", b"1: c\n", b"1: d\n"]
    r = _run(inst2, "run", "sh", "-c", "printf 'x\\ny'; printf 'err tail' >&2")
    assert (r.stdout, r.stderr) == (b"x\ny", b"err tail")


# ---- UTF-8 and bytes that are not ---------------------------------------------------------


@pytest.mark.parametrize("stream,flags", [("stderr", []), ("stdout", ["-u"])])
def test_utf8_character_cut_between_writes_arrives_whole(inst2, stream, flags):
    """A character written in two pieces is held back until whole, not sent as base64."""
    redirect = " >&2" if stream == "stderr" else ""
    r = _run(inst2, "run", *flags, "sh", "-c", f"printf 'x\\303'{redirect}; sleep 0.3; printf '\\251\\n'{redirect}")
    assert getattr(r, stream) == "xé\n".encode(), r
    entries = _output_eventlog(inst2, _last_job(inst2))
    data = _data(entries, stream)
    assert data and all("encoding" not in c for c in data), entries
    assert "".join(c["data"] for c in data) == "xé\n", entries


def test_invalid_utf8_passes_byte_for_byte_as_base64(inst2):
    """Bytes that are not UTF-8 are neither dropped nor replaced; the entry is base64."""
    raw = b"text \xff\xfe more\nline2 \xc3\n"
    r = _run(inst2, "run", "sh", "-c", "printf 'text \\377\\376 more\\nline2 \\303\\n'; "
             "printf 'e \\200\\n' >&2")
    assert (r.stdout, r.stderr) == (raw, b"e \x80\n")
    entries = _output_eventlog(inst2, _last_job(inst2))
    assert any(c.get("encoding") == "base64" for c in _data(entries, "stdout")), entries
    assert any(c.get("encoding") == "base64" for c in _data(entries, "stderr")), entries
    r = _run(inst2, "run", "-l", "sh", "-c", "printf 'text \\377\\376 more\\nline2 \\303\\n'")
    assert r.stdout == b"0: text \xff\xfe more\n0: line2 \xc3\n"


# ---- labels inside --output files ---------------------------------------------------------


def test_label_io_labels_lines_in_a_job_wide_output_file(inst2, tmp_path):
    """-l with --output=out.{{id}}: every line of both ranks and both streams is labelled."""
    r = _run(inst2, "run", "-N2", "-n2", "-l", f"--cwd={tmp_path}", "--output=out.{{id}}", "sh", "-c",
             "echo a; echo b >&2")
    assert r.stdout == b""
    files = list(tmp_path.glob("out.*"))
    assert len(files) == 1, files
    assert sorted(files[0].read_bytes().splitlines(keepends=True)) == [b"0: a\n", b"0: b\n", b"1: a\n", b"1: b\n"]


def test_label_io_labels_lines_in_per_task_files(inst2, tmp_path):
    """-l with --output=out.{{taskid}}: the task's own file has its labelled lines, a
    line written in pieces gets one label, a partial last line gets one and a newline."""
    _run(inst2, "run", "-n2", "-l", f"--cwd={tmp_path}", "--output=out.{{taskid}}", "sh", "-c",
         "echo a; printf 'b'; sleep 0.2; printf 'c\\nd'")
    assert (tmp_path / "out.0").read_bytes() == b"0: a\n0: bc\n0: d\n"
    assert (tmp_path / "out.1").read_bytes() == b"1: a\n1: bc\n1: d\n"
    _run(inst2, "run", "-l", f"--output={tmp_path}/o.txt", f"--error={tmp_path}/e.txt", "sh", "-c",
         "echo out; echo err >&2")
    assert (tmp_path / "o.txt").read_bytes() == b"0: out\n"
    assert (tmp_path / "e.txt").read_bytes() == b"0: err\n"
    # without -l, the files hold the bytes as written
    _run(inst2, "run", f"--output={tmp_path}/plain.txt", "sh", "-c", "echo out; printf 'x'")
    assert (tmp_path / "plain.txt").read_bytes() == b"out\nx"


def test_unbuffered_output_still_goes_to_the_output_file(inst2, tmp_path):
    """-u with --output: the file gets the output (-u changes buffering, not where it goes)."""
    r = _run(inst2, "run", "-u", f"--output={tmp_path}/u.txt", "sh", "-c", "echo out; echo err >&2")
    assert (r.stdout, r.stderr) == (b"", b"")
    assert sorted((tmp_path / "u.txt").read_bytes().splitlines(keepends=True)) == [b"err\n", b"out\n"]


# ---- the C and Python paths ---------------------------------------------------------------

# Run as a task and locally: chunks(rank) gives the (stream, bytes) a task writes,
# each one a separate write (and flush), so pipe reads cut lines and characters.
GENERATOR = r'''
import os
import random
import sys
import time


def _long(rnd, n):
    alphabet = [b"a", b"Z", b"0", b" ", b'"', b"\\", b"/", b"\t", b"\x01", b"\x1f", b"\x7f",
                "é".encode(), "€".encode(), "中".encode(), "😀".encode(), "\u2028".encode()]
    out = []
    size = 0
    while size < n:
        piece = rnd.choice(alphabet) * rnd.randint(1, 40)
        out.append(piece)
        size += len(piece)
    return b"".join(out)


def chunks(rank):
    rnd = random.Random(4321 + rank)
    tag = f"rank {rank}".encode()
    yield "stdout", b"plain ascii line from " + tag + b"\n"
    yield "stdout", bytes(c for c in range(32) if c != 10) + b"\x7f controls\n"
    yield "stdout", b'quotes " and \\ backslashes \\n \\u0041 \\" / end\n'
    yield "stdout", "multibyte é ü ñ € 中文 😀 \u2028 \u2029 \ufeff\n".encode()
    yield "stdout", b"invalid \xff\xfe lone \x80 overlong \xc0\xaf surrogate \xed\xa0\x80 cut \xe2\x82 end\n"
    yield "stdout", b"after invalid: fine again \xc3\xa9\n"
    long1 = _long(rnd, 310 * 1024)
    for i in range(0, len(long1), 70000):  # a 310 KiB line in pieces cut anywhere
        yield "stdout", long1[i:i + 70000]
    yield "stdout", b"\n"
    yield "stdout", _long(rnd, 1536 * 1024) + b"\n"  # longer than the shell's line limit
    yield "stdout", b"euro cut \xe2\x82"
    yield "stdout", b"\xac here\n"
    yield "stdout", _long(rnd, 200 * 1024) + b" bad \xff inside a long line\n"
    for i in range(50):
        yield "stdout", f"line {i} of {rank} ".encode() + _long(rnd, rnd.randint(0, 300)) + b"\n"
    yield "stdout", b"last line without newline \xc3\xa9"
    yield "stderr", b"err plain\n"
    yield "stderr", b"err cut \xf0\x9f"
    yield "stderr", b"\x98\x80 smile\n"
    yield "stderr", b"err bad \xf0\x9f then ascii\n"
    yield "stderr", b'err "q" \\ \x02\n'
    yield "stderr", _long(rnd, 400 * 1024) + b"\n"
    yield "stderr", b"err tail \xe4\xb8"
    yield "stderr", b"\xad"


if __name__ == "__main__":
    rank = int(os.environ.get("FLUX_TASK_RANK", "0"))
    streams = {"stdout": sys.stdout.buffer, "stderr": sys.stderr.buffer}
    for stream, data in chunks(rank):
        streams[stream].write(data)
        streams[stream].flush()
        if len(data) < 100:
            time.sleep(0.002)
'''


def _expected(rank):
    ns = {"__name__": "generator"}
    exec(GENERATOR, ns)
    out = {"stdout": b"", "stderr": b""}
    for stream, data in ns["chunks"](rank):
        out[stream] += data
    return out


def _labelled(rank, data):
    lines = data.split(b"\n")
    if lines[-1] == b"":
        lines.pop()
    return [f"{rank}: ".encode() + line + b"\n" for line in lines]


def _by_rank(output):
    """Labelled output lines (split at newlines only) by the rank in their label."""
    ranks = {}
    for line in output.split(b"\n")[:-1]:
        line += b"\n"
        rank = line.split(b": ", 1)[0].decode(errors="replace")
        ranks.setdefault(rank, []).append(line)
    return ranks


@pytest.mark.parametrize("label", [False, True], ids=["plain", "labelled"])
@pytest.mark.parametrize("accel", ["c", "py"])
def test_c_and_python_paths_give_the_expected_bytes(inst2, tmp_path, accel, label):
    """FLUX_LAUNCH_ACCEL=c and =py must both pass every byte through unchanged."""
    if accel == "c":
        from flux_launch._accel import BACKEND, select

        try:
            select("c")
        except ImportError:
            pytest.skip(f"the C accelerations are not built (BACKEND={BACKEND})")
    gen = tmp_path / "gen.py"
    gen.write_text(GENERATOR)
    env = {"FLUX_LAUNCH_ACCEL": accel}
    if not label:
        r = _run(inst2, "run", "-n1", sys.executable, str(gen), env=env)
        want = _expected(0)
        _same(r.stdout, want["stdout"], f"stdout with FLUX_LAUNCH_ACCEL={accel}")
        _same(r.stderr, want["stderr"], f"stderr with FLUX_LAUNCH_ACCEL={accel}")
        return
    r = _run(inst2, "run", "-N2", "-n2", "-l", sys.executable, str(gen), env=env)
    for stream in ("stdout", "stderr"):
        got = _by_rank(getattr(r, stream))
        assert sorted(got) == ["0", "1"], (stream, sorted(got))
        for rank in (0, 1):
            want = _labelled(rank, _expected(rank)[stream])
            _same(b"".join(got[str(rank)]), b"".join(want), f"{stream} of rank {rank}, labelled, accel={accel}")


# ---- flow control, big output, restart ----------------------------------------------------


def test_stalled_front_end_neither_blocks_the_job_nor_grows_the_broker():
    """A `flux run` whose stdout is not read: the job still finishes, the broker keeps
    the output in the KVS (not in memory), and all of it arrives once read."""
    total = 100_000_000
    line = b"x" * 66 + b"\n"
    with Instance(size=1) as inst:
        _run(inst, "run", "sh", "-c", "seq 100000")  # warm up: modules, caches, a first job
        broker = inst.broker_pids()[0]
        peak_before = _rss_kib(broker, "VmHWM")
        cmd = f"yes {line[:-1].decode()} | head -c {total}"
        proc = subprocess.Popen([FLUX, "run", "-n1", "--job-name=bigout", "sh", "-c", cmd],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL,
                                env=inst.env)
        try:
            _wait_pipe_full(proc.stdout.fileno())
            rows = inst.flux("jobs", "-a", "-n", "-o", "{id.f58} {name}").stdout.splitlines()
            jobid = next((row.split()[0] for row in rows if row.endswith(" bigout")), None)
            assert jobid, rows
            # the job ends while nobody reads its output
            r = inst.flux("job", "wait-event", "-t", "90", jobid, "finish", check=False, timeout=100)
            assert r.returncode == 0, f"{r.stderr}\n{inst.job_eventlog(jobid)}"
            inst.flux("job", "wait-event", "-t", "30", jobid, "clean", timeout=40)
            assert proc.poll() is None, "flux run ended before its output was read"
            peak_after = _rss_kib(broker, "VmHWM")  # the peak: a buffer freed since still counts
            grown = (peak_after - peak_before) / 1024
            assert grown < 50, f"the broker's peak RSS grew by {grown:.0f} MiB for {total >> 20} MiB of " \
                               f"output held for a stalled reader ({peak_before} -> {peak_after} KiB)"
            out, err, rc = _read_all(proc)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.communicate()
    assert rc == 0, err
    assert len(out) == total, f"flux run exited {rc} after printing {len(out)} of {total} bytes; stderr {err!r}"
    whole, rest = divmod(total, len(line))
    assert out == line * whole + line[:rest]


def test_big_output_survives_a_restart_on_the_same_statedir(tmp_path):
    """Output stored in blob files is read back by a new instance: attach prints it all."""
    statedir = tmp_path / "state"
    data = tmp_path / "data.bin"
    data.write_bytes(os.urandom(2_400_000))
    script = f"echo small first; base64 -w 76 {data}; echo small err >&2; echo small last"
    with Instance(size=1, attrs={"statedir": statedir}) as inst:
        # a long batch delay makes every batch a full 1 MiB append, so the blob path is taken
        # whatever the machine's speed (with 5 ms, a slow reader side sends smaller ones to sqlite)
        first = _run(inst, "run", "-o", "output.batch-timeout=2", "sh", "-c", script)
        jobid = _last_job(inst)
        assert inst.stop() == 0
    assert len(first.stdout) > 3_000_000 and first.stdout.startswith(b"small first\n")
    assert first.stdout.endswith(b"\nsmall last\n") and first.stderr == b"small err\n"
    blobs = sum(p.stat().st_size for p in (statedir / "blobs").iterdir())
    assert blobs >= 2_000_000, list(statedir.iterdir())
    with Instance(size=1, attrs={"statedir": statedir}) as inst:
        again = _run(inst, "job", "attach", jobid)
    _same(again.stdout, first.stdout, "stdout of attach after the restart")
    assert again.stderr == first.stderr


def test_stalled_attach_of_a_finished_job_prints_all_of_its_output(inst2):
    """`flux job attach` that nobody reads for a while still gets every byte, in order."""
    n = 3_000_000
    jobid = inst2.flux("submit", "seq", str(n)).stdout.strip()
    inst2.flux("job", "wait-event", "-t", "60", jobid, "clean", timeout=70)
    proc = subprocess.Popen([FLUX, "job", "attach", jobid], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            stdin=subprocess.DEVNULL, env=inst2.env)
    try:
        _wait_pipe_full(proc.stdout.fileno())
        time.sleep(1.0)  # let the broker's queue for it back up
        assert proc.poll() is None
        # read slowly at first, then to the end
        head = b""
        for _ in range(5):
            select.select([proc.stdout], [], [], 5)
            head += os.read(proc.stdout.fileno(), 65536)
            time.sleep(0.1)
        out, err, rc = _read_all(proc)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert rc == 0, err
    expected = "".join(f"{i}\n" for i in range(1, n + 1)).encode()
    _same(head + out, expected, "stdout of the stalled attach")
