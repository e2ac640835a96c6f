"""`dbtools scan` and `dbtools merge-tracks`: binding tracks of a genome as BigWig, bedGraph or BED."""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Annotated, Optional

import typer
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

from dbtools.device import resolve_device
from dbtools.parallel import use_threads
from dbtools.scan.run import Precision, ScanOptions, TrackFormat, TrackValues, assemble, parse_shard
from dbtools.scan.run import scan as run_scan
from dbtools.scan.browser import BrowserOptions
from dbtools.scan.hits import HitsMerge
from dbtools.score import ScoreOptions

from . import options
from .progress import stderr


@contextmanager
def _contig_bars() -> Iterator[Callable[[str, int, int], None]]:
    """One bar per contig (bases done of its total, rate); yields `update(contig, done, total)`."""
    with Progress(TextColumn("{task.description}"), BarColumn(),
                  TextColumn("{task.completed:,}/{task.total:,} bp"), TextColumn("{task.fields[rate]}"),
                  TimeElapsedColumn(), TimeRemainingColumn(), console=stderr, transient=True,
                  disable=not stderr.is_terminal) as progress:
        tasks: dict[str, tuple[int, float]] = {}

        def update(contig: str, done: int, total: int) -> None:
            if contig not in tasks:
                tasks[contig] = (progress.add_task(f"scanning {contig}", total=total, rate=""), time.perf_counter())
            task, t0 = tasks[contig]
            dt = max(1e-9, time.perf_counter() - t0)
            progress.update(task, completed=done, rate=f"{done / dt / 1e3:,.1f} kbp/s")

        yield update


def _warn(message: str) -> None:
    print(f"dbtools: warning: {message}", file=sys.stderr)


def scan(
    genome: Annotated[str, typer.Argument(metavar="GENOME.fa[.gz]",
                                          help="Indexed genome FASTA (plain or bgzip; the .fai is built if missing).")],
    regions: Annotated[Optional[str], typer.Option("--regions", "-r", metavar="BED",
                                                   help="Scan only these regions (BED file, '-' = stdin); "
                                                        "default: every contig, end to end.")] = None,
    bank: options.Bank = None,
    models: options.Models = None,
    window: Annotated[Optional[int], typer.Option(
        "--window", "-w", min=1, metavar="W",
        help="Genomic window W (bp) each value describes: the W bases are scored exactly as `dbtools score` "
             "scores them. Default: each model's training length when the bank records it, else 101.")] = None,
    step: Annotated[int, typer.Option(
        "--step", "-s", min=1, metavar="S",
        help="Windows are placed every S bp (S <= W). Each value is written at the S bases centred on its "
             "window's centre: window [s, s+W) -> bases [s + (W-S)//2, s + (W-S)//2 + S); with S = 1 the "
             "centre base s + W//2.")] = ScanOptions.step,
    window_size: options.WindowSize = None,
    average: options.Average = False,
    out_dir: Annotated[Optional[str], typer.Option(
        "--out-dir", "-o", metavar="DIR",
        help="Write DIR/<model>.bw (bigwig) or DIR/<model>.bedGraph, with tracks.tsv (what each file "
             "holds) and IGV sessions (igv_session.json, .xml), or DIR/hits.bed.gz. Without it, bedGraph "
             "(one model) and BED go to stdout.")] = None,
    fmt: Annotated[str, typer.Option("--format", "-f", metavar=options.choices(TrackFormat),
                                     help="bigwig: one track per model; bedgraph: the same as text; bed: hits "
                                          "(--threshold or --pvalue) as sites: chrom, start, end, PROTEIN:ID, "
                                          "0-1000 score (100 x -log10 p), strand that won, window score, p-value "
                                          "(-1 without a background); DIR/hits.bed.gz is bgzipped and "
                                          "tabix-indexed.")] = ScanOptions.fmt,
    threshold: Annotated[Optional[float], typer.Option(
        "--threshold", "-t", metavar="T",
        help="BED: write windows scoring >= T (this or --pvalue). Tracks: leave out values below T.")] = None,
    pvalue: Annotated[Optional[float], typer.Option(
        "--pvalue", "-p", metavar="P",
        help="BED: write windows with p-value <= P against each model's background (`dbtools background`), "
             "with a 7th column, the p-value.")] = None,
    track_values: Annotated[str, typer.Option(
        "--track-values", metavar=options.choices(TrackValues),
        help="Tracks hold each window's score, or -log10 of its p-value (comparable across models).")]
        = TrackValues.SCORE,
    contig_names: Annotated[str, typer.Option(
        "--contig-names", metavar="fasta|ucsc|ensembl|FILE",
        help="Contig names in tracks, hits and hubs: the FASTA's, UCSC's (20 -> chr20, MT -> chrM), "
             "Ensembl's (chr20 -> 20), or a chromAlias file (each line's first name is used).")] = ScanOptions.contig_names,
    hits_merge: Annotated[str, typer.Option(
        "--hits-merge", metavar=options.choices(HitsMerge),
        help="BED: site writes the overlapping hit windows of a model and strand as one row (the best "
             "window); none writes every window.")] = ScanOptions.hits_merge,
    hub: Annotated[Optional[str], typer.Option(
        "--hub", metavar="NAME",
        help="Also write a UCSC track hub (hub.txt, genomes.txt, ASSEMBLY/trackDb.txt) next to the BigWigs; "
             "needs --genome-assembly.")] = None,
    genome_assembly: Annotated[Optional[str], typer.Option(
        "--genome-assembly", metavar="NAME",
        help="The assembly the genome is (hg19, hg38, mm10, ...), for the hub and the IGV sessions "
             "(default: the sessions load GENOME itself).")] = None,
    hub_email: Annotated[str, typer.Option("--hub-email", metavar="ADDRESS",
                                           help="The hub's contact address.")] = "",
    chroms: Annotated[Optional[list[str]], typer.Option(
        "--chroms", metavar="NAMES", help="Only these contigs (repeatable or comma-separated; chr20 = 20).")] = None,
    shard: Annotated[Optional[str], typer.Option(
        "--shard", metavar="i/n",
        help="Scan shard i of n (contigs split by size) into --out-dir; when all n are done, "
             "`dbtools merge-tracks DIR` writes the tracks.")] = None,
    resume: Annotated[bool, typer.Option("--resume", help="Skip contigs already complete in --out-dir "
                                                          "(from an interrupted run of the same scan).")] = False,
    skip_missing: Annotated[bool, typer.Option("--skip-missing", help="Skip BED regions on contigs the FASTA "
                                                                      "lacks (default: an error).")] = False,
    device: options.Device = "auto",
    precision: Annotated[str, typer.Option("--precision", metavar=options.choices(Precision),
                                           help="Arithmetic of the windowed pass: fp32 (exact to 1e-4); fp16 "
                                                "(within 2% of each model's score range) or bf16 (within 10%) "
                                                "for speed on GPUs (on the CPU they are slower).")] = Precision.FP32,
    chunk_size: Annotated[Optional[int], typer.Option(
        "--chunk-size", min=1, metavar="BP", help="Bases per chunk; memory grows with it "
                                                  "(default: 1 Mbp, less for large banks).")] = None,
    batch_size: Annotated[Optional[int], typer.Option(
        "--batch-size", min=1, metavar="N", help="Scoring windows per engine step (default: sized to the "
                                                 "device's memory budget).")] = None,
    threads: options.Threads = None,
) -> None:
    """Scan a genome (or BED regions) with every selected model: binding tracks as BigWig, bedGraph or BED.

    Every W-bp window placed every S bp gets exactly the score `dbtools score` gives its sequence; windows
    that are all N are gaps. The value is written at the window's centre (S bases). Work is done once per
    base: each chunk of a contig is scored by all models in one pass.

    Example: dbtools scan hg19.fa -m CTCF --step 10 --out-dir ctcf_tracks
    """
    use_threads(threads)
    summary = None
    with _contig_bars() as update:
        summary = run_scan(
            genome, regions=regions, chroms=chroms, skip_missing=skip_missing, bank=bank, models=models,
            options=ScanOptions(window=window, step=step,
                                scoring=ScoreOptions(window_size=window_size, average=average),
                                threshold=threshold, fmt=fmt.lower(), pvalue=pvalue,
                                track_values=track_values.lower(), contig_names=contig_names,
                                hits_merge=hits_merge.lower()),
            out_dir=out_dir, stdout=sys.stdout, device=resolve_device(device), precision=precision.lower(),
            chunk_size=chunk_size, batch_windows=batch_size, resume=resume, shard=parse_shard(shard), threads=threads,
            browser=BrowserOptions(hub=hub, assembly=genome_assembly, email=hub_email),
            warn=_warn, progress=update,
        )
    if out_dir is not None:
        what = (f"{len(summary.outputs)} file(s) in {out_dir}" if summary.assembled
                else f"parts in {out_dir}; when every shard is done run: dbtools merge-tracks {out_dir}")
        stderr.print(f"scanned {summary.contigs} contig(s), {summary.bases:,} bp x {summary.models} model(s)"
                     + (f" ({summary.skipped} already complete)" if summary.skipped else "") + f": {what}",
                     highlight=False)


def merge_tracks(
    out_dir: Annotated[str, typer.Argument(metavar="DIR", help="The --out-dir the shards of one scan wrote to.")],
    threads: options.Threads = None,
) -> None:
    """Write the tracks of a scan run as shards (`dbtools scan --shard i/n --out-dir DIR`).

    Example: dbtools merge-tracks ctcf_tracks
    """
    outputs = assemble(out_dir, threads)
    stderr.print(f"wrote {len(outputs)} file(s) in {out_dir}", highlight=False)
