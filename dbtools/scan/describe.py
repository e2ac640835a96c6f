"""`tracks.tsv`: what every file of a scan holds, one row a file, next to the files.

A row names the file and its model (ID, protein, experiment, type, species), the window, step
and scoring options, the threshold, what the values are, the genome (file name and SHA-256),
the contig naming and the dbtools version, so a folder of tracks explains itself in a browser
session, a hub or a notebook. Hub and IGV sessions are made from these rows.
"""

from __future__ import annotations

import os
from pathlib import Path

from dbtools import __version__
from dbtools.bank.store import Bank
from dbtools.io.atomic import atomic_path

TRACKS_TSV = "tracks.tsv"
COLUMNS = ("file", "model_id", "protein", "experiment", "type", "species", "window", "step", "window_size",
           "average", "threshold", "values", "genome", "genome_sha256", "contig_names", "dbtools_version")


def describe(files: list[str], bank: Bank, windows: list[int], *, step: int, window_size: int | None,
             average: bool, threshold: float | None, values: str, genome: str, genome_sha256: str,
             contig_names: str) -> list[dict[str, str]]:
    """One row per file (files[i] holds model i of `bank`, window windows[i]), as strings."""
    rows = []
    for i, name in enumerate(files):
        info = bank.models[i].info
        rows.append({
            "file": name, "model_id": info.id, "protein": info.protein, "experiment": info.experiment,
            "type": info.protein_type, "species": info.species, "window": str(windows[i]), "step": str(step),
            "window_size": "" if window_size is None else str(window_size), "average": "yes" if average else "no",
            "threshold": "" if threshold is None else repr(float(threshold)), "values": values,
            "genome": Path(genome).name, "genome_sha256": genome_sha256, "contig_names": contig_names,
            "dbtools_version": __version__,
        })
    return rows


def _clean(text: str) -> str:
    return " ".join(str(text).split())  # no tab or newline inside a field


def write_tracks_tsv(folder: str | os.PathLike, rows: list[dict[str, str]]) -> Path:
    """DIR/tracks.tsv, written atomically."""
    path = Path(folder) / TRACKS_TSV
    with atomic_path(path) as tmp, open(tmp, "w") as fh:
        fh.write("\t".join(COLUMNS) + "\n")
        for row in rows:
            fh.write("\t".join(_clean(row[c]) for c in COLUMNS) + "\n")
    return path


def read_tracks_tsv(folder: str | os.PathLike) -> list[dict[str, str]]:
    """The rows of DIR/tracks.tsv."""
    lines = (Path(folder) / TRACKS_TSV).read_text().splitlines()
    head = lines[0].split("\t")
    return [dict(zip(head, line.split("\t"))) for line in lines[1:] if line]
