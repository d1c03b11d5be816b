"""KVS watches: ``kvs.watch`` streams, their flow control and their ends.

A mixin of ``KVSService`` (``service.py``), which holds ``watches`` ((ns, key) to
a list of ``_Watch``), ``spaces`` and ``broker``. A watch sends the current value,
then each new one (with ``append``, only what was appended; with ``raw``, as raw
attachments, held back while the client's socket is backed up). It ends with
ENOENT when its key is removed, EISDIR when it becomes a directory, ENODATA
after ``kvs.unwatch``, ``end_watches`` or, with ``once``, right after the
current value; a disconnect drops the client's watches.
"""

import errno

from flux_launch.proto.message import STREAMING
from flux_launch.services.kvs.tree import PRIMARY, Dir, KVSError, Rope, _lookup, normalize, plain


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


class Watches:
    """The watch half of the KVS service."""

    def _rpc_watch(self, msg, p):
        ns, root = self._space(p)
        key = normalize(p.get("key"))
        if not msg.get("flags", 0) & STREAMING:
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
        except (KVSError, KeyError):  # removed while held back
            if w.sent or w.ending:
                self._end(w, errno.ENOENT, f"{w.key}: no such key (removed)")
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
                    if w.sent or w.ending:  # others wait for it to be created
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
