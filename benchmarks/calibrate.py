"""Speed of the calibration protocol: batched runs against the same models one at a time.

For one protein and for 5 proteins at once (the 5 ENCODE sets, fold A + shuffled negatives),
builds the protocol's models (trials x folds, then final trials), times `--sample-steps` SGD
steps of the batched runs and of a sample of the models trained one at a time, measures one
validation pass, and extrapolates both to the full step budget (`--max-steps`, validation
every `--checkpoint-every` steps). Prints wall times and the speed-up.

    python benchmarks/calibrate.py [--sample-steps 20] [--device cpu|cuda]
"""

from __future__ import annotations

import argparse
import resource
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from dbtools.train.calibrate import Protocol, prepare_proteins, trial_tasks  # noqa: E402
from dbtools.train.bank_training import DataOptions, ModelSpec, RunOptions  # noqa: E402
from dbtools.train.data import GroupData  # noqa: E402
from dbtools.train.hyper import group_key  # noqa: E402
from dbtools.train.loop import evaluate_group, train_group  # noqa: E402
from dbtools.train.model import GroupParams  # noqa: E402

ENCODE = ROOT.parent / "shared" / "data" / "encode"


def timed(fn, device) -> float:
    if device.type == "cuda":
        torch.cuda.synchronize()
    t = time.perf_counter()
    fn()
    if device.type == "cuda":
        torch.cuda.synchronize()
    return time.perf_counter() - t


def profile(run: list, steps: int, device: torch.device) -> None:
    """The operators that take the time of a batched run's steps, the slowest first."""
    activities = [torch.profiler.ProfilerActivity.CPU]
    if device.type == "cuda":
        activities.append(torch.profiler.ProfilerActivity.CUDA)
    with torch.profiler.profile(activities=activities) as prof:
        timed(lambda: train_group(run, None, steps, steps, device), device)
    key = "self_cuda_time_total" if device.type == "cuda" else "self_cpu_time_total"
    print(f"profile of {steps} steps, {len(run)} models in one batched run:")
    print(prof.key_averages().table(sort_by=key, row_limit=20, max_name_column_width=50))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sample-steps", type=int, default=20)
    ap.add_argument("--max-steps", type=int, default=Protocol.steps)
    ap.add_argument("--checkpoint-every", type=int, default=Protocol.checkpoint_every)
    ap.add_argument("--serial-sample", type=int, default=6, help="models timed one at a time")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--encode", type=Path, default=ENCODE)
    ap.add_argument("--profile", type=int, default=0, metavar="STEPS",
                    help="also profile this many steps of the 5-protein run's first batched run (torch.profiler)")
    ap.add_argument("--protocols", default=Protocol.name,
                    help="calibration protocols to time, comma-separated (dbtools, deepbind); with two, their ratio")
    args = ap.parse_args()
    device = torch.device(args.device)
    batched_of = {}
    for name in args.protocols.split(","):
        batched_of[name] = estimate(Protocol(steps=args.max_steps, checkpoint_every=args.checkpoint_every, name=name),
                                    args, device)
    if len(batched_of) == 2:
        (a, ta), (b, tb) = batched_of.items()
        print(f"5 proteins, batched: {b} / {a} = {tb / ta:.3f}")
    print(f"peak memory {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:,.0f} MB")
    if device.type == "cuda":
        print(f"peak CUDA memory {torch.cuda.max_memory_allocated() / 2**20:,.0f} MiB")


def estimate(protocol: Protocol, args, device: torch.device) -> float:
    """Time one protocol on 1 and 5 proteins (print both); the 5-protein batched estimate, s."""
    paths = sorted(args.encode.glob("*_AC.seq.gz"))[:5]
    n_checkpoints = -(-args.max_steps // args.checkpoint_every)
    S = args.sample_steps
    print(f"torch {torch.__version__} on {device}; protocol {protocol.name}: {protocol.trials} trials x {protocol.folds} folds + "
          f"{protocol.final_trials} final trials, {args.max_steps} steps, {n_checkpoints} validations; "
          f"timed on {S} steps and extrapolated")
    for n in (1, 5):
        specs = [ModelSpec(id=p.name.split(".")[0], train=str(p), rows="1:500") for p in paths[:n]]
        proteins = prepare_proteins(specs, DataOptions(), protocol)
        tasks, vals, _ = trial_tasks(proteins, protocol)
        groups: dict[tuple, list[int]] = {}  # the batched runs: one per detector length and pooling
        for i, t in enumerate(tasks):
            groups.setdefault(group_key(t.hyper), []).append(i)
        # a final model's shape; the dbtools protocol trains up to train's lengths x restarts (the defaults kept)
        run_options = RunOptions()
        per_protein = protocol.final_trials if protocol.name == "deepbind" else max(
            protocol.final_trials, run_options.restarts * len(protocol.detector_lens))
        members = next(iter(groups.values()))
        finals = [tasks[members[i % len(members)]] for i in range(per_protein)]
        models = len(tasks) + n * per_protein
        train_group(tasks[:2], None, 2, 2, device)  # warm-up
        t_steps = t_val = 0.0
        for members in groups.values():
            run = [tasks[i] for i in members]
            t_steps += timed(lambda: train_group(run, None, S, S, device), device)
            params = GroupParams(run, device)
            val = GroupData([vals[i] for i in members], params.m, device)
            cls = torch.tensor([t.classification for t in run], device=device)
            t_val += timed(lambda: evaluate_group(params, val, cls), device)
        t_final = timed(lambda: train_group(finals * n, None, S, S, device), device)
        if args.profile and n == 5:
            profile([tasks[i] for i in next(iter(groups.values()))], args.profile, device)
        batched = (t_steps + t_final) * args.max_steps / S + t_val * n_checkpoints
        k = min(args.serial_sample, len(tasks))
        sample = [tasks[i] for i in range(0, len(tasks), max(1, len(tasks) // k))][:k]  # both lengths
        one = [timed(lambda t=t: train_group([t], None, S, S, device), device) for t in sample]
        first = GroupParams(tasks[:1], device)
        one_val = timed(lambda: evaluate_group(first, GroupData(vals[:1], first.m, device),
                                               torch.tensor([tasks[0].classification], device=device)), device)
        serial = models * (sum(one) / k * args.max_steps / S + one_val * n_checkpoints)
        print(f"{n} protein(s), {models} models: batched {batched:8.0f} s ({batched / 60:.1f} min), one at a time "
              f"{serial:8.0f} s ({serial / 3600:.1f} h); speed-up {serial / batched:5.1f}x")
    return batched


if __name__ == "__main__":
    main()
