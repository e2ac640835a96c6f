"""Importing the original DeepBind text models."""

from __future__ import annotations

import shutil

import numpy as np
import pytest

from conftest import shared_path
from dbtools.bank.deepbind_import import import_deepbind, parse_params, read_index, species_name
from dbtools.errors import DbtoolsError

PARAMS = """# deepbind 0.1\r
reverse_complement = 0\r
num_detectors = 2\r
detector_len = 3\r
has_avg_pooling = 1\r
num_hidden = 0\r
detectors = {det}\r
thresholds = -1.5,0.25\r
weights1 = 1,2,3,4\r
biases1 = -0.5\r
weights2 = \r
biases2 = \r
"""


def write_params(path, **override):
    text = PARAMS.format(det=",".join(str(i / 10) for i in range(24)))
    for key, value in override.items():
        lines = [ln for ln in text.splitlines(keepends=True) if not ln.startswith(key + " ")]
        text = "".join(lines) + (f"{key} = {value}\r\n" if value is not None else "")
    path.write_text(text)
    return path


def test_parse_layout_detectors_are_position_base_detector(tmp_path):
    arch, arrays = parse_params(write_params(tmp_path / "D1.txt"))
    assert (arch.detector_len, arch.num_detectors, arch.avg_pooling, arch.num_hidden) == (3, 2, True, 0)
    assert not arch.reverse_complement
    assert arrays["detectors"].shape == (3, 4, 2)
    assert arrays["detectors"][1, 2, 1] == pytest.approx((1 * 8 + 2 * 2 + 1) / 10)
    np.testing.assert_array_equal(arrays["weights1"][:, 0], [1, 2, 3, 4])


@pytest.mark.parametrize("override,message", [
    ({"thresholds": None}, "missing field 'thresholds'"),
    ({"thresholds": "1,2,3"}, "field 'thresholds' has 3 values, expected 2"),
    ({"weights1": "1,x,3,4"}, "field 'weights1' has a non-numeric value"),
    ({"detector_len": "three"}, "field 'detector_len' is not an integer"),
])
def test_bad_params_name_file_and_field(tmp_path, override, message):
    path = write_params(tmp_path / "D1.txt", **override)
    with pytest.raises(DbtoolsError) as e:
        parse_params(path)
    assert message in str(e.value) and str(path) in str(e.value)


def test_import_matches_shipped_bank(bank, tmp_path):
    db = shared_path("deepbind_db")
    params = tmp_path / "params"
    params.mkdir()
    ids = ["D00001.001", "D00328.003", "D00328.018"]
    for i in ids:
        shutil.copy(db / "params" / f"{i}.txt", params)
    imported = import_deepbind(db / "db.tsv", params)
    assert imported.ids == ids
    shipped = {m.info.id: m for m in bank.models}
    for m in imported.models:
        assert m.info.protein == shipped[m.info.id].info.protein
        for name, arr in m.arrays.items():
            np.testing.assert_array_equal(arr, shipped[m.info.id].arrays[name])


def test_species_names_are_normalised_and_the_published_spelling_kept(bank):
    assert species_name("Mus Musculus") == "Mus musculus" == species_name("mus  musculus")
    assert species_name("Homo sapiens") == "Homo sapiens" and species_name("") == ""
    index = read_index(shared_path("deepbind_db") / "db.tsv")
    published = {r["Species"] for r in index.values()}
    assert "Mus Musculus" in published  # the index spells one species two ways
    # the shipped bank: one spelling per species, the published one kept in the provenance
    species = {m.info.species for m in bank.models}
    assert all(s == species_name(s) for s in species) and "Mus Musculus" not in species
    renamed = [m for m in bank.models if "species_as_published" in m.info.provenance]
    assert renamed and all(m.info.provenance["species_as_published"] == index[m.info.id]["Species"] for m in renamed)
