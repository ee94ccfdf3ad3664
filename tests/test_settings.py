"""JobSettings: its parts by purpose, and the flat names the CLI, the library and presets use."""

from __future__ import annotations

import threading
from dataclasses import fields, replace
from pathlib import Path

import pytest

from vidscale.core.settings import Callbacks, EncoderSettings, Execution, JobSettings, Pictures, Product


def test_flat_names_land_in_their_parts() -> None:
    cancel = threading.Event()
    settings = JobSettings(scale=2, tile=64, quality=80, workers=2, cancel=cancel)
    assert settings.product == Product(scale=2, tile=64)
    assert (settings.pictures, settings.execution) == (Pictures(quality=80), Execution(workers=2))
    assert settings.callbacks == Callbacks(cancel=cancel)
    assert (settings.scale, settings.quality, settings.workers, settings.cancel) == (2, 80, 2, cancel)


def test_each_field_is_in_one_part() -> None:
    names = [f.name for part in (Product, Pictures, Execution, Callbacks) for f in fields(part)]
    assert len(names) == len(set(names))
    assert not set(names) & {f.name for f in fields(JobSettings)}


def test_a_copy_changed_leaves_the_original() -> None:
    """`replace` takes flat names; parts are frozen, so a copy's change makes it a part of its own."""
    first = JobSettings(scale=2, quiet=True)
    second = replace(first, model="bicubic")
    second.scale, second.quiet = 3.0, False
    assert (first.scale, first.quiet, first.model) == (2, True, None)
    assert (second.scale, second.quiet, second.model) == (3.0, False, "bicubic")
    with pytest.raises(AttributeError):
        second.product.scale = 4.0  # type: ignore[misc]


def test_an_unknown_name_is_refused() -> None:
    with pytest.raises(TypeError, match="'scael'"):
        JobSettings(scael=2)


def test_the_fingerprint_holds_what_to_produce_and_nothing_else(tmp_path: Path) -> None:
    """By construction: every field of `Product` (a new one joins), none of the other parts."""
    from vidscale.segments.run import _fingerprint
    from vidscale.upscaler import Upscaler

    source = tmp_path / "in.mkv"
    source.write_bytes(b"\0" * 100)
    settings = JobSettings(model="bicubic", encoder=EncoderSettings(crf=0), quality=5, workers=3, batch=4)
    printed = _fingerprint(source, tmp_path / "out.mkv", settings, Upscaler("bicubic", "cpu"))
    own = {"source", "output", "version", "model_files"}
    assert set(printed) - own == {f.name for f in fields(Product)}
