"""``flux broker [-S NAME=VALUE]... [COMMAND [ARGS...]]``: run one broker.

Started by a job shell (``flux batch``, ``flux alloc``: one per node of the job)
it boots over the shell's PMI into a nested instance of the job's resources;
started by hand, a singleton. Without COMMAND the initial program is ``$SHELL``
(``-Sbroker.rc2_none=1``: none, the instance runs until it is told to stop).
"""


def main(cmd, argv):
    from flux_launch.broker.main import main as broker_main

    return broker_main(argv, default_shell=True)
