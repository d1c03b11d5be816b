"""A PMI-2 wire client in a few lines, run as a task of ``srun --mpi=pmi2``: it
proves what the launcher serves on ``PMI_FD``. The handshake is one PMI-1 line,
``cmd=init pmi_version=2 pmi_subversion=0`` (Slurm's pmi2 plugin refuses a first
message in any other form, and answers a ``pmi_version=1`` init with PMI-1), then
the PMI-2 wire protocol: each command ``cmd=NAME;key=value;...;`` after its length
in 6 characters. The spec doubles a ``;`` in a value, but Slurm 22.05 cuts the
value at it ("no value for key"), so the probe's values hold ``=``, ``,``, ``:`` and
``/`` (as a broker's URIs do) and no ``;``.

Each task does fullinit, reads the job attribute ``PMI_process_mapping``, puts
``probe-<rank>``, fences, gets its neighbour's key and finalizes, then prints one
line: ``rank=R size=N mapping=M neighbour=V``. Any refusal exits 1 with the reply.
"""

import os
import socket
import sys


def _encode(cmd, **fields):
    body = f"cmd={cmd};" + "".join(f"{k}={str(v).replace(';', ';;')};" for k, v in fields.items())
    data = body.encode()
    return f"{len(data):<6d}".encode() + data


def _decode(body):
    fields, key, buf, i = {}, None, "", 0
    while i < len(body):
        c = body[i]
        if c == ";" and body[i + 1:i + 2] == ";":
            buf += ";"
            i += 2
            continue
        if c == "=" and key is None:
            key, buf = buf, ""
        elif c == ";":
            fields[key] = buf
            key, buf = None, ""
        else:
            buf += c
        i += 1
    return fields


def _recv_exact(sock, n):
    data = b""
    while len(data) < n:
        chunk = sock.recv(n - len(data))
        if not chunk:
            sys.exit(f"pmi2_probe: PMI_FD closed after {len(data)} of {n} bytes")
        data += chunk
    return data


def call(sock, cmd, **fields):
    """Sends one command; returns the reply's fields (exits on rc != 0)."""
    sock.sendall(_encode(cmd, **fields))
    length = int(_recv_exact(sock, 6).decode().strip())
    reply = _decode(_recv_exact(sock, length).decode())
    if reply.get("cmd") != f"{cmd}-response" or reply.get("rc", "0") != "0":
        sys.exit(f"pmi2_probe: {cmd} refused: {reply}")
    return reply


def _handshake(sock):
    sock.sendall(b"cmd=init pmi_version=2 pmi_subversion=0\n")
    line = b""
    while not line.endswith(b"\n"):
        line += _recv_exact(sock, 1)
    fields = dict(f.split("=", 1) for f in line.decode().split() if "=" in f)
    if fields.get("cmd") != "response_to_init" or fields.get("rc") != "0" or fields.get("pmi_version") != "2":
        sys.exit(f"pmi2_probe: init refused: {line!r}")


def main():
    sock = socket.socket(fileno=int(os.environ["PMI_FD"]))
    rank = int(os.environ["PMI_RANK"])
    _handshake(sock)
    init = call(sock, "fullinit", pmijobid=os.environ.get("PMI_JOBID", ""), pmirank=rank, threaded="FALSE")
    size = int(init["size"])
    mapping = call(sock, "info-getjobattr", key="PMI_process_mapping")
    call(sock, "kvs-put", key=f"probe-{rank}", value=f"v={rank},tcp://127.0.0.1:1/x")
    call(sock, "kvs-fence")
    peer = call(sock, "kvs-get", jobid="", srcid="-1", key=f"probe-{(rank + 1) % size}")
    call(sock, "finalize")
    print(f"rank={init['rank']} size={size} pmi-version={init.get('pmi-version')} "
          f"mapping={mapping.get('value')} neighbour={peer.get('value')}", flush=True)


if __name__ == "__main__":
    main()
