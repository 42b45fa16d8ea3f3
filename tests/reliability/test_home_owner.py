"""A state folder another user made, or one every user may write to, is refused by the daemon
before it reads a key or opens a database there: that user could have planted `secret.key` (and
an `apimd.db` of their own), then read every secret the daemon stores with the key they chose.
CI runs as root, so the other user is a child dropped to uid/gid 65534 ("nobody").

WHAT IT PROVES: `apimd start` exits 1 naming the folder and its owner (or mode), creates nothing
in it and leaves the planted files as they were; a folder of the user's own starts as before."""

from __future__ import annotations

import base64
import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.daemon.conftest import daemon_env, run_cli
from tests.reliability.conftest import AS_NOBODY, NOBODY

PYTHON = "/usr/bin/python3"  # one that uid 65534 can run (the test's venv may not be)

# Another user's trap: their folder, their key (readable by them), their empty database.
PLANT = """import os, sys
home = sys.argv[1]
os.mkdir(home, 0o755)
with open(os.path.join(home, "secret.key"), "w") as key:
    key.write(sys.argv[2] + "\\n")
open(os.path.join(home, "apimd.db"), "w").close()
os.chmod(os.path.join(home, "apimd.db"), 0o666)
"""


@pytest.fixture
def parent() -> Iterator[Path]:
    folder = Path(tempfile.mkdtemp(prefix="apimd-own-", dir="/tmp"))
    os.chmod(folder, 0o1777)  # like /tmp: everyone may make folders in it
    try:
        yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)


async def test_the_daemon_refuses_a_home_another_user_made(parent: Path) -> None:
    assert os.geteuid() == 0, "this test drops a child to uid 65534, which needs root (as CI)"
    home = parent / "h"
    key = base64.urlsafe_b64encode(os.urandom(32)).decode()
    subprocess.run([PYTHON, "-I", "-c", PLANT, str(home), key], check=True, timeout=30, **AS_NOBODY)
    before = sorted(p.name for p in home.iterdir())
    code, out, err = await run_cli("start", env=daemon_env(home), timeout=60)
    try:
        assert code == 1, (out, err)
        assert f"{home} belongs to uid {NOBODY}" in err, err
        assert "Traceback" not in err
        assert sorted(p.name for p in home.iterdir()) == before, "nothing made or opened there"
        assert (home / "apimd.db").stat().st_size == 0
    finally:
        await run_cli("stop", env=daemon_env(home), timeout=60)


async def test_the_daemon_refuses_a_home_every_user_may_write(parent: Path) -> None:
    home = parent / "h"
    home.mkdir(mode=0o700)
    os.chmod(home, 0o777)
    code, out, err = await run_cli("daemon", env=daemon_env(home), timeout=60)
    assert code == 1, (out, err)
    assert f"{home} is writable by every user (mode 777)" in err, err
    assert list(home.iterdir()) == []


async def test_a_home_of_ones_own_still_starts(parent: Path) -> None:
    home = parent / "h"
    home.mkdir(mode=0o750)
    os.chmod(home, 0o775)  # group-writable (umask 002, a user's private group) stays allowed
    env = daemon_env(home)
    code, out, err = await run_cli("start", env=env, timeout=60)
    try:
        assert code == 0, (out, err)
        assert (home / "secret.key").stat().st_uid == os.getuid()
    finally:
        await run_cli("stop", env=env, timeout=60)


async def test_run_db_and_migrate_refuse_a_home_another_user_made(parent: Path) -> None:
    """The standalone commands that open the store read the same key file: same check, same
    words, and the planted key and database are left unread (the database stays empty)."""
    assert os.geteuid() == 0, "this test drops a child to uid 65534, which needs root (as CI)"
    home = parent / "h"
    key = base64.urlsafe_b64encode(os.urandom(32)).decode()
    subprocess.run([PYTHON, "-I", "-c", PLANT, str(home), key], check=True, timeout=30, **AS_NOBODY)
    project = parent / "p.yaml"
    project.write_text("calls:\n  - name: s\n    url: http://127.0.0.1:9/\n")
    before = sorted(p.name for p in home.iterdir())
    env = daemon_env(home)
    for args in (
        ["run", "s", "-f", str(project), "--db", str(home / "apimd.db")],
        ["migrate", "--to", "postgresql://postgres@127.0.0.1:5432/postgres"],
    ):
        code, out, err = await run_cli(*args, env=env, timeout=60)
        assert code == 2, (args, out, err)
        assert f"refusing the state folder: {home} belongs to uid {NOBODY}" in err, err
        assert "Traceback" not in err
        assert sorted(p.name for p in home.iterdir()) == before, "nothing made or opened there"
        assert (home / "apimd.db").stat().st_size == 0


async def test_run_db_refuses_a_home_every_user_may_write(parent: Path) -> None:
    home = parent / "h"
    home.mkdir(mode=0o700)
    os.chmod(home, 0o777)
    project = parent / "p.yaml"
    project.write_text("calls:\n  - name: s\n    url: http://127.0.0.1:9/\n")
    db = parent / "own.db"
    code, out, err = await run_cli(
        "run", "s", "-f", str(project), "--db", str(db), env=daemon_env(home), timeout=60
    )
    assert code == 2, (out, err)
    assert f"{home} is writable by every user (mode 777)" in err, err
    assert list(home.iterdir()) == [] and not db.exists()
