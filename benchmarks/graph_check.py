"""CUDA graphs against step-by-step launches in the trainer: same results, time per step.

Trains one group of G random-sequence models (101 bp, as the ENCODE sets) twice on the same
device, once launching each step's kernels one by one and once replaying a captured graph,
and prints how far weights and validation losses differ and the time per step of each.

    python benchmarks/graph_check.py [--device cuda] [--models 240] [--steps 400]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from dbtools.trainer import Hyper, Task, train_group  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--models", type=int, default=240)
    ap.add_argument("--steps", type=int, default=400)
    ap.add_argument("--detector-len", type=int, default=16)
    args = ap.parse_args()
    device = torch.device(args.device)
    rng = np.random.default_rng(0)
    tasks, val = [], []
    for g in range(args.models):
        codes = [rng.integers(0, 4, 101).astype(np.int8) for _ in range(600)]
        y = rng.integers(0, 2, 600).astype(np.float32)
        h = Hyper(detector_len=args.detector_len, num_hidden=32 if g % 3 == 0 else 0, dropout=(0.0, 0.25, 0.5)[g % 3],
                  learning_rate=float(10 ** rng.uniform(-3, -1.5)), l1_fc=1e-4)
        tasks.append(Task(codes[:500], y[:500], True, h, seed=g))
        val.append((codes[500:], y[500:]))

    def run(graphs: bool):
        if device.type == "cuda":
            torch.cuda.synchronize()
        t = time.perf_counter()
        res = train_group(tasks, val, args.steps, args.steps // 4, device, graphs=graphs)
        if device.type == "cuda":
            torch.cuda.synchronize()
        return res, time.perf_counter() - t

    train_group(tasks[:2], None, 3, 3, device, graphs=False)  # warm-up: libraries, tables
    (eager, t_eager), (graph, t_graph) = run(False), run(True)
    diff = max(float((eager.params.params[k] - graph.params.params[k]).detach().abs().max())
               for k in eager.params.params)
    same = all(torch.equal(eager.params.params[k], graph.params.params[k]) for k in eager.params.params)
    dv = float(np.abs(eager.val_loss - graph.val_loss).max())
    print(f"{args.models} models, {args.steps} steps on {device}: weights {'identical' if same else 'differ'} "
          f"(max |diff| {diff:.2e}); validation losses differ by at most {dv:.2e}; "
          f"best steps equal: {eager.best_step == graph.best_step}")
    print(f"one by one {1e3 * t_eager / args.steps:.2f} ms/step, graphs {1e3 * t_graph / args.steps:.2f} ms/step "
          f"(4 validations and one capture included): {t_eager / t_graph:.1f}x")


if __name__ == "__main__":
    main()
