"""The batched forward pass: every model of a bank evaluated together on windows of sequences.

Models are grouped by architecture (detector length m, pooling, hidden layer); each group
runs its convolution as one GEMM whose columns are the detectors of all its models (plus
the flipped detectors of reverse-complement models, so both strands come from one pass
over the forward sequence). No Python loop over models.

Windowed scoring (the original scorer's ``--window-size``) pads every window with m-1 `N` on
its own. `BankEngine.path` and `BankEngine.genomic_path` are the one place that decides how a
group's windows are computed: by the fused CPU kernel (`native`), from shared block sums
(`cuts`), each window on its own (`per_window`), or, for windows kept every few bp, one by one
from block sums (`strided`).
"""


from __future__ import annotations

import enum

import numpy as np
import torch

from dbtools.bank.store import Bank
from dbtools.engine import native
from dbtools.engine.cuts import pooled_cuts
from dbtools.engine.groups import Group, architecture_groups, build_group, cast_group
from dbtools.engine.heads import dense, heads
from dbtools.engine.options import ScoreOptions
from dbtools.engine.per_window import pooled_per_window
from dbtools.engine.sliding import reduce_windows
from dbtools.io.encode import N
from dbtools.parallel import parallel_steps

# floats allowed in one group's activation block (bounds memory per step)
DEFAULT_BUDGET = 1 << 24
_CUDA_BUDGET = 1 << 27
_CPU_STEP = 1 << 19  # floats per [windows x columns] step on the CPU (cache-sized elementwise ops)
# fewer stride-1 windows than this in a sequence: edges recomputed per window (cheaper when nearly whole)
MIN_SHARED_WINDOWS = 3
# whole windows kept every S >= this bp are computed one by one (`strided`); below it the stride-1
# pass, which shares edge work between neighbouring windows, is faster
STRIDED_MIN_STEP = 4


class Path(enum.Enum):
    """How a group's windows are computed."""

    NETWORK_KERNEL = "the whole network in the fused CPU kernel"
    POOLING_KERNEL = "pooled features from the fused CPU kernel, dense layers in torch"
    SHARED_EDGES = "pooled features from block sums shared by neighbouring windows (torch)"
    PER_WINDOW = "every window's edge positions recomputed (torch)"
    KEPT_KERNEL = "only the kept windows, the whole network in the fused CPU kernel"
    STRIDED = "only the kept windows, each from block sums (torch)"
    STRIDE_ONE = "every stride-1 scoring window, then a sliding max or sum over each kept window"


class BankEngine:
    """A bank compiled for batched evaluation on one device."""

    def __init__(self, bank: Bank, device: str | torch.device = "cpu", budget: int | None = None,
                 dtype: torch.dtype = torch.float32):
        """`dtype` below float32 (bfloat16, float16) computes the windowed pass in it (the torch
        path; the fused CPU kernel is float32): a speed lever on GPUs. Scores come out float32."""
        self.bank = bank
        self.device = torch.device(device)
        self.dtype = dtype
        # a GPU wants large steps; on the CPU smaller blocks stay in cache
        self.budget = budget or (DEFAULT_BUDGET if self.device.type == "cpu" else _CUDA_BUDGET)
        self.groups = [build_group(bank, members, self.device) for members in architecture_groups(bank).values()]
        if dtype != torch.float32:
            for g in self.groups:
                cast_group(g, dtype)

    def __len__(self) -> int:
        return len(self.bank)

    @staticmethod
    def _use_cuts(g: Group, w: int, n_windows: int) -> bool:
        return w >= g.m and n_windows >= MIN_SHARED_WINDOWS

    def path(self, g: Group, w: int, n_windows: int) -> Path:
        """How stride-1 windows of w bp are computed for group g, in a sequence that holds
        n_windows of them."""
        if w >= g.m and g.strands is not None and self._fused(g, self.device):  # any number of windows
            return Path.NETWORK_KERNEL
        if self._use_cuts(g, w, n_windows):
            return Path.POOLING_KERNEL if self._fused(g, self.device) else Path.SHARED_EDGES
        return Path.PER_WINDOW

    def genomic_path(self, g: Group, window: int, step: int, options: ScoreOptions) -> Path:
        """How genomic windows of `window` bp kept every `step` bp are computed for group g:
        KEPT_KERNEL, STRIDED (both only when each is scored whole) or STRIDE_ONE."""
        whole = window >= g.m and options.scoring_window(g.m, window) == window
        if whole and step > 1 and self.fused_scores(g):  # walks every base, scores only the kept windows
            return Path.KEPT_KERNEL
        if whole and step >= STRIDED_MIN_STEP and self.dtype == torch.float32:  # strided: float32 only
            return Path.STRIDED
        return Path.STRIDE_ONE

    def _cut_rows(self, g: Group) -> tuple[int, int, int]:
        """Detector columns, columns per chunk, and (window x sequence) rows per step of the
        shared-edge path (on the CPU a step's elementwise operations stay cache-sized)."""
        cols = max(1, g.weight.shape[1])
        width = min(cols, g.cuts.width)
        step = min(_CPU_STEP, self.budget // 8) if self.device.type == "cpu" else self.budget // 8
        return cols, width, max(1, step // width)

    def _cut_floats(self, g: Group, w: int, windows: int, sequences: int) -> int:
        """Floats of one shared-edge step: block sums of one column chunk, pooled features."""
        cols, width, _ = self._cut_rows(g)
        return ((windows + w + g.m) * sequences * (g.cuts.nb + 1) * width
                + windows * sequences * cols * (2 if g.avg else 1))

    def steps(self, g: Group, B: int, w: int, n_windows: int) -> tuple[int, int]:
        """Windows and sequences per step for group g: [B, L] sequences holding n_windows windows of w bp."""
        if not self._use_cuts(g, w, n_windows):
            cols = max(1, g.weight.shape[1])
            per_window_rows = (2 * (g.m - 1) if w >= g.m else w + g.m - 1) + 1
            wc = max(1, min(n_windows, self.budget // (per_window_rows * cols)))
            return wc, max(1, min(B, self.budget // (wc * per_window_rows * cols)))
        rows = self._cut_rows(g)[2]
        wc = min(n_windows, rows)
        sb = max(1, min(B, rows // wc))
        while self._cut_floats(g, w, wc, sb) > self.budget and (sb > 1 or wc > 1):
            if sb > 1:
                sb = (sb + 1) // 2
            else:
                wc = (wc + 1) // 2
        return wc, sb

    def sequences_per_step(self, g: Group, w: int, n_windows: int) -> int:
        """Sequences per `window_scores` call that computes n_windows windows of w bp at once:
        as many as a step of the shared-edge path holds, within the memory budget."""
        sb = max(1, self._cut_rows(g)[2] // n_windows)
        return max(1, min(sb, self.budget // self._cut_floats(g, w, n_windows, 1)))

    @torch.inference_mode()
    def score(self, codes: np.ndarray | torch.Tensor, window_size: int | None = None,
              average: bool = False) -> torch.Tensor:
        """Score B equal-length sequences with every model, as DeepBind v0.11 does.

        Window w = `window_size` or int(1.5 m) (`ScoreOptions.scoring_window`); a sequence no
        longer than w is scored whole; otherwise every stride-1 window is scored (each padded
        on its own) and the max is returned, or with `average` the sum divided by L.

        Parameters
        ----------
        codes : [B, L] base codes (`io.encode`)
        window_size : the scoring window, None for each model's int(1.5 m)
        average : the mean over windows instead of the max

        Returns
        -------
        [B, M] float32 scores, models in bank order
        """
        codes = torch.as_tensor(codes).to(self.device, torch.long)
        if codes.dim() != 2:
            raise ValueError("codes must be [batch, length]")
        B, L = codes.shape
        out = torch.empty(B, len(self.bank), device=self.device)
        steps = []
        for g in self.groups:
            w = ScoreOptions(window_size=window_size).scoring_window(g.m, L)
            wc, sb = self.steps(g, B, w, L - w + 1)
            steps.extend((g, w, wc, b0, min(B, b0 + sb)) for b0 in range(0, B, sb))

        def run(step) -> None:
            g, w, wc, b0, b1 = step
            sub, n_windows = codes[b0:b1], L - w + 1
            fwd = rc = None
            for p0 in range(0, n_windows, wc):
                f, r = self.window_scores(g, sub, w, p0, min(n_windows, p0 + wc))
                fwd = reduce_windows(fwd, f, average)
                rc = reduce_windows(rc, r, average)
            # as the original: each strand is reduced over windows, then the strands' max is taken
            if g.rc_local.numel():
                fwd[:, g.rc_local] = torch.maximum(fwd[:, g.rc_local], rc)
            if average and n_windows > 1:
                fwd = fwd / L
            out[b0:b1, g.bank_index] = fwd

        parallel_steps(run, steps, self.device)
        return out

    def window_scores(self, g: Group, codes: torch.Tensor, w: int, p0: int, p1: int):
        """Scores of the stride-1 windows of w bp starting at p0..p1-1, each padded with m-1 N.

        Parameters
        ----------
        g : one of `self.groups`
        codes : [B, L] base codes on the engine's device
        w, p0, p1 : window length and the range of window starts (nw = p1 - p0)

        Returns
        -------
        forward : [B, nw, G] float32, the forward strand of every model of the group
        reverse : [B, nw, Grc] float32, the reverse strand of its reverse-complement models
        """
        B, nw = codes.shape[0], p1 - p0
        path = self.path(g, w, codes.shape[1] - w + 1)
        if path is Path.NETWORK_KERNEL:
            return self.scores_fused(g, codes, w, p0, p1)
        if path is not Path.PER_WINDOW:
            if path is Path.POOLING_KERNEL:
                feats = self._pooled_fused(g, codes, w, p0, p1)
                f, r = heads(g, feats.view(g.n_columns // g.num_detectors, -1, nw * B))
            else:
                pooled = pooled_cuts(g, codes, w, p0, p1).t().contiguous()  # [k * F + 1, nw * B]
                f, r = self.scores_from_pooled(g, pooled)
            f, r = f.float(), r.float()  # a no-op in float32; reduced precision is reduced in float32
            return f.view(-1, nw, B).permute(2, 1, 0), r.view(-1, nw, B).permute(2, 1, 0)
        mx, mean = pooled_per_window(g, codes, w, p0, p1, self.budget)  # [B, nw, F]
        f, r = dense(g, mx.reshape(B * nw, -1), None if mean is None else mean.reshape(B * nw, -1), g.live)
        return f.t().reshape(B, nw, -1).float(), r.t().reshape(B, nw, -1).float()

    def scores_from_pooled(self, g: Group, pooled: torch.Tensor, features: torch.Tensor | None = None):
        """Forward-strand [G, R] and reverse-strand [Grc, R] scores from pooled features
        [k * F + 1, R] (the live columns in the cut order, then a zero column); `features`
        (default g.features) picks each dense input's row."""
        rows = g.features if features is None else features
        feats = pooled.index_select(0, rows).view(g.n_columns // g.num_detectors, -1, pooled.shape[1])
        return heads(g, feats)

    @staticmethod
    def _fused(g: Group, device: torch.device) -> bool:
        """Whether the fused CPU kernel computes this group's pooled features (else `_pooled_cuts`)."""
        return (device.type == "cpu" and g.m <= native.MAX_DETECTOR_LEN
                and g.weight.dtype == torch.float32 and native.library() is not None)

    def fused_scores(self, g: Group) -> bool:
        """Whether `scores_fused` serves group g (CPU, kernel built, a shape the kernel's head takes)."""
        return g.strands is not None and self._fused(g, self.device)

    def scores_fused(self, g: Group, codes: torch.Tensor, w: int, p0: int, p1: int, step: int = 1):
        """Scores of windows starting at p0, p0 + step, ... < p1 (w >= m each), the whole network in
        the fused CPU kernel (g.strands): forward strand [B, n, G], reverse strand [B, n, Grc]."""
        B, n = codes.shape[0], (p1 - p0 - 1) // step + 1
        st = g.strands
        out = torch.empty(st.rows.numel(), n, B)
        x = codes[:, p0:p1 + w - 1].clamp(max=N).to(torch.uint8)
        native.pool_windows(x, w, st.centred, st.const, out, st.rows, st.rows if g.avg else None,
                                    1.0 / (w + g.m - 1), st.head, step)
        G = g.size
        return out[:G].permute(2, 1, 0), out[G:].permute(2, 1, 0)

    def _pooled_fused(self, g: Group, codes: torch.Tensor, w: int, p0: int, p1: int) -> torch.Tensor:
        """The dense inputs [n_columns * k, nw * B] of windows p0..p1-1, pooled by the fused CPU
        kernel (`native`): what `_pooled_cuts` and `g.features` give, in one pass."""
        B, nw = codes.shape[0], p1 - p0
        k = 2 if g.avg else 1
        feats = torch.empty(g.n_columns * k, nw, B)
        feats.index_fill_(0, g.dead_features, 0.0)
        x = codes[:, p0:p1 + w - 1].clamp(max=N).to(torch.uint8)
        native.pool_windows(x, w, g.cuts.centred, g.cuts.const, feats, g.feature_rows[0],
                                    g.feature_rows[1] if g.avg else None, 1.0 / (w + g.m - 1))
        return feats.view(g.n_columns * k, nw * B)
