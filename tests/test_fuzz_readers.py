"""The readers on arbitrary bytes: each gives a result or a one-line DbtoolsError, never another
exception (2,000 examples a reader, derandomized so CI runs the same cases every time)."""

from __future__ import annotations

import gzip
import tempfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dbtools.bank.deepbind_import import parse_params
from dbtools.errors import DbtoolsError
from dbtools.io.regions import read_regions
from dbtools.io.sequences import read_sequences
from dbtools.io.vcf_read import open_vcf
from dbtools.train.datasets import read_dataset

EXAMPLES = settings(max_examples=2000, deadline=None, derandomize=True, database=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
FOLDER = Path(tempfile.mkdtemp(prefix="dbtools-fuzz-"))


def text_of(*tokens: bytes) -> st.SearchStrategy[bytes]:
    """Byte strings made of a format's own tokens mixed with arbitrary bytes, plain or gzipped
    (whole or cut short): what a damaged or hostile file of that format looks like."""
    pieces = st.lists(st.one_of(st.sampled_from(tokens + (b"\n", b"\t", b" ", b"\r\n", b"\x00", b"\xff")),
                                st.binary(max_size=6)), max_size=40).map(b"".join)
    return st.one_of(
        pieces,
        st.binary(max_size=200),
        st.tuples(pieces, st.integers(0, 400)).map(lambda t: gzip.compress(t[0], mtime=0)[:t[1] or None]),
    )


def check(read, data: bytes, name: str) -> None:
    """`read(path)` on a file holding `data` returns, or raises a one-line DbtoolsError."""
    path = FOLDER / name
    path.write_bytes(data)
    try:
        read(str(path))
    except DbtoolsError as e:
        message = str(e)
        assert message and "\n" not in message and "\r" not in message, repr(message)


SEQUENCE_TOKENS = (b">", b">rec", b"ACGT", b"acgu", b"N", b"NNNN", b"9", b"-", b"*")
BED_TOKENS = (b"chr1", b"20", b"0", b"100", b"-5", b"1e3", b"track", b"browser", b"#", b"name", b"99999999999999999999")
VCF_TOKENS = (b"##fileformat=VCFv4.2\n", b"##INFO=<ID=X,Number=1>\n", b"#CHROM\tPOS\tID\tREF\tALT\tQUAL\tFILTER\tINFO\n",
              b"c1\t", b"100\t", b"0\t", b"-1\t", b".\t", b"A\t", b"C,G\t", b"<DEL>\t", b"*", b"BCF\x02\x02")
PARAMS_TOKENS = (b"reverse_complement = 1\n", b"num_detectors = 1\n", b"detector_len = 1\n",
                 b"has_avg_pooling = 0\n", b"num_hidden = 0\n", b"detectors = 0.1,0.2,0.3,0.4\n",
                 b"thresholds = 0\n", b"weights1 = 1\n", b"biases1 = 0\n", b"weights2 = \n", b"biases2 = \n",
                 b"=", b",", b"nan", b"inf", b"1e999", b"-0", b"99999999999999999999", b"#")
TABLE_TOKENS = (b"FoldID\tEventID\tseq\tBound\n", b"A\tseq1\t", b"ACGTACGT", b"\t1", b"\t0", b"\t0.5", b"\tnan",
                b"\tinf", b">r\n", b"chr1\t10\t20")


def _consume(records) -> None:
    for _ in records:
        pass


@EXAMPLES
@given(text_of(*SEQUENCE_TOKENS))
def test_sequence_files(data):
    check(lambda p: _consume(read_sequences(p)), data, "s.seq")


@EXAMPLES
@given(text_of(*BED_TOKENS))
def test_bed_files(data):
    check(lambda p: _consume(read_regions(p)), data, "r.bed")


def _read_vcf(path: str) -> None:
    with open_vcf(path) as (_, records):
        _consume(records)


@EXAMPLES
@given(text_of(*VCF_TOKENS))
def test_vcf_files(data):
    check(_read_vcf, data, "v.vcf")


@EXAMPLES
@given(text_of(*PARAMS_TOKENS))
def test_deepbind_params_files(data):
    check(parse_params, data, "D1.txt")


@EXAMPLES
@given(text_of(*TABLE_TOKENS))
def test_training_tables(data):
    check(lambda p: read_dataset(p, shuffles=1), data, "d.tsv")


@pytest.fixture(scope="module", autouse=True)
def _cleanup():
    yield
    for f in FOLDER.iterdir():
        f.unlink()
    FOLDER.rmdir()
