"""Which torch device a job runs on (`--device auto|cpu|cuda[:N]`)."""

from __future__ import annotations

import torch

from vidscale.errors import UsageError


def pick_device(spec: str | torch.device | None = None) -> torch.device:
    """Resolve a device request; `auto`/None prefers CUDA when present."""
    if isinstance(spec, torch.device):
        return spec
    spec = (spec or "auto").strip().lower()
    if spec == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if spec == "cpu":
        return torch.device("cpu")
    if spec == "cuda" or spec.startswith("cuda:"):
        if not torch.cuda.is_available():
            raise UsageError(f"--device {spec}: no CUDA GPU is available")
        index = spec.partition(":")[2]
        if index and (not index.isdigit() or int(index) >= torch.cuda.device_count()):
            raise UsageError(f"--device {spec}: no such GPU ({torch.cuda.device_count()} present)")
        return torch.device(spec)
    raise UsageError(f"--device {spec!r}: expected auto, cpu, cuda or cuda:N")
