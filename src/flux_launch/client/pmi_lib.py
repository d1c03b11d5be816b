"""PMI clients over a PMI library loaded at run time (cffi ABI mode, ``ffi.dlopen``).

A broker started by a launcher that offers PMI only through a library (Slurm's
``libpmi2.so``/``libpmi.so``, Cray's, ours in ``flux_launch/lib``) boots through
:class:`LibPMI2Client` (the PMI-2 API: ``PMI2_Init``, ``PMI2_KVS_Put``,
``PMI2_KVS_Fence``, ``PMI2_KVS_Get``, ``PMI2_Info_GetJobAttr``...) or
:class:`LibPMIClient` (the PMI-1 API: ``PMI_Init``, ``PMI_KVS_Put``,
``PMI_Barrier``...). Both have :class:`~flux_launch.client.pmi_client.PMIClient`'s
interface; ``init()`` is done by the constructor's caller. Libraries are loaded
``RTLD_NOW | RTLD_GLOBAL``. The library owns its
connection: ``close()`` only forgets it (a loaded library cannot be unloaded).
"""

from flux_launch.client.pmi_client import PMIError

_CDEF = """
int PMI2_Init(int *spawned, int *size, int *rank, int *appnum);
int PMI2_Finalize(void);
int PMI2_Abort(int flag, const char msg[]);
int PMI2_Job_GetId(char jobid[], int jobid_size);
int PMI2_KVS_Put(const char key[], const char value[]);
int PMI2_KVS_Fence(void);
int PMI2_KVS_Get(const char *jobid, int src_pmi_id, const char key[], char value[],
                 int maxvalue, int *vallen);
int PMI2_Info_GetJobAttr(const char name[], char value[], int valuelen, int *found);

int PMI_Init(int *spawned);
int PMI_Finalize(void);
int PMI_Abort(int exit_code, const char error_msg[]);
int PMI_Get_rank(int *rank);
int PMI_Get_size(int *size);
int PMI_KVS_Get_name_length_max(int *length);
int PMI_KVS_Get_value_length_max(int *length);
int PMI_KVS_Get_my_name(char kvsname[], int length);
int PMI_KVS_Put(const char kvsname[], const char key[], const char value[]);
int PMI_KVS_Commit(const char kvsname[]);
int PMI_KVS_Get(const char kvsname[], const char key[], char value[], int length);
int PMI_Barrier(void);
"""

_VALLEN = 1024  # PMI2_MAX_VALLEN; PMI-1 libraries say theirs
_ffi = None


def _load(path):
    """``(ffi, lib)`` for the library at ``path``.

    Raises:
        OSError: cffi is missing or the library cannot be loaded (the message
            names the path and the loader's reason).
    """
    global _ffi
    try:
        import cffi
    except ImportError:
        raise OSError(f"cannot load {path}: the cffi module is not installed") from None
    if _ffi is None:
        _ffi = cffi.FFI()
        _ffi.cdef(_CDEF)
    try:
        # RTLD_GLOBAL, as flux-core does: Slurm's libpmi resolves its plugins'
        # symbols (auth, libslurm) through the global namespace.
        return _ffi, _ffi.dlopen(path, _ffi.RTLD_NOW | _ffi.RTLD_GLOBAL)
    except OSError as exc:
        raise OSError(f"cannot load PMI library {path}: {exc}") from None


def _symbol(lib, name, path):
    try:
        return getattr(lib, name)
    except AttributeError:
        raise OSError(f"{path} has no {name}(): not a PMI library of that version") from None


def _check(rc, what):
    if rc != 0:
        raise PMIError(f"{what} failed (rc={rc})", rc)


class LibPMI2Client:
    """The PMI-2 API of the library at ``path``.

    Raises:
        OSError: the library cannot be loaded or lacks the PMI-2 API.
    """

    def __init__(self, path):
        self.path = path
        self._ffi, self._lib = _load(path)
        for name in ("PMI2_Init", "PMI2_KVS_Put", "PMI2_KVS_Fence", "PMI2_KVS_Get"):
            _symbol(self._lib, name, path)
        self.rank = 0
        self.size = 1
        self._jobid = None

    def init(self):
        """``PMI2_Init``: sets ``rank`` and ``size``. Raises PMIError on an error rc."""
        ffi = self._ffi
        spawned, size, rank, appnum = (ffi.new("int *") for _ in range(4))
        _check(self._lib.PMI2_Init(spawned, size, rank, appnum), f"PMI2_Init ({self.path})")
        self.rank, self.size = rank[0], size[0]
        buf = ffi.new("char[]", 256)
        _check(self._lib.PMI2_Job_GetId(buf, 256), "PMI2_Job_GetId")
        self._jobid = ffi.string(buf).decode()

    def put(self, key, value):
        _check(self._lib.PMI2_KVS_Put(key.encode(), value.encode()), f"PMI2_KVS_Put {key}")

    def get(self, key):
        """A ``PMI_*`` key is a job attribute; KeyError if not found."""
        ffi = self._ffi
        buf = ffi.new("char[]", _VALLEN + 1)
        if key.startswith("PMI_"):
            found = ffi.new("int *")
            rc = self._lib.PMI2_Info_GetJobAttr(key.encode(), buf, _VALLEN + 1, found)
            if rc != 0 or not found[0]:
                raise KeyError(key)
        else:
            vallen = ffi.new("int *")
            if self._lib.PMI2_KVS_Get(self._jobid.encode(), -1, key.encode(), buf, _VALLEN + 1, vallen) != 0:
                raise KeyError(key)
        return ffi.string(buf).decode()

    def barrier(self):
        _check(self._lib.PMI2_KVS_Fence(), "PMI2_KVS_Fence")

    def finalize(self):
        _check(self._lib.PMI2_Finalize(), "PMI2_Finalize")

    def abort(self, exitcode, msg=""):
        """``PMI2_Abort``: the library ends the process."""
        self._lib.PMI2_Abort(1, str(msg).encode())

    def close(self):
        """Nothing to close: the library owns its connection."""


class LibPMIClient:
    """The PMI-1 API of the library at ``path``.

    Raises:
        OSError: the library cannot be loaded or lacks the PMI-1 API.
    """

    def __init__(self, path):
        self.path = path
        self._ffi, self._lib = _load(path)
        for name in ("PMI_Init", "PMI_KVS_Put", "PMI_Barrier", "PMI_KVS_Get", "PMI_KVS_Get_my_name"):
            _symbol(self._lib, name, path)
        self.rank = 0
        self.size = 1
        self._kvsname = b""
        self._vallen = _VALLEN

    def init(self):
        """``PMI_Init``, then rank, size and the KVS name. Raises PMIError on an error rc."""
        ffi, lib = self._ffi, self._lib
        out = ffi.new("int *")
        _check(lib.PMI_Init(out), f"PMI_Init ({self.path})")
        _check(lib.PMI_Get_rank(out), "PMI_Get_rank")
        self.rank = out[0]
        _check(lib.PMI_Get_size(out), "PMI_Get_size")
        self.size = out[0]
        _check(lib.PMI_KVS_Get_name_length_max(out), "PMI_KVS_Get_name_length_max")
        buf = ffi.new("char[]", out[0] + 1)
        _check(lib.PMI_KVS_Get_my_name(buf, out[0] + 1), "PMI_KVS_Get_my_name")
        self._kvsname = ffi.string(buf)
        if lib.PMI_KVS_Get_value_length_max(out) == 0 and out[0] > 0:
            self._vallen = out[0]

    def put(self, key, value):
        _check(self._lib.PMI_KVS_Put(self._kvsname, key.encode(), value.encode()), f"PMI_KVS_Put {key}")
        _check(self._lib.PMI_KVS_Commit(self._kvsname), "PMI_KVS_Commit")

    def get(self, key):
        """KeyError if the library has no such key."""
        buf = self._ffi.new("char[]", self._vallen + 1)
        if self._lib.PMI_KVS_Get(self._kvsname, key.encode(), buf, self._vallen + 1) != 0:
            raise KeyError(key)
        return self._ffi.string(buf).decode()

    def barrier(self):
        _check(self._lib.PMI_Barrier(), "PMI_Barrier")

    def finalize(self):
        _check(self._lib.PMI_Finalize(), "PMI_Finalize")

    def abort(self, exitcode, msg=""):
        """``PMI_Abort``: the library ends the process."""
        self._lib.PMI_Abort(int(exitcode), str(msg).encode())

    def close(self):
        """Nothing to close: the library owns its connection."""
