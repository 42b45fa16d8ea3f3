"""Files the command line writes for the user: a project exported or imported."""

from __future__ import annotations

import os
from pathlib import Path


def write_text_file(path: Path, text: str, *, private: bool) -> None:
    """Write `text`; a file holding secrets is created 0600 before anything is written to it
    (and an existing one made 0600: its old mode may let others read)."""
    if private:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        os.fchmod(fd, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
    else:
        path.write_text(text, encoding="utf-8")
