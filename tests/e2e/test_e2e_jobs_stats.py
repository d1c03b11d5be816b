"""``flux jobs`` as flux-core's flux-jobs(1): --stats and --stats-only (their line
and exit status), --json, named formats (help, get-config, configuration files,
FLUX_JOBS_FORMAT_DEFAULT), --sort, --since, --name, -i/--include, --color, the
truncation warning of -c, and bad input refused in one line."""

import json
import re

import pytest

from flux_launch.testing import Instance

pytestmark = pytest.mark.e2e


class Jobs:
    """A 1-broker instance with one job of each kind: running, held (pending),
    completed, failed, canceled."""

    def __init__(self, inst):
        self.inst = inst

        def submit(*args):
            return inst.flux("submit", *args).stdout.strip()

        self.completed = submit("true")
        self.failed = submit("false")
        self.canceled = submit("--urgency=0", "--job-name=gone", "true")
        inst.flux("cancel", self.canceled)
        self.running = submit("sleep", "300")
        self.held = submit("--urgency=0", "--job-name=held", "true")
        for jobid, event in ((self.completed, "clean"), (self.failed, "clean"), (self.canceled, "clean"),
                             (self.running, "start"), (self.held, "priority")):
            inst.flux("job", "wait-event", "-t", "30", jobid, event, timeout=40)

    def jobs(self, *args, **kw):
        return self.inst.flux("jobs", *args, **kw)


@pytest.fixture(scope="module")
def jobs():
    with Instance(size=1) as inst:
        yield Jobs(inst)


def _one_line_error(r, code, text):
    """``r`` failed with ``code`` and one line saying ``text`` (a usage error, 2:
    after the usage line, as every command's)."""
    assert r.returncode == code and r.stdout == "", r
    lines = r.stderr.splitlines()
    if code == 2:
        assert lines[0].startswith("usage: flux jobs"), r.stderr
        lines = lines[1:]
    assert len(lines) == 1 and text in lines[0] and "Traceback" not in r.stderr, r.stderr


# ---- --stats, --stats-only -----------------------------------------------------------

STATS = re.compile(r"^(\d+) running, (\d+) completed, (\d+) failed, (\d+) pending, (\d+) inactive purged$")


def test_stats_line_comes_before_the_header(jobs):
    lines = jobs.jobs("--stats").stdout.splitlines()
    # canceled jobs count as failed (flux-core: every unsuccessful end)
    assert lines[0] == "1 running, 1 completed, 2 failed, 1 pending, 0 inactive purged", lines
    assert lines[1].split()[:2] == ["JOBID", "USER"], lines
    assert len(lines) == 4, lines  # the running and the held job, as without --stats
    listed = [line.split()[0] for line in lines[2:]]
    assert sorted(listed) == sorted([jobs.running, jobs.held]), lines


def test_stats_count_every_user_and_state_whatever_the_filters(jobs):
    first = jobs.jobs("--stats", "-n", "-f", "completed", "-o", "{id.f58}").stdout.splitlines()
    assert STATS.match(first[0]) and first[1:] == [jobs.completed], first
    assert first[0] == jobs.jobs("--stats-only").stdout.strip()


def test_stats_only_prints_one_line_and_exits_0_while_jobs_are_active(jobs):
    r = jobs.jobs("--stats-only", "-a", "-o", "{id}")
    assert r.returncode == 0 and r.stdout == "1 running, 1 completed, 2 failed, 1 pending, 0 inactive purged\n", r


def test_stats_only_exits_1_without_active_jobs(make_instance):
    inst = make_instance()
    r = inst.flux("jobs", "--stats-only", check=False)
    assert (r.returncode, r.stdout, r.stderr) == (1, "0 running, 0 completed, 0 failed, 0 pending, "
                                                     "0 inactive purged\n", ""), r
    jobid = inst.flux("submit", "false").stdout.strip()
    inst.flux("job", "wait-event", "-t", "30", jobid, "clean", timeout=40)
    r = inst.flux("jobs", "--stats-only", check=False)
    assert (r.returncode, r.stdout) == (1, "0 running, 0 completed, 1 failed, 0 pending, 0 inactive purged\n"), r


def test_stats_of_a_queue_no_job_is_in_is_an_error(jobs):
    r = jobs.jobs("--stats-only", "-q", "batch", check=False)
    _one_line_error(r, 1, "no stats available for queue batch")


def test_json_and_stats_exclude_each_other(jobs):
    for opt in ("--stats", "--stats-only"):
        _one_line_error(jobs.jobs("--json", opt, check=False), 1, "--json incompatible with --stats")


# ---- --json ------------------------------------------------------------------------------

def test_json_lists_the_jobs_selected(jobs):
    out = json.loads(jobs.jobs("--json", "-a").stdout)
    ids = [int(i) for i in jobs.jobs("-a", "-n", "-o", "{id.dec}").stdout.split()]
    assert [j["id"] for j in out["jobs"]] == ids, out
    running = next(j for j in out["jobs"] if j["id"] == int(jobs.jobs("-n", "-o", "{id.dec}", jobs.running).stdout))
    assert "result" not in running and "t_cleanup" not in running and running["exception"] == {"occurred": False}
    assert running["state"] == "RUN" and running["name"] == "sleep", running


def test_json_of_one_job_is_the_object(jobs):
    failed = json.loads(jobs.jobs("--json", jobs.failed).stdout)
    assert failed["result"] == "FAILED" and failed["success"] is False and failed["state"] == "INACTIVE", failed
    assert failed["t_run"] > 0 and failed["t_cleanup"] > 0 and failed["runtime"] > 0, failed
    assert failed["exception"]["occurred"] is False and failed["returncode"] == 1, failed
    canceled = json.loads(jobs.jobs("--json", jobs.canceled).stdout)
    assert canceled["result"] == "CANCELED" and canceled["exception"]["type"] == "cancel", canceled
    two = json.loads(jobs.jobs("--json", jobs.failed, jobs.canceled).stdout)
    assert [j["result"] for j in two["jobs"]] == ["FAILED", "CANCELED"], two


def test_json_of_an_unknown_job_prints_nothing(jobs):
    r = jobs.jobs("--json", "ƒ4fr", check=False)
    assert r.stdout == "" and "ƒ4fr: no such job" in r.stderr and r.returncode == 1, r


# ---- named formats --------------------------------------------------------------

def test_format_help_and_get_config(jobs):
    out = jobs.jobs("-o", "help").stdout
    for name in ("default", "long", "deps", "endreason"):
        assert re.search(rf"^  {name} +\S", out, re.M), out
    conf = jobs.jobs("-o", "get-config=deps").stdout.splitlines()
    assert conf[0] == "[formats.deps]" and conf[1].startswith('description = "') \
        and conf[2].startswith('format = "{id.f58:>12}'), conf
    _one_line_error(jobs.jobs("-o", "get-config=nosuch", check=False), 1, "no such format 'nosuch'")


def test_formats_of_a_configuration_file(jobs, tmp_path):
    (tmp_path / "flux").mkdir()
    (tmp_path / "flux" / "flux-jobs.toml").write_text(
        '[formats.mine]\ndescription = "Mine"\nformat = "{id.f58} {name}"\n')
    env = {"XDG_CONFIG_HOME": str(tmp_path)}
    assert re.search(r"^  mine +Mine$", jobs.jobs("-o", "help", env=env).stdout, re.M)
    assert jobs.jobs("-n", "-o", "mine", jobs.failed, env=env).stdout == f"{jobs.failed} false\n"
    (tmp_path / "flux" / "flux-jobs.toml").write_text('[formats.default]\nformat = "{id}"\n')
    _one_line_error(jobs.jobs("-o", "help", env=env, check=False), 1, "override of builtin format 'default'")
    (tmp_path / "flux" / "flux-jobs.toml").write_text('[format]\n')
    _one_line_error(jobs.jobs("-o", "deps", env=env, check=False), 1, "invalid key format")


def test_format_default_from_the_environment(jobs):
    env = {"FLUX_JOBS_FORMAT_DEFAULT": "{id.f58}:{name}"}
    assert jobs.jobs("-n", jobs.failed, env=env).stdout == f"{jobs.failed}:false\n"
    assert jobs.jobs("-n", "-o", "{name}", jobs.failed, env=env).stdout == "false\n"


# ---- --sort, filters, -c, --color ---------------------------------------------------

def test_sort_by_fields(jobs):
    names = jobs.jobs("-a", "-n", "--sort=name", "-o", "{name}").stdout.split()
    assert names == sorted(names) and len(names) == 5, names
    assert jobs.jobs("-a", "-n", "--sort=-name", "-o", "{name}").stdout.split() == names[::-1]
    assert jobs.jobs("-a", "-n", "-o", "sort:name {name}").stdout.split() == names
    # --sort wins over the format's sort:
    assert jobs.jobs("-a", "-n", "--sort=-name", "-o", "sort:name {name}").stdout.split() == names[::-1]
    ids = [int(i) for i in jobs.jobs("-a", "-n", "--sort=id", "-o", "{id.dec}").stdout.split()]
    assert ids == sorted(ids), ids


def test_name_since_and_include_select_jobs(jobs):
    assert jobs.jobs("-a", "-n", "--name=false", "-o", "{id.f58}").stdout.split() == [jobs.failed]
    assert jobs.jobs("-a", "-n", "--name=nosuch").stdout == ""
    # --since implies -a; jobs inactive before it are left out
    assert len(jobs.jobs("-n", "--since=-1h").stdout.splitlines()) == 5
    assert jobs.jobs("-n", "--since=now", "-o", "{id.f58}").stdout.split() == \
        jobs.jobs("-n", "-o", "{id.f58}").stdout.split()
    t = float(jobs.jobs("-n", "-o", "{t_inactive}", jobs.completed).stdout)
    after = jobs.jobs("-n", "-f", "inactive", f"--since={t}", "-o", "{id.f58}").stdout.split()
    assert jobs.completed not in after and jobs.failed in after, after
    on0 = jobs.jobs("-a", "-n", "-i", "0", "-o", "{id.f58}").stdout.split()
    assert sorted(on0) == sorted([jobs.running, jobs.completed, jobs.failed]), on0  # never ran: not on rank 0
    assert jobs.jobs("-a", "-n", "-i", "5").stdout == ""


def test_count_cut_is_said_on_stderr(jobs):
    r = jobs.jobs("-a", "-c", "2")
    assert len(r.stdout.splitlines()) == 3 and r.stderr.startswith("warning: output truncated at 2 jobs."), r
    r = jobs.jobs("-a", "-n", "-c", "2")
    assert len(r.stdout.splitlines()) == 2 and r.stderr == "", r
    assert jobs.jobs("-a", "-c", "5").stderr == ""


def test_color_by_result(jobs):
    out = jobs.jobs("-a", "-n", "--color=always", "-o", "{id.f58}").stdout.splitlines()
    colored = dict((line.split("\033")[1], line) for line in out if line.startswith("\033"))
    assert f"\033[01;32m{jobs.completed}\033[0;0m" in out and f"\033[01;31m{jobs.failed}\033[0;0m" in out, out
    assert f"\033[37m{jobs.canceled}\033[0;0m" in out and jobs.running in out, (out, colored)
    assert "\033" not in jobs.jobs("-a", "-n", "--color", "never").stdout  # (never: not a job id)
    assert "\033" not in jobs.jobs("-a", "-n").stdout  # auto: not a terminal


# ---- bad input -----------------------------------------------------------------------

@pytest.mark.parametrize("argv, code, text", [
    (["-o", "bogus"], 1, "-o/--format: no such format 'bogus'"),
    (["-o", "{bogus}"], 1, "unknown field 'bogus'"),
    (["--sort=bogus"], 1, "Invalid sort key: bogus"),
    (["--sort=-name,nosuch"], 1, "Invalid sort key: nosuch"),
    (["--since=+1h"], 1, "--since=+1h appears to be in the future"),
    (["--since=someday"], 1, "--since=someday: invalid time"),
    (["-i", "foo["], 1, "-i/--include: invalid targets: foo["),
    (["--color=sometimes"], 2, "invalid choice: 'sometimes'"),
    (["-c", "-1"], 2, "-c/--count=-1"),
    (["IllegalID"], 2, "invalid job id 'IllegalID'"),
])
def test_bad_input_is_one_line(jobs, argv, code, text):
    _one_line_error(jobs.jobs(*argv, check=False), code, text)


def test_filters_with_ids_are_ignored_with_a_warning(jobs):
    r = jobs.jobs("-n", "-f", "running", "-o", "{id.f58}", jobs.failed)
    assert r.stdout == f"{jobs.failed}\n" and r.stderr == "flux-jobs: WARNING: Filtering options ignored with " \
                                                          "jobid list\n", r
    r = jobs.jobs("-n", "-a", "-f", "failed", "-o", "{id.f58}")
    assert r.stdout.split() == [jobs.failed], r  # (canceled is a result of its own)
    assert "ignoring -a" in r.stderr, r


def test_expandable_fields_fit_their_widest_value(jobs):
    out = jobs.jobs("-a", "-o", "+:{name:>1}|").stdout.splitlines()
    assert out[0] == " NAME|" and " held|" in out and "sleep|" in out and "false|" in out, out  # gone, sleep: 5
    assert jobs.jobs("-a", "-o", "+:{name:>7}|").stdout.splitlines()[0] == "   NAME|"
    assert jobs.jobs("-a", "-n", "-o", "+:{name:<2.2}|").stdout.split("\n")[0] in ("true |", "false|", "sleep|",
                                                                                    "held |", "gone |")
    both = jobs.jobs("-a", "-o", "{id.f58} ?+:{exception.type:>1}|").stdout.splitlines()
    assert both[0].endswith(" EXCEPTION-TYPE|") and any(line.endswith(" " * 9 + "cancel|") for line in both), both
    none = jobs.jobs("-f", "running", "-o", "{id.f58} ?+:{exception.type:>1}|").stdout.splitlines()
    assert none == ["JOBID|", f"{jobs.running}|"], none


def test_recursive_stats_and_json(make_instance, tmp_path):
    from flux_launch.testing import poll

    stop, ready = tmp_path / "STOP", tmp_path / "ready"
    script = tmp_path / "batch.sh"
    script.write_text("#!/bin/sh\nflux submit --flags=waitable --job-name=inside true >/dev/null\n"
                      f"flux job wait --all && touch {ready}\n"
                      f"n=0; while [ ! -e {stop} ] && [ $n -lt 3000 ]; do sleep 0.1; n=$((n+1)); done\n")
    inst = make_instance(size=1)
    try:
        batch = inst.flux("batch", "-N1", "--job-name=outer", "--output=/dev/null", str(script)).stdout.strip()
        assert poll(ready.exists, timeout=120), inst.log()
        lines = inst.flux("jobs", "-R", "--stats", "-a", "-n", "-o", "{id.f58} {name}").stdout.splitlines()
        assert lines[:2] == ["1 running, 0 completed, 0 failed, 0 pending, 0 inactive purged", f"{batch} outer"], lines
        # each instance's own line: flux-core's four counts, no purged ones
        assert lines[2:5] == ["", f"{batch}:", "0 running, 1 completed, 0 failed, 0 pending"], lines
        assert lines[5].endswith(" inside"), lines
        out = json.loads(inst.flux("jobs", "-R", "-a", "--json").stdout)
        (outer,) = out["jobs"]
        assert outer["name"] == "outer" and [j["name"] for j in outer["jobs"]] == ["inside"], out
        assert "jobs" not in outer["jobs"][0], out
    finally:
        stop.touch()


def test_stats_count_purged_jobs_by_queue(make_instance):
    """``flux job purge`` moves jobs out of the counts and into ``inactive purged``,
    for the instance and for the queue they ran in (job-list.job-stats)."""
    inst = make_instance(size=1)
    for _ in range(3):
        inst.flux("run", "true")
    inst.flux("run", "false", check=False)
    before = STATS.match(inst.flux("jobs", "--stats", "-n", "-o", "{id}").stdout.splitlines()[0])
    assert before.groups() == ("0", "3", "1", "0", "0"), before
    inst.flux("job", "purge", "--num-limit=1", "-f")
    after = STATS.match(inst.flux("jobs", "--stats", "-n", "-o", "{id}").stdout.splitlines()[0])
    assert after.groups() == ("0", "0", "1", "0", "3"), after.group(0)
    stats = json.loads(inst.flux("python", "-c", "import flux, json; "
                                 "print(json.dumps(flux.Flux().rpc('job-list.job-stats', {}).get()))").stdout)
    assert stats["inactive_purged"] == 3 and stats["job_states"]["total"] == 1, stats
