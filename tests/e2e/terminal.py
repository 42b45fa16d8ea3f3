"""A command on a real pseudo-terminal, as a person runs it: read what it prints, type lines."""

from __future__ import annotations

import asyncio
import os
import pty
import re
import subprocess
from collections.abc import Sequence


class PtyCommand:
    """`args` with stdin, stdout and stderr on one pty; `output` is all it printed so far (read
    by the event loop as it comes, so nothing is lost between waits)."""

    def __init__(self, args: Sequence[str], env: dict[str, str]) -> None:
        leader, follower = pty.openpty()
        self._leader = leader
        self.process = subprocess.Popen(
            list(args), stdin=follower, stdout=follower, stderr=follower, env=env, close_fds=True
        )
        os.close(follower)
        self.output = b""
        self._loop = asyncio.get_running_loop()
        self._more = asyncio.Event()
        self._loop.add_reader(leader, self._readable)

    def _readable(self) -> None:
        try:
            chunk = os.read(self._leader, 4096)
        except OSError:
            chunk = b""
        if not chunk:
            self._loop.remove_reader(self._leader)
        self.output += chunk
        self._more.set()

    @property
    def text(self) -> str:
        return self.output.decode(errors="replace")

    async def read_until(self, pattern: bytes, timeout: float = 30) -> re.Match[bytes]:
        try:
            async with asyncio.timeout(timeout):
                while not (found := re.search(pattern, self.output)):
                    self._more.clear()
                    await self._more.wait()
        except TimeoutError:
            raise AssertionError(f"{pattern!r} not in the output:\n{self.text}") from None
        return found

    def type_line(self, line: str) -> None:
        os.write(self._leader, line.encode() + b"\n")

    def close(self) -> None:
        self._loop.remove_reader(self._leader)
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait(10)
        os.close(self._leader)
