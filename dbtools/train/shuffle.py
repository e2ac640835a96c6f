"""Dinucleotide shuffling (Altschul & Erickson 1985): DeepBind's default negatives.

A shuffle keeps the first base, the last base and every dinucleotide count of the sequence
exactly; it walks a random Eulerian path of the sequence's dinucleotide multigraph whose
last exits from each letter form a random spanning arborescence rooted at the last letter.
"""

from __future__ import annotations

import numpy as np


def dinucleotide_shuffle(seq: str, rng: np.random.Generator) -> str:
    """A uniformly random sequence with the same dinucleotide counts, first and last letter."""
    if len(seq) <= 2:
        return seq
    edges: dict[str, list[str]] = {}
    for a, b in zip(seq, seq[1:]):
        edges.setdefault(a, []).append(b)
    last = seq[-1]
    while True:
        # each letter but the last picks a random out-edge as the final way to leave it
        final = {v: out[rng.integers(len(out))] for v, out in edges.items() if v != last}
        if _reaches_root(final, last):
            break
    order: dict[str, list[str]] = {}
    for v, out in edges.items():
        rest = list(out)
        if v in final:
            rest.remove(final[v])
        perm = [rest[i] for i in rng.permutation(len(rest))]
        order[v] = perm + ([final[v]] if v in final else [])
    pos = {v: 0 for v in order}
    out_seq = [seq[0]]
    v = seq[0]
    for _ in range(len(seq) - 1):
        nxt = order[v][pos[v]]
        pos[v] += 1
        out_seq.append(nxt)
        v = nxt
    return "".join(out_seq)


def _reaches_root(final: dict[str, str], root: str) -> bool:
    """True if following final edges from every letter ends at `root` (no cycles)."""
    for start in final:
        seen, v = set(), start
        while v != root:
            if v in seen:
                return False
            seen.add(v)
            v = final[v]
    return True
