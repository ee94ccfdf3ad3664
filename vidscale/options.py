"""Limits of the options that several front doors take (the CLI, the VapourSynth filter).

One click type per option, so that both refuse the same values with the same words.
"""

from __future__ import annotations

from typing import Any

import click

from vidscale.errors import UsageError

BACKEND = click.Choice(["auto", "tensorrt", "cuda", "cpu", "torch"], case_sensitive=False)  # engine.backend.BACKENDS
TILE = click.IntRange(min=32)
BATCH = click.IntRange(1, 256)
TEMPORAL = click.FloatRange(0, 1)


def check(flag: str, kind: click.ParamType, value: Any) -> Any:
    """`value` converted by `kind`, or a UsageError worded as the CLI words it for `flag`."""
    try:
        return kind.convert(value, None, None)
    except click.BadParameter as exc:
        raise UsageError(f"Invalid value for {flag!r}: {exc.message}") from None
