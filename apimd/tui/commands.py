"""The command palette's provider: every action bound on the current screen (and the app),
by its description, with its key and binding id as help."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import partial

from textual.command import DiscoveryHit, Hit, Hits, Provider


@dataclass(frozen=True)
class Command:
    title: str
    help: str
    run: Callable[[], object]


class ActionsProvider(Provider):
    """Exposes each enabled, described binding that has an id."""

    def commands(self) -> list[Command]:
        screen = self.screen
        seen: set[str] = set()
        found: list[Command] = []
        for active in screen.active_bindings.values():
            binding = active.binding
            if not binding.id or not binding.description or binding.id in seen:
                continue
            if not active.enabled:
                continue
            seen.add(binding.id)
            key = self.app.get_key_display(binding)
            found.append(
                Command(
                    binding.description,
                    f"{key} · {binding.id}",
                    partial(self.app.run_action, binding.action, active.node),
                )
            )
        return sorted(found, key=lambda c: c.title.lower())

    async def discover(self) -> Hits:
        for command in self.commands():
            yield DiscoveryHit(command.title, command.run, help=command.help)

    async def search(self, query: str) -> Hits:
        matcher = self.matcher(query)
        for command in self.commands():
            score = matcher.match(command.title)
            if score > 0:
                yield Hit(score, matcher.highlight(command.title), command.run, help=command.help)
