"""`dbtools background`: every selected model's score distribution on background windows,
stored in the bank. Models go in chunks, each chunk's tables saved as it finishes, so an
interrupted run resumes where it stopped."""

from __future__ import annotations

import json
import shutil
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch

from dbtools import __version__
from dbtools.bank.backgrounds import Background, BackgroundKey, replace_background
from dbtools.bank.selection import select_models
from dbtools.bank.store import Bank, default_bank_path, load_bank, save_bank
from dbtools.engine.bank_engine import BankEngine
from dbtools.errors import DbtoolsError, UsageError
from dbtools.io.atomic import atomic_path, check_writable
from dbtools.io.genome import Genome
from dbtools.significance.sampling import describe_source, draw_windows, sampling_intervals
from dbtools.significance.tables import Tables, summarize

# background windows per model: on held-out chr20 windows 1e5 kept as many models within 2x of
# alpha = 1e-3 and 1e-4 as 2e5, and 5e4 fewer (docs/significance.md)
DEFAULT_WINDOWS = 100_000
# the tail is fitted to the top 0.1% of the windows: on held-out chr20 windows it kept more
# models within 2x of alpha = 1e-4 than 1% or 0.3% did (docs/significance.md)
DEFAULT_TAIL_FRACTION = 0.001
DEFAULT_SEED = 1
_CHUNK_MODELS = 64  # models per resumable chunk
_BATCH_WINDOWS = 1024  # windows per engine call


@dataclass(frozen=True)
class BackgroundOptions:
    """How backgrounds are drawn and under which scoring they are computed."""

    windows: int = DEFAULT_WINDOWS
    seed: int = DEFAULT_SEED
    shuffle: bool = False
    window: int | None = None  # None: each model's genomic window
    window_size: int | None = None
    average: bool = False
    tail_fraction: float = DEFAULT_TAIL_FRACTION

    def validate(self) -> None:
        if self.windows < 1000:
            raise UsageError(f"--windows {self.windows}: at least 1000 windows are needed for a background")
        if not 0 < self.tail_fraction < 0.5:
            raise UsageError(f"--tail-fraction {self.tail_fraction}: must be in (0, 0.5)")
        if self.tail_fraction * self.windows < 50:
            raise UsageError(f"--tail-fraction {self.tail_fraction} of {self.windows} windows leaves fewer than "
                             f"50 to fit the tail to; raise either")
        if self.window is not None and self.window < 1:
            raise UsageError(f"--window {self.window}: must be at least 1")
        if self.window_size is not None and self.window_size < 1:
            raise UsageError(f"--window-size {self.window_size}: must be at least 1")


@dataclass
class BackgroundSummary:
    models: int
    computed: int
    resumed: int
    seconds: float
    out: str


def background(genome_path: str, *, bank: str | None, models: list[str] | None, bank_out: str | None,
               regions: str | None, options: BackgroundOptions, device: torch.device | str = "cpu",
               progress: Callable[[int], None] | None = None) -> BackgroundSummary:
    """Compute and store the backgrounds of the selected models (`bank_out`, else the bank in place).

    The run's partial results live in `<out>.background-parts/` until the bank is written; a
    rerun with the same settings resumes from them, other settings are an error naming it.
    """
    options.validate()
    t0 = time.monotonic()
    bank_path = Path(bank) if bank else default_bank_path()
    out = Path(bank_out) if bank_out else bank_path
    check_writable(out)
    full = load_bank(bank_path)
    chosen = select_models(full, models)
    with Genome(genome_path) as genome:
        intervals = sampling_intervals(genome, regions)
        source = describe_source(genome, regions)
        settings = {**source, "source": "shuffled genome windows" if options.shuffle else "genome windows",
                    "windows": options.windows, "seed": options.seed, "tail_fraction": options.tail_fraction,
                    "dbtools_version": __version__}
        by_window: dict[int, list[int]] = {}
        for i in chosen:
            by_window.setdefault(full.models[i].info.genomic_window(options.window), []).append(i)
        parts = _Parts(out, {"settings": settings, "options": asdict(options),
                             "models": [full.models[i].info.id for i in chosen]})
        computed = resumed = 0
        for window, members in by_window.items():
            chunks = [members[k:k + _CHUNK_MODELS] for k in range(0, len(members), _CHUNK_MODELS)]
            todo = [c for c in chunks if not parts.has(window, c[0])]
            resumed += sum(len(c) for c in chunks if c not in todo)
            if progress and resumed:
                progress(sum(len(c) for c in chunks if c not in todo))
            if not todo:
                continue
            codes, left_out = draw_windows(genome, intervals, window, options.windows, options.seed, options.shuffle)
            for chunk in todo:
                samples = _score(BankEngine(full.subset(chunk), device), codes, options)
                parts.save(window, chunk[0], summarize(samples, options.tail_fraction), left_out)
                computed += len(chunk)
                if progress:
                    progress(len(chunk))
        for window, members in by_window.items():
            key = BackgroundKey(window, options.window_size, options.average)
            for k in range(0, len(members), _CHUNK_MODELS):
                chunk = members[k:k + _CHUNK_MODELS]
                tables, left_out = parts.load(window, chunk[0], len(chunk))
                for row, i in enumerate(chunk):
                    m = full.models[i]
                    bg = _background(key, tables, row, {**settings, "left_out_all_n": left_out})
                    m.backgrounds = replace_background(m.backgrounds, bg)
    save_bank(full, out)
    parts.remove()
    return BackgroundSummary(models=len(chosen), computed=computed, resumed=resumed,
                             seconds=time.monotonic() - t0, out=str(out))


@torch.inference_mode()
def _score(engine: BankEngine, codes: np.ndarray, options: BackgroundOptions) -> torch.Tensor:
    """[N, m] scores of the windows, exactly as `dbtools score` gives them."""
    out = torch.empty(len(codes), len(engine), dtype=torch.float32)
    for b0 in range(0, len(codes), _BATCH_WINDOWS):
        batch = torch.from_numpy(codes[b0:b0 + _BATCH_WINDOWS])
        out[b0:b0 + len(batch)] = engine.score(batch, options.window_size, options.average).cpu()
    return out


def _background(key: BackgroundKey, tables: Tables, row: int, settings: dict) -> Background:
    tail = {"threshold": float(tables.threshold[row]), "fraction": float(tables.fraction[row]),
            "shape": float(tables.shape[row]), "scale": float(tables.scale[row]),
            "floor": float(tables.floor[row]), "fit_error": float(tables.fit_error[row])}
    return Background(key, tables.scores[row].copy(), tables.log10_survival[row].copy(), tail, settings)


_TABLE_FIELDS = ("scores", "log10_survival", "threshold", "fraction", "shape", "scale", "floor", "fit_error")


class _Parts:
    """A run's finished chunks on disk, next to the output bank; refuses another run's parts."""

    def __init__(self, out: Path, signature: dict):
        self.folder = out.with_name(out.name + ".background-parts")
        text = json.dumps(signature, sort_keys=True)
        stamp = self.folder / "run.json"
        if self.folder.is_dir() and stamp.is_file():
            if stamp.read_text() != text:
                raise DbtoolsError(f"{self.folder}: holds an unfinished background run with other settings; "
                                   f"rerun with those settings to finish it, or delete the folder")
        else:
            self.folder.mkdir(exist_ok=True)
            with atomic_path(stamp) as tmp:
                Path(tmp).write_text(text)

    def _path(self, window: int, first: int) -> Path:
        return self.folder / f"w{window}_m{first}.safetensors"

    def has(self, window: int, first: int) -> bool:
        return self._path(window, first).is_file()

    def save(self, window: int, first: int, tables: Tables, left_out: int) -> None:
        from safetensors.numpy import save_file

        arrays = {f: np.ascontiguousarray(getattr(tables, f)) for f in _TABLE_FIELDS}
        with atomic_path(self._path(window, first)) as tmp:
            save_file(arrays, str(tmp), metadata={"left_out_all_n": str(left_out)})

    def load(self, window: int, first: int, n: int) -> tuple[Tables, int]:
        from safetensors import SafetensorError, safe_open

        path = self._path(window, first)
        try:
            with safe_open(str(path), framework="numpy") as f:
                tables = Tables(**{name: f.get_tensor(name) for name in _TABLE_FIELDS})
                left_out = int((f.metadata() or {})["left_out_all_n"])
        except (SafetensorError, OSError, KeyError, ValueError) as e:
            raise DbtoolsError(f"{path}: damaged background part ({e}); delete it and rerun") from None
        if tables.scores.shape[0] != n:
            raise DbtoolsError(f"{path}: holds {tables.scores.shape[0]} models, expected {n}; delete it and rerun")
        return tables, left_out

    def remove(self) -> None:
        shutil.rmtree(self.folder, ignore_errors=True)
