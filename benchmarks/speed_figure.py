"""The speed chart of docs/performance.md: each benchmark's speed-up over its baseline, from speed_figures.tsv.

The figures are those the benchmarks printed (ratios measured in one run against the baseline
named in the table); this script only draws them:

    python benchmarks/speed_figure.py [--table benchmarks/speed_figures.tsv] [-o docs/img/speed.png]
"""

from __future__ import annotations

import argparse
import csv
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

HERE = Path(__file__).resolve().parent


def read_figures(path: Path) -> list[dict]:
    """The rows of the table (comment lines start with '#'), with low and high as numbers."""
    lines = [ln for ln in path.read_text().splitlines() if ln and not ln.startswith("#")]
    rows = list(csv.DictReader(lines, delimiter="\t"))
    for row in rows:
        row["low"], row["high"] = float(row["low"]), float(row["high"])
        if not 0 < row["low"] <= row["high"]:
            raise ValueError(f"{path}: {row['task']}: expected 0 < low <= high")
    return rows


def draw(rows: list[dict]):
    """Horizontal bars on a log scale, one per row, labelled with the task, the baseline and the machine."""
    fig, ax = plt.subplots(figsize=(9, 0.45 * len(rows) + 1.2))
    y = list(range(len(rows)))[::-1]
    colours = ["C1" if "GPU" in r["where"] or "H200" in r["where"] else "C0" for r in rows]
    ax.barh(y, [r["low"] for r in rows], color=colours)
    for yi, r in zip(y, rows):
        if r["high"] > r["low"]:
            ax.plot([r["low"], r["high"]], [yi, yi], color="black", linewidth=2)
        text = f"{r['low']:g}x" if r["high"] == r["low"] else f"{r['low']:g}-{r['high']:g}x"
        ax.text(r["high"] * 1.08, yi, text, va="center", fontsize=8)
    ax.set_yticks(y, [f"{r['task']}\nagainst {r['baseline']} ({r['where']})" for r in rows], fontsize=7)
    ax.set_xscale("log")
    ax.set_xlim(1, max(r["high"] for r in rows) * 3)
    ax.axvline(1, color="grey", linewidth=0.8)
    ax.set_xlabel("speed-up over the baseline named on the left (log scale)")
    fig.tight_layout()
    return fig


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--table", type=Path, default=HERE / "speed_figures.tsv")
    parser.add_argument("-o", "--output", type=Path, default=HERE.parent / "docs" / "img" / "speed.png")
    args = parser.parse_args()
    fig = draw(read_figures(args.table))
    fig.savefig(args.output, dpi=100)
    print(f"wrote {args.output}")


if __name__ == "__main__":
    main()
