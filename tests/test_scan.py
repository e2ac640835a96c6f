"""`dbtools scan`: every window's value is `dbtools score` of its sequence; tracks, resume, shards, bad input."""

from __future__ import annotations

import gzip
import io
import json
import multiprocessing
from pathlib import Path

import numpy as np
import pyBigWig
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from conftest import shared_path
from dbtools.io.encode import encode
from dbtools.errors import DbtoolsError, UsageError
from dbtools.engine.bank_engine import BankEngine
from dbtools.io.genome import Genome
from dbtools.scan import writers
from dbtools.scan.run import ScanOptions, assemble, scan, track_offset
from dbtools.engine.windows import window_values
from dbtools.score import ScoreOptions, score_codes
from test_cli import assert_one_line_error, dbtools

CHR20_SIZE = 63_025_520
# edges of the N runs of chr20 (hs37d5): the contig starts and ends with 60 kbp of N
N_EDGES = [60000, 26319569, 29419569, 29653908, 29803908, 34897085, 34947085, 61091437, 62965520]
OPTIONS = [ScoreOptions(), ScoreOptions(window_size=101), ScoreOptions(average=True), ScoreOptions(window_size=24),
           ScoreOptions(window_size=30, average=True)]


def shapes(bank, n: int = 4) -> list[int]:
    """Published models of different shapes: detector length, pooling, hidden layer, strands."""
    seen, chosen, lengths = set(), [], set()
    for i, m in enumerate(bank.models):
        a = m.info.arch
        key = (a.avg_pooling, a.num_hidden, a.reverse_complement)
        if key not in seen and a.detector_len not in lengths:
            seen.add(key)
            lengths.add(a.detector_len)
            chosen.append(i)
    return chosen[:n]


@pytest.fixture(scope="module")
def genome():
    with Genome(shared_path("genome", "20.fa.gz")) as g:
        yield g


@pytest.fixture(scope="module")
def mixed(bank):
    sub = bank.subset(shapes(bank))
    return sub, BankEngine(sub, "cpu")


def direct(engine, codes: np.ndarray, window: int, step: int, opts: ScoreOptions) -> np.ndarray:
    """Each window scored on its own with `score_codes`, all-N windows NaN."""
    n = (len(codes) - window) // step + 1
    wins = [codes[k * step:k * step + window] for k in range(n)]
    out = score_codes(engine, wins, opts)
    out[[bool((w == 4).all()) for w in wins]] = np.nan
    return out


def test_the_models_have_different_shapes(mixed):
    sub, _ = mixed
    archs = [m.info.arch for m in sub.models]
    assert len({a.detector_len for a in archs}) == 4
    assert {a.num_hidden for a in archs} == {0, 32} and {a.avg_pooling for a in archs} == {False, True}
    assert {a.reverse_complement for a in archs} == {False, True}


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(anchor=st.one_of(st.sampled_from([0, CHR20_SIZE] + N_EDGES), st.integers(0, CHR20_SIZE)),
       offset=st.integers(-250, 250), length=st.integers(60, 260), step=st.sampled_from([1, 2, 7, 20]),
       window=st.sampled_from([101, 60]), opts=st.sampled_from(OPTIONS), lower=st.booleans())
def test_window_value_is_the_score_of_the_window(genome, mixed, anchor, offset, length, step, window, opts, lower):
    _, engine = mixed
    start = min(max(0, anchor + offset), CHR20_SIZE - length)
    seq = genome.fetch("20", start, start + length)
    codes = encode(seq.lower() if lower else seq)  # soft-masked lowercase reads the same
    values, rc_won = window_values(engine, codes, window, step, opts)
    want = direct(engine, codes, window, step, opts)
    assert values.shape == want.shape
    np.testing.assert_array_equal(np.isnan(values), np.isnan(want))
    np.testing.assert_allclose(values, want, atol=1e-4, rtol=0, equal_nan=True)
    assert not rc_won[np.isnan(values)].any()


@pytest.mark.parametrize("window,step,average", [(101, 20, False), (101, 4, True), (40, 7, False), (60, 150, True)])
@pytest.mark.parametrize("kernel", [True, False])
def test_strided_whole_windows_equal_their_scores(genome, mixed, monkeypatch, window, step, average, kernel):
    """Windows scored whole at --step > 1 come from the fused kernel, which pools and scores only
    the kept windows, or without it are computed each on its own (dbtools.strided, step >= 4):
    near a gap's edge, in several steps of windows, with both poolings and strands."""
    sub, engine = mixed
    monkeypatch.setenv("DBTOOLS_NATIVE", "1")  # the kernel, also on CPUs that do not use it by default
    assert all(engine.fused_scores(g) for g in engine.groups)
    if not kernel:
        monkeypatch.setattr(BankEngine, "fused_scores", lambda self, g: False)
    start = N_EDGES[1] - 700  # the end of a 3.1-Mbp N run lies inside
    codes = encode(genome.fetch("20", start, start + 1500))
    opts = ScoreOptions(window_size=window, average=average)
    values, rc_won = window_values(engine, codes, window, step, opts, batch_windows=3)
    want = direct(engine, codes, window, step, opts)
    assert np.isnan(want).any() and (~np.isnan(want)).sum() > 2
    np.testing.assert_allclose(values, want, atol=1e-4, rtol=0, equal_nan=True)
    whole, rc_whole = window_values(engine, codes, window, 1, opts)  # the stride-1 path
    np.testing.assert_allclose(values, whole[::step], atol=1e-4, rtol=0, equal_nan=True)
    assert (rc_won == rc_whole[::step]).mean() > 0.99  # near-ties may break either way


def test_strided_groups_of_one_shape_are_scored_side_by_side(genome, bank, monkeypatch):
    """Groups sharing the detector length and pooling (here: with and without the hidden layer,
    one or both strands) are one unit of the strided path; each keeps its own scores."""
    from dbtools.engine.strided import strided_windows

    by_shape: dict = {}
    for i, m in enumerate(bank.models):
        a = m.info.arch
        by_shape.setdefault((a.detector_len, a.avg_pooling), {}).setdefault((a.num_hidden, a.reverse_complement), i)
    # a length with max+avg pooling and several kinds of head
    shape, picks = max(by_shape.items(), key=lambda kv: (len(kv[1]) >= 2 and kv[0][1], len(kv[1])))
    assert len(picks) >= 2 and shape[1]
    sub = bank.subset(sorted(picks.values()))
    engine = BankEngine(sub, "cpu")
    assert len(engine.groups) >= 2
    units = strided_windows(engine).units(engine.groups)
    assert len(units) == 1 and len(units[0][0]) == len(engine.groups)
    monkeypatch.setattr(BankEngine, "fused_scores", lambda self, g: False)  # the strided path, not the kernel
    codes = encode(genome.fetch("20", 5_000_000, 5_001_200))
    for opts in (ScoreOptions(window_size=101), ScoreOptions(window_size=101, average=True)):
        values, _ = window_values(engine, codes, 101, 9, opts, batch_windows=7)
        np.testing.assert_allclose(values, direct(engine, codes, 101, 9, opts), atol=1e-4, rtol=0)


def test_the_strand_that_won_is_reported(mixed, genome):
    sub, engine = mixed
    codes = encode(genome.fetch("20", 1_000_000, 1_000_300))
    values, rc_won = window_values(engine, codes, 101, 10, ScoreOptions())
    rc = [j for j, m in enumerate(sub.models) if m.info.arch.reverse_complement]
    fwd = [j for j, m in enumerate(sub.models) if not m.info.arch.reverse_complement]
    assert not rc_won[:, fwd].any() and rc_won[:, rc].any()
    from dbtools.io.encode import reverse_complement
    for k in np.flatnonzero(rc_won[:, rc[0]])[:3]:
        win = codes[k * 10:k * 10 + 101]
        # the value is then the forward score of the window's reverse complement
        alone = BankEngine(sub.subset([rc[0]]))
        assert values[k, rc[0]] == pytest.approx(score_codes(alone, [reverse_complement(win)], ScoreOptions())[0, 0],
                                                 abs=1e-4)


def _scan(tmp_path, fasta, **kw):
    args = dict(regions=None, chroms=None, skip_missing=False, bank=None, models=["D00328.003", "D00328.018"],
                options=ScanOptions(step=1), out_dir=str(tmp_path / "out"), stdout=io.StringIO(), device="cpu")
    args.update(kw)
    return scan(str(fasta), **args)


def test_chunked_bigwigs_agree_with_direct_scores(tmp_path, genome, bank):
    """Two contigs, small chunks (boundaries inside), BED names reconciled; BigWig entries and stats."""
    bed = tmp_path / "r.bed"
    bed.write_text("chr20\t59900\t60400\n20\t1000000\t1000900\nchr20\t1000500\t1001000\n")
    warnings = []
    summary = _scan(tmp_path, shared_path("genome", "20.fa.gz"), regions=str(bed), chunk_size=97, warn=warnings.append,
                    options=ScanOptions(step=3))
    assert summary.assembled and len(summary.outputs) == 2
    assert any("'chr20' read as '20'" in w for w in warnings)
    assert not (tmp_path / "out" / ".dbtools-scan").exists()
    sub = bank.subset([bank.ids.index("D00328.003"), bank.ids.index("D00328.018")])
    engine = BankEngine(sub)
    for a, b in ((59900, 60400), (1000000, 1001000)):  # the overlapping regions are merged
        codes = encode(genome.fetch("20", a, b))
        want = direct(engine, codes, 101, 3, ScoreOptions())
        for j, model_id in enumerate(sub.ids):
            bw = pyBigWig.open(str(tmp_path / "out" / f"{model_id}.bw"))
            assert bw.chroms() == {"20": CHR20_SIZE} and bw.header()["nLevels"] >= 1
            first = a + track_offset(101, 3)
            got = bw.values("20", first, first + 3 * len(want), numpy=True)[::3]
            np.testing.assert_allclose(got, want[:, j], atol=1e-4, equal_nan=True)
            ok = ~np.isnan(want[:, j])
            lo = first + 3 * int(np.flatnonzero(ok)[0])
            mean = bw.stats("20", lo, first + 3 * len(want), type="mean", exact=True)[0]
            assert mean == pytest.approx(float(want[ok, j].mean()), abs=1e-4)
            bw.close()


@pytest.fixture(scope="module")
def small_genome(tmp_path_factory, genome):
    """Three contigs cut from chr20 (one with an N run), plain FASTA without an index."""
    folder = tmp_path_factory.mktemp("genome")
    parts = {"chrA": genome.fetch("20", 59_800, 60_700), "chrB": genome.fetch("20", 2_000_000, 2_000_700),
             "chrC": genome.fetch("20", 3_000_000, 3_000_400).lower()}
    fa = folder / "small.fa"
    fa.write_text("".join(f">{k}\n{v}\n" for k, v in parts.items()))
    return fa, parts


def test_unindexed_fasta_gets_an_index_and_stdout_bedgraph(tmp_path, small_genome, bank):
    fa, parts = small_genome
    out = io.StringIO()
    _scan(tmp_path, fa, models=["D00328.003"], out_dir=None, stdout=out, chroms=["chrC"],
          options=ScanOptions(step=1, fmt="bedgraph"))
    assert fa.with_name("small.fa.fai").exists()
    rows = [ln.split("\t") for ln in out.getvalue().splitlines()]
    engine = BankEngine(bank.subset([bank.ids.index("D00328.003")]))
    want = direct(engine, encode(parts["chrC"]), 101, 1, ScoreOptions())[:, 0]
    assert [int(r[1]) for r in rows] == list(range(50, 50 + len(want)))
    np.testing.assert_allclose([float(r[3]) for r in rows], want, atol=2e-6)


def test_bed_hits_are_the_windows_at_or_above_threshold(tmp_path, small_genome, bank):
    fa, parts = small_genome
    out = io.StringIO()
    _scan(tmp_path, fa, out_dir=None, stdout=out, chroms=["chrB"],
          options=ScanOptions(step=5, fmt="bed", threshold=0.5, hits_merge="none"))
    sub = bank.subset([bank.ids.index("D00328.003"), bank.ids.index("D00328.018")])
    codes = encode(parts["chrB"])
    want = direct(BankEngine(sub), codes, 101, 5, ScoreOptions())
    header, *lines = out.getvalue().splitlines()
    assert header.split("\t") == ["#chrom", "start", "end", "name", "score", "strand", "signal", "pvalue"]
    rows = [ln.split("\t") for ln in lines]
    expect = sorted((k * 5, j) for k, j in zip(*np.nonzero(want >= 0.5)))
    assert [(int(r[1]), r[3]) for r in rows] == [(k, f"CTCF:{sub.ids[j]}") for k, j in expect] and expect
    for r in rows:
        assert r[0] == "chrB" and int(r[2]) - int(r[1]) == 101 and r[5] in "+-"
        assert 0 <= int(r[4]) <= 1000
        assert float(r[6]) == pytest.approx(want[int(r[1]) // 5, sub.ids.index(r[3].split(":")[1])], abs=2e-6)


def test_bed_sites_are_the_best_window_of_each_overlapping_run_indexed_and_renamed(tmp_path, small_genome, bank):
    """Default hits: one row per site (overlapping hit windows of a model and strand), its best
    window; bgzipped and tabix-indexed in --out-dir, with UCSC contig names."""
    pysam = pytest.importorskip("pysam")
    fa, parts = small_genome
    sub = bank.subset([bank.ids.index("D00328.003"), bank.ids.index("D00328.018")])
    _scan(tmp_path, fa, options=ScanOptions(step=3, fmt="bed", threshold=0.0, contig_names="ucsc"), chunk_size=50)
    out = tmp_path / "out"
    assert sorted(p.name for p in out.iterdir()) == ["hits.bed.gz", "hits.bed.gz.tbi"]
    engine = BankEngine(sub)
    with pysam.TabixFile(str(out / "hits.bed.gz")) as tbx:
        assert list(tbx.contigs) == ["chrA", "chrB", "chrC"]  # already UCSC-style: kept
        for contig in parts:
            rows = [r.split("\t") for r in tbx.fetch(contig)]
            codes = encode(parts[contig])
            values, rc_won = window_values(engine, codes, 101, 3, ScoreOptions())
            for j, model_id in enumerate(sub.ids):
                mine = [(int(r[1]), float(r[6]), r[5]) for r in rows if r[3] == f"CTCF:{model_id}"]
                hits = [k for k in range(len(values)) if values[k, j] >= 0.0]
                for strand in "+-":
                    chains, last = [], None
                    for k in (k for k in hits if ("-" if rc_won[k, j] else "+") == strand):
                        if last is None or k * 3 >= last * 3 + 101:
                            chains.append([])
                        chains[-1].append(k)
                        last = k
                    best = sorted(max(c, key=lambda k: (values[k, j], -k)) * 3 for c in chains)
                    assert [s for s, _, st in mine if st == strand] == best
        assert sum(1 for _ in tbx.fetch("chrB", 0, 700)) > 0
    # UCSC names for contigs named the Ensembl way
    ens = tmp_path / "ens.fa"
    ens.write_text(f">20\n{parts['chrB']}\n")
    _scan(tmp_path / "e", ens, options=ScanOptions(step=10, fmt="bed", threshold=0.0, contig_names="ucsc"))
    with pysam.TabixFile(str(tmp_path / "e" / "out" / "hits.bed.gz")) as tbx:
        assert list(tbx.contigs) == ["chr20"]
    _scan(tmp_path / "e", ens, options=ScanOptions(step=10, contig_names="ucsc"), out_dir=str(tmp_path / "e" / "bw"))
    bw = pyBigWig.open(str(tmp_path / "e" / "bw" / "D00328.003.bw"))
    assert list(bw.chroms()) == ["chr20"] and bw.intervals("chr20")
    bw.close()


def test_tracks_tsv_and_browser_files_describe_the_scan_and_survive_merge(tmp_path, small_genome):
    from dbtools.scan.browser import BrowserOptions
    from dbtools.scan.describe import read_tracks_tsv

    fa, _ = small_genome
    browser = BrowserOptions(hub="ctcf", assembly="hg19")
    _scan(tmp_path / "one", fa, options=ScanOptions(step=4), browser=browser)
    for i in (1, 2):
        _scan(tmp_path / "sh", fa, options=ScanOptions(step=4), shard=(i, 2), browser=browser)
    assemble(tmp_path / "sh" / "out")
    for folder in (tmp_path / "one" / "out", tmp_path / "sh" / "out"):
        rows = read_tracks_tsv(folder)
        assert [r["file"] for r in rows] == ["D00328.003.bw", "D00328.018.bw"]
        r = rows[0]
        assert (r["model_id"], r["protein"], r["experiment"], r["species"]) == ("D00328.003", "CTCF", "SELEX",
                                                                                "Homo sapiens")
        assert (r["window"], r["step"], r["values"], r["genome"]) == ("101", "4", "score", "small.fa")
        assert len(r["genome_sha256"]) == 64 and r["dbtools_version"]
        assert (folder / "hub.txt").exists() and (folder / "hg19" / "trackDb.txt").exists()
        session = json.loads((folder / "igv_session.json").read_text())
        assert [t["url"] for t in session["tracks"]] == ["D00328.018.bw", "D00328.003.bw"]  # ChIP-seq, SELEX
        assert session["locus"] == "chrA:1-900"
    assert (tmp_path / "one" / "out" / "tracks.tsv").read_text() == (tmp_path / "sh" / "out" / "tracks.tsv").read_text()
    with pytest.raises(UsageError, match="--hub needs --genome-assembly"):
        _scan(tmp_path / "x", fa, browser=BrowserOptions(hub="h"))


BESIDE = ["tracks.tsv", "igv_session.json", "igv_session.xml"]  # written beside every scan's tracks


def _tracks(folder, ids):
    out = {}
    for i in ids:
        bw = pyBigWig.open(str(folder / f"{i}.bw"))
        out[i] = {c: bw.intervals(c) for c in bw.chroms()}
        bw.close()
    return out


def test_shards_merge_and_resume_give_the_tracks_of_one_run(tmp_path, small_genome):
    fa, _ = small_genome
    ids = ["D00328.003", "D00328.018"]
    _scan(tmp_path / "one", fa, options=ScanOptions(step=2))
    whole = _tracks(tmp_path / "one" / "out", ids)
    assert list(whole[ids[0]]) == ["chrA", "chrB", "chrC"]  # header order of the FASTA
    assert whole[ids[0]]["chrA"] and whole[ids[0]]["chrC"]
    # shards: parts only, then merge-tracks
    for i in (1, 2):
        s = _scan(tmp_path / "sh", fa, options=ScanOptions(step=2), shard=(i, 2))
        assert not s.assembled and not s.outputs
    assemble(tmp_path / "sh" / "out")
    assert _tracks(tmp_path / "sh" / "out", ids) == whole
    # tracks written while scoring and tracks assembled from the part store: the same bytes
    for i in ids:
        assert (tmp_path / "sh" / "out" / f"{i}.bw").read_bytes() == (tmp_path / "one" / "out" / f"{i}.bw").read_bytes()
    # an interrupted run, then --resume skips the contigs it finished
    seen = []

    def stop_at_second(contig, done, total):
        seen.append(contig)
        if contig == "chrB":
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        _scan(tmp_path / "re", fa, options=ScanOptions(step=2), progress=stop_at_second)
    out = tmp_path / "re" / "out"
    assert not (out / f"{ids[0]}.bw").exists()
    assert [p.name for p in out.iterdir()] == [".dbtools-scan"]  # no temporary track left
    # a kill -9 while writing leaves a temporary; the next run removes it (pid 2**22 + 1 is never a live one)
    stale = out / f".{ids[0]}.bw.tmp{2**22 + 1}.bw"
    stale.write_bytes(b"partial")
    warnings = []
    s = _scan(tmp_path / "re", fa, options=ScanOptions(step=2), resume=True, warn=warnings.append)
    assert s.skipped == 1 and s.contigs == 2
    assert _tracks(out, ids) == whole
    assert not stale.exists() and any(stale.name in w for w in warnings)
    assert sorted(p.name for p in out.iterdir()) == sorted([f"{i}.bw" for i in ids] + BESIDE)


@pytest.mark.parametrize("method", ["fork", "spawn"])
def test_tracks_from_the_part_store_are_the_same_bytes_in_one_or_two_worker_processes(tmp_path, small_genome,
                                                                                      monkeypatch, method):
    if method not in multiprocessing.get_all_start_methods():
        pytest.skip(f"no {method} here")
    fa, _ = small_genome
    ids = ["D00328.003", "D00328.018"]
    _scan(tmp_path / "one", fa, options=ScanOptions(step=3))  # written while scoring
    monkeypatch.setattr(writers, "START_METHOD", method)
    for threads in (1, 2):
        folder = tmp_path / f"workers{threads}"
        for i in (1, 2):
            _scan(folder, fa, options=ScanOptions(step=3), shard=(i, 2))
        outputs = assemble(folder / "out", threads)
        assert sorted(Path(p).name for p in outputs) == [f"{i}.bw" for i in ids]
        for i in ids:
            assert (folder / "out" / f"{i}.bw").read_bytes() == (tmp_path / "one" / "out" / f"{i}.bw").read_bytes()
        assert not (folder / "out" / ".dbtools-scan").exists()


def test_merge_of_an_incomplete_scan_names_the_missing_contigs(tmp_path, small_genome):
    fa, _ = small_genome
    _scan(tmp_path, fa, options=ScanOptions(step=4), shard=(1, 3))
    with pytest.raises(DbtoolsError, match="not complete: contig"):
        assemble(tmp_path / "out")
    with pytest.raises(DbtoolsError, match="different scan"):
        _scan(tmp_path, fa, options=ScanOptions(step=5), shard=(2, 3))


def test_bad_input_is_one_clear_error(tmp_path, small_genome):
    fa, _ = small_genome
    cases = [("chrA\t500\t100\n", "line 1: start 500 is after end 100"),
             ("# header\nchrA\t1\tten\n", "line 2: start and end must be whole numbers"),
             ("", "no regions"),
             ("chrA\t1\t500\nchrQ\t1\t500\n", "contig 'chrQ' is not in")]
    for text, message in cases:
        bed = tmp_path / "r.bed"
        bed.write_text(text)
        with pytest.raises(DbtoolsError, match=message):
            _scan(tmp_path, fa, regions=str(bed))
    # --skip-missing: the unknown contig is skipped with a warning
    warnings = []
    _scan(tmp_path, fa, regions=str(bed), skip_missing=True, warn=warnings.append)
    assert any("chrQ" in w for w in warnings)
    with pytest.raises(DbtoolsError, match="matches no model|no model"):
        _scan(tmp_path, fa, models=["NoSuchProtein"])
    with pytest.raises(DbtoolsError, match="--chroms: contig 'chrZ' is not in"):
        _scan(tmp_path, fa, chroms=["chrZ"])
    (tmp_path / "file").write_text("x")
    with pytest.raises(DbtoolsError, match="cannot create the output folder"):
        _scan(tmp_path, fa, out_dir=str(tmp_path / "file" / "out"))
    gz = tmp_path / "plain.fa.gz"
    gz.write_bytes(gzip.compress(b">c\nACGT\n"))
    with pytest.raises(DbtoolsError, match="BGZF"):
        _scan(tmp_path, gz)
    with pytest.raises(UsageError, match="--threshold"):
        _scan(tmp_path, fa, options=ScanOptions(fmt="bed"))
    with pytest.raises(UsageError, match="S <= W"):
        _scan(tmp_path, fa, options=ScanOptions(window=50, step=60))


def test_cli_scan_writes_bigwigs_and_errors_in_one_line(tmp_path, small_genome):
    fa, _ = small_genome
    bed = tmp_path / "r.bed"
    bed.write_text("chrB\t10\t300\n")
    proc = dbtools("scan", str(fa), "-r", str(bed), "-m", "D00328.003", "--step", "10", "-o", str(tmp_path / "o"),
                   "--device", "cpu")
    assert proc.returncode == 0, proc.stderr
    assert (tmp_path / "o" / "D00328.003.bw").exists()
    bed.write_text("chrB\t300\t10\n")
    proc = dbtools("scan", str(fa), "-r", "-", "-m", "D00328.003", "-o", str(tmp_path / "o"), "--device", "cpu",
                   stdin=bed.read_text())
    assert_one_line_error(proc, 1, "-: line 1", "start 300 is after end 10")


@pytest.mark.parametrize("dtype, tolerance", [("float16", 0.02), ("bfloat16", 0.10)])
def test_reduced_precision_stays_within_its_stated_tolerance(genome, mixed, dtype, tolerance):
    """--precision fp16 / bf16 (the torch path in that dtype) against fp32, on real chr20 with
    N at a gap's edge: every value within `tolerance` of its model's score range there."""
    import torch

    sub, engine = mixed
    low = BankEngine(sub, "cpu", dtype=getattr(torch, dtype))
    assert all(g.strands is None and g.weight.dtype == getattr(torch, dtype) for g in low.groups)
    start = N_EDGES[1] - 300
    codes = encode(genome.fetch("20", start, start + 4000))
    for opts in (ScoreOptions(), ScoreOptions(window_size=101), ScoreOptions(average=True)):
        exact, _ = window_values(engine, codes, 101, 3, opts)
        approx, _ = window_values(low, codes, 101, 3, opts)
        assert approx.dtype == np.float32
        np.testing.assert_array_equal(np.isnan(approx), np.isnan(exact))
        spread = np.nanmax(exact, 0) - np.nanmin(exact, 0)
        err = np.nanmax(np.abs(approx - exact), 0)
        assert (err <= tolerance * spread).all(), (opts, err / spread)
        assert (err > 0).any()  # it really ran in the lower precision


def test_cli_scan_in_reduced_precision_warns_on_the_cpu(tmp_path, small_genome):
    fa, _ = small_genome
    out = tmp_path / "fp16.bedGraph"
    proc = dbtools("scan", str(fa), "-m", "D00328.003", "--step", "10", "--format", "bedgraph", "--chroms", "chrB",
                   "--precision", "fp16", "--device", "cpu")
    assert proc.returncode == 0, proc.stderr
    assert "--precision fp16 on the CPU" in proc.stderr
    assert len(proc.stdout.splitlines()) > 10
    proc = dbtools("scan", str(fa), "-m", "D00328.003", "--precision", "fp8", "--device", "cpu")
    assert_one_line_error(proc, 2, "--precision 'fp8'", "fp32")


@pytest.mark.parametrize("step", [1, 10])
def test_bigwigs_hold_the_bedgraph_values_contigs_in_fasta_order_with_zoom_levels(tmp_path, small_genome, bank, step):
    """Every BigWig value equals the bedGraph's (float32 of the printed value, to its 6 decimals)
    and `dbtools score` of sampled windows; contigs in the FASTA's order; zoom levels present."""
    fa, parts = small_genome
    bw_dir, bg_dir = tmp_path / "bw", tmp_path / "bg"
    _scan(tmp_path, fa, out_dir=str(bw_dir), options=ScanOptions(step=step))
    _scan(tmp_path, fa, out_dir=str(bg_dir), options=ScanOptions(step=step, fmt="bedgraph"))
    sub = bank.subset([bank.ids.index("D00328.003"), bank.ids.index("D00328.018")])
    engine = BankEngine(sub)
    for j, model_id in enumerate(sub.ids):
        bw = pyBigWig.open(str(bw_dir / f"{model_id}.bw"))
        assert list(bw.chroms()) == list(parts)  # the FASTA's order
        assert bw.header()["nLevels"] >= 1
        rows = [line.split("\t") for line in (bg_dir / f"{model_id}.bedGraph").read_text().splitlines()]
        assert rows
        for contig in parts:
            mine = [(int(s), int(e), float(v)) for c, s, e, v in rows if c == contig]
            # the BigWig may hold neighbours of one value as one interval: items of `step` bases
            got = [(x, x + step, v) for s, e, v in bw.intervals(contig) or () for x in range(s, e, step)]
            assert [(s, e) for s, e, _ in got] == [(s, e) for s, e, _ in mine]
            np.testing.assert_allclose([v for _, _, v in got], [v for _, _, v in mine], rtol=0, atol=5e-7)
            # sampled windows against `dbtools score` of their sequence
            codes = encode(parts[contig])
            n = (len(codes) - 101) // step + 1
            for k in np.linspace(0, n - 1, 5).astype(int).tolist():
                window = codes[k * step:k * step + 101]
                at = k * step + track_offset(101, step)
                if (window == 4).all():  # an all-N window is a gap
                    assert np.isnan(bw.values(contig, at, at + 1)[0])
                    continue
                want = score_codes(engine, [window], ScoreOptions())[0, j]
                assert bw.values(contig, at, at + 1)[0] == pytest.approx(float(want), abs=1e-4)
        bw.close()


def test_tracks_written_side_by_side_get_the_umask_and_leave_it_as_it_was(tmp_path, small_genome):
    import os
    import stat

    fa, _ = small_genome
    old = os.umask(0o027)
    try:
        summary = _scan(tmp_path, fa, threads=2)
        assert os.umask(0o027) == 0o027  # still the process's umask
    finally:
        os.umask(old)
    assert len(summary.outputs) == 2
    for path in summary.outputs:
        assert stat.S_IMODE(os.stat(path).st_mode) == 0o640


def test_kill_9_while_scanning_then_resume_gives_the_tracks_of_one_run(tmp_path, genome):
    """A scan killed with SIGKILL after its first contig, then run with --resume: the same bytes as
    an uninterrupted run, and no temporary file left beside them."""
    import signal
    import subprocess
    import sys
    import time

    fa = tmp_path / "g.fa"
    fa.write_text("".join(f">c{i}\n{genome.fetch('20', 3_000_000 + i * 400_000, 3_400_000 + i * 400_000)}\n"
                          for i in range(3)))
    args = [sys.executable, "-m", "dbtools_cli.main", "scan", str(fa), "-m", "D00328.003,D00328.018",
            "--step", "2", "--chunk-size", "50000", "--threads", "1"]
    whole = dbtools(*args[3:], "-o", str(tmp_path / "whole"))
    assert whole.returncode == 0, whole.stderr
    out = tmp_path / "killed"
    proc = subprocess.Popen([*args, "-o", str(out)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    first = out / ".dbtools-scan" / "contig00000" / "layout.json"
    while proc.poll() is None and not first.exists():
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    if proc.returncode != -signal.SIGKILL:
        pytest.skip("the scan finished before it could be killed")
    assert not (out / "D00328.003.bw").exists()
    resumed = dbtools(*args[3:], "-o", str(out), "--resume")
    assert resumed.returncode == 0, resumed.stderr
    assert "already complete" in resumed.stderr
    for i in ("D00328.003", "D00328.018"):
        assert (out / f"{i}.bw").read_bytes() == (tmp_path / "whole" / f"{i}.bw").read_bytes()
    assert sorted(p.name for p in out.iterdir()) == sorted(["D00328.003.bw", "D00328.018.bw"] + BESIDE)
