"""Options shared by several commands, declared once."""

from __future__ import annotations

import enum
from typing import Annotated, Optional

import typer

from dbtools.device import CHOICES as DEVICE_CHOICES
from dbtools.train.datasets import FORMATS as DATA_FORMATS
from dbtools.train.datasets import MAX_SHUFFLES, SHUFFLE_ROWS


def choices(kind: type[enum.Enum]) -> str:
    """The metavar of an option whose values are the members of `kind` (the library checks the value
    and names the option in a one-line error)."""
    return "|".join(str(m.value) for m in kind)


Bank = Annotated[
    Optional[str],
    typer.Option("--bank", "-b", envvar="DBTOOLS_BANK", metavar="FILE",
                 help="Model bank file (default: the 927 published DeepBind models shipped with dbtools)."),
]
Models = Annotated[
    Optional[list[str]],
    typer.Option("--models", "-m", metavar="SELECTOR",
                 help="Models to use (repeatable or comma-separated): an ID (D00328.003), a protein "
                      "(CTCF), type:ChIP-seq, species:'Homo sapiens', family:X, or @file with one per line. "
                      "Default: every model of the bank."),
]
Device = Annotated[
    str, typer.Option("--device", metavar="|".join(DEVICE_CHOICES), help="Where to compute: auto uses CUDA when present."),
]
WindowSize = Annotated[
    Optional[int],
    typer.Option("--window-size", min=1, metavar="N",
                 help="Score every N-bp window and keep the max (default: int(1.5 x detector length) per model). "
                      "Sequences no longer than N are scored whole."),
]
Average = Annotated[
    bool, typer.Option("--average", help="Average over windows instead of max: sum of window scores / length."),
]

# training data (`dbtools train`, `dbtools calibrate`)
DataFormat = Annotated[str, typer.Option("--format", metavar="|".join(DATA_FORMATS),
                                         help="Format of the training files (auto: from the name and content).")]
Shuffles = Annotated[
    Optional[int],
    typer.Option("--shuffles", min=1, help="Dinucleotide shuffles per positive as negatives [auto: about "
                                           f"{SHUFFLE_ROWS:,} in all, 1 to {MAX_SHUFFLES} per positive; the "
                                           "original DeepBind filled 100,000 rows]."),
]
BedGenome = Annotated[Optional[str], typer.Option("--genome", help="Genome FASTA for BED input.")]
PeakLength = Annotated[int, typer.Option("--length", min=1, help="Window length around BED peaks.")]
Threads = Annotated[
    Optional[int],
    typer.Option("--threads", min=1, metavar="N",
                 help="CPU threads for scoring and for writing files (default: the CPUs this process may "
                      "use, e.g. a Slurm allocation)."),
]
