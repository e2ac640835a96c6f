"""`dbtools vareffect`: score the alleles of a VCF with a bank; write an annotated VCF."""

from __future__ import annotations

import shlex
import sys
from typing import Annotated, Optional

import typer

from dbtools.device import resolve_device
from dbtools.score import ScoreOptions
from dbtools.io.vcf_write import InfoLayout
from dbtools.vareffect.run import RefMismatch
from dbtools.vareffect.run import vareffect as run_vareffect

from . import options
from .progress import counter, stderr


def vareffect(
    vcf: Annotated[str, typer.Argument(metavar="VCF", help="Variants: VCF (plain or bgzip) or BCF; '-' = stdin.")],
    genome: Annotated[str, typer.Option("--genome", "-g", metavar="FASTA",
                                        help="Indexed genome FASTA (plain or bgzip) the VCF was called on.")],
    output: Annotated[str, typer.Option("--output", "-o", metavar="OUT",
                                        help="Output: '-' = VCF on stdout; NAME.vcf; NAME.vcf.gz (bgzip + tabix "
                                             "index); NAME.bcf.")] = "-",
    bank: options.Bank = None,
    models: options.Models = None,
    window: Annotated[Optional[int], typer.Option(
        "--window", "-w", min=1, metavar="W",
        help="Window (bp) centred on each allele (default: per model, its training length, else 101).")] = None,
    window_size: options.WindowSize = None,
    average: options.Average = False,
    info_layout: Annotated[str, typer.Option(
        "--info-layout", metavar=options.choices(InfoLayout),
        help="INFO layout: keys = DBT_<ID>_REF/_ALT/_DIFF Float keys per model; csq = one DBT_CSQ key "
             "'Allele|Model|Ref|Alt|Diff' (bcftools +split-vep); auto = keys for up to 16 models.")] = InfoLayout.AUTO,
    ref_mismatch: Annotated[str, typer.Option(
        "--ref-mismatch", metavar=options.choices(RefMismatch),
        help="REF differs from the genome: warn = score with the genome's bases and set DBT_REFMISMATCH; "
             "skip = flag, leave unscored; error = stop.")] = RefMismatch.WARN,
    pvalues: Annotated[bool, typer.Option(
        "--pvalues", help="Also -log10 p of the REF and ALT windows against each model's background (`dbtools "
                          "background`): DBT_<ID>_REF_LOG10P/_ALT_LOG10P keys, or RefLog10P|AltLog10P in DBT_CSQ.")] = False,
    device: options.Device = "auto",
    batch_size: Annotated[int, typer.Option(
        "--batch-size", min=1, help="Records scored per batch (memory grows with it, not with the VCF).")] = 1024,
) -> None:
    """Score each ALT allele of a VCF: REF, ALT and DIFF = ALT - REF per model, as INFO fields.

    Example: dbtools vareffect calls.vcf.gz -g hg19.fa -m CTCF -o calls.dbt.vcf.gz
    """
    command = "dbtools " + shlex.join(["vareffect", *sys.argv[2:]]) if len(sys.argv) > 1 else "dbtools vareffect"
    with counter("scoring", "records") as advance:
        summary = run_vareffect(
            vcf, genome, output, bank=bank, models=models, window=window,
            options=ScoreOptions(window_size=window_size, average=average), layout=info_layout,
            ref_mismatch_policy=ref_mismatch, device=resolve_device(device), command=command,
            batch_size=batch_size, progress=advance, pvalues=pvalues,
            warn=lambda msg: stderr.print(f"dbtools: warning: {msg}", markup=False, highlight=False, soft_wrap=True),
        )
    for line in summary.lines():
        stderr.print(f"dbtools: {line}", markup=False, highlight=False, soft_wrap=True)
