"""The daemon process: one per state directory (lock), the socket (0600, peer uid checked), the
callback port, logging without query strings or secrets, and SIGTERM (SPEC §1, §9)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import socket
import stat
from pathlib import Path

from aiohttp import web
from aiohttp.abc import AbstractAccessLogger

from apimd.daemon.app import create_app
from apimd.daemon.callback import start_callback_server
from apimd.daemon.journal import configure_logging, sd_notify
from apimd.daemon.keys import SERVICE
from apimd.daemon.metrics import CONTENT_TYPE as METRICS_CONTENT_TYPE
from apimd.daemon.service import MonitorService
from apimd.model.common import file_kind
from apimd.settings import (
    Settings,
    fallback_socket_dir,
    foreign_state,
    unsafe_folder,
)
from apimd.store.lock import FileLock

log = logging.getLogger("apimd.daemon")


class DaemonError(Exception):
    """The daemon cannot start; the message says why and what to do."""


class QuerylessAccessLogger(AbstractAccessLogger):
    """Access log lines with the path only: query strings can hold codes and tokens."""

    def log(self, request: web.BaseRequest, response: web.StreamResponse, time: float) -> None:
        self.logger.info(
            "%s %s %s %.1fms", request.method, request.path, response.status, time * 1000
        )


def _private_dir(path: Path, *, ours: bool) -> None:
    """Create `path` 0700 when apimd creates it; an existing folder is used as the user set it."""
    if not path.exists():
        path.mkdir(parents=True, mode=0o700)
        os.chmod(path, 0o700)
    elif ours and not path.is_dir():
        raise DaemonError(f"{path} exists and is not a folder")


def _refuse_unsafe_fallback(folder: Path) -> None:
    """The fallback socket folder lives where every user can create folders: one made by
    another user, or open to others, would let them swap the socket and read what clients send."""
    if folder != fallback_socket_dir():
        return
    problem = unsafe_folder(folder)
    if problem is not None:
        raise DaemonError(
            f"refusing the socket folder: {problem}, so another user could take over the "
            f"daemon's socket. Remove {folder} (it may take root), or give APIMD_SOCKET or "
            "APIMD_HOME a path short enough (100 bytes) to need no fallback"
        )


class DaemonLock:
    """An exclusive lock on `daemon.lock`, holding the owner's pid and socket path."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock: FileLock | None = None

    def acquire(self, socket_path: Path) -> None:
        lock = FileLock.try_acquire(self.path, f"pid {os.getpid()}, socket {socket_path}\n")
        if isinstance(lock, str):
            raise DaemonError(
                f"another apimd daemon is already running for {self.path.parent} "
                f"({lock.strip() or 'unknown'}); stop it with `apimd stop`"
            )
        self._lock = lock

    def release(self) -> None:
        if self._lock is not None:
            self._lock.release()
            self._lock = None


def read_lock_pid(path: Path) -> int | None:
    """The pid written in a daemon lock file, if any."""
    try:
        text = path.read_text()
    except OSError:
        return None
    parts = text.split()
    if len(parts) >= 2 and parts[0] == "pid":
        with contextlib.suppress(ValueError):
            return int(parts[1].rstrip(","))
    return None


def _remove_stale_socket(path: Path) -> None:
    """A socket left by a killed daemon: nothing answers on it, so remove it. Anything else at
    the socket's path (a file, a folder, a link to one) is the user's: refuse, and leave it."""
    try:
        info = os.stat(path)  # through a link: a link to a stale socket is replaced as before
    except FileNotFoundError:
        if not path.is_symlink():
            return
        raise DaemonError(
            f"the socket path {path} is a symbolic link to {os.readlink(path)}, which does not "
            "exist; refusing to replace it. Remove it, or set APIMD_SOCKET to another path"
        ) from None
    if not stat.S_ISSOCK(info.st_mode):
        link = f"a symbolic link to {os.readlink(path)}, " if path.is_symlink() else ""
        raise DaemonError(
            f"the socket path {path} is {link}{file_kind(info.st_mode)}, not a socket; refusing "
            "to replace it. Move it away, or set APIMD_SOCKET to another path"
        )
    probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        probe.settimeout(1)
        probe.connect(str(path))
    except OSError:
        log.info("removing stale socket %s", path)
        path.unlink(missing_ok=True)
    else:
        raise DaemonError(f"something already answers on {path}")
    finally:
        probe.close()


def run_daemon(settings: Settings) -> int:
    """Run in the foreground until SIGTERM/SIGINT; returns the exit status."""
    problem = foreign_state(settings)
    if problem is not None:
        raise DaemonError(problem)
    if settings.home is not None:
        _private_dir(settings.home, ours=False)
    for folder in {settings.db_path.parent, settings.key_file.parent, settings.state_dir}:
        _private_dir(folder, ours=True)
    # Checked before (a link mkdir would trip on) and after (a folder made in between).
    _refuse_unsafe_fallback(settings.socket_path.parent)
    _private_dir(settings.socket_path.parent, ours=True)
    _refuse_unsafe_fallback(settings.socket_path.parent)
    lock = DaemonLock(settings.lock_path)
    lock.acquire(settings.socket_path)
    try:
        configure_logging(settings)
        _remove_stale_socket(settings.socket_path)
        asyncio.run(_serve(settings))
    finally:
        lock.release()
    return 0


async def _serve(settings: Settings) -> None:
    app = create_app(settings)
    runner = web.AppRunner(app, access_log_class=QuerylessAccessLogger, handle_signals=False)
    await runner.setup()
    service = app[SERVICE]
    callback = await start_callback_server(settings, service)
    metrics: web.AppRunner | None = None
    site = web.UnixSite(runner, str(settings.socket_path), shutdown_timeout=2.0)
    try:
        await site.start()
        os.chmod(settings.socket_path, 0o600)
        if settings.metrics_addr is not None:
            metrics = await _start_metrics_server(settings.metrics_addr, service)
        log.info(
            "apimd daemon pid %d serving %s; callback %s",
            os.getpid(),
            settings.socket_path,
            settings.callback_url(service.callback_port)
            if service.callback_port is not None
            else f"not bound ({service.callback_error})",
        )
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        sd_notify("READY=1")  # the socket serves and the scheduler runs (started with the app)
        await stop.wait()
        sd_notify("STOPPING=1")
        log.info("stopping: finishing in-flight runs (up to 10 s)")
        await service.stop()
    finally:
        if metrics is not None:
            await metrics.cleanup()
        if callback is not None:
            await callback.close()
        await runner.cleanup()
        settings.socket_path.unlink(missing_ok=True)
        log.info("apimd daemon stopped")


async def _start_metrics_server(address: tuple[str, int], service: MonitorService) -> web.AppRunner:
    """`GET /metrics` on APIMD_METRICS_ADDR too, for a Prometheus that cannot reach the socket."""

    async def metrics(_request: web.Request) -> web.Response:
        body = await service.metrics_text()
        return web.Response(body=body, headers={"Content-Type": METRICS_CONTENT_TYPE})

    app = web.Application()
    app.router.add_get("/metrics", metrics)
    runner = web.AppRunner(app, access_log=None, handle_signals=False)
    await runner.setup()
    host, port = address
    site = web.TCPSite(runner, host, port, shutdown_timeout=1.0)
    try:
        await site.start()
    except OSError as exc:
        await runner.cleanup()
        raise DaemonError(f"APIMD_METRICS_ADDR {host}:{port} cannot be bound: {exc}") from None
    log.info("metrics on %s/metrics", site.name)
    return runner
