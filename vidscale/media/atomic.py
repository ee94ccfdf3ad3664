"""Output files that appear complete or not at all."""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

from vidscale.errors import UsageError, VidscaleError

TMP_MARK = ".vidscale-tmp-"
# Keeps the temporary name within the usual 255-byte limit on long targets.
_MAX_NAME_PART = 120


@contextmanager
def atomic_output(
    target: Path, overwrite: bool = False, inputs: Sequence[Path] = ()
) -> Iterator[Path]:
    """Yield a hidden temporary path beside `target`; move it there on success.

    The temporary name keeps the target's extension so that writers choosing
    a format by extension still work. On any exception, KeyboardInterrupt
    included, the temporary file is removed and the target left untouched.
    """
    target = Path(target)
    _check_target(target, overwrite, inputs)
    tmp = temp_path_for(target)
    try:
        yield tmp
    except BaseException:
        _remove_quietly(tmp)
        raise
    _commit(tmp, target, overwrite)


def temp_path_for(target: Path) -> Path:
    """A fresh hidden name in target's directory with target's extension."""
    name = target.name[:_MAX_NAME_PART]
    return target.with_name(f".{name}{TMP_MARK}{secrets.token_hex(4)}{target.suffix}")


def _check_target(target: Path, overwrite: bool, inputs: Sequence[Path]) -> None:
    if target.is_dir():
        raise UsageError(f"{target}: is a directory")
    if any(_same_file(target, Path(p)) for p in inputs):
        raise UsageError(f"{target}: output would overwrite the input")
    # lexists: a dangling symlink is still something we would replace.
    if os.path.lexists(target) and not overwrite:
        raise UsageError(f"{target}: already exists (use --overwrite)")
    parent = target.parent
    if not parent.is_dir():
        raise VidscaleError(f"{target}: directory '{parent}' does not exist")


def _same_file(a: Path, b: Path) -> bool:
    # samefile also catches hard links; resolve() covers paths not yet created.
    try:
        if a.exists() and b.exists():
            return os.path.samefile(a, b)
        return a.resolve() == b.resolve()
    except (OSError, RuntimeError):  # RuntimeError: symlink loop (py<3.13)
        return False


def _commit(tmp: Path, target: Path, overwrite: bool) -> None:
    try:
        if overwrite:
            os.replace(tmp, target)
        else:
            _move_no_clobber(tmp, target)
    except FileExistsError:
        _remove_quietly(tmp)
        raise UsageError(f"{target}: already exists (use --overwrite)") from None
    except OSError as e:
        _remove_quietly(tmp)
        raise VidscaleError(f"{target}: cannot write file: {e.strerror or e}") from None


def _move_no_clobber(tmp: Path, target: Path) -> None:
    # A hard link fails if the target appeared while we were writing (e.g. a
    # second run with the same output), where os.replace would clobber it.
    try:
        os.link(tmp, target)
    except FileExistsError:
        raise
    except OSError:
        os.replace(tmp, target)  # no hard links on this filesystem
        return
    os.unlink(tmp)


def _remove_quietly(path: Path) -> None:
    try:
        os.unlink(path)
    except OSError:
        pass
