from __future__ import annotations

import gzip

import numpy as np
import pytest

from conftest import shared_path
from dbtools.train.datasets import (balance_weights, cap_negatives, detect_format, parse_rows, read_dataset,
                              shuffles_per_positive, split_by_origin)
from dbtools.errors import DbtoolsError, UsageError


def test_rows_are_one_based_inclusive():
    assert parse_rows("1:500") == slice(0, 500)
    assert parse_rows("501:") == slice(500, None)
    assert parse_rows(":3") == slice(0, 3)
    for bad in ("0:5", "5:1", "a:b"):
        with pytest.raises(UsageError):
            parse_rows(bad)


def test_encode_fold_a_with_shuffled_negatives():
    path = next(shared_path("encode").glob("GABPA_*_AC.seq.gz"))
    ds = read_dataset(str(path), rows="1:500", seed=3, shuffles=4)
    assert detect_format(str(path)) == "deepbind"
    assert ds.task == "classification" and len(ds) == 500 + 4 * 500
    assert ds.targets[:500].tolist() == [1.0] * 500 and ds.targets[500:].tolist() == [0.0] * 2000
    with gzip.open(path, "rt") as fh:
        next(fh)
        first = fh.readline().split("\t")[2]
    assert ds.sequences[0] == first
    for k in range(4):  # the first positive's shuffles come first, each keeps its dinucleotides
        shuffled = ds.sequences[500 + k]
        assert shuffled != first.upper() and sorted(shuffled) == sorted(first.upper())
        assert sorted(map("".join, zip(shuffled, shuffled[1:]))) == sorted(map("".join, zip(first.upper(), first[1:].upper())))
    assert ds.origin[:500].tolist() == list(range(500)) and ds.origin[500:504].tolist() == [0] * 4
    assert ds.sources[0]["sha256"] and ds.sources[1]["seed"] == 3 and ds.sources[1]["per_positive"] == 4
    again = read_dataset(str(path), rows="1:500", seed=3, shuffles=4)
    assert again.sequences == ds.sequences


def test_default_shuffles_fill_about_fifty_thousand_rows():
    assert shuffles_per_positive(500) == 100 and shuffles_per_positive(5000) == 10
    assert shuffles_per_positive(10) == 100 and shuffles_per_positive(10 ** 6) == 1


def test_folds_and_weights_keep_each_peak_with_its_shuffles():
    # 3 positives with 2 shuffles each, then a negative given by the user (its own origin)
    targets = np.array([1, 1, 1, 0, 0, 0, 0, 0, 0, 0], dtype=np.float32)
    origin = np.array([0, 1, 2, 0, 0, 1, 1, 2, 2, 9])
    np.testing.assert_array_equal(balance_weights(targets, origin), [2, 2, 2, 1, 1, 1, 1, 1, 1, 1])
    parts = split_by_origin(origin, 2, np.random.default_rng(0))
    assert sorted(np.concatenate(parts).tolist()) == list(range(10))
    for rows in parts:
        assert set(origin[rows]).isdisjoint(set(origin[np.setdiff1d(np.arange(10), rows)]))
    kept = cap_negatives(np.arange(10), targets, origin, 1)
    assert kept.tolist() == [0, 1, 2, 3, 5, 7, 9]  # the first shuffle of each peak, and the user's negative


def test_tsv_with_and_without_header_regression(tmp_path):
    a = tmp_path / "a.tsv"
    a.write_text("sequence\tintensity\nACGT\t1.5\nTTGA\t-2\n")
    b = tmp_path / "b.tsv"
    b.write_text("ACGT\t1.5\nTTGA\t-2\n")
    for p in (a, b):
        ds = read_dataset(str(p))
        assert ds.task == "regression" and ds.sequences == ["ACGT", "TTGA"]
        np.testing.assert_array_equal(ds.targets, [1.5, -2])


def test_fasta_positives_and_negatives(tmp_path):
    pos, neg = tmp_path / "pos.fa", tmp_path / "neg.fa"
    pos.write_text(">p1\nACGTAC\n>p2\nGGGTTT\n")
    neg.write_text(">n1\nTTTTTT\n")
    ds = read_dataset(str(pos), negatives=str(neg))
    assert ds.sequences == ["ACGTAC", "GGGTTT", "TTTTTT"] and ds.targets.tolist() == [1, 1, 0]


def test_bed_peaks_on_the_real_genome(tmp_path):
    genome = shared_path("genome", "20.fa.gz")
    peaks = shared_path("peaks", "Gm12878.CTCF.top500.w200.bed").read_text().splitlines()
    bed = tmp_path / "chr20.bed"
    bed.write_text("".join(ln + "\n" for ln in peaks if ln.startswith("chr20\t")))
    ds = read_dataset(str(bed), genome=str(genome), length=101, shuffles=2)
    n = len(ds) // 3
    assert n == 23 and all(len(s) == 101 for s in ds.sequences)  # 'chr20' in the BED is '20' in the genome
    assert ds.targets.tolist() == [1.0] * n + [0.0] * 2 * n
    with pytest.raises(DbtoolsError, match="contig 'chr11' is not in"):
        read_dataset(str(shared_path("peaks", "Gm12878.CTCF.top500.w200.bed")), genome=str(genome))


@pytest.mark.parametrize("content,message", [
    ("", "empty file"),
    ("ACGT\tx1\nACGT\tnan\n", "is not finite"),
    ("ACGT\t1\nACGT\tinf\n", "is not finite"),
    ("ACGT\t1\nACXT\t0\n", "line 2: invalid character 'X'"),
    ("ACGT\t1\tzz\n", "cannot tell the format"),
])
def test_bad_tables(tmp_path, content, message):
    p = tmp_path / "bad.tsv"
    p.write_text(content)
    with pytest.raises(DbtoolsError, match=message):
        read_dataset(str(p))


def test_classification_labels_must_be_binary(tmp_path):
    p = tmp_path / "x.tsv"
    p.write_text("ACGT\t1\nACGA\t2\n")
    with pytest.raises(DbtoolsError, match="labels must be 0 or 1"):
        read_dataset(str(p), task="classification")


def test_flank_negatives_come_from_the_genome_beside_each_peak(tmp_path):
    import pysam

    genome = shared_path("genome", "20.fa.gz")
    peaks = shared_path("peaks", "Gm12878.CTCF.top500.w200.bed").read_text().splitlines()
    bed = tmp_path / "chr20.bed"
    bed.write_text("".join(ln + "\n" for ln in peaks if ln.startswith("chr20\t")))
    ds = read_dataset(str(bed), genome=str(genome), length=101, negatives_from="flank", seed=1)
    n_pos = int((ds.targets == 1).sum())
    negs = ds.sequences[n_pos:]
    assert n_pos == 23 and 0 < len(negs) <= n_pos and all(len(s) == 101 for s in negs)
    fa = pysam.FastaFile(str(genome))
    for seq in negs[:5]:
        assert seq not in ds.sequences[:n_pos]
    for line, neg in zip(bed.read_text().splitlines(), negs):
        mid = sum(int(v) for v in line.split("\t")[1:3]) // 2
        start = mid - 50
        assert neg in (fa.fetch("20", start - 1000, start - 899), fa.fetch("20", start + 1000, start + 1101))
        break
    with pytest.raises(UsageError, match="flank needs BED"):
        read_dataset(str(next(shared_path("encode").glob("GABPA_*_AC.seq.gz"))), rows="1:10",
                     negatives_from="flank")
