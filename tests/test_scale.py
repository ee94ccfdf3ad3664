"""Output sizes and the networks that run for a scale."""

from __future__ import annotations

import pytest

from vidscale.errors import UsageError
from vidscale.models import zoo
from vidscale.scale import output_size, runs_needed
from vidscale.upscaler import Upscaler


def test_output_size_from_scale_and_dimensions() -> None:
    assert output_size(180, 320) == (360, 640)  # default x2
    assert output_size(180, 320, 3) == (540, 960)
    assert output_size(179, 179, 1.5) == (268, 268)
    assert output_size(180, 320, out_width=1280) == (720, 1280)  # aspect kept
    assert output_size(180, 320, out_height=360) == (360, 640)
    assert output_size(180, 320, out_width=500, out_height=500) == (500, 500)


@pytest.mark.parametrize("scale", [0.5, 0.99, 8.01, 100, float("nan"), float("inf")])
def test_impossible_scales_are_refused(scale: float) -> None:
    with pytest.raises(UsageError, match="impossible"):
        output_size(100, 100, scale)


def test_width_that_implies_an_impossible_scale() -> None:
    with pytest.raises(UsageError):
        output_size(100, 100, out_width=2000)
    with pytest.raises(UsageError):
        output_size(100, 100, scale=2, out_width=200)


def test_runs_needed() -> None:
    assert runs_needed(2, 2) == 1
    assert runs_needed(1.3, 4) == 1
    assert runs_needed(4, 2) == 2
    assert runs_needed(8, 2) == 3
    assert runs_needed(6, 4) == 2


def names(chain: list[zoo.ModelInfo]) -> list[str]:
    return [m.name for m in chain]


def test_named_model_runs_as_often_as_needed() -> None:
    up = Upscaler("span-x2", "cpu")
    assert names(up.networks_for(2)) == ["span-x2"]
    assert names(up.networks_for(3)) == ["span-x2", "span-x2"]
    assert names(up.networks_for(8)) == ["span-x2"] * 3
    assert Upscaler("lanczos", "cpu").networks_for(3) == []  # a resizer needs no network
