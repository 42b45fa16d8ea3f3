"""Exclusive `flock`s on files that name their holder: `FileLock`, the one way apimd takes them
(the daemon's `daemon.lock`, a database's `<db>.lock`), and `OwnerLock`, the ownership of a
database by one process, whose owner (PID and description) the next process's error names."""

from __future__ import annotations

import contextlib
import fcntl
import os
from pathlib import Path

from apimd.store.errors import StoreInUse


class FileLock:
    """An exclusive lock on `path` held through an open descriptor; the kernel releases it if the
    process dies. The file is never unlinked: removing it while another process has it open
    would let two processes each lock a different file of the same name."""

    def __init__(self, path: Path, fd: int) -> None:
        self.path = path
        self._fd: int | None = fd

    @classmethod
    def try_acquire(cls, path: Path, holder: str) -> FileLock | str:
        """Take the lock without waiting and write `holder` into the file (mode 0600); when
        another process holds it, the text that process wrote instead."""
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            with contextlib.suppress(PermissionError):  # not ours: the lock still works
                os.fchmod(fd, 0o600)
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except (BlockingIOError, PermissionError):  # EAGAIN, or EACCES on some systems
            text = _read(fd)
            os.close(fd)
            return text
        except BaseException:
            os.close(fd)
            raise
        os.ftruncate(fd, 0)
        os.pwrite(fd, holder.encode(), 0)
        return cls(path, fd)

    def release(self, *, clear: bool = False) -> None:
        """Unlock; with `clear`, empty the file first (no stale holder for the next reader)."""
        if self._fd is None:
            return
        fd, self._fd = self._fd, None
        if clear:
            with contextlib.suppress(OSError):
                os.ftruncate(fd, 0)
        fcntl.flock(fd, fcntl.LOCK_UN)
        os.close(fd)


def is_locked(path: Path) -> bool:
    """Whether some process holds the lock on `path` now (False when the file is missing)."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except FileNotFoundError:
        return False
    except OSError:
        return True  # cannot look: take it as held
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        return True
    finally:
        os.close(fd)  # closing the descriptor drops a lock it took
    return False


def lock_path_for(db_path: Path) -> Path:
    return db_path.with_name(db_path.name + ".lock")


class OwnerLock:
    """Held while this process owns the database."""

    def __init__(self, lock: FileLock) -> None:
        self.path = lock.path
        self._lock = lock

    @classmethod
    def acquire(cls, db_path: Path, description: str) -> OwnerLock:
        """Take the lock without waiting; raise `StoreInUse` naming the holder if it is taken."""
        path = lock_path_for(db_path)
        path.parent.mkdir(parents=True, exist_ok=True)
        lock = FileLock.try_acquire(path, f"{os.getpid()}\n{description}\n")
        if isinstance(lock, str):
            pid, who = _holder(lock)
            raise StoreInUse(str(db_path), who or "another apimd process", pid)
        return cls(lock)

    def release(self) -> None:
        self._lock.release(clear=True)


def _read(fd: int) -> str:
    try:
        return os.pread(fd, 4096, 0).decode(errors="replace")
    except OSError:
        return ""


def _holder(text: str) -> tuple[int | None, str | None]:
    lines = text.splitlines()
    pid = int(lines[0]) if lines and lines[0].strip().isdigit() else None
    description = lines[1].strip() if len(lines) > 1 and lines[1].strip() else None
    return pid, description
