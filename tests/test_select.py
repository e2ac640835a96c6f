from __future__ import annotations

import pytest

from dbtools.errors import UsageError
from dbtools.bank.selection import select_models


def ids(bank, selectors):
    return [bank.models[i].info.id for i in select_models(bank, selectors)]


def test_no_selector_selects_everything(bank):
    assert len(select_models(bank, None)) == len(bank) == 927


def test_id_protein_and_fields(bank):
    assert ids(bank, ["D00328.003"]) == ["D00328.003"]
    ctcf = ids(bank, ["CTCF"])
    assert "D00328.003" in ctcf and all(bank.models[bank.ids.index(i)].info.protein == "CTCF" for i in ctcf)
    assert ids(bank, ["ctcf"]) == ctcf
    chip = ids(bank, ["type:ChIP-seq"])
    assert chip and all(bank.models[bank.ids.index(i)].info.experiment == "ChIP-seq" for i in chip)
    mouse = ids(bank, ["species:Mus musculus"])
    assert mouse and all(bank.models[bank.ids.index(i)].info.species.casefold() == "mus musculus" for i in mouse)


def test_order_follows_selectors_without_repeats(bank):
    assert ids(bank, ["D00328.018,D00328.003", "D00328.018"]) == ["D00328.018", "D00328.003"]


def test_at_file(bank, tmp_path):
    f = tmp_path / "sel.txt"
    f.write_text("# my models\nD00328.003\n\nD00001.001  # a PBM model\n")
    assert ids(bank, [f"@{f}"]) == ["D00328.003", "D00001.001"]


@pytest.mark.parametrize("sel", ["NOSUCHPROTEIN", "D99999.999", "type:nothing"])
def test_unknown_selector_is_a_usage_error(bank, sel):
    with pytest.raises(UsageError, match=f"no model in the bank matches '{sel}'"):
        select_models(bank, [sel])


def test_missing_selector_file(bank, tmp_path):
    with pytest.raises(UsageError, match="cannot read selector file"):
        select_models(bank, [f"@{tmp_path / 'nope.txt'}"])
