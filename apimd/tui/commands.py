"""The command palette's providers: every action bound on the current screen (and the app), by
its description, with its key and binding id as help; and the resource commands (new …, edit …,
sign in …) that have no key of their own."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from typing import TYPE_CHECKING, Any, cast

from textual.command import DiscoveryHit, Hit, Hits, Provider
from textual.screen import Screen
from textual.style import Style

from apimd.client import ApiError, DaemonUnavailable
from apimd.model.kinds import ResourceKind

if TYPE_CHECKING:
    from apimd.tui.app import ApimdApp

PALETTE_KINDS = (
    ResourceKind.CALLS,
    ResourceKind.WORKFLOWS,
    ResourceKind.AUTH,
    ResourceKind.TOKENS,
    ResourceKind.VARIABLES,
    ResourceKind.SCHEDULES,
    ResourceKind.MAINTENANCE,
)
"""Resource kinds in the order the palette offers them (each named by its `singular`)."""
LISTED_KINDS = ("auth", "tokens", "variables", "schedules", "maintenance")
"""Kinds whose names the palette reads when it opens (calls and workflows: the dashboard's)."""


def article(noun: str) -> str:
    """`a` or `an`, as the noun's first sound needs (`an auth setting`)."""
    return "an" if noun[:1].lower() in "aeiou" else "a"


@dataclass(frozen=True)
class Command:
    title: str
    help: str
    run: Callable[[], object]


class CommandProvider(Provider):
    """A provider of `Command`s: `commands()` are searched, `discovered()` offered before a
    query is typed."""

    def commands(self) -> list[Command]:
        raise NotImplementedError

    def discovered(self) -> list[Command]:
        return self.commands()

    async def discover(self) -> Hits:
        for command in self.discovered():
            yield DiscoveryHit(command.title, command.run, help=command.help)

    async def search(self, query: str) -> Hits:
        matcher = self.matcher(query)
        for command in self.commands():
            score = matcher.match(command.title)
            if score > 0:
                yield Hit(score, matcher.highlight(command.title), command.run, help=command.help)


class ActionsProvider(CommandProvider):
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


class ResourcesProvider(CommandProvider):
    """`New call` … `New schedule`, `Edit <kind> <name>` for every resource, and `Sign in` /
    `Device sign-in` for every token. Names are read when the palette opens."""

    def __init__(self, screen: Screen[Any], match_style: Style | None = None) -> None:
        super().__init__(screen, match_style)
        self._names: dict[str, list[str]] = {}

    @property
    def apimd(self) -> ApimdApp:
        return cast("ApimdApp", self.app)

    async def startup(self) -> None:
        app = self.apimd
        monitors = app.board.monitors.values()
        self._names = {
            "calls": sorted(m.name for m in monitors if m.kind == "call"),
            "workflows": sorted(m.name for m in monitors if m.kind == "workflow"),
        }
        if not app.daemon.connected:
            return
        lists = await asyncio.gather(
            *(app.client.list(kind) for kind in LISTED_KINDS), return_exceptions=True
        )
        for kind, items in zip(LISTED_KINDS, lists, strict=True):
            if isinstance(items, ApiError | DaemonUnavailable):
                continue  # the palette offers what it could read
            if isinstance(items, BaseException):
                raise items
            self._names[kind] = sorted(str(getattr(item, "name", "")) for item in items)

    def new_commands(self) -> list[Command]:
        from apimd.tui.screens.importer import Applier, ImportScreen

        app = self.apimd
        return [
            Command(
                f"New {kind.singular}",
                f"create {article(kind.singular)} {kind.singular}",
                partial(app.edit_resource, kind.value, None),
            )
            for kind in PALETTE_KINDS
        ] + [
            Command(
                "Import…",
                "make calls from curl, Postman, OpenAPI or HAR (preview, then apply)",
                lambda: app.push_screen(ImportScreen(cast(Applier, app.client))),
            )
        ]

    def commands(self) -> list[Command]:
        app = self.apimd
        found = self.new_commands()
        for kind in PALETTE_KINDS:
            for name in self._names.get(kind, []):
                found.append(
                    Command(
                        f"Edit {kind.singular} {name}",
                        f"open the {kind.singular} editor",
                        partial(app.edit_resource, kind.value, name),
                    )
                )
        for name in self._names.get("tokens", []):
            found.append(
                Command(
                    f"Sign in {name}",
                    "sign the token in (browser, or the URL to paste over SSH)",
                    partial(app.sign_in, name, mode="browser"),
                )
            )
            found.append(
                Command(
                    f"Device sign-in {name}",
                    "sign the token in with a code on another device",
                    partial(app.sign_in, name, mode="device"),
                )
            )
        return found

    def discovered(self) -> list[Command]:
        return self.new_commands()
