"""`dbtools scan`: binding tracks of a genome (or BED regions) with a bank of models.

Windows of W bp are placed every S bp inside each region (the whole contig by default);
window [s, s + W) gets exactly the score `dbtools score` gives its W bases, and the value is
written at the S bases centred on the window's centre: [s + (W - S) // 2, s + (W - S) // 2 + S).
All-N windows are gaps. Contigs are read chunk by chunk (W - 1 bases of overlap), every model
scored in one pass per chunk, so memory follows the chunk size, not the contig length.

Outputs: one BigWig per model (DIR/<id>.bw), bedGraph (DIR/<id>.bedGraph, or stdout for one
model), or BED hits >= --threshold (DIR/hits.bed or stdout). File outputs go through the
per-contig part store (dbtools/scan/parts.py) so that runs can resume and shards can merge.
"""

from __future__ import annotations

import enum
import hashlib
import os
import re
from collections.abc import Callable
from contextlib import ExitStack, nullcontext
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TextIO

import numpy as np
import torch

from dbtools.io.atomic import output_folder
from dbtools.bank.store import Bank
from dbtools.io.encode import encode
from dbtools.errors import DbtoolsError, UsageError
from dbtools.engine.bank_engine import BankEngine
from dbtools.io.genome import Genome
from dbtools.io.regions import read_regions
from dbtools.parallel import cpu_count
from dbtools.scan.parts import PartStore
from dbtools.engine.windows import window_count, window_values
from dbtools.engine.options import ScoreOptions
from dbtools.bank.selection import open_selected
from dbtools.io.bgzip import open_indexed_text
from dbtools.io.contigs import Naming, output_names
from dbtools.io.tracks import bedgraph_text
from dbtools.io.checksum import file_sha256
from dbtools.scan.browser import BrowserOptions, write_browser_files
from dbtools.scan.describe import describe, write_tracks_tsv
from dbtools.scan.hits import HEADER as HITS_HEADER, ContigHits, HitsMerge, hit_names
from dbtools.significance.lookup import background_tables, check_floor, check_pvalue
from dbtools.significance.tables import Tables, log10_pvalues
from dbtools.scan.writers import (MAX_OPEN_TRACKS, OpenTracks, PartTracks, part_runs, remove_stale_temporaries,
                                   track_file_name, track_offset, track_path)



class TrackFormat(enum.StrEnum):
    """--format of `dbtools scan`."""

    BIGWIG = "bigwig"
    BEDGRAPH = "bedgraph"
    BED = "bed"


class Precision(enum.StrEnum):
    """--precision of `dbtools scan`: the arithmetic of the windowed pass."""

    FP32 = "fp32"
    BF16 = "bf16"
    FP16 = "fp16"


class TrackValues(enum.StrEnum):
    """--track-values of `dbtools scan`: the window's score, or -log10 of its p-value."""

    SCORE = "score"
    LOG10P = "log10p"


FORMATS = tuple(TrackFormat)
# --precision: the windowed pass's arithmetic; tests hold fp16 and bf16 to 2% and 10% of each
# model's score range against fp32 (measurements in docs/development.md)
PRECISIONS = {Precision.FP32: torch.float32, Precision.BF16: torch.bfloat16, Precision.FP16: torch.float16}


@dataclass(frozen=True)
class ScanOptions:
    """What a scan computes (the same options give the same tracks)."""

    window: int | None = None  # genomic window W; None: each model's genomic_window()
    step: int = 1
    scoring: ScoreOptions = field(default_factory=ScoreOptions)
    threshold: float | None = None  # bed: hits >= threshold; tracks: values below it left out
    fmt: str = TrackFormat.BIGWIG
    pvalue: float | None = None  # bed: hits with p-value <= this (instead of threshold)
    track_values: str = TrackValues.SCORE  # tracks: scores, or -log10 p
    contig_names: str = Naming.FASTA  # output contig names: fasta, ucsc, ensembl or a chromAlias file
    hits_merge: str = HitsMerge.SITE  # bed: overlapping windows of a model and strand as one site

    @property
    def needs_backgrounds(self) -> bool:
        return self.pvalue is not None or self.track_values == TrackValues.LOG10P


@dataclass
class ScanSummary:
    contigs: int
    skipped: int  # contigs already complete (--resume)
    bases: int
    models: int
    outputs: list[str]  # the tracks (or the hits and their index); tracks.tsv and browser files beside them
    assembled: bool


HITS_FILE = "hits.bed.gz"  # BGZF, with its tabix index HITS_FILE + ".tbi"


def parse_shard(text: str | None) -> tuple[int, int]:
    """'i/n' (1 <= i <= n) -> (i, n); None -> (1, 1)."""
    if not text:
        return 1, 1
    m = re.fullmatch(r"\s*(\d+)\s*/\s*(\d+)\s*", text)
    if not m or not 1 <= int(m.group(1)) <= int(m.group(2)):
        raise UsageError(f"--shard {text!r}: expected i/n with 1 <= i <= n, e.g. --shard 2/8")
    return int(m.group(1)), int(m.group(2))


def plan_regions(genome: Genome, regions: str | None, chroms: list[str] | None, skip_missing: bool,
                 warn: Callable[[str], None]) -> dict[str, list[tuple[int, int]]]:
    """Regions to scan per contig, in FASTA order, sorted and with overlaps merged (clipped to the contig)."""
    per: dict[str, list[tuple[int, int]]] = {}
    if regions is None:
        per = {c: [(0, genome.sizes[c])] for c in genome.contigs}
    else:
        warned: set[str] = set()
        clipped: list[int] = []  # lines of regions that run past their contig's end
        n = 0
        for r in read_regions(regions):
            n += 1
            contig = genome.resolve(r.contig)
            if contig is None:
                if not skip_missing:
                    genome.require(r.contig, f"{regions}: line {r.line}")
                if r.contig not in warned:
                    warned.add(r.contig)
                    warn(f"{regions}: contig {r.contig!r} is not in {genome.path}; its regions are skipped")
                continue
            if contig != r.contig and r.contig not in warned:
                warned.add(r.contig)
                warn(f"{regions}: contig {r.contig!r} read as {contig!r} (the FASTA's name)")
            if r.end > genome.sizes[contig]:
                clipped.append(r.line)
            start, end = min(r.start, genome.sizes[contig]), min(r.end, genome.sizes[contig])
            if end > start:
                per.setdefault(contig, []).append((start, end))
        if n == 0:
            raise DbtoolsError(f"{regions}: no regions (the BED file is empty)")
        if clipped:
            warn(f"{regions}: {len(clipped):,} region(s) run past their contig's end; clipped to it "
                 f"(first: line {clipped[0]})")
    if chroms:
        wanted = {genome.require(c, "--chroms", UsageError) for part in chroms for c in part.split(",") if c.strip()}
        per = {c: v for c, v in per.items() if c in wanted}
    if not per:
        raise DbtoolsError("nothing to scan: no region lies on the selected contigs")
    plan = {}
    for contig in genome.contigs:
        if contig not in per:
            continue
        merged: list[list[int]] = []
        for s, e in sorted(per[contig]):
            if merged and s < merged[-1][1]:
                merged[-1][1] = max(merged[-1][1], e)
            else:
                merged.append([s, e])
        plan[contig] = [(s, e) for s, e in merged]
    return plan


def _warn_short_regions(plan: dict[str, list[tuple[int, int]]], window: int, source: str,
                        warn: Callable[[str], None]) -> None:
    """Say so when regions are shorter than a window: no window fits in them, so they give no values."""
    short = [(c, s, e) for c, spans in plan.items() for s, e in spans if e - s < window]
    if short:
        c, s, e = short[0]
        warn(f"{source}: {len(short):,} region(s) shorter than the {window}-bp window give no values there "
             f"(first: {c}:{s}-{e})")


def shard_contigs(plan: dict[str, list[tuple[int, int]]], shard: tuple[int, int]) -> list[str]:
    """The contigs of shard i of n: largest first to the least loaded shard (deterministic)."""
    i, n = shard
    load = [0] * n
    mine = set()
    work = sorted(plan, key=lambda c: (-sum(e - s for s, e in plan[c]), list(plan).index(c)))
    for c in work:
        k = load.index(min(load))
        load[k] += sum(e - s for s, e in plan[c])
        if k == i - 1:
            mine.add(c)
    return [c for c in plan if c in mine]


def window_classes(bank: Bank, window: int | None) -> list[tuple[int, list[int]]]:
    """Models grouped by their genomic window W: [(W, model indices)]."""
    return sorted(bank.by_genomic_window(window).items())


def default_chunk(n_models: int) -> int:
    """Bases per chunk: about 16 M window values in flight, 10 kbp to 1 Mbp."""
    return int(max(10_000, min(1_000_000, (1 << 24) // max(1, n_models))))


def _signature(genome: Genome, plan: dict, bank: Bank, windows: list[int], options: ScanOptions,
               precision: str = "fp32") -> dict:
    digest = hashlib.sha256(repr(sorted(plan.items())).encode()).hexdigest()
    return {
        "header": [[c, genome.sizes[c]] for c in genome.contigs],
        "contigs": list(plan),
        "regions_sha256": digest,
        "models": bank.ids,
        "windows": windows,
        "step": options.step,
        "scoring": asdict(options.scoring),
        "threshold": options.threshold,
        "format": options.fmt,
        **({"precision": precision} if precision != "fp32" else {}),  # fp32 parts of earlier versions still match
        **({"pvalue": options.pvalue} if options.pvalue is not None else {}),
        **({"track_values": str(options.track_values)} if options.track_values != TrackValues.SCORE else {}),
        "contig_names": str(options.contig_names),
        "names": output_names(genome.contigs, options.contig_names),
        "hits_merge": str(options.hits_merge),
    }


def scan(genome_path: str, *, regions: str | None, chroms: list[str] | None, skip_missing: bool,
         bank: str | None, models: list[str] | None, options: ScanOptions, out_dir: str | None,
         stdout: TextIO, device: torch.device | str = "cpu", precision: str = "fp32",
         chunk_size: int | None = None, batch_windows: int | None = None, resume: bool = False,
         shard: tuple[int, int] = (1, 1), threads: int | None = None,
         browser: BrowserOptions = BrowserOptions(),
         warn: Callable[[str], None] = lambda s: None,
         progress: Callable[[str, int, int], None] | None = None) -> ScanSummary:
    """Scan the planned regions with the selected models and write the tracks.

    Parameters
    ----------
    genome_path : indexed genome FASTA (plain or bgzip)
    regions, chroms, skip_missing : what to scan (BED regions, contigs; default every contig)
    bank, models : the bank file (default: the shipped one) and model selectors
    options : window, step, scoring options, threshold and output format
    out_dir : folder of the tracks (None: bedGraph of one model or BED hits to `stdout`)
    device, precision : where and in which arithmetic the windowed pass runs
    chunk_size, batch_windows : bases per chunk, scoring windows per engine step
    resume, shard : skip contigs already complete; scan shard i of n (contigs split by size)
    threads : tracks written side by side (default: the CPUs this process may use)
    browser : the hub and assembly of the browser files written beside the tracks (tracks.tsv,
        IGV sessions, a UCSC hub with `browser.hub`)
    warn, progress : callbacks; `progress(contig, bases_done, contig_bases)` after each chunk

    Returns
    -------
    ScanSummary : contigs scanned and skipped, bases, models and the files written
    """
    dtype = _check_options(options, precision, device, out_dir, resume, shard, warn)
    _check_browser(browser, options)
    selected = open_selected(bank, models)
    classes = window_classes(selected, options.window)
    _check_selection(len(selected), classes, options, out_dir)
    tables = None
    if options.needs_backgrounds:
        flag = "--pvalue" if options.pvalue is not None else "--track-values log10p"
        tables = background_tables(selected, options.scoring, options.window, where=flag)
        if options.pvalue is not None:
            check_floor(tables, selected.ids, options.pvalue, warn=warn)
    elif options.fmt == TrackFormat.BED:
        tables = _optional_tables(selected, options)
    windows = [0] * len(selected)
    for w, idx in classes:
        for i in idx:
            windows[i] = w
    with Genome(genome_path) as genome, ExitStack() as stack:
        plan = plan_regions(genome, regions, chroms, skip_missing, warn)
        names = output_names(genome.contigs, options.contig_names)
        _warn_short_regions(plan, max(w for w, _ in classes), regions or genome_path, warn)
        store = tracks = None
        if out_dir is not None:
            output_folder(out_dir)
            store = PartStore(out_dir)
            signature = _signature(genome, plan, selected, windows, options, precision)
            if options.fmt != TrackFormat.BED:
                signature["description"] = _description(genome, plan, names, selected, windows, options, browser)
            store.start(signature, keep_existing=resume or shard[1] > 1)
            for stale in remove_stale_temporaries(out_dir, _output_names(selected.ids, options.fmt)):
                warn(f"{out_dir}: removed {stale}, left by an interrupted scan")
            if _streams(options, shard, len(selected)):
                header = [(names[c], genome.sizes[c]) for c in genome.contigs]
                paths = [track_path(out_dir, track_file_name(i), options.fmt) for i in selected.ids]
                tracks = stack.enter_context(OpenTracks(paths, options.fmt, header, cpu_count(threads)))
        engines = [(w, idx, BankEngine(selected.subset(idx), device, dtype=dtype)) for w, idx in classes]
        chunk = chunk_size or default_chunk(len(selected))
        done_contigs = skipped = bases = 0
        if out_dir is None and options.fmt == TrackFormat.BED:
            stdout.write(HITS_HEADER)
        mine = shard_contigs(plan, shard)
        for contig in mine:
            index = genome.contigs.index(contig)
            total = sum(e - s for s, e in plan[contig])
            if store is not None and resume and store.is_done(index):
                skipped += 1
                if tracks is not None:
                    for j in range(len(selected)):
                        for name, first, step, values in part_runs(store, [(index, names[contig])], j, windows[j],
                                                                   options.step):
                            tracks.add(j, name, first, step, values)
                if progress:
                    progress(contig, total, total)
                continue
            # the contig that completes streamed tracks skips the part store: its values are never
            # read back (a run killed before the tracks are closed scans it again)
            stored = store is not None and not (tracks is not None and contig == mine[-1])
            with (store.writing(index, len(selected), options.fmt != "bed") if stored else nullcontext()) as part:
                sink = (_StreamSink(stdout, selected, options, names, tables) if store is None
                        else _PartSink(part, selected, options, names, tracks, tables))
                _scan_contig(genome, contig, plan[contig], engines, options, chunk, batch_windows, precision, sink,
                             progress)
            done_contigs += 1
            bases += total
    # the tracks are complete and renamed (OpenTracks closed with the stack)
    if tracks is not None:
        outputs = [str(p) for p in tracks.paths]
        _browser_files(out_dir, signature)
        store.remove()
        assembled = True
    else:
        assembled = store is not None and shard[1] == 1
        outputs = assemble(out_dir, threads) if assembled else []
    return ScanSummary(contigs=done_contigs, skipped=skipped, bases=bases, models=len(selected),
                       outputs=outputs, assembled=assembled)


def _output_names(ids: list[str], fmt: str) -> list[str]:
    """The file names a scan writes in its folder."""
    if fmt == TrackFormat.BED:
        return [HITS_FILE, HITS_FILE + ".tbi"]
    return [track_path(".", track_file_name(i), fmt).name for i in ids]


def _streams(options: ScanOptions, shard: tuple[int, int], n_models: int) -> bool:
    """Whether the tracks are written while the scan scores: one whole scan (no shards) of track
    files for at most MAX_OPEN_TRACKS models; otherwise they are assembled from the part store."""
    return options.fmt != TrackFormat.BED and shard == (1, 1) and n_models <= MAX_OPEN_TRACKS


def _check_options(options: ScanOptions, precision: str, device: torch.device | str, out_dir: str | None,
                   resume: bool, shard: tuple[int, int], warn: Callable[[str], None]) -> torch.dtype:
    """Every check of the options that needs no input read, before any work; the pass's dtype."""
    if options.fmt not in FORMATS:
        raise UsageError(f"--format {options.fmt!r}: choose one of {', '.join(FORMATS)}")
    if precision not in PRECISIONS:
        raise UsageError(f"--precision {precision!r}: choose one of {', '.join(PRECISIONS)}")
    dtype = PRECISIONS[precision]
    if dtype != torch.float32 and torch.device(device).type == "cpu":
        warn(f"--precision {precision} on the CPU: the torch path in {precision}, slower than the default fp32 "
             "kernel; reduced precision pays off on GPUs")
    if options.step < 1 or (options.window is not None and options.window < 1):
        raise UsageError("--window and --step must be at least 1")
    if options.fmt == "bed" and (options.threshold is None) == (options.pvalue is None):
        raise UsageError("--format bed needs one of --threshold T (windows scoring >= T are written) or "
                         "--pvalue P (windows with p-value <= P)")
    if options.pvalue is not None:
        check_pvalue(options.pvalue)
        if options.fmt != "bed":
            raise UsageError("--pvalue selects BED hits (--format bed); tracks take --track-values log10p")
    if options.hits_merge not in tuple(HitsMerge):
        raise UsageError(f"--hits-merge {options.hits_merge!r}: choose one of {', '.join(HitsMerge)}")
    if options.track_values not in tuple(TrackValues):
        raise UsageError(f"--track-values {options.track_values!r}: choose one of {', '.join(TrackValues)}")
    if options.track_values != TrackValues.SCORE and options.fmt == "bed":
        raise UsageError("--track-values is for tracks (bigwig, bedgraph); BED hits take --pvalue")
    if out_dir is None:
        if options.fmt == "bigwig":
            raise UsageError("--format bigwig needs --out-dir DIR (one DIR/<model>.bw per model)")
        if resume or shard != (1, 1):
            raise UsageError("--resume and --shard need --out-dir DIR")
    else:
        output_folder(out_dir, create=False)  # made when the inputs have been read
    return dtype


def _check_selection(n_models: int, classes: list[tuple[int, list[int]]], options: ScanOptions,
                     out_dir: str | None) -> None:
    """The checks that depend on the models selected."""
    for w, _ in classes:
        if options.step > w:
            raise UsageError(f"--step {options.step} is larger than the window {w}: each value covers "
                             f"S bases inside its window, so S <= W")
    if out_dir is None and options.fmt == "bedgraph" and n_models != 1:
        raise UsageError(f"bedGraph on stdout is for one model ({n_models} selected); "
                         "give --out-dir DIR for one DIR/<model>.bedGraph each")


def _check_browser(browser: BrowserOptions, options: ScanOptions) -> None:
    if options.contig_names not in tuple(Naming) and not os.path.isfile(options.contig_names):
        raise UsageError(f"--contig-names {options.contig_names!r}: choose {', '.join(Naming)} or give a "
                         "chromAlias file")
    if browser.hub is not None:
        if options.fmt != TrackFormat.BIGWIG:
            raise UsageError("--hub needs BigWig tracks (--format bigwig)")
        if not browser.assembly:
            raise UsageError("--hub needs --genome-assembly (the UCSC name: hg19, hg38, mm10, ...)")
        if not re.fullmatch(r"[A-Za-z0-9_.-]+", browser.assembly):
            raise UsageError(f"--genome-assembly {browser.assembly!r}: a UCSC assembly name, e.g. hg38")


def _description(genome: Genome, plan: dict, names: dict[str, str], bank: Bank, windows: list[int],
                 options: ScanOptions, browser: BrowserOptions) -> dict:
    """What tracks.tsv and the browser files say of the scan (kept in the part store for merge-tracks)."""
    files = [track_path(".", track_file_name(i), options.fmt).name for i in bank.ids]
    rows = describe(files, bank, windows, step=options.step, window_size=options.scoring.window_size,
                    average=options.scoring.average, threshold=options.threshold,
                    values=str(options.track_values), genome=genome.path, genome_sha256=file_sha256(genome.path),
                    contig_names=Path(options.contig_names).name)
    contig = next(iter(plan))
    start, end = plan[contig][0]
    locus = f"{names[contig]}:{start + 1}-{min(end, start + 2_000_000)}"
    return {"rows": rows, "locus": locus, "genome": os.path.abspath(genome.path), "browser": asdict(browser)}


def _browser_files(out_dir: str | os.PathLike, signature: dict) -> list[str]:
    """tracks.tsv, the IGV sessions and the hub of a scan whose tracks are complete."""
    d = signature.get("description")
    if d is None:
        return []
    files = [write_tracks_tsv(out_dir, d["rows"])]
    files += write_browser_files(out_dir, d["rows"], d["locus"], d["genome"], BrowserOptions(**d["browser"]))
    return [str(f) for f in files]


def _optional_tables(bank: Bank, options: ScanOptions) -> Tables | None:
    """The backgrounds of every model for the hits' p-values, or None when a model has none."""
    try:
        return background_tables(bank, options.scoring, options.window)
    except DbtoolsError:
        return None


def _track_values(values: np.ndarray, models, options: ScanOptions, tables: Tables | None) -> np.ndarray:
    """What a track holds: the scores, or -log10 p (gaps stay gaps)."""
    if options.track_values != TrackValues.LOG10P:
        return values
    return 0.0 - log10_pvalues(torch.from_numpy(values), tables.rows(models)).numpy()


class _Sink:
    """Where a contig's window values go; BED hits are kept per contig (ContigHits)."""

    def __init__(self, bank: Bank, options: ScanOptions, names: dict[str, str], tables: Tables | None):
        self.options, self.names, self.tables = options, names, tables
        self.hit_names = hit_names(bank) if options.fmt == TrackFormat.BED else None
        self.hits: ContigHits | None = None

    def add(self, contig, window, first, models, values, rc_won) -> None:
        o = self.options
        if o.fmt == TrackFormat.BED:
            if self.hits is None:
                self.hits = ContigHits(self.names[contig], self.hit_names, threshold=o.threshold, pvalue=o.pvalue,
                                       tables=self.tables, merge=o.hits_merge)
            self.hits.add(window, first, o.step, models, values, rc_won)
        else:
            self.values(self.names[contig], first + track_offset(window, o.step), models,
                        _track_values(values, models, o, self.tables))

    def chunk_done(self) -> None:
        if self.hits is not None:
            self.write_hits(self.hits.chunk_done())

    def contig_done(self) -> None:
        if self.hits is not None:
            self.write_hits(self.hits.finish())
            self.hits = None


class _StreamSink(_Sink):
    """bedGraph (one model) or BED hits straight to a text stream."""

    def __init__(self, out: TextIO, bank: Bank, options: ScanOptions, names: dict[str, str],
                 tables: Tables | None = None):
        super().__init__(bank, options, names, tables)
        self.out = out

    def values(self, chrom, first, models, values) -> None:
        self.out.write(bedgraph_text(chrom, first, self.options.step, values[:, 0]))

    def write_hits(self, text: str) -> None:
        self.out.write(text)


class _PartSink(_Sink):
    """Window values (tracks) or hits (BED) into the part store (unless `part` is None), and to the
    open tracks if any."""

    def __init__(self, part, bank: Bank, options: ScanOptions, names: dict[str, str],
                 tracks: OpenTracks | None = None, tables: Tables | None = None):
        super().__init__(bank, options, names, tables)
        self.part, self.tracks = part, tracks

    def add(self, contig, window, first, models, values, rc_won) -> None:
        if self.part is not None:
            self.part.add(window, first, self.options.step, models, values)
        super().add(contig, window, first, models, values, rc_won)

    def values(self, chrom, first, models, values) -> None:
        if self.tracks is not None:
            self.tracks.add_columns(models, chrom, first, self.options.step, values)

    def write_hits(self, text: str) -> None:
        self.part.add_hits(text)


def _scan_contig(genome: Genome, contig: str, segments: list[tuple[int, int]], engines, options: ScanOptions,
                 chunk: int, batch_windows: int | None, precision: str, sink, progress) -> None:
    """Every window of every segment of one contig, chunk by chunk, into `sink`."""
    S = options.step
    wmax = max(w for w, _, _ in engines)
    per_chunk = max(1, chunk // S)  # window starts per chunk
    total = sum(e - s for s, e in segments)
    before = 0  # bases of the segments already done
    for a, b in segments:
        counts = [window_count(b - a, w, S) for w, _, _ in engines]
        n = max(counts)
        for k0 in range(0, max(n, 1), per_chunk):
            k1 = min(n, k0 + per_chunk)
            if k1 > k0:
                lo = a + k0 * S
                seq = genome.fetch(contig, lo, min(b, a + (k1 - 1) * S + wmax))
                codes = encode(seq, f"{genome.path}: {contig}:{lo + 1}")
                for (w, idx, engine), nw in zip(engines, counts):
                    kc = min(k1, nw)
                    if kc <= k0:
                        continue
                    sub = codes[:(kc - k0 - 1) * S + w]
                    values, rc_won = window_values(engine, sub, w, S, options.scoring, batch_windows)
                    if options.threshold is not None and options.fmt != "bed":
                        with np.errstate(invalid="ignore"):
                            values[values < options.threshold] = np.nan
                    sink.add(contig, w, lo, idx, values, rc_won)
                sink.chunk_done()
            if progress:
                progress(contig, before + (b - a if k1 >= n else k1 * S), total)
        before += b - a
    sink.contig_done()


def assemble(out_dir: str | os.PathLike, threads: int | None = None) -> list[str]:
    """Turn a complete part store into the final tracks and remove it (`dbtools merge-tracks`),
    `threads` tracks at a time (default: the CPUs this process may use).

    Every contig of the scan must be complete; the error lists those that are not.
    """
    store = PartStore(out_dir)
    sig = store.signature()
    if sig is None:
        raise DbtoolsError(f"{out_dir}: no scan parts here ({store.root} is missing)")
    header = [(c, n) for c, n in sig["header"]]
    index = {c: i for i, (c, _) in enumerate(header)}
    missing = [c for c in sig["contigs"] if not store.is_done(index[c])]
    if missing:
        shown = ", ".join(missing[:20]) + (", ..." if len(missing) > 20 else "")
        raise DbtoolsError(f"{out_dir}: the scan is not complete: contig(s) {shown} not done yet "
                           "(run the remaining shards, or the scan with --resume)")
    step, fmt, ids, windows = sig["step"], sig["format"], sig["models"], sig["windows"]
    out = Path(out_dir)
    remove_stale_temporaries(out, _output_names(ids, fmt))
    outputs: list[str] = []
    names = sig.get("names") or {c: c for c, _ in header}
    if fmt == "bed":
        path = out / HITS_FILE
        with open_indexed_text(path, "bed") as fh:
            fh.write(HITS_HEADER)
            for c in sorted(sig["contigs"], key=index.__getitem__):
                with open(store.hits_path(index[c])) as src:
                    for block in iter(lambda: src.read(1 << 20), ""):
                        fh.write(block)
        outputs += [str(path), str(path) + ".tbi"]
    else:
        renamed = [(names[c], n) for c, n in header]
        scanned = [(index[c], names[c]) for c in sorted(sig["contigs"], key=index.__getitem__)]
        job = PartTracks(str(out), fmt, step, renamed, scanned, list(ids), [int(w) for w in windows])
        outputs = job.write_all(cpu_count(threads))
        _browser_files(out, sig)
    store.remove()
    return outputs
