"""docs/tutorial.md as a user runs it: its Python blocks in order, in one session, on the demo data."""

from __future__ import annotations

import re

from conftest import ROOT

TUTORIAL = ROOT / "docs" / "tutorial.md"


def python_blocks(text: str) -> list[str]:
    return re.findall(r"^```python\n(.*?)^```$", text, flags=re.S | re.M)


def test_the_tutorial_runs_and_draws_its_figures(tmp_path, monkeypatch, capsys):
    blocks = python_blocks(TUTORIAL.read_text())
    assert len(blocks) >= 6
    (tmp_path / "demo").symlink_to(ROOT / "demo")
    monkeypatch.chdir(tmp_path)
    session: dict = {"__name__": "__tutorial__"}
    for block in blocks:
        exec(compile(block, str(TUTORIAL), "exec"), session)
    printed = capsys.readouterr().out
    assert session["auc"] > 0.9  # the published GABPA model separates peaks from shuffles
    assert session["effects"].diff.shape == (259, 2)
    assert session["track"].values.shape == (20_000, 3)
    assert re.search(r"Bank\(927 models\)", printed)
    for name in ("mutmap.png", "scan_tracks.png", "small.bank"):
        assert (tmp_path / "tutorial_out" / name).stat().st_size > 1000, name
