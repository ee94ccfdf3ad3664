"""CUDA graphs for a network's forward pass, one per input shape.

A super-resolution network is a few dozen small kernels per frame; at video
rates the CPU time spent launching them one by one can exceed the GPU time
spent running them. A captured graph launches them all with one call. Video
frames share one shape (and the last, short batch adds a second), so a few
graphs serve a whole job; the engine asks only for shapes it has seen before,
and anything beyond `MAX_GRAPHS` shapes runs eagerly rather than filling
memory with pools.

A graph reads from and writes to fixed buffers: `run` copies the input in
and returns the graph's own output buffer, valid until the next replay of
that shape, so callers copy what they keep (`TorchEngine` does).
"""

from __future__ import annotations

import logging
from collections import OrderedDict

import torch

log = logging.getLogger(__name__)

MAX_GRAPHS = 4
WARMUP_RUNS = 2  # cuDNN's autotuning and lazy allocations must happen before capture


class _Graph:
    def __init__(self, model: torch.nn.Module, example: torch.Tensor, pool: object):
        self.input = example.clone(memory_format=torch.preserve_format)
        side = torch.cuda.Stream(example.device)
        side.wait_stream(torch.cuda.current_stream(example.device))
        with torch.cuda.stream(side), torch.inference_mode():
            for _ in range(WARMUP_RUNS):
                model(self.input)
        torch.cuda.current_stream(example.device).wait_stream(side)
        self.graph = torch.cuda.CUDAGraph()
        # thread_local: other threads (decoders, VapourSynth's) may touch CUDA meanwhile
        with torch.inference_mode(), torch.cuda.graph(self.graph, pool=pool, capture_error_mode="thread_local"):
            self.output: torch.Tensor = model(self.input)

    def run(self, x: torch.Tensor) -> torch.Tensor:
        self.input.copy_(x)
        self.graph.replay()  # on the current stream, after the copy
        return self.output


class GraphCache:
    """Captures a graph the first time it is asked for a shape and replays it after."""

    def __init__(self, model: torch.nn.Module, max_graphs: int = MAX_GRAPHS):
        self.model, self.max_graphs = model, max_graphs
        # One memory pool for all shapes: they replay one at a time on one stream, and each
        # output is copied out before the next replay, so their activations can share memory.
        self._pool: object | None = None
        self._graphs: OrderedDict[tuple[object, ...], _Graph] = OrderedDict()
        self.enabled = True
        self.eager_runs = 0  # forwards that ran without a graph (tests read it)

    def run(self, x: torch.Tensor) -> torch.Tensor:
        key = (tuple(x.shape), x.dtype, x.is_contiguous(memory_format=torch.channels_last))
        graph = self._graphs.get(key)
        if graph is None and self.enabled and len(self._graphs) < self.max_graphs:
            graph = self._capture(key, x)
        if graph is None:
            self.eager_runs += 1
            return self.model(x)
        return graph.run(x)

    def _capture(self, key: tuple[object, ...], x: torch.Tensor) -> _Graph | None:
        try:
            if self._pool is None:
                self._pool = torch.cuda.graph_pool_handle()
            graph = _Graph(self.model, x, self._pool)
        except torch.OutOfMemoryError:
            raise  # the engine retries with smaller tiles
        except RuntimeError as exc:  # an operation that cannot be captured: run this model eagerly
            log.warning("CUDA graphs off for this model (%s)", str(exc).splitlines()[0])
            self.enabled = False
            return None
        self._graphs[key] = graph
        return graph

    def clear(self) -> None:
        self._graphs.clear()
        self._pool = None

    def __len__(self) -> int:
        return len(self._graphs)
