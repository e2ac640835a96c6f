"""Benchmark `dbtools vareffect`: the 5,139 real promoter SNVs of chr20 with 16 models and with all 927.

Prints, from one run, variants x models per second for:
  (a) the plain baseline: each REF and ALT window scored separately by the textbook forward
      pass, one model at a time (`plain_scores` below: every scoring window one-hot encoded and
      padded on its own, torch conv1d, rectify, pool, dense layers), timed on a sample of the
      variants and scaled;
  (b) `dbtools vareffect`'s scoring, `score_pairs` (on the CPU with the fused kernel: every
      window of REF and ALT through the bank's engine; otherwise an ALT's windows that miss its
      change are taken from the REF pass), and
  (c) for reference, the bank's engine on each REF and ALT window separately (`score_codes`),
with the ratios (b)/(a) and (b)/(c), the largest differences (they must agree), and the
fraction of the FLOP bound: per variant, one REF pass (W + m - 1 positions) plus the m
convolution positions an SNV really changes, x detectors x m x 4 x 2 x strands, at the rate of
a large float32 matmul measured in this run. Then the peak memory of the `dbtools vareffect`
command on VCFs made by repeating the real records (`--memory-records`).

    python benchmarks/vareffect.py                                  # full run (long on 2 cores)
    python benchmarks/vareffect.py --n-all 500 --memory-records 20000,100000
    python benchmarks/vareffect.py --threads 1 --cpu-time ...     # on a shared, overloaded machine
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from matmul_rate import matmul_gflops  # noqa: E402
from dbtools.bank.store import default_bank_path, load_bank  # noqa: E402
from dbtools.io.encode import encode  # noqa: E402
from dbtools.engine.bank_engine import BankEngine  # noqa: E402
from dbtools.io.genome import Genome  # noqa: E402
from dbtools.vareffect.pairs import score_pairs  # noqa: E402
from dbtools.score import ScoreOptions, score_codes  # noqa: E402
from dbtools.vareffect.run import centred_window  # noqa: E402
from dbtools.io.vcf_read import open_vcf  # noqa: E402

SHARED = ROOT.parent / "shared" / "data"
VCF = SHARED / "vcf" / "deepfind_derived_promoter_snvs_chr20_b37.vcf"
GENOME = SHARED / "genome" / "20.fa.gz"
W = 101


def snv_windows() -> tuple[np.ndarray, np.ndarray]:
    """REF and ALT 101-bp windows ([n, W] codes) of the real SNVs, REF from the genome."""
    ref, alt = [], []
    with Genome(GENOME) as genome, open_vcf(str(VCF)) as (_, records):
        for rec in records:
            s = rec.pos - 1
            fetch = (lambda a, b: genome.fetch("20", a, b).upper())
            ref.append(centred_window(fetch, s, 1, fetch(s, s + 1), W))
            alt.append(centred_window(fetch, s, 1, rec.alts[0], W))
    return (encode("".join(ref)).reshape(-1, W), encode("".join(alt)).reshape(-1, W))


CLOCK = time.perf_counter  # --cpu-time: time.process_time


def bound_flops(bank, n: int) -> float:
    """One REF pass plus the m positions an SNV changes, per variant and model."""
    total = 0
    for m in bank.models:
        a = m.info.arch
        strands = 2 if a.reverse_complement else 1
        positions = (W + a.detector_len - 1) + a.detector_len
        total += positions * a.num_detectors * a.detector_len * 4 * 2 * strands
    return float(total) * n


@torch.inference_mode()
def plain_scores(bank, codes: np.ndarray, opts: ScoreOptions) -> np.ndarray:
    """The textbook DeepBind forward pass, model by model, with `dbtools score`'s semantics: a
    sequence longer than the window w = int(1.5 m) is cut into its stride-1 windows, each padded
    with m-1 N (0.25 per base) and scored; the max over windows per strand, then over strands."""
    x = torch.as_tensor(codes, dtype=torch.long)
    onehot = F.one_hot(x.clamp(max=4), 5)[..., :4].float()
    onehot[x >= 4] = 0.25
    n, L = x.shape
    out = np.empty((n, len(bank)), dtype=np.float32)
    for j, model in enumerate(bank.models):
        a, arch = model.arrays, model.info.arch
        m, w = arch.detector_len, min(opts.window_size or int(1.5 * arch.detector_len), L)
        det = torch.as_tensor(a["detectors"]).permute(2, 1, 0).contiguous()  # [d, 4, m]
        thr = torch.as_tensor(a["thresholds"])
        strands = [onehot] + ([onehot.flip(1).flip(2)] if arch.reverse_complement else [])  # ACGT -> TGCA
        best = None
        for seq in strands:
            wins = seq.unfold(1, w, 1)  # [n, nw, 4, w]
            nw = wins.shape[1]
            xw = F.pad(wins.reshape(-1, 4, w), (m - 1, m - 1), value=0.25)
            z = F.relu(F.conv1d(xw, det) + thr[:, None])  # [n * nw, d, w + m - 1]
            feats = torch.stack([z.amax(2), z.mean(2)], 2).flatten(1) if arch.avg_pooling else z.amax(2)
            h = feats @ torch.as_tensor(a["weights1"]) + torch.as_tensor(a["biases1"])
            if arch.num_hidden:
                h = F.relu(h) @ torch.as_tensor(a["weights2"]) + torch.as_tensor(a["biases2"])
            s = h[:, 0].view(n, nw)
            s = s.sum(1) / L if opts.average and nw > 1 else s.amax(1)
            best = s if best is None else torch.maximum(best, s)
        out[:, j] = best.numpy()
    return out


def run_set(label: str, bank, ref: np.ndarray, alt: np.ndarray, chunk: int, plain_sample: int) -> None:
    engine = BankEngine(bank, "cpu")
    opts = ScoreOptions()
    n, M = len(ref), len(bank)
    owner = np.arange(n)
    score_pairs(engine, ref[:4], alt[:4], owner[:4], opts)  # warm up
    t_plain = t_pairs = t_engine = bound_s = 0.0
    worst = worst_plain = 0.0
    n_plain = 0
    per_chunk = max(1, plain_sample * chunk // n)
    for c in range(0, n, chunk):
        r, a, o = ref[c:c + chunk], alt[c:c + chunk], np.arange(min(chunk, n - c))
        rate = matmul_gflops(CLOCK)
        t = CLOCK()
        plain = plain_scores(bank, np.concatenate([r[:per_chunk], a[:per_chunk]]), opts)
        t_plain += CLOCK() - t
        n_plain += len(r[:per_chunk])
        t = CLOCK()
        each = score_codes(engine, list(r) + list(a), opts, batch_size=1024)
        t_engine += CLOCK() - t
        t = CLOCK()
        pr, pa = score_pairs(engine, r, a, o, opts)
        t_pairs += CLOCK() - t
        rate = max(rate, matmul_gflops(CLOCK)) * 1e9
        bound_s += bound_flops(bank, len(r)) / rate
        worst = max(worst, float(np.abs(pr - each[:len(r)]).max()), float(np.abs(pa - each[len(r):]).max()))
        k = len(r[:per_chunk])
        worst_plain = max(worst_plain, float(np.abs(pr[:k] - plain[:k]).max()),
                          float(np.abs(pa[:k] - plain[k:]).max()))
    t_plain_all = t_plain / n_plain * n
    print(f"\n[{label}: {n:,} SNVs x {M} models]")
    print(f"  (a) plain forward pass, REF and ALT separately {t_plain_all:8.2f} s  {n * M / t_plain_all:10,.0f} "
          f"variants x models/s  {100 * bound_s / t_plain_all:5.1f}% of FLOP bound (timed on {n_plain:,} SNVs, scaled)")
    print(f"  (b) dbtools vareffect (score_pairs)            {t_pairs:8.2f} s  {n * M / t_pairs:10,.0f} "
          f"variants x models/s  {100 * bound_s / t_pairs:5.1f}% of FLOP bound")
    print(f"  (c) the engine, REF and ALT separately         {t_engine:8.2f} s  {n * M / t_engine:10,.0f} "
          f"variants x models/s  {100 * bound_s / t_engine:5.1f}% of FLOP bound")
    print(f"  speed-up (b)/(a): {t_plain_all / t_pairs:.1f}x (target >= 3x); (b)/(c): {t_engine / t_pairs:.2f}x; "
          f"fraction of bound target >= 20%")
    print(f"  max |(b) - (c)| = {worst:.2e}; max |(b) - (a)| = {worst_plain:.2e}")


def memory_run(records: int, models: str, env: dict) -> None:
    """`dbtools vareffect` on a VCF of `records` records (the real ones repeated), peak RSS."""
    lines = VCF.read_text().splitlines(keepends=True)
    head = [ln for ln in lines if ln.startswith("#")]
    body = [ln for ln in lines if not ln.startswith("#")]
    with tempfile.TemporaryDirectory() as tmp:
        big = Path(tmp) / "big.vcf"
        with open(big, "w") as fh:
            fh.writelines(head)
            for i in range(records):
                fh.write(body[i % len(body)])
        out = Path(tmp) / "big.dbt.vcf.gz"
        t = time.perf_counter()
        # a small launcher runs the command, so the peak it reports is the command's alone
        # (a child's peak counts its parent's memory from before exec)
        proc = subprocess.run([sys.executable, "-c", _LAUNCHER, sys.executable, "-m", "dbtools_cli.main", "vareffect",
                               str(big), "-g", str(GENOME), "-m", models, "--device", "cpu", "-o", str(out)],
                              capture_output=True, text=True, env=env)
        wall = time.perf_counter() - t
        if proc.returncode != 0:
            sys.exit(proc.stderr)
        peak = int(proc.stdout.split()[-1]) / 1024
        print(f"  {records:>9,} records: {wall:7.1f} s wall, peak memory {peak:,.0f} MB (target < 2,048 MB); "
              f"output {out.stat().st_size / 1e6:,.1f} MB")


_LAUNCHER = ("import resource, subprocess, sys; p = subprocess.run(sys.argv[1:]); "
             "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss); sys.exit(p.returncode)")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n-16", type=int, default=5139, help="SNVs scored with 16 models (default: all 5,139)")
    ap.add_argument("--n-all", type=int, default=5139, help="SNVs scored with all 927 models (default: all)")
    ap.add_argument("--chunk", type=int, default=512, help="SNVs per timed chunk (matmul rate measured beside each)")
    ap.add_argument("--plain-sample", type=int, default=256,
                    help="SNVs scored by the plain forward pass, spread over the chunks (default 256)")
    ap.add_argument("--memory-records", default="1000000",
                    help="comma-separated VCF sizes for the memory runs ('' to skip)")
    ap.add_argument("--memory-only", action="store_true", help="only the CLI memory runs")
    ap.add_argument("--threads", type=int, default=0, help="torch threads (default: torch's choice)")
    ap.add_argument("--cpu-time", action="store_true",
                    help="time by this process's CPU seconds, not the wall clock (steadier on a shared, "
                         "overloaded machine; use with --threads 1)")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.cpu_time:
        global CLOCK
        CLOCK = time.process_time

    bank = load_bank(default_bank_path())
    rng = np.random.default_rng(0)
    sixteen = sorted(rng.choice(len(bank), size=16, replace=False).tolist())
    if args.memory_only:
        return memory_runs(args, bank, sixteen)
    ref, alt = snv_windows()
    gflops = matmul_gflops(CLOCK)
    clock = "CPU seconds" if args.cpu_time else "wall clock"
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads; float32 matmul {gflops:.0f} GFLOP/s; "
          f"times by {clock}")
    run_set("16 models", bank.subset(sixteen), ref[:args.n_16], alt[:args.n_16], args.chunk, args.plain_sample)
    run_set("all models", bank, ref[:args.n_all], alt[:args.n_all], args.chunk, min(args.plain_sample, 32))
    memory_runs(args, bank, sixteen)


def memory_runs(args, bank, sixteen: list[int]) -> None:
    sizes = [int(s) for s in args.memory_records.split(",") if s.strip()]
    env = dict(os.environ, **({"OMP_NUM_THREADS": str(args.threads)} if args.threads else {}))
    if sizes:
        ids = ",".join(bank.ids[i] for i in sixteen)
        print("\n`dbtools vareffect` CLI, 16 models, the real SNVs repeated, .vcf.gz output:")
        for size in sorted(sizes):
            memory_run(size, ids, env)


if __name__ == "__main__":
    main()
