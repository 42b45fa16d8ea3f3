"""Running under a service manager (SPEC §11 "Always on"): the sd_notify protocol, and logging
that rotates `daemon.log` and, under systemd's journal, writes plain lines to stderr."""

from __future__ import annotations

import logging
import logging.handlers
import os
import socket
import sys

from apimd.daemon.logs import QUEUE_ERRORS
from apimd.model.common import escaped_controls
from apimd.settings import Settings

LOG_MAX_BYTES = 10 * 1024 * 1024
LOG_BACKUPS = 5
TIMESTAMPED = "%(asctime)s %(levelname)s %(name)s: %(message)s"
# The journal stamps every line itself; the level is kept so `journalctl` readers see it.
JOURNAL = "%(levelname)s %(name)s: %(message)s"

log = logging.getLogger(__name__)


class OneLineFormatter(logging.Formatter):
    """A log line is one line: control characters in its message are escaped (`\\x0a`), so text
    from a request (a path with `%0A`, `%00`) cannot write a line of its own into daemon.log or
    make it binary. A traceback after the message stays as Python writes it."""

    def formatMessage(self, record: logging.LogRecord) -> str:
        record.message = escaped_controls(record.message)
        return super().formatMessage(record)


def sd_notify(state: str) -> bool:
    """Send `state` (e.g. `READY=1`) to the service manager's NOTIFY_SOCKET; False when there is
    none or it cannot be reached (the daemon runs the same without systemd)."""
    address = os.environ.get("NOTIFY_SOCKET")
    if not address:
        return False
    if address.startswith("@"):  # an abstract socket
        address = "\0" + address[1:]
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as sock:
            sock.connect(address)
            sock.sendall(state.encode())
    except OSError as exc:
        log.warning("could not notify the service manager (%s): %s", state, exc)
        return False
    return True


def configure_logging(settings: Settings, *, verbose: bool = False) -> None:
    """Root logging at APIMD_LOG_LEVEL: `daemon.log` rotating at 10 MiB × 5, and stderr (without
    timestamps when JOURNAL_STREAM says stderr goes to the journal)."""
    root = logging.getLogger()
    root.setLevel(logging.DEBUG if verbose else settings.log_level)
    for handler in list(root.handlers):
        root.removeHandler(handler)
        handler.close()
    if os.environ.get("APIMD_LOG_STDERR", "1") != "0":
        stderr = logging.StreamHandler(sys.stderr)
        journal = bool(os.environ.get("JOURNAL_STREAM"))
        stderr.setFormatter(OneLineFormatter(JOURNAL if journal else TIMESTAMPED))
        stderr.addFilter(QUEUE_ERRORS)
        root.addHandler(stderr)
    settings.log_path.touch(mode=0o600, exist_ok=True)
    file_handler = logging.handlers.RotatingFileHandler(
        settings.log_path, maxBytes=LOG_MAX_BYTES, backupCount=LOG_BACKUPS
    )
    file_handler.setFormatter(OneLineFormatter(TIMESTAMPED))
    file_handler.addFilter(QUEUE_ERRORS)
    root.addHandler(file_handler)
    logging.getLogger("aiohttp.access").setLevel(max(logging.INFO, root.level))
