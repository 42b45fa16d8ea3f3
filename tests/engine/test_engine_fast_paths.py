"""The engine's shortcuts of session 8 give what the general path gives (issue 18): a run's
cookie jar made when the first cookie arrives, not when the run starts; a run without an order
started as a default order starts; step ids from `uuid4_text`."""

from __future__ import annotations

import asyncio
import dataclasses
import uuid
from http.cookies import SimpleCookie

from hypothesis import given, settings
from hypothesis import strategies as st
from yarl import URL

from apimd.demo.server import RunningServer
from apimd.engine.context import RunContext, RunOrder
from apimd.engine.cookies import RunJar, new_jar, remember, with_jar_cookies
from apimd.engine.template import uuid4_text
from tests.support.projects import run_doc

_JAR_URLS = [
    URL("http://127.0.0.1:8080/a/b"),
    URL("http://example.com/"),
    URL("https://api.example.com/x"),
    URL("http://other.org/a"),
]
_SET_COOKIES = st.sampled_from(
    [
        "sid=1",
        "sid=2; Path=/a",
        "tok=z; Domain=example.com",
        "s=3; Secure",
        "gone=1; Max-Age=0",
        "x=y; Path=/nowhere",
        "",
    ]
)
# Steps of a run: a response at URL i sets a cookie (or none), then a request goes to URL j.
_STEPS = st.lists(st.tuples(st.integers(0, 3), _SET_COOKIES, st.integers(0, 3)), max_size=6)


@settings(max_examples=150, deadline=None)
@given(_STEPS, st.sampled_from(["", "own=1", "sid=mine"]))
def test_a_jar_made_at_the_first_cookie_sends_what_a_jar_made_at_once_sends(
    steps: list[tuple[int, str, int]], own: str
) -> None:
    async def replay() -> None:
        lazy, eager = RunJar(), RunJar()
        eager.jar = new_jar()  # the general path: the jar made when the run starts
        headers = [("Accept", "*/*")] + ([("Cookie", own)] if own else [])
        for answered_at, set_cookie, asked_at in steps:
            cookies = SimpleCookie(set_cookie)
            seen_lazy: dict[str, str] = {}
            seen_eager: dict[str, str] = {}
            remember(lazy, cookies, _JAR_URLS[answered_at], seen_lazy)
            remember(eager, cookies, _JAR_URLS[answered_at], seen_eager)
            assert seen_lazy == seen_eager
            url = _JAR_URLS[asked_at]
            assert with_jar_cookies(headers, lazy, url) == with_jar_cookies(headers, eager, url)
        # The shortcut was taken: no jar until a response set a cookie.
        assert (lazy.jar is None) == all(not SimpleCookie(c) for _, c, _ in steps)

    # Not asyncio.run: it would leave the thread without a current loop for the tests after this.
    loop = asyncio.new_event_loop()
    try:
        loop.run_until_complete(replay())
    finally:
        loop.close()


def test_a_run_without_an_order_starts_as_a_default_order_does() -> None:
    """`Engine.run(name)` makes its context directly; it must be `RunOrder().context()` (a new
    v4 UUID for its id), so a default changed on one side shows here."""
    made = fields_of(RunContext(uuid4_text(), "manual"))
    ordered = fields_of(RunOrder().context())
    for run_id in (made.pop("run_id"), ordered.pop("run_id")):
        assert isinstance(run_id, str)
        assert str(uuid.UUID(run_id)) == run_id and uuid.UUID(run_id).version == 4
    assert made == ordered


def fields_of(ctx: RunContext) -> dict[str, object]:
    return {f.name: getattr(ctx, f.name) for f in dataclasses.fields(ctx)}


async def test_workflow_steps_get_their_own_v4_ids(token_server: RunningServer) -> None:
    """A step's result id is made by `uuid4_text` (not `uuid.uuid4`): the same v4 UUID text,
    one per step, none the run's."""
    base = token_server.url
    doc = {
        "version": 1,
        "calls": [
            {"name": "one", "url": f"{base}/api/status"},
            {"name": "two", "url": f"{base}/api/status"},
        ],
        "workflows": [{"name": "flow", "steps": ["one", "two"]}],
    }
    result = await run_doc(doc, "flow")
    ids = [step.id for step in result.steps]
    assert len({*ids, result.id}) == 3
    for step_id in ids:
        assert str(uuid.UUID(step_id)) == step_id and uuid.UUID(step_id).version == 4
