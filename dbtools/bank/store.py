"""Model banks: M independent DeepBind models with metadata, stored as one safetensors file.

The file holds each model's arrays as tensors named ``<index>.<array>`` and, in the
safetensors metadata, a JSON document (``dbtools_bank``) with the schema version and
one record per model. Loading executes no code and validates every shape.

Schema 2 adds background score distributions (`bank.backgrounds`): a model record may list
them, their tables stored as tensors ``<index>.background<k>.<array>``. Schema 1 banks (no
backgrounds) load unchanged.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from dbtools import __version__
from dbtools.bank.backgrounds import Background
from dbtools.io.atomic import atomic_path
from dbtools.errors import DbtoolsError

FORMAT = "dbtools-bank"
SCHEMA_VERSION = 2
# the genomic window of a model whose training length is unknown (the ChIP-seq peak width)
DEFAULT_WINDOW = 101
ARRAYS = ("detectors", "thresholds", "weights1", "biases1", "weights2", "biases2")
BACKGROUND_ARRAYS = ("scores", "log10_survival")


@dataclass(frozen=True)
class Architecture:
    """Shape of one DeepBind network."""

    detector_len: int
    num_detectors: int = 16
    reverse_complement: bool = True
    avg_pooling: bool = False
    num_hidden: int = 0

    @property
    def num_features(self) -> int:
        return self.num_detectors * (2 if self.avg_pooling else 1)

    def describe(self) -> str:
        pool = "max+avg" if self.avg_pooling else "max"
        hidden = f"hidden{self.num_hidden}" if self.num_hidden else "nohidden"
        rc = "rc" if self.reverse_complement else "fwd"
        return f"{self.num_detectors}x{self.detector_len} {pool} {hidden} {rc}"

    def expected_shapes(self) -> dict[str, tuple[int, ...]]:
        m, d, h, f = self.detector_len, self.num_detectors, self.num_hidden, self.num_features
        if h:
            return {"detectors": (m, 4, d), "thresholds": (d,), "weights1": (f, h),
                    "biases1": (h,), "weights2": (h, 1), "biases2": (1,)}
        return {"detectors": (m, 4, d), "thresholds": (d,), "weights1": (f, 1),
                "biases1": (1,), "weights2": (0, 1), "biases2": (0,)}


@dataclass
class ModelInfo:
    """Metadata of one model: identity, biology, architecture and provenance."""

    id: str
    protein: str
    arch: Architecture
    species: str = ""
    protein_type: str = ""
    experiment: str = ""
    experiment_details: str = ""
    family: str = ""
    structural_class: str = ""
    source: str = ""
    citation: str = ""
    labels: str = ""
    comment: str = ""
    train_length: int | None = None
    provenance: dict = field(default_factory=dict)

    def genomic_window(self, window: int | None = None) -> int:
        """The genomic window (bp) a scan or variant score describes: `window` when given, else
        the training sequence length when recorded, else DEFAULT_WINDOW."""
        return window or self.train_length or DEFAULT_WINDOW

    def to_json(self) -> dict:
        d = asdict(self)
        d["arch"] = asdict(self.arch)
        return d

    @classmethod
    def from_json(cls, d: dict) -> "ModelInfo":
        d = dict(d)
        d["arch"] = Architecture(**d["arch"])
        return cls(**d)


@dataclass
class Model:
    """One DeepBind network: metadata plus float32 arrays in the shapes of `Architecture`, and
    its background score distributions (at most one per scoring key)."""

    info: ModelInfo
    arrays: dict[str, np.ndarray]
    backgrounds: list[Background] = field(default_factory=list)

    def validate(self, where: str) -> None:
        for name, shape in self.info.arch.expected_shapes().items():
            a = self.arrays.get(name)
            if a is None:
                raise DbtoolsError(f"{where}: model {self.info.id}: missing array '{name}'")
            if tuple(a.shape) != shape:
                raise DbtoolsError(
                    f"{where}: model {self.info.id}: '{name}' has shape {tuple(a.shape)}, expected {shape}")
            if not np.all(np.isfinite(a)):
                raise DbtoolsError(f"{where}: model {self.info.id}: '{name}' has non-finite values")
        keys = [b.key for b in self.backgrounds]
        if len(set(keys)) != len(keys):
            raise DbtoolsError(f"{where}: model {self.info.id}: two backgrounds for the same scoring")
        for b in self.backgrounds:
            b.validate(f"{where}: model {self.info.id}")


@dataclass
class Bank:
    """An ordered collection of models with unique IDs."""

    models: list[Model]
    description: str = ""

    def __post_init__(self) -> None:
        seen: set[str] = set()
        for m in self.models:
            if m.info.id in seen:
                raise DbtoolsError(f"duplicate model ID {m.info.id} in bank")
            seen.add(m.info.id)

    def __len__(self) -> int:
        return len(self.models)

    @property
    def ids(self) -> list[str]:
        return [m.info.id for m in self.models]

    def by_genomic_window(self, window: int | None = None) -> dict[int, list[int]]:
        """Model positions grouped by their genomic window W (`window`, or each model's own), in
        order of first appearance."""
        by: dict[int, list[int]] = {}
        for i, m in enumerate(self.models):
            by.setdefault(m.info.genomic_window(window), []).append(i)
        return by

    def subset(self, indices: list[int]) -> "Bank":
        return Bank([self.models[i] for i in indices], self.description)


def save_bank(bank: Bank, path: str | os.PathLike) -> None:
    """Write `bank` atomically (temporary name, then rename)."""
    from safetensors.numpy import save_file

    tensors = {}
    for i, m in enumerate(bank.models):
        m.validate(str(path))
        for name in ARRAYS:
            tensors[f"{i}.{name}"] = np.ascontiguousarray(m.arrays[name], dtype=np.float32)
        for k, b in enumerate(m.backgrounds):
            for name in BACKGROUND_ARRAYS:
                tensors[f"{i}.background{k}.{name}"] = np.ascontiguousarray(getattr(b, name), dtype=np.float32)
    doc = {
        "format": FORMAT,
        "schema_version": SCHEMA_VERSION,
        "dbtools_version": __version__,
        "description": bank.description,
        "models": [_model_record(m) for m in bank.models],
    }
    with atomic_path(path) as tmp:
        save_file(tensors, str(tmp), metadata={"format": FORMAT, "dbtools_bank": json.dumps(doc)})


def _model_record(m: Model) -> dict:
    """A model's JSON record: its metadata, and its backgrounds' keys, tails and settings."""
    rec = m.info.to_json()
    if m.backgrounds:
        rec["backgrounds"] = [b.to_json() for b in m.backgrounds]
    return rec


def _float32_tensor(f, key: str, path: Path) -> np.ndarray:
    """Tensor `key` of an open bank file; any dtype but float32 is refused (a cast would change scores)."""
    a = f.get_tensor(key)
    if a.dtype != np.float32:
        raise DbtoolsError(f"{path}: tensor '{key}' is {a.dtype}, expected float32")
    return a


def load_bank(path: str | os.PathLike) -> Bank:
    """Read and validate a bank file; any problem is one DbtoolsError line naming the file."""
    from safetensors import SafetensorError, safe_open

    path = Path(path)
    if not path.exists():
        raise DbtoolsError(f"{path}: bank file not found")
    if not path.is_file():
        raise DbtoolsError(f"{path}: not a regular file")
    try:
        with safe_open(str(path), framework="numpy") as f:
            meta = f.metadata() or {}
            if meta.get("format") != FORMAT or "dbtools_bank" not in meta:
                raise DbtoolsError(f"{path}: not a dbtools bank (safetensors file without bank metadata)")
            doc = json.loads(meta["dbtools_bank"])
            version = int(doc.get("schema_version", -1))
            if version > SCHEMA_VERSION:
                raise DbtoolsError(
                    f"{path}: bank schema version {version} is newer than this dbtools supports "
                    f"({SCHEMA_VERSION}); upgrade dbtools")
            if version < 1:
                raise DbtoolsError(f"{path}: bank has an invalid schema version {version!r}")
            models = []
            for i, rec in enumerate(doc["models"]):
                rec = dict(rec)
                backgrounds = [
                    Background.from_json(bdoc, *(_float32_tensor(f, f"{i}.background{k}.{name}", path) for name in BACKGROUND_ARRAYS))
                    for k, bdoc in enumerate(rec.pop("backgrounds", []))]
                info = ModelInfo.from_json(rec)
                arrays = {name: _float32_tensor(f, f"{i}.{name}", path) for name in ARRAYS}
                model = Model(info, arrays, backgrounds)
                model.validate(str(path))
                models.append(model)
    except DbtoolsError:
        raise
    except (SafetensorError, OSError, ValueError, KeyError, TypeError) as e:
        detail = str(e).splitlines()[0] if str(e) else type(e).__name__
        raise DbtoolsError(f"{path}: corrupt or truncated bank file ({detail})") from None
    return Bank(models, doc.get("description", ""))


def default_bank_path() -> Path:
    """The bank shipped with dbtools (the 927 published DeepBind models)."""
    from importlib.resources import files

    return Path(str(files("dbtools_models").joinpath("deepbind.bank")))


def merge_banks(banks: list[Bank], names: list[str]) -> Bank:
    """The models of several banks in order, as one bank; an ID found twice is an error
    naming both banks (merging never renames or drops a model silently)."""
    seen: dict[str, str] = {}
    models = []
    for bank, name in zip(banks, names):
        for m in bank.models:
            if m.info.id in seen:
                raise DbtoolsError(f"{name}: model {m.info.id} is also in {seen[m.info.id]}; IDs must be unique")
            seen[m.info.id] = name
            models.append(m)
    return Bank(models, "; ".join(b.description for b in banks if b.description))
