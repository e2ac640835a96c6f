"""Import the original DeepBind v0.11 text models (``params/D*.txt`` + ``db.tsv``) into a bank."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np

from dbtools import __version__
from dbtools.bank.store import Architecture, Bank, Model, ModelInfo
from dbtools.errors import DbtoolsError
from dbtools.io.atomic import check_writable

HEADER_FIELDS = ("reverse_complement", "num_detectors", "detector_len", "has_avg_pooling", "num_hidden")
ARRAY_FIELDS = ("detectors", "thresholds", "weights1", "biases1", "weights2", "biases2")
SOURCE = "DeepBind v0.11 published models (Alipanahi et al., Nat Biotechnol 2015), BSD-3"


def parse_params(path: str | Path) -> tuple[Architecture, dict[str, np.ndarray]]:
    """Parse one ``D*.txt`` params file; a missing or malformed field names file and line."""
    path = Path(path)
    fields: dict[str, tuple[int, str]] = {}
    try:
        text = path.read_text(encoding="ascii")
    except (OSError, UnicodeDecodeError) as e:
        raise DbtoolsError(f"{path}: cannot read params file ({e})") from None
    for lineno, line in enumerate(text.splitlines(), 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        if "=" not in line:
            raise DbtoolsError(f"{path}:{lineno}: expected 'name = values', got {line[:40]!r}")
        key, value = (s.strip() for s in line.split("=", 1))
        if key in fields:
            raise DbtoolsError(f"{path}:{lineno}: field '{key}' given twice (first on line {fields[key][0]})")
        fields[key] = (lineno, value)
    missing = [k for k in HEADER_FIELDS + ARRAY_FIELDS if k not in fields]
    if missing:
        raise DbtoolsError(f"{path}: missing field '{missing[0]}'")

    def number(key: str) -> int:
        lineno, value = fields[key]
        try:
            return int(value)
        except ValueError:
            raise DbtoolsError(f"{path}:{lineno}: field '{key}' is not an integer: {value[:40]!r}") from None

    arch = Architecture(
        detector_len=number("detector_len"),
        num_detectors=number("num_detectors"),
        reverse_complement=bool(number("reverse_complement")),
        avg_pooling=bool(number("has_avg_pooling")),
        num_hidden=number("num_hidden"),
    )
    if arch.detector_len < 1 or arch.num_detectors < 1 or arch.num_hidden < 0:
        raise DbtoolsError(f"{path}: invalid architecture {arch}")
    arrays = {}
    for key, shape in arch.expected_shapes().items():
        lineno, value = fields[key]
        try:
            flat = np.array([float(v) for v in value.split(",")] if value else [], dtype=np.float64)
        except ValueError:
            raise DbtoolsError(f"{path}:{lineno}: field '{key}' has a non-numeric value") from None
        if not np.all(np.isfinite(flat)):
            bad = flat[~np.isfinite(flat)][0]
            raise DbtoolsError(f"{path}:{lineno}: field '{key}' has a non-finite value ({bad})")
        if flat.size != int(np.prod(shape)):
            raise DbtoolsError(
                f"{path}:{lineno}: field '{key}' has {flat.size} values, expected {int(np.prod(shape))}")
        arrays[key] = flat.reshape(shape).astype(np.float32)
    return arch, arrays


def read_index(db_tsv: str | Path) -> dict[str, dict[str, str]]:
    """Read ``db.tsv`` (comment lines start with '#') into {ID: row}."""
    db_tsv = Path(db_tsv)
    try:
        lines = [ln for ln in db_tsv.read_text(encoding="utf-8").splitlines() if ln and not ln.startswith("#")]
    except (OSError, UnicodeDecodeError) as e:
        raise DbtoolsError(f"{db_tsv}: cannot read index ({e})") from None
    rows = list(csv.DictReader(lines, delimiter="\t"))
    if not rows or "ID" not in rows[0]:
        raise DbtoolsError(f"{db_tsv}: not a DeepBind index (no 'ID' column)")
    return {r["ID"]: r for r in rows}


def species_name(text: str) -> str:
    """A binomial written the usual way: genus capitalised, the rest lower case ("Mus Musculus"
    -> "Mus musculus"), so one species is one group wherever models are grouped by species."""
    words = text.split()
    if not words:
        return ""
    return " ".join([words[0].capitalize()] + [w.lower() for w in words[1:]])


def import_deepbind(db_tsv: str | Path, params_dir: str | Path, ids: list[str] | None = None) -> Bank:
    """Build a bank from every index row that has a params file (or only `ids`)."""
    index = read_index(db_tsv)
    params_dir = Path(params_dir)
    if not params_dir.is_dir():
        raise DbtoolsError(f"{params_dir}: params directory not found")
    wanted = ids if ids is not None else [i for i in index if (params_dir / f"{i}.txt").exists()]
    models = []
    for mid in wanted:
        row = index.get(mid)
        if row is None:
            raise DbtoolsError(f"{db_tsv}: no index row for model {mid}")
        arch, arrays = parse_params(params_dir / f"{mid}.txt")
        info = ModelInfo(
            id=mid,
            protein=row.get("Protein", ""),
            arch=arch,
            species=species_name(row.get("Species", "")),
            protein_type=row.get("Type", ""),
            experiment=row.get("Experiment", ""),
            experiment_details=row.get("Experiment Details", ""),
            family=row.get("Family", ""),
            structural_class=row.get("Class", ""),
            source=SOURCE,
            citation=row.get("Cite", ""),
            labels=row.get("Labels", ""),
            comment=row.get("Comment", ""),
            train_length=None,
            provenance={"imported_from": f"{mid}.txt", "original_model": row.get("Model", ""),
                        "seed": None, "hyperparameters": None, "metrics": None,
                        "dbtools_version": __version__,
                        **({"species_as_published": row["Species"]}
                           if species_name(row.get("Species", "")) != row.get("Species", "") else {})},
        )
        models.append(Model(info, arrays))
    if not models:
        raise DbtoolsError(f"{params_dir}: no params files matching the index")
    return Bank(models, description=SOURCE)


def write_imported_bank(db_tsv: str | Path, params_dir: str | Path, output: str | Path) -> int:
    """Import every model with a params file and save the bank; returns the model count."""
    from dbtools.bank.store import save_bank

    check_writable(output)
    bank = import_deepbind(db_tsv, params_dir)
    save_bank(bank, output)
    return len(bank)
