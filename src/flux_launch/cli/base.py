"""What every command shares: its argument parser and its handle.

``Parser`` (an ``argparse`` parser, ``cli/argparser.py``) is imported on first use:
``flux run`` parses its common command lines without argparse.
"""


def handle():
    """Open a handle on the enclosing instance (``FLUX_URI``).

    Raises:
        NoInstanceError: with "no instance at ...; run flux start".
    """
    from flux_launch.client.handle import Flux

    return Flux()


def __getattr__(name):
    if name == "Parser":
        from flux_launch.cli.argparser import Parser

        return Parser
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
