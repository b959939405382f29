"""One writer per run folder: an exclusive ``flock`` on ``{run}/.lock``, which holds the pid of
the process that has it.

Training, resuming and sweep workers take the lock before they write anything into a run folder
and keep it until they stop; a second process is refused at once, naming the holder. The kernel
drops the lock when the process ends, however it ends (``kill -9`` included), so a stale lock
file never blocks a later resume.
"""
from __future__ import annotations

import fcntl
import os
from pathlib import Path

LOCK_NAME = ".lock"


class RunLocked(RuntimeError):
    """Another process holds the run folder's lock."""

    def __init__(self, run_dir: Path, pid: str):
        self.run_dir, self.pid = run_dir, pid
        super().__init__(f"run folder {run_dir} is in use by process {pid or '(unknown pid)'} (training, "
                         f"resuming or a sweep); wait for it to end or stop it first")


class RunLock:
    """Exclusive lock of a run folder, taken on construction (``RunLocked`` if held elsewhere)
    and released by :meth:`release` or when the process ends."""

    def __init__(self, run_dir: Path | str, write_pid: bool = True):
        self.run_dir = Path(run_dir)
        self.path = self.run_dir / LOCK_NAME
        self.fd: int | None = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(self.fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            pid = os.pread(self.fd, 32, 0).decode(errors="replace").strip()
            os.close(self.fd)
            self.fd = None
            raise RunLocked(self.run_dir, pid) from None
        if write_pid:
            os.ftruncate(self.fd, 0)
            os.pwrite(self.fd, f"{os.getpid()}\n".encode(), 0)

    def release(self) -> None:
        if self.fd is not None:
            os.close(self.fd)  # closing the descriptor drops the flock
            self.fd = None

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
