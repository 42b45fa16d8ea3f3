"""`apimd service install [--now] | uninstall` (SPEC §11 "Always on"): the systemd user unit it
writes passes `systemd-analyze verify`, its settings file is 0600 and never holds the secret key,
and `--now`/uninstall drive `systemctl --user`."""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from tests.cli.test_run_command import apimd

KEY = "q0Yx8bqgVhq4Xh9b3dUPG1sB5GJzP3b7dXq6W1lW2mY="


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    return {
        "XDG_CONFIG_HOME": str(tmp_path / "config"),
        "APIMD_HOME": str(tmp_path / "home"),
        "APIMD_SECRET_KEY": KEY,
        "APIMD_RETENTION_DAYS": "7",
        "APIMD_METRICS_ADDR": "127.0.0.1:9464",
    }


def fake_systemctl(folder: Path) -> Path:
    """A `systemctl` that records its arguments (there is no user manager in a test)."""
    log = folder / "systemctl.log"
    script = folder / "bin" / "systemctl"
    script.parent.mkdir()
    script.write_text(f'#!/bin/sh\necho "$@" >> {log}\n')
    script.chmod(0o755)
    return log


async def test_install_writes_a_unit_that_systemd_analyze_verifies(
    env: dict[str, str], tmp_path: Path
) -> None:
    code, out, err = await apimd("service", "install", env=env)
    assert code == 0, out + err
    unit = tmp_path / "config" / "systemd" / "user" / "apimd.service"
    text = unit.read_text()
    assert "Type=notify" in text and "Restart=on-failure" in text
    exec_start = next(line for line in text.splitlines() if line.startswith("ExecStart="))
    program = exec_start.removeprefix("ExecStart=").split()[0]
    assert Path(program).is_absolute() and exec_start.endswith(" daemon")
    settings_file = Path(env["APIMD_HOME"]) / "service.env"
    assert f"EnvironmentFile={settings_file}" in text
    assert stat.S_IMODE(settings_file.stat().st_mode) == 0o600
    settings = settings_file.read_text()
    assert f'APIMD_HOME="{env["APIMD_HOME"]}"' in settings
    assert 'APIMD_RETENTION_DAYS="7"' in settings
    assert "SECRET_KEY" not in settings and KEY not in settings and KEY not in text
    assert "loginctl enable-linger" in out
    assert "APIMD_SECRET_KEY is set here but the service will not have it" in out

    analyze = shutil.which("systemd-analyze")
    assert analyze is not None, "systemd-analyze is missing (.ci/run installs the systemd package)"
    verified = subprocess.run(
        [analyze, "verify", str(unit)], capture_output=True, text=True, timeout=60, check=False
    )
    assert verified.returncode == 0, verified.stdout + verified.stderr
    assert "apimd.service" not in verified.stderr, verified.stderr  # no warning about it


async def test_install_now_and_uninstall_drive_systemctl_user(
    env: dict[str, str], tmp_path: Path
) -> None:
    log = fake_systemctl(tmp_path)
    env["PATH"] = f"{tmp_path / 'bin'}{os.pathsep}{os.environ['PATH']}"
    code, out, err = await apimd("service", "install", "--now", env=env)
    assert code == 0, out + err
    assert log.read_text().splitlines() == [
        "--user daemon-reload",
        "--user enable --now apimd.service",
    ]
    code, out, err = await apimd("service", "uninstall", env=env)
    assert code == 0, out + err
    assert log.read_text().splitlines()[2:] == [
        "--user disable --now apimd.service",
        "--user daemon-reload",
    ]
    assert not (tmp_path / "config" / "systemd" / "user" / "apimd.service").exists()
    assert not (Path(env["APIMD_HOME"]) / "service.env").exists()
    code, out, _err = await apimd("service", "uninstall", env=env)
    assert code == 0 and "nothing to remove" in out


def test_the_unit_runs_this_apimd() -> None:
    from apimd.cli.service import apimd_command

    command = apimd_command()
    done = subprocess.run([*command, "--help"], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0 and "service" in done.stdout
    assert Path(command[0]).parent == Path(sys.executable).parent
