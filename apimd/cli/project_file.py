"""The project file of `apimd apply` and `apimd run -f`, checked before it is read: a regular
file no larger than `apimd import` reads, or a pipe (`apimd apply <(render-project)`); not a
folder or a device such as /dev/zero."""

from __future__ import annotations

import os
import stat

from apimd.cli import UsageError
from apimd.importers import MAX_SOURCE_MIB
from apimd.model.common import file_kind


def check_project_file(path: str) -> None:
    """A `UsageError` naming `path` when it is no regular file or is over MAX_SOURCE_MIB; a file
    that cannot be looked at is left to the loader, which says why it cannot read it."""
    try:
        info = os.stat(path)
    except (OSError, ValueError):
        return
    if stat.S_ISFIFO(info.st_mode):
        return  # a pipe: its writer says how much (a project rendered by a script)
    if not stat.S_ISREG(info.st_mode):
        raise UsageError(
            f"{path} is {file_kind(info.st_mode)}, not a regular file: give a project file "
            "(YAML or JSON)"
        )
    if info.st_size > MAX_SOURCE_MIB * 1024 * 1024:
        raise UsageError(
            f"{path} is larger than {MAX_SOURCE_MIB} MiB: not read (a project file is far smaller)"
        )
