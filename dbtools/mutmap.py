"""Mutation maps: how every single-base substitution of a sequence changes each model's score.

delta[i, b] = score(sequence with base b at i) - score(sequence), both exactly what
`score_codes` returns (same window size / average options); the wild-type base gets 0.

Exact and fast, without scoring 3L mutant sequences:

* A window of the original scorer is padded with m-1 `N` on its own, so a detector position
  ("filter start" s) has a pre-activation A_p(s) that depends on the window p it sits in.
  A substitution at i changes only the m positions s = i-m+1..i, and only in the windows
  that hold i; there row j = i - s reads a real base, so the change is exactly
  W[j, b] - W[j, x_i] whatever the window's padding.
* Per window the wild-type pre-activations are computed once ([windows, Q = w+m-1, columns]);
  the m changed positions of every (mutation, window) pair are a strided view of them, so
  the mutant's pooled max is max(wild-type max over the unchanged positions (prefix and
  suffix maxima), max of the m updated values) and its pooled sum is the wild-type sum
  with the m changed terms swapped.
* The dense layers then score the affected windows of every mutant; windows that do not
  hold i keep their wild-type scores, so a mutant's max over windows is also the max of the
  wild-type window scores before and after its affected windows (or, with --average, the
  wild-type sum with the affected windows' scores swapped).

All models of one architecture are stacked into one set of columns (forward detectors, then
the flipped detectors of reverse-complement models, as in `forward.BankEngine`); the three
other bases of every position (all four at an `N`) and every window offset of a chunk of
windows are evaluated together, and work is chunked over windows and offsets in cache-sized
steps, so memory stays within a budget for any sequence length.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from .atomic import atomic_path
from .bank import Bank
from .encode import N, encode, one_hot
from .errors import DbtoolsError, UsageError
from .genome import Genome
from .regions import read_regions
from .score import ScoreOptions
from .select import open_selected
from .sequences import read_sequences

DEFAULT_BUDGET = 1 << 22  # floats in the temporaries of one block of windows
_CPU_CHUNK = 1 << 17  # floats of mutant pre-activations built at once on the CPU (they stay in cache)
_DEAD_MARGIN = 1e-3
_MAX_COLUMNS = 512  # detector columns per stack (models of one architecture are split beyond this)


@dataclass
class _Stack:
    """Models of one architecture with stacked weights: forward columns, then reverse-complement ones."""

    m: int
    d: int
    avg: bool
    hidden: int
    bank_index: np.ndarray  # [G] positions of these models in the bank
    rc_local: torch.Tensor  # [Grc] positions within the stack of reverse-complement models
    weight: torch.Tensor  # [4m, C] live columns, row 4j + b
    flipped: torch.Tensor  # [m, 4, C] W[m-1-j', b] (the view of changed positions runs j' = m-1-j)
    threshold: torch.Tensor  # [C]
    live: torch.Tensor  # [C] index into the n_columns detector columns
    n_columns: int
    feature_index: torch.Tensor  # [H * nf] row of each head's features in a [2C + 1, R] pooled block
    w1: torch.Tensor  # [H, hid | 1, nf] per head (forward strand of each model, then reverse strands)
    b1: torch.Tensor  # [H, hid | 1]
    w2: torch.Tensor | None  # [H, 1, hid]
    b2: torch.Tensor | None  # [H]

    @property
    def size(self) -> int:
        return len(self.bank_index)

    @property
    def heads(self) -> int:
        return self.size + int(self.rc_local.numel())


def _build_stack(bank: Bank, members: list[int], device: torch.device) -> _Stack:
    arch = bank.models[members[0]].info.arch
    m = arch.detector_len
    rc_local = [k for k, i in enumerate(members) if bank.models[i].info.arch.reverse_complement]
    fwd = [bank.models[i].arrays["detectors"] for i in members]  # [m, 4, d] each
    rc = [fwd[k][::-1, ::-1, :] for k in rc_local]  # the reverse strand scanned along the forward one
    w3 = np.concatenate(fwd + rc, axis=2).astype(np.float32)  # [m, 4, n_columns]
    thr_m = [bank.models[i].arrays["thresholds"] for i in members]
    thr = np.concatenate(thr_m + [thr_m[k] for k in rc_local]).astype(np.float32)
    best = w3.max(axis=1).sum(axis=0) + thr  # best possible response: below 0 means always 0
    live = np.flatnonzero(best > -_DEAD_MARGIN)
    if live.size == 0:
        live = np.array([0])
    w = w3[:, :, live]
    C, d = live.size, arch.num_detectors
    # features interleaved [max0, avg0, max1, avg1, ...] per head, as the published weights expect;
    # a dead column's features are the zero row 2C
    position = np.full(w3.shape[2], -1)
    position[live] = np.arange(C)
    slots = [(0,), (0, 1)][arch.avg_pooling]
    feature_index = np.array([2 * C if position[col] < 0 else position[col] + t * C
                              for col in range(w3.shape[2]) for t in slots])
    heads = list(range(len(members))) + rc_local
    f32 = np.float32
    w1 = np.stack([bank.models[members[k]].arrays["weights1"].T for k in heads]).astype(f32)  # [H, hid|1, nf]
    b1 = np.stack([bank.models[members[k]].arrays["biases1"] for k in heads]).astype(f32)  # [H, hid|1]
    if arch.num_hidden:
        w2 = np.stack([bank.models[members[k]].arrays["weights2"].T for k in heads]).astype(f32)  # [H, 1, hid]
        b2 = np.stack([bank.models[members[k]].arrays["biases2"][0] for k in heads]).astype(f32)
        w2, b2 = torch.as_tensor(w2, device=device), torch.as_tensor(b2, device=device)
    else:
        w2 = b2 = None
    return _Stack(
        m=m, d=arch.num_detectors, avg=arch.avg_pooling, hidden=arch.num_hidden,
        bank_index=np.asarray(members),
        rc_local=torch.as_tensor(rc_local, dtype=torch.long, device=device),
        weight=torch.as_tensor(np.ascontiguousarray(w.reshape(4 * m, -1)), device=device),
        flipped=torch.as_tensor(np.ascontiguousarray(w[::-1]), device=device),
        threshold=torch.as_tensor(thr[live], device=device),
        live=torch.as_tensor(live, dtype=torch.long, device=device),
        n_columns=w3.shape[2],
        feature_index=torch.as_tensor(feature_index, dtype=torch.long, device=device),
        w1=torch.as_tensor(w1, device=device), b1=torch.as_tensor(b1, device=device), w2=w2, b2=b2,
    )


def _pooled_block(mx: torch.Tensor, mean: torch.Tensor | None) -> torch.Tensor:
    """Pooled features [R, C] (max, and mean) as one [2C + 1, R] block: max rows, mean rows, a zero row."""
    R, C = mx.shape
    out = mx.new_empty(2 * C + 1, R)
    out[:C] = mx.t()
    out[C:2 * C] = 0 if mean is None else mean.t()
    out[2 * C] = 0
    return out


def _heads(s: _Stack, pooled: torch.Tensor) -> torch.Tensor:
    """Scores of every head (model strand) from a pooled block [2C + 1, R]: [R, H]."""
    R = pooled.shape[1]
    feats = pooled.index_select(0, s.feature_index).view(s.heads, -1, R)  # [H, nf, R]
    h = torch.baddbmm(s.b1[:, :, None], s.w1, feats)  # [H, hid|1, R]
    if s.hidden:
        h = torch.baddbmm(s.b2[:, None, None], s.w2, h.clamp_(min=0))
    return h[:, 0].t()


def _models_of(s: _Stack, per_head: torch.Tensor) -> torch.Tensor:
    """[..., H] strand scores -> [..., G] model scores (the max of the strands, as the original)."""
    out = per_head[..., :s.size].clone()
    if s.rc_local.numel():
        out[..., s.rc_local] = torch.maximum(out[..., s.rc_local], per_head[..., s.size:])
    return out


class MutationMapper:
    """A bank compiled for exact mutation maps on one device."""

    def __init__(self, bank: Bank, device: str | torch.device = "cpu", budget: int | None = None):
        self.bank = bank
        self.device = torch.device(device)
        self.budget = budget or DEFAULT_BUDGET
        # the mutants' pre-activations are reduced as soon as built: cache-sized on the CPU
        self.chunk = min(self.budget, _CPU_CHUNK) if self.device.type == "cpu" else self.budget
        by_arch: dict[tuple, list[int]] = {}
        for i, model in enumerate(bank.models):
            a = model.info.arch
            by_arch.setdefault((a.detector_len, a.num_detectors, a.avg_pooling, a.num_hidden), []).append(i)
        self.stacks: list[_Stack] = []
        for members in by_arch.values():
            per = max(1, _MAX_COLUMNS // (2 * bank.models[members[0]].info.arch.num_detectors))
            for k in range(0, len(members), per):
                self.stacks.append(_build_stack(bank, members[k:k + per], self.device))

    def __len__(self) -> int:
        return len(self.bank)

    @torch.inference_mode()
    def scores(self, codes: np.ndarray, options: ScoreOptions = ScoreOptions()) -> tuple[np.ndarray, np.ndarray]:
        """Wild-type scores [M] and the scores of every substitution [L, 4, M] (float32) of one
        encoded sequence; the wild-type base's entry holds the wild-type score."""
        x = torch.as_tensor(np.asarray(codes)).to(self.device, torch.long)
        if x.dim() != 1 or x.numel() == 0:
            raise ValueError("codes must be one non-empty sequence")
        L = x.numel()
        wt = torch.empty(len(self.bank), dtype=torch.float64)
        mut = torch.empty(L, 4, len(self.bank), dtype=torch.float64)
        for s in self.stacks:
            w, m = self._stack_scores(s, x, options.window_size, options.average)
            idx = torch.as_tensor(s.bank_index)
            wt[idx] = w.cpu()
            mut[:, :, idx] = m.cpu()
        if options.class_prob:
            wt, mut = torch.sigmoid(wt), torch.sigmoid(mut)
        wt32, mut32 = wt.float().numpy(), mut.float().numpy()
        ref = x.cpu().numpy()
        known = ref < 4
        mut32[np.flatnonzero(known), ref[known]] = wt32  # the wild-type base: exactly the wild-type score
        return wt32, mut32

    def _stack_scores(self, s: _Stack, x: torch.Tensor, window_size: int | None, average: bool):
        """Wild-type [G] and mutant [L, 4, G] scores (float64) of one stack."""
        L, m = x.numel(), s.m
        wl = min(window_size or int(1.5 * m), L)
        P = L - wl + 1
        Q = wl + m - 1
        C = s.weight.shape[1]
        H = s.heads
        dev = x.device
        wt_win = torch.empty(P, H, device=dev)
        # a mutant per slot: without N, the 3 other bases (x_i + 1, + 2, + 3 mod 4); with N, all 4 bases
        S = 3 if int(x.max()) < 4 else 4
        acc = torch.full((L, S, H), -torch.inf, device=dev) if not average else torch.zeros(L, S, H, device=dev)
        # windows per block: their pre-activations, prefix and suffix maxima, the mutants' pooled
        # features and dense layers fit the budget (with the substitutions of the positions they hold)
        rows = S * (2 * C + 1 + H * (2 * s.w1.shape[2] + s.w1.shape[1] + 1))
        per_window = 4 * Q * C + wl * (S * C * (2 if s.avg else 1) + rows) + S * m * C
        nb = max(1, min(P, (self.budget - (wl - 1) * S * m * C) // per_window))
        for pa in range(0, P, nb):
            pb = min(P, pa + nb)
            self._block(s, x, wl, pa, pb, wt_win, acc, average)
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
        wt_model, slots = _models_of(s, wt_head), _models_of(s, per_head)
        if S == 4:
            return wt_model, slots
        mut = slots.new_empty(L, 4, s.size)
        mut[i, x] = wt_model
        for r in range(3):
            mut[i, (x + r + 1) % 4] = slots[:, r]
        return wt_model, mut

    def _preact(self, s: _Stack, x: torch.Tensor, wl: int, pa: int, pb: int, out: torch.Tensor) -> None:
        """Pre-activations of windows pa..pb-1, each padded with m-1 N on its own: out [n, Q, C]."""
        m = s.m
        r = torch.arange(wl + 2 * m - 2, device=x.device)
        pos = torch.arange(pa, pb, device=x.device)[:, None] + r[None, :] - (m - 1)
        inside = (r >= m - 1) & (r < m - 1 + wl)
        codes = torch.where(inside[None, :], x[pos.clamp(0, x.numel() - 1)], N)
        step = max(1, self.budget // (out.shape[1] * 4 * m))
        for a in range(0, pb - pa, step):
            b = min(pb - pa, a + step)
            oh = one_hot(codes[a:b].unfold(1, m, 1)).reshape(-1, 4 * m)
            torch.addmm(s.threshold, oh, s.weight, out=out[a:b].view(-1, out.shape[2]))

    def _block(self, s: _Stack, x: torch.Tensor, wl: int, pa: int, pb: int,
               wt_win: torch.Tensor, acc: torch.Tensor, average: bool) -> None:
        """Wild-type scores of windows pa..pb-1 and their share of every mutant's window scores."""
        m = s.m
        Q, C, n = wl + m - 1, s.weight.shape[1], pb - pa
        A = x.new_empty((n, Q, C), dtype=torch.float32)
        self._preact(s, x, wl, pa, pb, A)
        R = A.clamp(min=0)
        pre = R.new_zeros(n, Q + 1, C)  # pre[:, t] = max of positions < t (0 for none: values are >= 0)
        suf = R.new_zeros(n, Q + 1, C)  # suf[:, t] = max of positions >= t
        for q in range(Q):  # a running max per position (faster than cummax on the CPU)
            torch.maximum(pre[:, q], R[:, q], out=pre[:, q + 1])
            torch.maximum(suf[:, Q - q], R[:, Q - 1 - q], out=suf[:, Q - 1 - q])
        total = R.sum(1) if s.avg else None  # [n, C]
        wt_win[pa:pb] = _heads(s, _pooled_block(pre[:, Q], None if total is None else total / Q))
        del R
        # rows W[j, b] in j' = m-1-j order: [4, m, C]; and W[j, x_i] of any base code (N = the mean): [5, m, C]
        rows = s.flipped.permute(1, 0, 2).contiguous()
        S = acc.shape[1]
        # D[i, slot] = W[j, b] - W[j, x_i] for the slot's base b, for every i the block's windows hold
        xi = x[pa:pb + wl - 1]
        if S == 3:
            alt = (xi[:, None] + torch.arange(1, 4, device=x.device)) % 4
            D = rows.index_select(0, alt.reshape(-1)).view(-1, 3, m, C) - rows.index_select(0, xi)[:, None]
        else:
            by_code = torch.cat([rows, rows.mean(0, keepdim=True)])
            D = (rows[None] - by_code.index_select(0, xi)[:, None]).contiguous()
        # the mutation at offset t of window p (i = p + t) changes positions q = t .. t+m-1 of it,
        # where row j = m-1-(q-t) of the filter reads base i: V[p, t, j'] = A[p, t + j'];
        # U = V + D is built a cache-sized chunk at a time and reduced at once (max, and rectified sum)
        mx = A.new_empty(n, wl, S, C)
        mean = A.new_empty(n, wl, S, C) if s.avg else None
        per_pair = S * m * C
        chunk = self.chunk
        nt = max(1, min(wl, chunk // per_pair))
        npw = max(1, min(n, chunk // (nt * per_pair)))
        for t0 in range(0, wl, nt):
            t1 = min(wl, t0 + nt)
            for a in range(0, n, npw):
                b = min(n, a + npw)
                k, w = b - a, t1 - t0
                V = A.as_strided((k, w, 1, m, C), (Q * C, C, 0, C, 1), A.storage_offset() + (a * Q + t0) * C)
                Dv = D.as_strided((k, w, S, m, C), (per_pair, per_pair, m * C, C, 1),
                                  D.storage_offset() + (a + t0) * per_pair)
                U = torch.add(V, Dv)
                torch.amax(U, 3, out=mx[a:b, t0:t1])
                if mean is not None:
                    torch.sum(U.clamp_(min=0), 3, out=mean[a:b, t0:t1])
        del D
        # unchanged positions: before t and from t + m on (rectified, so >= 0: no clamp needed)
        E = torch.maximum(pre[:, :wl], suf[:, m:wl + m])  # [n, wl, C]
        torch.maximum(mx, E[:, :, None], out=mx)
        if mean is not None:
            V = A.as_strided((n, wl, m, C), (Q * C, C, C, 1), A.storage_offset())
            rest = total[:, None] - V.clamp(min=0).sum(2)  # [n, wl, C]
            mean.add_(rest[:, :, None]).div_(Q)
            mean = mean.view(-1, C)
        del A, pre, suf
        H = s.heads
        sc = _heads(s, _pooled_block(mx.view(-1, C), mean)).reshape(n, wl, S * H)
        # window p with offset t holds mutation i = p + t: skew so each i is one row
        fill = 0.0 if average else -torch.inf
        skew = sc.new_full((n + wl - 1, wl, S * H), fill)
        skew.as_strided((n, wl, S * H), (wl * S * H, (wl + 1) * S * H, 1)).copy_(sc)
        part = (skew.sum(1) if average else skew.amax(1)).view(-1, S, H)
        i0, i1 = pa, pb + wl - 1
        if average:
            acc[i0:i1] += part
        else:
            torch.maximum(acc[i0:i1], part, out=acc[i0:i1])


@dataclass(frozen=True)
class MutationMap:
    """One sequence's map for every model: wild-type scores [M] and deltas [L, 4, M] (A, C, G, T)."""

    wild_type: np.ndarray
    delta: np.ndarray
    mutant: np.ndarray


SCALES = ("none", "deepbind")


def mutation_map(mapper: MutationMapper, codes: np.ndarray, options: ScoreOptions = ScoreOptions(),
                 scale: str = "none") -> MutationMap:
    """The mutation map of one encoded sequence under every model of `mapper`.

    scale "none": delta = score(mutant) - score(wild type).
    scale "deepbind": the paper's scaling, (score(mutant) - score(wild type)) x max(0, wild type, mutant),
    so a substitution counts only when the wild type or the mutant scores above 0.
    """
    wt, mut = mapper.scores(codes, options)
    delta = mut - wt[None, None, :]
    if scale == "deepbind":
        delta = delta * np.maximum(0, np.maximum(wt[None, None, :], mut))
    elif scale != "none":
        raise ValueError(f"unknown scale {scale!r}")
    known = codes < 4
    delta[np.flatnonzero(known), codes[known]] = 0
    return MutationMap(wild_type=wt, delta=delta.astype(np.float32), mutant=mut)


def brute_force_scores(engine, codes: np.ndarray, options: ScoreOptions = ScoreOptions()) -> np.ndarray:
    """The slow reference: `score_codes` on all 4L single-base variants of `codes`: [L, 4, M]."""
    from .score import score_codes

    L = len(codes)
    mutants = np.repeat(np.asarray(codes, dtype=np.int8)[None], 4 * L, 0)
    mutants[np.arange(4 * L), np.repeat(np.arange(L), 4)] = np.tile(np.arange(4), L)
    return score_codes(engine, list(mutants), options).reshape(L, 4, -1)


# ---- inputs and outputs of `dbtools mutmap` ------------------------------------------------

FORMATS = ("tsv", "npz", "png", "svg")


@dataclass(frozen=True)
class Target:
    """A sequence to map: its name, bases and, for a BED region, where it lies (0-based, half open)."""

    name: str
    sequence: str
    where: str  # for error messages: the file and record or line
    contig: str | None = None
    start: int | None = None
    end: int | None = None


def read_targets(sequences: str | None, regions: str | None, genome: str | None) -> Iterator[Target]:
    """Sequences (FASTA or one per line, '-' = stdin) or BED regions cut from a genome FASTA."""
    if regions is None:
        if genome is not None:
            raise UsageError("--genome needs --regions (the BED intervals to map)")
        path = sequences or "-"
        display = "stdin" if path == "-" else path
        for i, (name, seq, fasta) in enumerate(read_sequences(path), 1):
            yield Target(name, seq, f"{display}: record {i} ({name})") if fasta else Target(f"seq{i}", seq, name)
        return
    if genome is None:
        raise UsageError("--regions needs --genome (the FASTA the intervals are cut from)")
    if sequences not in (None, "-"):
        raise UsageError("give either SEQUENCES or --regions, not both")
    with Genome(genome) as g:
        for r in read_regions(regions):
            where = f"{regions}: line {r.line}"
            contig = g.require(r.contig, where)
            if r.end == r.start:
                raise DbtoolsError(f"{where}: region {r.contig}:{r.start}-{r.end} is empty")
            if r.end > g.sizes[contig]:
                raise DbtoolsError(f"{where}: region {r.contig}:{r.start}-{r.end} runs past the end of "
                                   f"{r.contig} ({g.sizes[contig]:,} bp)")
            yield Target(r.name, g.fetch(contig, r.start, r.end), f"{where} ({r.name})", r.contig, r.start, r.end)


def prepare_out_dir(out_dir: str) -> Path:
    """Create the output folder if needed; a folder that cannot be made or written is one clear error."""
    path = Path(out_dir)
    if path.exists() and not path.is_dir():
        raise DbtoolsError(f"{out_dir}: output folder is a file, not a folder")
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise DbtoolsError(f"{out_dir}: cannot create output folder ({e.strerror or e})") from None
    if not os.access(path, os.W_OK | os.X_OK):
        raise DbtoolsError(f"{out_dir}: output folder is not writable")
    return path


def safe_name(name: str) -> str:
    """A file-name-safe form of a sequence or region name."""
    return re.sub(r"[^A-Za-z0-9._-]+", "_", name).strip("._") or "sequence"


def _describe(options: ScoreOptions, scale: str) -> str:
    window = options.window_size or "int(1.5 m)"
    what = ("(score(mutant) - score(wild type)) x max(0, wild type, mutant)" if scale == "deepbind"
            else "score(mutant) - score(wild type)")
    prob = " of sigmoid(score)" if options.class_prob else ""
    return f"delta = {what}{prob}; window {window}, {'average' if options.average else 'max'} over windows"


def write_tsv(path: Path, target: Target, info, wild_type: float, delta: np.ndarray, note: str) -> None:
    """Positions x A, C, G, T, with the reference base and, for a region, the genomic coordinate."""
    region = target.contig is not None
    with atomic_path(path) as tmp, open(tmp, "w") as fh:
        fh.write(f"# dbtools mutmap: {note}\n")
        fh.write(f"# model {info.id} ({info.protein}); sequence {target.name}, {len(target.sequence)} bp"
                 + (f", {target.contig}:{target.start}-{target.end} (BED)" if region else "")
                 + f"; wild-type score {wild_type:.6f}\n")
        fh.write("\t".join(["position"] + (["chrom", "coordinate"] if region else []) + ["ref", "A", "C", "G", "T"])
                 + "\n")
        lines = []
        for i, (base, row) in enumerate(zip(target.sequence.upper(), delta)):
            where = [str(i + 1)] + ([target.contig, str(target.start + i + 1)] if region else [])
            lines.append("\t".join(where + [base] + ["%.6f" % v for v in row.tolist()]))
        fh.write("\n".join(lines) + "\n")


def write_npz(path: Path, target: Target, info, wild_type: float, delta: np.ndarray, note: str) -> None:
    """delta [L, 4] (A, C, G, T) with the sequence, model and, for a region, its coordinates."""
    extra = {}
    if target.contig is not None:
        extra = dict(contig=target.contig, start=target.start, end=target.end)
    with atomic_path(path) as tmp, open(tmp, "wb") as fh:
        np.savez_compressed(fh, delta=delta.astype(np.float32), bases=np.array(list("ACGT")),
                            sequence=target.sequence, name=target.name, model=info.id, protein=info.protein,
                            wild_type=np.float32(wild_type), note=note, **extra)


@dataclass
class MutmapSummary:
    sequences: int
    models: int
    files: int


def mutmap(sequences: str | None, out_dir: str, *, regions: str | None = None, genome: str | None = None,
           bank: str | None = None, models: list[str] | None = None, options: ScoreOptions = ScoreOptions(),
           scale: str = "none", formats: list[str] = ("tsv",), device: torch.device | str = "cpu",
           progress: Callable[[int], None] | None = None) -> MutmapSummary:
    """Map every sequence (or region) with every selected model; one file per sequence, model and format."""
    formats = list(dict.fromkeys(f.lower() for f in formats))
    bad = [f for f in formats if f not in FORMATS]
    if bad or not formats:
        raise UsageError(f"--format must be among {', '.join(FORMATS)} (got {', '.join(bad) or 'none'})")
    if scale not in SCALES:
        raise UsageError(f"--scale must be one of {', '.join(SCALES)} (got {scale!r})")
    folder = prepare_out_dir(out_dir)
    selected = open_selected(bank, models)
    mapper = MutationMapper(selected, device)
    note = _describe(options, scale)
    figures = [f for f in formats if f in ("png", "svg")]
    if figures:
        from . import mutmap_plot  # matplotlib only when a figure is asked for
    used: set[str] = set()
    n = files = 0
    for target in read_targets(sequences, regions, genome):
        codes = encode(target.sequence, target.where)
        result = mutation_map(mapper, codes, options, scale)
        stem = safe_name(target.name)
        k = 2
        while stem in used:
            stem = f"{safe_name(target.name)}_{k}"
            k += 1
        used.add(stem)
        for j, model in enumerate(selected.models):
            info, wt, delta = model.info, float(result.wild_type[j]), result.delta[:, :, j]
            base = folder / f"{stem}.{safe_name(info.id)}"
            if "tsv" in formats:
                write_tsv(base.with_name(base.name + ".tsv"), target, info, wt, delta, note)
            if "npz" in formats:
                write_npz(base.with_name(base.name + ".npz"), target, info, wt, delta, note)
            for fmt in figures:
                mutmap_plot.save(base.with_name(base.name + "." + fmt), delta, target.sequence, fmt=fmt,
                                 title=mutmap_plot.title(info, target, wt, scale),
                                 first=None if target.start is None else target.start + 1)
            files += len(formats)
        n += 1
        if progress:
            progress(1)
    return MutmapSummary(sequences=n, models=len(selected), files=files)
