"""One block of windows of a mutation map: the wild-type pre-activations of its windows and every
mutant's share of their scores (see `mutmap.mapper` for the method)."""

from __future__ import annotations

import torch

from dbtools.io.encode import N
from dbtools.mutmap.stacks import Stack, dense


def preactivations(s: Stack, x: torch.Tensor, wl: int, pa: int, pb: int, out: torch.Tensor) -> None:
    """Pre-activations of windows pa..pb-1, each padded with m-1 N on its own: out [n, Q, C].

    Position q of a window is the filter start s = p + q - (m-1); its rows k..l-1 read the
    window (k = max(0, m-1-q), l = min(m, wl+m-1-q)) and the others an N, which adds 0 to the
    centred weights: const + (partial sums of the centred rows at s)[l] - [k]. Within each of
    the (up to) four ranges of q where k and l are constant or step by -1, that is a strided view.
    """
    m, L, n = s.m, x.numel(), pb - pa
    Q, C = wl + m - 1, out.shape[2]
    dev = x.device
    ns = n + Q - 1  # filter starts pa-(m-1) .. pb-1+wl-1
    pos = torch.arange(pa - m + 1, pa - m + 1 + ns, device=dev)[:, None] + torch.arange(m, device=dev)
    code = torch.where((pos >= 0) & (pos < L), x[pos.clamp(0, L - 1)], N)
    rows = s.centred.index_select(0, (code + 5 * torch.arange(m, device=dev)).view(-1)).view(ns, m, C)
    cs = torch.cumsum(rows, 1)  # cs[s, l - 1] = sum of rows < l
    del rows
    step = m * C

    def rows_below(q0: int, q1: int, l0: int, dl: int) -> torch.Tensor:
        """View [n, q1 - q0, C]: the sum of rows < l at filter start p + q, l = l0 + dl (q - q0)."""
        return cs.as_strided((n, q1 - q0, C), (step, step + dl * C, 1), q0 * step + (l0 - 1) * C)

    for q0, q1, k0, l0, dl in ((0, min(m - 1, wl), m - 1, m, 0),  # cut on the left
                               (m - 1, wl, 0, m, 0),  # whole
                               (wl, m - 1, m - 1 - wl, m - 1, -1),  # cut on both sides (w < m - 1)
                               (max(m - 1, wl), Q, 0, wl + m - 1 - max(m - 1, wl), -1)):  # cut on the right
        if q1 <= q0:
            continue
        if k0:  # k = k0 - (q - q0) rows lost on the left
            torch.sub(rows_below(q0, q1, l0, dl), rows_below(q0, q1, k0, -1), out=out[:, q0:q1])
        else:
            out[:, q0:q1] = rows_below(q0, q1, l0, dl)
    out.add_(s.const)

def block_scores(s: Stack, x: torch.Tensor, wl: int, pa: int, pb: int,
                 wt_win: torch.Tensor, acc: torch.Tensor, average: bool, chunk: int) -> None:
    """Wild-type scores of windows pa..pb-1 and their share of every mutant's window scores."""
    m = s.m
    Q, C, n = wl + m - 1, s.const.numel(), pb - pa
    A = x.new_empty((n, Q, C), dtype=torch.float32)
    preactivations(s, x, wl, pa, pb, A)
    R = A.clamp(min=0)
    # E[:, t]: the max of the positions a mutation at offset t leaves unchanged (q < t or q >= t + m);
    # rectified values are >= 0, so 0 stands for none
    E = R.new_zeros(n, wl, C)
    after = R.new_zeros(n, wl, C)
    for t in range(1, wl):  # running maxima, a position at a time (faster than cummax on the CPU)
        torch.maximum(E[:, t - 1], R[:, t - 1], out=E[:, t])
        torch.maximum(after[:, wl - t], R[:, wl - 1 - t + m], out=after[:, wl - 1 - t])
    torch.maximum(E, after, out=E)
    del after
    if s.avg:
        cs = R.new_empty(n, Q + 1, C)
        cs[:, 0] = 0
        torch.cumsum(R, 1, out=cs[:, 1:])
        total = cs[:, Q]
        rest = total[:, None] - (cs[:, m:m + wl] - cs[:, :wl])  # [n, wl, C]: sum of the unchanged positions
        wt_win[pa:pb] = dense(s, R.amax(1), total / Q)
        del cs
    else:
        rest = None
        wt_win[pa:pb] = dense(s, R.amax(1), None)
    del R
    S = acc.shape[1]
    # D[i, slot] = W[j, b] - W[j, x_i] for the slot's base b, for every i the block's windows hold
    xi = x[pa:pb + wl - 1]
    D = (s.subst if S == 3 else s.subst_n).index_select(0, xi).view(-1, S, m, C)
    # the mutation at offset t of window p (i = p + t) changes positions q = t .. t+m-1 of it,
    # where row j = m-1-(q-t) of the filter reads base i: V[p, t, j'] = A[p, t + j'];
    # U = V + D is built a cache-sized chunk at a time and reduced at once (max, and rectified sum)
    mx = A.new_empty(n, wl, S, C)
    mean = A.new_empty(n, wl, S, C) if s.avg else None
    per_pair = S * m * C
    nt = max(1, min(wl, chunk // per_pair))
    npw = max(1, min(n, chunk // (nt * per_pair)))
    buf = A.new_empty(npw * nt * per_pair)
    for t0 in range(0, wl, nt):
        t1 = min(wl, t0 + nt)
        for a in range(0, n, npw):
            b = min(n, a + npw)
            k, w = b - a, t1 - t0
            V = A.as_strided((k, w, 1, m, C), (Q * C, C, 0, C, 1), A.storage_offset() + (a * Q + t0) * C)
            Dv = D.as_strided((k, w, S, m, C), (per_pair, per_pair, m * C, C, 1),
                              D.storage_offset() + (a + t0) * per_pair)
            U = torch.add(V, Dv, out=buf[:k * w * per_pair].view(k, w, S, m, C))
            torch.amax(U, 3, out=mx[a:b, t0:t1])
            if mean is not None:
                torch.sum(U.clamp_(min=0), 3, out=mean[a:b, t0:t1])
    del D, A
    torch.maximum(mx, E[:, :, None], out=mx)
    if mean is not None:
        mean.add_(rest[:, :, None]).div_(Q)
        mean = mean.view(-1, C)
    H = s.heads
    sc = dense(s, mx.view(-1, C), mean).view(n, wl, S * H)
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
