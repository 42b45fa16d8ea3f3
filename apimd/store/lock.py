"""Ownership of a database by one process: an exclusive `flock` on `<db>.lock`, which names the
owner (PID and description) for the error the next process gets."""

from __future__ import annotations

import contextlib
import fcntl
import os
from pathlib import Path

from apimd.store.errors import StoreInUse


def lock_path_for(db_path: Path) -> Path:
    return db_path.with_name(db_path.name + ".lock")


class OwnerLock:
    """Held while this process owns the database; the kernel releases it if the process dies."""

    def __init__(self, path: Path, fd: int) -> None:
        self.path = path
        self._fd: int | None = fd

    @classmethod
    def acquire(cls, db_path: Path, description: str) -> OwnerLock:
        """Take the lock without waiting; raise `StoreInUse` naming the holder if it is taken."""
        path = lock_path_for(db_path)
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _read_holder(fd)
            os.close(fd)
            pid, who = holder
            raise StoreInUse(str(db_path), who or "another apimd process", pid) from None
        except BaseException:
            os.close(fd)
            raise
        # The file is never unlinked: removing it while another process has it open would let two
        # processes each lock a different file of the same name.
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n{description}\n".encode(), 0)
        return cls(path, fd)

    def release(self) -> None:
        if self._fd is None:
            return
        fd, self._fd = self._fd, None
        with contextlib.suppress(OSError):
            os.ftruncate(fd, 0)
        fcntl.flock(fd, fcntl.LOCK_UN)
        os.close(fd)


def _read_holder(fd: int) -> tuple[int | None, str | None]:
    try:
        text = os.pread(fd, 4096, 0).decode(errors="replace")
    except OSError:
        return None, None
    lines = text.splitlines()
    pid = int(lines[0]) if lines and lines[0].strip().isdigit() else None
    description = lines[1].strip() if len(lines) > 1 and lines[1].strip() else None
    return pid, description
