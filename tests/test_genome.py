"""The genome reader: contig order and sizes, name reconciliation, N padding past the ends."""

from __future__ import annotations

import pytest

from dbtools.errors import DbtoolsError
from dbtools.io.genome import Genome


@pytest.fixture
def small(tmp_path):
    fa = tmp_path / "g.fa"
    fa.write_text(">chr2\nACGTACGTAC\n>chrM\nGGGG\n")
    return Genome(fa)  # builds g.fa.fai


def test_order_sizes_and_names(small):
    assert small.contigs == ["chr2", "chrM"]
    assert small.sizes == {"chr2": 10, "chrM": 4}
    assert small.resolve("2") == "chr2" and small.resolve("MT") == "chrM" and small.resolve("3") is None


def test_fetch_pads_with_n_past_either_end(small):
    assert small.fetch("chr2", 2, 6) == "GTAC"
    assert small.fetch("chr2", -3, 2) == "NNNAC"
    assert small.fetch("chr2", 8, 13) == "ACNNN"
    assert small.fetch("chr2", 12, 15) == "NNN"
    assert small.fetch("chrM", -2, 6) == "NNGGGGNN"


def test_unknown_contig_names_the_place_and_the_contigs(small):
    with pytest.raises(DbtoolsError, match=r"x.bed: line 3: contig '7' is not in .*chr2, chrM"):
        small.require("7", "x.bed: line 3")


def test_missing_or_unindexable_genome(tmp_path):
    with pytest.raises(DbtoolsError, match="not found"):
        Genome(tmp_path / "none.fa")
    gz = tmp_path / "plain.fa.gz"
    import gzip
    with gzip.open(gz, "wt") as fh:
        fh.write(">a\nACGT\n")
    with pytest.raises(DbtoolsError, match="BGZF"):
        Genome(gz)
