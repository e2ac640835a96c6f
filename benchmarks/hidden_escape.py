"""When does a hidden-layer model leave the starting loss ln 2? The trainer against a plain reference.

DeepBind's hidden-layer models start as a product of three small factors (detectors, hidden
layer, output layer), a saddle that gradient descent leaves slowly. This trains one such model
on fold A of an ENCODE set (its peaks and 10 dinucleotide shuffles of each; batches of 32 peaks
and one shuffle of each) twice per seed: with dbtools' batched trainer, and with a plain
autograd reference written for this check (conv1d, max pooling over both strands, deepity's
Nesterov step: gradient at P + momentum x velocity). Both get the same hyperparameters and no
L1 or dropout; each prints the first step at which its loss on 200 peaks and 200 shuffles falls
below 0.6. Inits and batches differ between the two (their own random streams), so compare the
spread over seeds, not single seeds.

    python benchmarks/hidden_escape.py [--set ELK1] [--steps 1500] [--seeds 1,2,3,4]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from dbtools.train.datasets import read_dataset  # noqa: E402
from dbtools.io.encode import encode_all  # noqa: E402
from dbtools.train.shuffle import dinucleotide_shuffle  # noqa: E402
from dbtools.train.hyper import Hyper, Task  # noqa: E402
from dbtools.train.loop import train_group  # noqa: E402

ENCODE = ROOT.parent / "shared" / "data" / "encode"
SHUFFLES = 10
EVAL = 200
EVERY = 100


def one_hot_padded(seqs: list[str], m: int) -> torch.Tensor:
    """[n, 4, L + 2(m-1)] one-hot (A, C, G, T rows) with m-1 N (0.25 each) at both ends."""
    L = len(seqs[0])
    lut = np.full(256, 4)
    lut[np.frombuffer(b"ACGT", np.uint8)] = np.arange(4)
    rows = np.vstack([np.eye(4), np.full((1, 4), 0.25)]).astype(np.float32)  # A, C, G, T, other (N)
    x = np.full((len(seqs), 4, L + 2 * (m - 1)), 0.25, np.float32)
    for i, s in enumerate(seqs):
        x[i, :, m - 1:m - 1 + L] = rows[lut[np.frombuffer(s.upper().encode(), np.uint8)]].T
    return torch.from_numpy(x)


def reference(pos: torch.Tensor, neg: torch.Tensor, h: Hyper, seed: int, steps: int) -> int | None:
    """First step (a multiple of EVERY) whose evaluation loss is below 0.6, or None."""
    g = torch.Generator().manual_seed(seed)
    m, D = h.detector_len, 16
    P = {"W": torch.randn(D, 4, m, generator=g) * h.init_conv, "thr": torch.zeros(D),
         "W1": torch.randn(D, h.num_hidden, generator=g) * h.init_fc, "b1": torch.zeros(h.num_hidden),
         "W2": torch.randn(h.num_hidden, generator=g) * h.output_init, "b2": torch.zeros(())}
    V = {k: torch.zeros_like(v) for k, v in P.items()}

    def forward(P, x):
        def strand(x):
            pooled = (torch.nn.functional.conv1d(x, P["W"]) + P["thr"][None, :, None]).clamp(min=0).amax(2)
            return (pooled @ P["W1"] + P["b1"]).clamp(min=0) @ P["W2"] + P["b2"]
        return torch.maximum(strand(x), strand(x.flip(1, 2)))  # reverse complement: A<->T, C<->G, reversed

    rng = np.random.default_rng(seed)
    xe = torch.cat([pos[:EVAL], neg[:EVAL, 0]])
    ye = torch.cat([torch.ones(EVAL), torch.zeros(EVAL)])
    half = 32
    y = torch.cat([torch.ones(half), torch.zeros(half)])
    for step in range(1, steps + 1):
        i = torch.from_numpy(rng.integers(0, len(pos), half))
        j = torch.from_numpy(rng.integers(0, neg.shape[1], half))
        look = {k: (P[k] + h.momentum * V[k]).requires_grad_() for k in P}
        x = torch.cat([pos[i], neg[i, j]])
        torch.nn.functional.binary_cross_entropy_with_logits(forward(look, x), y).backward()
        with torch.no_grad():
            for k in P:
                V[k] = h.momentum * V[k] - h.learning_rate * look[k].grad
                P[k] = P[k] + V[k]
            if step % EVERY == 0 and torch.nn.functional.binary_cross_entropy_with_logits(forward(P, xe), ye) < 0.6:
                return step
    return None


def ours(peaks: list[str], shuffles: list[list[str]], h: Hyper, seed: int, steps: int) -> int | None:
    """The same for dbtools' trainer (one model, validation every EVERY steps)."""
    codes = encode_all(peaks + [s for row in shuffles for s in row], "peaks and shuffles")
    targets = np.r_[np.ones(len(peaks)), np.zeros(len(peaks) * SHUFFLES)].astype(np.float32)
    origin = np.r_[np.arange(len(peaks)), np.repeat(np.arange(len(peaks)), SHUFFLES)]
    ev = encode_all(peaks[:EVAL] + [row[0] for row in shuffles[:EVAL]], "evaluation")
    evy = np.r_[np.ones(EVAL), np.zeros(EVAL)].astype(np.float32)
    res = train_group([Task(codes, targets, True, h, seed=seed, origin=origin)], [(ev, evy)], steps, EVERY,
                      torch.device("cpu"))
    below = [c for c, v in zip(res.checkpoints, res.val_loss[:, 0]) if v < 0.6]
    return below[0] if below else None


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--set", default="ELK1", help="ENCODE set, by name prefix")
    ap.add_argument("--steps", type=int, default=1500)
    ap.add_argument("--seeds", default="1,2,3,4")
    ap.add_argument("--init", default="1e-3,1e-2,1e-2", help="init scales: detectors, hidden layer, output layer")
    ap.add_argument("--rate", type=float, default=0.02)
    ap.add_argument("--momentum", type=float, default=0.98)
    ap.add_argument("--detector-len", type=int, default=24)
    ap.add_argument("--encode", type=Path, default=ENCODE)
    args = ap.parse_args()
    torch.set_num_threads(1)
    path = next(args.encode.glob(f"{args.set}*_AC.seq.gz"))
    ds = read_dataset(str(path), rows="1:500")
    peaks = [s for s, y in zip(ds.sequences, ds.targets) if y == 1]
    rng = np.random.default_rng(0)
    shuffles = [[dinucleotide_shuffle(s, rng) for _ in range(SHUFFLES)] for s in peaks]
    conv, fc, out = (float(v) for v in args.init.split(","))
    h = Hyper(learning_rate=args.rate, momentum=args.momentum, init_conv=conv, init_fc=fc, init_out=out,
              l1_conv=0.0, l1_fc=0.0, l1_out=0.0, dropout=0.0, num_hidden=32, detector_len=args.detector_len)
    pos = one_hot_padded(peaks, h.detector_len)
    neg = one_hot_padded([s for row in shuffles for s in row], h.detector_len).view(len(peaks), SHUFFLES, 4, -1)
    print(f"{path.name}: {len(peaks)} peaks x {SHUFFLES} shuffles; init {args.init}, rate {args.rate}, momentum "
          f"{args.momentum}, m = {h.detector_len}, no L1 or dropout; first step with loss below 0.6 (of {args.steps})")
    print("seed\treference\tdbtools\tseconds")
    for seed in (int(s) for s in args.seeds.split(",")):
        t = time.perf_counter()
        a, b = reference(pos, neg, h, seed, args.steps), ours(peaks, shuffles, h, seed, args.steps)
        print(f"{seed}\t{a or 'never'}\t{b or 'never'}\t{time.perf_counter() - t:.0f}")


if __name__ == "__main__":
    main()
