"""Regenerate the demo set from ../shared/data (run from the project root).

Everything here is a small copy of public data; see demo/README.md for provenance.
"""

from __future__ import annotations

import gzip
from pathlib import Path

import pysam

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "data"
OUT = ROOT / "demo"
START, END = 61_000_000, 62_000_000  # 0-based half-open slice of hs37d5 chromosome 20
CONTIG = "20_61M"
DEEPBIND_IDS = ("D00328.003", "D00409.004")  # a CTCF SELEX and a GABPA ChIP-seq model


def main() -> None:
    fa = pysam.FastaFile(str(SHARED / "genome" / "20.fa.gz"))
    seq = fa.fetch("20", START, END)
    with open(OUT / "chr20_61M.fa", "w") as fh:
        fh.write(f">{CONTIG} hs37d5 20:{START + 1}-{END}\n")
        for i in range(0, len(seq), 60):
            fh.write(seq[i:i + 60] + "\n")
    pysam.faidx(str(OUT / "chr20_61M.fa"))

    peaks = []
    for line in open(SHARED / "peaks" / "Gm12878_ctcf_UniPk_hg19_startend.bed"):
        chrom, s, e = line.split()[:3]
        if chrom == "chr20" and START <= int(s) and int(e) <= END:
            peaks.append((int(s), int(e)))
    with open(OUT / "ctcf_peaks.bed", "w") as bed, open(OUT / "ctcf_peaks.fa", "w") as fasta:
        for s, e in sorted(peaks):
            bed.write(f"{CONTIG}\t{s - START}\t{e - START}\n")
            mid = (s + e) // 2
            fasta.write(f">chr20:{mid - 50 + 1}-{mid + 51}\n{fa.fetch('20', mid - 50, mid + 51)}\n")

    with open(SHARED / "vcf" / "deepfind_derived_promoter_snvs_chr20_b37.vcf") as src, \
            open(OUT / "variants.vcf", "w") as dst:
        for line in src:
            if line.startswith("##contig"):
                continue
            if line.startswith("#CHROM"):
                dst.write(f"##contig=<ID={CONTIG},length={END - START}>\n")
                dst.write("##dbtools_demo=<Description=\"positions shifted by -61000000 from hs37d5 chromosome 20\">\n")
            if line.startswith("#"):
                dst.write(line)
                continue
            f = line.split("\t")
            if f[0] == "20" and START < int(f[1]) <= END:
                f[0], f[1] = CONTIG, str(int(f[1]) - START)
                dst.write("\t".join(f))

    fold_a = next((SHARED / "encode").glob("GABPA_*_AC.seq.gz"))
    with gzip.open(fold_a, "rt") as fh, open(OUT / "gabpa_A.seq", "w") as dst:
        for i, line in enumerate(fh):
            if i > 500:  # header + the paper's fold A (first 500 peaks)
                break
            dst.write(line)
    with gzip.open(next((SHARED / "encode").glob("GABPA_*_B.seq.gz")), "rt") as fh, \
            open(OUT / "gabpa_B.seq", "w") as dst:
        dst.write(fh.read())

    src = next((SHARED / "encode").glob("GABPA_*_B.seq.gz"))
    with gzip.open(src, "rt") as fh, open(OUT / "gabpa_test.seq", "w") as seqs, \
            open(OUT / "gabpa_test.labels", "w") as labels:
        next(fh)
        for line in fh:
            _, _, seq, bound = line.rstrip("\n").split("\t")
            seqs.write(seq + "\n")
            labels.write(bound + "\n")

    # two original DeepBind models as the release ships them, for `dbtools import-deepbind`
    src = SHARED / "deepbind_db"
    (OUT / "deepbind" / "params").mkdir(parents=True, exist_ok=True)
    with open(src / "db.tsv", encoding="utf-8") as fh, open(OUT / "deepbind" / "db.tsv", "w", encoding="utf-8") as dst:
        for line in fh:
            if line.startswith(("#", "ID\t")) or line.split("\t", 1)[0] in DEEPBIND_IDS:
                dst.write(line)
    for model in DEEPBIND_IDS:
        (OUT / "deepbind" / "params" / f"{model}.txt").write_bytes((src / "params" / f"{model}.txt").read_bytes())


if __name__ == "__main__":
    main()
