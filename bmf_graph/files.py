"""Files written so that a kill, a full disk or a second writer never leaves a half-written or
overwritten one.

Every output is written into a temporary file beside its target (``.{name}.XXXX.tmp``) and then
renamed onto it: a reader sees the old file or the new one, never a part. Where an existing file
must be kept (``overwrite=False``), the rename is a hard link, which fails if the target
appeared in the meantime, so the check happens at the moment of writing, not before.
"""
from __future__ import annotations

import errno
import os
import tempfile
from pathlib import Path
from typing import IO, Callable

TEMP_SUFFIX = ".tmp"
_UMASK = os.umask(0)
os.umask(_UMASK)


class DiskFull(OSError):
    """The file system holding an output ran out of space (``ENOSPC``) or quota (``EDQUOT``), or
    the file outgrew the process's file-size limit (``EFBIG``, ``ulimit -f``)."""


FULL = (errno.ENOSPC, errno.EDQUOT, errno.EFBIG)
PROBE = 1 << 20
"""Bytes :func:`_disk_is_full` tries to append to find out whether a failed write hit a full disk."""


def disk_error(error: BaseException, path: Path | str) -> BaseException:
    """A :class:`DiskFull` naming ``path`` for an out-of-space or file-size error (also one
    wrapped in another exception, as ``torch.save`` wraps it), else ``error`` itself."""
    cause: BaseException | None = error
    while cause is not None and not (isinstance(cause, OSError) and cause.errno in FULL):
        cause = cause.__cause__ or cause.__context__
    if cause is None:
        return error
    what = "the file-size limit (ulimit -f) was reached" if cause.errno == errno.EFBIG else \
        "no space left on the device"
    return DiskFull(cause.errno, f"{what} while writing {path}; free some space or raise the limit (the previous "
                                 f"file, if any, is unchanged)")


def _disk_is_full(fd: int) -> OSError | None:
    """After a write failed for a reason it did not say: append up to :data:`PROBE` bytes to the
    open file ``fd``; the out-of-space or file-size error this meets, if any."""
    try:
        os.lseek(fd, 0, os.SEEK_END)
        block, left = b"\0" * 65536, PROBE
        while left > 0:
            left -= os.write(fd, block) or left
        os.fsync(fd)
    except OSError as error:
        return error if error.errno in FULL else None
    return None


def atomic_write(path: Path | str, write: Callable[[IO[bytes]], None], overwrite: bool = True) -> Path:
    """Call ``write(f)`` on a temporary binary file beside ``path`` and rename it onto ``path``.

    ``overwrite=False`` refuses (``FileExistsError``) when ``path`` exists at the time of the
    rename. The temporary file is removed on any failure; ``ENOSPC`` becomes :class:`DiskFull`.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=TEMP_SUFFIX)
    try:
        os.fchmod(fd, 0o666 & ~_UMASK)  # the mode open() would give, not mkstemp's private 0600
        with os.fdopen(fd, "wb", closefd=False) as f:
            try:
                write(f)
                f.flush()
            except Exception as error:  # noqa: BLE001 - torch.save wraps I/O errors in RuntimeError
                full = None if isinstance(error, OSError) else _disk_is_full(fd)
                if full is not None:
                    raise full from error
                raise
            os.fsync(f.fileno())
        if overwrite:
            os.replace(tmp, path)
        else:
            _link_new(tmp, path)
    except OSError as error:
        os.close(fd)
        Path(tmp).unlink(missing_ok=True)
        if isinstance(error, FileExistsError):
            raise FileExistsError(f"{path} exists (it appeared while this file was being written); "
                                  f"pass --overwrite to replace it") from None
        raise disk_error(error, path) from error
    except BaseException:
        os.close(fd)
        Path(tmp).unlink(missing_ok=True)
        raise
    os.close(fd)
    return path


def _link_new(tmp: str, path: Path) -> None:
    """Move ``tmp`` to ``path`` only if ``path`` does not exist (atomically where links work)."""
    try:
        os.link(tmp, path)
    except FileExistsError:
        raise
    except OSError:  # a file system without hard links: the check and the rename are two steps
        if path.exists():
            raise FileExistsError(errno.EEXIST, "exists", str(path)) from None
        os.replace(tmp, path)
        return
    os.unlink(tmp)


def atomic_write_text(path: Path | str, text: str, overwrite: bool = True) -> Path:
    """:func:`atomic_write` of UTF-8 text."""
    return atomic_write(path, lambda f: f.write(text.encode()), overwrite)


def remove_temp_files(folder: Path | str) -> list[Path]:
    """Delete temporary files left by killed writers (``.NAME.*.tmp``) in ``folder`` and below."""
    removed = []
    for tmp in Path(folder).rglob(f".*{TEMP_SUFFIX}"):
        if tmp.is_file():
            tmp.unlink(missing_ok=True)
            removed.append(tmp)
    return removed
