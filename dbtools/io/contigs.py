"""Reconciling contig names between files (`chr20` vs `20`, `chrM` vs `MT`)."""

from __future__ import annotations

from collections.abc import Collection

_MITO = ("chrM", "MT", "chrMT", "M")


def candidates(name: str) -> list[str]:
    """Other spellings of the same contig, in order of preference."""
    if name in _MITO:
        return [n for n in _MITO if n != name]
    if name.startswith("chr"):
        return [name[3:]]
    return ["chr" + name]


def reconcile(name: str, available: Collection[str]) -> str | None:
    """The spelling of `name` that `available` uses, or None if it has none."""
    if name in available:
        return name
    return next((c for c in candidates(name) if c in available), None)
