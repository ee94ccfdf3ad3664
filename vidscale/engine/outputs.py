"""Networks whose forward returns more than the image.

FBCNN returns (image, quality factor); other restoration networks return a
tuple or dict of auxiliary outputs. The engines, graph capture and ONNX export
all want one image tensor, so the model is wrapped once where it is prepared.
"""

from __future__ import annotations

import torch

from vidscale.errors import ModelError


class ImageOutput(torch.nn.Module):
    """Forward that returns the network's image: the first 4-D tensor it gives."""

    def __init__(self, network: torch.nn.Module):
        super().__init__()
        self.network = network

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return first_image(self.network(x))


def first_image(out: object) -> torch.Tensor:
    if isinstance(out, torch.Tensor):
        return out
    values = out.values() if isinstance(out, dict) else out if isinstance(out, (tuple, list)) else ()
    for value in values:
        if isinstance(value, torch.Tensor) and value.dim() == 4:
            return value
    raise ModelError(f"the network returned {type(out).__name__} without an image tensor")


def image_network(model: torch.nn.Module) -> torch.nn.Module:
    """`model` wrapped so that it returns one image tensor (no-op if already wrapped)."""
    return model if isinstance(model, ImageOutput) else ImageOutput(model)
