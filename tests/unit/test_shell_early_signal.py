"""The job shell keeps a signal it forwards before its tasks exist and sends it
to each task as it starts (a plugin may run the loop, which reads the signal
pipe, before the tasks are spawned)."""

import os
import signal

from flux_launch.job.jobspec import JobspecV1
from flux_launch.proto import rv1
from flux_launch.shell.main import Shell, Task


class _Loop:
    def watch_fd(self, fd, events, callback):
        pass


def _shell():
    spec = JobspecV1.from_command(["sleep", "30"], num_tasks=2)
    shell = Shell({"id": 1, "jobspec": spec.jobspec, "R": rv1.ResourceSet({0: {"core": [0, 1]}}).to_dict(),
                   "rank": 0, "uri": "local:///nonexistent"})
    shell.loop = _Loop()
    return shell


def _spawn(shell, local_id):
    task = Task(local_id, local_id, ["sleep", "30"], dict(os.environ), None)
    shell.tasks.append(task)
    assert shell._spawn(task)
    return task


def _status(task):
    os.close(task.pidfd)
    try:
        os.killpg(task.pid, signal.SIGKILL)  # not to leave it behind if the test fails
    except ProcessLookupError:
        pass
    return os.waitpid(task.pid, 0)[1]


def test_signal_before_the_tasks_reaches_each_task_as_it_starts():
    shell = _shell()
    first = _spawn(shell, 0)
    shell.kill_tasks(signal.SIGTERM)  # the first task runs, the second is still to come
    second = _spawn(shell, 1)
    shell._spawned = True
    assert [os.WTERMSIG(_status(t)) for t in (first, second)] == [signal.SIGTERM, signal.SIGTERM]


def test_once_every_task_runs_no_signal_is_kept():
    shell = _shell()
    task = _spawn(shell, 0)
    shell._spawned = True
    shell.kill_tasks(signal.SIGUSR1)
    assert shell._early_signals == []
    assert os.WTERMSIG(_status(task)) == signal.SIGUSR1
