"""The KVS service on rank 0: hierarchical keys, JSON values, namespaces, watches.

Keys are dot-separated paths (``job.0000.0004.b200.0000.eventlog``); ``.`` is the
root directory. Each namespace is a tree of directories held in memory and
written through to sqlite (``store.py``) on every commit.

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

from flux_launch.services.kvs.store import BLOB_MIN, Blob, Store

log = logging.getLogger("flux_launch.kvs")

PRIMARY = "primary"


class Dir(dict):
    """A KVS directory: names to ``Dir`` or values (a value may itself be a dict)."""

    __slots__ = ()


class Rope:
    """A string value grown by appends (eventlogs, job output), held as UTF-8
    bytes: appends cost the appended bytes only, not a copy of everything before
    them, and raw appends (bytes from a message's attachment) are never decoded.
    A chunk kept in the store's blob file is held as its ``Blob``, read back (from
    the store's cache of recent blobs, or the file) when needed, so that big
    outputs do not stay in memory. Offsets (``length``, ``tail``) count bytes."""

    __slots__ = ("chunks", "length", "_text")

    def __init__(self, text=""):
        data = text.encode() if type(text) is str else text
        self.chunks = [data] if data else []
        self.length = len(data)
        self._text = text if type(text) is str else None

    def append(self, data, blob=None):
        """Append ``data`` (str, bytes, or a ``Blob``); ``blob``: where the store
        keeps ``data`` (then only the reference is held)."""
        if type(data) is str:
            data = data.encode()
        self.chunks.append(blob if blob is not None else data)
        self.length += len(data)
        self._text = None

    @staticmethod
    def _data(chunk):
        return chunk.read() if type(chunk) is Blob else chunk

    def value(self):
        """The whole string."""
        if self._text is not None:
            return self._text
        text = b"".join(self._data(chunk) for chunk in self.chunks).decode()
        if self.length < BLOB_MIN:
            self._text = text
        return text

    def pieces(self, start):
        """The bytes from offset ``start`` on, chunk by chunk."""
        if start >= self.length:
            return
        pos = self.length
        index = len(self.chunks)
        while index and pos > start:  # the chunk that holds start
            index -= 1
            pos -= len(self.chunks[index])
        for chunk in self.chunks[index:]:
            data = self._data(chunk)
            yield data[start - pos:] if start > pos else data
            pos += len(chunk)

    def tail(self, start):
        """The bytes from offset ``start`` on."""
        return b"".join(self.pieces(start))


def _utf8(raw, key):
    """Check that ``raw`` (an attachment) is the UTF-8 text of a string; returns it as bytes.

    Raises:
        KVSError: EINVAL, it is missing or not UTF-8.
    """
    if not isinstance(raw, (bytes, bytearray, memoryview)):
        raise KVSError(errno.EPROTO, f"kvs.commit: raw append to {key} without raw bytes")
    try:
        str(raw, "utf-8")
    except UnicodeDecodeError as exc:
        raise KVSError(errno.EINVAL, f"kvs.commit: raw append to {key}: not UTF-8 ({exc.reason} "
                       f"at byte {exc.start})") from None
    return bytes(raw)


def _concat(a, b):
    """Join two appended values (str or UTF-8 bytes)."""
    if type(a) is type(b):
        return a + b
    return (a.encode() if type(a) is str else a) + (b.encode() if type(b) is str else b)


def plain(node):
    """A stored value as JSON would have it (a Rope becomes its string)."""
    return node.value() if type(node) is Rope else node


class KVSError(Exception):
    def __init__(self, errnum, text):
        super().__init__(text)
        self.errnum = errnum
        self.text = text


def normalize(key):
    """Canonical form of a key: no empty components; ``.`` for the root.

    Raises:
        KVSError: the key is not a string.
    """
    if not isinstance(key, str):
        raise KVSError(errno.EINVAL, "key must be a string")
    parts = [p for p in key.split(".") if p]
    return ".".join(parts) if parts else "."


def _lookup(root, key):
    if key == ".":
        return root
    node = root
    for part in key.split("."):
        if type(node) is not Dir or part not in node:
            raise KVSError(errno.ENOENT, f"{key}: no such key")
        node = node[part]
    return node


def _listing(node, recursive):
    out = {}
    for name, child in node.items():
        if type(child) is Dir:
            out[name] = {"dir": _listing(child, True) if recursive else None}
        else:
            out[name] = {"value": plain(child)}
    return out


class _Watch:
    __slots__ = ("req", "key", "ns", "append", "uniq", "sent", "last", "raw", "client", "waiting", "ending")

    def __init__(self, req, key, ns, append, uniq, raw=False, client=None):
        self.req = req
        self.key = key
        self.ns = ns
        self.append = append
        self.uniq = uniq
        self.sent = 0
        self.last = None
        self.raw = raw  # appends go as a raw attachment (bytes), not a JSON string
        self.client = client  # the local connector client it answers, for flow control
        self.waiting = False  # held back until that client's send buffer drains
        self.ending = False  # cancelled while held back: ends once everything is sent


class KVSService:
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

    def handle(self, msg):
        method = msg["topic"][4:]
        fn = getattr(self, "_rpc_" + method.replace("-", "_"), None)
        if fn is None:
            self.broker.respond_error(msg, errno.ENOSYS, f"unknown method {msg['topic']}")
            return
        p = msg.get("payload")
        if not isinstance(p, dict):
            p = {}
        if self.closed:
            self.broker.respond_error(msg, errno.ENOSYS, "the KVS is closed: the instance is shutting down")
            return
        try:
            fn(msg, p)
        except KVSError as exc:
            self.broker.respond_error(msg, exc.errnum, exc.text)

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
        self.commit(p.get("ops"), p.get("namespace") or PRIMARY, p.get("raw"))
        self.broker.respond(msg, {})

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
        append op with ``"raw": true`` appends ``raw``, the UTF-8 bytes of a string.

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
        for op in ops:
            if not isinstance(op, dict):
                raise KVSError(errno.EPROTO, "kvs.commit: each op must be an object")
            kind = op.get("op")
            key = normalize(op.get("key"))
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
                if key in staged:  # put earlier in this commit: stage the whole value
                    old = staged[key]
                    if not isinstance(old, str):
                        raise KVSError(errno.EINVAL, f"kvs.commit: cannot append to {key}: "
                                       "its value is not a string")
                    staged[key] = old + (value if type(value) is str else value.decode())
                    changes.append(("put", key, staged[key]))
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
        self.store.commit(ns, changes)
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
        if self.watches:
            self._notify(ns, root, changed)

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

    # ---- watches ----------------------------------------------------------------

    def _rpc_watch(self, msg, p):
        ns, root = self._space(p)
        key = normalize(p.get("key"))
        if not msg.get("flags", 0) & 1:
            raise KVSError(errno.EPROTO, "kvs.watch must be a streaming RPC")
        append = bool(p.get("append"))
        raw = append and bool(p.get("raw"))
        w = _Watch(msg, key, ns, append, bool(p.get("uniq")), raw, self.broker.local_client(msg) if raw else None)
        try:
            node = _lookup(root, key)
        except KVSError:
            if not p.get("waitcreate"):
                raise
            node = None
        else:
            if type(node) is Dir:
                raise KVSError(errno.EISDIR, f"{key}: is a directory")
            if w.append and type(node) is not Rope and not isinstance(node, str):
                raise KVSError(errno.EINVAL, f"{key}: cannot watch appends to a value that is not a string")
        self.watches.setdefault((ns, key), []).append(w)
        if p.get("once") is True:  # what exists now, then the end (an inactive job's eventlogs)
            w.ending = True
            if node is None:
                self._end(w, errno.ENOENT, f"{key}: no such key")
                return
        if node is not None:
            self._send(w, node)
        if w.ending and not w.waiting and w in self.watches.get((ns, key), ()):
            self._end(w, errno.ENODATA)

    def end_watches(self, prefix, namespace=PRIMARY):
        """End the watches of ``prefix`` and of keys below it (in-process callers: a
        job's eventlogs once it is inactive): each ends with ENODATA once all that
        exists is sent, or ENOENT if its key never existed."""
        below = prefix + "."
        for (wns, wkey), watches in list(self.watches.items()):
            if wns != namespace or not (wkey == prefix or wkey.startswith(below)):
                continue
            for w in list(watches):
                if w.waiting:  # held back by flow control: ends once all is sent
                    w.ending = True
                elif w.sent or self._exists(wns, wkey):
                    self._end(w, errno.ENODATA)
                else:
                    self._end(w, errno.ENOENT, f"{wkey}: no such key")

    def _exists(self, ns, key):
        try:
            _lookup(self.spaces[ns], key)
        except (KVSError, KeyError):
            return False
        return True

    def _send(self, w, node):
        if w.append:
            rope = node if type(node) is Rope else None
            if rope is None:  # a plain string appended to since
                rope = Rope(node) if isinstance(node, str) else None
            length = rope.length if rope is not None else -1
            if length < w.sent:
                self._end(w, errno.EINVAL, f"{w.key}: value was replaced, not appended to")
                return
            if length == w.sent and w.sent:
                return
            if not w.raw:
                self.broker.respond(w.req, {"key": w.key, "value": rope.tail(w.sent).decode()})
                w.sent = length
                return
            # Raw: a response per chunk, and flow control: while the client's socket
            # is backed up, the rest waits in the KVS until it drains.
            client = w.client
            if not length:
                self.broker.respond(w.req, {"key": w.key, "raw": b""})
                return
            for data in rope.pieces(w.sent):
                if client is not None and client.paused:
                    if not w.waiting:
                        w.waiting = True
                        client.on_resume.append(lambda: self._resume(w))
                    return
                self.broker.respond(w.req, {"key": w.key, "raw": data})
                w.sent += len(data)
            if w.ending:
                self._end(w, errno.ENODATA)
        else:
            value = plain(node)
            if w.uniq and w.sent and value == w.last:
                return
            self.broker.respond(w.req, {"key": w.key, "value": value})
            w.sent += 1
            w.last = value

    def _resume(self, w):
        w.waiting = False
        if w not in self.watches.get((w.ns, w.key), ()):
            return  # ended meanwhile
        try:
            node = _lookup(self.spaces[w.ns], w.key)
        except (KVSError, KeyError):
            return
        if type(node) is not Dir:
            self._send(w, node)

    def _end(self, w, errnum, text=None):
        watches = self.watches.get((w.ns, w.key), [])
        if w in watches:
            watches.remove(w)
            if not watches:
                del self.watches[(w.ns, w.key)]
        self.broker.respond_error(w.req, errnum, text)

    def _notify(self, ns, root, changed):
        for (wns, wkey), watches in list(self.watches.items()):
            if wns != ns:
                continue
            if not any(k == wkey or k == "." or wkey.startswith(k + ".") or k.startswith(wkey + ".")
                       for k in changed):
                continue
            try:
                node = _lookup(root, wkey)
            except KVSError:
                for w in list(watches):
                    if w.sent:
                        self._end(w, errno.ENOENT, f"{wkey}: no such key (removed)")
                continue
            for w in list(watches):
                if type(node) is Dir:
                    self._end(w, errno.EISDIR, f"{wkey}: is now a directory")
                else:
                    self._send(w, node)

    def _rpc_unwatch(self, msg, p):
        route = msg.get("route", ())
        tag = p.get("matchtag")
        for watches in list(self.watches.values()):
            for w in list(watches):
                if w.req.get("matchtag") == tag and w.req.get("route") == route:
                    if w.waiting:  # held back by flow control: end once all is sent
                        w.ending = True
                    else:
                        self._end(w, errno.ENODATA)
        self.broker.respond(msg, {})

    def _rpc_disconnect(self, msg, p):
        route = msg.get("route", ())
        for (wns, wkey), watches in list(self.watches.items()):
            kept = [w for w in watches if w.req.get("route") != route]
            if kept:
                self.watches[(wns, wkey)] = kept
            else:
                del self.watches[(wns, wkey)]

    # ---- namespaces -------------------------------------------------------------

    def _rpc_namespace_create(self, msg, p):
        name = p.get("name")
        if not isinstance(name, str) or not name or "/" in name:
            raise KVSError(errno.EINVAL, "namespace name must be a non-empty string without '/'")
        if name in self.spaces:
            raise KVSError(errno.EEXIST, f"namespace {name} already exists")
        owner = p.get("owner", msg.get("userid", self.broker.owner))
        if type(owner) is not int or owner < 0:  # noqa: E721
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
        for (wns, wkey), watches in list(self.watches.items()):
            if wns == name:
                for w in list(watches):
                    self._end(w, errno.ENOTSUP, f"namespace {name} was removed")
        self.broker.respond(msg, {})

    def _rpc_namespace_list(self, msg, p):
        self.broker.respond(msg, {"namespaces": [{"name": n, "owner": self.owners.get(n)}
                                                 for n in sorted(self.spaces)]})
