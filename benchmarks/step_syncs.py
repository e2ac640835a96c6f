"""Host-device synchronisations per training step on a GPU (each one stalls the batched trainer).

Trains a small mixed group (with and without the hidden layer, max and max+avg pooling) for
--steps steps under torch's CUDA sync debug mode and counts the warnings by source line. A line
that syncs once per step shows a count of at least --steps; the checkpoint at the last step
syncs a few times on purpose. Exit status 1 if some line syncs every step. CPU only: says so.

    python benchmarks/step_syncs.py [--steps 40]
"""

from __future__ import annotations

import argparse
import collections
import sys
import warnings
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from dbtools.train.hyper import Hyper, Task  # noqa: E402
from dbtools.train.loop import train_group  # noqa: E402


def tasks(avg: bool) -> list[Task]:
    rng = np.random.default_rng(0)
    out = []
    for seed in range(8):
        codes = [rng.integers(0, 4, size=101).astype(np.int8) for _ in range(200)]
        hyper = Hyper(detector_len=16, num_hidden=32 if seed % 2 else 0, avg_pooling=avg, dropout=0.25)
        out.append(Task(codes, rng.integers(0, 2, 200).astype(np.float32), True, hyper, seed=seed))
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=40)
    args = ap.parse_args()
    if not torch.cuda.is_available():
        print("step_syncs: no CUDA device here; nothing to measure")
        return 0
    device = torch.device("cuda")
    worst = 0
    for avg in (False, True):
        group = tasks(avg)
        train_group(group, None, steps=3, checkpoint_every=3, device=device, batch_size=64)  # warm-up
        torch.cuda.synchronize()
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            torch.cuda.set_sync_debug_mode("warn")
            try:
                train_group(group, None, steps=args.steps, checkpoint_every=args.steps, device=device,
                            batch_size=64)
            finally:
                torch.cuda.set_sync_debug_mode("default")
        counts = collections.Counter(f"{w.filename}:{w.lineno}" for w in caught
                                     if "synchroniz" in str(w.message).lower())
        per_step = {k: v for k, v in counts.items() if v >= args.steps}
        worst = max(worst, len(per_step))
        print(f"pooling {'max+avg' if avg else 'max'}: {sum(counts.values())} syncs in {args.steps} steps "
              f"and one checkpoint; lines syncing every step: {len(per_step)}")
        for line, n in counts.most_common(10):
            print(f"  {n:5d}  {line}")
    return 1 if worst else 0


if __name__ == "__main__":
    sys.exit(main())
