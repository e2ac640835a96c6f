"""Counter-based random numbers: every draw is a pure function of (model seed, stream, step,
index), so a model draws the same numbers alone or in a bank, on any device, resumed or not."""

from __future__ import annotations

import torch


def _mix(z: torch.Tensor) -> torch.Tensor:
    """splitmix64's finaliser on int64 tensors (logical shifts emulated by masking)."""
    def shr(x, s):
        return (x >> s) & ((1 << (64 - s)) - 1)

    z = (z ^ shr(z, 30)) * -4658895280553007687  # 0xbf58476d1ce4e5b9
    z = (z ^ shr(z, 27)) * -7723592293110705685  # 0x94d049bb133111eb
    return z ^ shr(z, 31)


def _mix_int(z: int) -> int:
    """`_mix` of one int64 in Python integers (no tensor, so no host-to-device copy per step)."""
    mask = (1 << 64) - 1
    z &= mask
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & mask
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & mask
    z ^= z >> 31
    return z - (1 << 64) if z >> 63 else z


def uniform(seeds: torch.Tensor, stream: int, step: int | torch.Tensor, n: int) -> torch.Tensor:
    """Uniforms in [0, 1), a pure function of (model seed, stream, step, index).

    Counter-based, so a model draws the same numbers whether it trains alone or in a bank,
    on any device.

    Parameters
    ----------
    seeds : torch.Tensor, shape (G,)
        Each model's seed (int64).
    stream : int
        Which stream (1: batch rows, 2: dropout masks).
    step : int or torch.Tensor
        The step: a Python int, or an int64 scalar on the device (a captured step).
    n : int
        Numbers per model.

    Returns
    -------
    torch.Tensor, shape (G, n)
    """
    idx = torch.arange(n, device=seeds.device, dtype=torch.int64)
    mixed = _mix_int(step) if isinstance(step, int) else _mix(step)
    key = _mix(seeds[:, None] * 1_000_003 + stream * 7_919 + mixed)
    bits = _mix(key + idx[None, :] * -7046029254386353131)  # golden-ratio increment
    return ((bits >> 11) & ((1 << 53) - 1)).double().mul_(2.0 ** -53).float()

