"""Mutation-map figures in the DeepBind paper's style (Fig. 4), drawn with matplotlib (Agg).

The sequence is drawn as letters whose heights show the largest loss of score when that base
is mutated (max(0, -min over the other bases of delta)); below it a heatmap of every delta
(rows A, C, G, T; diverging colours centred on 0: blue = loss, red = gain; the wild-type
base marked with a dot). Long sequences wrap onto rows of at most ROW_MAX bases, so a
figure stays readable from 20 bp to several kb. Sizes are fixed in inches (no tight bbox),
so an image's size follows from the sequence length alone (`figure_size`).
"""

from __future__ import annotations

import math
from functools import lru_cache
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib.colors import Normalize  # noqa: E402
from matplotlib.font_manager import FontProperties  # noqa: E402
from matplotlib.patches import PathPatch  # noqa: E402
from matplotlib.textpath import TextPath  # noqa: E402
from matplotlib.transforms import Affine2D  # noqa: E402

from dbtools.io.atomic import atomic_path  # noqa: E402

ROW_MAX = 120  # bases per row before wrapping
DPI = 100
COLOURS = {"A": "#109648", "C": "#255C99", "G": "#F7B32B", "T": "#D62839", "N": "#8C8C8C"}
# layout in inches
_LEFT, _RIGHT, _TOP, _BOTTOM = 0.55, 1.15, 0.55, 0.15
_LOGO, _HEAT, _GAP = 0.85, 0.62, 0.42


def rows_of(length: int) -> tuple[int, int]:
    """(rows, bases per row): the fewest rows of at most ROW_MAX bases, filled evenly."""
    rows = max(1, math.ceil(length / ROW_MAX))
    return rows, math.ceil(length / rows)


def _cell(per_row: int) -> float:
    """Width of one base in inches: wide for short sequences, 0.09 in from ~100 bp on."""
    return min(0.4, max(0.09, 9.0 / per_row))


def figure_size(length: int) -> tuple[float, float]:
    """Figure size in inches for a sequence of `length` bases."""
    rows, per_row = rows_of(length)
    width = _LEFT + per_row * _cell(per_row) + _RIGHT
    height = _TOP + rows * (_LOGO + _HEAT + _GAP) + _BOTTOM
    return width, height


@lru_cache(maxsize=None)
def _glyph(letter: str):
    """The outline of a letter, normalised to the unit square."""
    path = TextPath((0, 0), letter, size=1, prop=FontProperties(family="DejaVu Sans", weight="bold"))
    box = path.get_extents()
    return path.transformed(Affine2D().translate(-box.x0, -box.y0).scale(1 / box.width, 1 / box.height))


def _letter(ax, letter: str, x: float, height: float, width: float = 0.9) -> None:
    """Draw `letter` filling the box [x - width/2, x + width/2] x [0, height] in data units."""
    glyph = _glyph(letter)
    path = glyph.transformed(Affine2D().scale(width, height).translate(x - width / 2, 0))
    ax.add_patch(PathPatch(path, facecolor=COLOURS.get(letter, COLOURS["N"]), edgecolor="none"))


def _ticks(first: int, count: int, per_row: int) -> list[int]:
    """Offsets (0-based within a row) of position ticks at round numbers."""
    step = next(s for s in (1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 10**9) if per_row / s <= 12)
    return [k for k in range(count) if (first + k) % step == 0]


def title(info, target, wild_type: float, scale: str) -> str:
    where = f" {target.contig}:{target.start + 1:,}-{target.end:,}" if target.contig is not None else ""
    scaled = ", DeepBind scaling" if scale == "deepbind" else ""
    return (f"{info.id} {info.protein}: {target.name}{where} ({len(target.sequence)} bp)\n"
            f"wild-type score {wild_type:.3f}{scaled}")


def draw(delta: np.ndarray, sequence: str, *, title: str = "", first: int | None = None):
    """The figure for one map: delta [L, 4] (A, C, G, T), the wild-type sequence; `first` labels
    position 1 (a genomic coordinate), else positions count from 1."""
    delta = np.asarray(delta, dtype=np.float64)
    L = len(sequence)
    if delta.shape != (L, 4):
        raise ValueError(f"delta must be [{L}, 4], got {list(delta.shape)}")
    seq = sequence.upper().replace("U", "T")
    rows, per_row = rows_of(L)
    width, height = figure_size(L)
    cell = _cell(per_row)
    fig = plt.figure(figsize=(width, height), dpi=DPI)
    loss = np.maximum(0.0, -delta.min(axis=1))
    top = float(loss.max()) if loss.max() > 0 else 1.0
    span = float(np.abs(delta).max()) or 1.0
    norm = Normalize(-span, span)  # centred on 0
    start = 1 if first is None else first
    image = None
    for r in range(rows):
        a, b = r * per_row, min(L, (r + 1) * per_row)
        n = b - a
        y0 = height - _TOP - r * (_LOGO + _HEAT + _GAP)
        logo = fig.add_axes([_LEFT / width, (y0 - _LOGO) / height, n * cell / width, _LOGO / height])
        heat = fig.add_axes([_LEFT / width, (y0 - _LOGO - _HEAT) / height, n * cell / width, _HEAT / height],
                            sharex=logo)
        for k in range(n):
            if loss[a + k] > 0:
                _letter(logo, seq[a + k] if seq[a + k] in "ACGT" else "N", k, loss[a + k])
        logo.set_ylim(0, top * 1.02)
        logo.set_xlim(-0.5, n - 0.5)
        logo.tick_params(axis="x", bottom=False, labelbottom=False)
        logo.tick_params(axis="y", labelsize=7)
        for side in ("top", "right"):
            logo.spines[side].set_visible(False)
        if r == 0:
            logo.set_ylabel("loss", fontsize=8)
        image = heat.imshow(delta[a:b].T, cmap="RdBu_r", norm=norm, aspect="auto", interpolation="nearest",
                            extent=(-0.5, n - 0.5, 3.5, -0.5))
        ref = [k for k in range(n) if seq[a + k] in "ACGT"]
        heat.scatter(ref, ["ACGT".index(seq[a + k]) for k in ref], s=min(6.0, 40 * cell), c="#333333",
                     marker="o", linewidths=0)
        heat.set_yticks(range(4), list("ACGT"), fontsize=7)
        ticks = _ticks(start + a, n, per_row)
        heat.set_xticks(ticks, [f"{start + a + k:,}" for k in ticks], fontsize=7)
        heat.set_xlim(-0.5, n - 0.5)
        heat.set_ylim(3.5, -0.5)
    bar_h = min(rows * (_LOGO + _HEAT + _GAP) - _GAP, 2.4)
    cax = fig.add_axes([(width - _RIGHT + 0.3) / width, (height - _TOP - bar_h) / height, 0.14 / width, bar_h / height])
    cb = fig.colorbar(image, cax=cax)
    cb.ax.tick_params(labelsize=7)
    cb.set_label("Δ score (mutant − wild type)", fontsize=8)
    if title:
        fig.suptitle(title, x=_LEFT / width, y=1 - 0.06 / height, ha="left", va="top", fontsize=9)
    return fig


def save(path: str | Path, delta: np.ndarray, sequence: str, *, fmt: str = "png", title: str = "",
         first: int | None = None) -> None:
    """Draw and write one figure (png or svg) atomically."""
    fig = draw(delta, sequence, title=title, first=first)
    try:
        with atomic_path(path) as tmp, open(tmp, "wb") as fh:
            fig.savefig(fh, format=fmt, dpi=DPI)
    finally:
        plt.close(fig)
