"""Output files that appear complete or not at all.

One rule for where outputs may go: vidscale creates the output itself (a
file, or the folder of a folder or pattern output) but never the folders
above it; a missing parent folder is an error naming it.
"""

from __future__ import annotations

import errno
import fcntl
import os
import secrets
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from glob import escape as glob_escape
from pathlib import Path

from vidscale.errors import UsageError, VidscaleError
from vidscale.media.names import local_path

TMP_MARK = ".vidscale-tmp-"
# File names are limited to 255 bytes: the temporary name keeps at most this
# many bytes of the target's name, so that a target near the limit still fits.
_MAX_NAME_BYTES = 200


@contextmanager
def atomic_output(
    target: Path, overwrite: bool = False, inputs: Sequence[Path] = ()
) -> Iterator[Path]:
    """Yield a hidden temporary path beside `target`; move it there on success.

    The temporary name keeps the target's extension so that writers choosing
    a format by extension still work. On any exception, KeyboardInterrupt
    included, the temporary file is removed and the target left untouched;
    a filesystem error (read-only folder, full disk) becomes a one-line
    error that names the target, not the temporary file.
    """
    target = Path(target)
    check_target(target, overwrite, inputs)
    tmp = temp_path_for(target)
    try:  # from before the file exists: a Ctrl-C or SIGTERM just after it is made still removes it
        _reserve(tmp, target)
        yield tmp
    except OSError as e:
        _remove_quietly(tmp)
        if not _about(e, tmp):
            raise
        raise write_error(target, e) from None
    except VidscaleError as e:  # a writer's message about the temporary file
        _remove_quietly(tmp)
        if str(tmp) not in str(e):
            raise
        raise type(e)(str(e).replace(str(tmp), str(target))) from None
    except BaseException:
        _remove_quietly(tmp)
        raise
    _commit(tmp, target, overwrite)


def temp_path_for(target: Path) -> Path:
    """A fresh hidden name in target's directory with target's extension."""
    name = _clip_utf8(target.name, _MAX_NAME_BYTES - len(target.suffix.encode()))
    return target.with_name(f".{name}{TMP_MARK}{secrets.token_hex(4)}{target.suffix}")


def require_parent(path: Path) -> None:
    """The rule for every output: the folder it goes into must exist."""
    parent = Path(path).absolute().parent
    if not parent.is_dir():
        raise VidscaleError(f"{path}: folder '{parent}' does not exist (vidscale creates the output, "
                            "not the folders above it)")


def write_error(target: Path, e: OSError, into: Path | None = None) -> VidscaleError:
    """An OSError met while writing `target` (into the folder `into`, by default the one it is
    in), as one line naming it."""
    reason = e.strerror or str(e)
    if e.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
        folder = Path(into if into is not None else Path(target).absolute().parent).absolute()
        return VidscaleError(f"{target}: cannot write into '{folder}': {reason}")
    return VidscaleError(f"{target}: cannot write file: {reason}")


@contextmanager
def making_folder(folder: Path, target: Path, parents: bool = False) -> Iterator[Path]:
    """`folder` made (with the folders above it when `parents`) for writing `target`, and shown
    writable. A fault doing so is the write error naming `target`; if the block fails, the
    folders made here go again while they are still empty: a failed run leaves nothing new."""
    made = make_folder(folder, target, parents)
    try:
        yield Path(folder)
    except BaseException:
        _remove_empty(made)
        raise


def make_folder(folder: Path, target: Path, parents: bool = False) -> list[Path]:
    """`folder` made (with the folders above it when `parents`) for writing `target`, and shown
    writable; a fault doing so is the write error naming `target`, and leaves no folder made.
    Returns the folders made, deepest first."""
    folder = Path(folder)
    made = [p for p in (folder, *folder.parents)[: None if parents else 1] if not p.exists()]
    try:
        folder.mkdir(parents=parents, exist_ok=True)
        require_writable(folder, target)
    except OSError as e:
        _remove_empty(made)
        failed = Path(os.fsdecode(e.filename)).parent if e.filename is not None else None
        raise write_error(target, e, into=failed) from None
    except BaseException:
        _remove_empty(made)
        raise
    return made


def require_writable(folder: Path, target: Path) -> None:
    """Fail now, naming `target`, where no file can be made in `folder` (a read-only folder or
    file system): a batch would otherwise fail on every file, after its work."""
    probe = temp_path_for(Path(folder) / "probe")
    try:
        os.close(os.open(probe, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666))
    except OSError as e:
        raise write_error(target, e, into=folder) from None
    _remove_quietly(probe)


def _remove_empty(folders: list[Path]) -> None:
    """Remove `folders` (deepest first) where they are empty; a folder in use stays."""
    for folder in folders:
        try:
            folder.rmdir()
        except OSError:
            pass


def _about(e: OSError, tmp: Path) -> bool:
    """Whether an OSError is about writing the temporary file (not, say, reading an input)."""
    name = local_path(os.fsdecode(e.filename)) if e.filename is not None else None
    return name in (str(tmp), tmp.name) or e.errno in _WRITE_ONLY_ERRORS


# Errors only writing can cause; FFmpeg's muxers report them without a file name.
_WRITE_ONLY_ERRORS = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EFBIG})


def _clip_utf8(text: str, limit: int) -> str:
    """`text` cut to at most `limit` bytes of UTF-8, at a character boundary."""
    data = text.encode("utf-8", "surrogateescape")[:max(limit, 0)]
    return data.decode("utf-8", "ignore")


def _reserve(tmp: Path, target: Path) -> None:
    """Create the empty temporary file: a read-only or missing folder fails here, before any work."""
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
    except OSError as e:
        raise write_error(target, e) from None
    os.close(fd)


def remove_stale_temps(target: Path) -> None:
    """Temporary files of `target` left by a killed run: never complete outputs."""
    prefix = temp_path_for(target).name.split(TMP_MARK)[0]
    for stale in target.parent.glob(f"{glob_escape(prefix)}{TMP_MARK}*"):
        _remove_quietly(stale)


def check_target(target: Path, overwrite: bool, inputs: Sequence[Path]) -> None:
    """Refuse a target that is an input, a folder or (without `overwrite`) already there."""
    if target.is_dir():
        raise UsageError(f"{target}: is a directory")
    if any(_same_file(target, Path(p)) for p in inputs):
        raise UsageError(f"{target}: output would overwrite the input")
    # lexists: a dangling symlink is still something we would replace.
    if os.path.lexists(target) and not overwrite:
        raise UsageError(f"{target}: already exists (use --overwrite)")
    require_parent(target)


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
        raise write_error(target, e) from None


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


def try_lock(path: Path, mode: int) -> int | None:
    """An exclusive flock on `path` (created with `mode`): its descriptor, or None when another
    process holds it. The lock lasts until the descriptor is closed (or the process dies)."""
    fd = os.open(path, os.O_RDWR | os.O_CREAT, mode)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        return None
    return fd
