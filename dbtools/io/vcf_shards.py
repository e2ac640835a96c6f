"""Cut a VCF into shards of consecutive records and put the shards back together, in order.

A cluster run scores each shard in its own job (`dbtools vareffect`) and concatenates the
results: runs of consecutive records keep the input's order, so a position-sorted VCF gives
shards that are genomic regions and the concatenation is sorted again (bgzip + tabix).
Every shard carries the full header; concatenation checks that the shards' headers agree.
"""

from __future__ import annotations

from pathlib import Path

from dbtools.errors import DbtoolsError, UsageError
from dbtools.io.atomic import output_folder
from dbtools.io.vcf_read import VcfHeader, open_vcf
from dbtools.io.vcf_write import open_vcf_output

# header lines that name one job's own command line; shards of one run may differ only there
_PER_JOB = ("##dbtools_command=",)


def shard_sizes(total: int, n: int) -> list[int]:
    """Records per shard: `total` split into `n` runs whose sizes differ by at most one."""
    base, extra = divmod(total, n)
    return [base + (k < extra) for k in range(n)]


def shard_name(i: int) -> str:
    """The file name of shard i (1-based) that `split_vcf` writes."""
    return f"part{i:04d}.vcf"


def split_vcf(path: str, n: int, out_dir: str) -> list[Path]:
    """Write `path` as `n` VCFs of consecutive records (OUT_DIR/part0001.vcf, ...), each with the header.

    Reads the input twice (count, then copy), so it must be a file, not stdin. Every shard gets at
    least one record: more shards than records is an error.
    """
    if n < 1:
        raise UsageError(f"--shards {n}: must be at least 1")
    if path == "-":
        raise UsageError("dbtools vcf split reads the VCF twice: give a file, not '-'")
    with open_vcf(path) as (_, records):
        total = sum(1 for _ in records)
    if total < n:
        raise DbtoolsError(f"{path}: {total} record(s), fewer than the {n} shards asked for (each shard "
                           "needs at least one record)")
    folder = output_folder(out_dir)
    outputs = [folder / shard_name(i + 1) for i in range(n)]
    with open_vcf(path) as (header, records):
        for out, size in zip(outputs, shard_sizes(total, n)):
            with open_vcf_output(str(out)) as writer:
                writer.header(header, [])
                batch = []
                for _ in range(size):
                    batch.append("\t".join(next(records).fields))
                    if len(batch) >= 4096:
                        writer.records(batch)
                        batch = []
                writer.records(batch)
    return outputs


def _comparable(header: VcfHeader) -> tuple[list[str], str]:
    return [ln for ln in header.meta if not ln.startswith(_PER_JOB)], header.columns


def concat_vcfs(parts: list[str], out: str) -> int:
    """Write the records of `parts`, in the order given, under the first part's header to `out`
    ('-', .vcf, .vcf.gz with a tabix index, .bcf). Returns the number of records.

    The parts' headers must agree (up to the ##dbtools_command line of each job); the first
    difference is reported with the part and the line.
    """
    if not parts:
        raise UsageError("dbtools vcf concat: give at least one VCF")
    with open_vcf(parts[0]) as (first, _):
        expected = _comparable(first)
    total = 0
    with open_vcf_output(out) as writer:
        writer.header(first, [])
        for part in parts:
            with open_vcf(part) as (header, records):
                _check_same_header(expected, _comparable(header), parts[0], part)
                batch = []
                for rec in records:
                    batch.append("\t".join(rec.fields))
                    if len(batch) >= 4096:
                        writer.records(batch)
                        total += len(batch)
                        batch = []
                writer.records(batch)
                total += len(batch)
    return total


def _check_same_header(expected: tuple[list[str], str], got: tuple[list[str], str], first: str, part: str) -> None:
    (meta0, cols0), (meta, cols) = expected, got
    if cols != cols0:
        raise DbtoolsError(f"{part}: its #CHROM line differs from {first}'s (other samples?): cannot concatenate")
    for k, (a, b) in enumerate(zip(meta0, meta)):
        if a != b:
            raise DbtoolsError(f"{part}: header line {b[:60]!r} differs from {first}'s {a[:60]!r}: the shards "
                               "must come from one run (same models and options)")
    if len(meta) != len(meta0):
        raise DbtoolsError(f"{part}: its header has {len(meta)} meta lines, {first}'s has {len(meta0)}: the "
                           "shards must come from one run")
