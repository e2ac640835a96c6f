"""Choosing the torch device from the user's --device (auto|cpu|cuda)."""

from __future__ import annotations

import torch

from dbtools.errors import UsageError

CHOICES = ("auto", "cpu", "cuda")


def resolve_device(name: str) -> torch.device:
    """'auto' picks CUDA when present; asking for CUDA without a GPU is a usage error."""
    name = name.lower()
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cpu":
        return torch.device("cpu")
    if name.startswith("cuda"):
        if not torch.cuda.is_available():
            raise UsageError("--device cuda: no CUDA device is available (use --device cpu or auto)")
        return torch.device(name)
    raise UsageError(f"--device {name}: expected one of {', '.join(CHOICES)}")
