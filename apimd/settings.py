"""Where things live and how the daemon is configured (SPEC §1): environment variables, and the
same keys in `settings.toml` (under APIMD_HOME, else the user config folder), whose `[keys]` table
remaps the TUI's keys (both find and read the file with `apimd.model.settings_file`)."""

from __future__ import annotations

import hashlib
import os
import re
import socket
import stat
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import platformdirs

from apimd.dburl import describe_url, is_postgres_url
from apimd.model.common import LOCATION_PATTERN, MAX_LOCATION
from apimd.model.settings_file import SettingsError as SettingsError
from apimd.model.settings_file import read_settings_document, settings_file_path

MAX_SOCKET_PATH = 100
DEFAULT_CALLBACK_PORT = 8765
DEFAULT_RETENTION_DAYS = 30
KEYS = (
    "APIMD_SOCKET",
    "APIMD_CALLBACK_PORT",
    "APIMD_SECRET_KEY",
    "APIMD_RETENTION_DAYS",
    "APIMD_DATABASE_URL",
    "APIMD_METRICS_ADDR",
    "APIMD_LOG_LEVEL",
    "APIMD_LOCATION",
    "APIMD_AGENT",
)
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")


@dataclass(frozen=True)
class Settings:
    """Resolved paths and options for one apimd state directory."""

    home: Path | None
    db_path: Path
    key_file: Path
    socket_path: Path
    lock_path: Path
    log_path: Path
    settings_file: Path
    callback_port: int
    secret_key: str | None
    retention_days: int
    database_url: str | None = None
    """`APIMD_DATABASE_URL`: a `postgresql://` URL puts the store on PostgreSQL (SPEC §13)."""
    metrics_addr: tuple[str, int] | None = None
    log_level: str = "INFO"
    location: str = ""
    """`APIMD_LOCATION` (default: the host name): where this agent checks from (SPEC §13)."""
    agent: str = ""
    """`APIMD_AGENT` (default: host name + pid): this agent's name in the cluster."""

    @property
    def store_location(self) -> str | Path:
        """Where the daemon's store is: the PostgreSQL URL when set, else the SQLite file."""
        return self.database_url or self.db_path

    @property
    def store_description(self) -> str:
        """The store's location for people: a PostgreSQL URL without its password."""
        return describe_url(self.database_url) if self.database_url else str(self.db_path)

    @property
    def state_dir(self) -> Path:
        return self.lock_path.parent

    @classmethod
    def load(cls, environ: Mapping[str, str] | None = None) -> Settings:
        """Settings from the environment, falling back to `settings.toml`, then defaults."""
        env = os.environ if environ is None else environ
        home = Path(env["APIMD_HOME"]).expanduser().absolute() if env.get("APIMD_HOME") else None
        if home is not None:
            data_dir = config_dir = state_dir = home
        else:
            data_dir = Path(platformdirs.user_data_dir("apimd"))
            config_dir = Path(platformdirs.user_config_dir("apimd"))
            state_dir = Path(platformdirs.user_state_dir("apimd"))
        settings_file = settings_file_path(env)
        file_values = _read_settings_file(settings_file)

        def get(key: str) -> tuple[str | None, str]:
            if env.get(key):
                return env[key], f"environment variable {key}"
            if key in file_values:
                return str(file_values[key]), f"{key} in {settings_file}"
            return None, key

        socket_value, _ = get("APIMD_SOCKET")
        socket_path = Path(socket_value).expanduser() if socket_value else state_dir / "apimd.sock"
        port_value, port_source = get("APIMD_CALLBACK_PORT")
        days_value, days_source = get("APIMD_RETENTION_DAYS")
        secret_key, _ = get("APIMD_SECRET_KEY")
        database_url, url_source = get("APIMD_DATABASE_URL")
        if database_url is not None and not is_postgres_url(database_url):
            raise SettingsError(
                f"{url_source} must be a postgresql://user@host:port/database URL"
                " (leave it unset for the SQLite file)"
            )
        metrics_value, metrics_source = get("APIMD_METRICS_ADDR")
        level_value, level_source = get("APIMD_LOG_LEVEL")
        location, location_source = get("APIMD_LOCATION")
        host = socket.gethostname() or "localhost"
        location = _name(location, location_source) or host
        agent_value, agent_source = get("APIMD_AGENT")
        agent = _name(agent_value, agent_source) or f"{host}-{os.getpid()}"
        return cls(
            location=location,
            agent=agent,
            home=home,
            db_path=data_dir / "apimd.db",
            key_file=config_dir / "secret.key",
            socket_path=short_socket_path(socket_path.absolute(), env.get("TMPDIR")),
            lock_path=state_dir / "daemon.lock",
            log_path=state_dir / "daemon.log",
            settings_file=settings_file,
            callback_port=_int(port_value, port_source, DEFAULT_CALLBACK_PORT, 0, 65535),
            secret_key=secret_key,
            retention_days=_int(days_value, days_source, DEFAULT_RETENTION_DAYS, 1, 36500),
            database_url=database_url,
            metrics_addr=_address(metrics_value, metrics_source),
            log_level=_log_level(level_value, level_source),
        )

    def callback_url(self, port: int | None = None) -> str:
        return (
            f"http://127.0.0.1:{port if port is not None else self.callback_port}/tokens/callback"
        )


def _name(value: str | None, source: str) -> str | None:
    """An agent or location name: letters, digits, `.`, `_`, `-` (at most `MAX_LOCATION`)."""
    if value is None:
        return None
    if not _NAME.fullmatch(value):
        raise SettingsError(f"{source} must be 1-{MAX_LOCATION} letters, digits, '.', '_' or '-'")
    return value


_NAME = re.compile(LOCATION_PATTERN)


def short_socket_path(path: Path, tmp: str | None = None) -> Path:
    """`path`, or `<tmp>/apimd-<uid>/<hash>.sock` when it is too long for a Unix socket."""
    if len(os.fsencode(str(path))) <= MAX_SOCKET_PATH:
        return path
    digest = hashlib.sha256(os.fsencode(str(path))).hexdigest()[:16]
    return fallback_socket_dir(tmp) / f"{digest}.sock"


def fallback_socket_dir(tmp: str | None = None) -> Path:
    """The folder of fallback sockets, in `tmp` (else $TMPDIR, else /tmp): a folder every user
    can write to, so another user could make it first (`unsafe_folder` says so)."""
    base = tmp or os.environ.get("TMPDIR") or "/tmp"
    return Path(base).absolute() / f"apimd-{os.getuid()}"


def unsafe_folder(path: Path) -> str | None:
    """Why `path` cannot hold apimd's socket safely (not a real folder, another user's, or
    writable by others), or None when it can (or does not exist yet)."""
    try:
        info = os.lstat(path)
    except FileNotFoundError:
        return None
    if stat.S_ISLNK(info.st_mode):
        return f"{path} is a symbolic link, not a folder"
    if not stat.S_ISDIR(info.st_mode):
        return f"{path} is not a folder"
    if info.st_uid != os.getuid():
        return f"{path} belongs to uid {info.st_uid}, not to you (uid {os.getuid()})"
    if info.st_mode & 0o022:
        return f"{path} is writable by other users (mode {stat.S_IMODE(info.st_mode):o})"
    return None


def foreign_state(settings: Settings) -> str | None:
    """Why the folders for the key and the database cannot be trusted, or None when they can.

    A folder that another user owns, or that every user may write to, could hold a `secret.key`
    (and an `apimd.db`) that user planted: every secret stored would then be theirs to decrypt.
    The daemon, `apimd run --db` and `apimd migrate` refuse it before anything is read there."""
    folders = {settings.db_path.parent, settings.key_file.parent}
    if settings.home is not None:
        folders.add(settings.home)
    for folder in sorted(folders):
        try:
            info = os.stat(folder)  # a link the user made to a folder of theirs is fine
        except FileNotFoundError:
            continue
        if info.st_uid != os.getuid():
            problem = f"{folder} belongs to uid {info.st_uid}, not to you (uid {os.getuid()})"
        elif info.st_mode & 0o002:
            problem = f"{folder} is writable by every user (mode {stat.S_IMODE(info.st_mode):o})"
        else:
            continue
        return (
            f"refusing the state folder: {problem}, so another user could plant the secret key "
            "and read every secret apimd stores. Use a folder of your own (APIMD_HOME)"
        )
    return None


def _read_settings_file(path: Path) -> dict[str, object]:
    data = read_settings_document(path)
    unknown = sorted(set(data) - set(KEYS) - {"keys"})
    if unknown:
        raise SettingsError(f"{path}: unknown setting {unknown[0]} (known: {', '.join(KEYS)})")
    return {k: v for k, v in data.items() if k in KEYS}


def _int(value: str | None, source: str, default: int, low: int, high: int) -> int:
    if value is None:
        return default
    try:
        number = int(value)
    except ValueError:
        raise SettingsError(f"{source} must be a whole number, not {value!r}") from None
    if not low <= number <= high:
        raise SettingsError(f"{source} must be between {low} and {high}, not {number}")
    return number


def _address(value: str | None, source: str) -> tuple[str, int] | None:
    """`HOST:PORT` (`[::1]:9464` for IPv6) as a pair; None when unset."""
    if not value:
        return None
    host, sep, port = value.rpartition(":")
    host = host.strip("[]")
    if not sep or not host:
        raise SettingsError(f"{source} must be HOST:PORT (e.g. 127.0.0.1:9464), not {value!r}")
    return host, _int(port, source, 0, 0, 65535)


def _log_level(value: str | None, source: str) -> str:
    if value is None:
        return "INFO"
    if value.upper() not in LOG_LEVELS:
        raise SettingsError(f"{source} must be one of {', '.join(LOG_LEVELS)}, not {value!r}")
    return value.upper()
