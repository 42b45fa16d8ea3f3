"""Hypothesis fuzz of project files and REST bodies (SPEC §2 apply semantics, §6 errors, §7).

WHAT IT PROVES: whatever a project file holds (project-shaped documents with wrong types,
unknown fields and dangling references, YAML quirks: tags, anchors, merges, duplicate keys,
deep nesting, control characters, several documents), the loader either returns a project or
raises `ValidationFailed`, never anything else; `apimd apply FILE` against a real daemon exits
0 or 2, never with a traceback, and a file it refuses changes nothing. Whatever bodies
`PUT /v1/calls/x`, `POST /v1/apply` and `POST /v1/calls/x/run` get over the socket (JSON of
the right shape with wrong values, other JSON, bytes that are not JSON, odd content types), the
daemon answers 2xx or a 4xx `{"error": {code, message}}`, never a 5xx or a traceback, and after
every refused apply or PUT the export is exactly what it was (no partial apply). The daemon log
holds no traceback afterwards.

Nothing generated reaches the network: every URL is 127.0.0.1:9 (refused at once). Under CI
the examples are derandomized (the same every run); `APIMD_FUZZ_SCALE=N` multiplies their
number for a deeper search."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from ruamel.yaml import YAML

from apimd.model.errors import ValidationFailed
from apimd.model.loader import load_project_text
from apimd.model.project import Project
from tests.daemon.hostile_input import deep_json, surrogate_texts, with_surrogate
from tests.reliability.conftest import DaemonProcess, Reply, running_daemon

SAFE_URL = "http://127.0.0.1:9/fuzz"
# `APIMD_FUZZ_SCALE=10` for a deeper search than CI's.
SCALE = float(os.environ.get("APIMD_FUZZ_SCALE", "1"))
LOADER_EXAMPLES = int(500 * SCALE)
CLI_EXAMPLES = int(20 * SCALE)
REST_EXAMPLES = int(200 * SCALE)
URL_KEYS = frozenset({"url", "token_url", "authorize_url", "device_authorization_url"})

FUZZ = settings(
    deadline=None,
    database=None,
    # CI replays the same examples run after run, so its verdict is about the change under
    # test; anywhere else each run searches afresh.
    derandomize=bool(os.environ.get("CI")),
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)

# --- what gets generated -------------------------------------------------------------------------

NAMES = ["x", "y", "w", "t", "a", "s", "X", "x.y:z-1", "-bad", "", "a" * 101, "é"]
STRINGS = [
    "",
    "GET",
    "post",
    "G E T",
    SAFE_URL,
    "not a url",
    "%%X%%",
    "%%NOPE%%",
    "{{ X }}",
    "__X__",
    "%%%%",
    "1s",
    "0s",
    "0.5s",
    "5m",
    "-1s",
    "1x",
    "*/5 * * * *",
    "61 * * * *",
    "UTC",
    "Mars/Olympus",
    "$.a",
    "a.b",
    "$[",
    "$..*",
    "$[?match(@, '(a|aa)+$')]",
    "/r/i",
    "count(//*)",
    "(a|aa)+$",
    "[",
    "••••",
    "apimd:browser",
    "apimd:timeout:0",
    "apimd:timeout:2",
    "apimetrics:workflow_mutex",
    "PASS",
    "FAIL",
    "NEEDS_SIGN_IN",
    "valid",
    "\x00",
    "\ud800",
    "\u202e",
    "line\nbreak",
    "a" * 300,
]
keys = st.sampled_from(["name", "value", "secret", "env", "type", "url", "x", "", "0"]) | st.text(
    max_size=8
)
scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats()
    | st.sampled_from(STRINGS)
    | st.text(max_size=12)
)
anything = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(keys, inner, max_size=3),
    max_leaves=8,
)
names = st.sampled_from(NAMES) | st.text(max_size=6)
env_refs = st.fixed_dictionaries(
    {"env": st.sampled_from(["PATH", "APIMD_FUZZ_UNSET", "", "HOME"]) | st.text(max_size=5)},
    optional={"secret": st.booleans() | anything},
)


def _field(plausible: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    """Mostly a plausible value, sometimes anything at all."""
    return st.one_of(*[plausible] * 5, anything)


def _resource(
    fields: dict[str, st.SearchStrategy[Any]], required: tuple[str, ...] = ()
) -> st.SearchStrategy[Any]:
    """A resource-shaped mapping (a valid name, the `required` fields, some of the others,
    now and then an unknown field), or now and then anything at all."""
    shaped = st.fixed_dictionaries(
        {
            "name": st.one_of(*[st.sampled_from(NAMES[:6])] * 5, names),
            **{key: _field(fields[key]) for key in required},
        },
        optional={
            **{key: _field(value) for key, value in fields.items() if key not in required},
            "description": _field(st.text(max_size=10)),
            "tags": _field(st.lists(st.sampled_from(STRINGS), max_size=3)),
            "bogus": anything,
        },
    )
    return st.one_of(*[shaped] * 7, anything)


templates = st.sampled_from(STRINGS) | st.text(max_size=10) | env_refs
string_maps = st.dictionaries(st.sampled_from(STRINGS) | st.text(max_size=6), templates, max_size=3)
name_lists = st.lists(names, max_size=3)
conditions = _resource(
    {
        "source": st.sampled_from(
            ["status", "header", "body", "json", "xml", "response_time", "size", "nope"]
        ),
        "path": templates,
        "op": st.sampled_from(["exists", "not_exists", "eq", "ne", "lt", "contains", "matches"]),
        "value": anything,
        "save_as": st.sampled_from(["ACCESS_TOKEN", "X", "EXPIRES_IN", "1x", "a b"]),
        "on_fail": st.sampled_from(["fail", "warning", "explode"]),
        "namespaces": string_maps,
    }
)
webhooks = _resource(
    {
        "type": st.sampled_from(
            ["save_auth_token", "save_variables", "run_call", "run_workflow", "http", "slack", "x"]
        ),
        "token": names,
        "call": names,
        "workflow": names,
        "url": templates,
        "names": name_lists,
        "alerts": st.lists(
            st.sampled_from(["PASS", "FAIL", "WARNING", "ERROR", "NEEDS_SIGN_IN", "x"])
        ),
        "fails_in_a_row": st.integers(min_value=-1, max_value=2000),
        "resolved": st.booleans(),
    }
)
calls = _resource(
    {
        "method": st.sampled_from(["GET", "post", "PATCH", "", "G E T"]),
        "url": st.sampled_from([SAFE_URL, SAFE_URL, "%%X%%", "not a url", ""]) | templates,
        "headers": string_maps,
        "params": string_maps,
        "body": templates,
        "json": anything,
        "form": string_maps,
        "auth": names,
        "token": names,
        "timeout": st.floats(min_value=-1, max_value=400) | st.integers(-1, 400),
        "follow_redirects": st.booleans(),
        "keepalive": st.booleans(),
        "sla": st.dictionaries(st.sampled_from(["slow_ms", "warn_ms", "fail_ms", "x"]), scalars),
        "conditions": st.lists(conditions, max_size=3),
        "webhooks": st.lists(webhooks, max_size=2),
    },
    required=("url",),
)
auths = _resource(
    {
        "type": st.sampled_from(["none", "basic", "api_key", "bearer", "manual", "oauth2", "x"]),
        "username": templates,
        "password": templates,
        "key_name": templates,
        "key_value": templates,
        "in": st.sampled_from(["header", "query", "body"]),
        "token": templates,
        "client_id": templates,
        "client_secret": templates,
        "grant": st.sampled_from(["client_credentials", "authorization_code", "device_code", "x"]),
        "token_url": templates,
        "authorize_url": templates,
        "refresh_workflow": names,
        "signin_workflow": names,
        "callback": st.dictionaries(st.sampled_from(["call", "workflow"]), names, max_size=2),
        "refresh_skew": scalars,
        "webhooks": st.lists(webhooks, max_size=2),
    }
)
tokens = _resource(
    {
        "auth": names,
        "headers": string_maps,
        "params": string_maps,
        "variables": st.dictionaries(st.sampled_from(["ACCESS_TOKEN", "a", "A", "1"]), templates),
        "state": st.sampled_from(["valid", "needs_sign_in", "x"]),
        "expires_at": scalars,
    },
    required=("auth",),
)
workflows = _resource(
    {"steps": name_lists, "stop_on_failure": st.booleans(), "variables": string_maps},
    required=("steps",),
)
schedules = _resource(
    {
        "every": st.sampled_from(["1s", "0s", "2m", "x", "-5s"]) | scalars,
        "cron": st.sampled_from(["*/5 * * * *", "61 * * * *", "* * *", "0 0 31 2 *"]),
        "timezone": st.sampled_from(["UTC", "Europe/Paris", "Mars/Olympus", ""]),
        "targets": name_lists,
        "enabled": st.booleans() | scalars,
        "jitter": scalars,
    },
    required=("targets",),
)
variables = st.dictionaries(
    st.sampled_from(["X", "x", "A_B", "1X", "", "TOKEN"]) | st.text(max_size=5),
    templates | st.fixed_dictionaries({"value": templates}, optional={"secret": anything}),
    max_size=3,
)
projects = st.fixed_dictionaries(
    {},
    optional={
        "version": _field(st.just(1)),
        "variables": _field(variables),
        "auth": _field(st.lists(auths, max_size=2)),
        "tokens": _field(st.lists(tokens, max_size=2)),
        "calls": _field(st.lists(calls, max_size=3)),
        "workflows": _field(st.lists(workflows, max_size=2)),
        "schedules": _field(st.lists(schedules, max_size=2)),
        "extra": anything,
    },
)


def safe(value: Any) -> Any:
    """`value` with every URL pointed at 127.0.0.1:9 (templates and env references kept)."""
    if isinstance(value, dict):
        return {
            k: SAFE_URL
            if k in URL_KEYS and isinstance(v, str) and not v.startswith("%%")
            else safe(v)
            for k, v in value.items()
        }
    if isinstance(value, list):
        return [safe(v) for v in value]
    return value


def _yaml(data: Any) -> str:
    out = io.StringIO()
    try:
        YAML().dump(data, out)
    except Exception:  # something ruamel cannot represent: JSON is YAML too
        return json.dumps(data)
    return out.getvalue()


QUIRKS = [
    "",
    "\ufeff",
    "%YAML 1.1\n---\n",
    "---\n",
    "calls: []\ncalls: []\n",
    "base: &b {url: " + SAFE_URL + "}\ncalls:\n  - <<: *b\n    name: m\n",
    "calls:\n  - *undefined\n",
    "x: !!python/object/apply:os.system ['true']\n",
    "x: !!int abc\n",
    "x: !!binary AAAA\n",
    "x: !custom 1\n",
    "on: yes\nno: off\n",
    "\t- tab\n",
    "x: [" * 200 + "]" * 200 + "\n",
    "x: \x07\n",
    "? [a, b]\n: c\n",
    "...\n---\nversion: 1\n",
    "{" * 3000,
    '{"calls": [], "calls": []}',
]


@st.composite
def project_texts(draw: st.DrawFn) -> str:
    """A project file: a generated document as JSON or YAML, with a quirk before or after it,
    or arbitrary text."""
    data = safe(draw(projects))
    how = draw(st.sampled_from(["json", "yaml", "yaml", "quirk-before", "quirk-after", "text"]))
    if how == "json":
        return json.dumps(data, indent=draw(st.sampled_from([None, 2])))
    if how == "text":
        return draw(st.text(max_size=200))
    quirk = draw(st.sampled_from(QUIRKS))
    body = _yaml(data)
    return quirk + body if how == "quirk-before" else body + quirk


# --- the loader ----------------------------------------------------------------------------------


@settings(FUZZ, max_examples=LOADER_EXAMPLES)
@given(text=project_texts())
def test_loader_returns_a_project_or_validation_failed(text: str) -> None:
    try:
        project = load_project_text(text, filename="fuzz.yaml", environ={"PATH": "/usr/bin"})
    except ValidationFailed as exc:
        event("refused")
        assert exc.issues, "a refusal says what is wrong"
        for issue in exc.issues:
            assert issue.message.strip()
            assert "Traceback" not in issue.message
        return
    event("loaded")
    assert isinstance(project, Project)


def test_deep_nesting_is_refused_quickly() -> None:
    clock = time.perf_counter()
    with pytest.raises(ValidationFailed, match="nested too deeply"):
        load_project_text("x: " + "[" * 3000, filename="deep.yaml")
    assert time.perf_counter() - clock < 1.0


def _alias_bomb(levels: int) -> str:
    """A call's JSON body whose anchors, each a list of nine aliases of the one before, expand to
    9 ** `levels` values (a helper's attack: nine levels hung `apimd apply` for minutes)."""
    lines = ["version: 1", "calls:", "  - name: c", "    url: http://127.0.0.1:9/x"]
    lines.append("    json: &a0 [" + ", ".join(['"lol"'] * 9) + "]")
    for level in range(1, levels):
        lines += [f"  - name: c{level}", "    url: http://127.0.0.1:9/x"]
        lines.append(f"    json: &a{level} [" + ", ".join([f"*a{level - 1}"] * 9) + "]")
    return "\n".join(lines) + "\n"


def test_an_alias_bomb_is_refused_quickly_with_its_line() -> None:
    clock = time.perf_counter()
    with pytest.raises(ValidationFailed, match="aliases expand to more than") as refused:
        load_project_text(_alias_bomb(9), filename="bomb.yaml")
    assert time.perf_counter() - clock < 1.0
    assert [(i.file, i.line) for i in refused.value.issues] == [("bomb.yaml", 23)]
    with pytest.raises(ValidationFailed, match="an alias refers to the collection holding it"):
        load_project_text("version: 1\nvariables: &v {A: [1, *v]}\n", filename="loop.yaml")
    # Few values, each a long text (a helper's retest: minutes of template checks).
    text = "x" * 100_000
    strings = f'version: 1\nvariables:\n  T: &t "{text}"\n  L1: &l1 [{", ".join(["*t"] * 50)}]\n'
    strings += f"  L2: &l2 [{', '.join(['*l1'] * 50)}]\n"
    clock = time.perf_counter()
    with pytest.raises(ValidationFailed, match="aliases expand to more than") as refused:
        load_project_text(strings, filename="strings.yaml")
    assert time.perf_counter() - clock < 1.0
    assert [i.line for i in refused.value.issues] == [5]
    # Aliases within bounds load as before (four levels: 6,561 values in the last body).
    project = load_project_text(_alias_bomb(4), filename="fine.yaml")
    assert len(project.calls) == 4


# --- the command line and the REST API against a real daemon ----------------------------------


@pytest.fixture(scope="module")
def fuzzed_daemon() -> Iterator[DaemonProcess]:
    with running_daemon() as daemon:
        daemon.http.json(
            "POST",
            "/v1/apply",
            {"version": 1, "calls": [{"name": "x", "url": SAFE_URL, "timeout": 2}]},
        )
        yield daemon
        log = daemon.log_text()
        assert "Traceback" not in log, log[-3000:]
        assert "unexpected error" not in log, log[-3000:]


def _export(daemon: DaemonProcess) -> Any:
    return daemon.http.json("GET", "/v1/export?secrets=true")


@pytest.mark.timeout(300)  # 20 CLI processes; a loaded 2-core machine needs more than 120 s
@settings(FUZZ, max_examples=CLI_EXAMPLES)
@given(text=project_texts())
def test_cli_apply_exits_0_or_2_and_never_half_applies(
    fuzzed_daemon: DaemonProcess, text: str
) -> None:
    before = _export(fuzzed_daemon)
    with tempfile.NamedTemporaryFile("w", suffix=".yaml", dir="/tmp", delete=False) as file:
        file.write(text)
    try:
        done = subprocess.run(
            [sys.executable, "-m", "apimd", "apply", file.name],
            env=fuzzed_daemon.env,
            capture_output=True,
            text=True,
            timeout=60,
            stdin=subprocess.DEVNULL,
        )
    finally:
        os.unlink(file.name)
    event(f"exit {done.returncode}")
    assert "Traceback" not in done.stderr, done.stderr
    assert done.returncode in (0, 2), (done.returncode, done.stdout, done.stderr)
    if done.returncode == 2:
        assert done.stderr.strip(), "exit 2 with no message"
        assert _export(fuzzed_daemon) == before, "a refused file changed something"


def _send_and_check_refusal(
    daemon: DaemonProcess, method: str, path: str, body: tuple[bytes, str]
) -> None:
    """Send `body` (bytes, content type); the answer is clear, and a refusal changed nothing."""
    before = _export(daemon)
    reply = daemon.http.request(method, path, body[0], content_type=body[1])
    _assert_clear_answer(reply, f"{method} {path} {body!r}")
    if reply.status >= 400:
        assert _export(daemon) == before


def _assert_clear_answer(reply: Reply, what: str) -> None:
    event(f"HTTP {reply.status}")
    text = reply.body.decode(errors="replace")
    assert reply.status < 500, f"{what}: {reply.status} {text[:1000]}"
    assert "Traceback" not in text, f"{what}: {text[:1000]}"
    document = reply.json()
    if reply.status >= 400:
        error = document["error"]
        assert isinstance(error["code"], str) and error["code"], f"{what}: {text[:500]}"
        assert isinstance(error["message"], str) and error["message"], f"{what}: {text[:500]}"


def _bodies(documents: st.SearchStrategy[Any]) -> st.SearchStrategy[tuple[bytes, str]]:
    """(body, Content-Type): mostly JSON of `documents`, else other JSON or not JSON at all."""
    as_json = documents.map(lambda d: json.dumps(safe(d)).encode())
    other = st.one_of(
        anything.map(lambda d: json.dumps(d).encode()),
        st.binary(max_size=64),
        st.sampled_from([b"", b"   ", b"{", b"[1,", b"null", b"\xff\xfe", b'{"a": NaN}', b"1e999"]),
        deep_json,
        st.builds(with_surrogate, documents.map(safe), surrogate_texts),
    )
    content_types = st.sampled_from(
        ["application/json"] * 6 + ["text/plain", "", "application/x-www-form-urlencoded", "a/b; x"]
    )
    return st.tuples(st.one_of(as_json, as_json, as_json, other), content_types)


def _named_x(document: Any) -> Any:
    """The body of PUT /v1/calls/x names `x` (or nothing): else it is refused for that alone."""
    return {**document, "name": "x"} if isinstance(document, dict) else document


@settings(FUZZ, max_examples=REST_EXAMPLES)
@given(body=_bodies(st.one_of(calls.map(_named_x), calls.map(_named_x), calls)))
def test_put_call_answers_clearly_and_refusals_change_nothing(
    fuzzed_daemon: DaemonProcess, body: tuple[bytes, str]
) -> None:
    _send_and_check_refusal(fuzzed_daemon, "PUT", "/v1/calls/x", body)


@settings(FUZZ, max_examples=REST_EXAMPLES)
@given(body=_bodies(projects))
def test_apply_answers_clearly_and_never_half_applies(
    fuzzed_daemon: DaemonProcess, body: tuple[bytes, str]
) -> None:
    _send_and_check_refusal(fuzzed_daemon, "POST", "/v1/apply", body)


run_requests = st.fixed_dictionaries(
    {},
    optional={
        "variables": _field(st.dictionaries(st.sampled_from(["X", "x", "1", ""]), templates)),
        "interactive": _field(st.booleans()),
        "wait": _field(st.booleans()),
        "extra": anything,
    },
)


@settings(FUZZ, max_examples=REST_EXAMPLES)
@given(body=_bodies(run_requests))
def test_run_answers_clearly(fuzzed_daemon: DaemonProcess, body: tuple[bytes, str]) -> None:
    # `x` may have been replaced by the PUT fuzz, but always by a valid call.
    reply = fuzzed_daemon.http.request("POST", "/v1/calls/x/run", body[0], content_type=body[1])
    _assert_clear_answer(reply, f"POST /v1/calls/x/run {body!r}")
    assert reply.status in (200, 202) or 400 <= reply.status < 500
