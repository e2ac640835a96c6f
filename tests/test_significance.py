"""Backgrounds and p-values: the tables and the fitted tail (pure), the bank schema, `dbtools
background`, `score --pvalue`."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch

from dbtools.bank.backgrounds import Background, BackgroundKey
from dbtools.bank.store import load_bank, save_bank
from dbtools.errors import DbtoolsError, UsageError
from dbtools.significance import compute
from dbtools.significance.compute import BackgroundOptions, background
from dbtools.significance.tables import TAIL_FLOOR, candidate_cutoffs, log10_pvalues, summarize
from dbtools.significance.tail import fit_pareto, log10_pareto_survival

from conftest import shared_path
from test_cli import CTCF_PEAK, assert_one_line_error, dbtools

MODELS = ["D00328.003", "D00210.001"]


def _exponential(n: int, m: int, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return -torch.log(torch.rand(n, m, generator=g, dtype=torch.float64))


@pytest.mark.parametrize("shape", [-0.25, 0.0, 0.2])
def test_pareto_fit_recovers_shape_and_scale(shape):
    g = torch.Generator().manual_seed(3)
    u = torch.rand(40_000, 1, generator=g, dtype=torch.float64)
    y = -torch.log(u) * 1.5 if shape == 0 else 1.5 * (u ** (-shape) - 1) / shape
    xi, sigma = fit_pareto(y)
    assert abs(xi.item() - shape) < 0.03 and abs(sigma.item() / 1.5 - 1) < 0.05
    # the survival function inverts the draw
    lp = log10_pareto_survival(y[:5, 0], xi, sigma)
    assert torch.allclose(lp, torch.log10(u[:5, 0]), atol=0.03)


def test_pvalues_follow_the_distribution_beyond_the_samples():
    """Exponential scores: P(S >= x) = exp(-x), checked from the bulk to 1e-6, ten times
    deeper than the 1e6 samples reach (the fit has 10,000 points)."""
    tables = summarize(_exponential(1_000_000, 2), fraction=0.01)
    assert np.all(tables.floor == TAIL_FLOOR)
    p = np.array([0.5, 1e-2, 1e-3, 1e-4, 1e-5, 1e-6])
    x = torch.from_numpy(-np.log(p))[:, None].repeat(1, 2)
    got = 10 ** log10_pvalues(x, tables).double().numpy()
    # the tolerance grows with the extrapolation: the fitted shape's standard error is ~0.01 here
    tolerance = np.array([1.1, 1.1, 1.2, 1.4, 2.0, 3.0])
    assert np.all(np.abs(np.log10(got / p[:, None])) < np.log10(tolerance)[:, None]), got


def test_pvalues_are_monotone_never_zero_and_keep_nan():
    tables = summarize(_exponential(20_000, 3, seed=1), fraction=0.01)
    x = torch.linspace(-5, 1000, 5000, dtype=torch.float32)[:, None].repeat(1, 3)
    lp = log10_pvalues(x, tables)
    assert torch.all(lp[1:] <= lp[:-1] + 1e-6)
    assert torch.all(lp <= 0) and torch.all(lp[x < 0] == 0)
    assert torch.all(lp >= torch.log10(torch.tensor(tables.floor, dtype=torch.float32)) - 1e-6)
    assert torch.isfinite(lp).all()
    nan = log10_pvalues(torch.tensor([[float("nan"), 1.0, 2.0]]), tables)
    assert torch.isnan(nan[0, 0]) and torch.isfinite(nan[0, 1:]).all()


def test_candidate_cutoffs_keep_every_window_that_reaches_the_pvalue():
    """`scan --pvalue` computes p-values only above each model's cutoff: no window at or below
    it may reach the p-value, at any level from 1 down past the floor."""
    tables = summarize(_exponential(20_000, 3, seed=2) * torch.tensor([1.0, 2.0, 0.5], dtype=torch.float64),
                       fraction=0.01)
    x = torch.linspace(-1, 40, 200_000, dtype=torch.float32)[:, None].repeat(1, 3)
    lp = log10_pvalues(x, tables).numpy()
    for p in [1.0, 0.5, 0.05, 1e-3, 1e-4, 1e-6, 1e-9]:
        cut = candidate_cutoffs(tables, math.log10(p))
        hit = lp <= np.float32(math.log10(p))
        assert np.all(x.numpy()[hit] > np.broadcast_to(cut, x.shape)[hit]), p
        # and the cutoff prunes: above the bulk, most windows are never looked up
        if p <= 1e-3:
            assert np.mean(x.numpy() > cut) < 0.9


def test_a_tail_the_fit_misses_answers_no_deeper_than_its_samples():
    """Scores whose top 1% is two far-apart clusters: no generalized Pareto fits them, so the
    table's floor is the deepest checked quantile (30 of the samples), never 1e-7."""
    x = _exponential(100_000, 1, seed=2)
    top = torch.topk(x[:, 0], 1000).indices
    x[top[:500], 0] = 100 + torch.rand(500, dtype=torch.float64)
    x[top[500:], 0] = 10 + 0.01 * torch.rand(500, dtype=torch.float64)
    tables = summarize(x, fraction=0.01)
    assert tables.fit_error[0] > math.log10(2)
    assert tables.floor[0] == pytest.approx(30 / 100_000)
    assert 10 ** log10_pvalues(torch.tensor([[1e6]]), tables).item() == pytest.approx(3e-4, rel=1e-4)


@pytest.fixture(scope="module")
def small_genome(tmp_path_factory):
    """40 kb of chr20 in two contigs, with an N run (all-N windows are left out)."""
    from dbtools.io.genome import Genome

    with Genome(shared_path("genome", "20.fa.gz")) as g:
        a, b = g.fetch("20", 2_000_000, 2_020_000), g.fetch("20", 59_000, 79_000)
    folder = tmp_path_factory.mktemp("bg")
    fa = folder / "small.fa"
    fa.write_text(f">chrA\n{a}\n>chrB\n{b}\n")
    return fa


@pytest.fixture(scope="module")
def bare_bank(tmp_path_factory):
    """The shipped bank without its backgrounds."""
    from dbtools.bank.store import default_bank_path

    bank = load_bank(default_bank_path())
    for m in bank.models:
        m.backgrounds = []
    path = tmp_path_factory.mktemp("bare") / "bare.bank"
    save_bank(bank, path)
    return path


@pytest.fixture(scope="module")
def bg_bank(tmp_path_factory, small_genome, bare_bank):
    out = tmp_path_factory.mktemp("bgbank") / "bg.bank"
    summary = background(str(small_genome), bank=str(bare_bank), models=MODELS, bank_out=str(out), regions=None,
                         options=BackgroundOptions(windows=5000, seed=5, tail_fraction=0.01))
    assert summary.computed == 2 and summary.resumed == 0
    return out


def test_background_is_stored_with_its_provenance_and_is_deterministic(bg_bank, bare_bank, small_genome, tmp_path):
    bank = load_bank(bg_bank)
    assert len(bank) == 927
    with_bg = [m for m in bank.models if m.backgrounds]
    assert [m.info.id for m in with_bg] == sorted(MODELS)
    bg = with_bg[0].backgrounds[0]
    assert bg.key == BackgroundKey(101, None, False)
    s = bg.settings
    assert s["genome"] == "small.fa" and len(s["genome_sha256"]) == 64
    assert s["windows"] == 5000 and s["seed"] == 5 and s["source"] == "genome windows" and s["left_out_all_n"] > 0
    assert s["sampling"] == "independent windows" and s["windows_scored"] == 5000
    again = tmp_path / "again.bank"
    background(str(small_genome), bank=str(bare_bank), models=[MODELS[0]], bank_out=str(again), regions=None,
               options=BackgroundOptions(windows=5000, seed=5, tail_fraction=0.01))
    a = load_bank(again).models[[m.info.id for m in bank.models].index(MODELS[0])].backgrounds[0]
    b = bank.models[[m.info.id for m in bank.models].index(MODELS[0])].backgrounds[0]
    assert np.array_equal(a.scores, b.scores) and a.tail == b.tail


def test_block_backgrounds_record_their_blocks_and_are_deterministic(small_genome, bare_bank, tmp_path):
    opts = BackgroundOptions(windows=20_000, seed=5, block=1000, tail_fraction=0.01)
    out = [tmp_path / f"b{k}.bank" for k in range(2)]
    for path in out:
        background(str(small_genome), bank=str(bare_bank), models=[MODELS[0]], bank_out=str(path), regions=None,
                   options=opts)
    a, b = (next(m for m in load_bank(p).models if m.backgrounds).backgrounds[0] for p in out)
    s = a.settings
    assert (s["sampling"], s["blocks"], s["block_windows"], s["step"], s["windows"]) == ("blocks", 20, 1000, 1, 20_000)
    assert s["windows_scored"] == 20_000 - s["left_out_all_n"] > 19_000
    assert np.array_equal(a.scores, b.scores) and a.tail == b.tail


def test_background_tables_match_the_scores_of_the_drawn_windows(small_genome):
    """The table is the distribution of `score` on the drawn windows, exactly."""
    from dbtools.bank.store import default_bank_path
    from dbtools.engine.bank_engine import BankEngine
    from dbtools.io.genome import Genome
    from dbtools.significance.sampling import draw_windows, sampling_intervals

    bank = load_bank(default_bank_path())
    sub = bank.subset([bank.ids.index(MODELS[0])])
    with Genome(str(small_genome)) as g:
        codes, left_out = draw_windows(g, sampling_intervals(g, None), 101, 3000, 9)
    assert codes.shape == (3000, 101) and not np.any((codes == 4).all(axis=1))
    scores = BankEngine(sub).score(torch.from_numpy(codes))
    tables = summarize(scores, 0.01)
    ranked = np.sort(scores[:, 0].numpy())
    assert tables.scores[0, 0] == ranked[0] and tables.scores[0, -1] == ranked[-30]


def test_block_windows_are_the_scores_of_every_window_inside_each_block(small_genome):
    """Blocks scored by the sliding-window engine: each model's values are exactly `score` on
    every window inside a block (none spanning two), all-N windows left out; the top is exact."""
    from dbtools.bank.store import default_bank_path
    from dbtools.engine.bank_engine import BankEngine
    from dbtools.engine.options import ScoreOptions
    from dbtools.io.encode import N
    from dbtools.significance.compute import score_blocks

    bank = load_bank(default_bank_path())
    engine = BankEngine(bank.subset([bank.ids.index(i) for i in MODELS]))
    rng = np.random.default_rng(0)
    blocks = rng.integers(0, 4, size=(7, 101 + 40 - 1)).astype(np.int8)
    blocks[2, 10:125] = N  # windows 10 .. 24 of block 2 are all N
    top, n, bulk, gaps = score_blocks(engine, blocks, 101, ScoreOptions(), top_fraction=0.05, bulk_samples=70)
    windows = np.stack([b[k:k + 101] for b in blocks for k in range(40)])
    ref = engine.score(torch.from_numpy(windows)).numpy()
    called = ~(windows == N).all(axis=1)
    assert gaps == 15 and n == 7 * 40 - 15
    want = np.sort(ref[called].T, axis=1)
    keep = math.ceil(0.05 * 7 * 40) + 1
    assert top.shape == (2, keep) and np.allclose(top.numpy(), want[:, -keep:], atol=1e-5)
    every = ref[::4][called[::4]]  # every 4th window overall (280 // 70)
    assert np.allclose(bulk.numpy(), np.sort(every.T, axis=1), atol=1e-5)


def test_a_table_from_the_top_and_a_thinned_bulk_matches_the_full_samples():
    """The table built from the largest 1% and every 10th sample: the tail knots and the fit are
    those of the full samples exactly; the bulk knots are the thinned sample's quantiles."""
    from dbtools.significance.tables import summarize_ranked

    x = _exponential(200_000, 2, seed=6)
    a = torch.sort(x.T.contiguous(), dim=1).values
    full = summarize(x, fraction=1e-3)
    part = summarize_ranked(a[:, -2001:], 200_000, torch.sort(x[::10].T.contiguous(), dim=1).values, 1e-3)
    tail = full.log10_survival[0] < math.log10(0.0099)
    assert np.array_equal(part.scores[:, tail], full.scores[:, tail])
    assert np.allclose(part.log10_survival[:, tail], full.log10_survival[:, tail])
    for f in ("threshold", "fraction", "shape", "scale", "floor", "fit_error"):
        assert np.allclose(getattr(part, f), getattr(full, f)), f
    assert np.all(np.diff(part.scores, axis=1) >= 0) and np.all(np.diff(part.log10_survival, axis=1) <= 0)
    # P(X >= x) = exp(-x): the bulk knots' survival is the thinned sample's, within its noise
    assert np.allclose(part.log10_survival[:, ~tail], -part.scores[:, ~tail] / math.log(10), atol=0.05)
    with pytest.raises(ValueError, match="largest"):
        summarize_ranked(a[:, -100:], 200_000, a, 1e-3)


def test_resume_reuses_finished_chunks_and_refuses_other_settings(small_genome, bare_bank, tmp_path, monkeypatch):
    monkeypatch.setattr(compute, "_CHUNK_MODELS", 1)
    out = tmp_path / "r.bank"
    real = compute.summarize_ranked
    calls = []

    def fail_second(*args, **kwargs):
        calls.append(1)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return real(*args, **kwargs)

    monkeypatch.setattr(compute, "summarize_ranked", fail_second)
    opts = BackgroundOptions(windows=5000, seed=1, block=100, tail_fraction=0.01)
    with pytest.raises(KeyboardInterrupt):
        background(str(small_genome), bank=str(bare_bank), models=MODELS, bank_out=str(out), regions=None, options=opts)
    assert not out.exists()
    for other in (BackgroundOptions(windows=5000, seed=2, block=100, tail_fraction=0.01),
                  BackgroundOptions(windows=5000, seed=1, block=500, tail_fraction=0.01)):
        with pytest.raises(DbtoolsError, match="other settings"):
            background(str(small_genome), bank=str(bare_bank), models=MODELS, bank_out=str(out), regions=None,
                       options=other)
    monkeypatch.setattr(compute, "summarize_ranked", real)
    summary = background(str(small_genome), bank=str(bare_bank), models=MODELS, bank_out=str(out), regions=None, options=opts)
    assert (summary.computed, summary.resumed) == (1, 1)
    assert not out.with_name("r.bank.background-parts").exists()
    assert sum(bool(m.backgrounds) for m in load_bank(out).models) == 2


def test_bad_background_options_are_usage_errors(small_genome, tmp_path):
    for opts, fragment in ((BackgroundOptions(windows=10), "--windows"),
                           (BackgroundOptions(tail_fraction=0.7), "--tail-fraction"),
                           (BackgroundOptions(windows=20_000), "fewer than 50"),
                           (BackgroundOptions(windows=5000, block=6000, tail_fraction=0.01), "--block 6000"),
                           (BackgroundOptions(windows=5000, block=10, tail_fraction=0.02), "at most 0.01 with --block"),
                           (BackgroundOptions(windows=50_000, block=30_000, tail_fraction=0.01), "no region")):
        with pytest.raises(UsageError, match=fragment):
            background(str(small_genome), bank=None, models=MODELS, bank_out=str(tmp_path / "x.bank"),
                       regions=None, options=opts)


def test_schema_1_banks_still_load_and_damaged_backgrounds_do_not(bg_bank, tmp_path):
    from safetensors import safe_open
    from safetensors.numpy import save_file

    with safe_open(str(bg_bank), framework="numpy") as f:
        tensors = {k: f.get_tensor(k) for k in f.keys() if ".background" not in k}
        doc = json.loads(f.metadata()["dbtools_bank"])
    old = dict(doc, schema_version=1, models=[{k: v for k, v in r.items() if k != "backgrounds"} for r in doc["models"]])
    path = tmp_path / "v1.bank"
    save_file(tensors, str(path), metadata={"format": "dbtools-bank", "dbtools_bank": json.dumps(old)})
    bank = load_bank(path)
    assert len(bank) == 927 and not any(m.backgrounds for m in bank.models)

    damaged = load_bank(bg_bank)
    m = next(m for m in damaged.models if m.backgrounds)
    bg = m.backgrounds[0]
    m.backgrounds = [Background(bg.key, bg.scores[::-1].copy(), bg.log10_survival, bg.tail, bg.settings)]
    with pytest.raises(DbtoolsError, match="not monotone"):
        save_bank(damaged, tmp_path / "bad.bank")


def test_cli_score_pvalue_and_log10(bg_bank):
    seqs = f"{CTCF_PEAK}\n{CTCF_PEAK[::-1]}\n"
    base = ("score", "-b", str(bg_bank), "-m", MODELS[0], "--device", "cpu")
    p = dbtools(*base, "--pvalue", stdin=seqs)
    lg = dbtools(*base, "--log10", stdin=seqs)
    sc = dbtools(*base, stdin=seqs)
    assert p.returncode == lg.returncode == sc.returncode == 0, p.stderr + lg.stderr
    pv = [float(v) for v in p.stdout.split()[1:]]
    lv = [float(v) for v in lg.stdout.split()[1:]]
    assert all(0 < v <= 1 for v in pv)
    assert np.allclose(-np.log10(pv), lv, atol=1e-3)
    sv = [float(v) for v in sc.stdout.split()[1:]]
    assert (sv[0] > sv[1]) == (pv[0] < pv[1])  # the CTCF peak is the more significant


def test_cli_pvalue_errors_are_one_line(bg_bank, tmp_path):
    base = ("score", "-b", str(bg_bank), "--device", "cpu")
    proc = dbtools(*base, "-m", MODELS[0], "--pvalue", stdin="ACGTACGTAC\n")
    assert_one_line_error(proc, 1, "(10 bp)", MODELS[0], "no background for window 10 bp", "dbtools background")
    proc = dbtools(*base, "-m", "D00001.001", "--pvalue", stdin=CTCF_PEAK + "\n")
    assert_one_line_error(proc, 1, "D00001.001", "it has: none", "dbtools background")
    proc = dbtools(*base, "-m", MODELS[0], "--pvalue", "--average", stdin=CTCF_PEAK + "\n")
    assert_one_line_error(proc, 1, MODELS[0], "--average on", "--average`")
    proc = dbtools(*base, "-m", MODELS[0], "--pvalue", "--class-prob", stdin=CTCF_PEAK + "\n")
    assert_one_line_error(proc, 2, "--class-prob")
    proc = dbtools("background", str(tmp_path / "missing.fa"), "-b", str(bg_bank), "-o", str(tmp_path / "o.bank"))
    assert_one_line_error(proc, 1, "missing.fa")


@pytest.mark.parametrize("layout", ["keys", "csq"])
def test_vareffect_pvalues_are_the_lookups_of_the_ref_and_alt_scores(bg_bank, tmp_path, layout):
    from dbtools.engine.options import ScoreOptions
    from dbtools.significance.lookup import background_tables
    from dbtools.vareffect.run import vareffect

    vcf = shared_path("vcf", "deepfind_derived_promoter_snvs_chr20_b37.vcf")
    lines = vcf.read_text().splitlines()
    small = tmp_path / "in.vcf"
    small.write_text("\n".join([ln for ln in lines if ln.startswith("#")] + [ln for ln in lines if not ln.startswith("#")][:20]) + "\n")
    out = tmp_path / "out.vcf"
    vareffect(str(small), str(shared_path("genome", "20.fa.gz")), str(out), bank=str(bg_bank), models=MODELS,
              window=None, options=ScoreOptions(), layout=layout, pvalues=True)
    text = out.read_text()
    bank = load_bank(bg_bank).subset([load_bank(bg_bank).ids.index(i) for i in MODELS])
    tables = background_tables(bank, ScoreOptions())
    body = [ln.split("\t")[7] for ln in text.splitlines() if not ln.startswith("#")]
    assert len(body) == 20
    checked = 0
    for info in body:
        if layout == "keys":
            kv = dict(p.split("=", 1) for p in info.split(";") if "=" in p)
            for j, k in enumerate(["DBT_D00328_003", "DBT_D00210_001"]):
                ref, alt = float(kv[f"{k}_REF"]), float(kv[f"{k}_ALT"])
                ref_lp, alt_lp = float(kv[f"{k}_REF_LOG10P"]), float(kv[f"{k}_ALT_LOG10P"])
                x = torch.tensor([[ref, ref], [alt, alt]], dtype=torch.float32)
                want = -log10_pvalues(x, tables)[:, j].numpy()
                assert np.allclose([ref_lp, alt_lp], want, atol=1e-3)  # the scores are printed rounded
                assert (ref >= alt) == (ref_lp >= alt_lp - 1e-6)
                checked += 1
        else:
            entries = info.split("DBT_CSQ=")[1].split(",")
            assert all(len(e.split("|")) == 8 for e in entries)
            checked += len(entries)
    assert checked >= 20
    if layout == "keys":
        assert "##INFO=<ID=DBT_D00328_003_REF_LOG10P,Number=1,Type=Float" in text
        assert "##INFO=<ID=DBT_D00328_003_ALT_LOG10P,Number=A,Type=Float" in text
    else:
        assert "Format: Allele|Model|Ref|Alt|Diff|RefLog10P|AltLog10P|Consequence" in text


def _scan_text(genome, bank, **options) -> str:
    import io

    from dbtools.scan.run import ScanOptions, scan

    out = io.StringIO()
    scan(str(genome), regions=None, chroms=None, skip_missing=False, bank=str(bank), models=[MODELS[0]],
         options=ScanOptions(step=5, **options), out_dir=None, stdout=out)
    return out.getvalue()


def test_scan_pvalue_hits_and_log10p_tracks_agree_with_the_lookup(bg_bank, small_genome):
    from dbtools.engine.options import ScoreOptions
    from dbtools.significance.lookup import background_tables

    bank = load_bank(bg_bank)
    tables = background_tables(bank.subset([bank.ids.index(MODELS[0])]), ScoreOptions())
    scores = [ln.split("\t") for ln in _scan_text(small_genome, bg_bank, fmt="bedgraph").splitlines()]
    logp = [ln.split("\t") for ln in _scan_text(small_genome, bg_bank, fmt="bedgraph", track_values="log10p").splitlines()]
    assert [r[:3] for r in scores] == [r[:3] for r in logp] and len(scores) > 1000
    x = torch.tensor([[float(r[3])] for r in scores])
    want = -log10_pvalues(x, tables)[:, 0].numpy()
    got = np.array([float(r[3]) for r in logp])
    assert np.allclose(got, want, atol=1e-3) and got.min() >= 0  # the scores are printed rounded
    text = _scan_text(small_genome, bg_bank, fmt="bed", pvalue=0.01, hits_merge="none")
    hits = [ln.split("\t") for ln in text.splitlines() if not ln.startswith("#")]
    assert hits and all(len(h) == 8 and h[3].endswith(":" + MODELS[0]) and h[5] in "+-" for h in hits)
    p = np.array([float(h[7]) for h in hits])
    assert np.all((p > 0) & (p <= 0.01))
    # BED's integer score: 100 x -log10 p, at most 1000
    assert [int(h[4]) for h in hits] == [min(1000, round(-100 * np.log10(float(h[7])))) for h in hits]
    # the hits are the windows whose -log10 p track value is >= 2 (centres: start + (W - S) // 2)
    centres = {int(r[1]) for r, v in zip(logp, got) if v >= 2}
    assert {int(h[1]) + 48 for h in hits} == centres
    lp = -log10_pvalues(torch.tensor([[float(h[6])] for h in hits]), tables)[:, 0].numpy()
    assert np.allclose(-np.log10(p), lp, rtol=1e-3, atol=1e-3)
    # sites (the default): fewer rows, each the best window of the hits it stands for
    sites = [ln.split("\t") for ln in _scan_text(small_genome, bg_bank, fmt="bed", pvalue=0.01).splitlines()[1:]]
    assert 0 < len(sites) < len(hits)
    assert {(h[0], h[1]) for h in sites} <= {(h[0], h[1]) for h in hits}


def test_scan_pvalue_errors(bg_bank, small_genome, tmp_path):
    from dbtools.scan.run import ScanOptions, scan

    def run(**kw):
        scan(str(small_genome), regions=None, chroms=None, skip_missing=False, bank=str(bg_bank),
             models=kw.pop("models", [MODELS[0]]), options=ScanOptions(**kw), out_dir=None, stdout=None)

    for kw, fragment in (({"fmt": "bed", "pvalue": 0.0}, "(0, 1]"), ({"fmt": "bed", "pvalue": 1.5}, "(0, 1]"),
                         ({"fmt": "bed", "pvalue": 0.1, "threshold": 1.0}, "one of"),
                         ({"fmt": "bedgraph", "pvalue": 0.1}, "--format bed"),
                         ({"fmt": "bed", "threshold": 1.0, "track_values": "log10p"}, "for tracks"),
                         ({"fmt": "bed", "pvalue": 1e-9}, "down to")):
        with pytest.raises(UsageError, match=fragment.replace("(", r"\(").replace("]", r"\]")):
            run(**kw)
    with pytest.raises(DbtoolsError, match="D00001.001 has no background"):
        run(fmt="bed", pvalue=1e-3, models=["D00001.001"])
    proc = dbtools("scan", str(small_genome), "-b", str(bg_bank), "-m", MODELS[0], "--format", "bed", "--pvalue", "0")
    assert_one_line_error(proc, 2, "--pvalue 0")


def test_the_tail_used_for_pvalues_is_never_bounded():
    """Scores with a bounded tail (generalized Pareto, shape -0.2, end point 5): past the end the
    fitted tail says the floor, the tail p-values use (shape raised to 0, same mean excess) more."""
    from dbtools.significance.tables import bounded_shape

    g = torch.Generator().manual_seed(4)
    u = torch.rand(200_000, 1, generator=g, dtype=torch.float64)
    tables = summarize((u ** 0.2 - 1) / -0.2, fraction=0.001)
    assert -0.4 < tables.shape[0] < -0.1 and tables.floor[0] == TAIL_FLOOR
    raised, scale = bounded_shape(tables.shape, tables.scale, 0.0)
    assert raised[0] == 0 and scale[0] == pytest.approx(tables.scale[0] / (1 - tables.shape[0]))
    past = log10_pvalues(torch.tensor([[5.5]]), tables).item()
    free = log10_pvalues(torch.tensor([[5.5]]), tables, min_shape=None).item()
    assert free == pytest.approx(math.log10(TAIL_FLOOR)) and past > free + 0.3


def test_the_quadratic_tail_follows_a_gaussian_and_an_exponential_tail():
    """Fitted from 1e-2 down to 30 of 1e6 samples, it answers 1e-7 within 2x for Gaussian scores
    (where an exponential tail is over 2x too large) and follows exponential scores (curvature ~0)."""
    g = torch.Generator().manual_seed(7)
    gauss = torch.randn(1_000_000, 1, generator=g, dtype=torch.float64)
    tables = summarize(torch.cat([gauss, _exponential(1_000_000, 1, seed=8)], dim=1), fraction=1e-3,
                       quadratic_from=1e-2)
    assert tables.slope[0] < 0 and tables.curvature[0] < 0 and abs(tables.curvature[1]) < 0.02
    z = 5.199  # P(N(0,1) >= z) = 1e-7
    x = torch.tensor([[z, -math.log(1e-6)]], dtype=torch.float32)
    got = 10 ** log10_pvalues(x, tables)[0].double().numpy()
    assert 0.5 < got[0] / 1e-7 < 2 and 0.5 < got[1] / 1e-6 < 2, got
    pareto = summarize(gauss, fraction=1e-3)
    assert 10 ** log10_pvalues(x[:, :1], pareto).item() > 2.5e-7  # an exponential tail: over 2x too large
    # continuous at the last table point, monotone, never below the floor
    xs = torch.linspace(0, 8, 4000, dtype=torch.float32)[:, None].repeat(1, 2)
    lp = log10_pvalues(xs, tables)
    assert torch.all(lp[1:] <= lp[:-1] + 1e-6) and torch.all(lp >= math.log10(TAIL_FLOOR) - 1e-6)
    edge = torch.tensor([[tables.threshold[0]] * 2], dtype=torch.float32)
    assert abs(log10_pvalues(edge, tables)[0, 0].item() - math.log10(tables.fraction[0])) < 1e-3


def test_a_threshold_below_some_floors_warns_and_below_all_is_an_error():
    from dbtools.significance.lookup import check_floor

    tables = summarize(_exponential(20_000, 2, seed=3), fraction=0.01)
    tables.floor[:] = [1e-7, 3e-4]
    warnings: list[str] = []
    check_floor(tables, ["a", "b"], 1e-4, warn=warnings.append)
    assert len(warnings) == 1 and "1 model(s)" in warnings[0] and "hits: b (0.0003) (" in warnings[0]
    check_floor(tables, ["a", "b"], 1e-3, warn=warnings.append)
    assert len(warnings) == 1
    with pytest.raises(UsageError, match="down to 1e-07"):
        check_floor(tables, ["a", "b"], 1e-8)


def test_the_shipped_bank_has_a_chr20_background_for_every_model(bank):
    keys = {(m.backgrounds[0].key.window, m.backgrounds[0].key.window_size, m.backgrounds[0].key.average)
            for m in bank.models if len(m.backgrounds) == 1}
    assert sum(len(m.backgrounds) == 1 for m in bank.models) == len(bank) == 927 and keys == {(101, None, False)}
    s = bank.models[0].backgrounds[0].settings
    assert (s["genome"], s["windows"], s["seed"], s["source"]) == ("20.fa.gz", 100_000, 1, "genome windows")
