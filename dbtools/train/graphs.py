"""Training steps replayed as captured CUDA graphs."""

from __future__ import annotations

import warnings

import torch


class StepRunner:
    """Runs a training step `fn(step, penalize)` with the step number as an int64 scalar on the
    device, so that one captured CUDA graph per `penalize` serves every step.

    A step of a group is a few hundred small kernels; launched one by one from Python their
    launch cost, not the GPU, sets the pace. Captured once and replayed, they launch together.
    Capture needs warm-up runs first (lazy initialisation, on a side stream); they change the
    weights, so `state` (every tensor a step updates in place) is saved before and restored
    after. On a device other than CUDA the same runs happen without capture (how tests check
    the device-side step counter and the restore). If capture fails, steps run one by one.
    """

    WARMUP = 2

    def __init__(self, fn, state: list[torch.Tensor], device: torch.device):
        self.fn, self.state, self.device = fn, state, device
        self.step = torch.zeros((), dtype=torch.int64, device=device)
        self.graphs: dict[bool, object] = {}
        self.eager = False

    def __call__(self, step: int, penalize: bool) -> None:
        if not self.eager and penalize not in self.graphs:
            self.graphs[penalize] = self._capture(step, penalize)
        if self.eager:
            self.fn(step, penalize)
            return
        self.step.fill_(step)
        graph = self.graphs[penalize]
        if graph is None:  # no capture on this device: the same step, eagerly
            self.fn(self.step, penalize)
        else:
            graph.replay()

    def _capture(self, step: int, penalize: bool):
        with torch.no_grad():
            saved = [t.detach().clone() for t in self.state]
        self.step.fill_(step)
        cuda = self.device.type == "cuda"
        graph = None
        try:
            if cuda:
                side = torch.cuda.Stream(self.device)
                side.wait_stream(torch.cuda.current_stream(self.device))
                with torch.cuda.stream(side):
                    for _ in range(self.WARMUP):
                        self.fn(self.step, penalize)
                torch.cuda.current_stream(self.device).wait_stream(side)
                graph = torch.cuda.CUDAGraph()
                with torch.cuda.graph(graph):
                    self.fn(self.step, penalize)
            else:
                for _ in range(self.WARMUP):
                    self.fn(self.step, penalize)
        except RuntimeError as e:  # a step that cannot be captured still trains, launch by launch
            warnings.warn(f"training steps run one by one: CUDA graph capture failed ({e})")
            self.eager, graph = True, None
        with torch.no_grad():
            for t, v in zip(self.state, saved):
                t.copy_(v)
                if t.grad is not None:  # a warm-up that failed after its backward pass left gradients
                    t.grad = None
        return graph
