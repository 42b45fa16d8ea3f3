"""`apimd service install [--now] | uninstall`: a systemd user unit that keeps the daemon running
(SPEC §11 "Always on"). The current APIMD_* settings go to a 0600 EnvironmentFile — never
APIMD_SECRET_KEY, which stays in its key file."""

from __future__ import annotations

import getpass
import os
import shlex
import shutil
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path

from apimd.cli import UsageError
from apimd.settings import Settings

UNIT_NAME = "apimd.service"
NEVER_STORED = frozenset({"APIMD_SECRET_KEY"})
# Set by a service manager or a terminal for this process only, not settings of apimd.
NOT_SETTINGS = frozenset({"APIMD_LOG_STDERR"})


def unit_dir(environ: Mapping[str, str]) -> Path:
    config = environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(config) / "systemd" / "user"


def apimd_command() -> list[str]:
    """How to start this very apimd: its console script beside the interpreter, else `-m`."""
    script = Path(sys.executable).parent / "apimd"
    if script.is_file() and os.access(script, os.X_OK):
        return [str(script.absolute())]
    return [str(Path(sys.executable).absolute()), "-m", "apimd"]


def unit_text(command: list[str], environment_file: Path) -> str:
    exec_start = " ".join(shlex.quote(part) for part in [*command, "daemon"])
    return f"""[Unit]
Description=apimd API monitor daemon

[Service]
Type=notify
NotifyAccess=main
ExecStart={exec_start}
EnvironmentFile={environment_file}
Restart=on-failure
RestartSec=5
TimeoutStopSec=30

[Install]
WantedBy=default.target
"""


def environment_text(environ: Mapping[str, str]) -> str:
    lines = ["# apimd settings for the systemd unit (written by `apimd service install`)."]
    for key in sorted(environ):
        if key.startswith("APIMD_") and key not in NEVER_STORED | NOT_SETTINGS:
            value = environ[key].replace("\\", "\\\\").replace('"', '\\"')
            lines.append(f'{key}="{value}"')
    return "\n".join(lines) + "\n"


def install(settings: Settings, *, now: bool, environ: Mapping[str, str] | None = None) -> int:
    env = os.environ if environ is None else environ
    units = unit_dir(env)
    units.mkdir(parents=True, exist_ok=True)
    environment_file = settings.settings_file.parent / "service.env"
    environment_file.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    fd = os.open(environment_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(environment_text(env))
    os.chmod(environment_file, 0o600)
    unit = units / UNIT_NAME
    unit.write_text(unit_text(apimd_command(), environment_file))
    print(f"wrote {unit}")
    print(f"wrote {environment_file} (mode 0600; APIMD_SECRET_KEY is never written there)")
    if env.get("APIMD_SECRET_KEY") and not settings.key_file.exists():
        print(
            f"note: APIMD_SECRET_KEY is set here but the service will not have it: write the key "
            f"to {settings.key_file} (mode 0600) so the daemon can open its database"
        )
    if now:
        _systemctl("daemon-reload")
        _systemctl("enable", "--now", UNIT_NAME)
        print(f"started {UNIT_NAME}; logs: journalctl --user -u apimd")
    else:
        print("start it: systemctl --user daemon-reload && systemctl --user enable --now apimd")
    user = _user()
    print(f"to keep it running while you are logged out: loginctl enable-linger {user}")
    return 0


def uninstall(environ: Mapping[str, str] | None = None, settings: Settings | None = None) -> int:
    env = os.environ if environ is None else environ
    unit = unit_dir(env) / UNIT_NAME
    if not unit.exists():
        print(f"no {unit}: nothing to remove")
        return 0
    if shutil.which("systemctl"):
        _systemctl("disable", "--now", UNIT_NAME, check=False)
    unit.unlink()
    if settings is not None:
        (settings.settings_file.parent / "service.env").unlink(missing_ok=True)
    if shutil.which("systemctl"):
        _systemctl("daemon-reload", check=False)
    print(f"removed {unit}")
    return 0


def _systemctl(*args: str, check: bool = True) -> None:
    command = ["systemctl", "--user", *args]
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=60, check=False)
    except FileNotFoundError:
        raise UsageError("systemctl is not installed: start the unit by hand") from None
    if check and done.returncode != 0:
        detail = (done.stderr or done.stdout).strip()
        raise UsageError(f"`{' '.join(command)}` failed: {detail}")


def _user() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "$USER"
