"""`dbtools vareffect` on real VCFs: every record kept in order, scores equal to `dbtools score`
of windows built here independently, VCF/BGZF/BCF outputs readable by cyvcf2 and pysam, and
one clear line for each kind of bad input."""

from __future__ import annotations

import functools
import gzip
import io
import os
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import cyvcf2
import numpy as np
import pysam
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from conftest import ROOT, shared_path
from test_cli import assert_one_line_error, dbtools

DATA = ROOT / "tests" / "data" / "vcf"
# four architectures: m=36 two-strand; m=16 average pooling + hidden layer, one strand;
# m=24 average pooling two-strand; m=20 max pooling two-strand
MODELS = ["D00328.018", "D00084.001", "D00001.001", "D00290.003"]
W = 101


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """One torch thread here: these checks are small, and on a machine shared with other
    processes two spinning threads are many times slower than one."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def genome():
    from dbtools.io.genome import Genome

    return Genome(shared_path("genome", "20.fa.gz"))


@pytest.fixture(scope="module")
def models_engine(bank):
    from dbtools.engine.bank_engine import BankEngine

    return BankEngine(bank.subset([bank.ids.index(i) for i in MODELS]), "cpu")


def score(engine, windows: list[str]) -> np.ndarray:
    from dbtools.io.encode import encode
    from dbtools.score import ScoreOptions, score_codes

    return score_codes(engine, [encode(w) for w in windows], ScoreOptions(), batch_size=4096)


@dataclass
class Result:
    returncode: int
    stdout: str
    stderr: str


@pytest.fixture
def vareffect(capsys, monkeypatch):
    """Run `dbtools vareffect ARGS` in this process (as the console script does, without paying
    for a new interpreter and torch import each time); stdin may be text or bytes."""
    from dbtools_cli.main import run

    def call(*args: str, stdin: str | bytes | None = None) -> Result:
        monkeypatch.setattr(sys, "argv", ["dbtools", "vareffect", *args, "--device", "cpu"])
        if stdin is not None:
            data = stdin.encode() if isinstance(stdin, str) else stdin
            monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BufferedReader(io.BytesIO(data))))
        capsys.readouterr()
        try:
            run()
            code = 0
        except SystemExit as e:
            code = e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
        out = capsys.readouterr()
        return Result(code, out.out, out.err)

    return call


def snv_window(genome, pos: int, base: str) -> str:
    """The 101-bp genome window with the SNV's base at index 50 (its middle)."""
    seq = list(genome.fetch("20", pos - 1 - 50, pos + 50).upper())
    seq[50] = base
    return "".join(seq)


def allele_window(genome, contig: str, pos: int, ref_len: int, allele: str) -> str:
    """An allele in the middle of W bp: floor((W - n) / 2) bases before it, the rest after."""
    n = len(allele)
    if n >= W:
        return allele[(n - W) // 2:(n - W) // 2 + W]
    before = (W - n) // 2
    after = W - n - before
    start = pos - 1
    return genome.fetch(contig, start - before, start) + allele + genome.fetch(contig, start + ref_len,
                                                                                start + ref_len + after)


def info_values(rec: cyvcf2.Variant, model: str) -> tuple[float, list[float], list[float]]:
    key = "DBT_" + model.replace(".", "_")
    alt, diff = rec.INFO.get(key + "_ALT"), rec.INFO.get(key + "_DIFF")
    as_list = (lambda v: list(v) if isinstance(v, tuple) else [v])
    return rec.INFO.get(key + "_REF"), as_list(alt), as_list(diff)


def records(path: Path) -> list[tuple[str, int, str, str]]:
    opener = gzip.open if str(path).endswith(".gz") else open
    with opener(path, "rt") as fh:
        return [tuple(ln.split("\t")[:4]) for ln in fh if not ln.startswith("#")]


def test_real_snvs_round_trip_bgzip_tabix(tmp_path, genome, models_engine, vareffect):
    """A slice of the 5,139 real SNVs (every 10th record and all 9 with a wrong REF) -> .vcf.gz + .tbi."""
    src = shared_path("vcf", "deepfind_derived_promoter_snvs_chr20_b37.vcf")
    lines = src.read_text().splitlines(keepends=True)
    head = [ln for ln in lines if ln.startswith("#")]
    body = [ln for ln in lines if not ln.startswith("#")]
    keep = [ln for i, ln in enumerate(body) if i % 10 == 0 or "REFMISMATCH" in ln]
    assert sum("REFMISMATCH" in ln for ln in keep) == 9
    vcf = tmp_path / "snvs.vcf"
    vcf.write_text("".join(head + keep))
    out = tmp_path / "snvs.dbt.vcf.gz"
    proc = vareffect(str(vcf), "-g", str(genome.path), "-m", ",".join(MODELS), "-o", str(out))
    assert proc.returncode == 0, proc.stderr
    assert (tmp_path / "snvs.dbt.vcf.gz.tbi").exists()
    assert f"{len(keep):,} records, {len(keep):,} annotated" in proc.stderr
    assert "9 REF mismatches" in proc.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["snvs.dbt.vcf.gz", "snvs.dbt.vcf.gz.tbi", "snvs.vcf"]

    got = list(cyvcf2.VCF(str(out)))
    assert [(r.CHROM, str(r.POS), r.ID, r.REF) for r in got] == [tuple(ln.split("\t")[:4]) for ln in keep]
    flagged = [r.ID for r in got if r.INFO.get("DBT_REFMISMATCH")]
    assert flagged == [ln.split("\t")[2] for ln in keep if "REFMISMATCH" in ln]
    # windows from the genome's bases (a wrong REF is replaced by the genome's base)
    ref_w = [snv_window(genome, r.POS, genome.fetch("20", r.POS - 1, r.POS).upper()) for r in got]
    alt_w = [snv_window(genome, r.POS, r.ALT[0]) for r in got]
    expected = score(models_engine, ref_w + alt_w)
    ref_e, alt_e = expected[:len(got)], expected[len(got):]
    for j, model in enumerate(MODELS):
        values = [info_values(r, model) for r in got]
        np.testing.assert_allclose([v[0] for v in values], ref_e[:, j], atol=1e-5)
        np.testing.assert_allclose([v[1][0] for v in values], alt_e[:, j], atol=1e-5)
        np.testing.assert_allclose([v[2][0] for v in values], alt_e[:, j] - ref_e[:, j], atol=2e-5)
    # pysam reads it too, and the tabix index answers a region query
    with pysam.VariantFile(str(out)) as vf:
        assert "dbtools_version" in str(vf.header) and "##dbtools_command=dbtools vareffect" in str(vf.header)
        assert f"DBT_{MODELS[0].replace('.', '_')}_DIFF" in vf.header.info
        region = list(vf.fetch("20", got[10].POS - 1, got[10].POS))
        assert [r.pos for r in region] == [got[10].POS]


def test_real_indels_round_trip_bcf(tmp_path, genome, models_engine, vareffect):
    """The 194 real 1000 Genomes indels -> BCF; windows of REF and ALT each W bp, allele centred."""
    src = shared_path("vcf", "vt_chr20_b37_indels_1000G.vcf.gz")
    out = tmp_path / "indels.bcf"
    proc = vareffect(str(src), "-g", str(genome.path), "-m", ",".join(MODELS), "-o", str(out))
    assert proc.returncode == 0, proc.stderr
    want = records(src)
    got = list(cyvcf2.VCF(str(out)))
    assert [(r.CHROM, str(r.POS), r.ID or ".", r.REF) for r in got] == want
    assert [r.pos for r in pysam.VariantFile(str(out))] == [int(w[1]) for w in want]
    assert any(len(r.REF) > 1 for r in got) and any(len(r.ALT[0]) > 1 for r in got)
    ref_w, alt_w = [], []
    for r in got:
        gref = genome.fetch("20", r.POS - 1, r.POS - 1 + len(r.REF)).upper()
        ref_w.append(allele_window(genome, "20", r.POS, len(r.REF), gref))
        alt_w.append(allele_window(genome, "20", r.POS, len(r.REF), r.ALT[0]))
    assert {len(w) for w in ref_w + alt_w} == {W}
    expected = score(models_engine, ref_w + alt_w)
    n = len(got)
    for j, model in enumerate(MODELS):
        values = [info_values(r, model) for r in got]
        np.testing.assert_allclose([v[0] for v in values], expected[:n, j], atol=1e-5)
        np.testing.assert_allclose([v[1][0] for v in values], expected[n:, j], atol=1e-5)
    # the same windows through the `dbtools score` command
    fa = tmp_path / "windows.fa"
    pick = list(range(0, n, 20))
    fa.write_text("".join(f">r{i}\n{ref_w[i]}\n>a{i}\n{alt_w[i]}\n" for i in pick))
    cli = dbtools("score", str(fa), "-m", ",".join(MODELS), "--device", "cpu",
                  env=dict(os.environ, OMP_NUM_THREADS="1"))
    assert cli.returncode == 0, cli.stderr
    rows = [list(map(float, ln.split("\t"))) for ln in cli.stdout.splitlines()[1:]]
    for k, i in enumerate(pick):
        ref_v, alt_v, _ = zip(*(info_values(got[i], m) for m in MODELS))
        np.testing.assert_allclose(ref_v, rows[2 * k], atol=2e-6)
        np.testing.assert_allclose([a[0] for a in alt_v], rows[2 * k + 1], atol=2e-6)


def test_multiallelic_symbolic_missing_contig_csq(tmp_path, genome, models_engine, vareffect):
    """Every ALT of a record scored natively; <DEL>, '*', '.' and an unknown contig pass through."""
    src = DATA / "mixed_chr20.vcf"
    out = tmp_path / "mixed.vcf"
    proc = vareffect(str(src), "-g", str(genome.path), "-m", ",".join(MODELS), "--info-layout", "csq",
                     "-o", str(out))
    assert proc.returncode == 0, proc.stderr
    assert "10 records, 6 annotated; 8 ALT alleles scored" in proc.stderr
    assert "contigs not in the genome: 21 (1)" in proc.stderr
    assert "2 symbolic (<...>)" in proc.stderr and "1 '*' (deletion spanning)" in proc.stderr
    vf = cyvcf2.VCF(str(out))
    desc = next(h for h in vf.header_iter() if h.type == "INFO" and h["ID"] == "DBT_CSQ")["Description"]
    assert desc.strip('"').endswith("Format: Allele|Model|Ref|Alt|Diff|Consequence")
    got = list(vf)
    assert [(r.CHROM, str(r.POS)) for r in got] == [w[:2] for w in records(src)]
    by_id = {r.ID or f"{r.CHROM}:{r.POS}": r for r in got}

    def entries(rec):
        csq = rec.INFO.get("DBT_CSQ")
        return [] if csq is None else [e.split("|") for e in csq.split(",")]

    multi = entries(by_id["deepfind_derived_100906"])
    assert [(e[0], e[1], e[5]) for e in multi] == [(a, m, "") for a in "GCT" for m in MODELS]
    windows = [allele_window(genome, "20", 121412, 1, b) for b in "AGCT"]
    expected = score(models_engine, windows)
    for k, e in enumerate(multi):
        a, j = divmod(k, len(MODELS))
        assert float(e[2]) == pytest.approx(expected[0, j], abs=1e-5)
        assert float(e[3]) == pytest.approx(expected[1 + a, j], abs=1e-5)
        assert float(e[4]) == pytest.approx(expected[1 + a, j] - expected[0, j], abs=2e-5)
    assert by_id["deepfind_derived_100928"].INFO.get("DBT_REFMISMATCH")
    assert {e[0] for e in entries(by_id["20:421808"])} == {"ACCA"}  # <DEL> left out
    assert {e[0] for e in entries(by_id["20:1600125"])} == {"G"}  # '*' left out
    for key in ("20:1728298", "20:2171402", "beyond_contig", "21:9411300"):
        assert entries(by_id[key]) == [], key
    assert by_id["21:9411300"].INFO.get("GENE") == "none"  # passed through untouched
    # a REF longer than W: cut to its central W bases; past the contig's end: N padding
    long_del = by_id["long_del"]
    past = by_id["past_end"]
    w_long = [allele_window(genome, "20", long_del.POS, len(long_del.REF), long_del.REF),
              allele_window(genome, "20", long_del.POS, len(long_del.REF), "T")]
    w_past = [genome.fetch("20", past.POS - 51, past.POS + 50),
              allele_window(genome, "20", past.POS, 1, "A")]
    assert w_past[1].endswith("N" * 30) and w_past[1][50] == "A"
    expected = score(models_engine, w_long + w_past)
    for rec, rows in ((long_del, expected[:2]), (past, expected[2:])):
        e = entries(rec)
        np.testing.assert_allclose([float(x[2]) for x in e], rows[0], atol=1e-5)
        np.testing.assert_allclose([float(x[3]) for x in e], rows[1], atol=1e-5)


def test_keys_layout_missing_values_for_symbolic(tmp_path, genome, vareffect):
    """Number=A keys: a symbolic allele gets '.', readable by pysam as None."""
    out = tmp_path / "mixed.vcf.gz"
    proc = vareffect(str(DATA / "mixed_chr20.vcf"), "-g", str(genome.path), "-m", "D00328.018", "-o", str(out))
    assert proc.returncode == 0, proc.stderr
    with pysam.VariantFile(str(out)) as vf:
        assert vf.header.info["DBT_D00328_018_ALT"].number == "A"
        assert vf.header.info["DBT_D00328_018_REF"].number == 1
        recs = {r.pos: r for r in vf}
    alt = recs[421808].info["DBT_D00328_018_ALT"]
    assert len(alt) == 2 and alt[0] is not None and alt[1] is None
    assert len(recs[121412].info["DBT_D00328_018_DIFF"]) == 3
    assert "DBT_D00328_018_REF" not in recs[1728298].info


def test_chr_prefix_stdin_to_stdout_matches_file_run(tmp_path, genome, vareffect):
    """`chr20` records on a genome naming `20`, VCF on stdin, VCF on stdout; BCF on stdin too."""
    text = (DATA / "snvs_chr_prefix.vcf").read_text()
    proc = vareffect("-", "-g", str(genome.path), "-m", "D00328.018,D00084.001", "-o", "-", stdin=text)
    assert proc.returncode == 0, proc.stderr
    assert "5 records, 5 annotated" in proc.stderr
    lines = [ln for ln in proc.stdout.splitlines() if not ln.startswith("#")]
    assert [ln.split("\t")[:5] for ln in lines] == [ln.split("\t")[:5] for ln in text.splitlines()
                                                    if not ln.startswith("#")]
    assert all(ln.startswith("chr20\t") for ln in lines)
    # the same records on contig 20 from the original file give the same values
    plain = tmp_path / "plain.vcf"
    plain.write_text(text.replace("chr20", "20"))
    ref = vareffect(str(plain), "-g", str(genome.path), "-m", "D00328.018,D00084.001", "-o", "-")
    assert [ln.split("\t")[7] for ln in ref.stdout.splitlines() if not ln.startswith("#")] == \
        [ln.split("\t")[7] for ln in lines]
    # a BCF arrives on stdin as bytes
    bcf = tmp_path / "in.bcf"
    assert vareffect(str(plain), "-g", str(genome.path), "-m", "D00328.018", "-o", str(bcf)).returncode == 0
    again = vareffect("-", "-g", str(genome.path), "-m", "D00328.018,D00084.001", stdin=bcf.read_bytes())
    assert again.returncode == 0, again.stderr
    out_lines = [ln for ln in again.stdout.splitlines() if not ln.startswith("#")]
    assert [ln.split("\t")[7] for ln in out_lines] == [ln.split("\t")[7] for ln in lines]


def test_reannotating_replaces_keys(tmp_path, genome, vareffect):
    once = tmp_path / "once.vcf"
    args = ["-g", str(genome.path), "-m", "D00328.018"]
    assert vareffect(str(DATA / "snvs_chr_prefix.vcf"), *args, "-o", str(once)).returncode == 0
    twice = vareffect(str(once), *args, "-o", "-")
    assert twice.returncode == 0, twice.stderr
    assert twice.stdout.count("##INFO=<ID=DBT_D00328_018_DIFF") == 1
    assert twice.stdout.count("##dbtools_version") == 1
    body = [ln for ln in twice.stdout.splitlines() if not ln.startswith("#")]
    assert all(ln.count("DBT_D00328_018_DIFF=") == 1 for ln in body)
    assert body == [ln for ln in once.read_text().splitlines() if not ln.startswith("#")]


def test_ref_mismatch_skip_and_error(tmp_path, genome, vareffect):
    src = DATA / "mixed_chr20.vcf"
    skip = vareffect(str(src), "-g", str(genome.path), "-m", "D00328.018", "--ref-mismatch", "skip", "-o", "-")
    assert skip.returncode == 0, skip.stderr
    line = next(ln for ln in skip.stdout.splitlines() if "deepfind_derived_100928" in ln)
    assert line.split("\t")[7] == "GENE=DEFB129;DBT_REFMISMATCH"
    assert "1 REF mismatch (--ref-mismatch skip)" in skip.stderr
    out = tmp_path / "never.vcf"
    err = vareffect(str(src), "-g", str(genome.path), "-m", "D00328.018", "--ref-mismatch", "error", "-o", str(out))
    assert_one_line_error(err, 1, "mixed_chr20.vcf line 11", "20:206596", "REF 'T'", "'C'")
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("bad, fragments, out", [
    ("20\tabc\t.\tA\tG\t.\tPASS\t.", ["line 11", "POS 'abc'"], "out.vcf"),
    ("20\t121500\t.\tA", ["line 11", "8 tab-separated columns"], "out.vcf.gz"),
    ("20\t121500\t.\tA+\tG\t.\tPASS\t.", ["line 11", "REF 'A+'"], "out.bcf"),
], ids=["pos", "columns", "ref"])
def test_malformed_line_names_the_line_and_leaves_nothing(tmp_path, genome, bad, fragments, out, vareffect):
    lines = (DATA / "mixed_chr20.vcf").read_text().splitlines()
    vcf = tmp_path / "bad.vcf"
    vcf.write_text("\n".join(lines[:10] + [bad] + lines[10:]) + "\n")  # after a good record
    proc = vareffect(str(vcf), "-g", str(genome.path), "-m", "D00328.018", "-o", str(tmp_path / out),
                     "--batch-size", "1")
    assert_one_line_error(proc, 1, "bad.vcf", *fragments)
    assert [p.name for p in tmp_path.iterdir()] == ["bad.vcf"]


def test_vcf_without_header(tmp_path, genome, vareffect):
    body = [ln for ln in (DATA / "mixed_chr20.vcf").read_text().splitlines() if not ln.startswith("#")]
    vcf = tmp_path / "headless.vcf"
    vcf.write_text("\n".join(body) + "\n")
    proc = vareffect(str(vcf), "-g", str(genome.path), "-m", "D00328.018", "-o", str(tmp_path / "o.vcf"))
    assert_one_line_error(proc, 1, "headless.vcf line 1", "##fileformat")
    no_chrom = tmp_path / "nochrom.vcf"
    no_chrom.write_text("##fileformat=VCFv4.2\n" + "\n".join(body) + "\n")
    assert_one_line_error(vareffect(str(no_chrom), "-g", str(genome.path), "-m", "D00328.018"), 1,
                          "nochrom.vcf line 2", "#CHROM")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["headless.vcf", "nochrom.vcf"]


def test_bad_genome(tmp_path, vareffect):
    vcf = str(DATA / "mixed_chr20.vcf")
    missing = vareffect(vcf, "-g", str(tmp_path / "none.fa"), "-m", "D00328.018")
    assert_one_line_error(missing, 1, "none.fa", "not found")
    plain_gz = tmp_path / "plain.fa.gz"  # gzip, not BGZF: cannot be indexed
    with gzip.open(plain_gz, "wt") as fh:
        fh.write(">20\n" + "ACGT" * 1000 + "\n")
    assert_one_line_error(vareffect(vcf, "-g", str(plain_gz), "-m", "D00328.018"), 1, "plain.fa.gz", "BGZF")


def test_unwritable_output_and_no_matching_contig(tmp_path, genome, vareffect):
    vcf = str(DATA / "mixed_chr20.vcf")
    proc = vareffect(vcf, "-g", str(genome.path), "-m", "D00328.018", "-o", str(tmp_path / "no" / "such" / "o.vcf"))
    assert_one_line_error(proc, 1, "o.vcf", "does not exist")
    other = tmp_path / "chr21.vcf"
    text = (DATA / "mixed_chr20.vcf").read_text().splitlines()
    other.write_text("\n".join([ln for ln in text if ln.startswith("#")] + [text[-1]]) + "\n")
    out = tmp_path / "o.vcf.gz"
    proc = vareffect(str(other), "-g", str(genome.path), "-m", "D00328.018", "-o", str(out))
    assert_one_line_error(proc, 1, "chr21.vcf", "no record on a contig", "21")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["chr21.vcf"]


def test_info_keys_windows_and_layout_choice():
    from dbtools.vareffect.run import centred_window
    from dbtools.io.vcf_write import choose_layout, info_key, model_keys

    assert info_key("D00328.003") == "DBT_D00328_003"
    assert model_keys(["a.b", "a_b", "a-b"]) == ["DBT_a_b", "DBT_a_b_2", "DBT_a_b_3"]
    key = re.compile(r"^[A-Za-z_][0-9A-Za-z_.]*$")
    assert all(key.match(k) for k in model_keys(["D00328.003", "my model:1", "9x"]))
    assert choose_layout("auto", 16) == "keys" and choose_layout("auto", 17) == "csq"
    genome = "ACGTACGTAC"  # fetch(a, b) of a toy contig, N outside
    fetch = (lambda a, b: "".join(genome[i] if 0 <= i < len(genome) else "N" for i in range(a, b)))
    assert centred_window(fetch, 4, 1, "T", 5) == "GTTCG"  # 2 before, allele, 2 after
    assert centred_window(fetch, 4, 1, "TT", 6) == "GTTTCG"  # even: 2 before, 2 after
    assert centred_window(fetch, 0, 1, "C", 5) == "NNCCG"  # N before the contig's start
    assert centred_window(fetch, 4, 3, "A", 5) == "GTATA"  # a deletion: the bases after REF follow
    assert centred_window(fetch, 4, 1, "ACGTACG", 5) == "CGTAC"  # longer than W: its middle


@pytest.mark.parametrize("options", [dict(), dict(average=True), dict(window_size=20), dict(window_size=150),
                                     dict(window_size=60, average=True)],
                         ids=["default", "average", "window20", "whole", "window60-average"])
@pytest.mark.parametrize("kernel", [True, False])
def test_pair_scores_equal_score_codes_on_real_windows(genome, models_engine, options, kernel, monkeypatch):
    """Taking an ALT's windows that miss its change from the REF pass changes no score:
    real SNV, MNP, indel and unchanged alleles, under every scoring option. With the fused CPU
    kernel every window is scored instead; without it (as on a GPU) the REF's windows are shared."""
    from dbtools.io.encode import encode
    from dbtools.engine.bank_engine import BankEngine

    monkeypatch.setenv("DBTOOLS_NATIVE", "1")  # the kernel, also on CPUs that do not use it by default
    if not kernel:
        monkeypatch.setattr(BankEngine, "fused_scores", lambda self, g: False)
    from dbtools.vareffect.pairs import score_pairs
    from dbtools.score import ScoreOptions, score_codes

    pos = [121412, 206603, 421808, 1600125, 62960001]
    ref = [allele_window(genome, "20", p, 1, genome.fetch("20", p - 1, p)) for p in pos]
    alt = [allele_window(genome, "20", pos[0], 1, "G"), allele_window(genome, "20", pos[0], 1, "T"),
           allele_window(genome, "20", pos[1], 1, "A"),
           allele_window(genome, "20", pos[2], 1, "ACCA"),  # an insertion: the windows shift
           ref[3][:40] + "TT" + ref[3][42:],  # two changed bases off centre
           ref[4]]  # unchanged
    owner = np.array([0, 0, 1, 2, 3, 4])
    codes_r = np.stack([encode(s) for s in ref])
    codes_a = np.stack([encode(s) for s in alt])
    opts = ScoreOptions(**options)
    r, a = score_pairs(models_engine, codes_r, codes_a, owner, opts)
    plain = score_codes(models_engine, list(codes_r) + list(codes_a), opts)
    np.testing.assert_allclose(r, plain[:len(ref)], atol=2e-6)
    np.testing.assert_allclose(a, plain[len(ref):], atol=2e-6)
    if not opts.average:  # a max over the same per-window values: exactly equal
        np.testing.assert_array_equal(a[5], r[4])


def test_unsorted_input_gets_no_index(tmp_path, genome, vareffect):
    lines = (DATA / "snvs_chr_prefix.vcf").read_text().splitlines()
    vcf = tmp_path / "unsorted.vcf"
    vcf.write_text("\n".join(lines[:5] + [lines[6], lines[5]] + lines[7:]) + "\n")
    out = tmp_path / "o.vcf.gz"
    proc = vareffect(str(vcf), "-g", str(genome.path), "-m", "D00328.018", "-o", str(out))
    assert proc.returncode == 0, proc.stderr
    assert "no tabix index" in proc.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["o.vcf.gz", "unsorted.vcf"]
    written = [ln.split("\t")[1] for ln in vcf.read_text().splitlines() if not ln.startswith("#")]
    assert [str(r.POS) for r in cyvcf2.VCF(str(out))] == written  # input order kept


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_pair_scores_property_on_real_loci(genome, models_engine, data, monkeypatch):
    """Random real loci of the SNV file, random substitutions/indels at random offsets, random options:
    the pairs path (REF windows shared, as without the fused CPU kernel) equals scoring every window."""
    from dbtools.io.encode import encode
    from dbtools.engine.bank_engine import BankEngine

    monkeypatch.setattr(BankEngine, "fused_scores", lambda self, g: False)
    from dbtools.vareffect.pairs import score_pairs
    from dbtools.score import ScoreOptions, score_codes

    pos = data.draw(st.sampled_from(_snv_positions()))
    ref = genome.fetch("20", pos - 51, pos + 50).upper()
    alts = []
    for _ in range(data.draw(st.integers(1, 3))):
        at = data.draw(st.integers(0, W - 1))
        new = data.draw(st.text("ACGTN", min_size=0, max_size=3))
        cut = data.draw(st.integers(0, 3))
        alts.append((ref[:at] + new + ref[at + cut:] + ref)[:W])  # substitution, insertion or deletion
    opts = ScoreOptions(window_size=data.draw(st.sampled_from([None, 12, 30, 101])), average=data.draw(st.booleans()))
    codes_a = np.stack([encode(a) for a in alts])
    r, a = score_pairs(models_engine, encode(ref)[None], codes_a, np.zeros(len(alts), dtype=np.int64), opts)
    plain = score_codes(models_engine, [encode(ref)] + list(codes_a), opts)
    np.testing.assert_allclose(r, plain[:1], atol=2e-6)
    np.testing.assert_allclose(a, plain[1:], atol=2e-6)


@functools.cache
def _snv_positions() -> list[int]:
    src = shared_path("vcf", "deepfind_derived_promoter_snvs_chr20_b37.vcf")
    return [int(ln.split("\t")[1]) for ln in src.read_text().splitlines() if not ln.startswith("#")]


@pytest.mark.skipif(shutil.which("bcftools") is None, reason="bcftools not installed")
def test_bcftools_reads_both_layouts(tmp_path, genome, vareffect):
    src = str(DATA / "mixed_chr20.vcf")
    keys, csq = tmp_path / "keys.vcf.gz", tmp_path / "csq.bcf"
    assert vareffect(src, "-g", str(genome.path), "-m", "D00328.018", "-o", str(keys)).returncode == 0
    assert vareffect(src, "-g", str(genome.path), "-m", "D00328.018", "--info-layout", "csq",
                     "-o", str(csq)).returncode == 0
    run = (lambda *a: subprocess.run(["bcftools", *a], capture_output=True, text=True, check=True).stdout)
    assert len(run("view", "-H", str(keys)).splitlines()) == 10
    diffs = run("query", "-i", "INFO/DBT_D00328_018_DIFF != 0", "-f", "%POS\\n", str(keys)).split()
    assert "121412" in diffs
    split = run("+split-vep", "-a", "DBT_CSQ", "-d", "-f", "%POS\\t%Allele\\t%Model\\t%Diff\\n", str(csq))
    rows = [ln.split("\t") for ln in split.splitlines()]
    assert [r[1] for r in rows if r[0] == "121412"] == ["G", "C", "T"]
