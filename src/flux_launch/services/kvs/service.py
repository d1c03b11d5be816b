"""The KVS service on rank 0: hierarchical keys, JSON values, namespaces, watches.

Keys are dot-separated paths (``job.0000.0004.b200.0000.eventlog``); ``.`` is the
root directory. Each namespace is a tree of directories held in memory
(``tree.py``) and written through to sqlite (``store.py``) on every commit;
watches are in ``watch.py``.

Topics (payloads are objects; ``namespace`` defaults to ``primary``):

- ``kvs.get {key, dir?, recursive?}`` -> ``{key, value}`` or, with ``dir``,
  ``{key, dir: {name: {"value": v} | {"dir": {...} | null}}}``.
- ``kvs.commit {ops: [{op, key, value?}]}``: ``put``, ``append`` (string
  concatenation, the eventlog primitive), ``unlink``, ``mkdir``; all or nothing.
- ``kvs.watch {key, waitcreate?, append?, uniq?, once?}`` (streaming): the current
  value, then each new value; with ``append`` only what was appended. Ends with
  ``ENOENT`` when the key is removed, or ``ENODATA`` after ``kvs.unwatch {matchtag}``,
  a disconnect, ``end_watches`` (the job manager's, when a job is inactive), or
  with ``once`` right after the current value.
- ``kvs.namespace-create {name, owner?}``, ``kvs.namespace-remove {name}``,
  ``kvs.namespace-list``.
"""

import errno
import logging
import sqlite3

from flux_launch.services.base import Service
from flux_launch.services.kvs.store import BLOB_MIN, Store
# PRIMARY, KVSError, Dir and Rope are this module's public names too (callers import them from here)
from flux_launch.services.kvs.tree import (PRIMARY, Dir, KVSError, Rope, _concat, _listing, _lookup, _utf8,
                                           normalize, plain)
from flux_launch.services.kvs.watch import Watches

log = logging.getLogger("flux_launch.kvs")


class KVSService(Watches):
    """The KVS of an instance, persisted under ``statedir``.

    Raises:
        StoreError: the sqlite file cannot be opened (the broker refuses to start).
    """

    def __init__(self, broker, statedir):
        self.broker = broker
        self.store = Store(statedir)
        self.spaces = {PRIMARY: Dir()}
        self.owners = {PRIMARY: broker.owner}
        self.watches = {}  # (ns, key) -> list of _Watch
        self.closed = False
        # the requests of kvs.*: the broker registers it (handle.register())
        self.handle = Service(broker, "kvs", {
            "get": self._rpc_get, "commit": self._rpc_commit,
            "watch": self._rpc_watch, "unwatch": self._rpc_unwatch, "disconnect": self._rpc_disconnect,
            "namespace-create": self._rpc_namespace_create, "namespace-remove": self._rpc_namespace_remove,
            "namespace-list": self._rpc_namespace_list}, check=self._check_open)
        spaces, rows, chunks = self.store.load()
        for name, owner in spaces.items():
            self.spaces.setdefault(name, Dir())
            self.owners[name] = owner
        for ns, key, value, is_dir in rows:
            root = self.spaces.setdefault(ns, Dir())
            self._set(root, key, Dir() if is_dir else (Rope(value) if isinstance(value, str) else value))
        for ns, key, data in chunks:
            try:
                node = _lookup(self.spaces[ns], key)
            except (KVSError, KeyError):
                continue
            if type(node) is Rope:
                node.append(data)

    def close(self):
        """End every watch and close the store; later commits are dropped with a warning."""
        for watches in self.watches.values():
            for w in watches:
                self.broker.respond_error(w.req, errno.ENODATA)
        self.watches.clear()
        self.closed = True
        self.store.close()

    # ---- tree operations ----------------------------------------------------------

    @staticmethod
    def _set(root, key, value):
        parts = key.split(".")
        node = root
        for part in parts[:-1]:
            child = node.get(part)
            if type(child) is not Dir:
                child = node[part] = Dir()
            node = child
        node[parts[-1]] = value

    @staticmethod
    def _unlink(root, key):
        parts = key.split(".")
        node = root
        for part in parts[:-1]:
            node = node.get(part)
            if type(node) is not Dir:
                return False
        return node.pop(parts[-1], None) is not None

    def _space(self, p):
        ns = p.get("namespace") or PRIMARY
        root = self.spaces.get(ns)
        if root is None:
            raise KVSError(errno.ENOTSUP, f"namespace {ns} does not exist")
        return ns, root

    # ---- RPC ----------------------------------------------------------------------

    def _check_open(self, msg, method):
        if self.closed:
            raise KVSError(errno.ENOSYS, "the KVS is closed: the instance is shutting down")

    def _rpc_get(self, msg, p):
        ns, root = self._space(p)
        key = normalize(p.get("key"))
        node = _lookup(root, key)
        if p.get("dir"):
            if type(node) is not Dir:
                raise KVSError(errno.ENOTDIR, f"{key}: not a directory")
            self.broker.respond(msg, {"key": key, "dir": _listing(node, bool(p.get("recursive")))})
        elif type(node) is Dir:
            raise KVSError(errno.EISDIR, f"{key}: is a directory")
        else:
            self.broker.respond(msg, {"key": key, "value": plain(node)})

    def _rpc_commit(self, msg, p):
        self.broker.respond(msg, self.commit(p.get("ops"), p.get("namespace") or PRIMARY, p.get("raw")) or {})

    def lookup(self, key, namespace=PRIMARY):
        """The value at ``key`` (in-process callers).

        Raises:
            KVSError: ENOENT, or EISDIR for a directory.
        """
        node = _lookup(self._space({"namespace": namespace})[1], normalize(key))
        if type(node) is Dir:
            raise KVSError(errno.EISDIR, f"{key}: is a directory")
        return plain(node)

    def listdir(self, key, namespace=PRIMARY):
        """Names in the directory ``key`` (in-process callers); ``[]`` if absent."""
        try:
            node = _lookup(self._space({"namespace": namespace})[1], normalize(key))
        except KVSError:
            return []
        return list(node) if type(node) is Dir else []

    def commit(self, ops, namespace=PRIMARY, raw=None):
        """Apply ``ops`` atomically (in-process callers and ``kvs.commit``). An
        append op with ``"raw": true`` appends ``raw``, the UTF-8 bytes of a string;
        one with ``"limit"`` and ``"count"`` is kept only while the counts fit (``_fits``).

        Returns:
            ``{}``, or ``{"dropped": [{"key", "first"}]}`` for limited appends dropped,
            with ``"first_full": true`` if this commit made a key full (``_fits``).

        Raises:
            KVSError: a bad op (nothing is applied).
        """
        if self.closed:  # an event posted by a timer during shutdown, after the last flush
            log.warning("kvs: closed: dropped a commit of %d ops (the instance is shutting down)",
                        len(ops) if isinstance(ops, list) else 0)
            return
        ns, root = self._space({"namespace": namespace})
        if not isinstance(ops, list) or not ops:
            raise KVSError(errno.EPROTO, "kvs.commit: ops must be a non-empty list")
        # Validate and compute every change before touching anything: all or nothing.
        changes = []
        staged = {}
        created = set()
        counted = {}  # key -> what this commit's limited appends count
        dropped = []
        fills = set()  # keys a limited append says are now full
        folds = {}  # key -> (index of its put in changes, the parts of its value)

        def unfold():
            for k, (i, parts) in folds.items():
                staged[k] = "".join(parts)
                changes[i] = ("put", k, staged[k])
            folds.clear()

        for op in ops:
            if not isinstance(op, dict):
                raise KVSError(errno.EPROTO, "kvs.commit: each op must be an object")
            kind = op.get("op")
            key = normalize(op.get("key"))
            if kind != "append" and folds:
                unfold()
            if key == "." and kind != "unlink":
                raise KVSError(errno.EINVAL, f"kvs.commit: cannot {kind} the root directory")
            if kind == "put":
                if "value" not in op:
                    raise KVSError(errno.EPROTO, f"kvs.commit: put of {key} has no value")
                staged[key] = op["value"]
                created.discard(key)
                changes.append(("put", key, op["value"]))
            elif kind == "append":
                value = op.get("value")
                if op.get("raw") is True:  # the bytes of the request's attachment
                    value = _utf8(raw, key)
                elif not isinstance(value, str):
                    raise KVSError(errno.EINVAL, f"kvs.commit: append to {key}: value must be a string")
                if "limit" in op:
                    if not self._fits(root, key, op, counted, dropped):
                        continue
                    if op.get("full") is True:
                        fills.add(key)
                if key in staged:  # put earlier in this commit: stage the whole value
                    value = value if type(value) is str else value.decode()
                    if key in folds:  # joined once at the end: n appends stay O(n)
                        folds[key][1].append(value)
                        continue
                    old = staged[key]
                    if not isinstance(old, str):
                        raise KVSError(errno.EINVAL, f"kvs.commit: cannot append to {key}: "
                                       "its value is not a string")
                    changes.append(("put", key, None))
                    folds[key] = (len(changes) - 1, [old, value])
                    continue
                if key in created:  # created by an earlier append of this commit
                    changes.append(("append", key, value))
                    continue
                try:
                    old = _lookup(root, key)
                except KVSError:  # a new key: a put (it may change the tree's structure)
                    if type(value) is bytes and len(value) >= BLOB_MIN:
                        # created empty, then a big append, which goes to the blob file
                        created.add(key)
                        changes.append(("put", key, ""))
                        changes.append(("append", key, value))
                        continue
                    staged[key] = value if type(value) is str else value.decode()
                    changes.append(("put", key, staged[key]))
                    continue
                if type(old) is not Rope and not isinstance(old, str):
                    raise KVSError(errno.EINVAL, f"kvs.commit: cannot append to {key}: its value is not a string")
                changes.append(("append", key, value))
            elif kind == "unlink":
                staged.pop(key, None)
                created.discard(key)
                changes.append(("delete", key))
            elif kind == "mkdir":
                changes.append(("mkdir", key))
            else:
                raise KVSError(errno.EPROTO, f"kvs.commit: unknown op {kind!r}")
        unfold()
        changes = self._mark_simple(root, changes)
        blobs = {}
        for i, change in enumerate(changes):  # big appends go to the blob file first
            if change[0] == "append" and type(change[2]) is bytes and len(change[2]) >= BLOB_MIN:
                try:
                    blob = self.store.write_blob(change[2])
                except OSError as exc:
                    raise KVSError(exc.errno or errno.EIO, f"kvs.commit: cannot store {change[1]}: "
                                   f"{exc.strerror or exc}") from None
                blobs[i] = (change[2], blob)
                changes[i] = ("append", change[1], blob)
        try:
            self.store.commit(ns, changes)
        except sqlite3.Error as exc:  # rolled back, its blob files removed: nothing changed
            raise KVSError(errno.EIO, f"kvs.commit: the store failed: {exc}") from None
        changed = []
        for i, change in enumerate(changes):
            kind, key = change[0], change[1]
            if kind == "put":
                value = change[2]
                self._set(root, key, Rope(value) if isinstance(value, str) else value)
            elif kind == "append":
                try:
                    node = _lookup(root, key)
                except KVSError:
                    node = None
                if type(node) is not Rope:
                    node = Rope(node or "")
                    self._set(root, key, node)
                if i in blobs:
                    node.append(*blobs[i])
                else:
                    node.append(change[2])
            elif kind == "mkdir":
                self._set(root, key, Dir())
            elif key == ".":
                root.clear()
            else:
                self._unlink(root, key)
            changed.append(key)
        first_full = any(d["first"] for d in dropped)
        for key in counted.keys() | fills:
            try:
                node = _lookup(root, key)
            except KVSError:  # a later op of the commit removed it
                continue
            if type(node) is Rope:
                node.counted += counted.get(key, 0)
                if key in fills and not node.full:
                    node.full = first_full = True
        if self.watches:
            self._notify(ns, root, changed)
        result = {"dropped": dropped} if dropped else {}
        if first_full:
            result["first_full"] = True
        return result

    @staticmethod
    def _fits(root, key, op, counted, dropped):
        """A limited append (``limit``: the most its ``count``s may add up to on the
        key, e.g. a job's ``output.limit`` over all its shells): True if it fits;
        else it is dropped (listed in ``dropped``, ``{"key", "first"}``) and so is
        every later counted append to the key, so that what was kept has no hole.
        One with ``"full": true`` (its writer reached the limit by itself) makes the
        key full once applied. The commit that made a key full answers
        ``first_full``: its writer says so, once for the key.

        Raises:
            KVSError: ``limit`` or ``count`` is not an integer >= 0.
        """
        limit, count = op["limit"], op.get("count", 0)
        if type(limit) is not int or type(count) is not int or limit < 0 or count < 0:
            raise KVSError(errno.EPROTO, f"kvs.commit: append to {key}: limit and count must be integers >= 0")
        if not count:  # nothing counted (e.g. only end-of-stream marks): always kept
            return True
        try:
            rope = _lookup(root, key)
        except KVSError:
            rope = None
        if type(rope) is not Rope:
            rope = None
        used = (rope.counted if rope is not None else 0) + counted.get(key, 0)
        if (rope is not None and rope.full) or used + count > limit:
            dropped.append({"key": key, "first": rope is not None and not rope.full})
            if rope is not None:
                rope.full = True
            return False
        counted[key] = counted.get(key, 0) + count
        return True

    def unlink_pruning(self, keys, stop, namespace=PRIMARY):
        """Unlink ``keys`` and the directories they leave empty, up to but not
        including ``stop``, in one commit (purged jobs: ``job.<dothex>`` and the
        per-job directories above it, which would otherwise pile up).

        Raises:
            KVSError: as ``commit``.
        """
        root = self._space({"namespace": namespace})[1]
        gone = set(keys)
        parents = set()
        for key in keys:
            parent = key.rpartition(".")[0]
            while parent and parent != stop:
                parents.add(parent)
                parent = parent.rpartition(".")[0]
        ops = [{"op": "unlink", "key": key} for key in keys]
        for parent in sorted(parents, key=lambda k: -k.count(".")):  # deepest first
            try:
                node = _lookup(root, parent)
            except KVSError:
                continue
            if type(node) is Dir and all(f"{parent}.{name}" in gone for name in node):
                gone.add(parent)
                ops.append({"op": "unlink", "key": parent})
        self.commit(ops, namespace)

    @staticmethod
    def _mark_simple(root, changes):
        """Tag puts that change no structure (the key is or becomes a value under
        existing directories), which the store writes as one upsert instead of
        clearing subtrees and ancestors first. Any two related keys in one commit
        (one below the other) disable the shortcut for the whole commit."""
        keys = sorted(set(c[1] for c in changes))
        for a, b in zip(keys, keys[1:]):
            if b.startswith(a + "."):
                return changes
        out = []
        for change in changes:
            if out and change[0] == "put" and out[-1][0] == "put" and out[-1][1] == change[1]:
                out.pop()  # successive appends to one key: only the last value is written
            elif out and change[0] == "append" and out[-1][0] == "append" and out[-1][1] == change[1]:
                change = ("append", change[1], _concat(out.pop()[2], change[2]))  # one chunk, not several
            if change[0] == "put":
                node = root
                simple = True
                for part in change[1].split("."):
                    if type(node) is not Dir:
                        simple = False  # a value where a directory must be
                        break
                    node = node.get(part)
                    if node is None:
                        break
                if simple and type(node) is Dir:
                    simple = False
                change = (*change, simple)
            out.append(change)
        return out

    # ---- namespaces -------------------------------------------------------------

    def _rpc_namespace_create(self, msg, p):
        name = p.get("name")
        if not isinstance(name, str) or not name or "/" in name:
            raise KVSError(errno.EINVAL, "namespace name must be a non-empty string without '/'")
        if name in self.spaces:
            raise KVSError(errno.EEXIST, f"namespace {name} already exists")
        owner = p.get("owner", msg.get("userid", self.broker.owner))
        if type(owner) is not int or owner < 0:
            raise KVSError(errno.EINVAL, "namespace owner must be a user id (a non-negative integer)")
        self.store.namespace_create(name, owner)
        self.spaces[name] = Dir()
        self.owners[name] = owner
        self.broker.respond(msg, {})

    def _rpc_namespace_remove(self, msg, p):
        name = p.get("name")
        if name == PRIMARY:
            raise KVSError(errno.EINVAL, "the primary namespace cannot be removed")
        if name not in self.spaces:
            raise KVSError(errno.ENOENT, f"namespace {name} does not exist")
        self.store.namespace_remove(name)
        del self.spaces[name]
        del self.owners[name]
        for (wns, _key), watches in list(self.watches.items()):
            if wns == name:
                for w in list(watches):
                    self._end(w, errno.ENOTSUP, f"namespace {name} was removed")
        self.broker.respond(msg, {})

    def _rpc_namespace_list(self, msg, p):
        self.broker.respond(msg, {"namespaces": [{"name": n, "owner": self.owners.get(n)}
                                                 for n in sorted(self.spaces)]})
