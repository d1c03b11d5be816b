"""``flux uri [--local|--remote] [--wait] TARGET``: resolve TARGET to a Flux URI.

TARGET is a native URI (``local://PATH``, ``ssh://HOST/PATH``: printed as given)
or ``[jobid:]PATH``: a job id, or a path of job ids through nested instances
(``ƒA/ƒB``: job ƒB of the instance that job ƒA runs), where a leading ``/``
starts at the root instance and ``..`` means the enclosing instance's parent.
A job's URI is the ``uri`` memo its instance posted once it was up
(``annotations.user.uri``), in the ``ssh://HOST/PATH`` form.

Query words after ``?``: ``local``, ``remote`` (convert the result), ``wait``
(wait for the job's ``uri`` memo instead of failing while it is not there yet).
``--local`` (or ``$FLUX_URI_RESOLVE_LOCAL``) prints ``local://PATH``,
``--remote`` ``ssh://HOST/PATH``.

``resolve()`` is what ``flux proxy`` and ``flux pstree`` use. It raises
``ValueError`` with flux-core's messages: ``X is not a valid jobid``,
``jobid X not found``, ``jobid X is not running``, ``URI not found for job X``.
"""

import errno
import os
import re

from flux_launch.core.jobid import JobID

_SCHEME = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*):(.*)$", re.S)
NATIVE = ("local", "ssh")
QUERY_WORDS = ("local", "remote", "wait")
RUNNING = 16  # job-list's state bit of RUN (proto/job.py STATE_BITS)


def split(target):
    """Split ``target`` into ``(scheme, rest, query words)``; no scheme means ``jobid``.

    Raises:
        ValueError: an unknown query word, or both ``local`` and ``remote``.
    """
    m = _SCHEME.match(target)
    scheme, rest = (m.group(1), m.group(2)) if m else ("jobid", target)
    rest, _, query = rest.partition("?")
    words = [w.partition("=")[0] for w in query.split("&") if w]
    for w in words:
        if w not in QUERY_WORDS:
            raise ValueError(f"{target}: unknown query '{w}' (use ?local, ?remote or ?wait)")
    if "local" in words and "remote" in words:
        raise ValueError("Only one of 'local' or 'remote' is allowed")
    return scheme, rest, words


def to_local(uri):
    """``ssh://HOST/PATH`` -> ``local:///PATH``; a ``local://`` URI unchanged.

    Raises:
        ValueError: another scheme.
    """
    if uri.startswith("local://"):
        return uri
    if uri.startswith("ssh://"):
        path = uri[len("ssh://"):].partition("/")[2].partition("?")[0]
        return "local://" + re.sub("/+", "/", "/" + path)
    raise ValueError(f"Cannot convert URI {uri} to local")


def to_remote(uri, hostname=None):
    """``local://PATH`` -> ``ssh://HOST/PATH`` (HOST: ``hostname`` or this machine's);
    an ``ssh://`` URI unchanged.

    Raises:
        ValueError: another scheme.
    """
    if uri.startswith("ssh://"):
        return uri
    if uri.startswith("local://"):
        if hostname is None:
            hostname = os.uname().nodename
        return f"ssh://{hostname}" + re.sub("/+", "/", "/" + uri[len("local://"):])
    raise ValueError(f"Cannot convert URI {uri} to remote")


def _open(uri):
    from flux_launch.client.handle import Flux

    return Flux(uri)


def _attr(h, name):
    return h.rpc("attr.get", {"name": name}).get()["value"]


def _parent_uri(h):
    """The enclosing instance's parent's URI; its own at the root (level 0)."""
    if int(_attr(h, "instance-level")) > 0:
        return _attr(h, "parent-uri")
    return _attr(h, "local-uri")


def _root_uri(h):
    while int(_attr(h, "instance-level")) > 0:
        h = _open(_attr(h, "parent-uri"))
    return _attr(h, "local-uri")


def job_uri(h, arg, wait=False):
    """The URI of job ``arg`` (an id as the user wrote it) of the instance ``h``.

    Raises:
        ValueError: flux-core's messages (see the module docstring).
    """
    try:
        jobid = JobID(arg)
    except (ValueError, TypeError):
        raise ValueError(f"{arg} is not a valid jobid") from None
    try:
        if wait:
            uri = _wait_uri(h, jobid)
        else:
            job = h.rpc("job-list.list-id", {"id": int(jobid)}).get()["job"]
            if job.get("state") != RUNNING:
                raise ValueError(f"jobid {arg} is not running")
            uri = ((job.get("annotations") or {}).get("user") or {}).get("uri")
    except OSError as exc:
        if exc.errno == errno.ENOENT:
            raise ValueError(f"jobid {arg} not found") from None
        raise
    if not uri:
        raise ValueError(f"URI not found for job {arg}")
    return uri


def _wait_uri(h, jobid):
    """Wait for the job's ``uri`` memo; None once it finished without one."""
    from flux_launch.job.event import EventWatch

    watch = EventWatch(h, jobid)
    for event in watch:
        if event.name == "memo" and "uri" in event.context:
            watch.cancel()
            return event.context["uri"]
        if event.name in ("finish", "clean"):
            watch.cancel()
            return None
    return None


def _resolve_path(h, path, force_local, wait, hostname=None):
    """Walk ``path`` (job ids, ``/`` first for the root, ``..``) from instance ``h``."""
    parts = [p for p in path.split("/") if p]
    if path.startswith("/"):
        parts.insert(0, "/")
    if not parts:
        return _attr(h, "local-uri")
    while True:
        arg = parts.pop(0)
        if arg == "/":
            uri = _root_uri(h)
        elif arg == "..":
            uri = _parent_uri(h)
            if hostname:  # below a job resolved on that host: say so
                uri = to_remote(uri, hostname)
        else:
            uri = job_uri(h, arg, wait)
            if uri.startswith("ssh://"):
                hostname = uri[len("ssh://"):].partition("/")[0]
        if not parts:
            return uri
        h = _open(to_local(uri) if force_local else uri)


def resolve(target, h=None, wait=False):
    """Resolve ``target`` (see the module docstring) to a URI.

    ``h``: a handle on the instance job ids are looked up in (default: ``$FLUX_URI``).

    Raises:
        ValueError: the target cannot be resolved (the reason, in flux-core's words).
        OSError: an instance on the way does not answer.
    """
    scheme, rest, words = split(target)
    if scheme in NATIVE:
        uri = f"{scheme}:{rest}"
    elif scheme == "jobid":
        force_local = "local" in words or bool(os.environ.get("FLUX_URI_RESOLVE_LOCAL"))
        if h is None:
            h = _open(None)
        uri = _resolve_path(h, rest, force_local, wait or "wait" in words)
    else:
        raise ValueError(f"No plugin for URI scheme {scheme} (use a job id, jobid:PATH, local:// or ssh://)")
    if "local" in words:
        uri = to_local(uri)
    elif "remote" in words:
        uri = to_remote(uri)
    return uri


def main(cmd, argv):
    from flux_launch.cli.base import Parser

    p = Parser(cmd, description="Resolve TARGET to a Flux URI.",
               epilog="TARGET: a job id, jobid:ID[/ID...], local://PATH or ssh://HOST/PATH")
    form = p.add_mutually_exclusive_group()
    form.add_argument("--remote", action="store_true", help="print the remote (ssh://) form")
    form.add_argument("--local", action="store_true", help="print the local (local://) form")
    p.add_argument("--wait", action="store_true", help="wait for the job's URI to be published")
    p.add_argument("target", metavar="TARGET", help="a Flux job id or URI (e.g. jobid:ƒ1234)")
    args = p.parse_args(argv)
    uri = resolve(args.target, wait=args.wait)
    if args.remote:
        uri = to_remote(uri)
    elif args.local or os.environ.get("FLUX_URI_RESOLVE_LOCAL"):
        uri = to_local(uri)
    print(uri)
    return 0
