"""Small commands of flux-core's front end:

- ``flux version`` (also ``flux -V``/``--version``): the versions, as flux-core
  lays them out (``commands:``, ``libflux-core:``, then ``broker:`` and
  ``FLUX_URI:`` inside an instance, ``build-options:``);
- ``flux env [COMMAND...]``: print the environment flux gives its commands as
  ``export NAME="value"`` lines, or run COMMAND in it;
- ``flux python [ARGS...]``: the interpreter that runs flux, with ``flux`` importable;
- ``flux help [COMMAND]``: the command list, or COMMAND's help.
"""

import os
import sys


def _env():
    """What flux sets for the commands it runs: this bin directory first on PATH,
    the package on PYTHONPATH, our libpmi.so (FLUX_PMI_LIBRARY_PATH), FLUX_URI."""
    import flux_launch

    pkg = os.path.dirname(flux_launch.__file__)
    bindir = os.path.dirname(os.path.abspath(sys.argv[0] if sys.argv and sys.argv[0] else sys.executable))
    env = {"PATH": os.pathsep.join([bindir] + [p for p in os.environ.get("PATH", "").split(os.pathsep)
                                              if p and p != bindir]),
           "PYTHONPATH": os.pathsep.join([os.path.dirname(pkg)] + [p for p in os.environ.get(
               "PYTHONPATH", "").split(os.pathsep) if p and p != os.path.dirname(pkg)])}
    lib = os.path.join(pkg, "lib", "libpmi.so")
    if os.path.exists(lib):
        env["FLUX_PMI_LIBRARY_PATH"] = lib
    if os.environ.get("FLUX_URI"):
        env["FLUX_URI"] = os.environ["FLUX_URI"]
    return env


def main(cmd, argv):
    return {"version": _version, "env": _run_env, "python": _python, "help": _help}[cmd](argv)


def _version(argv):
    from flux_launch import __version__

    if argv and argv[0] in ("-h", "--help"):
        print("Usage: flux version\nDisplay flux version information")
        return 0
    if argv:
        sys.stderr.write("flux-version: accepts no arguments\n")
        return 1
    print(f"commands:    \t\t{__version__}")
    print(f"libflux-core:\t\t{__version__}")
    uri = os.environ.get("FLUX_URI")
    if uri:
        from flux_launch.client.handle import Flux

        try:
            with Flux(uri) as h:
                broker = h.rpc("attr.get", {"name": "version"}).get()["value"]
        except OSError as exc:
            sys.stderr.write(f"flux-version: cannot reach the instance at {uri}: {exc.strerror or exc}\n")
            return 1
        print(f"broker:  \t\t{broker}")
        print(f"FLUX_URI:\t\t{uri}")
    import zmq

    print(f"build-options:\t\t+hwloc+zmq=={zmq.zmq_version()}+python=={sys.version.split()[0]}")
    return 0


def _run_env(argv):
    if argv and argv[0] in ("-h", "--help"):
        print("Usage: flux env [COMMAND...]\nPrint the flux environment or execute COMMAND inside it")
        return 0
    env = _env()
    if not argv:
        for name, value in env.items():
            print(f'export {name}="{value}"')
        return 0
    sys.stdout.flush()
    os.environ.update(env)
    try:
        os.execvp(argv[0], argv)
    except OSError as exc:
        sys.stderr.write(f"flux-env: {argv[0]}: {exc.strerror}\n")
        return 127 if isinstance(exc, FileNotFoundError) else 126


def _python(argv):
    os.environ.update(_env())
    sys.stdout.flush()
    os.execv(sys.executable, [sys.executable, *argv])


def _help(argv):
    from flux_launch.cli.main import COMMANDS, USAGE

    if not argv:
        sys.stdout.write(USAGE)
        return 0
    name = argv[0]
    if name not in COMMANDS and name not in ("version", "env", "python", "help"):
        sys.stderr.write(f"flux-help: '{name}' is not a flux command. See 'flux help'\n")
        return 1
    from flux_launch.cli.main import main as flux_main

    return flux_main([name, "--help"])
