"""`dbtools mutmap`: fast maps equal brute-force `score_codes` on every mutant; outputs, figures, errors."""

from __future__ import annotations

import gzip
import re
import struct

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from conftest import shared_path
from oracle import brute_force_scores
from dbtools.io.encode import encode
from dbtools.engine.bank_engine import BankEngine
from dbtools.io.genome import Genome
from dbtools.mutmap.mapper import MutationMapper, mutation_map
from dbtools.score import ScoreOptions, score_codes
from dbtools.bank.selection import open_selected
from test_cli import CTCF_PEAK, assert_one_line_error, dbtools
from test_forward import pick_architectures

CTCF_MODEL = "D00328.003"  # CTCF, SELEX, 16x20 max hidden32 rc


@pytest.fixture(scope="module")
def mixed(bank):
    """One published model of every architecture class, with an engine and a mapper."""
    sub = bank.subset(pick_architectures(bank))
    return sub, BankEngine(sub, "cpu"), MutationMapper(sub, "cpu")


@pytest.fixture(scope="module")
def real_sequences():
    """Real sequences: ENCODE ChIP-seq peaks (101 bp) and CTCF peak windows cut from chr20."""
    seqs = []
    for path in sorted(shared_path("encode").glob("*_AC.seq.gz"))[:3]:
        with gzip.open(path, "rt") as fh:
            next(fh)
            seqs += [next(fh).split("\t")[2] for _ in range(3)]
    bed = shared_path("peaks", "Gm12878.CTCF.top500.w200.bed").read_text().splitlines()
    with Genome(shared_path("genome", "20.fa.gz")) as g:
        for line in [ln for ln in bed if ln.startswith("chr20\t")][:4]:
            _, start, end = line.split("\t")[:3]
            seqs.append(g.fetch(g.require("chr20", "test"), int(start), int(end)))
    return seqs


def brute_at(engine, codes: np.ndarray, positions: list[int], options: ScoreOptions) -> np.ndarray:
    """score_codes on the 4 variants of each of `positions`: [len(positions), 4, M]."""
    variants = []
    for i in positions:
        for b in range(4):
            v = codes.copy()
            v[i] = b
            variants.append(v)
    return score_codes(engine, variants, options).reshape(len(positions), 4, -1)


@settings(max_examples=10, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data(), window=st.sampled_from([None, None, 8, 30, 60]), average=st.booleans())
def test_fast_maps_equal_brute_force_on_real_sequences(mixed, real_sequences, data, window, average):
    sub, engine, mapper = mixed
    seq = data.draw(st.sampled_from(real_sequences))
    length = data.draw(st.integers(1, min(150, len(seq))))
    start = data.draw(st.integers(0, len(seq) - length))
    codes = encode(seq[start:start + length])
    options = ScoreOptions(window_size=window, average=average)
    wt, mut = mapper.scores(codes, options)
    np.testing.assert_allclose(wt, score_codes(engine, [codes], options)[0], atol=1e-4, rtol=0)
    positions = sorted(set(data.draw(st.lists(st.integers(0, length - 1), min_size=1, max_size=6))))
    np.testing.assert_allclose(mut[positions], brute_at(engine, codes, positions, options), atol=1e-4, rtol=0)


def test_whole_map_equals_brute_force_every_architecture(mixed, real_sequences):
    """Every one of the 4L variants of a 101-bp ENCODE peak, default scoring."""
    sub, engine, mapper = mixed
    codes = encode(real_sequences[0])
    archs = {(a.detector_len, a.avg_pooling, a.num_hidden, a.reverse_complement)
             for a in (m.info.arch for m in sub.models)}
    assert len(archs) == len(sub) and len(sub) >= 10
    wt, mut = mapper.scores(codes)
    np.testing.assert_allclose(mut, brute_force_scores(engine, codes), atol=1e-4, rtol=0)


def test_small_budget_and_long_sequence_give_the_same_maps(mixed):
    """Chunking over windows, offsets and window blocks changes nothing; 1 kb needs no length limit."""
    sub, engine, mapper = mixed
    rng = np.random.default_rng(5)
    codes = rng.integers(0, 5, size=1000).astype(np.int8)
    tight = MutationMapper(sub, "cpu", budget=200_000, chunk=5_000, kernel=False)  # several blocks and chunks
    for options in (ScoreOptions(), ScoreOptions(average=True), ScoreOptions(window_size=40)):
        wt, mut = tight.scores(codes[:90], options)
        np.testing.assert_allclose(mut, mapper.scores(codes[:90], options)[1], atol=2e-5, rtol=0)
    few = sub.subset([0, len(sub) // 2, len(sub) - 1])
    wt, mut = MutationMapper(few, "cpu").scores(codes)
    positions = [0, 1, 500, 998, 999]
    np.testing.assert_allclose(mut[positions], brute_at(BankEngine(few), codes, positions, ScoreOptions()),
                               atol=1e-4, rtol=0)


def test_stacking_of_models_changes_nothing(mixed, monkeypatch):
    """Models sharing a detector length and pooling share a stack; split into more, smaller
    stacks (a column limit below two models), the maps are the same."""
    import dbtools.mutmap.mapper as mutmap

    sub, engine, _ = mixed
    mapper = MutationMapper(sub, "cpu", kernel=False)
    assert any(len(s.parts) > 1 for s in mapper.stacks)  # architectures differing only in dense layers
    monkeypatch.setattr(mutmap, "_MAX_COLUMNS", 40)
    split = MutationMapper(sub, "cpu", kernel=False)
    assert len(split.stacks) > len(mapper.stacks) and all(s.const.numel() <= 40 for s in split.stacks)
    codes = encode(CTCF_PEAK[:70])
    np.testing.assert_allclose(split.scores(codes)[1], mapper.scores(codes)[1], atol=2e-5, rtol=0)


def test_substitution_kernel_equals_torch_path(mixed):
    """The kernel (every architecture of the published bank fits it) and the stacked torch path
    agree: N in the sequence, windows shorter than the detectors, --average, 1 kb, several
    sequences in one call."""
    sub, _, mapper = mixed
    torch_path = MutationMapper(sub, "cpu", kernel=False)
    assert len(mapper.kernel_groups) == len(sub) and not mapper.stacks
    assert not torch_path.kernel_groups
    rng = np.random.default_rng(11)
    seqs = [rng.integers(0, 4, size=n).astype(np.int8) for n in (1, 9, 40, 101, 1000)]
    seqs[3][[0, 17, 100]] = 4
    for options in (ScoreOptions(), ScoreOptions(average=True), ScoreOptions(window_size=6),
                    ScoreOptions(window_size=6, average=True), ScoreOptions(window_size=60, average=True)):
        many = mapper.scores_many(seqs[:4], options)
        for codes, (wt, mut) in zip(seqs[:4], many):
            want_wt, want_mut = torch_path.scores(codes, options)
            np.testing.assert_allclose(wt, want_wt, atol=2e-5, rtol=0)
            np.testing.assert_allclose(mut, want_mut, atol=2e-5, rtol=0)
    few = sub.subset([1, len(sub) - 2])
    np.testing.assert_allclose(MutationMapper(few, "cpu").scores(seqs[4])[1],
                               MutationMapper(few, "cpu", kernel=False).scores(seqs[4])[1], atol=2e-5, rtol=0)


def test_delta_semantics_reference_zero_deepbind_scale_and_class_prob(mixed):
    sub, engine, mapper = mixed
    codes = encode(CTCF_PEAK[:60] + "N" + CTCF_PEAK[61:])
    plain = mutation_map(mapper, codes)
    ref = np.flatnonzero(codes < 4)
    assert (plain.delta[ref, codes[ref]] == 0).all()
    assert (plain.delta[60] != 0).any()  # at an N every base is a substitution
    np.testing.assert_allclose(plain.delta, plain.mutant - plain.wild_type, atol=1e-6)
    scaled = mutation_map(mapper, codes, scale="deepbind")
    factor = np.maximum(0, np.maximum(plain.wild_type, plain.mutant))
    np.testing.assert_allclose(scaled.delta, plain.delta * factor, atol=1e-5)
    both_low = (plain.wild_type <= 0) & (plain.mutant <= 0)
    assert both_low.any() and (scaled.delta[both_low] == 0).all()
    prob = mutation_map(mapper, codes, ScoreOptions(class_prob=True))
    sig = lambda v: 1 / (1 + np.exp(-v.astype(np.float64)))  # noqa: E731
    np.testing.assert_allclose(prob.delta[ref[:5]], (sig(plain.mutant) - sig(plain.wild_type))[ref[:5]], atol=1e-6)


def test_cli_tsv_and_npz_hold_the_map(tmp_path):
    fa = tmp_path / "in.fa"
    fa.write_text(f">peak/1 CTCF\n{CTCF_PEAK}\n>short\nACGTTGCA\n")
    out = tmp_path / "maps"
    proc = dbtools("mutmap", str(fa), "-m", f"{CTCF_MODEL},D00001.001", "-f", "tsv,npz", "-o", str(out),
                   "--device", "cpu")
    assert proc.returncode == 0, proc.stderr
    names = sorted(p.name for p in out.iterdir())
    assert names == sorted(f"{s}.{m}.{e}" for s in ("peak_1", "short") for m in (CTCF_MODEL, "D00001.001")
                           for e in ("tsv", "npz"))
    lines = (out / f"peak_1.{CTCF_MODEL}.tsv").read_text().splitlines()
    assert lines[0].startswith("# dbtools mutmap: delta = score(mutant) - score(wild type)")
    assert lines[2] == "position\tref\tA\tC\tG\tT"
    rows = [ln.split("\t") for ln in lines[3:]]
    assert len(rows) == len(CTCF_PEAK) and "".join(r[1] for r in rows) == CTCF_PEAK
    tsv = np.array([[float(v) for v in r[2:]] for r in rows])
    one = open_selected(None, [CTCF_MODEL])
    codes = encode(CTCF_PEAK)
    want = brute_force_scores(BankEngine(one), codes)[:, :, 0] - score_codes(BankEngine(one), [codes], ScoreOptions())[0, 0]
    want[np.arange(len(codes)), codes] = 0
    np.testing.assert_allclose(tsv, want, atol=1e-4)
    z = np.load(out / f"peak_1.{CTCF_MODEL}.npz")
    np.testing.assert_allclose(z["delta"], tsv, atol=1e-6)
    assert str(z["sequence"]) == CTCF_PEAK and str(z["model"]) == CTCF_MODEL and str(z["protein"]) == "CTCF"


def test_cli_regions_carry_genomic_coordinates(tmp_path):
    genome = shared_path("genome", "20.fa.gz")
    bed = tmp_path / "r.bed"
    bed.write_text("chr20\t1000000\t1000030\tsite1\n")
    proc = dbtools("mutmap", "--regions", str(bed), "--genome", str(genome), "-m", CTCF_MODEL, "-f", "tsv,npz",
                   "-o", str(tmp_path / "o"), "--scale", "deepbind", "--window-size", "20", "--device", "cpu")
    assert proc.returncode == 0, proc.stderr
    lines = (tmp_path / "o" / f"site1.{CTCF_MODEL}.tsv").read_text().splitlines()
    assert "chr20:1000000-1000030" in lines[1] and "deepbind" not in lines[2]
    assert "max(0, wild type, mutant)" in lines[0] and "window 20" in lines[0]
    assert lines[2].split("\t")[:4] == ["position", "chrom", "coordinate", "ref"]
    first, last = lines[3].split("\t"), lines[-1].split("\t")
    with Genome(genome) as g:
        seq = g.fetch("20", 1_000_000, 1_000_030).upper()
    assert first[:4] == ["1", "chr20", "1000001", seq[0]] and last[:4] == ["30", "chr20", "1000030", seq[-1]]
    z = np.load(tmp_path / "o" / f"site1.{CTCF_MODEL}.npz")
    assert (str(z["contig"]), int(z["start"]), int(z["end"])) == ("chr20", 1_000_000, 1_000_030)


def png_size(path) -> tuple[int, int]:
    head = path.read_bytes()[:24]
    assert head[:8] == b"\x89PNG\r\n\x1a\n"
    return struct.unpack(">II", head[16:24])


def test_figures_png_and_svg_for_a_ctcf_peak(tmp_path):
    from dbtools.mutmap.plot import DPI, figure_size

    fa = tmp_path / "peak.fa"
    fa.write_text(f">ctcf_peak\n{CTCF_PEAK}\n")
    proc = dbtools("mutmap", str(fa), "-m", CTCF_MODEL, "-f", "png", "-f", "svg", "-o", str(tmp_path),
                   "--device", "cpu")
    assert proc.returncode == 0, proc.stderr
    png, svg = tmp_path / f"ctcf_peak.{CTCF_MODEL}.png", tmp_path / f"ctcf_peak.{CTCF_MODEL}.svg"
    w, h = figure_size(len(CTCF_PEAK))
    assert png_size(png) == (round(w * DPI), round(h * DPI))
    assert png.stat().st_size > 10_000  # letters, heatmap, colour bar: not a blank canvas
    from matplotlib.image import imread

    pixels = imread(png)[..., :3]
    colours = {tuple(np.round(p, 1)) for p in pixels.reshape(-1, 3)[::7]}
    assert len(colours) > 50  # diverging colours and coloured letters
    text = svg.read_text()
    assert text.lstrip().startswith("<?xml") and text.rstrip().endswith("</svg>")
    size = re.search(r'<svg[^>]*width="([0-9.]+)pt"[^>]*height="([0-9.]+)pt"', text)
    assert size and float(size[1]) == pytest.approx(w * 72, abs=0.01) and float(size[2]) == pytest.approx(h * 72, abs=0.01)
    assert text.count("<path") > 50 and "<image" in text  # letter outlines and the heatmap


def test_figure_wraps_long_sequences():
    from dbtools.mutmap.plot import ROW_MAX, draw, figure_size, rows_of

    assert rows_of(20) == (1, 20) and rows_of(101) == (1, 101) and rows_of(1000)[0] == 9
    assert rows_of(1000)[1] <= ROW_MAX
    w20, h20 = figure_size(20)
    w1k, h1k = figure_size(1000)
    assert 6 < w20 < 12 and 8 < w1k < 14 and h1k > 4 * h20
    rng = np.random.default_rng(0)
    fig = draw(rng.normal(size=(1000, 4)), "".join(rng.choice(list("ACGT"), 1000)), title="wrap")
    assert len(fig.axes) == 2 * 9 + 1
    import matplotlib.pyplot as plt

    plt.close(fig)


def test_bad_inputs_one_line_each(tmp_path):
    genome = str(shared_path("genome", "20.fa.gz"))
    fa = tmp_path / "empty.fa"
    fa.write_text(">a\nACGT\n>b\n>c\nACGT\n")
    o = str(tmp_path / "o")
    assert_one_line_error(dbtools("mutmap", str(fa), "-o", o, "-m", CTCF_MODEL), 1, "record 2", "no sequence")
    assert_one_line_error(dbtools("mutmap", "-", "-o", o, "-m", CTCF_MODEL, stdin="ACGT\nACXT\n"), 1,
                          "sequence 2", "'X'")
    bed = tmp_path / "past.bed"
    bed.write_text("chr20\t63025000\t63025600\n")
    assert_one_line_error(dbtools("mutmap", "--regions", str(bed), "--genome", genome, "-o", o, "-m", CTCF_MODEL),
                          1, "line 1", "past the end", "63,025,520")
    blocker = tmp_path / "file"
    blocker.write_text("x")
    assert_one_line_error(dbtools("mutmap", "-o", str(blocker / "maps"), "-m", CTCF_MODEL, stdin="ACGT\n"), 1,
                          "cannot create the output folder")


def test_a_failed_run_leaves_no_maps(tmp_path, monkeypatch):
    """Bad input in a later record: exit 1, one line, and none of the run's files (not even the
    records mapped before it); what the folder held before stays."""
    from dbtools.errors import DbtoolsError
    from dbtools.mutmap import run

    fa = tmp_path / "f.fa"
    fa.write_text(">rec1\nACGTACGT\n>rec2\nACGTAC\nGTA9GG\n")
    out = tmp_path / "m"
    out.mkdir()
    (out / "mine.txt").write_text("kept")
    assert_one_line_error(dbtools("mutmap", str(fa), "-m", CTCF_MODEL, "-o", str(out)), 1, "rec2", "'9'")
    assert sorted(p.name for p in out.iterdir()) == ["mine.txt"]
    monkeypatch.setattr(run, "BATCH_CELLS", 1)  # a batch per record: rec1's files are written before rec2 fails
    written = []
    monkeypatch.setattr(run, "write_tsv", lambda path, *a: (written.append(path), path.write_text("x")))
    with pytest.raises(DbtoolsError, match="rec2"):
        run.mutmap(str(fa), str(out), models=[CTCF_MODEL])
    assert [p.name for p in written] == [f"rec1.{CTCF_MODEL}.tsv"]
    assert sorted(p.name for p in out.iterdir()) == ["mine.txt"]
    good = tmp_path / "g.fa"
    good.write_text(">rec1\nACGTACGT\n>rec2\nACGTAC\n")
    monkeypatch.undo()
    summary = run.mutmap(str(good), str(out), models=[CTCF_MODEL], threads=1)
    assert summary.files == 2
    assert sorted(p.name for p in out.iterdir()) == ["mine.txt", f"rec1.{CTCF_MODEL}.tsv", f"rec2.{CTCF_MODEL}.tsv"]


def test_option_errors_are_raised_before_any_work(tmp_path):
    from dbtools.errors import DbtoolsError, UsageError
    from dbtools.mutmap.run import mutmap

    with pytest.raises(UsageError, match="--format"):
        mutmap("-", str(tmp_path), models=[CTCF_MODEL], formats=["jpg"])
    with pytest.raises(UsageError, match="--scale"):
        mutmap("-", str(tmp_path), models=[CTCF_MODEL], scale="log")
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(DbtoolsError, match="is a file"):
        mutmap("-", str(blocker), models=[CTCF_MODEL])
    with pytest.raises(UsageError, match="--genome"):
        list(__import__("dbtools.mutmap.files", fromlist=["read_targets"]).read_targets(None, "r.bed", None))
