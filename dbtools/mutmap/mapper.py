"""Mutation maps: how every single-base substitution of a sequence changes each model's score.

delta[i, b] = score(sequence with base b at i) - score(sequence), both exactly what
`score_codes` returns (same window size / average options); the wild-type base gets 0.

Exact and fast, without scoring 3L mutant sequences:

* A window of the original scorer is padded with m-1 `N` on its own, so a detector position
  ("filter start" s) has a pre-activation A_p(s) that depends on the window p it sits in.
  A substitution at i changes only the m positions s = i-m+1..i, and only in the windows
  that hold i; there row j = i - s reads a real base, so the change is exactly
  W[j, b] - W[j, x_i] whatever the window's padding.
* Per window the wild-type pre-activations are computed once ([windows, Q = w+m-1, columns])
  from partial sums of the centred filter rows at every filter start (an `N` row adds 0 to
  centred weights, so a position cut by the window edge is a difference of two partial sums);
  the m changed positions of every (mutation, window) pair are a strided view of them, so
  the mutant's pooled max is max(wild-type max over the unchanged positions (prefix and
  suffix maxima), max of the m updated values) and its pooled sum is the wild-type sum
  with the m changed terms swapped. The updated values are built a cache-sized chunk at a
  time and reduced at once.
* The dense layers then score the affected windows of every mutant; windows that do not
  hold i keep their wild-type scores, so a mutant's max over windows is also the max of the
  wild-type window scores before and after its affected windows (or, with --average, the
  wild-type sum with the affected windows' scores swapped).

On the CPU the substitution kernel (`engine.substitutions`) does all this per model strand for
the architectures it takes, every sequence and strand of a call side by side on the CPU's threads.
In the torch path (the other architectures, and GPUs), models whose detectors share a length and
pooling are stacked into one set of columns (per
architecture, forward detectors, then the flipped detectors of reverse-complement models, as
in `engine.groups`), so models that differ only in their dense layers share the detector
work; the three other bases of every position (all four at an `N`) and every window offset
of a block of windows are evaluated together, in cache-sized chunks of windows and offsets,
and blocks of windows keep memory within a budget for any sequence length.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

import numpy as np
import torch

from dbtools.bank.store import Bank
from dbtools.engine import native, substitutions
from dbtools.engine.groups import Strands, architecture_groups, fused_strands
from dbtools.engine.options import ScoreOptions
from dbtools.engine.substitutions import substitution_scores
from dbtools.io.encode import N
from dbtools.mutmap.blocks import block_scores
from dbtools.mutmap.stacks import Stack, build_stack, models_of
from dbtools.parallel import cpu_count, parallel_steps

DEFAULT_BUDGET = 1 << 22  # floats in the temporaries of one block of windows
_CPU_CHUNK = 1 << 18  # floats of mutant pre-activations built at once on the CPU (they stay in cache)
_MAX_COLUMNS = 512  # detector columns per stack (a stack's models are split beyond this)


@dataclass
class KernelGroup:
    """Models of one architecture mapped by the substitution kernel: bank positions, which of them
    score the reverse strand too, and their strands laid out for the kernel."""

    m: int
    avg: bool
    members: np.ndarray
    rc_local: np.ndarray
    strands: Strands


class MutationMapper:
    """A bank compiled for exact mutation maps on one device.

    On the CPU, architectures the substitution kernel takes (`engine.substitutions`; strands of at
    most 16 detectors) are mapped there, every sequence and model strand of a call as one pool of
    steps; the others, and every architecture on a GPU, by the stacked torch path below.
    """

    def __init__(self, bank: Bank, device: str | torch.device = "cpu", budget: int | None = None,
                 chunk: int | None = None, kernel: bool = True):
        self.bank = bank
        self.device = torch.device(device)
        self.budget = budget or DEFAULT_BUDGET
        # the mutants' pre-activations are reduced as soon as built: cache-sized on the CPU
        self.chunk = chunk or (min(self.budget, _CPU_CHUNK) if self.device.type == "cpu" else self.budget)
        use_kernel = kernel and self.device.type == "cpu" and substitutions.library() is not None
        self.kernel_groups: list[KernelGroup] = []
        rest = []
        for key, members in architecture_groups(self.bank).items():
            strands = fused_strands(bank, members) if use_kernel else None
            if strands is None:
                rest.append((key, members))
                continue
            rc_local = [k for k, i in enumerate(members) if bank.models[i].info.arch.reverse_complement]
            self.kernel_groups.append(KernelGroup(m=key[0], avg=key[2], members=np.asarray(members),
                                                  rc_local=np.asarray(rc_local, dtype=np.int64), strands=strands))
        # models whose detectors share a length and pooling share one stack of detector columns
        self.stacks: list[Stack] = []
        pending: dict[tuple, tuple[int, list[list[int]]]] = {}
        for (m, d, avg, _), members in rest:
            cols = 2 * d  # at most, per model (both strands)
            per = max(1, _MAX_COLUMNS // cols)
            for k in range(0, len(members), per):
                group = members[k:k + per]
                used, groups = pending.get((m, avg), (0, []))
                if groups and used + cols * len(group) > _MAX_COLUMNS:
                    self.stacks.append(build_stack(bank, groups, self.device))
                    used, groups = 0, []
                pending[(m, avg)] = (used + cols * len(group), groups + [group])
        for _, groups in pending.values():
            self.stacks.append(build_stack(bank, groups, self.device))

    def __len__(self) -> int:
        return len(self.bank)

    def scores(self, codes: np.ndarray, options: ScoreOptions = ScoreOptions(),
               threads: int | None = None) -> tuple[np.ndarray, np.ndarray]:
        """The scores of one sequence and of every single-base substitution of it.

        Parameters
        ----------
        codes : [L] base codes
        options : scoring options, as `score_codes` takes them
        threads : CPU threads (`parallel.cpu_count`)

        Returns
        -------
        wild_type : [M] float32
        mutant : [L, 4, M] float32 (A, C, G, T); the wild-type base's entry is the wild-type score
        """
        return self.scores_many([codes], options, threads)[0]

    @torch.inference_mode()
    def scores_many(self, codes: list[np.ndarray], options: ScoreOptions = ScoreOptions(),
                    threads: int | None = None) -> list[tuple[np.ndarray, np.ndarray]]:
        """`scores` of several sequences, computed together (every sequence and model strand of the
        substitution kernel's architectures in one pool of steps)."""
        seqs = [np.asarray(c) for c in codes]
        if any(c.ndim != 1 or c.size == 0 for c in seqs):
            raise ValueError("codes must be non-empty sequences")
        M = len(self.bank)
        wts = [np.empty(M, dtype=np.float64) for _ in seqs]
        muts = [np.empty((c.size, 4, M), dtype=np.float64) for c in seqs]
        self._kernel_scores(seqs, options, wts, muts, threads)
        if self.stacks:
            for c, wt, mut in zip(seqs, wts, muts):
                self._torch_scores(c, options, wt, mut, threads)
        out = []
        for c, wt, mut in zip(seqs, wts, muts):
            if options.class_prob:
                wt, mut = 1 / (1 + np.exp(-wt)), 1 / (1 + np.exp(-mut))
            wt32, mut32 = wt.astype(np.float32), mut.astype(np.float32)
            known = c < 4
            mut32[np.flatnonzero(known), c[known]] = wt32  # the wild-type base: exactly the wild-type score
            out.append((wt32, mut32))
        return out

    def _kernel_scores(self, seqs: list[np.ndarray], options: ScoreOptions, wts: list[np.ndarray],
                       muts: list[np.ndarray], threads: int | None) -> None:
        """The substitution kernel's architectures, into wts[n][models] and muts[n][:, :, models]."""
        if not self.kernel_groups:
            return
        xs = [torch.from_numpy(np.minimum(c, N).astype(np.uint8)) for c in seqs]
        bufs, steps, costs = {}, [], []
        for n, x in enumerate(xs):
            L = x.numel()
            for gi, g in enumerate(self.kernel_groups):
                U = g.strands.centred.shape[2] // native.LANES
                w = options.scoring_window(g.m, L)
                bufs[n, gi] = (torch.empty(U), torch.empty(U, L, 4))
                costs.append((n, gi, U, (L - w + 1) * w * (g.m + 4)))  # work per strand: windows x offsets x rows
        # steps of about equal work, several per thread so that a slow core holds up no one
        per_step = sum(U * c for _, _, U, c in costs) / (8 * cpu_count(threads)) or 1
        for n, gi, U, c in costs:
            k = max(1, min(U, int(per_step // c)))
            steps.extend((n, gi, u0, min(U, u0 + k)) for u0 in range(0, U, k))

        def run(step) -> None:
            n, gi, u0, u1 = step
            g, x = self.kernel_groups[gi], xs[n]
            wt, mut = bufs[n, gi]
            substitution_scores(x, options.scoring_window(g.m, x.numel()), g.strands, g.avg, options.average,
                                wt, mut, u0, u1)

        parallel_steps(run, steps, self.device, threads)
        for (n, gi), (wt, mut) in bufs.items():
            g = self.kernel_groups[gi]
            wt, mut = wt.numpy().astype(np.float64), mut.numpy().astype(np.float64)
            G = g.members.size
            w_models, m_models = wt[:G].copy(), mut[:G].copy()  # as the original: the max of the strands
            if g.rc_local.size:
                w_models[g.rc_local] = np.maximum(w_models[g.rc_local], wt[G:])
                m_models[g.rc_local] = np.maximum(m_models[g.rc_local], mut[G:])
            wts[n][g.members] = w_models
            muts[n][:, :, g.members] = m_models.transpose(1, 2, 0)

    def _torch_scores(self, codes: np.ndarray, options: ScoreOptions, wt_out: np.ndarray, mut_out: np.ndarray,
                      threads: int | None) -> None:
        """The stacked torch path's models of one sequence, into wt_out[models] and mut_out[:, :, models]."""
        x = torch.as_tensor(codes).to(self.device, torch.long)
        L = x.numel()
        # a mutant per slot: without N, the 3 other bases (x_i + 1, + 2, + 3 mod 4); with N, all 4 bases
        S = 3 if int(x.max()) < 4 else 4
        M = len(self.bank)
        wt = torch.empty(M, dtype=torch.float64)
        slots = torch.empty(L, S, M, dtype=torch.float64)
        done = []

        def run(s: Stack) -> None:  # stacks fill disjoint columns: run side by side on the CPU's threads
            wt_head, per_head = self._stack_scores(s, x, S, options.window_size, options.average)
            for p in s.parts:
                idx = torch.as_tensor(p.bank_index)
                wt[idx] = models_of(p, wt_head[p.h0:p.h1]).cpu()
                slots[:, :, idx] = models_of(p, per_head[:, :, p.h0:p.h1]).cpu()

        parallel_steps(run, self.stacks, self.device, threads)
        for s in self.stacks:
            done.extend(int(i) for p in s.parts for i in p.bank_index)
        if S == 4:
            mut = slots
        else:
            i, ref = torch.arange(L), x.cpu()
            mut = slots.new_empty(L, 4, M)
            mut[i, ref] = wt
            for r in range(3):
                mut[i, (ref + r + 1) % 4] = slots[:, r]
        wt_out[done] = wt[done].numpy()
        mut_out[:, :, done] = mut[:, :, done].numpy()

    def _stack_scores(self, s: Stack, x: torch.Tensor, S: int, window_size: int | None, average: bool):
        """Wild-type [H] and mutant [L, S, H] scores (float64) of every head (model strand) of one stack."""
        L, m = x.numel(), s.m
        wl = ScoreOptions(window_size=window_size).scoring_window(m, L)
        P = L - wl + 1
        Q = wl + m - 1
        C = s.const.numel()
        H = s.heads
        dev = x.device
        wt_win = torch.empty(P, H, device=dev)
        acc = torch.full((L, S, H), -torch.inf, device=dev) if not average else torch.zeros(L, S, H, device=dev)
        # windows per block: their pre-activations and running maxima, the mutants' pooled features
        # and dense layers fit the budget (with the partial sums and substitutions they read)
        hid = max(p.w_max.shape[2] for p in s.parts)
        per_window = (3 * Q * C + (m + 1) * C + 2 * wl * C + wl * S * C * (2 if s.avg else 1)
                      + wl * S * H * (hid + 2) + S * m * C)
        fixed = (wl - 1) * S * m * C + (Q - 1) * (m + 1) * C
        nb = max(1, min(P, (self.budget - fixed) // per_window))
        for pa in range(0, P, nb):
            pb = min(P, pa + nb)
            block_scores(s, x, wl, pa, pb, wt_win, acc, average, self.chunk)
        # windows not holding i keep their wild-type scores
        i = torch.arange(L, device=dev)
        lo = (i - wl + 1).clamp(min=0)  # first window holding i
        hi = (i + 1).clamp(max=P)  # one past the last
        if average:
            cs = torch.cat([wt_win.new_zeros(1, H, dtype=torch.float64), wt_win.double().cumsum(0)])
            rest = cs[-1] - (cs[hi] - cs[lo])  # [L, H]
            per_head = acc.double() + rest[:, None, :]
            wt_head = cs[-1]
            if P > 1:
                per_head, wt_head = per_head / L, wt_head / L
        else:
            ninf = wt_win.new_full((1, H), -torch.inf)
            pre = torch.cat([ninf, wt_win.cummax(0).values])  # pre[k] = max of windows < k
            suf = torch.cat([wt_win.flip(0).cummax(0).values.flip(0), ninf])  # suf[k] = max of windows >= k
            rest = torch.maximum(pre[lo], suf[hi])
            per_head = torch.maximum(acc, rest[:, None, :]).double()
            wt_head = wt_win.amax(0).double()
        return wt_head, per_head


@dataclass(frozen=True)
class MutationMap:
    """One sequence's map for every model: wild-type scores [M] and deltas [L, 4, M] (A, C, G, T)."""

    wild_type: np.ndarray
    delta: np.ndarray
    mutant: np.ndarray


class Scale(enum.StrEnum):
    """How a map's deltas are scaled: none, or the paper's x max(0, wild type, mutant)."""

    NONE = "none"
    DEEPBIND = "deepbind"


SCALES = tuple(Scale)


def mutation_map(mapper: MutationMapper, codes: np.ndarray, options: ScoreOptions = ScoreOptions(),
                 scale: str = "none", threads: int | None = None) -> MutationMap:
    """The mutation map of one encoded sequence under every model of `mapper`.

    scale "none": delta = score(mutant) - score(wild type).
    scale "deepbind": the paper's scaling, (score(mutant) - score(wild type)) x max(0, wild type, mutant),
    so a substitution counts only when the wild type or the mutant scores above 0.
    """
    return mutation_maps(mapper, [codes], options, scale, threads)[0]


def mutation_maps(mapper: MutationMapper, codes: list[np.ndarray], options: ScoreOptions = ScoreOptions(),
                  scale: str = "none", threads: int | None = None) -> list[MutationMap]:
    """`mutation_map` of several encoded sequences, computed together."""
    if scale not in SCALES:
        raise ValueError(f"unknown scale {scale!r}")
    return [_map_of(c, wt, mut, scale) for c, (wt, mut) in zip(codes, mapper.scores_many(codes, options, threads))]


def _map_of(codes: np.ndarray, wt: np.ndarray, mut: np.ndarray, scale: str) -> MutationMap:
    delta = mut - wt[None, None, :]
    if scale == "deepbind":
        delta = delta * np.maximum(0, np.maximum(wt[None, None, :], mut))
    known = codes < 4
    delta[np.flatnonzero(known), codes[known]] = 0
    return MutationMap(wild_type=wt, delta=delta.astype(np.float32), mutant=mut)
