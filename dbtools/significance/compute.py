"""`dbtools background`: every selected model's score distribution on background windows,
stored in the bank. Models go in chunks, each chunk's tables saved as it finishes, so an
interrupted run resumes where it stopped."""

from __future__ import annotations

import json
import math
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
from dbtools.engine.options import ScoreOptions
from dbtools.engine.windows import window_values
from dbtools.errors import DbtoolsError, UsageError
from dbtools.io.atomic import atomic_path, check_writable
from dbtools.io.genome import Genome
from dbtools.significance.sampling import describe_source, draw_windows, sampling_intervals
from dbtools.significance.tables import BLOCK_CHECK_EXCEEDANCES, Tables, summarize, summarize_ranked

# background windows per model: on held-out chr20 windows 1e5 kept as many models within 2x of
# alpha = 1e-3 and 1e-4 as 2e5, and 5e4 fewer (docs/significance.md)
DEFAULT_WINDOWS = 100_000
# the tail is fitted to the top 0.1% of the windows: on held-out chr20 windows it kept more
# models within 2x of alpha = 1e-4 than 1% or 0.3% did (docs/significance.md)
DEFAULT_TAIL_FRACTION = 0.001
DEFAULT_SEED = 1
# windows per block: --block B draws blocks of contiguous sequence, each giving B windows at
# step 1 (the sliding-window engine of `dbtools scan`). Windows that overlap share their best
# site, so at equal compute blocks told the far tail less than independent windows (B = 1) did
# (docs/significance.md)
DEFAULT_BLOCK = 1
_CHUNK_MODELS = 64  # models per resumable chunk
_BATCH_WINDOWS = 1024  # windows per engine call
_PIECE_BASES = 1 << 18  # bases of joined blocks per sliding-window call
_EXACT_FRACTION = 0.01  # block sampling keeps the top 1% of each model's scores exactly ...
_BULK_SAMPLES = 100_000  # ... and about this many evenly spaced windows for the quantiles above it


@dataclass(frozen=True)
class BackgroundOptions:
    """How backgrounds are drawn and under which scoring they are computed."""

    windows: int = DEFAULT_WINDOWS
    seed: int = DEFAULT_SEED
    block: int = DEFAULT_BLOCK
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
        if self.block < 1 or self.block > self.windows:
            raise UsageError(f"--block {self.block}: must be between 1 and --windows ({self.windows})")
        if self.block > 1 and self.tail_fraction > _EXACT_FRACTION:
            raise UsageError(f"--tail-fraction {self.tail_fraction}: at most {_EXACT_FRACTION} with --block above 1")
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
                    **sampling_settings(options), "dbtools_version": __version__}
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
            if options.block == 1:
                codes, left_out = draw_windows(genome, intervals, window, options.windows, options.seed,
                                               options.shuffle)
            else:
                length = window + options.block - 1
                if not any(iv.end - iv.start >= length for iv in intervals):
                    raise UsageError(f"--block {options.block}: no region is long enough for a block of "
                                     f"{options.block} {window}-bp windows ({length} bp); use a smaller --block")
                blocks, left_blocks = draw_windows(genome, intervals, window + options.block - 1,
                                                   block_count(options), options.seed, options.shuffle)
            for chunk in todo:
                engine = BankEngine(full.subset(chunk), device)
                if options.block == 1:
                    tables, scored = summarize(_score(engine, codes, options), options.tail_fraction), len(codes)
                else:
                    top, scored, bulk, gaps = score_blocks(engine, blocks, window, _scoring(options),
                                                           top_fraction=_EXACT_FRACTION)
                    tables = summarize_ranked(top, scored, bulk, options.tail_fraction,
                                              check_exceedances=BLOCK_CHECK_EXCEEDANCES)
                    left_out = left_blocks * options.block + gaps
                parts.save(window, chunk[0], tables, left_out, scored)
                computed += len(chunk)
                if progress:
                    progress(len(chunk))
        for window, members in by_window.items():
            key = BackgroundKey(window, options.window_size, options.average)
            for k in range(0, len(members), _CHUNK_MODELS):
                chunk = members[k:k + _CHUNK_MODELS]
                tables, left_out, scored = parts.load(window, chunk[0], len(chunk))
                for row, i in enumerate(chunk):
                    m = full.models[i]
                    bg = _background(key, tables, row, {**settings, "left_out_all_n": left_out,
                                                         "windows_scored": scored})
                    m.backgrounds = replace_background(m.backgrounds, bg)
    save_bank(full, out)
    parts.remove()
    return BackgroundSummary(models=len(chosen), computed=computed, resumed=resumed,
                             seconds=time.monotonic() - t0, out=str(out))


def block_count(options: BackgroundOptions) -> int:
    """Blocks drawn for `options.windows` windows of `options.block` each."""
    return -(-options.windows // options.block)


def sampling_settings(options: BackgroundOptions) -> dict:
    """How the windows were drawn, as the bank records it (a bank without `sampling` drew
    independent windows)."""
    if options.block == 1:
        return {"sampling": "independent windows"}
    return {"sampling": "blocks", "blocks": block_count(options), "block_windows": options.block,
            "step": 1}


def _scoring(options: BackgroundOptions) -> ScoreOptions:
    return ScoreOptions(window_size=options.window_size, average=options.average)


@torch.inference_mode()
def score_blocks(engine: BankEngine, blocks: np.ndarray, window: int, scoring: ScoreOptions,
                 top_fraction: float = _EXACT_FRACTION, bulk_samples: int = _BULK_SAMPLES
                 ) -> tuple[torch.Tensor, int, torch.Tensor, int]:
    """Every `window`-bp window inside each block, at step 1, scored by the sliding-window
    engine (each window's value is what `dbtools score` gives it); all-N windows left out.

    Parameters
    ----------
    blocks : [n_blocks, L] base codes; each holds L - window + 1 windows (none spans two blocks)
    top_fraction : the share of the largest scores kept exactly
    bulk_samples : about this many windows, evenly spaced in each block, kept for the bulk

    Returns
    -------
    top : [M, K] the K = ceil(top_fraction * windows) + 1 largest scores of each model, ascending
        (every score when there are fewer)
    n : the windows scored
    bulk : [M, B] ascending, the evenly spaced windows' scores
    gaps : the all-N windows left out
    """
    n_blocks, length = blocks.shape
    per = length - window + 1
    if per < 1:
        raise ValueError(f"blocks of {length} bp hold no {window}-bp window")
    M = len(engine)
    keep = math.ceil(top_fraction * n_blocks * per) + 1
    thin = max(1, (n_blocks * per) // bulk_samples)
    every = max(1, _PIECE_BASES // length)
    top = torch.empty(0, M)
    bulk, n, gaps = [], 0, 0
    for b0 in range(0, n_blocks, every):
        piece = blocks[b0:b0 + every]
        values, _ = window_values(engine, np.ascontiguousarray(piece).reshape(-1), window, 1, scoring)
        # the windows of joined block b start at b * length + (0 .. per - 1)
        full = np.full((len(piece) * length, M), np.nan, dtype=np.float32)
        full[:len(values)] = values
        inside = full.reshape(len(piece), length, M)[:, :per].reshape(-1, M)
        called = ~np.isnan(inside[:, 0])
        gaps += int((~called).sum())
        spaced = np.zeros(len(inside), dtype=bool)
        spaced[np.arange((-b0 * per) % thin, len(inside), thin)] = True  # every thin-th window overall
        bulk.append(torch.from_numpy(inside[spaced & called]))
        mine = torch.from_numpy(inside[called])
        n += len(mine)
        both = torch.cat([top, mine])
        top = torch.topk(both, min(keep, len(both)), dim=0, sorted=False).values if len(both) > keep else both
    if n == 0:
        raise DbtoolsError("every background window is all N")
    top = torch.sort(top.T.contiguous(), dim=1).values
    bulk = torch.sort(torch.cat(bulk).T.contiguous(), dim=1).values
    return top, n, bulk, gaps


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

    def save(self, window: int, first: int, tables: Tables, left_out: int, scored: int) -> None:
        from safetensors.numpy import save_file

        arrays = {f: np.ascontiguousarray(getattr(tables, f)) for f in _TABLE_FIELDS}
        with atomic_path(self._path(window, first)) as tmp:
            save_file(arrays, str(tmp), metadata={"left_out_all_n": str(left_out), "windows_scored": str(scored)})

    def load(self, window: int, first: int, n: int) -> tuple[Tables, int, int]:
        from safetensors import SafetensorError, safe_open

        path = self._path(window, first)
        try:
            with safe_open(str(path), framework="numpy") as f:
                tables = Tables(**{name: f.get_tensor(name) for name in _TABLE_FIELDS})
                left_out = int((f.metadata() or {})["left_out_all_n"])
                scored = int((f.metadata() or {})["windows_scored"])
        except (SafetensorError, OSError, KeyError, ValueError) as e:
            raise DbtoolsError(f"{path}: damaged background part ({e}); delete it and rerun") from None
        if tables.scores.shape[0] != n:
            raise DbtoolsError(f"{path}: holds {tables.scores.shape[0]} models, expected {n}; delete it and rerun")
        return tables, left_out, scored

    def remove(self) -> None:
        shutil.rmtree(self.folder, ignore_errors=True)
