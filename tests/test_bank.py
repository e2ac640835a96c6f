"""Bank files: round trip, and every way a file can be bad fails with one clear line."""

from __future__ import annotations

import json

import numpy as np
import pytest
from safetensors.numpy import save_file

from dbtools.bank.store import SCHEMA_VERSION, load_bank, save_bank
from dbtools.errors import DbtoolsError


@pytest.fixture(scope="module")
def small(bank):
    return bank.subset([0, 1, 100, 500])


def test_round_trip_keeps_arrays_and_metadata(small, tmp_path):
    path = tmp_path / "small.bank"
    save_bank(small, path)
    back = load_bank(path)
    assert back.ids == small.ids
    for a, b in zip(small.models, back.models):
        assert a.info == b.info
        for name, arr in a.arrays.items():
            np.testing.assert_array_equal(arr, b.arrays[name])
    assert not list(tmp_path.glob(".*tmp*")), "temporary file left behind"


def test_shipped_bank_is_self_describing(bank):
    assert len(bank) == 927
    info = next(m.info for m in bank.models if m.info.id == "D00328.003")
    assert (info.protein, info.species, info.experiment) == ("CTCF", "Homo sapiens", "SELEX")
    assert info.arch.detector_len == 20 and info.arch.num_hidden == 32
    assert "DeepBind" in info.source and info.provenance["dbtools_version"]


def rewrite_metadata(src, dst, edit):
    from safetensors import safe_open

    with safe_open(str(src), framework="numpy") as f:
        meta = f.metadata()
        tensors = {k: f.get_tensor(k) for k in f.keys()}
    doc = json.loads(meta["dbtools_bank"])
    edit(doc, tensors)
    meta["dbtools_bank"] = json.dumps(doc)
    save_file(tensors, str(dst), metadata=meta)


@pytest.mark.parametrize("case,message", [
    ("truncated", "corrupt or truncated"),
    ("garbage", "corrupt or truncated"),
    ("empty", "corrupt or truncated"),
    ("plain_safetensors", "not a dbtools bank"),
    ("newer_schema", "newer than this dbtools supports"),
    ("wrong_shape", "has shape"),
    ("missing", "not found"),
])
def test_bad_bank_files_fail_with_one_line(small, tmp_path, case, message):
    good = tmp_path / "good.bank"
    save_bank(small, good)
    bad = tmp_path / f"{case}.bank"
    if case == "truncated":
        bad.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    elif case == "garbage":
        bad.write_bytes(np.random.default_rng(0).bytes(5000))
    elif case == "empty":
        bad.write_bytes(b"")
    elif case == "plain_safetensors":
        save_file({"x": np.zeros(3, np.float32)}, str(bad))
    elif case == "newer_schema":
        rewrite_metadata(good, bad, lambda doc, t: doc.update(schema_version=SCHEMA_VERSION + 1))
    elif case == "wrong_shape":
        rewrite_metadata(good, bad, lambda doc, t: t.update({"0.thresholds": np.zeros(5, np.float32)}))
    with pytest.raises(DbtoolsError) as e:
        load_bank(bad)
    assert message in str(e.value)
    assert str(bad) in str(e.value)
    assert "\n" not in str(e.value)


def test_bank_subset_and_merge_on_the_command_line(tmp_path):
    from test_cli import assert_one_line_error, dbtools

    a, b, both = tmp_path / "a.bank", tmp_path / "b.bank", tmp_path / "both.bank"
    assert dbtools("bank", "subset", "-m", "CTCF", "-o", str(a)).returncode == 0
    assert dbtools("bank", "subset", "-m", "D00410.003,GATA1", "-o", str(b)).returncode == 0
    proc = dbtools("bank", "merge", str(a), str(b), "-o", str(both))
    assert proc.returncode == 0, proc.stderr
    ba, bb, merged = load_bank(a), load_bank(b), load_bank(both)
    assert merged.ids == ba.ids + bb.ids and all("CTCF" == m.info.protein for m in ba.models)
    for x, y in zip(ba.models + bb.models, merged.models):
        assert x.info == y.info and all((x.arrays[k] == y.arrays[k]).all() for k in x.arrays)
    assert_one_line_error(dbtools("bank", "merge", str(a), str(both), "-o", str(tmp_path / "x.bank")), 1,
                          "is also in", "IDs must be unique")
    assert not (tmp_path / "x.bank").exists()
