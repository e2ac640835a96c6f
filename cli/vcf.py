"""`dbtools vcf split|concat`: VCF shards for cluster runs (score each shard, then put them back in order)."""

from __future__ import annotations

from typing import Annotated

import typer

from dbtools.io.vcf_shards import concat_vcfs, split_vcf

from .progress import stderr

app = typer.Typer(help="Split a VCF into shards of consecutive records, or concatenate shards in order.",
                  no_args_is_help=True)


@app.command("split")
def split(
    vcf: Annotated[str, typer.Argument(metavar="VCF", help="VCF (plain or bgzip) or BCF file to cut.")],
    shards: Annotated[int, typer.Option("--shards", "-n", min=1, help="Number of shards.")],
    out_dir: Annotated[str, typer.Option("--out-dir", "-o", metavar="DIR",
                                         help="Folder for DIR/part0001.vcf ... (full header in each).")],
) -> None:
    """Cut a VCF into N shards of consecutive records (sizes differ by at most one), header in each.

    A position-sorted VCF gives shards that are genomic regions; `dbtools vcf concat` of the
    shards, in order, restores the input's order.

    Example: dbtools vcf split calls.vcf.gz -n 8 -o shards/
    """
    outputs = split_vcf(vcf, shards, out_dir)
    stderr.print(f"wrote {len(outputs)} shard(s) in {out_dir}", highlight=False)


@app.command("concat")
def concat(
    parts: Annotated[list[str], typer.Argument(metavar="VCF...", help="Shards, in order (same header).")],
    output: Annotated[str, typer.Option("--output", "-o", metavar="OUT",
                                        help="'-' = VCF on stdout; NAME.vcf; NAME.vcf.gz (bgzip + tabix "
                                             "index); NAME.bcf.")] = "-",
) -> None:
    """Concatenate VCF shards, in the order given, under the first one's header.

    The headers must agree (each job's ##dbtools_command line may differ).

    Example: dbtools vcf concat scored/part*.vcf -o calls.dbt.vcf.gz
    """
    n = concat_vcfs(parts, output)
    stderr.print(f"wrote {n:,} records from {len(parts)} shard(s) to {output}", highlight=False)
