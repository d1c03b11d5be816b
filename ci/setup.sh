#!/bin/bash
# Setup shared by `make demo`, `make test` and CI: system packages (when root, or
# with sudo), a virtual environment in .venv, and the package installed into it
# (editable, with its C accelerations built by cffi when a compiler is there).
set -euo pipefail
cd "$(dirname "$0")/.."

# Debian packages the project needs: an interpreter with venv and headers, a C
# compiler for the cffi accelerations and libpmi.so, hwloc for resource discovery, setpriv (util-linux) for the
# access tests, MPICH and Open MPI for the MPI tests (mpi4py is built against MPICH), gdb for the debugger
# tests (flux job attach --debug and its MPIR proctable).
PKGS="python3 python3-venv python3-dev gcc libc6-dev make util-linux libhwloc-dev mpich libmpich-dev openmpi-bin libopenmpi-dev gdb hwloc-nox"

missing=""
for p in $PKGS; do
    dpkg -s "$p" >/dev/null 2>&1 || missing="$missing $p"
done
if [ -n "$missing" ]; then
    if [ "$(id -u)" = 0 ]; then SUDO=""; elif command -v sudo >/dev/null; then SUDO="sudo"; else SUDO=none; fi
    if [ "$SUDO" = none ]; then
        echo "setup: missing Debian packages:$missing (run as root or install sudo)" >&2
        exit 1
    fi
    echo "setup: installing$missing"
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq $missing >/dev/null
fi

# Debian's interpreter: a pyenv shim found first on PATH adds ~0.1 s to every start.
PY=/usr/bin/python3
[ -x "$PY" ] || PY=$(command -v python3)
if [ ! -x .venv/bin/python ]; then
    "$PY" -m venv .venv
fi
.venv/bin/python -m pip install -q --disable-pip-version-check --upgrade pip setuptools wheel cffi 2>&1 \
    | grep -v "^WARNING: Location" || true
.venv/bin/python -m pip install -q --disable-pip-version-check --no-build-isolation -e '.[test]' 2>&1 \
    | grep -v "^WARNING: Location" || true
# mpi4py built against MPICH (a wheel from PyPI would bring its own MPI).
if ! .venv/bin/python -c "from mpi4py import MPI; import sys; sys.exit('MPICH' not in MPI.Get_library_version())" \
        2>/dev/null; then
    echo "setup: building mpi4py against MPICH (a few minutes)"
    MPICC=mpicc.mpich .venv/bin/python -m pip install -q --disable-pip-version-check --no-cache-dir \
        --no-binary=mpi4py --force-reinstall mpi4py 2>&1 | grep -v "^WARNING: Location" || true
fi

# Bytecode for the editable sources now: where PYTHONDONTWRITEBYTECODE is set, every
# command would otherwise compile them again at each start.
.venv/bin/python -m compileall -q src >/dev/null
.venv/bin/python -c "import flux_launch._accel as a; print('setup: flux_launch installed, accelerations:', a.BACKEND)"
