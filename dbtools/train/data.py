"""A group's training or validation sets in one device tensor, and the draws of its batches."""

from __future__ import annotations

import numpy as np
import torch

from dbtools.io.encode import N, PAD


def pad_batch(codes: list[np.ndarray], m: int) -> tuple[np.ndarray, np.ndarray]:
    """Sequences padded for detectors of length m: m-1 N each side, then PAD to a common length.

    Parameters
    ----------
    codes : list of np.ndarray
        B sequences of base codes.
    m : int
        Detector length.

    Returns
    -------
    padded : np.ndarray, shape (B, Lmax + 2(m-1)), int8
    positions : np.ndarray, shape (B,)
        Each sequence's number of detector positions (L + m - 1); positions past it overlap
        PAD and are masked out of pooling, so no `N` is ever added.
    """
    lmax = max(len(c) for c in codes)
    out = np.full((len(codes), lmax + 2 * (m - 1)), PAD, dtype=np.int8)
    for i, c in enumerate(codes):
        out[i, : m - 1] = N
        out[i, m - 1: m - 1 + len(c)] = c
        out[i, m - 1 + len(c): 2 * (m - 1) + len(c)] = N
    return out, np.array([len(c) + m - 1 for c in codes], dtype=np.int64)


class GroupData:
    """The training (or validation) sets of a group's models in one device tensor.

    `sets` holds per model (codes, targets), (codes, targets, weights) or (codes, targets,
    weights, origin). Models given the same list of codes (the same object) share its storage:
    the trials of one calibration fold, the restarts of one model. Rows are drawn in proportion
    to their weights (`sample`), and validation losses are weighted means; a classification set
    whose negatives were all made from its positives (`origin`, shuffles) is drawn in pairs
    instead, as the original DeepBind built its batches: half the batch peaks, half one shuffle
    of each.
    """

    def __init__(self, sets: list[tuple], m: int, device: torch.device):
        unique: dict[tuple[int, ...], int] = {}
        stored: list[tuple] = []
        of_model = []
        for entry in sets:
            key = tuple(id(x) for x in entry)
            if key not in unique:
                unique[key] = len(stored)
                stored.append(entry)
            of_model.append(unique[key])
        padded = [pad_batch(entry[0], m) for entry in stored]
        width = max(p.shape[1] for p, _ in padded)
        sizes = [p.shape[0] for p, _ in padded]
        starts = np.concatenate([[0], np.cumsum(sizes)])
        self.codes = torch.full((int(starts[-1]), width), PAD, dtype=torch.int8)
        self.positions = torch.ones(int(starts[-1]), dtype=torch.int64)
        self.targets = torch.zeros(int(starts[-1]), dtype=torch.float32)
        self.weights = torch.ones(int(starts[-1]), dtype=torch.float32)
        for k, ((p, pos), entry) in enumerate(zip(padded, stored)):
            a, b = int(starts[k]), int(starts[k + 1])
            self.codes[a:b, : p.shape[1]] = torch.from_numpy(p)
            self.positions[a:b] = torch.from_numpy(pos)
            self.targets[a:b] = torch.from_numpy(np.asarray(entry[1], np.float32))
            if len(entry) > 2 and entry[2] is not None:
                self.weights[a:b] = torch.from_numpy(np.asarray(entry[2], np.float32))
        self._pairs(stored, starts, of_model)
        # a Python bool, known before training: no host-device sync per step
        self.ragged = bool((self.positions < width - m + 1).any())
        # cumulative weights over all rows: a model draws within its own set's range
        self.cumulative = torch.cumsum(self.weights.double(), 0)
        self.start = torch.tensor([int(starts[k]) for k in of_model])
        self.sizes = torch.tensor([sizes[k] for k in of_model])
        below = torch.cat([torch.zeros(1, dtype=torch.float64), self.cumulative])
        self.weight_start = below[self.start]
        self.weight_total = below[self.start + self.sizes] - self.weight_start
        for name in ("codes", "positions", "targets", "weights", "cumulative", "start", "sizes",
                     "weight_start", "weight_total", "paired", "pair_start", "pair_size", "pair_row",
                     "pair_first", "pair_count", "made_row"):
            setattr(self, name, getattr(self, name).to(device))

    def _pairs(self, stored: list[tuple], starts: np.ndarray, of_model: list[int]) -> None:
        """Pairing tables: per paired set its positives (global rows) and, for each, the range of
        its negatives in `made_row` (global rows grouped by origin)."""
        pos_rows, first, count, made = [], [], [], []
        start, size, paired = np.zeros(len(stored), np.int64), np.zeros(len(stored), np.int64), []
        n_pos = n_made = 0
        for k, entry in enumerate(stored):
            y = np.asarray(entry[1])
            origin = np.asarray(entry[3]) if len(entry) > 3 and entry[3] is not None else None
            ok = origin is not None and len(y) > 0 and bool(np.isin(y, (0, 1)).all()) and (y == 1).any()
            if ok:
                pos = np.flatnonzero(y == 1)
                neg = np.flatnonzero(y == 0)
                neg = neg[np.argsort(origin[neg], kind="stable")]
                keys = origin[neg]
                lo = np.searchsorted(keys, origin[pos], "left")
                hi = np.searchsorted(keys, origin[pos], "right")
                # every positive has a negative made from it, and every negative comes from a positive
                ok = bool((hi > lo).all()) and int((hi - lo).sum()) == len(neg)
            paired.append(ok)
            if not ok:
                continue
            start[k], size[k] = n_pos, len(pos)
            pos_rows.append(pos + starts[k])
            first.append(lo + n_made)
            count.append(hi - lo)
            made.append(neg + starts[k])
            n_pos += len(pos)
            n_made += len(neg)

        def cat(parts: list[np.ndarray]) -> torch.Tensor:
            return torch.from_numpy(np.concatenate(parts).astype(np.int64)) if parts else torch.zeros(1, dtype=torch.int64)

        self.any_paired = any(paired[k] for k in of_model)  # a Python bool: no device sync per step
        self.paired = torch.tensor([paired[k] for k in of_model], dtype=torch.bool)
        self.pair_start = torch.from_numpy(start[of_model])
        self.pair_size = torch.from_numpy(np.maximum(size[of_model], 1))
        self.pair_row, self.pair_first, self.pair_count, self.made_row = cat(pos_rows), cat(first), cat(count), cat(made)

    def sample(self, u: torch.Tensor) -> torch.Tensor:
        """Rows [G, B] of each model's own set for uniforms u [G, B]: drawn in proportion to
        weight, or for a paired set, B // 2 peaks then one negative made from each (in the same
        order), plus a weighted draw when B is odd."""
        v = self.weight_start[:, None] + u.double() * self.weight_total[:, None]
        rows = torch.searchsorted(self.cumulative, v, right=True) - self.start[:, None]
        rows = torch.minimum(rows.clamp_(min=0), self.sizes[:, None] - 1)
        h = u.shape[1] // 2
        if not h or not self.any_paired:
            return rows
        size = self.pair_size[:, None]
        i = self.pair_start[:, None] + torch.minimum((u[:, :h].double() * size).long(), size - 1)
        count = self.pair_count[i]
        j = self.pair_first[i] + torch.minimum((u[:, h:2 * h].double() * count).long(), count - 1)
        pairs = torch.cat([self.pair_row[i], self.made_row[j]], 1) - self.start[:, None]
        rows[:, :2 * h] = torch.where(self.paired[:, None], pairs, rows[:, :2 * h])
        return rows

    def batch(self, rows: torch.Tensor):
        """Rows [G, B] of each model's own set: codes, positions, targets."""
        r = self.start[:, None] + rows
        return self.codes[r], self.positions[r], self.targets[r]

    def rows(self, g: int) -> slice:
        """Model g's rows in the stored tensors."""
        a = int(self.start[g])
        return slice(a, a + int(self.sizes[g]))
