"""The `dbtools` command as a user runs it: stdin/stdout, errors, exit codes, installed wheel."""

from __future__ import annotations

import math
import os
import shutil
import subprocess
import sys
import venv
from pathlib import Path

import pytest

from conftest import ROOT

CTCF_PEAK = "CGCGCCCCTGGTGGCTCGCGGGGCACTTCTCTGGGACCTGGGTCTGCGAGGGTCTCCAGGAGGCGCCGGGCGTTCGGGACCCAGACAGCGCCAGGGCTTTA"


def dbtools(*args, stdin: str | None = None, cwd=ROOT, env=None):
    return subprocess.run([sys.executable, "-m", "dbtools_cli.main", *args], input=stdin,
                          capture_output=True, text=True, cwd=cwd, env=env)


def assert_one_line_error(proc, code: int, *fragments: str):
    assert proc.returncode == code, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert "Traceback" not in proc.stderr
    for f in fragments:
        assert f in lines[0], lines[0]


def test_score_stdin_to_stdout_with_header():
    proc = dbtools("score", "-m", "D00328.003,D00328.018", "--device", "cpu", stdin=f"{CTCF_PEAK}\nACGT\n")
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert lines[0] == "D00328.003\tD00328.018"
    assert len(lines) == 3 and all(len(ln.split("\t")) == 2 for ln in lines[1:])
    peak, short = (float(v) for v in lines[1].split("\t")[:1] + lines[2].split("\t")[:1])
    assert peak > short  # a real CTCF peak outscores a 4-mer


def test_fasta_echo_names_no_head_and_class_prob(tmp_path):
    fa = tmp_path / "peaks.fa"
    fa.write_text(f">peak1 first\n{CTCF_PEAK[:50]}\n{CTCF_PEAK[50:]}\n>short\nacgu\n")
    raw = dbtools("score", str(fa), "-m", "D00328.003", "--echo", "--no-head", "--device", "cpu")
    assert raw.returncode == 0, raw.stderr
    rows = [ln.split("\t") for ln in raw.stdout.splitlines()]
    assert [r[0] for r in rows] == ["peak1", "short"]
    prob = dbtools("score", str(fa), "-m", "D00328.003", "--class-prob", "--device", "cpu")
    probs = [float(ln) for ln in prob.stdout.splitlines()[1:]]
    for r, p in zip(rows, probs):
        assert p == pytest.approx(1 / (1 + math.exp(-float(r[1]))), abs=2e-6)


def test_models_lists_tsv():
    proc = dbtools("models", "-m", "CTCF", "--tsv")
    assert proc.returncode == 0
    rows = [ln.split("\t") for ln in proc.stdout.splitlines()]
    assert rows[0][:3] == ["id", "protein", "type"]
    assert len(rows) > 2 and all(r[1] == "CTCF" for r in rows[1:])


def test_unknown_model_is_a_usage_error():
    assert_one_line_error(dbtools("score", "-m", "NOTAPROTEIN", stdin="ACGT\n"), 2, "NOTAPROTEIN")


def test_invalid_character_names_sequence_and_character():
    proc = dbtools("score", "-m", "D00328.003", "--device", "cpu", stdin="ACGT\nACGT\nACXT\n")
    assert_one_line_error(proc, 1, "sequence 3", "'X'")


def test_empty_input():
    assert_one_line_error(dbtools("score", "-m", "D00328.003", stdin=""), 1, "no sequences")


def test_missing_sequence_file(tmp_path):
    assert_one_line_error(dbtools("score", str(tmp_path / "nope.seq")), 1, "nope.seq", "not found")


@pytest.mark.parametrize("content", [b"", b"\x00" * 100, b"not a bank at all\n" * 20], ids=["empty", "zeros", "text"])
def test_bad_bank_file(tmp_path, content):
    bad = tmp_path / "bad.bank"
    bad.write_bytes(content)
    assert_one_line_error(dbtools("score", "--bank", str(bad), stdin="ACGT\n"), 1, str(bad))


def test_truncated_bank_file(tmp_path):
    from dbtools.bank.store import default_bank_path

    bad = tmp_path / "cut.bank"
    bad.write_bytes(default_bank_path().read_bytes()[:100_000])
    assert_one_line_error(dbtools("score", "--bank", str(bad), stdin="ACGT\n"), 1, "corrupt or truncated")


def test_import_deepbind_missing_field(tmp_path):
    params = tmp_path / "params"
    params.mkdir()
    (params / "D00001.001.txt").write_text("# deepbind 0.1\nreverse_complement = 1\n")
    db = tmp_path / "db.tsv"
    db.write_text("ID\tProtein\tType\tSpecies\nD00001.001\tX\tTF\tHomo sapiens\n")
    proc = dbtools("import-deepbind", str(db), str(params), "-o", str(tmp_path / "out.bank"))
    assert_one_line_error(proc, 1, "D00001.001.txt", "missing field 'num_detectors'")
    assert not (tmp_path / "out.bank").exists()


def test_bad_option_value_exits_2():
    proc = dbtools("score", "--window-size", "0", stdin="ACGT\n")
    assert proc.returncode == 2


def docker_build_context(tmp_path: Path) -> Path:
    """The files the Dockerfile's build stage copies (COPY lines before its second FROM), laid out as there."""
    context = tmp_path / "context"
    context.mkdir()
    stages = 0
    for line in (ROOT / "Dockerfile").read_text().splitlines():
        words = line.split()
        if words[:1] == ["FROM"]:
            stages += 1
        if stages == 1 and words[:1] == ["COPY"] and not words[1].startswith("--"):
            *sources, dest = words[1:]
            for src in sources:
                target = context / dest / Path(src).name if dest.endswith("/") else context / dest
                if (ROOT / src).is_dir():
                    shutil.copytree(ROOT / src, target, ignore=shutil.ignore_patterns("__pycache__"))
                else:
                    target.parent.mkdir(parents=True, exist_ok=True)
                    shutil.copy(ROOT / src, target)
    return context


def test_dockerfile_declares_entrypoint_user_and_torch_choice():
    text = (ROOT / "Dockerfile").read_text()
    assert 'ENTRYPOINT ["dbtools"]' in text
    users = [line.split()[1] for line in text.splitlines() if line.startswith("USER ")]
    assert users and users[-1] not in ("root", "0")
    assert "ARG TORCH=cpu" in text and '"$TORCH" = "cpu"' in text and '"$TORCH" = "cuda"' in text
    install = (ROOT / "docs" / "install.md").read_text()  # the README links the container set-up there
    assert "apptainer exec --nv" in install
    runs = [line for line in install.splitlines() if "docker run" in line]
    assert any("--gpus all" in line and '-v "$PWD":/data' in line for line in runs)


def test_wheel_from_the_docker_build_context_runs_outside_checkout(tmp_path):
    """The wheel the Dockerfile builds (from exactly the files it copies), installed into a fresh
    environment and run from another directory, finds the shipped bank and scores as the checkout does.
    (No Docker engine runs here, so the image itself is not built; this is its build stage.)"""
    wheels = tmp_path / "wheels"
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
                    "-w", str(wheels), str(docker_build_context(tmp_path))], check=True, capture_output=True)
    wheel = next(wheels.glob("dbtools-*.whl"))
    env_dir = tmp_path / "env"
    venv.create(env_dir, system_site_packages=False, with_pip=False)
    site = next((env_dir / "lib").glob("python3*/site-packages"))
    # the wheel's own files go into the fresh env; its dependencies come from this interpreter's env
    subprocess.run([sys.executable, "-m", "pip", "install", "--no-deps", "-q", "--target", str(site), str(wheel)],
                   check=True, capture_output=True)
    deps = [p for p in sys.path if p.endswith("site-packages")]
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(site), *deps]))
    proc = subprocess.run([str(env_dir / "bin" / "python"), "-c",
                           "import dbtools_models, sys; print(dbtools_models.__file__);"
                           "from dbtools_cli.main import run; sys.argv=['dbtools','score','-m','D00328.003'];"
                           "run()"], input=CTCF_PEAK + "\n", capture_output=True, text=True, cwd=tmp_path, env=env)
    assert proc.returncode == 0, proc.stderr
    where, header, value = proc.stdout.splitlines()
    assert where.startswith(str(site))
    here = dbtools("score", "-m", "D00328.003", stdin=CTCF_PEAK + "\n")
    assert header == "D00328.003" and here.stdout.splitlines() == [header, value]


def test_console_script_of_this_install():
    script = Path(sys.executable).parent / "dbtools"
    if not script.exists():
        pytest.skip(f"no console script at {script} (not installed with pip?)")
    proc = subprocess.run([str(script), "--version"], capture_output=True, text=True)
    assert proc.returncode == 0 and proc.stdout.startswith("dbtools ")
