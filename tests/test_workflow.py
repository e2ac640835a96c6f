"""The Snakemake workflow (workflow/Snakefile) end to end on small real inputs: its merged outputs
equal the single-machine outputs of the same dbtools commands; a killed run, restarted, finishes
with the same outputs; the Slurm profile's dry run places the GPU jobs. Also `dbtools vcf split|concat`."""

from __future__ import annotations

import gzip
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from conftest import ROOT, shared_path

pytest.importorskip("snakemake")

SNAKEFILE = ROOT / "workflow" / "Snakefile"
PROFILE = ROOT / "workflow" / "profiles" / "slurm"
BIN = Path(sys.executable).parent
DBTOOLS = str(BIN / "dbtools")
SCAN_MODELS = ["D00328.018", "D00409.004"]  # CTCF and GABPA ChIP-seq models
CAL_OPTIONS = "--quick --trials 1 --folds 2 --final-trials 1 --max-steps 10 --checkpoint-every 5"
SLICES = {"sliceA": (31_000_000, 31_020_000), "sliceB": (45_000_000, 45_012_000)}
ENV = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}


def snakemake(*args: str, cwd: Path, check: bool = True, **kw) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", "snakemake", "-s", str(SNAKEFILE), "--configfile", "config.yaml", *args]
    proc = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, env=ENV, **kw)
    if check and proc.returncode != 0:
        raise AssertionError(f"snakemake {' '.join(args)} failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-5000:]}")
    return proc


def write_config(folder: Path, inputs: dict, calibrate: bool, models_per_group: int = 1, vcf: bool = True,
                 shards: int = 2) -> None:
    import yaml

    cfg = {
        "dbtools": DBTOOLS,
        "device": "cpu",
        "calibrate": {"spec": str(inputs["spec"]) if calibrate else "", "group_size": 1, "options": CAL_OPTIONS},
        "scan": {"genomes": {"slice": str(inputs["fasta"])}, "models": SCAN_MODELS,
                 "models_per_group": models_per_group,
                 "shards": shards, "options": "--step 50"},
        # with a calibration, the variants are scored with the bank it trains
        "vareffect": {"vcfs": {"snvs": str(inputs["vcf"])} if vcf else {}, "genome": str(inputs["genome"]),
                      "bank": "calibrated" if calibrate else "", "models": [] if calibrate else SCAN_MODELS,
                      "shards": shards},
        "resources": {k: {"threads": 1} for k in ("calibrate", "scan", "vareffect")},
    }
    (folder / "config.yaml").write_text(yaml.safe_dump(cfg))


@pytest.fixture(scope="module")
def inputs(tmp_path_factory):
    """A 2-contig slice of chr20, the first 200 chr20 promoter SNVs, and two ENCODE proteins."""
    import pysam

    from dbtools.io.genome import Genome

    genome = shared_path("genome", "20.fa.gz")
    vcf_src = shared_path("vcf", "deepfind_derived_promoter_snvs_chr20_b37.vcf")
    encode = shared_path("encode")
    folder = tmp_path_factory.mktemp("inputs")
    fasta = folder / "slice.fa"
    with Genome(str(genome)) as g, open(fasta, "w") as fh:
        for name, (a, b) in SLICES.items():
            seq = g.fetch("20", a, b)
            fh.write(f">{name}\n" + "".join(seq[k:k + 60] + "\n" for k in range(0, len(seq), 60)))
    pysam.faidx(str(fasta))
    lines = vcf_src.read_text().splitlines(keepends=True)
    header = [ln for ln in lines if ln.startswith("#")]
    records = [ln for ln in lines if not ln.startswith("#")][:200]
    vcf = folder / "snvs.vcf"
    vcf.write_text("".join(header + records))
    spec = folder / "proteins.tsv"
    rows = [("GABPA", "GABPA_GM12878_GABP_HudsonAlpha_AC.seq.gz"),
            ("ELK1", "ELK1_GM12878_ELK1_(1277-1)_Stanford_AC.seq.gz")]
    spec.write_text("id\tprotein\ttrain\trows\n" + "".join(f"{p}\t{p}\t{encode / f}\t1:100\n" for p, f in rows))
    return {"fasta": fasta, "vcf": vcf, "spec": spec, "genome": genome, "rows": rows, "encode": encode}


def run_commands(commands: list[list[str]], cwd: Path) -> None:
    """The given dbtools command lines in one process (one import of torch), one thread as in the workflow."""
    code = ("import sys; from dbtools_cli.main import app\n"
            f"for args in {commands!r}:\n"
            "    app(args, standalone_mode=False)\n")
    proc = subprocess.run([sys.executable, "-c", code], cwd=cwd, capture_output=True, text=True, env=ENV)
    assert proc.returncode == 0, proc.stderr[-5000:]


def calibration_commands(inputs: dict, folder: Path, options: str) -> list[list[str]]:
    """One machine's calibration of each protein on its own (one spec each, as the workflow's groups
    of 1), then the merge of their banks into folder/calibrated.bank."""
    commands, banks = [], []
    for k, (protein, data) in enumerate(inputs["rows"], 1):
        spec = folder / f"g{k}.tsv"
        spec.write_text(f"id\tprotein\ttrain\trows\n{protein}\t{protein}\t{inputs['encode'] / data}\t1:100\n")
        banks.append(str(folder / f"g{k}.bank"))
        commands.append(["calibrate", "--spec", str(spec), "-o", str(folder / f"g{k}.json"), "--bank-out", banks[-1],
                         "--no-plots", "--seed", "0", "--device", "cpu", *options.split()])
    commands.append(["bank", "merge", *banks, "-o", str(folder / "calibrated.bank")])
    return commands


@pytest.fixture(scope="module")
def single_machine(inputs, tmp_path_factory):
    """The outputs of the same dbtools commands on one machine, unsharded."""
    folder = tmp_path_factory.mktemp("single")
    commands = calibration_commands(inputs, folder, CAL_OPTIONS)
    commands.append(["scan", str(inputs["fasta"]), "-m", ",".join(SCAN_MODELS), "--step", "50",
                     "--out-dir", str(folder / "tracks"), "--device", "cpu"])
    commands.append(["vareffect", str(inputs["vcf"]), "-g", str(inputs["genome"]), "-m", ",".join(SCAN_MODELS),
                     "-o", str(folder / "snvs.dbt.vcf.gz"), "--device", "cpu"])
    commands.append(["vareffect", str(inputs["vcf"]), "-g", str(inputs["genome"]), "-b", "calibrated.bank",
                     "-o", str(folder / "snvs.calibrated.dbt.vcf.gz"), "--device", "cpu"])
    run_commands(commands, folder)
    return folder


@pytest.fixture(scope="module")
def workflow_run(inputs, tmp_path_factory):
    """The whole workflow, local executor, 2 cores."""
    folder = tmp_path_factory.mktemp("workflow")
    write_config(folder, inputs, calibrate=True)
    snakemake("--cores", "2", cwd=folder)
    return folder / "results"


def assert_same_banks(got_path: Path, want_path: Path) -> None:
    from dbtools.bank.store import load_bank

    got, want = load_bank(got_path), load_bank(want_path)
    assert got.ids == want.ids
    for a, b in zip(got.models, want.models):
        assert sorted(a.arrays) == sorted(b.arrays)
        for name in a.arrays:
            np.testing.assert_array_equal(a.arrays[name], b.arrays[name], err_msg=f"{a.info.id} {name}")
        ja, jb = a.info.to_json(), b.info.to_json()
        ja.pop("provenance", None), jb.pop("provenance", None)  # names the spec file and command
        assert ja == jb


def assert_same_tracks(got: Path, want: Path) -> None:
    import pyBigWig

    a, b = pyBigWig.open(str(got)), pyBigWig.open(str(want))
    try:
        assert a.chroms() == b.chroms()
        n = 0
        for chrom in a.chroms():
            ia, ib = a.intervals(chrom) or (), b.intervals(chrom) or ()
            assert ia == ib, f"{got.name} {chrom}"
            n += len(ia)
        assert n > 0
    finally:
        a.close()
        b.close()


def vcf_lines(path: Path) -> tuple[list[str], list[str]]:
    """(header lines without each job's ##dbtools_command, record lines)."""
    lines = gzip.open(path, "rt").read().splitlines()
    header = [ln for ln in lines if ln.startswith("#") and not ln.startswith("##dbtools_command=")]
    return header, [ln for ln in lines if not ln.startswith("#")]


def assert_same_outputs(results: Path, single: Path, calibrate: bool, models_per_group: int = 1,
                        vcf: bool = True) -> None:
    if calibrate:
        assert_same_banks(results / "calibrated.bank", single / "calibrated.bank")
    for k, model in enumerate(SCAN_MODELS):
        group = f"models{k // models_per_group + 1:04d}"
        assert_same_tracks(results / "scan" / "slice" / group / f"{model}.bw",
                           single / "tracks" / f"{model}.bw")
    if not vcf:
        return
    got = results / "vareffect" / "snvs.dbt.vcf.gz"
    assert Path(str(got) + ".tbi").is_file()
    head, recs = vcf_lines(got)
    want_head, want_recs = vcf_lines(single / ("snvs.calibrated.dbt.vcf.gz" if calibrate else "snvs.dbt.vcf.gz"))
    assert len(recs) == 200 and recs == want_recs
    assert head == want_head


def test_workflow_outputs_equal_single_machine(workflow_run, single_machine):
    results = workflow_run
    # the work really was sharded: one bank per protein group, two contig shards per model group,
    # two VCF shards
    assert sorted(p.name for p in (results / "calibrate").glob("g*.bank")) == ["g0001.bank", "g0002.bank"]
    assert len(list((results / "scan" / "slice").glob("models*/shard*of2.done"))) == 4
    assert len(list((results / "vareffect" / "snvs" / "scored").glob("part*.vcf"))) == 2
    assert_same_outputs(results, single_machine, calibrate=True)


def test_rerun_finds_nothing_to_do(workflow_run):
    proc = snakemake("--cores", "2", "--dry-run", cwd=workflow_run.parent)
    assert "Nothing to be done" in proc.stdout + proc.stderr


GPU_RULES = {"calibrate_group", "scan_shard", "vareffect_shard"}


def job_resources(out: str) -> dict[str, list[str]]:
    """rule -> the resources line of each of its jobs in a dry run's output."""
    found: dict[str, list[str]] = {}
    for block in out.split("\nrule ")[1:]:
        rule = block.split(":", 1)[0].strip()
        line = next((ln.strip() for ln in block.splitlines() if ln.strip().startswith("resources:")), "")
        found.setdefault(rule, []).append(line)
    return found


def test_slurm_profile_dry_run_places_gpu_jobs(inputs, tmp_path):
    pytest.importorskip("snakemake_executor_plugin_slurm")
    write_config(tmp_path, inputs, calibrate=True)
    proc = snakemake("--profile", str(PROFILE), "--dry-run", cwd=tmp_path)
    out = proc.stdout + proc.stderr
    counts = {}
    for line in out.splitlines():
        parts = line.split()
        if len(parts) == 2 and parts[1].isdigit():
            counts[parts[0]] = int(parts[1])
    assert counts["calibrate_group"] == 2 and counts["scan_shard"] == 4 and counts["vareffect_shard"] == 2
    assert counts["merge_calibrated_banks"] == 1 and counts["concat_vcf"] == 1
    assert counts["merge_tracks_models0001"] == 1 and counts["merge_tracks_models0002"] == 1
    resources = job_resources(out)
    assert set(resources) >= GPU_RULES
    for rule, lines in resources.items():
        for line in lines:
            if rule in GPU_RULES:
                assert "gpu=1" in line and "slurm_partition=gpu" in line, (rule, line)
            else:
                assert "gpu=1" not in line, (rule, line)


def test_config_gpu_and_container(inputs, tmp_path):
    """gpu: true gives the GPU-capable rules gpu=1; the container image is used under
    --sdm apptainer (a stand-in apptainer on PATH: the dry run only asks its version)."""
    write_config(tmp_path, inputs, calibrate=True)
    fake = tmp_path / "bin"
    fake.mkdir()
    (fake / "apptainer").write_text("#!/bin/sh\necho 'apptainer version 1.3.0'\n")
    (fake / "apptainer").chmod(0o755)
    image = "docker://ghcr.io/example/dbtools:cuda"
    env = {**ENV, "PATH": f"{fake}{os.pathsep}{ENV.get('PATH', '')}"}
    cmd = [sys.executable, "-m", "snakemake", "-s", str(SNAKEFILE), "--configfile", "config.yaml", "--dry-run",
           "--sdm", "apptainer", "--config", "gpu=true", f"container={image}"]
    proc = subprocess.run(cmd, cwd=tmp_path, capture_output=True, text=True, env=env)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out[-5000:]
    assert f"image {image} will be pulled" in out
    resources = job_resources(out)
    for rule in GPU_RULES:
        assert resources[rule] and all("gpu=1" in line for line in resources[rule]), rule
    assert all("gpu=1" not in line for line in resources["merge_calibrated_banks"])


def kill_workflow_when(cwd, ready, timeout: float, poll: float) -> None:
    """Run the workflow in cwd and SIGKILL it, jobs included, as soon as ready() is true."""
    cmd = [sys.executable, "-m", "snakemake", "-s", str(SNAKEFILE), "--configfile", "config.yaml", "--cores", "2"]
    proc = subprocess.Popen(cmd, cwd=cwd, env=ENV, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)
    try:
        deadline = time.monotonic() + timeout
        while not ready():
            assert proc.poll() is None, "the workflow ended before it could be killed"
            assert time.monotonic() < deadline
            time.sleep(poll)
        os.killpg(proc.pid, signal.SIGKILL)
    finally:
        proc.wait()


def test_killed_run_restarts_to_the_same_outputs(inputs, single_machine, tmp_path):
    """SIGKILL of snakemake and its jobs (a lost node) once the first scan shard is done; the rerun
    redoes only the unfinished jobs and ends with the single-machine tracks (the scan part only,
    to keep the test short: every part restarts the same way)."""
    write_config(tmp_path, inputs, calibrate=False, models_per_group=2, vcf=False)
    full = len(jobs_to_run(snakemake("--cores", "2", "--dry-run", cwd=tmp_path)))
    results = tmp_path / "results"
    kill_workflow_when(tmp_path, lambda: list(results.glob("scan/slice/models*/shard*.done")), 120, 0.1)
    assert not list(results.glob("scan/slice/*/*.bw"))
    snakemake("--unlock", cwd=tmp_path)
    left = jobs_to_run(snakemake("--cores", "2", "--dry-run", "--rerun-incomplete", cwd=tmp_path))
    # the group's bank (done before any shard started) is kept; the merge, at least, is left
    assert 0 < len(left) < full and "scan_model_group" not in left and "merge_tracks_models0001" in left
    snakemake("--cores", "2", "--rerun-incomplete", cwd=tmp_path)
    assert_same_outputs(results, single_machine, calibrate=False, models_per_group=2, vcf=False)


LONG_CAL = "--quick --trials 1 --folds 2 --final-trials 1 --max-steps 200 --checkpoint-every 10"


def test_killed_calibration_resumes_to_the_uninterrupted_bank(inputs, tmp_path):
    """SIGKILL of snakemake and its jobs while a calibration job is mid-way (its checkpoint saved, no
    report yet); the rerun resumes that calibration from its checkpoint and the merged bank equals
    the same calibrations run without interruption, bit for bit."""
    import yaml

    write_config(tmp_path, inputs, calibrate=True, vcf=False)
    cfg = yaml.safe_load((tmp_path / "config.yaml").read_text())
    cfg["calibrate"]["options"] = LONG_CAL
    cfg["scan"]["genomes"] = {}
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(cfg))
    cal = tmp_path / "results" / "calibrate"
    kill_workflow_when(tmp_path, lambda: [f for f in cal.glob("g*.json.ckpt/**/*") if f.is_file()], 180, 0.05)
    states = sorted(p.name for p in cal.glob("g*.json.ckpt"))
    assert states and not (tmp_path / "results" / "calibrated.bank").exists()
    assert all(not (cal / name.removesuffix(".ckpt")).exists() for name in states)
    snakemake("--unlock", cwd=tmp_path)
    snakemake("--cores", "2", "--rerun-incomplete", cwd=tmp_path)
    assert not list(cal.glob("g*.json.ckpt"))  # the resumed calibrations finished and cleared their states

    single = tmp_path / "single"
    single.mkdir()
    run_commands(calibration_commands(inputs, single, LONG_CAL), single)
    assert_same_banks(tmp_path / "results" / "calibrated.bank", single / "calibrated.bank")


def test_one_shard_each(inputs, single_machine, tmp_path):
    """shards: 1 (no merge step in dbtools): the scan job's own tracks and the one scored VCF."""
    write_config(tmp_path, inputs, calibrate=False, models_per_group=2, shards=1)
    snakemake("--cores", "2", cwd=tmp_path)
    assert_same_outputs(tmp_path / "results", single_machine, calibrate=False, models_per_group=2)


def jobs_to_run(proc: subprocess.CompletedProcess) -> list[str]:
    """The rule of every job a dry run lists."""
    return [ln.split()[1].rstrip(":") for ln in (proc.stdout + proc.stderr).splitlines() if ln.startswith("rule ")]


# ---------------------------------------------------------------- dbtools vcf split|concat


def test_vcf_split_concat_round_trip(inputs, tmp_path):
    from dbtools.io.vcf_shards import concat_vcfs, shard_sizes, split_vcf

    assert shard_sizes(10, 3) == [4, 3, 3] and sum(shard_sizes(200, 7)) == 200
    parts = split_vcf(str(inputs["vcf"]), 3, str(tmp_path / "parts"))
    assert [p.name for p in parts] == ["part0001.vcf", "part0002.vcf", "part0003.vcf"]
    counts = [sum(1 for ln in p.read_text().splitlines() if not ln.startswith("#")) for p in parts]
    assert counts == [67, 67, 66]
    out = tmp_path / "back.vcf.gz"
    assert concat_vcfs([str(p) for p in parts], str(out)) == 200
    assert gzip.open(out, "rt").read() == inputs["vcf"].read_text()
    assert Path(str(out) + ".tbi").is_file()


def test_vcf_split_and_concat_errors(inputs, tmp_path):
    from dbtools.errors import DbtoolsError
    from dbtools.io.vcf_shards import concat_vcfs, split_vcf

    with pytest.raises(DbtoolsError, match="fewer than the 500 shards"):
        split_vcf(str(inputs["vcf"]), 500, str(tmp_path / "many"))
    a, b = split_vcf(str(inputs["vcf"]), 2, str(tmp_path / "p"))
    b.write_text(b.read_text().replace("##fileformat=VCFv4.2\n", "##fileformat=VCFv4.2\n##other=1\n"))
    with pytest.raises(DbtoolsError, match="part0002.vcf: header line"):
        concat_vcfs([str(a), str(b)], str(tmp_path / "x.vcf"))
    assert not (tmp_path / "x.vcf").exists()


def test_vcf_cli_errors_are_one_line(inputs, tmp_path):
    run = lambda *a: subprocess.run([DBTOOLS, "vcf", *a], capture_output=True, text=True, cwd=tmp_path)  # noqa: E731
    few = run("split", str(inputs["vcf"]), "-n", "500", "-o", "many")
    assert few.returncode == 1 and few.stderr.strip().count("\n") == 0
    assert few.stderr.startswith("dbtools: error: ") and "200 record(s), fewer than the 500 shards" in few.stderr
    missing = run("concat", "nope.vcf", "-o", "out.vcf.gz")
    assert missing.returncode == 1 and "nope.vcf: VCF not found" in missing.stderr
    assert not (tmp_path / "out.vcf.gz").exists()
    assert run("split", str(inputs["vcf"]), "-n", "0", "-o", "zero").returncode == 2
