"""Detector responses through k-mer tables: each k-mer's response to each block of k detector
rows, summed per position; the best window per detector found without autograd (`pooled_max`)
and its gradient routed back to the table entries it summed (`TableMax`)."""

from __future__ import annotations

import functools

import torch

from dbtools.io.encode import kmer_digits
from dbtools.parallel import parallel_steps

KMER = 3  # bases per table row in the convolution over all positions
CPU_MODELS_PER_STEP = 4  # models per step of the argmax search on the CPU (keeps its activations in cache)


def kmer_tables(w: torch.Tensor, m: int) -> torch.Tensor:
    """[5**k, G, nb, E] responses of every k-mer (N = 0.25 per base) to each block of k
    detector rows, from w [G, m, 4, E]; rows past m are zero. Differentiable; one GEMM."""
    G, _, _, E = w.shape
    k = KMER
    nb = -(-m // k)
    w5 = torch.cat([w, w.mean(2, keepdim=True)], 2)  # N reads 0.25 of each base
    w5 = torch.nn.functional.pad(w5, (0, 0, 0, 0, 0, nb * k - m)).view(G, nb, k * 5, E)
    return (_kmer_picks(w.device) @ w5.permute(2, 0, 1, 3).reshape(k * 5, -1)).view(5 ** k, G, nb, E)


@functools.lru_cache(maxsize=None)
def _kmer_picks(device: torch.device) -> torch.Tensor:
    """[5**k, 5k] 0/1: row i picks, for each of k-mer i's bases, its row in a block of k
    detector rows x 5 codes. Built once per device (no host-to-device copy per step)."""
    k = KMER
    with torch.inference_mode(False), torch.no_grad():  # a normal tensor, usable under autograd
        digits = torch.as_tensor(kmer_digits(k))
        pick = torch.zeros(5 ** k, k * 5)
        pick.scatter_(1, digits + 5 * torch.arange(k), 1.0)
        return pick.to(device)


def pooled_max(tables: torch.Tensor, rows: torch.Tensor, P: int, valid: torch.Tensor | None,
                with_entries: bool) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Each detector's best response [G, B, E] (before its threshold) over the positions of
    the k-mers' first table rows [G, B, P + (nb-1)k], and, `with_entries`, the flat indices
    [G, B, E, nb] of the table entries summed at its first best window (its gradient's way).

    Responses are sums of nb table rows per position (`embedding_bag`); steps of a few
    models keep them in cache, and the CPU's cores take steps side by side."""
    _, G, nb, E = tables.shape
    B = rows.shape[1]
    flat = tables.reshape(-1, E)  # row (k-mer, model, block)
    base = torch.arange(G * nb, device=rows.device).view(G, 1, 1, nb)
    top = torch.empty(G, B, E, device=rows.device)
    entries = torch.empty(G, B, E, nb, dtype=torch.long, device=rows.device) if with_entries else None
    column = torch.arange(E, device=rows.device)[:, None]
    size = CPU_MODELS_PER_STEP if rows.device.type == "cpu" else G

    def step(g: int) -> None:
        sl = slice(g, g + size)
        idx = torch.empty(rows[sl].shape[0], B, P, nb, dtype=torch.long, device=rows.device)
        torch.add(rows[sl].unfold(2, (nb - 1) * KMER + 1, 1)[..., ::KMER], base[sl], out=idx)
        z = torch.nn.functional.embedding_bag(idx.view(-1, nb), flat, mode="sum").view(-1, B, P, E)
        if valid is not None:
            z.masked_fill_(~valid[sl, :, :, None], -torch.inf)
        # max pooling's kernel (vectorised over detectors) is much faster than max(dim) with indices
        best, at = torch.nn.functional.max_pool1d(z.view(-1, P, E).transpose(1, 2), P, return_indices=True)
        top[sl] = best.view(-1, B, E)
        at = at.view(-1, B, E)
        if with_entries:  # entry (row, column e) of each summed table row: row x E + e
            at += torch.arange(0, at.shape[0] * B * P, P, device=at.device).view(-1, B, 1)
            torch.add(column, idx.view(-1, nb).index_select(0, at.view(-1)).view(-1, B, E, nb), alpha=E,
                      out=entries[sl])

    parallel_steps(step, range(0, G, size), rows.device)
    return top, entries


class TableMax(torch.autograd.Function):
    """A detector's best response as a function of the k-mer tables: the value comes from
    `pooled_max`; the gradient goes to the table entries summed at the best window."""

    @staticmethod
    def forward(ctx, tables, top, entries):  # [5**k, G, nb, E], [G, B, E], [G, B, E, nb]
        ctx.save_for_backward(entries)
        ctx.shape = tables.shape
        return top.clone()

    @staticmethod
    def backward(ctx, grad):  # grad [G, B, E]
        (entries,) = ctx.saved_tensors
        d = torch.zeros(ctx.shape.numel(), device=grad.device, dtype=grad.dtype)
        d.index_add_(0, entries.view(-1), grad[..., None].expand(entries.shape).reshape(-1))
        return d.view(ctx.shape), None, None
