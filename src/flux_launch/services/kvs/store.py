"""Durable storage of the KVS in sqlite (``<statedir>/content.sqlite``, WAL).

One row per value: ``(namespace, key, value)`` with the value as JSON text; an
empty directory made with ``mkdir`` is a row whose value is NULL. Each KVS commit
is one sqlite transaction, so a commit is either wholly on disk or not at all.
``synchronous=NORMAL`` in WAL mode survives a crash of the broker (not of the
machine's power), at a fraction of the cost of a full sync per commit.

Appends to a string (eventlogs, job output) are rows of ``chunks``, in order. A
chunk of ``BLOB_MIN`` bytes or more (batches of job output) is not written into
sqlite but appended to ``<statedir>/content.blobs``, its row holding the offset
and length: sqlite would write it twice (WAL, then checkpoint) with a checksum
per page, ~4 ms per MiB here against ~1 ms for one append to a file. The file
is written before the row's transaction commits, so a row never names bytes
that were not written (bytes without a row, after a crash, are ignored). Space
of removed values is not reclaimed in the file.
"""

import json
import os
import sqlite3
from collections import OrderedDict

_SCHEMA = """
CREATE TABLE IF NOT EXISTS kvs (ns TEXT NOT NULL, key TEXT NOT NULL, value TEXT,
                                PRIMARY KEY (ns, key)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS namespaces (name TEXT PRIMARY KEY, owner INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS chunks (ns TEXT NOT NULL, key TEXT NOT NULL, data TEXT, off INTEGER, len INTEGER);
CREATE INDEX IF NOT EXISTS chunks_key ON chunks (ns, key);
"""


# A database from before the blob file: its chunks all hold their data.
_MIGRATE_CHUNKS = """
BEGIN;
ALTER TABLE chunks RENAME TO chunks_v1;
CREATE TABLE chunks (ns TEXT NOT NULL, key TEXT NOT NULL, data TEXT, off INTEGER, len INTEGER);
INSERT INTO chunks SELECT ns, key, data, NULL, NULL FROM chunks_v1 ORDER BY rowid;
DROP TABLE chunks_v1;
CREATE INDEX IF NOT EXISTS chunks_key ON chunks (ns, key);
COMMIT;
"""

BLOB_MIN = 64 * 1024
CACHE_BYTES = 16 * 1024 * 1024


class Blob:
    """Bytes of an appended chunk kept in the blob file, read back on demand."""

    __slots__ = ("store", "off", "size")

    def __init__(self, store, off, size):
        self.store = store
        self.off = off
        self.size = size

    def __len__(self):
        return self.size

    def read(self):
        return self.store.read_blob(self.off, self.size)


def _private(path, *suffixes):
    """Create ``path`` (if missing) and make it and ``path + suffix`` (if present)
    mode 0600. sqlite creates its database 0644 less the umask, and its -wal and
    -shm files with the database's mode: made first, and private, the database
    keeps all three private whatever the umask or the directory's mode.

    Raises:
        OSError: the file cannot be created or its mode set.
    """
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        if os.fstat(fd).st_mode & 0o077:
            os.fchmod(fd, 0o600)
    finally:
        os.close(fd)
    for suffix in suffixes:
        try:
            if os.stat(path + suffix).st_mode & 0o077:
                os.chmod(path + suffix, 0o600)
        except FileNotFoundError:
            pass


class StoreError(RuntimeError):
    """The state directory cannot be used; the message names the file and the cause."""


class Store:
    """The sqlite file behind the KVS.

    Raises:
        StoreError: the database cannot be opened or is not a KVS database.
    """

    def __init__(self, statedir):
        path = os.path.join(statedir, "content.sqlite")
        self.path = path
        try:
            os.makedirs(statedir, mode=0o700, exist_ok=True)
            _private(path, "-wal", "-shm")
            self.db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
            self.db.execute("PRAGMA journal_mode=WAL")
            self.db.execute("PRAGMA synchronous=NORMAL")
            self.db.executescript(_SCHEMA)
            if "off" not in [row[1] for row in self.db.execute("PRAGMA table_info(chunks)")]:
                self.db.executescript(_MIGRATE_CHUNKS)
        except (OSError, sqlite3.Error) as exc:
            raise StoreError(f"cannot use {path}: {exc}") from None
        blobs = os.path.join(statedir, "content.blobs")
        try:
            self.blob_fd = os.open(blobs, os.O_RDWR | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC, 0o600)
        except OSError as exc:
            raise StoreError(f"cannot use {blobs}: {exc.strerror}") from None
        self.blob_end = os.lseek(self.blob_fd, 0, os.SEEK_END)
        self.cache = OrderedDict()  # offset -> bytes of recent blobs
        self.cached = 0

    def write_blob(self, data):
        """Append ``data`` to the blob file; returns its ``Blob``.

        Raises:
            OSError: the write failed (e.g. ENOSPC); nothing refers to the bytes.
        """
        off = self.blob_end
        view = memoryview(data)
        while view:
            view = view[os.write(self.blob_fd, view):]
        self.blob_end = off + len(data)
        self._cache_put(off, data)
        return Blob(self, off, len(data))

    def read_blob(self, off, size):
        data = self.cache.get(off)
        if data is not None:
            self.cache.move_to_end(off)
            return data
        data = os.pread(self.blob_fd, size, off)
        if len(data) != size:
            raise OSError(f"content.blobs: {size} bytes at offset {off} are missing (file truncated?)")
        self._cache_put(off, data)
        return data

    def _cache_put(self, off, data):
        """Keep the latest blobs in memory (``CACHE_BYTES`` in all): a reader that is
        a few MiB behind the writer (a watcher held back by flow control) gets them
        without reading the file."""
        data = bytes(data)
        self.cache[off] = data
        self.cached += len(data)
        while self.cached > CACHE_BYTES and len(self.cache) > 1:
            self.cached -= len(self.cache.popitem(last=False)[1])

    def load(self):
        """Read everything back.

        Returns:
            ``(namespaces, rows, chunks)``: a dict of namespace name to owner, a list
            of ``(ns, key, value, is_dir)`` in key order (a directory before its keys),
            and ``(ns, key, text)`` appended to string values, in order.
        """
        spaces = dict(self.db.execute("SELECT name, owner FROM namespaces"))
        rows = [(ns, key, None if v is None else json.loads(v), v is None)
                for ns, key, v in self.db.execute("SELECT ns, key, value FROM kvs ORDER BY ns, key")]
        chunks = [(ns, key, Blob(self, off, size) if data is None else data)
                  for ns, key, data, off, size in self.db.execute(
                      "SELECT ns, key, data, off, len FROM chunks ORDER BY rowid")
                  if data is not None or (off is not None and off + size <= self.blob_end)]
        return spaces, rows, chunks

    def commit(self, ns, changes):
        """Apply a list of changes in one transaction.

        ``changes`` items: ``("put", key, value[, simple])``, ``("mkdir", key)``,
        ``("delete", key)`` (the key and everything below it). A ``simple`` put
        changes no structure and is a single upsert.
        """
        db = self.db
        db.execute("BEGIN")
        try:
            for change in changes:
                op, key = change[0], change[1]
                if op == "put":
                    value = json.dumps(change[2], separators=(",", ":"), ensure_ascii=False)
                    if len(change) > 3 and change[3]:  # no structure changes: one upsert
                        db.execute("INSERT OR REPLACE INTO kvs VALUES (?, ?, ?)", (ns, key, value))
                        db.execute("DELETE FROM chunks WHERE ns = ? AND key = ?", (ns, key))
                        continue
                    self._delete_tree(ns, key)
                    db.execute("INSERT INTO kvs VALUES (?, ?, ?)", (ns, key, value))
                elif op == "mkdir":
                    self._delete_tree(ns, key)
                    db.execute("INSERT INTO kvs VALUES (?, ?, NULL)", (ns, key))
                elif op == "append":  # an existing string grows by one row, not a rewrite
                    data = change[2]
                    if type(data) is Blob:  # written to the blob file already
                        db.execute("INSERT INTO chunks VALUES (?, ?, NULL, ?, ?)", (ns, key, data.off, data.size))
                    else:
                        db.execute("INSERT INTO chunks VALUES (?, ?, ?, NULL, NULL)", (ns, key, data))
                elif op == "delete":
                    self._delete_tree(ns, key)
                    # unlinking leaves the parent directory, even when now empty
                    parent = key.rpartition(".")[0]
                    if parent:
                        db.execute("INSERT OR IGNORE INTO kvs VALUES (?, ?, NULL)", (ns, parent))
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise

    def _delete_tree(self, ns, key):
        if key == ".":
            self.db.execute("DELETE FROM kvs WHERE ns = ?", (ns,))
            self.db.execute("DELETE FROM chunks WHERE ns = ?", (ns,))
            return
        # '/' sorts right after '.', so [key., key/) is exactly the keys below key
        for table in ("kvs", "chunks"):
            self.db.execute(f"DELETE FROM {table} WHERE ns = ? AND (key = ? OR (key >= ? AND key < ?))",
                            (ns, key, key + ".", key + "/"))
        # a value at an ancestor path is replaced by the directory the key implies
        parts = key.split(".")
        for i in range(1, len(parts)):
            self.db.execute("DELETE FROM kvs WHERE ns = ? AND key = ? AND value IS NOT NULL",
                            (ns, ".".join(parts[:i])))
            self.db.execute("DELETE FROM chunks WHERE ns = ? AND key = ?", (ns, ".".join(parts[:i])))

    def namespace_create(self, name, owner):
        self.db.execute("INSERT OR REPLACE INTO namespaces VALUES (?, ?)", (name, owner))

    def namespace_remove(self, name):
        self.db.execute("BEGIN")
        self.db.execute("DELETE FROM namespaces WHERE name = ?", (name,))
        self.db.execute("DELETE FROM kvs WHERE ns = ?", (name,))
        self.db.execute("DELETE FROM chunks WHERE ns = ?", (name,))
        self.db.execute("COMMIT")

    def close(self):
        try:
            self.db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        finally:
            self.db.close()
            os.close(self.blob_fd)
