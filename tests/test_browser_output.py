"""Browser-ready scan output: hit windows merged into sites, contig naming, tracks.tsv, hub and IGV sessions."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dbtools.errors import DbtoolsError
from dbtools.io.contigs import output_names, read_alias
from dbtools.scan.browser import igv_desktop_session, igv_js_session, trackdb_text, write_hub
from dbtools.scan.sites import SiteMerger, Sites, hit_windows


def brute_sites(start, model, minus, score, width):
    """Chains of overlapping windows per model and strand, each as its best window (earliest on ties)."""
    out = []
    for key in sorted(set(zip(model.tolist(), minus.tolist()))):
        idx = [i for i in range(len(start)) if (model[i], minus[i]) == key]
        idx.sort(key=lambda i: start[i])
        chain = [idx[0]]
        for i in idx[1:] + [None]:
            if i is not None and start[i] < start[chain[-1]] + width:
                chain.append(i)
                continue
            best = max(chain, key=lambda j: (score[j], -start[j]))
            out.append((int(start[best]), key[0], key[1], float(score[best])))
            if i is not None:
                chain = [i]
    return sorted(out)


@settings(max_examples=200, deadline=None)
@given(st.data())
def test_sites_are_the_best_window_of_each_chain_whatever_the_chunks(data):
    n, m, step, width = data.draw(st.integers(1, 60)), data.draw(st.integers(1, 3)), data.draw(st.integers(1, 7)), \
        data.draw(st.integers(1, 30))
    rng = np.random.default_rng(data.draw(st.integers(0, 2**31)))
    values = rng.integers(0, 4, size=(n, m)).astype(np.float32)  # ties are common
    rc_won = rng.random((n, m)) < 0.3
    keep = values >= 2
    cuts = sorted(set(data.draw(st.lists(st.integers(0, n), max_size=4))) | {0, n})
    merger, got = SiteMerger(), []
    for a, b in zip(cuts[:-1], cuts[1:]):
        got.append(merger.add(hit_windows(100 + a * step, step, width, [5 + j for j in range(m)], values[a:b],
                                          rc_won[a:b], keep[a:b])))
    got.append(merger.finish())
    sites = Sites.concat(got).sorted()
    rows, cols = np.nonzero(keep)
    want = brute_sites(100 + rows * step, 5 + cols, rc_won[rows, cols], values[rows, cols], width)
    assert sorted(zip(sites.start.tolist(), sites.model.tolist(), sites.minus.tolist(),
                      sites.score.tolist())) == want
    assert (sites.width == width).all()


def test_contig_names_follow_the_chosen_scheme(tmp_path):
    contigs = ["1", "20", "MT", "chrX", "GL000192.1"]
    assert output_names(contigs, "ucsc") == {"1": "chr1", "20": "chr20", "MT": "chrM", "chrX": "chrX",
                                             "GL000192.1": "chrGL000192.1"}
    assert output_names(["chr1", "chrM", "7"], "ensembl") == {"chr1": "1", "chrM": "MT", "7": "7"}
    assert output_names(contigs, "fasta") == {c: c for c in contigs}
    alias = tmp_path / "chromAlias.txt"
    alias.write_text("# ucsc\tensembl\tgenbank\nchr1_gl000192_random\tGL000192.1\tGL000192.1\nchr20\t20\tCM000682.2\n")
    assert output_names(contigs, str(alias))["GL000192.1"] == "chr1_gl000192_random"
    assert output_names(contigs, str(alias))["20"] == "chr20"
    with pytest.raises(DbtoolsError, match="would both be named 'chr1'"):
        output_names(["1", "chr1"], "ucsc")
    bad = tmp_path / "bad.txt"
    bad.write_text("chr1\t1\nchr2\t1\n")
    with pytest.raises(DbtoolsError, match="line 2: '1' is already an alias of 'chr1'"):
        read_alias(bad)


def _rows(n=3, values="score"):
    proteins = ["CTCF", "Gabpa", "ZNF 1"]
    exps = ["ChIP-seq", "SELEX", "RNAcompete"]
    return [{"file": f"D{i:05d}.001.bw", "model_id": f"D{i:05d}.001", "protein": proteins[i % 3],
             "experiment": exps[i % 3], "type": "TF", "species": "Homo sapiens" if i % 2 else "Mus musculus",
             "window": "101", "step": "10", "window_size": "", "average": "no", "threshold": "", "values": values,
             "genome": "20.fa.gz", "genome_sha256": "ab" * 32, "contig_names": "ucsc", "dbtools_version": "0"}
            for i in range(n)]


# trackDb settings each stanza must carry (UCSC's trackDb specification for hubs)
REQUIRED = {"track", "shortLabel", "longLabel", "type"}
REQUIRED_SUBTRACK = REQUIRED | {"bigDataUrl", "parent"}


def stanzas(text: str) -> list[dict[str, str]]:
    out = []
    for block in text.strip().split("\n\n"):
        settings_ = {}
        for line in block.splitlines():
            key, _, value = line.strip().partition(" ")
            assert key not in settings_, f"{key} twice in one stanza"
            settings_[key] = value
        out.append(settings_)
    return out


def test_hub_files_have_the_required_fields_and_group_by_protein(tmp_path):
    rows = _rows(20)
    files = write_hub(tmp_path, rows, "my scan", "hg19")
    assert sorted(p.name for p in files) == ["genomes.txt", "hub.txt", "trackDb.txt"]
    hub = dict(line.split(" ", 1) for line in (tmp_path / "hub.txt").read_text().splitlines())
    assert {"hub", "shortLabel", "longLabel", "genomesFile", "email"} <= set(hub)
    genomes = dict(line.split(" ", 1) for line in (tmp_path / "genomes.txt").read_text().splitlines())
    assert genomes == {"genome": "hg19", "trackDb": "hg19/trackDb.txt"}
    composite, *subs = stanzas((tmp_path / "hg19" / "trackDb.txt").read_text())
    assert REQUIRED <= set(composite) and composite["compositeTrack"] == "on"
    assert composite["windowingFunction"] == "maximum"
    assert composite["subGroup1"].startswith("protein Protein ") and "ZNF_1=ZNF_1" in composite["subGroup1"]
    assert len(subs) == 20 and all(REQUIRED_SUBTRACK <= set(s) for s in subs)
    assert len({s["track"] for s in subs}) == 20
    assert all(len(s["shortLabel"]) <= 17 and len(s["longLabel"]) <= 76 for s in subs)
    assert [s["shortLabel"] for s in subs][:2] == ["CTCF ChIP-seq"] * 2  # sorted by protein
    assert sum(s["parent"].endswith(" on") for s in subs) == 12  # the rest start hidden
    by_exp = {s["subGroups"].split("experiment=")[1].split()[0]: s["color"] for s in subs}
    assert len(set(by_exp.values())) == 3  # a colour per experiment type
    assert all(s["bigDataUrl"].startswith("../D") for s in subs)
    # -log10 p tracks share one fixed scale
    fixed = stanzas(trackdb_text(_rows(3, "log10p"), "p", ""))[0]
    assert fixed["autoScale"] == "off" and fixed["viewLimits"] == "0:10"


def test_igv_sessions_carry_the_same_tracks(tmp_path):
    rows = _rows(4)
    js = igv_js_session(rows, "chr20:1-2000000", "hg19", None)
    assert js["reference"] == {"id": "hg19"} and js["locus"] == "chr20:1-2000000"
    assert [t["name"] for t in js["tracks"]][0] == "CTCF ChIP-seq D00000.001"
    assert all(t["windowFunction"] == "max" and t["format"] == "bigwig" for t in js["tracks"])
    json.dumps(js)
    xml = ET.fromstring(igv_desktop_session(rows, "chr20:1-2000000", None, "/data/g.fa"))
    assert xml.get("genome") == "/data/g.fa" and xml.get("locus") == "chr20:1-2000000"
    tracks = xml.findall("./Panel/Track")
    assert [t.get("name") for t in tracks] == [t["name"] for t in js["tracks"]]
    assert {t.get("windowFunction") for t in tracks} == {"max"}
    assert [r.get("path") for r in xml.findall("./Resources/Resource")] == [t["url"] for t in js["tracks"]]
