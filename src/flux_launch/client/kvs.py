"""The KVS from a client, flux-core's ``flux.kvs``: ``get``, ``put``,
``put_mkdir``, ``put_unlink``, ``commit``, ``exists``, ``isdir``, ``get_dir``,
``KVSDir`` (a mutable mapping over a directory), ``KVSTxn``, ``walk`` and the
namespace calls.

Writes are staged: ``put``/``put_mkdir``/``put_unlink`` add to the handle's own
transaction, which ``commit`` sends as one all-or-nothing ``kvs.commit``;
``KVSTxn`` and ``KVSDir`` hold transactions of their own. Values are JSON values
(``bytes`` are stored as their UTF-8 text). ``namespace=None`` means
``$FLUX_KVS_NAMESPACE``, or the primary namespace when it is unset.

Not here: symlinks (the KVS has none: ``put_symlink`` raises ``OSError(ENOSYS)``)
and fences (``flux_kvs_fence``: the KVS service has no ``kvs.fence``; flux-core's
Python bindings have none either).

Failures: ``OSError`` with the service's errno and text: ENOENT (no such key),
EISDIR/ENOTDIR, ENOTSUP (no such namespace), EPERM; a value that is not JSON
raises ``TypeError`` when it is staged.
"""

import errno
import os
from collections.abc import MutableMapping

from flux_launch.proto import fastjson

__all__ = ["get", "get_key_direct", "put", "put_mkdir", "put_unlink", "put_symlink", "commit", "commit_async",
           "exists", "isdir", "get_dir", "dropcache", "namespace_create", "namespace_remove", "namespace_list",
           "KVSTxn", "KVSDir", "walk", "join"]


def _ns(namespace):
    namespace = namespace or os.environ.get("FLUX_KVS_NAMESPACE")
    return {"namespace": namespace} if namespace else {}


def _value(value):
    """A value as the KVS stores it (JSON), checked now rather than at the commit."""
    if isinstance(value, (bytes, bytearray)):
        try:
            return bytes(value).decode("utf-8")
        except UnicodeDecodeError:
            raise TypeError("a KVS value must be JSON or UTF-8 text: these bytes are neither") from None
    try:
        fastjson.dumps(value)
    except (TypeError, ValueError) as exc:
        raise TypeError(f"a KVS value must be JSON: {exc}") from None
    return value


def get_key_direct(flux_handle, key, namespace=None):
    """The value at ``key``.

    Raises:
        OSError: ENOENT (no such key), EISDIR (a directory).
    """
    return flux_handle.rpc("kvs.get", {"key": key, **_ns(namespace)}).get()["value"]


def _kind(flux_handle, key, namespace):
    """``None`` (no such key), ``"dir"`` or ``"value"``."""
    try:
        get_key_direct(flux_handle, key, namespace)
    except OSError as exc:
        if exc.errno == errno.ENOENT:
            return None
        if exc.errno == errno.EISDIR:
            return "dir"
        raise
    return "value"


def exists(flux_handle, key, namespace=None):
    """Whether ``key`` exists (a value or a directory)."""
    return _kind(flux_handle, key, namespace) is not None


def isdir(flux_handle, key, namespace=None):
    """Whether ``key`` is a directory (False if it does not exist)."""
    return _kind(flux_handle, key, namespace) == "dir"


def get_dir(flux_handle, key=".", namespace=None, _kvstxn=None):
    """The directory at ``key``, a ``KVSDir``.

    Raises:
        OSError: ENOENT (no such directory), ENOTDIR (a value).
    """
    return KVSDir(flux_handle, key, namespace=namespace, _kvstxn=_kvstxn)


def get(flux_handle, key, namespace=None, _kvstxn=None):
    """The value at ``key``, or a ``KVSDir`` when it is a directory.

    Raises:
        OSError: ENOENT (no such key).
    """
    try:
        return get_key_direct(flux_handle, key, namespace)
    except OSError as exc:
        if exc.errno != errno.EISDIR:
            raise
    return get_dir(flux_handle, key, namespace, _kvstxn)


def _txn(flux_handle, _kvstxn):
    if _kvstxn is None:
        if getattr(flux_handle, "aux_txn", None) is None:
            flux_handle.aux_txn = []
        return flux_handle.aux_txn
    return _kvstxn.ops if isinstance(_kvstxn, KVSTxn) else _kvstxn


def put(flux_handle, key, value, _kvstxn=None):
    """Stage ``key = value`` (sent by ``commit``).

    Raises:
        TypeError: ``value`` is not JSON (nor UTF-8 bytes).
    """
    _txn(flux_handle, _kvstxn).append({"op": "put", "key": key, "value": _value(value)})


def put_mkdir(flux_handle, key, _kvstxn=None):
    """Stage the creation of an empty directory ``key``."""
    _txn(flux_handle, _kvstxn).append({"op": "mkdir", "key": key})


def put_unlink(flux_handle, key, _kvstxn=None):
    """Stage the removal of ``key`` (a value or a whole directory)."""
    _txn(flux_handle, _kvstxn).append({"op": "unlink", "key": key})


def put_symlink(flux_handle, key, target, _kvstxn=None):
    """Raises ``OSError(ENOSYS)``: this KVS has no symlinks."""
    raise OSError(errno.ENOSYS, f"cannot link {key} to {target}: this KVS has no symlinks")


def commit_async(flux_handle, flags=0, namespace=None, _kvstxn=None):
    """Send the staged operations (the handle's, or ``_kvstxn``'s) and clear them;
    returns the RPC's future (``get()`` raises the ``OSError`` of a refused commit)."""
    ops = _txn(flux_handle, _kvstxn)
    payload = {"ops": list(ops), **_ns(namespace)}
    ops.clear()
    return flux_handle.rpc("kvs.commit", payload)


def commit(flux_handle, flags=0, namespace=None, _kvstxn=None):
    """Commit the staged operations, all or nothing (none staged: nothing sent).

    Raises:
        OSError: the KVS refused the commit (nothing of it was applied).
    """
    if not _txn(flux_handle, _kvstxn):
        return
    commit_async(flux_handle, flags, namespace, _kvstxn).get()


def dropcache(flux_handle):
    """Nothing to do: this KVS keeps no client-side cache."""


def namespace_create(flux_handle, namespace, owner=None, flags=0):
    """Create a KVS namespace owned by ``owner`` (default: the caller)."""
    flux_handle.rpc("kvs.namespace-create",
                    {"name": namespace, "owner": os.getuid() if owner is None else owner}).get()


def namespace_remove(flux_handle, namespace):
    flux_handle.rpc("kvs.namespace-remove", {"name": namespace}).get()


def namespace_list(flux_handle):
    """The namespaces' names."""
    spaces = flux_handle.rpc("kvs.namespace-list").get()["namespaces"]
    return [s["name"] if isinstance(s, dict) else s for s in spaces]


def _prefix(path):
    return "" if not path or path == "." else (path if path.endswith(".") else path + ".")


class KVSTxn:
    """Staged KVS changes under a base ``path``, committed by ``commit()`` (or on
    leaving a ``with`` block)."""

    def __init__(self, flux_handle=None, path=".", namespace=None):
        self.fhdl = flux_handle
        self.path = path
        self._path = _prefix(path)
        self.namespace = namespace
        self.ops = []

    def put(self, key, value):
        put(self.fhdl, self._path + key, value, _kvstxn=self)

    def mkdir(self, key):
        put_mkdir(self.fhdl, self._path + key, _kvstxn=self)

    def unlink(self, key):
        put_unlink(self.fhdl, self._path + key, _kvstxn=self)

    def symlink(self, key, target):
        put_symlink(self.fhdl, self._path + key, target, _kvstxn=self)

    def clear(self):
        self.ops.clear()

    def commit(self, flags=0):
        commit(self.fhdl, flags, self.namespace, _kvstxn=self)

    def commit_async(self, flags=0):
        return commit_async(self.fhdl, flags, self.namespace, _kvstxn=self)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.commit()
        return False


class KVSDir(MutableMapping):
    """A KVS directory as a mapping: ``d["key"]`` reads a value (a ``KVSDir`` for a
    subdirectory); assignments and ``del`` are staged in one transaction, shared
    with the subdirectories read through it, and sent by ``commit()`` (or on
    leaving a ``with`` block). Iteration lists the directory as it was read.

    Raises:
        OSError: ENOENT (no such directory) or ENOTDIR, when it is made.
        KeyError: reading a name that does not exist.
    """

    def __init__(self, flux_handle=None, path=".", handle=None, namespace=None, _kvstxn=None):
        if flux_handle is None:
            raise ValueError("flux_handle must be a valid Flux object")
        self.fhdl = flux_handle
        self.path = path
        self._path = _prefix(path)
        self.namespace = namespace
        self._listing = flux_handle.rpc("kvs.get", {"key": path or ".", "dir": True, **_ns(namespace)}).get()["dir"]
        self.kvstxn = _kvstxn if _kvstxn is not None else KVSTxn(flux_handle, ".", namespace=namespace)

    def key_at(self, key):
        """The full path of ``key`` in this directory."""
        return self._path + key

    def exists(self, name):
        return exists(self.fhdl, self._path + name, self.namespace)

    def __getitem__(self, key):
        try:
            return get(self.fhdl, self.key_at(key), self.namespace, _kvstxn=self.kvstxn)
        except OSError:
            raise KeyError(f"{key} not found under directory {self.key_at('')}") from None

    def __setitem__(self, key, value):
        self.kvstxn.put(self._path + key, value)

    def __delitem__(self, key):
        self.kvstxn.unlink(self._path + key)

    def __iter__(self):
        return iter(list(self._listing))

    def __len__(self):
        return len(self._listing)

    def _isdir(self, name):
        return "dir" in self._listing.get(name, {})

    def files(self):
        """The names of the values in this directory."""
        return (k for k in self._listing if not self._isdir(k))

    def directories(self):
        """The names of the subdirectories."""
        return (k for k in self._listing if self._isdir(k))

    def list_all(self):
        """``(files, directories)``, two lists of names."""
        return list(self.files()), list(self.directories())

    def commit(self, flags=0):
        self.kvstxn.commit(flags)

    def commit_async(self, flags=0):
        return self.kvstxn.commit_async(flags)

    def fill(self, contents):
        """Set every ``key: value`` of ``contents`` here (``a.b`` keys make
        subdirectories) and commit."""
        if contents is None:
            raise ValueError("contents must be non-None")
        try:
            for key, value in contents.items():
                self[key] = value
        finally:
            self.commit()

    def mkdir(self, key, contents=None):
        """Create subdirectory ``key`` (committed now), filled with ``contents``."""
        self.kvstxn.mkdir(self._path + key)
        self.commit()
        if contents is not None:
            KVSDir(self.fhdl, self.key_at(key), namespace=self.namespace).fill(contents)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.commit()
        return False

    def __repr__(self):
        return f"KVSDir({self.path!r})"


def join(*args):
    """Join KVS path components (for ``walk``), as ``os.path.join`` does."""
    return ".".join(a for a in args if a)


def _walk(kvsdir, here, topdown, namespace):
    if topdown:
        yield here, kvsdir.directories(), kvsdir.files()
    for name in list(kvsdir.directories()):
        yield from _walk(get_dir(kvsdir.fhdl, kvsdir.key_at(name), namespace), join(here, name), topdown, namespace)
    if not topdown:
        yield here, kvsdir.directories(), kvsdir.files()


def walk(directory, topdown=False, flux_handle=None, namespace=None):
    """Walk a directory tree as ``os.walk`` does: ``(path, dirs, files)`` for each
    directory (``directory``: a ``KVSDir``, or a key with ``flux_handle``)."""
    if not isinstance(directory, KVSDir):
        if flux_handle is None:
            raise ValueError("If directory is a key, flux_handle must be specified")
        directory = KVSDir(flux_handle, directory, namespace=namespace)
    return _walk(directory, "", topdown, namespace)
