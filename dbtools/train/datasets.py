"""Labelled training data: DeepBind tables, sequence/target TSV, FASTA, BED peaks on a genome.

Every reader returns a `Dataset` whose sources record the file, its SHA-256 and the rows
used, so a trained model can say exactly what it was trained on. Classification data with
positives only gets dinucleotide shuffles of each positive as negatives (seeded): many per
positive, as the original DeepBind did (it filled 100,000 rows with shuffles), so that a
model cannot learn the few negatives by heart. Each row records the positive it comes from
(`origin`), so that cross-validation folds and held-out rows keep a peak with its shuffles,
and the positives are weighted to balance their shuffles (`balance_weights`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from dbtools.io.encode import encode
from dbtools.errors import DbtoolsError, UsageError
from dbtools.io.genome import Genome
from dbtools.io.regions import read_regions
from dbtools.io.sequences import read_sequences
from dbtools.io.streams import open_lines
from dbtools.train.shuffle import dinucleotide_shuffle
from dbtools.io.checksum import file_sha256

FORMATS = ("auto", "deepbind", "tsv", "fasta", "bed")
# shuffled negatives: about SHUFFLE_ROWS in all, at least 1 and at most MAX_SHUFFLES per positive
SHUFFLE_ROWS = 50_000
MAX_SHUFFLES = 100


def shuffles_per_positive(n_positives: int) -> int:
    """Dinucleotide shuffles drawn per positive by default (`--shuffles auto`)."""
    return max(1, min(MAX_SHUFFLES, -(-SHUFFLE_ROWS // max(1, n_positives))))


@dataclass
class Dataset:
    """Sequences with targets (0/1 labels for classification, real values for regression)."""

    sequences: list[str]
    targets: np.ndarray
    task: str
    sources: list[dict] = field(default_factory=list)
    origin: np.ndarray | None = None  # [rows] the row each one was made from (None: itself)

    def __post_init__(self) -> None:
        if self.origin is None:
            self.origin = np.arange(len(self.sequences))

    def __len__(self) -> int:
        return len(self.sequences)


def balance_weights(targets: np.ndarray, origin: np.ndarray) -> np.ndarray:
    """Row weights [rows]: a positive counts as often as the negatives made from it (at least
    once), a negative once, as if each positive were repeated beside each of its shuffles."""
    w = np.ones(len(targets), dtype=np.float32)
    if not len(targets):
        return w
    made = np.bincount(origin[targets == 0], minlength=int(origin.max()) + 1)
    pos = targets == 1
    w[pos] = np.maximum(1, made[origin[pos]])
    return w


def split_by_origin(origin: np.ndarray, parts: int, rng: np.random.Generator) -> list[np.ndarray]:
    """Rows split into `parts` random, near-equal groups of origins (a peak stays with its shuffles)."""
    keys, inverse = np.unique(origin, return_inverse=True)
    perm = rng.permutation(len(keys))
    part_of = np.empty(len(keys), dtype=np.int64)
    for k in range(parts):
        part_of[perm[k::parts]] = k
    return [np.flatnonzero(part_of[inverse] == k) for k in range(parts)]


def cap_negatives(rows: np.ndarray, targets: np.ndarray, origin: np.ndarray, per_origin: int) -> np.ndarray:
    """`rows` keeping, of the negatives made from each positive, only the first `per_origin`."""
    rows = np.sort(rows)
    neg = targets[rows] == 0
    made = origin[rows] != rows  # negatives made from another row (shuffles, flanks)
    rank = np.zeros(len(rows), dtype=np.int64)
    if made.any():  # rank of each made negative among those of its origin, in row order
        o = origin[rows][made]
        by = np.argsort(o, kind="stable")
        first = np.searchsorted(o[by], o[by])
        r = np.empty(len(o), dtype=np.int64)
        r[by] = np.arange(len(o)) - first
        rank[made] = r
    return rows[~(neg & made) | (rank < per_origin)]


def parse_rows(spec: str | None) -> slice:
    """'1:500' -> rows 1..500 (1-based, inclusive); '501:' and ':500' are open ranges."""
    if not spec:
        return slice(None)
    start, sep, stop = spec.partition(":")
    try:
        a = int(start) if start else 1
        b = int(stop) if stop else None
    except ValueError:
        raise UsageError(f"--rows {spec}: expected FIRST:LAST (1-based, inclusive), e.g. 1:500") from None
    if not sep and b is None:
        b = a
    if a < 1 or (b is not None and b < a):
        raise UsageError(f"--rows {spec}: expected 1 <= FIRST <= LAST")
    return slice(a - 1, b)


def detect_format(path: str) -> str:
    """Guess the format from the name and the first non-blank line."""
    name = path.lower().removesuffix(".gz")
    if name.endswith(".bed"):
        return "bed"
    with open_lines(path) as fh:
        first = next((ln.rstrip("\r\n") for ln in fh if ln.strip()), "")
    if not first:
        raise DbtoolsError(f"{path}: empty file")
    if first.startswith(">"):
        return "fasta"
    cols = first.split("\t")
    if {"FoldID", "EventID", "seq", "Bound"} <= set(cols):
        return "deepbind"
    if len(cols) >= 3 and cols[1].isdigit() and cols[2].isdigit():
        return "bed"
    if len(cols) == 2:
        return "tsv"
    raise DbtoolsError(f"{path}: line 1: cannot tell the format (use --format {'|'.join(FORMATS[1:])})")


def _target(path: str, lineno: int, text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise DbtoolsError(f"{path}: line {lineno}: target {text!r} is not a number") from None
    if not math.isfinite(value):
        raise DbtoolsError(f"{path}: line {lineno}: target {text!r} is not finite")
    return value


def _read_table(path: str, fmt: str) -> tuple[list[str], list[float], list[int]]:
    seqs, targets, lines = [], [], []
    with open_lines(path) as fh:
        header = None
        for lineno, line in enumerate(fh, 1):
            line = line.rstrip("\r\n")
            if not line.strip():
                continue
            cols = line.split("\t")
            if fmt == "deepbind":
                if header is None:
                    header = {c: i for i, c in enumerate(cols)}
                    if not {"seq", "Bound"} <= set(header):
                        raise DbtoolsError(f"{path}: line {lineno}: DeepBind table needs 'seq' and 'Bound' columns")
                    if len(header) != len(cols):
                        twice = next(c for c in cols if cols.count(c) > 1)
                        raise DbtoolsError(f"{path}: line {lineno}: column {twice!r} appears twice in the header")
                    continue
                if len(cols) != len(header):
                    raise DbtoolsError(f"{path}: line {lineno}: expected {len(header)} columns, found {len(cols)}")
                seq, value = cols[header["seq"]], cols[header["Bound"]]
            else:
                if len(cols) != 2:
                    raise DbtoolsError(f"{path}: line {lineno}: expected 'sequence<TAB>target', found {len(cols)} columns")
                seq, value = cols
                if header is None:
                    header = True
                    try:
                        float(value)
                    except ValueError:
                        continue  # a header line
            encode(seq, f"{path}: line {lineno}")
            seqs.append(seq)
            targets.append(_target(path, lineno, value))
            lines.append(lineno)
    return seqs, targets, lines


def _read_fasta(path: str) -> list[str]:
    out = []
    for name, seq, _ in read_sequences(path):
        encode(seq, f"{path}: {name}")
        out.append(seq)
    return out


def _bed_windows(path: str, genome: str, length: int) -> tuple[list[tuple[str, int, int]], list[str]]:
    """Windows of `length` bp centred on each BED interval, and their sequences."""
    fa = Genome(genome)
    sizes = fa.sizes
    windows, seqs = [], []
    for r in read_regions(path):
        contig = fa.require(r.contig, f"{path}: line {r.line}")
        mid = (r.start + r.end) // 2
        start = mid - length // 2
        if start < 0 or start + length > sizes[contig]:
            raise DbtoolsError(f"{path}: line {r.line}: {length}-bp window at {r.contig}:{mid} runs off the contig")
        windows.append((contig, start, start + length))
        seqs.append(fa.fetch(contig, start, start + length))
    return windows, seqs


FLANK_DISTANCE = 1000  # bp between a peak window's centre and its flanking negative's


def _flank_negatives(genome: str, windows: list[tuple[str, int, int]], rng: np.random.Generator,
                     distance: int = FLANK_DISTANCE) -> tuple[list[str], list[int]]:
    """One genomic window per peak, `distance` bp upstream or downstream (random side; the
    other side when the first runs off the contig or is mostly N); peaks with neither are
    given no negative. Returns the windows and the peak each one flanks."""
    fa = Genome(genome)
    sizes = fa.sizes
    out, origin = [], []
    for i, (contig, start, end) in enumerate(windows):
        sides = (-1, 1) if rng.random() < 0.5 else (1, -1)
        for side in sides:
            s = start + side * distance
            if s < 0 or s + (end - start) > sizes[contig]:
                continue
            seq = fa.fetch(contig, s, s + end - start)
            if seq.upper().count("N") <= len(seq) // 2:
                out.append(seq)
                origin.append(i)
                break
    return out, origin


def read_dataset(path: str, *, fmt: str = "auto", task: str | None = None, rows: str | None = None,
                 negatives: str | None = None, genome: str | None = None, length: int = 101,
                 negatives_from: str = "shuffle", seed: int = 0, shuffles: int | None = None) -> Dataset:
    """Read one training set; see the module docstring for formats and negatives.

    Negatives for positives-only classification data: a FASTA file (`negatives`), or
    `negatives_from` "shuffle" (`shuffles` dinucleotide shuffles per positive, by default
    `shuffles_per_positive`: the DeepBind default, each positive's shuffles contiguous) or
    "flank" (BED input: one genomic window FLANK_DISTANCE bp beside each peak).
    """
    if shuffles is not None and shuffles < 1:
        raise UsageError(f"--shuffles {shuffles}: must be at least 1")
    if negatives_from not in ("shuffle", "flank"):
        raise UsageError(f"--negatives {negatives_from}: expected shuffle, flank or a FASTA file")
    fmt = detect_format(path) if fmt == "auto" else fmt
    if fmt not in FORMATS:
        raise UsageError(f"--format {fmt}: expected one of {', '.join(FORMATS)}")
    sel = parse_rows(rows)
    src = {"path": str(path), "sha256": file_sha256(path) if path != "-" else None, "format": fmt, "rows": rows}
    if fmt in ("deepbind", "tsv"):
        seqs, targets, _ = _read_table(path, fmt)
        seqs, targets = seqs[sel], targets[sel]
    elif fmt == "fasta":
        seqs = _read_fasta(path)[sel]
        targets = [1.0] * len(seqs)
    else:
        if genome is None:
            raise UsageError(f"{path}: BED peaks need --genome FASTA")
        windows, seqs = _bed_windows(path, genome, length)
        windows, seqs = windows[sel], seqs[sel]
        targets = [1.0] * len(seqs)
        src["genome"] = str(genome)
    if not seqs:
        raise DbtoolsError(f"{path}: no sequences{' in rows ' + rows if rows else ''}")
    values = np.asarray(targets, dtype=np.float32)
    is_binary = bool(np.isin(values, (0.0, 1.0)).all())
    task = task or ("classification" if is_binary else "regression")
    if task == "classification" and not is_binary:
        bad = int(np.flatnonzero(~np.isin(values, (0.0, 1.0)))[0])
        raise DbtoolsError(f"{path}: classification labels must be 0 or 1, found {values[bad]:g} (data row {bad + 1})")
    sources = [src]
    origin = None
    if negatives is not None:
        neg = _read_fasta(negatives)
        seqs, values = seqs + neg, np.concatenate([values, np.zeros(len(neg), np.float32)])
        sources.append({"path": str(negatives), "sha256": file_sha256(negatives), "format": "fasta", "role": "negatives"})
    elif task == "classification" and not (values == 0).any():
        rng = np.random.default_rng(seed)
        extra = {}
        if negatives_from == "shuffle":
            k = shuffles or shuffles_per_positive(len(seqs))
            neg = [dinucleotide_shuffle(s.upper(), rng) for s in seqs for _ in range(k)]
            made_from = np.repeat(np.arange(len(seqs)), k)
            how, extra = "dinucleotide shuffles of the positives", {"per_positive": k}
        elif fmt == "bed":
            neg, made_from = _flank_negatives(genome, windows, rng)
            how = f"genomic windows {FLANK_DISTANCE} bp up- or downstream of the peaks"
        else:
            raise UsageError("--negatives flank needs BED peaks and --genome")
        origin = np.concatenate([np.arange(len(seqs)), np.asarray(made_from, dtype=np.int64)])
        seqs, values = seqs + neg, np.concatenate([values, np.zeros(len(neg), np.float32)])
        sources.append({"negatives": how, "count": len(neg), **extra, "seed": seed})
    _check_targets(path, task, values)
    return Dataset(seqs, values, task, sources, origin)


def _check_targets(path: str, task: str, values: np.ndarray) -> None:
    """Targets a model can learn from and be judged on: both classes, or values that vary (AUC
    and Pearson are undefined otherwise, and training would write a bank of NaN metrics)."""
    if task == "classification" and not ((values == 0).any() and (values == 1).any()):
        only = int(values[0])
        raise DbtoolsError(f"{path}: all targets are {only}: classification needs both classes (0 and 1)")
    if task == "regression" and (len(values) < 2 or values.min() == values.max()):
        raise DbtoolsError(f"{path}: all targets are {values[0]:g}: regression needs targets that vary")
