"""Tokens: state, a live countdown to expiry, masked variables (revealed on `v`), refresh now,
sign in (`i`, or `I` with a device code), edit."""

from __future__ import annotations

from datetime import datetime
from typing import ClassVar

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.widgets import DataTable, Footer, Static

from apimd.client import ApiError
from apimd.model.common import SECRET_MASK
from apimd.model.events import Event, Lagged, ResourceChanged, TokenSaved, TokenStateChanged
from apimd.model.resources import Token
from apimd.model.token_status import (
    NEVER_SIGNED_IN,
    never_signed_in,
    refreshed_word,
    state_word,
)
from apimd.tui.formatting import (
    NOTHING,
    countdown,
    literal,
    screen_text,
    token_state_text,
    truncate,
)
from apimd.tui.screens.base import ApimdScreen
from apimd.tui.screens.signin import SignInMode
from apimd.tui.widgets.status_bar import StatusBar


def token_detail(
    token: Token, revealed: dict[str, str] | None, now_text: str, now: datetime
) -> Text:
    """The selected token: headers it adds, its variables (masked unless `revealed`), errors;
    what the project and the token endpoint said with its control characters escaped."""
    text = Text()
    text.append(screen_text(token.name), style="bold")
    text.append(f"  auth {screen_text(token.auth)} · ", style="dim")
    text.append_text(token_state_text(token.state, word=state_word(token, now)))
    if never_signed_in(token):
        text.append(f" · {NEVER_SIGNED_IN}", "dim")
    if token.expires_at is not None:
        text.append(f" · expires {now_text} ({token.expires_at:%m-%d %H:%M:%S} UTC)", "dim")
    for name, template in {**token.headers, **token.params}.items():
        text.append(f"\n  {screen_text(name)}: ", style="bold")
        text.append(screen_text(template))
    variables = revealed if revealed is not None else dict(token.variables or {})
    if not variables:
        text.append("\nno saved variables", style="dim")
    else:
        hint = "revealed, v hides" if revealed is not None else "masked, v reveals"
        text.append(f"\nvariables ({hint})", style="bold")
        width = max(len(screen_text(n)) for n in variables)
        for name, value in sorted(variables.items()):
            shown = screen_text(value) if revealed is not None else SECRET_MASK
            text.append(f"\n  {screen_text(name):<{width}}  ")
            text.append(shown, style="yellow" if revealed is not None else "dim")
    if token.last_error:
        text.append("\nlast error ", style="bold red")
        text.append(screen_text(token.last_error))
    return text


class TokensScreen(ApimdScreen):
    """One row per token; the pane below details the one under the cursor."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "back", "Back", id="tokens.back"),
        Binding("v", "reveal", "Reveal", id="tokens.reveal"),
        Binding("R", "refresh", "Refresh", id="tokens.refresh"),
        Binding("i", "signin('browser')", "Sign in", id="tokens.signin"),
        # 80 columns hold no more keys: these two are in `?` help and the command palette.
        Binding("I", "signin('device')", "Device sign-in", show=False, id="tokens.device_signin"),
        Binding("e", "edit", "Edit", show=False, id="tokens.edit"),
        Binding("a", "edit_auth", "Edit auth setting", show=False, id="tokens.edit_auth"),
        Binding("g", "reload", "Reload", show=False, id="tokens.reload"),
    ]

    def __init__(self) -> None:
        super().__init__()
        self._layout_width = 0
        self.tokens: dict[str, Token] = {}
        self.revealed: dict[str, dict[str, str]] = {}
        self._shown: dict[tuple[str, str], str] = {}

    def compose(self) -> ComposeResult:
        yield StatusBar("Tokens")
        yield DataTable(id="tokens-table", cursor_type="row")
        yield Static(id="token-detail", markup=False)
        yield Footer(compact=True)

    def on_mount(self) -> None:
        self._build_columns()
        self.set_interval(1.0, self._tick)

    @property
    def table(self) -> DataTable[str | Text]:
        return self.query_one("#tokens-table", DataTable)

    def _build_columns(self) -> None:
        table = self.table
        current = self.current_name()
        self._layout_width = self.app.size.width
        table.clear(columns=True)
        self._shown.clear()
        wide = self.app.size.width >= 100
        table.add_column("name", key="name", width=24 if wide else 18)
        if wide:
            table.add_column("auth", key="auth", width=16)
        table.add_column("state", key="state", width=13)
        table.add_column("expires in", key="expires", width=10)
        table.add_column("refreshed", key="refreshed", width=len(NEVER_SIGNED_IN))
        fixed = sum(c.width for c in table.columns.values()) + 2 * (len(table.columns) + 1) + 2
        table.add_column("last error", key="error", width=max(10, self.app.size.width - fixed))
        self._add_rows(current)  # a resize rebuilds the columns: the cursor stays put

    def _add_rows(self, current: str | None) -> None:
        """Every token's row, in name order, the cursor on `current` again when it is there."""
        for name in sorted(self.tokens):
            self._add_row(self.tokens[name])
        if current in self.tokens:
            self.table.move_cursor(row=self.table.get_row_index(current))

    def _cells(self, token: Token) -> dict[str, str | Text]:
        now = self.clock()
        cells: dict[str, str | Text] = {
            "name": literal(token.name),
            "state": token_state_text(token.state, word=state_word(token, now)),
            "expires": countdown(token.expires_at, now),
            "refreshed": refreshed_word(token, now) or NOTHING,
            "error": Text(truncate(screen_text(token.last_error or ""), 60), style="red"),
        }
        if "auth" in self.table.columns:
            cells["auth"] = literal(token.auth)
        return cells

    def _add_row(self, token: Token) -> None:
        cells = self._cells(token)
        self.table.add_row(*(cells[str(c.value)] for c in self.table.columns), key=token.name)
        for column, value in cells.items():
            self._shown[(token.name, column)] = str(value)

    def _update_row(self, token: Token) -> None:
        """Only the cells whose text changed."""
        if token.name not in self.table.rows:
            self._add_row(token)
            return
        for column, value in self._cells(token).items():
            if self._shown.get((token.name, column)) != str(value) or isinstance(value, Text):
                self.table.update_cell(token.name, column, value)
                self._shown[(token.name, column)] = str(value)

    def _tick(self) -> None:
        """Once a second: the countdown and refreshed-ago columns, where their text changed."""
        now = self.clock()
        for name, token in self.tokens.items():
            if name not in self.table.rows:
                continue
            for column, value in (
                ("expires", countdown(token.expires_at, now)),
                ("refreshed", refreshed_word(token, now) or NOTHING),
            ):
                if self._shown.get((name, column)) != value:
                    self.table.update_cell(name, column, value)
                    self._shown[(name, column)] = value
        self._show_detail()

    # --- data ---------------------------------------------------------------------------------

    def daemon_connected(self) -> None:
        self.load()

    @work(exclusive=True, group="tokens", exit_on_error=False)
    async def load(self) -> None:
        tokens = [t for t in await self.client.list("tokens") if isinstance(t, Token)]
        current = self.current_name()
        self.tokens = {t.name: t for t in tokens}
        self.revealed.clear()
        self.table.clear()
        self._shown.clear()
        self._add_rows(current)
        self._show_detail()

    @work(group="token-fetch", exit_on_error=False)
    async def fetch(self, name: str) -> None:
        try:
            token = await self.client.get("tokens", name)
        except ApiError as exc:
            if exc.status == 404 and name in self.tokens:
                del self.tokens[name]
                self.table.remove_row(name)
                self._show_detail()
                return
            raise
        if isinstance(token, Token):
            self._put(token)

    def _put(self, token: Token) -> None:
        self.tokens[token.name] = token
        self._update_row(token)
        self._show_detail()

    def on_daemon_event(self, event: Event) -> None:
        if isinstance(event, TokenStateChanged | TokenSaved) and event.token in self.tokens:
            self.revealed.pop(event.token, None)
            self.fetch(event.token)
        elif isinstance(event, ResourceChanged):
            for kind, name in event.pairs:
                if kind == "tokens":
                    self.fetch(name)
        elif isinstance(event, Lagged):
            self.load()

    # --- selection and detail -----------------------------------------------------------------

    def current_name(self) -> str | None:
        table = self.table
        if table.row_count == 0:
            return None
        return str(table.coordinate_to_cell_key(table.cursor_coordinate).row_key.value)

    @on(DataTable.RowHighlighted, "#tokens-table")
    def _moved(self) -> None:
        # Revealed secrets stay on screen only while their token is selected.
        current = self.current_name()
        for name in list(self.revealed):
            if name != current:
                del self.revealed[name]
        self._show_detail()

    def _show_detail(self) -> None:
        detail = self.query_one("#token-detail", Static)
        name = self.current_name()
        token = self.tokens.get(name) if name else None
        if token is None:
            detail.update(Text("no tokens" if not self.tokens else NOTHING, style="dim"))
            return
        now = self.clock()
        left = countdown(token.expires_at, now)
        when = "now (expired)" if left == "expired" else f"in {left}"
        detail.update(token_detail(token, self.revealed.get(token.name), when, now))

    # --- actions ------------------------------------------------------------------------------

    def action_reveal(self) -> None:
        name = self.current_name()
        if name is None:
            return
        if name in self.revealed:
            del self.revealed[name]
            self._show_detail()
        else:
            self.reveal(name)

    @work(exclusive=True, group="reveal", exit_on_error=False)
    async def reveal(self, name: str) -> None:
        token = await self.client.get("tokens", name, reveal=True)
        if isinstance(token, Token) and self.current_name() == name:
            self.revealed[name] = dict(token.variables or {})
            self._show_detail()

    def action_refresh(self) -> None:
        name = self.current_name()
        if name is not None:
            self.refresh_now(name)

    @work(group="token-refresh", exit_on_error=False)
    async def refresh_now(self, name: str) -> None:
        self.notify(f"Refreshing {screen_text(name)}…", timeout=2, markup=False)
        token = await self.client.refresh_token(name)
        self.revealed.pop(name, None)
        self._put(token)
        state = token.state.value if token.state else "unknown"
        valid = state == "valid"
        why = f" — {token.last_error}" if token.last_error and not valid else ""
        self.notify(
            screen_text(f"{name}: {state}{why}"),
            # A failed refresh was titled "Token refreshed" (a helper's retest).
            title="Token refreshed" if valid else "Token not refreshed",
            markup=False,
            severity="information" if valid else "warning",
        )

    def action_signin(self, mode: SignInMode) -> None:
        name = self.current_name()
        if name is not None:
            self.apimd.sign_in(name, mode=mode, done=lambda _ok: self._signed_in(name))

    def _signed_in(self, name: str) -> None:
        if name in self.tokens:
            self.fetch(name)

    def action_edit(self) -> None:
        name = self.current_name()
        if name is not None:
            self.apimd.edit_resource("tokens", name)

    def action_edit_auth(self) -> None:
        """The auth setting of the token under the cursor: how a person reaches auth settings."""
        name = self.current_name()
        token = self.tokens.get(name) if name is not None else None
        if token is not None:
            self.apimd.edit_resource("auth", token.auth)

    def action_reload(self) -> None:
        self.load()

    def on_resize(self) -> None:
        if self.is_mounted and self.app.size.width != self._layout_width:
            self._build_columns()
