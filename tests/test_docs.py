"""The README and the documentation site: the site builds strictly, the README's first example works as
pasted, every command's page names every option, and examples use only options and data a user has."""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest
import typer

from conftest import ROOT

DOCS = ROOT / "docs"
README = ROOT / "README.md"
PAGES = sorted(DOCS.rglob("*.md"))


def commands() -> dict[tuple[str, ...], object]:
    """Every command of `dbtools` by its words (('score',), ('bank', 'merge'), ...)."""
    from dbtools_cli.main import app

    found = {}

    def walk(cmd, words):
        if hasattr(cmd, "commands"):
            for name, sub in cmd.commands.items():
                walk(sub, words + (name,))
        else:
            found[words] = cmd

    walk(typer.main.get_command(app), ())
    return found


def command_page(words: tuple[str, ...]) -> Path:
    """The page that documents a command: its own, or that of its group or pair."""
    if words[0] == "merge-tracks":
        return DOCS / "commands" / "scan.md"
    return DOCS / "commands" / f"{words[0]}.md"


def examples(text: str) -> list[str]:
    """The shell lines of a Markdown text's code blocks (indented by 4, or fenced but not Python)."""
    lines, fenced, language = [], False, ""
    for line in text.splitlines():
        if line.startswith("```"):
            fenced, language = not fenced, line[3:].strip()
            continue
        if fenced and language != "python":
            lines.append(line)
        elif not fenced and line.startswith("    "):
            lines.append(line[4:])
    return lines


def dbtools_calls(lines: list[str]) -> list[list[str]]:
    """The argument lists of every `dbtools ...` call in shell lines (continuations joined)."""
    text = re.sub(r"\\\n\s*", " ", "\n".join(lines))
    calls = []
    for line in text.splitlines():
        for part in re.split(r"[|;]|&&", line.split(" #")[0]):
            try:
                words = shlex.split(part)
            except ValueError:
                continue
            while words and "=" in words[0]:
                words = words[1:]
            if words[:1] == ["dbtools"]:
                calls.append(words[1:])
    return calls


def test_the_site_builds_strictly(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(tmp_path / "site")],
                          cwd=ROOT, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert (tmp_path / "site" / "api" / "index.html").read_text().count('id="dbtools.api.') >= 12


def test_every_page_is_in_the_nav():
    nav = (ROOT / "mkdocs.yml").read_text()
    missing = [str(p.relative_to(DOCS)) for p in PAGES if f": {p.relative_to(DOCS).as_posix()}" not in nav]
    assert missing == []


def test_the_readme_first_example_works_as_pasted(tmp_path):
    text = README.read_text()
    section = text.split("## First example", 1)[1]
    first = examples(section)[0]
    assert first.startswith("dbtools score demo/")
    env = dict(os.environ, PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}")
    proc = subprocess.run(["bash", "-c", f"set -o pipefail; {first}"], cwd=ROOT, env=env, capture_output=True,
                          text=True)
    assert proc.returncode == 0, proc.stderr
    rows = [line.split("\t") for line in proc.stdout.splitlines()]
    assert rows[0] == ["name", "D00328.003", "D00328.018"] and len(rows) == 4
    assert rows[1][0] == "chr20:61071667-61071767" and float(rows[2][1]) > 10


def test_the_readme_is_a_short_guide_with_one_example_per_command():
    text = README.read_text()
    assert len(text.splitlines()) <= 200
    called = {tuple(c[:2]) if c[0] in ("bank", "vcf") else (c[0],) for c in dbtools_calls(examples(text)) if c}
    documented = {w if w[0] in ("bank", "vcf") else w[:1] for w in commands()}
    assert documented - called <= {("bank", "merge"), ("vcf", "concat"), ("merge-tracks",)}, documented - called


@pytest.mark.parametrize("path", [README, *PAGES], ids=lambda p: str(p.relative_to(ROOT)))
def test_examples_use_options_that_exist_and_data_a_user_has(path):
    cmds = commands()
    text = path.read_text()
    for call in dbtools_calls(examples(text)):
        words = next((w for w in sorted(cmds, key=len, reverse=True) if tuple(call[:len(w)]) == w), None)
        if words is None:
            assert call[:1] in ([], ["--version"], ["COMMAND"]), f"{path.name}: unknown command in dbtools {call}"
            continue
        known = {o for p in cmds[words].params for o in getattr(p, "opts", [])} | {"--help", "-h"}
        used = {w.split("=")[0] for w in call[len(words):] if w.startswith("-") and w != "-"}
        assert used <= known, f"{path.name}: dbtools {' '.join(call)}: unknown {used - known}"
    assert "shared/data" not in "\n".join(examples(text)), f"{path.name}: an example reads ../shared/data"


def test_every_option_of_every_command_is_on_its_page():
    missing = []
    for words, cmd in commands().items():
        page = command_page(words).read_text()
        for param in cmd.params:
            names = [o for o in getattr(param, "opts", []) if o.startswith("--")]
            if names and names[0] not in page:
                missing.append(f"{' '.join(words)} {names[0]} ({command_page(words).name})")
    assert missing == []


def test_no_sentence_tells_the_history_of_the_work():
    history = re.compile(r"\b(I|[Ww]e) (found|tried|measured|checked|changed|decided)\b|\bBefore,|\bnow does\b|"
                         r"\b[Ss]ince 20\d\d\b|[Tt]his session")
    hits = [f"{p.relative_to(ROOT)}: {m.group(0)}" for p in [README, *PAGES] for m in history.finditer(p.read_text())]
    assert hits == []


def test_the_readme_python_example_runs_as_written(monkeypatch):
    blocks = re.findall(r"^```python\n(.*?)^```$", README.read_text(), flags=re.S | re.M)
    assert len(blocks) == 1
    monkeypatch.chdir(ROOT)
    session: dict = {}
    exec(compile(blocks[0], str(README), "exec"), session)
    assert session["scores"].shape == (34, 2)
    assert session["maps"].delta.shape == (101, 4, 2)
    assert session["track"].values.shape == (2000, 2)
