"""One writer per run folder: an exclusive lock on ``{run}/.lock``, which holds the pid of the
process that has it.

Training, resuming and sweep workers take the lock before they write anything into a run folder
and keep it until they stop; a second process is refused at once, naming the holder. The lock is
the ``filelock`` package's OS lock (``flock`` on POSIX, ``msvcrt.locking`` on Windows), which
the operating system drops when the process ends, however it ends (``kill -9`` included), so a
stale lock file never blocks a later resume.
"""
from __future__ import annotations

import os
from pathlib import Path

from filelock import FileLock, Timeout

LOCK_NAME = ".lock"

_HELD: list[FileLock] = []
"""Locks taken and not yet released: a lock lives until :meth:`RunLock.release` or the end of
the process, not until its :class:`RunLock` is collected."""


class RunLocked(RuntimeError):
    """Another process holds the run folder's lock."""

    def __init__(self, run_dir: Path, pid: str):
        self.run_dir, self.pid = run_dir, pid
        super().__init__(f"run folder {run_dir} is in use by process {pid or '(unknown pid)'} (training, "
                         f"resuming or a sweep); wait for it to end or stop it first")


def _read_pid(path: Path) -> str:
    try:
        return path.read_bytes()[:32].decode(errors="replace").strip()
    except OSError:  # Windows refuses reads of a locked region
        return ""


def _write_pid(path: Path) -> None:
    try:
        fd = os.open(path, os.O_WRONLY)
    except OSError:
        return
    try:
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
    except OSError:  # Windows refuses writes to a locked region; the holder then reads as unknown
        pass
    finally:
        os.close(fd)


class RunLock:
    """Exclusive lock of a run folder, taken on construction (``RunLocked`` if held elsewhere)
    and released by :meth:`release` or when the process ends."""

    def __init__(self, run_dir: Path | str, write_pid: bool = True):
        self.run_dir = Path(run_dir)
        self.path = self.run_dir / LOCK_NAME
        lock = FileLock(self.path)
        try:
            lock.acquire(timeout=0)
        except Timeout:
            raise RunLocked(self.run_dir, _read_pid(self.path)) from None
        self._lock: FileLock | None = lock
        _HELD.append(lock)
        if write_pid:
            _write_pid(self.path)

    def release(self) -> None:
        if self._lock is not None:
            _HELD.remove(self._lock)
            self._lock.release()
            self._lock = None

    def __enter__(self) -> "RunLock":
        return self

    def __exit__(self, *_) -> None:
        self.release()


def holder(run_dir: Path | str) -> str | None:
    """The pid holding ``run_dir``'s lock, or ``None`` when it is free (or no run folder)."""
    if not (Path(run_dir) / LOCK_NAME).is_file():
        return None
    try:
        RunLock(run_dir, write_pid=False).release()
    except RunLocked as locked:
        return locked.pid or "?"
    return None


def refuse_locked_resume(argv: list[str]) -> None:
    """Raise :class:`RunLocked` when ``argv`` holds ``resume=RUN`` and ``RUN`` is locked; cheap
    (no torch import), so a command line is refused before the seconds its imports take."""
    for item in argv:
        if item.startswith("resume=") and item[len("resume="):].strip():
            run_dir = Path(item[len("resume="):])
            pid = holder(run_dir) if run_dir.is_dir() else None
            if pid is not None:
                raise RunLocked(run_dir, pid)
