"""One owner per database: a second owner is refused with a message naming the first."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from apimd.store import StoreInUse
from apimd.store.lock import FileLock, is_locked
from tests.store.conftest import TEST_KEY, OpenStore

HOLD_LOCK = """
import asyncio, sys
from pathlib import Path
from apimd.store import open_store

async def main():
    store = await open_store(Path(sys.argv[1]), secret_key=sys.argv[2], key_file=None,
                             owner=True, owner_description="the apimd daemon")
    print("locked", flush=True)
    sys.stdin.readline()
    await store.close()

asyncio.run(main())
"""


async def test_a_second_owner_is_refused_naming_the_first(
    open_test_store: OpenStore, db_dir: Path
) -> None:
    db = db_dir / "apimd.db"
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLD_LOCK, str(db), TEST_KEY],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline() == "locked\n"
        with pytest.raises(StoreInUse) as caught:
            await open_test_store(owner=True, owner_description="apimd run")
        assert str(caught.value) == (
            f"{db} is in use by the apimd daemon (pid {holder.pid}); stop it first"
        )
        # Readers that do not claim ownership (tools, tests) may still open it.
        await (await open_test_store(owner=False)).close()
    finally:
        holder.communicate("\n", timeout=30)
    assert holder.returncode == 0
    store = await open_test_store(owner=True, owner_description="apimd run")
    assert (db_dir / "apimd.db.lock").read_text() == f"{os.getpid()}\napimd run\n"
    await store.close()
    await (await open_test_store(owner=True)).close()


async def test_the_lock_is_released_when_opening_fails(
    open_test_store: OpenStore, db_dir: Path
) -> None:
    await (await open_test_store()).close()
    with pytest.raises(Exception, match="not a valid key"):
        await open_test_store(owner=True, secret_key="bad")
    await (await open_test_store(owner=True)).close()


def test_one_flock_helper_names_the_holder_and_frees_on_release(tmp_path: Path) -> None:
    path = tmp_path / "x.lock"
    assert not is_locked(path)
    held = FileLock.try_acquire(path, "pid 1, first\n")
    assert isinstance(held, FileLock)
    assert is_locked(path)
    assert FileLock.try_acquire(path, "second\n") == "pid 1, first\n"  # refused, naming it
    assert path.stat().st_mode & 0o777 == 0o600
    held.release()
    assert not is_locked(path)
    again = FileLock.try_acquire(path, "second\n")
    assert isinstance(again, FileLock)
    again.release(clear=True)
    assert path.read_text() == ""
