"""Issue 10 point 2: from a folder holding a clone named `apimd` (the working folder would shadow
the installed package for `python -m apimd`), `apimd start` and `apimd demo` still work."""

from __future__ import annotations

import asyncio
import shutil
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.daemon.conftest import daemon_env, short_home

APIMD = Path(sys.executable).parent / "apimd"


@pytest.fixture
def clone_parent() -> Iterator[Path]:
    """A folder holding `apimd/` shaped like a clone: a package folder with no `__version__`."""
    parent = short_home()
    (parent / "apimd" / "apimd").mkdir(parents=True)
    (parent / "apimd" / "README.md").write_text("a clone\n")
    try:
        yield parent
    finally:
        shutil.rmtree(parent, ignore_errors=True)


async def _apimd(*args: str, cwd: Path, env: dict[str, str], timeout: float) -> tuple[int, str]:
    proc = await asyncio.create_subprocess_exec(
        str(APIMD),
        *args,
        cwd=cwd,
        env=env,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    out, _ = await asyncio.wait_for(proc.communicate(), timeout)
    assert proc.returncode is not None
    return proc.returncode, out.decode(errors="replace")


async def test_apimd_start_works_from_the_parent_of_a_clone(clone_parent: Path) -> None:
    home = short_home()
    env = daemon_env(home)
    try:
        code, out = await _apimd("start", cwd=clone_parent, env=env, timeout=40)
        assert code == 0, out
        assert "apimd daemon started" in out
        code, out = await _apimd("status", cwd=clone_parent, env=env, timeout=20)
        assert code == 0, out
    finally:
        code, out = await _apimd("stop", cwd=clone_parent, env=env, timeout=40)
        shutil.rmtree(home, ignore_errors=True)
    assert code == 0, out


async def test_apimd_demo_works_from_the_parent_of_a_clone(clone_parent: Path) -> None:
    env = daemon_env(clone_parent)
    del env["APIMD_HOME"]  # the demo makes its own
    code, out = await _apimd(
        "demo", "--once", "--port", "0", cwd=clone_parent, env=env, timeout=120
    )
    assert code == 0, out
    assert "Traceback" not in out
    assert "service-status" in out
