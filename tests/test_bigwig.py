"""dbtools.io.bigwig: BigWig files written without pyBigWig, read back by pyBigWig (libBigWig) and
by UCSC's own library (pybbi): values bit for bit, gaps, header order, summaries and zoom levels."""

from __future__ import annotations

import itertools
import struct

import numpy as np
import pyBigWig
import pytest

from dbtools.io import bigwig
from dbtools.io.bigwig import BigWigWriter, write_runs
from dbtools.io.tracks import write_bigwig

HEADER = [("chr1", 400_000), ("chrM", 16_569), ("chr2", 300_000), ("chr10", 90_000), ("chrUn", 5_000),
          ("chr3", 60_000)]


def walk(rng: np.random.Generator, n: int) -> np.ndarray:
    return np.cumsum(rng.normal(0.0, 0.1, n)).astype(np.float32)


def make_runs(seed: int = 0) -> list[tuple[str, int, int, np.ndarray]]:
    """(chrom, first, step, values) in header order: long runs, N-like gaps, sparse stretches
    (many short runs: bedGraph sections), steps 1, 10, 50 and 3, starts off the step grid, a
    contig in several runs, contigs without data (chrM, chrUn)."""
    rng = np.random.default_rng(seed)
    a = walk(rng, 250_000)
    a[20_000:23_500] = np.nan  # a gap
    a[100_000:130_000][rng.random(30_000) < 0.4] = np.nan  # sparse: runs of a few values
    a[-1] = np.nan
    b = walk(rng, 30_000)
    b[:7] = np.nan
    b[5_000:5_003] = np.nan
    c = walk(rng, 8_000)  # step 10, first base 7: items cross the zoom bins' edges
    c[rng.random(8_000) < 0.05] = np.nan
    d = walk(rng, 1_700)  # step 50, first base 3
    d[900:950] = np.nan
    e = walk(rng, 19_000)  # step 3, first base 2: runs of ~20 values between gaps of 1-4
    for k in np.flatnonzero(rng.random(19_000) < 0.05):
        e[k:k + rng.integers(1, 5)] = np.nan
    return [("chr1", 1_000, 1, a), ("chr1", 300_000, 1, b), ("chr2", 7, 10, c), ("chr10", 3, 50, d),
            ("chr3", 2, 3, e)]


def expected(header, runs) -> dict[str, np.ndarray]:
    """Per-base float32 values of each contig, NaN where nothing is written."""
    out = {c: np.full(n, np.nan, np.float32) for c, n in header}
    for chrom, first, step, values in runs:
        out[chrom][first:first + len(values) * step] = np.repeat(np.asarray(values, np.float32), step)
    return out


def write(path, runs, header=HEADER, chunk: int | None = None, **kw) -> None:
    with BigWigWriter(path, header, **kw) as w:
        for chrom, first, step, values in runs:
            c = chunk or len(values)
            for k in range(0, len(values), c):
                w.add(chrom, first + k * step, step, values[k:k + c])


def same_bits(got, want: np.ndarray) -> bool:
    """Equal as float32 bit patterns, NaN where NaN (pyBigWig hands float32 values as doubles)."""
    got = np.asarray(got, dtype=np.float64)
    gaps = np.isnan(want)
    return bool(np.array_equal(np.isnan(got), gaps)
                and np.array_equal(got[~gaps].astype(np.float32).view(np.uint32), want[~gaps].view(np.uint32)))


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    """The same runs written by BigWigWriter (in uneven chunks) and by pyBigWig (tracks.write_bigwig)."""
    tmp = tmp_path_factory.mktemp("bw")
    runs = make_runs()
    ours, ref = tmp / "ours.bw", tmp / "ref.bw"
    write(ours, runs, chunk=77_777)
    write_bigwig(ref, HEADER, runs)
    return runs, ours, ref


def test_round_trip_values_gaps_and_header_order(files):
    runs, ours, _ = files
    want = expected(HEADER, runs)
    bw = pyBigWig.open(str(ours))
    try:
        assert list(bw.chroms().items()) == HEADER
        h = bw.header()
        assert h["version"] == 4 and h["nLevels"] > 0
        finite = [v[~np.isnan(v)] for _, _, _, v in runs]
        assert h["nBasesCovered"] == sum(len(f) * s for f, (_, _, s, _) in zip(finite, runs))
        for chrom, n in HEADER:
            assert same_bits(bw.values(chrom, 0, n), want[chrom]), chrom
        assert bw.intervals("chrM") is None and bw.intervals("chrUn") is None
        # intervals: the finite values' items [first + k*step, + step) in order, neighbours of one
        # value possibly as one interval (as a bedGraph file would hold them)
        for chrom, first, step, values in runs[2:]:
            keep = np.flatnonzero(~np.isnan(values))
            got = bw.intervals(chrom)
            assert all((e - s) % step == 0 and (s - first) % step == 0 for s, e, _ in got)
            items = [(k, v) for s, e, v in got for k in range((s - first) // step, (e - first) // step)]
            assert [k for k, _ in items] == keep.tolist()
            assert same_bits([v for _, v in items], values[keep])
    finally:
        bw.close()


def test_repeated_values_of_short_runs_are_one_record_each(tmp_path):
    """A thresholded track: short runs between gaps, each a few repeated maxima; neighbours of one
    value become one bedGraph record, and every base reads back as written."""
    rng = np.random.default_rng(3)
    values = np.repeat(rng.normal(size=3000).astype(np.float32), rng.integers(1, 6, 3000))[:6000]
    values[rng.random(len(values)) < 0.15] = np.nan
    path = tmp_path / "t.bw"
    write(path, [("chr2", 40, 10, values)], header=[("chr2", 100_000)])
    bw = pyBigWig.open(str(path))
    try:
        got = bw.intervals("chr2")
        assert same_bits(bw.values("chr2", 0, 100_000), expected([("chr2", 100_000)], [("chr2", 40, 10, values)])["chr2"])
    finally:
        bw.close()
    ok = ~np.isnan(values)
    new = ok.copy()
    new[1:] &= ~(ok[:-1] & (values[1:] == values[:-1]))
    sections = -(-int(ok.sum()) // 1024)  # a record may be cut where a section ends
    assert int(new.sum()) <= len(got) <= int(new.sum()) + sections and len(got) < 0.6 * ok.sum()


def test_same_values_and_stats_as_pybigwig(files):
    _, ours, ref = files
    a, b = pyBigWig.open(str(ref)), pyBigWig.open(str(ours))
    try:
        assert a.chroms() == b.chroms()
        for chrom, n in HEADER:
            assert same_bits(b.values(chrom, 0, n), np.asarray(a.values(chrom, 0, n), np.float32)), chrom
        ranges = [("chr1", 0, 400_000, 1), ("chr1", 999, 1_001, 1), ("chr1", 18_000, 140_000, 9),
                  ("chr1", 299_990, 330_100, 4), ("chr2", 0, 300_000, 7), ("chr2", 17, 80_017, 3),
                  ("chr10", 0, 90_000, 6), ("chr10", 44_000, 48_000, 2)]
        for chrom, s, e, nb in ranges:
            for t in ("mean", "min", "max", "coverage", "std"):
                x = np.array(a.stats(chrom, s, e, type=t, nBins=nb, exact=True), dtype=np.float64)
                y = np.array(b.stats(chrom, s, e, type=t, nBins=nb, exact=True), dtype=np.float64)
                np.testing.assert_allclose(y, x, rtol=1e-6, atol=1e-9, err_msg=f"{chrom}:{s}-{e} {t}")
    finally:
        a.close()
        b.close()


def test_zoom_answers(files, tmp_path):
    """Zoom records cover aligned bins [k*r, (k+1)*r) of each contig, so a query whose bins are
    whole records of the level libBigWig picks (the coarsest <= half a bin) gets the exact answer
    from the zoom level; where pyBigWig's own records fall on the same bins (gap-free data from
    base 0), its zoom answers are the same."""
    _, ours, ref = files
    b, a = pyBigWig.open(str(ours)), pyBigWig.open(str(ref))
    try:
        assert [r for r, _, _, _ in zoom_headers(ours)] == [16 * 4 ** k for k in range(len(zoom_headers(ours)))]
        # bins of 2r: libBigWig takes level r; each bin is whole records of that level
        for chrom, s, bin_size, nb in [("chr1", 0, 2048, 190), ("chr1", 8192, 8192, 30), ("chr2", 0, 8192, 36),
                                       ("chr2", 20480, 2048, 100), ("chr10", 0, 16384, 5)]:
            e = s + bin_size * nb
            for t in ("mean", "min", "max", "coverage", "std"):
                exact = np.array(a.stats(chrom, s, e, type=t, nBins=nb, exact=True), dtype=np.float64)
                zoom = np.array(b.stats(chrom, s, e, type=t, nBins=nb), dtype=np.float64)
                np.testing.assert_allclose(zoom, exact, rtol=1e-4 if t == "std" else 1e-6, atol=1e-7,
                                           err_msg=f"{chrom}:{s}-{e} {t}")
    finally:
        a.close()
        b.close()
    # gap-free from base 0: pyBigWig's zoom records are the same bins (inside the data: its last
    # record reaches past the data's end, so its answers there are off where ours stay exact)
    v = walk(np.random.default_rng(5), 200_000)
    header = [("c", 250_000)]
    write(tmp_path / "o.bw", [("c", 0, 1, v)], header=header)
    write_bigwig(tmp_path / "r.bw", header, [("c", 0, 1, v)])
    a, b = pyBigWig.open(str(tmp_path / "r.bw")), pyBigWig.open(str(tmp_path / "o.bw"))
    try:
        assert b.header()["nLevels"] > 0
        for s, e, nb in [(0, 196_608, 96), (0, 196_608, 24), (12_288, 37_888, 50)]:
            for t in ("mean", "min", "max", "coverage"):
                np.testing.assert_allclose(np.array(b.stats("c", s, e, type=t, nBins=nb), dtype=np.float64),
                                           np.array(a.stats("c", s, e, type=t, nBins=nb), dtype=np.float64),
                                           rtol=1e-6, err_msg=f"{s}-{e} {t}")
    finally:
        a.close()
        b.close()


def zoom_headers(path) -> list[tuple[int, int, int, int]]:
    with open(path, "rb") as fh:
        data = fh.read(64 + 24 * 10)
    n = struct.unpack_from("<H", data, 6)[0]
    return [struct.unpack_from("<IIQQ", data, 64 + 24 * i) for i in range(n)]


def test_bytes_do_not_depend_on_threads_or_chunks(files, tmp_path):
    runs, ours, _ = files
    want = ours.read_bytes()
    for threads in (1, 2, 3):
        path = tmp_path / f"t{threads}.bw"
        write(path, runs, chunk=77_777, threads=threads)
        assert path.read_bytes() == want, threads
    # a contiguous run cut anywhere into calls gives the same file
    rng = np.random.default_rng(7)
    for k in range(3):
        path = tmp_path / f"c{k}.bw"
        with BigWigWriter(path, HEADER) as w:
            for chrom, first, step, values in runs:
                many = 3000 if chrom == "chr3" else 40  # chr3: pieces of a few values, many all NaN
                cuts = np.unique(np.concatenate([[0, len(values)], rng.integers(0, len(values), many)]))
                for i, j in itertools.pairwise(cuts):
                    w.add(chrom, first + int(i) * step, step, values[i:j])
        assert path.read_bytes() == want, k
    write_runs(tmp_path / "w.bw", HEADER, runs, chunk=77_777)
    assert (tmp_path / "w.bw").read_bytes() == want
    # zoom sections spooled to a temporary file from the first byte (many writers open at once)
    with BigWigWriter(tmp_path / "s.bw", HEADER, spool_memory=1) as w:
        for chrom, first, step, values in runs:
            w.add(chrom, first, step, values)
    assert (tmp_path / "s.bw").read_bytes() == want
    assert not list(tmp_path.glob(".bigwig-zoom-*"))


def test_items_cut_by_every_bin_edge_are_summed_as_the_general_path_sums_them():
    """The strided path for NaN-free items off the zoom bins' grid gives the records, sums bit
    for bit, of the general path (so a file's bytes do not depend on which path a call took)."""
    rng = np.random.default_rng(5)
    taken = 0
    for _ in range(400):
        step = int(rng.choice([2, 3, 5, 10, 50]))
        r = max(10, 16 * step)
        start = int(rng.integers(0, 3000)) * step + int(rng.integers(1, step))
        n = int(rng.integers(1, 300))
        vals = (rng.normal(size=n) * 10 ** rng.uniform(-3, 3)).astype(np.float32)
        got = bigwig._split_items(0, start, step, vals, r)
        if got is None:
            assert (n - 1 - ((start // r + 1) * r - start) // step) // (r // step) < 1
            continue
        taken += 1
        want = bigwig._items(0, start, step, vals, np.arange(n, dtype=np.int64), r, False)
        for f in bigwig._Records.__slots__:
            assert np.array_equal(getattr(got, f), getattr(want, f)), f
    assert taken > 200


def test_ucsc_library_reads_the_file(files):
    bbi = pytest.importorskip("bbi")  # pybbi: UCSC's kent library
    runs, ours, _ = files
    path = str(ours)
    want = expected(HEADER, runs)
    assert bbi.is_bigwig(path)
    assert bbi.chromsizes(path) == dict(HEADER)
    for chrom, n in HEADER:
        got = bbi.fetch(path, chrom, 0, n, missing=np.nan)
        assert same_bits(got, want[chrom]), chrom
    info = bbi.info(path)
    values = np.concatenate([np.repeat(v[~np.isnan(v)].astype(np.float64), s) for _, _, s, v in runs])
    assert info["version"] == 4 and info["isCompressed"] and info["zoomLevels"] == len(zoom_headers(ours))
    assert info["summary"]["basesCovered"] == len(values)
    assert info["summary"]["min"] == values.min() and info["summary"]["max"] == values.max()
    assert info["summary"]["mean"] == pytest.approx(values.mean(), rel=1e-9)
    assert info["summary"]["std"] == pytest.approx(values.std(ddof=1), rel=1e-6)
    assert list(bbi.zooms(path)) == [r for r, _, _, _ in zoom_headers(ours)]
    # summaries: UCSC's reader from the zoom levels, and exact, on aligned bins agree
    for chrom, s, e, nb in [("chr1", 0, 204_800, 100), ("chr1", 8192, 8192 + 30 * 8192, 30),
                            ("chr2", 0, 36 * 8192, 36), ("chr10", 0, 5 * 16384, 5)]:
        for stat in ("mean", "min", "max", "cov"):
            zoom = bbi.fetch(path, chrom, s, e, bins=nb, summary=stat, missing=np.nan)
            exact = bbi.fetch(path, chrom, s, e, bins=nb, summary=stat, exact=True, missing=np.nan)
            np.testing.assert_allclose(zoom, exact, rtol=1e-6, atol=1e-7, err_msg=f"{chrom}:{s}-{e} {stat}")
            b = want[chrom][s:e].reshape(nb, -1)
            ok = ~np.isnan(b)
            with np.errstate(invalid="ignore", divide="ignore"):
                direct = {"mean": np.nansum(b, 1, dtype=np.float64) / ok.sum(1), "min": np.nanmin(
                    np.where(ok, b, np.inf), 1), "max": np.nanmax(np.where(ok, b, -np.inf), 1),
                          "cov": ok.mean(1)}[stat]
            direct = np.where(ok.any(1), direct, np.nan)  # bins without data: `missing`
            np.testing.assert_allclose(exact, direct, rtol=1e-6, atol=1e-7, err_msg=f"{chrom}:{s}-{e} {stat}")


def test_many_contigs_and_a_deep_index(tmp_path, monkeypatch):
    """300 contigs: a two-level chromosome B+ tree that UCSC's reader searches by name; sections of
    2 items: more than 256*256 sections, a three-level R-tree."""
    header = [(f"scaffold_{i}", 1_000 + i) for i in range(300)]
    rng = np.random.default_rng(11)
    path = tmp_path / "many.bw"
    with BigWigWriter(path, header) as w:
        for i in (0, 150, 299):
            w.add(f"scaffold_{i}", i, 1, walk(rng, 900))
    bw = pyBigWig.open(str(path))
    try:
        assert list(bw.chroms().items()) == header
        assert not np.isnan(bw.values("scaffold_299", 299, 1199)).any()
        assert np.isnan(bw.values("scaffold_298", 0, 1298)).all()
    finally:
        bw.close()
    bbi = pytest.importorskip("bbi")
    assert bbi.chromsizes(str(path)) == dict(header)
    with bbi.open(str(path)) as f:  # every name found by UCSC's search of the tree (keys sorted bytewise)
        for i, (chrom, n) in enumerate(header):
            got = f.fetch(chrom, 0, n, missing=np.nan)
            assert np.isnan(got[:i]).all() and np.isnan(got[i:i + 900]).all() == (i not in (0, 150, 299))

    monkeypatch.setattr(bigwig, "ITEMS_PER_SLOT", 2)
    monkeypatch.setattr(bigwig, "SECTION_ITEMS", 2)
    v = walk(rng, 2 * 256 * 256 + 5_000)
    header = [("c", len(v) + 10)]
    path = tmp_path / "deep.bw"
    with BigWigWriter(path, header, zoom_levels=2) as w:
        w.add("c", 10, 1, v)
    leaf, levels = index_depth(path)
    assert levels == 3 and leaf == -(-len(v) // 2)
    bw = pyBigWig.open(str(path))
    try:
        assert same_bits(bw.values("c", 10, 10 + len(v)), v)
        assert same_bits(bw.values("c", 131_000, 131_100), v[130_990:131_090])
    finally:
        bw.close()
    assert same_bits(bbi.fetch(str(path), "c", 10, 10 + len(v), missing=np.nan), v)


def index_depth(path) -> tuple[int, int]:
    """(entries, levels) of the data's R-tree."""
    with open(path, "rb") as fh:
        data = fh.read()
    index = struct.unpack_from("<Q", data, 24)[0]
    entries = struct.unpack_from("<Q", data, index + 8)[0]
    levels, node = 1, index + 48
    while data[node] == 0:  # not a leaf: follow the first child
        node = struct.unpack_from("<Q", data, node + 4 + 16)[0]
        levels += 1
    return entries, levels


def test_empty_file_and_float64_input(tmp_path):
    path = tmp_path / "empty.bw"
    with BigWigWriter(path, HEADER):
        pass
    bw = pyBigWig.open(str(path))
    try:
        assert list(bw.chroms().items()) == HEADER
        assert bw.header()["nBasesCovered"] == 0 and bw.header()["nLevels"] == 0
        assert np.isnan(bw.values("chr1", 0, 1000)).all()
    finally:
        bw.close()
    x = np.array([0.1, np.nan, 1e-40, -3.3e38, 2.0], dtype=np.float64)  # rounded to float32 like pyBigWig
    path = tmp_path / "f64.bw"
    with BigWigWriter(path, HEADER, zoom_levels=0) as w:
        w.add("chr2", 5, 2, x)
    bw = pyBigWig.open(str(path))
    try:
        assert same_bits(bw.values("chr2", 5, 15), np.repeat(x.astype(np.float32), 2))
        assert bw.header()["nLevels"] == 0 and bw.header()["nBasesCovered"] == 8
    finally:
        bw.close()


def test_bad_calls(tmp_path):
    v = np.zeros(10, np.float32)
    with BigWigWriter(tmp_path / "a.bw", HEADER) as w:
        w.add("chr2", 0, 1, v)
        for (chrom, start, step), message in ((("chr1", 0, 1), "header order"),
                                              (("chr2", 5, 1), "positions must increase"),
                                              (("chr2", 299_995, 1), "past the contig's end"),
                                              (("chrZ", 0, 1), "not in the BigWig's header"),
                                              (("chr2", 100, 0), "step")):
            with pytest.raises(ValueError, match=message):
                w.add(chrom, start, step, v)
    with pytest.raises(ValueError, match="unique"):
        BigWigWriter(tmp_path / "b.bw", [("a", 10), ("a", 20)])
