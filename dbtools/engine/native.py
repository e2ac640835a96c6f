"""The fused CPU pooling kernel (`pooling_kernel.c`): compiled on first use, loaded with ctypes.

Windowed scoring on the CPU spends most of its time on edge cuts, 2(m-1) partial sums per
base and detector. As torch operations each of them streams through memory; the kernel keeps
them in registers. It is compiled once per machine with the system C compiler (`$CC`, else
`cc`) into a cache folder (`$DBTOOLS_CACHE`, else `$XDG_CACHE_HOME/dbtools`, else
`~/.cache/dbtools`; if that is not usable, `dbtools-<uid>` in the temporary folder). The
library runs as code, so it is only built in and loaded from a folder this user owns and no
one else can write. It is used on CPUs with AVX-512 (see `wanted`; `DBTOOLS_NATIVE=1` forces it,
`0` turns it off). Otherwise, or without a working compiler, `library()` is None and the engine
keeps its torch path (same values); a failed build says so once on stderr.
"""

from __future__ import annotations

import ctypes
import functools
import hashlib
import os
import platform
import signal
import subprocess
import sys
import tempfile
import threading
from dataclasses import dataclass
from pathlib import Path

import torch

SOURCE = Path(__file__).with_name("pooling_kernel.c")
MAX_DETECTOR_LEN = 64  # MAXM in the kernel: longer detectors take the torch path
FLAGS = ("-O3", "-march=native", "-std=c11", "-fPIC", "-shared", "-Wno-psabi")
BUILD_TIMEOUT = 120  # seconds; the build takes 28 s on an AMD EPYC core without AVX-512 (gcc 12)
LANES = 16  # detector columns per kernel tile: a fused head needs one model strand per tile
MAX_HIDDEN = 64  # hidden units a fused head takes (a multiple of LANES)


@dataclass
class Head:
    """The dense layers of a group's model strands, laid out for the kernel (one strand per tile):
    w1 [U, k, LANES, hp] (hp = hidden or 1; zero past the strand's detectors), b1 [U, hp],
    w2 [U, hidden] and b2 [U] with a hidden layer."""

    hidden: int
    w1: torch.Tensor
    b1: torch.Tensor
    w2: torch.Tensor | None
    b2: torch.Tensor | None


_lock = threading.Lock()
_state: dict = {}


def _cpu() -> str:
    """What -march=native depends on: the CPU model and its flags (a cache shared by unlike nodes)."""
    try:
        with open("/proc/cpuinfo") as fh:
            lines = [ln for ln in fh if ln.startswith(("model name", "flags"))]
        return "".join(sorted(set(lines)))
    except OSError:
        return platform.processor() + platform.machine()


def cache_dir() -> Path:
    if os.environ.get("DBTOOLS_CACHE"):
        return Path(os.environ["DBTOOLS_CACHE"])
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "dbtools"


def _private(folder: Path) -> bool:
    """Owned by this user and writable by no one else (what is loaded from it runs as code)."""
    st = folder.stat()
    return st.st_uid == os.getuid() and not st.st_mode & 0o022


def _compile(cc: str, out: str, source: Path) -> None:
    """Compile the kernel into `out`; on timeout kill the whole compiler process group (the
    driver's children, cc1 and as, would otherwise run on, orphaned)."""
    proc = subprocess.Popen([cc, *FLAGS, "-o", out, str(source)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, start_new_session=True)
    try:
        _, err = proc.communicate(timeout=BUILD_TIMEOUT)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.communicate()
        raise
    if proc.returncode:
        raise subprocess.CalledProcessError(proc.returncode, proc.args, stderr=err)


def build(cc: str, source: Path = SOURCE, name: str = "pooling_kernel") -> Path:
    """The shared library `name` of a C source of this package, compiled once per machine into the cache."""
    text = source.read_bytes()
    key = hashlib.sha256(text + cc.encode() + " ".join(FLAGS).encode() + _cpu().encode()).hexdigest()[:16]
    for folder in (cache_dir(), Path(tempfile.gettempdir()) / f"dbtools-{os.getuid()}"):
        target = folder / f"{name}-{key}.so"
        try:
            folder.mkdir(mode=0o700, parents=True, exist_ok=True)
            if not _private(folder):
                continue  # a library others could have written is never loaded
            if target.exists():
                return target
            fd, tmp = tempfile.mkstemp(suffix=".so", dir=folder)
            os.close(fd)
        except OSError:
            continue  # not writable: try the next folder
        try:
            _compile(cc, tmp, source)
            os.replace(tmp, target)  # complete or absent, even with another process building it too
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)
        return target
    raise OSError("no writable cache folder for the compiled kernel")


@functools.lru_cache(maxsize=None)
def has_avx512() -> bool:
    """Whether this CPU has AVX-512 (the flags of /proc/cpuinfo; False where that cannot be read)."""
    return "avx512f" in _cpu().split()


def wanted() -> bool:
    """Whether to use the kernel. DBTOOLS_NATIVE=0: never; =1: always (tests); unset or auto: on
    CPUs with AVX-512 only. Its tiles are 16-float vectors: with AVX2 each is split in two and the
    shift register spills, and the torch path measured 2-4x faster (AMD EPYC, 2 cores)."""
    mode = os.environ.get("DBTOOLS_NATIVE", "auto")
    if mode in ("0", "1"):
        return mode == "1"
    return has_avx512()


def library():
    """The loaded kernel, or None (not wanted here, or no compiler); built once per process."""
    if not wanted():
        return None
    with _lock:
        if "lib" not in _state:
            _state["lib"] = load(SOURCE, "pooling_kernel", _declare_pool_windows, "fused CPU kernel")
        return _state["lib"]


def _declare_pool_windows(lib: ctypes.CDLL) -> None:
    fn = lib.dbt_pool_windows
    fn.restype = ctypes.c_int
    i64, ptr = ctypes.c_int64, ctypes.c_void_p
    fn.argtypes = [ptr, i64, i64, i64, i64, i64, ptr, ptr, i64, ptr, ptr, ptr, i64, i64, ctypes.c_float,
                   i64, ptr, ptr, ptr, ptr, i64]


def load(source: Path, name: str, declare, what: str):
    """A C source of this package built (`build`) and loaded, `declare(lib)` setting its functions'
    types; None, said once on stderr, where it cannot be built."""
    cc = os.environ.get("CC", "cc")
    try:
        lib = ctypes.CDLL(str(build(cc, source, name)))
        declare(lib)
        return lib
    except (OSError, subprocess.SubprocessError) as e:
        lines = e.stderr.decode(errors="replace").splitlines() if getattr(e, "stderr", None) else []
        why = [ln for ln in lines if "error" in ln][:1] or lines[-1:] or [e]
        print(f"dbtools: the {what} could not be built with {cc!r} ({why[0] if why else e}); "
              "using the slower torch path (set CC to a C compiler to fix)", file=sys.stderr)
        return None


def pool_windows(x: torch.Tensor, w: int, weights: torch.Tensor, const: torch.Tensor, out: torch.Tensor,
                 rows_max: torch.Tensor, rows_avg: torch.Tensor | None, scale: float,
                 head: Head | None = None, step: int = 1) -> None:
    """Pooled responses of windows x[b, s:s+w], s = i * step, with every column f of `weights`, into out[row, i, b]:
    the max at row rows_max[f], and with rows_avg the scaled sum of rectified responses at rows_avg[f].
    With `head`, each LANES columns are one model strand and its score goes to out[rows_max[t], s, b]
    (tile t; rows_avg then only says that the model pools the average too).

    x: [B, nw + w - 1] uint8 codes (>= 4 is N; rows contiguous); weights [m, 5, F] centred (row
    4 zero); const [F]; out: [rows, nw, B] float32, contiguous; rows_*: int64.
    """
    lib = library()
    m, F = weights.shape[0], const.numel()
    B, nw = x.shape[0], x.shape[1] - w + 1
    kept = (nw - 1) // step + 1
    assert x.dtype == torch.uint8 and x.stride(1) == 1 and w >= m and step >= 1
    assert weights.is_contiguous() and weights.shape == (m, 5, F) and const.is_contiguous()
    assert out.dtype == torch.float32 and out.is_contiguous() and out.shape[1:] == (kept, B)
    n_rows = F // LANES if head is not None else F
    dest = []
    for rows in (rows_max, rows_avg):
        if rows is not None:
            assert rows.numel() == n_rows and 0 <= int(rows.min()) and int(rows.max()) < out.shape[0]
            dest.append((rows.to(torch.int64) * (kept * B)).contiguous())
        else:
            dest.append(None)
    if head is None:
        head_args = (0, None, None, None, None)
    else:
        assert F % LANES == 0 and head.w1.is_contiguous() and head.w1.shape[0] == F // LANES
        head_args = (head.hidden, head.w1.data_ptr(), head.b1.data_ptr(),
                     head.w2.data_ptr() if head.hidden else None, head.b2.data_ptr() if head.hidden else None)
    rc = lib.dbt_pool_windows(x.data_ptr(), B, x.stride(0), nw, w, m, weights.data_ptr(), const.data_ptr(), F,
                              out.data_ptr(), dest[0].data_ptr(), None if dest[1] is None else dest[1].data_ptr(),
                              B, 1, scale, *head_args, step)
    if rc == -1:
        raise MemoryError("the fused pooling kernel could not allocate its work space")
    if rc != 0:
        raise ValueError(f"the fused pooling kernel refused m={m}, w={w}")
