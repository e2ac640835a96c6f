"""The public Python API: what the commands compute, as numpy arrays.

Each function calls the library functions its command calls (the same engine, the same
scoring rules), so its numbers equal the command's; the command prints them with 6 decimals.
Everything in `dbtools.__all__` is public; every other name in the package is private by
convention and may change.

The examples run as doctests from the root of a clone (they read `demo/`).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from dbtools.bank import store
from dbtools.bank.catalog import COLUMNS, model_rows
from dbtools.bank.selection import select_models
from dbtools.device import resolve_device
from dbtools.engine.bank_engine import BankEngine
from dbtools.engine.options import ScoreOptions
from dbtools.engine.windows import window_count, window_values
from dbtools.errors import DbtoolsError, UsageError
from dbtools.io.encode import encode
from dbtools.io.genome import Genome
from dbtools.io.sequences import read_sequences
from dbtools.io.vcf_read import is_sequence_allele, open_vcf
from dbtools.mutmap.mapper import MutationMap, MutationMapper
from dbtools.mutmap.mapper import mutation_map as map_codes
from dbtools.scan.run import default_chunk, track_offset, window_classes
from dbtools.score import score_codes
from dbtools.significance.lookup import background_tables
from dbtools.significance.tables import log10_pvalues
from dbtools.train.bank_training import DataOptions, RunOptions, specs_from_args, train_bank
from dbtools.train.hyper import Hyper
from dbtools.train.schedule import parse_detector_lens
from dbtools.vareffect.run import VariantScorer, centred_window, ref_mismatch

__all__ = [
    "Bank", "MutationMap", "Track", "VariantEffects", "load_bank", "load_sequences", "read_variants",
    "score_sequences", "mutation_map", "plot_mutation_map", "variant_effects", "scan_region", "train_models",
]


class Bank(store.Bank):
    """An ordered collection of DeepBind models with unique IDs (a bank file in memory).

    `models[i].info` holds a model's metadata (ID, protein, architecture, provenance) and
    `models[i].arrays` its float32 weights. `ids` lists the model IDs in order.

    Examples
    --------
    >>> bank = dbtools.load_bank()
    >>> bank
    Bank(927 models)
    >>> ctcf = bank.select("CTCF")
    >>> ctcf.ids
    ['D00328.003', 'D00328.018']
    """

    def __repr__(self) -> str:
        return f"Bank({len(self)} model{'' if len(self) == 1 else 's'})"

    def select(self, *selectors: str) -> "Bank":
        """The models that `selectors` name, as `dbtools ... -m` selects them.

        Parameters
        ----------
        *selectors : str
            IDs (``D00328.003``), proteins (``CTCF``), ``type:ChIP-seq``, ``species:...``,
            ``family:...``, comma lists or ``@file``; none selects every model.

        Returns
        -------
        Bank
            The selected models in selector order, each once.
        """
        return self.subset(select_models(self, list(selectors)))

    def subset(self, indices: list[int]) -> "Bank":
        """The models at `indices`, in that order."""
        return Bank([self.models[i] for i in indices], self.description)

    def table(self) -> list[dict[str, str]]:
        """One dict per model with the columns of `dbtools models` (id, protein, type, ...)."""
        return [dict(zip(COLUMNS, row)) for row in model_rows(self)]

    def save(self, path: str | os.PathLike) -> None:
        """Write the bank file atomically (what `--bank` reads)."""
        store.save_bank(self, path)


def load_bank(path: str | os.PathLike | None = None) -> Bank:
    """Load a bank file; without a path, the shipped bank of the 927 published DeepBind models.

    Parameters
    ----------
    path : str or path-like, optional
        A bank file (written by ``dbtools train``, ``import-deepbind``, ``bank subset`` ...).

    Returns
    -------
    Bank

    Examples
    --------
    >>> len(dbtools.load_bank())
    927
    """
    bank = store.load_bank(path if path is not None else store.default_bank_path())
    return Bank(bank.models, bank.description)


def _bank(bank: store.Bank | str | os.PathLike | None) -> store.Bank:
    """A bank object, a bank file, or None (the shipped bank) as a bank object."""
    if isinstance(bank, store.Bank):
        if not len(bank):
            raise UsageError("the bank has no models")
        return bank
    return load_bank(bank)


def _options(window_size: int | None, average: bool, class_prob: bool = False) -> ScoreOptions:
    if window_size is not None and window_size < 1:
        raise UsageError(f"window_size must be at least 1 (got {window_size})")
    return ScoreOptions(window_size=window_size, average=average, class_prob=class_prob)


def load_sequences(path: str | os.PathLike) -> tuple[list[str], list[str]]:
    """Names and sequences of a file as ``dbtools score`` reads it (FASTA or one per line, gzip ok).

    Parameters
    ----------
    path : str or path-like
        The file; ``"-"`` is stdin.

    Returns
    -------
    names : list of str
        FASTA record names, or ``seq1``, ``seq2``, ... for one sequence a line.
    sequences : list of str

    Examples
    --------
    >>> names, seqs = dbtools.load_sequences("demo/ctcf_peaks.fa")
    >>> len(seqs), names[0], len(seqs[0])
    (34, 'chr20:61071667-61071767', 101)
    """
    names, sequences = [], []
    for i, (name, seq, fasta) in enumerate(read_sequences(os.fspath(path)), 1):
        names.append(name if fasta else f"seq{i}")
        sequences.append(seq)
    return names, sequences


def score_sequences(bank: store.Bank | str | None, sequences: str | Iterable[str], *,
                    window_size: int | None = None, average: bool = False, class_prob: bool = False,
                    values: str = "score", device: str = "auto", batch_size: int = 256, as_frame: bool = False,
                    names: Sequence[str] | None = None) -> Any:
    """Score sequences with every model of a bank, as ``dbtools score`` does.

    Parameters
    ----------
    bank : Bank, path or None
        The models (None: the shipped bank).
    sequences : str or iterable of str
        One sequence, or several of any lengths (A, C, G, T/U, IUPAC letters; any case).
    window_size : int, optional
        Score every window of this many bp and keep the max (default: ``int(1.5 m)`` per model).
    average : bool
        The sum of the window scores divided by the sequence length instead of the max.
    class_prob : bool
        ``1 / (1 + exp(-score))`` instead of the score.
    values : {"score", "pvalue", "log10p"}
        The scores, or their p-values (``-log10 p``) against each model's background for windows
        of the sequence's length (``dbtools background``; as ``dbtools score --pvalue``/``--log10``).
    device : {"auto", "cpu", "cuda"}
    batch_size : int
        Sequences per engine call.
    as_frame : bool
        Return a pandas DataFrame (columns: model IDs; index: `names`) instead of an array.
    names : sequence of str, optional
        Row labels of the DataFrame.

    Returns
    -------
    numpy.ndarray or pandas.DataFrame
        [N, M] float32 scores (float64 p-values): N sequences in input order, M models in bank order.

    Examples
    --------
    >>> bank = dbtools.load_bank().select("D00328.003", "D00409.004")
    >>> scores = dbtools.score_sequences(bank, ["ACGTCCGCGCGGTGGCAGCAGCTA" * 3, "TTTTAAAA"])
    >>> scores.shape, scores.dtype
    ((2, 2), dtype('float32'))
    >>> names, seqs = dbtools.load_sequences("demo/ctcf_peaks.fa")
    >>> frame = dbtools.score_sequences(bank, seqs, names=names, as_frame=True)
    >>> frame.round(3).iloc[:2]
                             D00328.003  D00409.004
    chr20:61071667-61071767       3.291      -1.394
    chr20:61075381-61075481      12.125      -1.599
    """
    if values not in ("score", "pvalue", "log10p"):
        raise UsageError(f"values must be score, pvalue or log10p (got {values!r})")
    if values != "score" and class_prob:
        raise UsageError("class_prob and p-values exclude each other (a p-value is the same for both)")
    selected = _bank(bank)
    sequences = [sequences] if isinstance(sequences, str) else list(sequences)
    codes = [encode(seq, f"sequence {i}") for i, seq in enumerate(sequences, 1)]
    engine = BankEngine(selected, resolve_device(device))
    options = _options(window_size, average, class_prob)
    scores = score_codes(engine, codes, options, batch_size)
    if values != "score":
        scores = _significance(selected, scores, np.array([len(c) for c in codes]), options, values)
    if not as_frame:
        return scores
    return _frame(scores, selected.ids, names)


def _significance(bank: store.Bank, scores: np.ndarray, lengths: np.ndarray, options: ScoreOptions,
                  values: str) -> np.ndarray:
    """p-values (or -log10 p) of scores, each row against the backgrounds of windows of its sequence's length."""
    out = np.empty(scores.shape, dtype=np.float64)
    for length in np.unique(lengths).tolist():
        rows = np.flatnonzero(lengths == length)
        tables = background_tables(bank, options, window=length, where=f"sequence {rows[0] + 1} ({length} bp)")
        logp = log10_pvalues(torch.from_numpy(scores[rows]), tables).double().numpy()
        out[rows] = 10.0 ** logp if values == "pvalue" else 0.0 - logp
    return out


def _frame(values: np.ndarray, columns: list[str], index: Sequence[str] | None):
    try:
        import pandas as pd
    except ImportError:
        raise ImportError("as_frame=True needs pandas (pip install pandas)") from None
    return pd.DataFrame(values, columns=columns, index=None if index is None else list(index))


def mutation_map(bank: store.Bank | str | None, sequence: str, *, window_size: int | None = None,
                 average: bool = False, class_prob: bool = False, scale: str = "none",
                 device: str = "auto") -> MutationMap:
    """Every single-base substitution's score change, under every model, as ``dbtools mutmap``.

    ``delta[i, b, j] = score_j(sequence with base b at i) - score_j(sequence)``, each score
    exactly as `score_sequences` gives it; 0 at the wild-type base.

    Parameters
    ----------
    bank : Bank, path or None
    sequence : str
        The wild type, L bases.
    window_size, average, class_prob : as for `score_sequences`
    scale : {"none", "deepbind"}
        ``deepbind``: the paper's scaling, ``delta x max(0, wild type, mutant)``.
    device : {"auto", "cpu", "cuda"}

    Returns
    -------
    MutationMap
        ``wild_type`` [M] float32; ``delta`` [L, 4, M] float32 (A, C, G, T);
        ``mutant`` [L, 4, M] the mutants' scores.

    Examples
    --------
    >>> bank = dbtools.load_bank().select("D00328.003")
    >>> names, seqs = dbtools.load_sequences("demo/ctcf_peaks.fa")
    >>> m = dbtools.mutation_map(bank, seqs[0])
    >>> m.delta.shape, round(float(m.wild_type[0]), 3)
    ((101, 4, 1), 3.291)
    """
    if scale not in ("none", "deepbind"):
        raise UsageError(f"scale must be none or deepbind (got {scale!r})")
    mapper = MutationMapper(_bank(bank), resolve_device(device))
    return map_codes(mapper, encode(sequence, "sequence"), _options(window_size, average, class_prob), scale)


def plot_mutation_map(delta: np.ndarray, sequence: str, *, title: str = "", first: int | None = None):
    """The figure ``dbtools mutmap -f png`` draws for one model: letters sized by the loss, a heatmap.

    Parameters
    ----------
    delta : [L, 4] array
        One model's map (``mutation_map(...).delta[:, :, j]``).
    sequence : str
        The wild type, L bases.
    title : str
    first : int, optional
        The coordinate of the first base (default: positions count from 1).

    Returns
    -------
    matplotlib.figure.Figure
    """
    from dbtools.mutmap import plot

    return plot.draw(delta, sequence, title=title, first=first)


@dataclass(frozen=True)
class VariantEffects:
    """The scores of each variant's reference and alternative windows under every model.

    ``ref``, ``alt`` and ``diff = alt - ref`` are [N, M] float32 (N variants in input order,
    M models in bank order); ``ref_mismatch`` [N] is True where the variant's REF differs
    from the genome (its reference window is the genome's, as ``--ref-mismatch warn``).
    """

    ids: list[str]
    ref: np.ndarray
    alt: np.ndarray
    diff: np.ndarray
    ref_mismatch: np.ndarray


def read_variants(path: str | os.PathLike) -> list[tuple[str, int, str, str]]:
    """(chrom, pos, ref, alt) of every sequence ALT allele of a VCF or BCF, in file order.

    A multi-allelic record gives one tuple per ALT; symbolic, ``*``, breakend and missing ALTs
    are left out (``dbtools vareffect`` passes them through unscored).

    Examples
    --------
    >>> variants = dbtools.read_variants("demo/variants.vcf")
    >>> len(variants), variants[0]
    (259, ('20_61M', 3215, 'T', 'C'))
    """
    with open_vcf(os.fspath(path)) as (_, records):
        return [(r.chrom, r.pos, r.ref, alt) for r in records for alt in r.alts if is_sequence_allele(alt)]


def variant_effects(bank: store.Bank | str | None, variants: Iterable[tuple[str, int, str, str]],
                    genome: str | os.PathLike, *, window: int | None = None, window_size: int | None = None,
                    average: bool = False, device: str = "auto") -> VariantEffects:
    """Each variant's effect on binding, as ``dbtools vareffect`` scores it.

    Each allele is centred in its own window of W bp (``window``, or per model its training
    length, else 101), cut from the genome; both windows are scored as `score_sequences` would.

    Parameters
    ----------
    bank : Bank, path or None
    variants : iterable of (chrom, pos, ref, alt)
        VCF-style: ``pos`` 1-based, ``ref`` and ``alt`` sequence alleles (any lengths).
    genome : path
        Indexed genome FASTA (plain or bgzip); ``chr20`` matches ``20``.
    window : int, optional
        The genomic window W.
    window_size, average : as for `score_sequences`
    device : {"auto", "cpu", "cuda"}

    Returns
    -------
    VariantEffects
        ``ref``, ``alt``, ``diff`` [N, M] float32 and ``ref_mismatch`` [N] bool.

    Examples
    --------
    >>> bank = dbtools.load_bank().select("CTCF")
    >>> effects = dbtools.variant_effects(bank, [("20_61M", 3215, "T", "C")], "demo/chr20_61M.fa")
    >>> effects.diff.shape
    (1, 2)
    """
    selected = _bank(bank)
    variants = list(variants)
    if window is not None and window < 1:
        raise UsageError(f"window must be at least 1 (got {window})")
    scorer = VariantScorer(selected, resolve_device(device), _options(window_size, average), window)
    widths = sorted({w for w, _, _ in scorer.groups})
    ref_w: dict[int, list[str]] = {w: [] for w in widths}
    alt_w: dict[int, list[str]] = {w: [] for w in widths}
    mismatch = np.zeros(len(variants), dtype=bool)
    with Genome(genome) as g:
        for i, (chrom, pos, ref, alt) in enumerate(variants):
            where = f"variant {i + 1} ({chrom}:{pos} {ref}>{alt})"
            contig = g.require(chrom, where)
            if not (is_sequence_allele(ref) and is_sequence_allele(alt)):
                raise DbtoolsError(f"{where}: REF and ALT must be sequence alleles")
            start = int(pos) - 1
            if not 0 <= start < g.sizes[contig]:
                raise DbtoolsError(f"{where}: POS is outside {chrom} (1-{g.sizes[contig]:,})")
            genome_ref = g.fetch(contig, start, start + len(ref)).upper()
            mismatch[i] = ref_mismatch(ref, genome_ref)
            for w in widths:
                ref_w[w].append(centred_window(lambda a, b: g.fetch(contig, a, b).upper(), start, len(ref),
                                               genome_ref, w))
                alt_w[w].append(centred_window(lambda a, b: g.fetch(contig, a, b).upper(), start, len(ref),
                                               alt.upper(), w))
    if not variants:
        empty = np.empty((0, len(selected)), dtype=np.float32)
        return VariantEffects(selected.ids, empty, empty.copy(), empty.copy(), mismatch)
    ref_s, alt_s = scorer.score(ref_w, alt_w, np.arange(len(variants), dtype=np.int64))
    return VariantEffects(selected.ids, ref_s, alt_s, alt_s - ref_s, mismatch)


@dataclass(frozen=True)
class Track:
    """Scan values of a region, one row per base, as the BigWig tracks of ``dbtools scan`` hold them.

    ``values[k, j]`` is model j's value at base ``start + k`` (0-based): the score of the window
    whose written bases cover it, NaN where no window's value lands (a region's first and
    last W // 2 bases, all-N gaps). ``positions`` are those 0-based coordinates.
    """

    contig: str
    start: int
    end: int
    ids: list[str]
    values: np.ndarray

    @property
    def positions(self) -> np.ndarray:
        """[L] int64 0-based coordinates of the rows of `values`."""
        return np.arange(self.start, self.end, dtype=np.int64)


def scan_region(bank: store.Bank | str | None, genome: str | os.PathLike, contig: str, start: int = 0,
                end: int | None = None, *, window: int | None = None, step: int = 1,
                window_size: int | None = None, average: bool = False, device: str = "auto",
                chunk_size: int | None = None) -> Track:
    """Binding tracks of one genomic region under every model, as ``dbtools scan`` computes them.

    Windows of W bp (``window``, or per model its training length, else 101) are placed every
    ``step`` bp from ``start``; each is scored as `score_sequences` scores its W bases, and its
    value is written at the ``step`` bases centred on the window's centre.

    Parameters
    ----------
    bank : Bank, path or None
    genome : path
        Indexed genome FASTA (plain or bgzip).
    contig : str
        ``chr20`` matches ``20``.
    start, end : int
        The region, 0-based, half open (BED); ``end`` defaults to the contig's end.
    window, step : int
        The genomic window W and the step S between window starts (S <= W).
    window_size, average : as for `score_sequences`
    device : {"auto", "cpu", "cuda"}
    chunk_size : int, optional
        Bases per engine pass (default as ``dbtools scan``); memory grows with it.

    Returns
    -------
    Track
        ``values`` [L, M] float32 for the L = end - start bases, NaN where no value lands.

    Examples
    --------
    >>> bank = dbtools.load_bank().select("D00328.018")
    >>> track = dbtools.scan_region(bank, "demo/chr20_61M.fa", "20_61M", 71_400, 71_700)
    >>> track.values.shape, int(np.isnan(track.values[:, 0]).sum())
    ((300, 1), 100)
    """
    selected = _bank(bank)
    options = _options(window_size, average)
    if step < 1 or (window is not None and window < 1):
        raise UsageError("window and step must be at least 1")
    dev = resolve_device(device)
    with Genome(genome) as g:
        name = g.require(contig, f"contig {contig}")
        size = g.sizes[name]
        end = size if end is None else end
        if not 0 <= start < end <= size:
            raise DbtoolsError(f"region {contig}:{start}-{end} is not inside {contig} (0-{size:,})")
        classes = window_classes(selected, window)
        for w, _ in classes:
            if step > w:
                raise UsageError(f"step {step} is larger than the window {w}")
        engines = [(w, idx, BankEngine(selected.subset(idx), dev)) for w, idx in classes]
        values = np.full((end - start, len(selected)), np.nan, dtype=np.float32)
        per_chunk = max(1, (chunk_size or default_chunk(len(selected))) // step)
        wmax = max(w for w, _ in classes)
        counts = [window_count(end - start, w, step) for w, _ in classes]
        for k0 in range(0, max(counts), per_chunk):
            k1 = min(max(counts), k0 + per_chunk)
            lo = start + k0 * step
            codes = encode(g.fetch(name, lo, min(end, start + (k1 - 1) * step + wmax)), f"{contig}:{lo + 1}")
            for (w, idx, engine), n in zip(engines, counts):
                kc = min(k1, n)
                if kc <= k0:
                    continue
                v, _ = window_values(engine, codes[:(kc - k0 - 1) * step + w], w, step, options)
                first = k0 * step + track_offset(w, step)
                values[first:first + (kc - k0) * step, idx] = np.repeat(v, step, axis=0)
    return Track(contig, start, end, selected.ids, values)


def train_models(data: str | Sequence[str] | None = None, *, spec: str | None = None, rows: str | None = None,
                 task: str = "auto", validation: str | None = None, fmt: str = "auto",
                 negatives: str | None = None, shuffles: int | None = None, genome: str | None = None,
                 length: int = DataOptions.length, steps: int = RunOptions.steps,
                 checkpoint_every: int = RunOptions.checkpoint_every, batch_size: int = RunOptions.batch_size,
                 val_fraction: float = RunOptions.val_fraction, seed: int = RunOptions.seed,
                 restarts: int = RunOptions.restarts, detector_len: int | Sequence[int] = RunOptions.detector_lens,
                 hidden: int = Hyper.num_hidden, pooling: str = "max", learning_rate: float | None = None,
                 momentum: float = Hyper.momentum, dropout: float = Hyper.dropout, device: str = "auto",
                 progress: Callable[[str, int, int, float | None], None] | None = None) -> Bank:
    """Train one model per data file (or spec row), all in one batched run, as ``dbtools train``.

    The options mean what the command's do (``dbtools train --help``); the result equals the
    bank ``dbtools train`` writes with the same options and seed.

    Parameters
    ----------
    data : path or sequence of paths
        Training files, one model each, named after the file: DeepBind tables, ``seq<TAB>target``
        TSV, FASTA of positives, BED with `genome`. Or give `spec`.
    spec : path, optional
        A TSV of models to train together (``id``, ``train``, ``protein``, ``task``, ...).
    rows : str, optional
        ``FIRST:LAST`` (1-based, inclusive) rows of each file, e.g. ``"1:500"``.
    steps, checkpoint_every, batch_size, val_fraction, seed, restarts : int or float
        The schedule and the candidates (``restarts`` seeds per detector length).
    detector_len : int or sequence of int
        The detector lengths to try; the best on validation is kept.
    hidden, pooling, learning_rate, momentum, dropout :
        The model and its SGD (``learning_rate`` None: 0.02 classification, 0.005 regression).
    task, validation, fmt, negatives, shuffles, genome, length :
        The data, as for the command.
    device : {"auto", "cpu", "cuda"}
    progress : callable, optional
        ``progress(label, step, steps, mean training loss or None)``.

    Returns
    -------
    Bank
        One model per data file or spec row; each records its data, seed, hyperparameters,
        chosen step, metrics and candidates (``models[i].info.provenance``).

    Examples
    --------
    >>> bank = dbtools.train_models("demo/gabpa_A.seq", rows="1:100", steps=20, checkpoint_every=10,
    ...                             restarts=1, detector_len=10, device="cpu")
    >>> bank.ids, bank.models[0].arrays["detectors"].shape
    (['gabpa_A'], (10, 4, 16))
    """
    if pooling not in ("max", "maxavg"):
        raise UsageError(f"pooling {pooling}: expected max or maxavg")
    lengths = parse_detector_lens(str(detector_len) if isinstance(detector_len, int)
                                  else ",".join(map(str, detector_len)))
    base = Hyper(detector_len=lengths[0], num_hidden=hidden, avg_pooling=pooling == "maxavg",
                 learning_rate=learning_rate, momentum=momentum, dropout=dropout)
    files = [os.fspath(data)] if isinstance(data, (str, os.PathLike)) else (None if data is None else list(data))
    specs = specs_from_args(files, spec, base, task, rows, validation)
    run = RunOptions(steps=steps, checkpoint_every=checkpoint_every, batch_size=batch_size,
                     val_fraction=val_fraction, seed=seed, restarts=restarts, detector_lens=lengths)
    data_options = DataOptions(fmt=fmt, negatives=negatives, genome=genome, shuffles=shuffles, length=length)
    trained = train_bank(specs, data_options, run, resolve_device(device), progress)
    return Bank(trained.models, trained.description)

