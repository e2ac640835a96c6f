"""Hostile and unusual input, one row per case: every command fails with one line on stderr and
the documented exit code (docs/exit-codes.md), and leaves no partial output behind.

Commands run in-process (a subprocess costs seconds of imports); the few cases that need a real
pipe or signal run `dbtools` in a shell.
"""

from __future__ import annotations

import gzip
import io
import json
import pickle
import re
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pytest

from conftest import ROOT

CTCF = "D00328.003"
PEAK = "CGCGCCCCTGGTGGCTCGCGGGGCACTTCTCTGGGACCTGGGTCTGCGAGGGTCTCCAGGAGGCGCCGGGCGTTCGGGACCCAGACAGCGCCAGGGCTTTA"
SEQS = "".join(PEAK[i:] + PEAK[:i] + "\n" for i in range(0, 100, 2)).encode()  # 50 sequences, 101 bp
FASTA = b">rec1\nACGTACGT\n>rec2\nACGTAC\nGTA9GG\n"


def _contig(n: int, seed: int = 0) -> str:
    return "".join(np.random.default_rng(seed).choice(list("ACGT"), n))


GENOME = f">c1\n{_contig(3000)}\n>c2\n{_contig(500, 1)}\n".encode()
VCF_HEAD = b"##fileformat=VCFv4.2\n##contig=<ID=c1>\n#CHROM\tPOS\tID\tREF\tALT\tQUAL\tFILTER\tINFO\n"


def gz_truncated(data: bytes) -> bytes:
    z = gzip.compress(data, mtime=0)
    return z[: len(z) // 2]


def gz_corrupt(data: bytes) -> bytes:
    z = bytearray(gzip.compress(data, mtime=0))
    z[10:30] = b"\xff" * 20  # the first deflate block: an invalid block type
    return bytes(z)


# --- banks -------------------------------------------------------------------------------------

def _save(path: Path, ids: list[str] | None = None, edit: Callable | None = None) -> None:
    """A bank of the shipped models `ids`; `edit(doc, tensors)` changes it before writing."""
    from safetensors import safe_open
    from safetensors.numpy import save_file

    from dbtools.bank.selection import open_selected
    from dbtools.bank.store import save_bank

    save_bank(open_selected(None, ids if ids is not None else [CTCF]), path)
    if edit is None:
        return
    with safe_open(str(path), framework="numpy") as f:
        meta, tensors = f.metadata(), {k: f.get_tensor(k) for k in f.keys()}
    doc = json.loads(meta["dbtools_bank"])
    edit(doc, tensors)
    meta["dbtools_bank"] = json.dumps(doc)
    save_file(tensors, str(path), metadata=meta)


def bank(edit: Callable | None = None) -> Callable[[Path], None]:
    return lambda p: _save(p, edit=edit)


def truncated_bank(p: Path) -> None:
    _save(p)
    p.write_bytes(p.read_bytes()[:3000])


def pickled_bank(p: Path) -> None:
    p.write_bytes(pickle.dumps({"0.detectors": [1.0, 2.0]}))


def oversized_header_bank(p: Path) -> None:
    p.write_bytes((2 ** 40).to_bytes(8, "little") + b"{}")


def _no_models(doc: dict, tensors: dict) -> None:
    doc["models"] = []
    tensors.clear()
    tensors["x"] = np.zeros(1, np.float32)


def _int32_detectors(doc: dict, tensors: dict) -> None:
    tensors["0.detectors"] = tensors["0.detectors"].astype(np.int32)


def params(**change: str) -> bytes:
    """A DeepBind params file of a 1x1 detector model, fields replaced or (key=None) appended."""
    fields = {"reverse_complement": "0", "num_detectors": "1", "detector_len": "1", "has_avg_pooling": "0",
              "num_hidden": "0", "detectors": "0.1,0.2,0.3,0.4", "thresholds": "0", "weights1": "1",
              "biases1": "0", "weights2": "", "biases2": ""}
    fields.update(change)
    return "".join(f"{k.removesuffix('_again')} = {v}\n" for k, v in fields.items()).encode()


DB_TSV = b"ID\tProtein\nD1\tX\n"

# --- the table ---------------------------------------------------------------------------------

Input = bytes | Callable[[Path], None]


@dataclass(frozen=True)
class Case:
    """One hostile input: the command (run in a fresh folder holding `files`), what it must exit
    with, the regex its single stderr line must match, and the paths (globs) it must not leave."""

    name: str
    args: tuple[str, ...]
    code: int
    stderr: str
    files: dict[str, Input] = field(default_factory=dict)
    absent: tuple[str, ...] = ()
    stdin: bytes = b""


SCORE = ("score", "-m", CTCF, "--device", "cpu")
CASES = [
    # compressed input: truncated, corrupt, gzip on stdin
    Case("score truncated gzip", (*SCORE, "t.seq.gz"), 1, r"^t\.seq\.gz: cannot read \(truncated",
         {"t.seq.gz": gz_truncated(SEQS * 20)}),
    Case("score corrupt gzip", (*SCORE, "c.seq.gz"), 1, r"^c\.seq\.gz: cannot read .*corrupt",
         {"c.seq.gz": gz_corrupt(SEQS)}),
    Case("evaluate corrupt gzip", ("evaluate", "c.tsv.gz", "-m", CTCF), 1, r"^c\.tsv\.gz: cannot read",
         {"c.tsv.gz": gz_corrupt(b"".join(s + b"\t1\n" for s in SEQS.split()))}),
    Case("score gzip on stdin, truncated", (*SCORE, "-"), 1, r"^stdin: cannot read \(truncated",
         stdin=gz_truncated(SEQS * 20)),
    Case("score FASTA: bad character names file and line", (*SCORE, "f.fa"), 1,
         r"^f\.fa: line 5 \(FASTA record 2, rec2\): invalid character '9' at column 4$", {"f.fa": FASTA}),
    Case("score one-per-line: bad character", (*SCORE, "s.seq"), 1,
         r"^s\.seq: sequence 2 \(line 2\): invalid character '!' at position 3$", {"s.seq": b"ACGT\nAC!T\n"}),
    Case("score binary file", (*SCORE, "b.seq"), 1, r"^b\.seq: .*invalid character", {"b.seq": bytes(range(256))}),
    Case("score empty file", (*SCORE, "e.seq"), 1, r"^e\.seq: no sequences$", {"e.seq": b"\n\n"}),
    Case("score missing file", (*SCORE, "nope.seq"), 1, r"^nope\.seq: file not found$"),
    Case("score a folder", (*SCORE, "."), 1, r"^\.: is a directory"),
    # interrupted outputs: a failed run leaves none of its files
    Case("mutmap: bad record after a mapped one", ("mutmap", "f.fa", "-m", CTCF, "-o", "m", "--device", "cpu"), 1,
         r"^f\.fa: line 5 .*invalid character '9'", {"f.fa": FASTA}, ("m/*", "m/.*")),
    Case("mutmap: truncated gzip", ("mutmap", "t.fa.gz", "-m", CTCF, "-o", "m", "--device", "cpu"), 1,
         r"^t\.fa\.gz: cannot read \(truncated",
         {"t.fa.gz": gz_truncated(b"".join(b">r%d\n%s" % (i, s) for i, s in enumerate(SEQS.splitlines(True))))},
         ("m/*", "m/.*")),
    # an output path that is a folder fails before any work
    Case("train -o a folder", ("train", "d.tsv", "-o", "adir", "--steps", "1", "--device", "cpu"), 1,
         r"^adir: cannot write: it is a folder", {"d.tsv": SEQS.replace(b"\n", b"\t1\n"), "adir/x": b""},
         ("adir.ckpt",)),
    Case("bank subset -o a folder", ("bank", "subset", "-m", CTCF, "-o", "adir"), 1,
         r"^adir: cannot write: it is a folder", {"adir/x": b""}),
    Case("import-deepbind -o a folder", ("import-deepbind", "db.tsv", "params", "-o", "adir"), 1,
         r"^adir: cannot write: it is a folder", {"db.tsv": b"ID\n", "params/x": b"", "adir/x": b""}),
    # training data a model cannot learn from or be judged on
    Case("train: all targets 0", ("train", "d.tsv", "-o", "o.bank", "--steps", "1", "--device", "cpu"), 1,
         r"^d\.tsv: all targets are 0: classification needs both classes", {"d.tsv": SEQS.replace(b"\n", b"\t0\n")},
         ("o.bank", "o.bank.ckpt")),
    Case("train: constant regression targets", ("train", "d.tsv", "-o", "o.bank", "--steps", "1", "--device", "cpu"),
         1, r"^d\.tsv: all targets are 0\.5: regression needs targets that vary",
         {"d.tsv": SEQS.replace(b"\n", b"\t0.5\n")}, ("o.bank", "o.bank.ckpt")),
    Case("evaluate: single-class data", ("evaluate", "d.tsv", "-m", CTCF, "--device", "cpu"), 1,
         r"^d\.tsv: all targets are 0: classification needs both classes", {"d.tsv": SEQS.replace(b"\n", b"\t0\n")}),
    # genome FASTAs
    Case("scan: stale .fai", ("scan", "g.fa", "-m", CTCF, "-o", "out"), 1,
         r"^g\.fa\.fai: stale index: it places c1 past the end of g\.fa; delete it",
         {"g.fa": GENOME, "g.fa.fai": b"c1\t9000\t4\t9000\t9001\n"}, ("out",)),
    Case("scan: plain gzip FASTA", ("scan", "g.fa.gz", "-m", CTCF, "-o", "out"), 1,
         r"^g\.fa\.gz: plain gzip, not BGZF: recompress it with bgzip", {"g.fa.gz": gzip.compress(GENOME)},
         ("out", "g.fa.gz.fai")),
    Case("scan: unknown --chroms is a usage error", ("scan", "g.fa", "-m", CTCF, "--chroms", "c9", "-o", "out"), 2,
         r"^--chroms: contig 'c9' is not in g\.fa \(it has: c1, c2\)$", {"g.fa": GENOME}, ("out",)),
    # vareffect windows
    Case("vareffect --window beyond every contig", ("vareffect", "v.vcf", "-g", "g.fa", "-m", CTCF, "-w", "3001",
                                                    "-o", "o.vcf"), 2,
         r"^--window 3,001 is longer than the longest contig of g\.fa \(3,000 bp\)",
         {"g.fa": GENOME, "v.vcf": VCF_HEAD + b"c1\t100\t.\tA\tC\t.\t.\t.\n"}, ("o.vcf*",)),
    # DeepBind params files
    Case("import-deepbind: a field twice", ("import-deepbind", "db.tsv", "params", "-o", "o.bank"), 1,
         r"^params/D1\.txt:12: field 'biases1' given twice \(first on line 9\)$",
         {"db.tsv": DB_TSV, "params/D1.txt": params(biases1_again="2")}, ("o.bank", ".o.bank*")),
    Case("import-deepbind: a NaN weight", ("import-deepbind", "db.tsv", "params", "-o", "o.bank"), 1,
         r"^params/D1\.txt:8: field 'weights1' has a non-finite value \(nan\)$",
         {"db.tsv": DB_TSV, "params/D1.txt": params(weights1="nan")}, ("o.bank",)),
    Case("import-deepbind: a short array", ("import-deepbind", "db.tsv", "params", "-o", "o.bank"), 1,
         r"^params/D1\.txt:6: field 'detectors' has 3 values, expected 4$",
         {"db.tsv": DB_TSV, "params/D1.txt": params(detectors="1,2,3")}, ("o.bank",)),
    # option bounds are one line, exit 2 (no box)
    Case("score --window-size 0", (*SCORE, "--window-size", "0", "s.seq"), 2, r"--window-size.*see 'dbtools score -h'",
         {"s.seq": SEQS}),
    Case("score --batch-size 0", (*SCORE, "--batch-size", "0", "s.seq"), 2, r"--batch-size", {"s.seq": SEQS}),
    Case("scan --step 0", ("scan", "g.fa", "-m", CTCF, "--step", "0", "-o", "out"), 2, r"--step",
         {"g.fa": GENOME}, ("out",)),
    Case("unknown option", (*SCORE, "--bogus"), 2, r"^No such option: --bogus"),
    Case("unknown command", ("nope",), 2, r"^No such command 'nope'"),
    Case("unknown model", ("score", "-m", "NOPE", "s.seq"), 2, r"no model in the bank matches 'NOPE'",
         {"s.seq": SEQS}),
    # banks: corrupt, truncated, pickled, oversized; no code is ever run
    Case("truncated bank", ("score", "-b", "x.bank", "s.seq"), 1, r"^x\.bank: corrupt or truncated bank file",
         {"x.bank": truncated_bank, "s.seq": SEQS}),
    Case("pickled bank", ("score", "-b", "x.bank", "s.seq"), 1, r"^x\.bank: corrupt or truncated bank file",
         {"x.bank": pickled_bank, "s.seq": SEQS}),
    Case("oversized bank header", ("score", "-b", "x.bank", "s.seq"), 1, r"^x\.bank: corrupt or truncated",
         {"x.bank": oversized_header_bank, "s.seq": SEQS}),
    Case("bank missing", ("score", "-b", "none.bank", "s.seq"), 1, r"^none\.bank: bank file not found$",
         {"s.seq": SEQS}),
    Case("bank with int32 tensors", ("score", "-b", "x.bank", "s.seq"), 1,
         r"^x\.bank: tensor '0\.detectors' is int32, expected float32$",
         {"x.bank": bank(_int32_detectors), "s.seq": SEQS}),
    Case("score: bank with no models", ("score", "-b", "x.bank", "s.seq"), 1, r"^x\.bank: the bank has no models$",
         {"x.bank": bank(_no_models), "s.seq": SEQS}),
    Case("scan: bank with no models", ("scan", "g.fa", "-b", "x.bank", "-o", "out"), 1,
         r"^x\.bank: the bank has no models$", {"x.bank": bank(_no_models), "g.fa": GENOME}, ("out",)),
    Case("vareffect: bank with no models", ("vareffect", "v.vcf", "-g", "g.fa", "-b", "x.bank", "-o", "o.vcf"), 1,
         r"^x\.bank: the bank has no models$",
         {"x.bank": bank(_no_models), "g.fa": GENOME, "v.vcf": VCF_HEAD + b"c1\t100\t.\tA\tC\t.\t.\t.\n"},
         ("o.vcf*",)),
    Case("bank with a wrong shape", ("score", "-b", "x.bank", "s.seq"), 1, r"'thresholds' has shape",
         {"x.bank": bank(lambda d, t: t.update({"0.thresholds": np.zeros(5, np.float32)})), "s.seq": SEQS}),
]


def _write_inputs(folder: Path, files: dict[str, Input]) -> None:
    for name, content in files.items():
        path = folder / name
        path.parent.mkdir(parents=True, exist_ok=True)
        if callable(content):
            content(path)
        else:
            path.write_bytes(content)


def run_in_process(args: tuple[str, ...], folder: Path, stdin: bytes, capfd, monkeypatch) -> int:
    """`dbtools ARGS` in this process, in `folder`; returns the exit code (stdout/stderr in capfd)."""
    from dbtools_cli.main import run

    monkeypatch.chdir(folder)
    monkeypatch.setattr(sys, "argv", ["dbtools", *args])
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BufferedReader(io.BytesIO(stdin))))
    capfd.readouterr()
    with pytest.raises(SystemExit) as exit_:
        run()
    return exit_.value.code


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_hostile_input(case: Case, tmp_path, capfd, monkeypatch):
    _write_inputs(tmp_path, case.files)
    before = set(tmp_path.rglob("*"))
    code = run_in_process(case.args, tmp_path, case.stdin, capfd, monkeypatch)
    err = capfd.readouterr().err
    lines = err.strip().splitlines()
    assert code == case.code, err
    assert len(lines) == 1, err
    assert lines[0].startswith("dbtools: error: "), err
    assert re.search(case.stderr, lines[0].removeprefix("dbtools: error: ")), lines[0]
    for pattern in case.absent:
        assert not list(tmp_path.glob(pattern)), f"{pattern} left behind"
    left = {p for p in set(tmp_path.rglob("*")) - before if p.name.startswith(".") or ".tmp" in p.name}
    assert not left, f"temporary files left behind: {left}"


def shell(script: str, folder: Path) -> subprocess.CompletedProcess:
    """`script` in bash with pipefail, `dbtools` being this checkout's CLI."""
    prelude = f'set -o pipefail; dbtools() {{ "{sys.executable}" -m dbtools_cli.main "$@"; }}\n'
    return subprocess.run(["bash", "-c", prelude + script], cwd=folder, capture_output=True, text=True)


def test_a_closed_stdout_exits_141_in_silence(tmp_path):
    (tmp_path / "s.seq").write_bytes(SEQS * 400)
    proc = shell(f"dbtools score s.seq -m {CTCF} --echo --device cpu | head -1", tmp_path)
    assert proc.returncode == 141, proc.stderr
    assert proc.stdout.startswith("sequence\t") and proc.stderr == ""


def test_vareffect_batches_records_by_window_bases(tmp_path, monkeypatch):
    """A long --window means fewer records a batch (memory bound by bases, not records), and the
    output does not depend on where batches are cut."""
    from dbtools.engine.options import ScoreOptions
    from dbtools.vareffect import run as vareffect_run

    (tmp_path / "g.fa").write_bytes(GENOME)
    body = b"".join(b"c1\t%d\t.\tA\tC,G\t.\t.\t.\n" % p for p in range(100, 2900, 200))
    (tmp_path / "v.vcf").write_bytes(VCF_HEAD + body)
    batches: list[int] = []
    annotate = vareffect_run._Annotator.annotate
    monkeypatch.setattr(vareffect_run._Annotator, "annotate",
                        lambda self, records: batches.append(len(records)) or annotate(self, records))

    def run(out: str) -> str:
        vareffect_run.vareffect(str(tmp_path / "v.vcf"), str(tmp_path / "g.fa"), str(tmp_path / out), bank=None,
                                models=[CTCF], window=2000, options=ScoreOptions(), command="test")
        return (tmp_path / out).read_text()

    whole = run("whole.vcf")
    assert batches == [14]
    per_record = 2000 * vareffect_run._BYTES_PER_BASE * 3  # REF and two ALTs, one width, fused kernel or not
    monkeypatch.setattr(vareffect_run, "_BATCH_BYTES", 4 * per_record)
    batches.clear()
    assert run("cut.vcf") == whole
    assert max(batches) <= 4 and sum(batches) == 14


def test_a_bcf_without_index_and_a_stale_bgzf_index_say_nothing_from_htslib(tmp_path, capfd):
    """htslib's own `[E::...]` lines never reach stderr: a BCF read without an index is no problem,
    and a BGZF FASTA whose .fai is stale is one dbtools error."""
    import pysam

    from dbtools.errors import DbtoolsError
    from dbtools.io.genome import Genome
    from dbtools.io.vcf_read import open_vcf

    (tmp_path / "v.vcf").write_bytes(VCF_HEAD + b"c1\t100\t.\tA\tC\t.\t.\t.\n")
    with pysam.VariantFile(str(tmp_path / "v.vcf")) as src, \
            pysam.VariantFile(str(tmp_path / "v.bcf"), "wb", header=src.header) as dst:
        for rec in src:
            dst.write(rec)
    capfd.readouterr()
    with open_vcf(str(tmp_path / "v.bcf")) as (_, records):
        assert [r.pos for r in records] == [100]
    fa = tmp_path / "g.fa.gz"
    pysam.tabix_compress(str(_write(tmp_path / "g.fa", GENOME)), str(fa))
    Genome(fa).close()  # builds the index
    fai = Path(str(fa) + ".fai")
    fai.write_text(fai.read_text().replace("\t3000\t", "\t4000\t", 1))
    with Genome(fa) as g, pytest.raises(DbtoolsError, match=r"cannot read c1:.*stale"):
        g.fetch("c1", 0, 4000)
    assert "[E::" not in capfd.readouterr().err


def _write(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


def test_the_exit_code_table_in_the_docs_matches_the_code():
    """docs/exit-codes.md lists every exit code dbtools.errors defines, each error class on its row."""
    from dbtools import errors

    rows = {}
    for line in (ROOT / "docs" / "exit-codes.md").read_text().splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if line.startswith("|") and cells[0].isdigit():
            rows[int(cells[0])] = cells[-1]
    classes = [c for c in vars(errors).values() if isinstance(c, type) and issubclass(c, errors.DbtoolsError)]
    constants = {v for k, v in vars(errors).items() if k.startswith("EXIT_")}
    assert set(rows) == constants | {c.exit_code for c in classes}
    for c in classes:
        assert rows[c.exit_code] == f"`{c.__name__}`"


@pytest.mark.parametrize("name,args,files,warning", [
    ("BED region past a contig's end is clipped", ("scan", "g.fa", "-m", CTCF, "-r", "r.bed", "-f", "bedgraph"),
     {"g.fa": GENOME, "r.bed": b"c1\t10\t200\nc2\t100\t900\n"},
     r"r\.bed: 1 region\(s\) run past their contig's end; clipped to it \(first: line 2\)"),
    ("a region shorter than the window gives no values", ("scan", "g.fa", "-m", CTCF, "-r", "r.bed", "-f", "bedgraph"),
     {"g.fa": GENOME, "r.bed": b"c1\t10\t50\nc1\t500\t900\n"},
     r"r\.bed: 1 region\(s\) shorter than the 101-bp window give no values there \(first: c1:10-50\)"),
    ("VCF POS 0 is passed through", ("vareffect", "v.vcf", "-g", "g.fa", "-m", CTCF),
     {"g.fa": GENOME, "v.vcf": VCF_HEAD + b"c1\t0\t.\tA\tC\t.\t.\t.\nc1\t50\t.\tA\tC\t.\t.\t.\n"},
     r"v\.vcf line 4 \(c1:0\): POS 0 is before the contig's first base; passed through unannotated"),
])
def test_lenient_input_is_done_with_a_warning(name, args, files, warning, tmp_path, capfd, monkeypatch):
    _write_inputs(tmp_path, files)
    assert run_in_process(args, tmp_path, b"", capfd, monkeypatch) == 0
    warnings = [ln for ln in capfd.readouterr().err.splitlines() if ln.startswith("dbtools: warning: ")]
    assert any(re.search(warning, ln) for ln in warnings), warnings


def test_scan_removes_stale_temporaries_of_a_killed_scan(tmp_path, capfd, monkeypatch):
    _write_inputs(tmp_path, {"g.fa": GENOME, "out/.D00328.003.bw.tmp1477.bw": b"\0" * 1000})
    assert run_in_process(("scan", "g.fa", "-m", CTCF, "-o", "out"), tmp_path, b"", capfd, monkeypatch) == 0
    assert not list((tmp_path / "out").glob(".*tmp*")) and (tmp_path / "out" / "D00328.003.bw").exists()
