"""Durable storage of the KVS in sqlite (``<statedir>/content.sqlite``, WAL).

One row per value: ``(namespace, key, value)`` with the value as JSON text; an
empty directory made with ``mkdir`` is a row whose value is NULL. Each KVS commit
is one sqlite transaction, so a commit is either wholly on disk or not at all.
``synchronous=NORMAL`` in WAL mode survives a crash of the broker (not of the
machine's power), at a fraction of the cost of a full sync per commit.

Appends to a string (eventlogs, job output) are rows of ``chunks``, in order. A
chunk of ``BLOB_MIN`` bytes or more (batches of job output) is not written into
sqlite but into a file of its own, ``<statedir>/blobs/<id>`` (0600), its row
holding the id and length: sqlite would write it twice (WAL, then checkpoint)
with a checksum per page, ~4 ms per MiB here against ~1 ms for one file. The
file is written before the row's transaction commits, so a row never names bytes
that were not written; the files of removed rows are unlinked once the removal
has committed, and files without a row (a crash in between) are removed at the
next start: the space of purged jobs' output comes back. A database of an older
version keeps reading its chunks from ``content.blobs`` (one file, offsets),
which is removed once no row refers to it. New databases use sqlite's
incremental auto-vacuum, so that pages freed by a purge are given back too.
"""

import json
import os
import sqlite3
from collections import OrderedDict

_SCHEMA = """
CREATE TABLE IF NOT EXISTS kvs (ns TEXT NOT NULL, key TEXT NOT NULL, value TEXT,
                                PRIMARY KEY (ns, key)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS namespaces (name TEXT PRIMARY KEY, owner INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS chunks (ns TEXT NOT NULL, key TEXT NOT NULL, data TEXT, off INTEGER, len INTEGER,
                                   file INTEGER);
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
WAL_LIMIT = 16 * 1024 * 1024  # the -wal file is truncated back to this after a checkpoint


class Blob:
    """Bytes of an appended chunk kept in a blob file, read back on demand: file
    ``blobs/<file>``, or (``file`` None, an older database) ``off`` in ``content.blobs``."""

    __slots__ = ("store", "file", "off", "size")

    def __init__(self, store, file, off, size):
        self.store = store
        self.file = file
        self.off = off
        self.size = size

    def __len__(self):
        return self.size

    def read(self):
        return self.store.read_blob(self)


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
            self.db.execute("PRAGMA auto_vacuum=INCREMENTAL")  # only takes on a new database
            self.db.execute("PRAGMA journal_mode=WAL")
            self.db.execute("PRAGMA synchronous=NORMAL")
            self.db.execute(f"PRAGMA journal_size_limit={WAL_LIMIT}")
            self.db.executescript(_SCHEMA)
            columns = [row[1] for row in self.db.execute("PRAGMA table_info(chunks)")]
            if "off" not in columns:
                self.db.executescript(_MIGRATE_CHUNKS)
            if "file" not in columns:
                self.db.execute("ALTER TABLE chunks ADD COLUMN file INTEGER")
        except (OSError, sqlite3.Error) as exc:
            raise StoreError(f"cannot use {path}: {exc}") from None
        self.blobdir = os.path.join(statedir, "blobs")
        try:
            os.makedirs(self.blobdir, mode=0o700, exist_ok=True)
            self.next_blob = self._collect_blobs()
        except (OSError, sqlite3.Error) as exc:
            raise StoreError(f"cannot use {self.blobdir}: {exc}") from None
        self.legacy_fd = None  # content.blobs of an older database, read only
        self.legacy_end = 0
        legacy = os.path.join(statedir, "content.blobs")
        if os.path.exists(legacy):
            if self.db.execute("SELECT 1 FROM chunks WHERE data IS NULL AND file IS NULL LIMIT 1").fetchone():
                try:
                    self.legacy_fd = os.open(legacy, os.O_RDONLY | os.O_CLOEXEC)
                except OSError as exc:
                    raise StoreError(f"cannot use {legacy}: {exc.strerror}") from None
                self.legacy_end = os.lseek(self.legacy_fd, 0, os.SEEK_END)
            else:
                os.unlink(legacy)
        self.dead = []  # blob files of rows removed by the transaction in progress
        self.cache = OrderedDict()  # blob key -> bytes of recent blobs
        self.cached = 0

    def _collect_blobs(self):
        """Remove blob files that no row names (written before a crash, or whose
        removal was committed but not carried out); returns the next free id."""
        used = {f for (f,) in self.db.execute("SELECT file FROM chunks WHERE file IS NOT NULL")}
        for name in os.listdir(self.blobdir):
            try:
                number = int(name, 16)
            except ValueError:
                continue
            if number not in used:
                os.unlink(os.path.join(self.blobdir, name))
        return max(used, default=0) + 1

    def _blob_path(self, number):
        return os.path.join(self.blobdir, f"{number:016x}")

    def write_blob(self, data):
        """Write ``data`` to a new blob file (0600); returns its ``Blob``.

        Raises:
            OSError: the write failed (e.g. ENOSPC); the file is removed and
                nothing refers to it.
        """
        number = self.next_blob
        self.next_blob += 1
        path = self._blob_path(number)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view):]
        except OSError:
            os.unlink(path)
            raise
        finally:
            os.close(fd)
        self._cache_put(number, data)
        return Blob(self, number, 0, len(data))

    def read_blob(self, blob):
        """The bytes of ``blob`` (from the cache of recent blobs, or its file).

        Raises:
            OSError: the file is missing or shorter than its row says.
        """
        key = blob.file if blob.file is not None else ("content.blobs", blob.off)
        data = self.cache.get(key)
        if data is not None:
            self.cache.move_to_end(key)
            return data
        if blob.file is not None:
            with open(self._blob_path(blob.file), "rb") as f:
                data = f.read()
            where = f"blobs/{blob.file:016x}"
        else:
            data = os.pread(self.legacy_fd, blob.size, blob.off)
            where = f"content.blobs at offset {blob.off}"
        if len(data) != blob.size:
            raise OSError(f"{where}: {blob.size} bytes expected, {len(data)} found (file truncated?)")
        self._cache_put(key, data)
        return data

    def _cache_put(self, key, data):
        """Keep the latest blobs in memory (``CACHE_BYTES`` in all): a reader that is
        a few MiB behind the writer (a watcher held back by flow control) gets them
        without reading the file."""
        data = bytes(data)
        self.cache[key] = data
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
        chunks = [(ns, key, data if data is not None else Blob(self, file, off, size))
                  for ns, key, data, off, size, file in self.db.execute(
                      "SELECT ns, key, data, off, len, file FROM chunks ORDER BY rowid")
                  if data is not None or file is not None
                  or (off is not None and self.legacy_fd is not None and off + size <= self.legacy_end)]
        return spaces, rows, chunks

    def commit(self, ns, changes):
        """Apply a list of changes in one transaction.

        ``changes`` items: ``("put", key, value[, simple])``, ``("mkdir", key)``,
        ``("delete", key)`` (the key and everything below it). A ``simple`` put
        changes no structure and is a single upsert.
        """
        db = self.db
        db.execute("BEGIN")
        self.dead = []
        try:
            for change in changes:
                op, key = change[0], change[1]
                if op == "put":
                    value = json.dumps(change[2], separators=(",", ":"), ensure_ascii=False)
                    if len(change) > 3 and change[3]:  # no structure changes: one upsert
                        db.execute("INSERT OR REPLACE INTO kvs VALUES (?, ?, ?)", (ns, key, value))
                        self._delete_chunks("ns = ? AND key = ?", (ns, key))
                        continue
                    self._delete_tree(ns, key)
                    db.execute("INSERT INTO kvs VALUES (?, ?, ?)", (ns, key, value))
                elif op == "mkdir":
                    self._delete_tree(ns, key)
                    db.execute("INSERT INTO kvs VALUES (?, ?, NULL)", (ns, key))
                elif op == "append":  # an existing string grows by one row, not a rewrite
                    data = change[2]
                    if type(data) is Blob:  # written to its file already
                        db.execute("INSERT INTO chunks VALUES (?, ?, NULL, 0, ?, ?)",
                                   (ns, key, data.size, data.file))
                    else:
                        db.execute("INSERT INTO chunks VALUES (?, ?, ?, NULL, NULL, NULL)", (ns, key, data))
                elif op == "delete":
                    self._delete_tree(ns, key)
                    # unlinking leaves the parent directory, even when now empty
                    parent = key.rpartition(".")[0]
                    if parent:
                        db.execute("INSERT OR IGNORE INTO kvs VALUES (?, ?, NULL)", (ns, parent))
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            # the blob files written for this commit's appends: no row names them now
            self.dead = [c[2].file for c in changes if c[0] == "append" and type(c[2]) is Blob and c[2].file]
            self._unlink_dead()
            raise
        self._unlink_dead()

    def _delete_chunks(self, where, args):
        """Delete the chunks rows matching ``where``; their blob files are removed
        once the transaction has committed (``dead``)."""
        self.dead += [f for (f,) in self.db.execute(
            f"SELECT file FROM chunks WHERE file IS NOT NULL AND {where}", args)]
        self.db.execute(f"DELETE FROM chunks WHERE {where}", args)

    def _unlink_dead(self):
        dead, self.dead = self.dead, []
        for number in dead:
            self.cached -= len(self.cache.pop(number, b""))
            try:
                os.unlink(self._blob_path(number))
            except FileNotFoundError:
                pass

    def _delete_tree(self, ns, key):
        if key == ".":
            self.db.execute("DELETE FROM kvs WHERE ns = ?", (ns,))
            self._delete_chunks("ns = ?", (ns,))
            return
        # '/' sorts right after '.', so [key., key/) is exactly the keys below key. Two
        # statements, not one with OR: sqlite would scan the whole table for the OR.
        for where, args in (("ns = ? AND key = ?", (ns, key)),
                            ("ns = ? AND key >= ? AND key < ?", (ns, key + ".", key + "/"))):
            self.db.execute(f"DELETE FROM kvs WHERE {where}", args)
            self._delete_chunks(where, args)
        # a value at an ancestor path is replaced by the directory the key implies
        parts = key.split(".")
        for i in range(1, len(parts)):
            self.db.execute("DELETE FROM kvs WHERE ns = ? AND key = ? AND value IS NOT NULL",
                            (ns, ".".join(parts[:i])))
            self._delete_chunks("ns = ? AND key = ?", (ns, ".".join(parts[:i])))

    def vacuum(self, pages=1000):
        """Give up to ``pages`` free pages back to the file system (after a purge);
        a database made before incremental auto-vacuum keeps them for reuse."""
        # executescript steps the pragma to its end (execute frees a single page)
        self.db.executescript(f"PRAGMA incremental_vacuum({int(pages)});")

    def namespace_create(self, name, owner):
        self.db.execute("INSERT OR REPLACE INTO namespaces VALUES (?, ?)", (name, owner))

    def namespace_remove(self, name):
        self.db.execute("BEGIN")
        self.dead = []
        self.db.execute("DELETE FROM namespaces WHERE name = ?", (name,))
        self.db.execute("DELETE FROM kvs WHERE ns = ?", (name,))
        self._delete_chunks("ns = ?", (name,))
        self.db.execute("COMMIT")
        self._unlink_dead()

    def close(self):
        try:
            self.db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        finally:
            self.db.close()
            if self.legacy_fd is not None:
                os.close(self.legacy_fd)
