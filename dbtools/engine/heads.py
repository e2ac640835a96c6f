"""The dense layers of a group's models, on pooled features: both strands of every model at once."""

from __future__ import annotations

import torch

from dbtools.engine.groups import Group


def dense(g: Group, mx: torch.Tensor, mean: torch.Tensor | None, live: torch.Tensor):
    """Dense layers on pooled features [R, F_live] (columns `live` of the full list): [G, R], [Grc, R]."""
    R = mx.shape[0]
    d = g.num_detectors
    pooled = torch.stack([mx, mean], -1) if g.avg else mx[..., None]  # [R, F_live, k]
    full = pooled.new_zeros(R, g.n_columns, pooled.shape[-1])
    full[:, live] = pooled
    # features interleaved [max0, avg0, max1, avg1, ...] as the published weights expect
    return heads(g, full.reshape(R, -1, d * pooled.shape[-1]).permute(1, 2, 0))


def heads(g: Group, feats: torch.Tensor):
    """Forward-strand [G, R] and reverse-strand [Grc, R] scores from features [G + Grc, nf, R]."""
    G = g.size
    return _head(g, feats[:G], slice(None)), _head(g, feats[G:], g.rc_local)


def _head(g: Group, feats: torch.Tensor, which) -> torch.Tensor:
    """Fully connected layers of the models `which` on their features [g, nf, R]: [g, R]."""
    w1, b1 = g.w1[which], g.b1[which]
    if g.hidden:
        h = torch.bmm(w1.transpose(1, 2), feats).add_(b1[:, :, None]).clamp_(min=0)  # [g, H, R]
        return torch.bmm(g.w2[which][:, None, :], h)[:, 0].add_(g.b2[which][:, None])
    return torch.bmm(w1.transpose(1, 2), feats)[:, 0].add_(b1)
