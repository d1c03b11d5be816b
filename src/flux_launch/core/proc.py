"""Process helpers shared by the places that fork."""

import os
import sys


def exit_now(code):
    """End a forked child at once: flush Python's stdio buffers (what it printed must
    not be lost), then ``os._exit``, skipping the parent's atexit handlers and object
    finalizers that the child inherited. Never returns."""
    try:
        sys.stdout.flush()
        sys.stderr.flush()
    finally:
        os._exit(code)
