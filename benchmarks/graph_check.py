"""CUDA graphs against step-by-step launches in the trainer: same results, time per step.

Trains one group of G random-sequence models (101 bp, as the ENCODE sets) three times on the
same device: launching each step's kernels one by one, again so, and replaying a captured
graph. Prints how far the weights differ per model and the time per step of each.

On CUDA two runs one by one already differ in rounding (index_add_'s atomic adds sum in any
order), and a few models fitting random labels at a high rate amplify that over hundreds of
steps (on the CPU, shuffling the order of those adds moved 5 of 240 models past 1e-3 in 400
steps). So the default is 150 steps (both of the step's graphs, before and after the L1
penalty starts at step 101), where a wrong graph shows in most models and rounding in none,
and the graph run is judged against the spread of the two runs one by one.

    python benchmarks/graph_check.py [--device cuda] [--models 240] [--steps 150]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from calibrate import timed  # noqa: E402  (benchmarks/calibrate.py, beside this script)
from dbtools.train.hyper import Hyper, Task  # noqa: E402
from dbtools.train.loop import train_group  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--models", type=int, default=240)
    ap.add_argument("--steps", type=int, default=150)
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
        out = []
        seconds = timed(lambda: out.append(train_group(tasks, val, args.steps, args.steps // 4, device,
                                                       graphs=graphs)), device)
        return out[0], seconds

    def apart(a, b) -> tuple[float, int]:
        """Largest weight difference, and the number of models differing by more than 1e-3."""
        per_model = torch.stack([(a.params.params[k] - b.params.params[k]).detach().abs().reshape(args.models, -1)
                                 .max(1).values for k in a.params.params]).max(0).values
        return float(per_model.max()), int((per_model > 1e-3).sum())

    train_group(tasks[:2], None, 3, 3, device, graphs=False)  # warm-up: libraries, tables
    (eager, t_eager), (again, _), (graph, t_graph) = run(False), run(False), run(True)
    print(f"{args.models} models, {args.steps} steps on {device}: largest weight difference, models apart by over 1e-3")
    for name, other in (("one by one, twice", again), ("graphs against one by one", graph)):
        big, n = apart(eager, other)
        dv = float(np.abs(eager.val_loss - other.val_loss).max())
        print(f"  {name:26s} {big:.2e}, {n} of {args.models} (validation losses: {dv:.2e} at most)")
    print(f"one by one {1e3 * t_eager / args.steps:.2f} ms/step, graphs {1e3 * t_graph / args.steps:.2f} ms/step "
          f"(4 validations and the captures included): {t_eager / t_graph:.1f}x")


if __name__ == "__main__":
    main()
