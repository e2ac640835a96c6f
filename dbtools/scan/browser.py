"""Genome-browser files for a folder of scan tracks: a UCSC track hub and IGV sessions.

Both are made from the rows of `tracks.tsv` (dbtools/scan/describe.py), so a folder of tracks
gets the same names, colours, groups and max windowing in every browser:
- names a person reads: "CTCF ChIP-seq" (short), with the model ID, window and step (long);
- one colour per experiment type;
- max windowing: at a wide view a browser shows each pixel's best window, so peaks stay
  visible (mean windowing averages them away);
- score tracks autoscale in groups of one protein; -log10 p tracks share fixed limits;
- the tracks sorted by protein, then experiment; beyond SHOWN, tracks start hidden.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass
from pathlib import Path
from xml.sax.saxutils import quoteattr

from dbtools.io.atomic import atomic_path

@dataclass(frozen=True)
class BrowserOptions:
    """What browser files a scan writes beside its tracks (IGV sessions always)."""

    hub: str | None = None  # a UCSC track hub of this name
    assembly: str | None = None  # the genome assembly of the hub and sessions (hg19, hg38, ...)
    email: str = ""  # the hub's contact


SHOWN = 12  # tracks shown when a hub or session opens; the rest start hidden
COLOURS = {"ChIP-seq": (31, 119, 180), "SELEX": (214, 39, 40), "PBM": (44, 160, 44),
           "RNAcompete": (148, 103, 189)}
OTHER_COLOUR = (90, 90, 90)
LOG10P_LIMITS = (0.0, 10.0)  # -log10 p tracks: one fixed scale, comparable across models


def colour(experiment: str) -> tuple[int, int, int]:
    return COLOURS.get(experiment, OTHER_COLOUR)


def short_label(row: dict[str, str]) -> str:
    """ "CTCF ChIP-seq": protein and experiment."""
    return " ".join(x for x in (row["protein"], row["experiment"]) if x) or row["model_id"]


def long_label(row: dict[str, str]) -> str:
    values = "-log10 p" if row["values"] == "log10p" else "score"
    return (f"{short_label(row)} ({row['model_id']}; {row['species'] or 'species n/a'}; {values}, "
            f"window {row['window']} bp, step {row['step']})")


def ordered(rows: list[dict[str, str]]) -> list[dict[str, str]]:
    """Tracks by protein (case-insensitive), then experiment, then model ID."""
    return sorted(rows, key=lambda r: (r["protein"].lower(), r["experiment"], r["model_id"]))


def _tag(text: str) -> str:
    """A trackDb name or subgroup tag: letters, digits and underscores."""
    return re.sub(r"[^A-Za-z0-9_]", "_", text) or "NA"


def trackdb_text(rows: list[dict[str, str]], name: str, data_prefix: str) -> str:
    """A composite track with a subtrack per file, subgroups protein, experiment and species."""
    rows = ordered(rows)
    groups = {key: sorted({r[key] for r in rows}) for key in ("protein", "experiment", "species")}
    composite = _tag(f"dbtools_{name}")
    log10p = all(r["values"] == "log10p" for r in rows)
    steps = sorted({r["step"] for r in rows}, key=int)
    lines = [
        f"track {composite}",
        "compositeTrack on",
        f"shortLabel {name}"[:len("shortLabel ") + 17],
        f"longLabel DeepBind predictions by dbtools: {len(rows)} models, step {'/'.join(steps)} bp",
        *(f"subGroup{i} {key} {key.capitalize()} " + " ".join(f"{_tag(v)}={_tag(v)}" for v in values)
          for i, (key, values) in enumerate(groups.items(), 1)),
        "dimensions dimX=experiment dimY=protein dimA=species",
        "sortOrder protein=+ experiment=+",
        "type bigWig",
        "windowingFunction maximum",
        "maxHeightPixels 100:32:8",
        "visibility full",
    ]
    if log10p:
        lines += ["autoScale off", f"viewLimits {LOG10P_LIMITS[0]:g}:{LOG10P_LIMITS[1]:g}"]
    else:
        lines += ["autoScale group"]
    lines.append("")
    for k, r in enumerate(rows):
        on = "on" if k < SHOWN else "off"
        sub = " ".join(f"{key}={_tag(r[key])}" for key in groups)
        lines += [
            f"    track {_tag(composite + '_' + r['model_id'])}",
            f"    parent {composite} {on}",
            f"    subGroups {sub}",
            f"    bigDataUrl {data_prefix}{r['file']}",
            f"    shortLabel {short_label(r)[:17]}",
            f"    longLabel {long_label(r)[:76]}",
            "    type bigWig",
            f"    color {','.join(map(str, colour(r['experiment'])))}",
            "",
        ]
    return "\n".join(lines)


def write_hub(folder: str | os.PathLike, rows: list[dict[str, str]], name: str, assembly: str,
              email: str = "") -> list[Path]:
    """hub.txt, genomes.txt and ASSEMBLY/trackDb.txt in the folder of the tracks."""
    if not rows or any(not r["file"].endswith(".bw") for r in rows):
        raise ValueError("a hub holds BigWig tracks")
    folder = Path(folder)
    (folder / assembly).mkdir(exist_ok=True)
    texts = {
        folder / "hub.txt": "\n".join([
            f"hub {_tag(name)}", f"shortLabel {name}"[:len("shortLabel ") + 17],
            f"longLabel dbtools scan {name}: {len(rows)} DeepBind models", "genomesFile genomes.txt",
            f"email {email or 'not-given'}", ""]),
        folder / "genomes.txt": f"genome {assembly}\ntrackDb {assembly}/trackDb.txt\n",
        folder / assembly / "trackDb.txt": trackdb_text(rows, name, "../"),
    }
    for path, text in texts.items():
        with atomic_path(path) as tmp:
            tmp.write_text(text)
    return list(texts)


def _reference(assembly: str | None, genome: str | None) -> dict:
    if assembly:
        return {"id": assembly}
    fasta = os.path.abspath(genome or "")
    return {"fastaURL": fasta, "indexURL": fasta + ".fai",
            **({"compressedIndexURL": fasta + ".gzi"} if fasta.endswith(".gz") else {})}


def igv_js_session(rows: list[dict[str, str]], locus: str, assembly: str | None, genome: str | None) -> dict:
    """An igv.js session (JSON): the tracks by protein, max windowing, colours and autoscale groups."""
    tracks = []
    for k, r in enumerate(ordered(rows)):
        fmt = "bigwig" if r["file"].endswith(".bw") else "bedgraph"
        t = {"name": f"{short_label(r)} {r['model_id']}", "url": r["file"], "type": "wig", "format": fmt,
             "color": "rgb({},{},{})".format(*colour(r["experiment"])), "windowFunction": "max", "height": 50,
             "visible": k < SHOWN}
        if r["values"] == "log10p":
            t.update(autoscale=False, min=LOG10P_LIMITS[0], max=LOG10P_LIMITS[1])
        else:
            t.update(autoscale=True, autoscaleGroup=r["protein"] or r["model_id"])
        tracks.append(t)
    return {"version": "3", "reference": _reference(assembly, genome), "locus": locus, "tracks": tracks}


def igv_desktop_session(rows: list[dict[str, str]], locus: str, assembly: str | None, genome: str | None) -> str:
    """An IGV desktop session (XML) with the same tracks, names, colours and windowing."""
    rows = ordered(rows)
    ref = assembly or os.path.abspath(genome or "")
    groups = {p: i for i, p in enumerate(dict.fromkeys(r["protein"] or r["model_id"] for r in rows), 1)}
    out = ['<?xml version="1.0" encoding="UTF-8" standalone="no"?>',
           f'<Session genome={quoteattr(ref)} locus={quoteattr(locus)} version="8">', "  <Resources>"]
    for r in rows:
        out.append(f"    <Resource name={quoteattr(short_label(r) + ' ' + r['model_id'])} path={quoteattr(r['file'])}/>")
    out += ["  </Resources>", '  <Panel name="DataPanel">']
    for k, r in enumerate(rows):
        scale = ('autoScale="false"' if r["values"] == "log10p"
                 else f'autoScale="true" autoscaleGroup="{groups[r["protein"] or r["model_id"]]}"')
        out.append(f"    <Track attributeKey={quoteattr(r['file'])} {scale} "
                   f'clazz="org.broad.igv.track.DataSourceTrack" color="{",".join(map(str, colour(r["experiment"])))}" '
                   f"id={quoteattr(r['file'])} name={quoteattr(short_label(r) + ' ' + r['model_id'])} "
                   f'renderer="BAR_CHART" visible="{"true" if k < SHOWN else "false"}" windowFunction="max">')
        if r["values"] == "log10p":
            out.append(f'      <DataRange baseline="0.0" maximum="{LOG10P_LIMITS[1]:g}" minimum="{LOG10P_LIMITS[0]:g}" '
                       'type="LINEAR"/>')
        out.append("    </Track>")
    out += ["  </Panel>", "</Session>", ""]
    return "\n".join(out)


def write_igv_sessions(folder: str | os.PathLike, rows: list[dict[str, str]], locus: str,
                       assembly: str | None, genome: str | None) -> list[Path]:
    """igv_session.json (igv.js) and igv_session.xml (IGV desktop) beside the tracks."""
    folder = Path(folder)
    texts = {folder / "igv_session.json": json.dumps(igv_js_session(rows, locus, assembly, genome), indent=1) + "\n",
             folder / "igv_session.xml": igv_desktop_session(rows, locus, assembly, genome)}
    for path, text in texts.items():
        with atomic_path(path) as tmp:
            tmp.write_text(text)
    return list(texts)


def write_browser_files(folder: str | os.PathLike, rows: list[dict[str, str]], locus: str, genome: str,
                        browser: BrowserOptions) -> list[Path]:
    """IGV sessions, and the hub when asked for, beside the tracks."""
    files = write_igv_sessions(folder, rows, locus, browser.assembly, genome)
    if browser.hub:
        files += write_hub(folder, rows, browser.hub, browser.assembly, browser.email)
    return files
