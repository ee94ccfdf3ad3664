"""Checkpoints inside a PyTorch network: after each convolution, a cancel check and the
fraction of the forward done (see watch.py).

The fraction is the share of the network's multiply-adds done so far. Each
convolution's share (weights x output pixels) is the same at every input size for a
fully convolutional network, so it is measured once, on a small input, the first
time someone watches.
"""

from __future__ import annotations

from collections.abc import Callable
from itertools import accumulate

import torch
from torch import nn

from vidscale.engine import watch


class LayerWatch:
    def __init__(self, model: nn.Module):
        self.convs = [m for m in model.modules() if isinstance(m, nn.modules.conv._ConvNd)]
        for conv in self.convs:
            conv.register_forward_hook(self._after)
        self.shares: list[float] | None = None  # the forward's share done after each convolution
        self._costs: list[int] | None = None  # while measuring
        self._calls = 0

    def prepare(self, measure: Callable[[], object]) -> None:
        """Before a frame: `measure` runs one forward on a small input, if someone watches and
        the shares are still unknown."""
        if self.shares is None and self.convs and watch.watched():
            self._costs = []
            try:
                measure()
                total = sum(self._costs) or 1
                self.shares = [c / total for c in accumulate(self._costs)]
            finally:
                self._costs = None

    def start(self) -> None:
        """A forward begins."""
        self._calls = 0

    def _after(self, module: nn.Module, inputs: object, output: torch.Tensor) -> None:
        if self._costs is not None:
            self._costs.append(module.weight.numel() * output.shape[-2] * output.shape[-1])
            return
        if output.is_cuda and torch.cuda.is_current_stream_capturing():
            return  # a CUDA graph being recorded: nothing here would be replayed
        shares, n = self.shares, self._calls
        self._calls += 1
        watch.reached(shares[min(n, len(shares) - 1)] if shares else 0.0)
