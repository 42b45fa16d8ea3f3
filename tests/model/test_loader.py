"""Loading project files: YAML 1.2 and JSON, `{env: NAME}`, and every error at once with its line."""

from __future__ import annotations

import json
import string
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from ruamel.yaml import YAML

from apimd.model import Issue, Project, ValidationFailed
from apimd.model.loader import load_project_file, load_project_text, validate_project_data
from tests.model.conftest import Load, LoadIssues

CALL = """\
calls:
  - name: list-orders
    url: https://api.example.com/orders
"""


def by_field(found: list[Issue]) -> dict[str, Issue]:
    return {issue.field: issue for issue in found}


# --- YAML 1.2 ----------------------------------------------------------------------------------


def test_on_no_and_yes_stay_strings(load: Load) -> None:
    project = load(
        """\
        calls:
          - name: toggles
            url: https://example.com
            headers: {on: no, yes: off}
            conditions:
              - {source: header, path: on, op: eq, value: no}
        """
    )
    call = project.calls[0]
    assert call.headers == {"on": "no", "yes": "off"}
    assert call.conditions[0].path == "on"
    assert call.conditions[0].value == "no"


def test_true_and_numbers_become_text_where_a_template_is_expected(load: Load) -> None:
    project = load(
        """\
        calls:
          - name: c
            url: https://example.com
            params: {page: 2, full: true, ratio: 0.5}
        """
    )
    assert project.calls[0].params == {"page": "2", "full": "true", "ratio": "0.5"}


def test_empty_or_comment_only_file_is_an_empty_project(load: Load) -> None:
    assert load("") == Project()
    assert load("# nothing here yet\n") == Project()


def test_top_level_list_is_one_clear_issue(issues: LoadIssues) -> None:
    found = issues("- name: a\n- name: b\n")
    assert len(found) == 1
    assert "must be a mapping of sections" in found[0].message
    assert "not a list" in found[0].message
    assert found[0].file == "project.yaml"
    assert found[0].line == 1


def test_top_level_scalar_is_one_clear_issue(issues: LoadIssues) -> None:
    (issue,) = issues("just some text\n")
    assert "not a string" in issue.message


def test_merge_keys_and_anchors_work(load: Load) -> None:
    project = load(
        """\
        calls:
          - &base
            name: a
            url: https://example.com
            timeout: 5
          - <<: *base
            name: b
        """
    )
    assert [(c.name, c.timeout) for c in project.calls] == [("a", 5), ("b", 5)]


def test_issue_on_a_merged_key_still_gets_a_line(issues: LoadIssues) -> None:
    found = issues(
        """\
        defaults: &d
          timeout: soon
        calls:
          - <<: *d
            name: a
            url: https://example.com
        """
    )
    fields = by_field(found)
    assert fields["calls[0].timeout"].line == 4  # the merging item: the key itself lives above
    assert fields["defaults"].message == "unknown field `defaults`"


def test_aliases_are_expanded_once_not_exponentially(issues: LoadIssues) -> None:
    levels = ["a: &a [x, x, x, x, x, x, x, x, x, x]"]
    for n in range(1, 12):
        prev = chr(ord("a") + n - 1)
        here = chr(ord("a") + n)
        levels.append(f"{here}: &{here} [" + ", ".join([f"*{prev}"] * 10) + "]")
    text = "variables:\n" + "\n".join("  " + line for line in levels) + "\n"
    found = issues(text)  # finishes at once: 10**12 leaves if walked naively
    # Each node counted once, and the document refused where its aliases pass 2,000,000 values
    # (`g`, 11,111,111 of them): loaded, what a call's body holds of it was walked in full.
    assert [(issue.line, issue.message.split(" (")[0]) for issue in found] == [
        (8, "invalid YAML: its aliases expand to more than 2,000,000 values")
    ]


# --- duplicate keys ----------------------------------------------------------------------------


def test_every_duplicate_key_is_reported_with_its_line(issues: LoadIssues) -> None:
    found = issues(
        """\
        calls:
          - name: list-orders
            url: https://api.example.com/orders
            timeout: 5
            timeout: 6
        workflows:
          - name: w
            steps: [list-orders]
        workflows:
          - name: other
            steps: [list-orders]
        """
    )
    assert [(i.line, i.field, i.message) for i in found] == [
        (5, "calls[0].timeout", "duplicate key `timeout` (first at line 4)"),
        (9, "workflows", "duplicate key `workflows` (first at line 6)"),
    ]
    assert found[0].resource == "call 'list-orders'"


def test_duplicate_key_message_never_quotes_the_values(issues: LoadIssues) -> None:
    found = issues(
        """\
        variables:
          TOKEN: {value: first-s3cret-value, secret: true}
          TOKEN: {value: second-s3cret-value, secret: true}
        """
    )
    text = "\n".join(map(str, found))
    assert "s3cret" not in text
    assert "duplicate key `TOKEN`" in text


def test_variable_names_differing_only_in_case_collide(issues: LoadIssues) -> None:
    (issue,) = issues("variables:\n  api_key: a\n  API_KEY: b\n")
    assert issue.field == "variables"
    assert issue.line == 1
    assert "`api_key` and `API_KEY` are the same variable" in issue.message


# --- wrong values ------------------------------------------------------------------------------


def test_wrong_type_is_reported_with_its_line_and_resource(issues: LoadIssues) -> None:
    (issue,) = issues(CALL + "    timeout: soon\n")
    assert issue.line == 4
    assert issue.field == "calls[0].timeout"
    assert issue.resource == "call 'list-orders'"
    assert issue.message == "must be a number (got 'soon')"
    assert str(issue) == (
        "project.yaml:4: calls[0].timeout (call 'list-orders'): must be a number (got 'soon')"
    )


def test_bounds_are_stated_in_plain_words(issues: LoadIssues) -> None:
    (issue,) = issues(CALL + "    timeout: 301\n")
    assert issue.message == "must be at most 300"
    (issue,) = issues(CALL + "    sla: {slow_ms: 0}\n")
    assert issue.message == "must be more than 0"
    assert issue.field == "calls[0].sla.slow_ms"


def test_unknown_field_suggests_the_close_known_one(issues: LoadIssues) -> None:
    (issue,) = issues(CALL + "    timout: 5\n")
    assert issue.message == "unknown field `timout`; did you mean `timeout`?"
    assert issue.line == 4
    (issue,) = issues(CALL + "    jsn: {a: 1}\n")
    assert issue.message == "unknown field `jsn`; did you mean `json`?"  # the alias, not json_body
    (issue,) = issues(CALL + "    colour: blue\n")
    assert issue.message == "unknown field `colour`"
    (issue,) = issues("call:\n  - name: a\n")
    assert issue.message == "unknown field `call`; did you mean `calls`?"


def test_missing_required_field_names_it(issues: LoadIssues) -> None:
    (issue,) = issues("calls:\n  - name: a\n    method: POST\n")
    assert issue.message == "missing required field `url`"
    assert issue.field == "calls[0].url"
    assert issue.line == 2  # the item that lacks it


def test_allowed_values_are_listed(issues: LoadIssues) -> None:
    (issue,) = issues("auth:\n  - name: a\n    type: kerberos\n")
    assert issue.message == (
        "must be 'none', 'basic', 'api_key', 'bearer', 'manual', 'oauth2', 'digest' or"
        " 'aws_sigv4' (got 'kerberos')"
    )
    assert issue.resource == "auth 'a'"
    assert issue.line == 3


def test_names_and_methods_explain_their_pattern(issues: LoadIssues) -> None:
    found = issues("calls:\n  - name: bad name\n    url: u\n    method: GE T\n")
    fields = by_field(found)
    assert fields["calls[0].name"].message.startswith("must be a name: 1–100 characters")
    assert fields["calls[0].method"].message.startswith("must be an HTTP method")


SCHEDULE = CALL + "schedules:\n  - name: s\n    every: 1m\n    targets: [list-orders]\n"


@pytest.mark.parametrize("value", ["5", "everywhere", "{a: 1}"])
def test_a_wrong_locations_says_what_it_accepts(issues: LoadIssues, value: str) -> None:
    (issue,) = issues(SCHEDULE + f"    locations: {value}\n")
    assert issue.field == "schedules[0].locations"
    assert issue.resource == "schedule 's'"
    assert issue.line == 8
    assert issue.message.startswith("must be `all` or a list of location names (got ")
    assert "constrained" not in str(issue) and "literal" not in str(issue)


def test_a_wrong_location_name_is_one_problem_at_the_item(issues: LoadIssues) -> None:
    (issue,) = issues(SCHEDULE + "    locations: [eu, bad loc]\n")
    assert issue.field == "schedules[0].locations[1]"
    assert issue.message == (
        "must be a location name: 1–100 letters, digits and `. _ -` (got 'bad loc')"
    )


def test_a_value_of_no_member_of_a_union_is_one_problem(issues: LoadIssues) -> None:
    (issue,) = issues(CALL + "    tls: {verify: maybe}\n")
    assert (issue.field, issue.message) == (
        "calls[0].tls.verify",
        "must be true, false or `ca_only` (got 'maybe')",
    )
    found = issues(CALL + "    tls: {ca_bundle: 5, client_cert: {path: /x}}\n")
    assert sorted((i.field, i.message) for i in found) == [
        ("calls[0].tls.ca_bundle", "must be PEM text or `{file: PATH}` (got 5)"),
        ("calls[0].tls.client_cert.file", "missing required field `file`"),
        ("calls[0].tls.client_cert.path", "unknown field `path`"),
    ]


def test_a_control_character_in_a_url_or_header_is_refused_at_its_line(
    issues: LoadIssues,
) -> None:
    """A URL or header value holding ESC (YAML's `\\e`) or CR was applied, then failed only when
    sent, and drove the terminal of whoever opened the call's editor (a helper's retest)."""
    found = issues(
        'calls:\n  - name: a\n    url: "https://x/a\\e]0;T\\a"\n'
        '    headers: {X-A: "v\\rw", X-Tab: "a\\tb", "X-\\eB": c}\n'
    )
    assert sorted((i.field, i.line, i.message) for i in found) == [
        (
            "calls[0].headers.X-A",
            4,
            "holds a control character (\\x0d at character 2), which a header cannot carry",
        ),
        (
            "calls[0].headers.X-\\x1bB",
            4,
            "holds a control character (\\x1b at character 3), which a header's name cannot carry",
        ),
        (
            "calls[0].url",
            3,
            "holds a control character (\\x1b at character 12), which a URL cannot carry",
        ),
    ]


def test_an_auths_secret_sent_in_a_header_is_refused_with_a_control_character(
    issues: LoadIssues,
) -> None:
    """A bearer token or an API key holding CR was applied, then every call ended SETUP_ERROR
    (session 12's retest); it is refused at its line, and the message does not show the secret."""
    found = issues(
        "auth:\n"
        '  - {name: b, type: bearer, token: "tok\\r\\nX-Evil: 1"}\n'
        '  - {name: k, type: api_key, key_name: "X-\\eKey", key_value: "k\\x00ey"}\n'
        '  - {name: t, type: bearer, token: "with\\ttab"}\n'
    )
    assert sorted((i.field, i.line, i.message) for i in found) == [
        (
            "auth[0].token",
            2,
            "holds a control character (\\x0d at character 4), which a header cannot carry",
        ),
        (
            "auth[1].key_name",
            3,
            "holds a control character (\\x1b at character 3), which a header's name cannot carry",
        ),
        (
            "auth[1].key_value",
            3,
            "holds a control character (\\x00 at character 2), which an API key (in a header,"
            " a query or a cookie) cannot carry",
        ),
    ]
    assert not any("tok" in i.message or "Evil" in i.message for i in found)


def test_model_level_errors_point_at_the_item(issues: LoadIssues) -> None:
    (issue,) = issues(CALL + "    conditions:\n      - {source: json, path: $.a}\n")
    assert issue.field == "calls[0].conditions[0]"
    assert issue.line == 5
    assert "needs `op`" in issue.message


def test_bad_variable_name_points_at_the_key(issues: LoadIssues) -> None:
    (issue,) = issues("variables:\n  OK: 1\n  1ABC: x\n")
    assert issue.field == "variables.1ABC"
    assert issue.line == 3
    assert "is not a variable name" in issue.message


# --- {env: NAME} -------------------------------------------------------------------------------


def test_env_values_are_resolved_everywhere_a_string_goes(load: Load) -> None:
    environ = {
        "API_KEY": "key-123456",
        "OP_URL": "https://login.example.com",
        "HOOK": "https://hooks.example.com/T0",
        "TIMEOUT": "12",
    }
    project = load(
        """\
        variables:
          API_KEY: {env: API_KEY, secret: true}
          OP: {env: OP_URL}
          PLAIN: {value: {env: OP_URL}}
        calls:
          - name: c
            url: {env: OP_URL}
            timeout: {env: TIMEOUT}
            headers: {X-Key: {env: API_KEY}}
            webhooks:
              - {type: slack, url: {env: HOOK}}
        """,
        environ,
    )
    assert project.variables["API_KEY"].value == "key-123456"
    assert project.variables["API_KEY"].secret is True
    assert project.variables["OP"].value == "https://login.example.com"
    assert project.variables["OP"].secret is False
    assert project.variables["PLAIN"].value == "https://login.example.com"
    call = project.calls[0]
    assert call.url == "https://login.example.com"
    assert call.timeout == 12
    assert call.headers == {"X-Key": "key-123456"}
    assert call.webhooks[0].url == "https://hooks.example.com/T0"


def test_json_body_is_payload_and_never_read_from_env(load: Load) -> None:
    project = load(CALL + "    json: {env: production, nested: {env: staging}}\n", {})
    assert project.calls[0].json_body == {"env": "production", "nested": {"env": "staging"}}


def test_missing_env_var_is_one_issue_at_its_line(issues: LoadIssues) -> None:
    found = issues(
        """\
        variables:
          API_KEY: {env: EXAMPLE_API_KEY, secret: true}
        calls:
          - name: c
            url: {env: ORDERS_URL}
            timeout: {env: ORDERS_TIMEOUT}
        """,
        {"ORDERS_URL": "https://api.example.com"},
    )
    assert [(i.line, i.field, i.message) for i in found] == [
        (2, "variables.API_KEY", "environment variable EXAMPLE_API_KEY is not set"),
        (6, "calls[0].timeout", "environment variable ORDERS_TIMEOUT is not set"),
    ]
    assert found[1].resource == "call 'c'"


def test_env_without_a_name_is_an_issue(issues: LoadIssues) -> None:
    (issue,) = issues(CALL + "    body: {env: [A, B]}\n")
    assert issue.message == "`env` must give the name of an environment variable"
    assert issue.line == 4


@pytest.mark.parametrize("name", ["\ud800\udc00", "A=B", "A\x00B"])
def test_env_with_an_impossible_name_is_an_issue_read_from_os_environ(name: str) -> None:
    text = json.dumps({"calls": [{"name": "c", "url": {"env": name}}]})
    with pytest.raises(ValidationFailed) as failed:
        load_project_text(text)
    assert "not a possible environment variable name" in str(failed.value)


def test_env_is_read_from_os_environ_by_default(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("APIMD_TEST_ORDERS_URL", "https://api.example.com/orders")
    text = "calls:\n  - name: c\n    url: {env: APIMD_TEST_ORDERS_URL}\n"
    assert load_project_text(text).calls[0].url == "https://api.example.com/orders"


def test_env_values_never_appear_in_messages(issues: LoadIssues) -> None:
    environ = {"EVERY": "whenever-you-like", "TIMEOUT": "sooner-or-later"}
    found = issues(
        """\
        calls:
          - name: c
            url: u
            timeout: {env: TIMEOUT}
        schedules:
          - name: s
            every: {env: EVERY}
            targets: [c]
        """,
        environ,
    )
    text = "\n".join(map(str, found))
    assert len(found) == 2
    assert "whenever" not in text
    assert "sooner" not in text
    assert "must be a number (got a string)" in text
    assert "'••••' is not a duration" in text


def test_secret_field_values_never_appear_in_messages(issues: LoadIssues) -> None:
    found = issues(
        """\
        variables:
          TOKEN: {value: hunter2-secret, secret: maybe}
        auth:
          - name: a
            type: basic
            username: u
            password: 12345678
        """
    )
    text = "\n".join(map(str, found))
    assert "hunter" not in text
    assert "maybe" not in text  # nothing inside `variables` is quoted
    assert "12345678" not in text
    assert "auth[0].password (auth 'a'): must be a string (got a number; quote it)" in text


# --- JSON --------------------------------------------------------------------------------------


def test_json_file_loads_with_line_numbers(tmp_path: Path) -> None:
    path = tmp_path / "project.json"
    doc = {"calls": [{"name": "c", "url": "https://example.com", "timeout": "soon"}]}
    path.write_text(json.dumps(doc, indent=2))
    with pytest.raises(ValidationFailed) as failed:
        load_project_file(path, environ={})
    (issue,) = failed.value.issues
    assert issue.file == str(path)
    assert issue.line == 6
    assert issue.field == "calls[0].timeout"


def test_json_ruamel_cannot_read_falls_back_without_lines(tmp_path: Path) -> None:
    # ruamel refuses keys over 1024 characters; json does not.
    long_header = "X-" + "a" * 1100
    doc = {"calls": [{"name": "c", "url": "u", "headers": {long_header: "1"}, "timeout": 5}]}
    path = tmp_path / "project.json"
    path.write_text(json.dumps(doc))
    assert load_project_file(path, environ={}).calls[0].headers == {long_header: "1"}

    doc["calls"][0]["timeout"] = "soon"
    path.write_text(json.dumps(doc))
    with pytest.raises(ValidationFailed) as failed:
        load_project_file(path, environ={})
    (issue,) = failed.value.issues
    assert issue.line is None
    assert issue.field == "calls[0].timeout"
    assert str(issue) == f"{path}: calls[0].timeout (call 'c'): must be a number (got 'soon')"


def test_json_syntax_error_names_the_line(tmp_path: Path) -> None:
    path = tmp_path / "project.json"
    path.write_text('{\n  "calls": [\n    {"name": "c" "url": "u"}\n  ]\n}\n')
    with pytest.raises(ValidationFailed) as failed:
        load_project_file(path, environ={})
    (issue,) = failed.value.issues
    assert issue.line == 3
    assert issue.message.startswith("invalid JSON")


def test_json_pairs_surrogates_like_json_does() -> None:
    project = load_project_text('{"calls": [{"name": "c", "url": "\\ud83d\\ude00"}]}', environ={})
    assert project.calls[0].url == "😀"


# --- syntax ------------------------------------------------------------------------------------


def test_syntax_error_has_its_line(issues: LoadIssues) -> None:
    (issue,) = issues("calls:\n  - name: a\n    url: 'unterminated\n")
    assert issue.message.startswith("invalid YAML")
    assert issue.line == 3 or issue.line == 4
    assert issue.file == "project.yaml"


def test_indentation_error_has_its_line(issues: LoadIssues) -> None:
    (issue,) = issues("calls:\n  - name: a\n   url: b\n")
    assert issue.line == 3
    assert "invalid YAML" in str(issue)


def test_two_documents_are_an_error(issues: LoadIssues) -> None:
    (issue,) = issues("calls: []\n---\nworkflows: []\n")
    assert "single document" in issue.message


def test_wrongly_tagged_value_is_reported_without_its_text(issues: LoadIssues) -> None:
    (issue,) = issues("variables:\n  PASSWORD: !!int hunter2\n")
    assert "hunter2" not in str(issue)
    assert issue.message.startswith("invalid YAML")


def test_unreadable_file_is_an_issue(tmp_path: Path) -> None:
    with pytest.raises(ValidationFailed) as failed:
        load_project_file(tmp_path / "missing.yaml")
    assert "cannot read the file" in str(failed.value)
    path = tmp_path / "latin1.yaml"
    path.write_bytes(b"description: caf\xe9\n")
    with pytest.raises(ValidationFailed, match="not UTF-8"):
        load_project_file(path)


# --- every error at once -----------------------------------------------------------------------


def test_every_error_at_once(issues: LoadIssues) -> None:
    found = issues(
        """\
        version: 1
        variables:
          API_KEY: {env: EXAMPLE_API_KEY, secret: true}
        auth:
          - name: example
            type: oauth
        calls:
          - name: list-orders
            url: https://api.example.com/orders
            timout: 5
          - name: create-order
            url: https://api.example.com/orders
            method: POST
            timeout: soon
            method: PUT
        """
    )
    assert [(i.line, i.field, i.message) for i in found] == [
        (3, "variables.API_KEY", "environment variable EXAMPLE_API_KEY is not set"),
        (
            6,
            "auth[0].type",
            "must be 'none', 'basic', 'api_key', 'bearer', 'manual', 'oauth2', 'digest' or"
            " 'aws_sigv4' (got 'oauth')",
        ),
        (10, "calls[0].timout", "unknown field `timout`; did you mean `timeout`?"),
        (14, "calls[1].timeout", "must be a number (got 'soon')"),
        (15, "calls[1].method", "duplicate key `method` (first at line 13)"),
    ]
    assert [i.resource for i in found] == [
        None,
        "auth 'example'",
        "call 'list-orders'",
        "call 'create-order'",
        "call 'create-order'",
    ]


def test_validation_failed_lists_every_issue_one_per_line(issues: LoadIssues) -> None:
    text = CALL + "    timeout: 400\n  - name: b\n    url: u\n    timeout: 0\n"
    with pytest.raises(ValidationFailed) as failed:
        load_project_text(text, filename="project.yaml", environ={})
    assert str(failed.value).splitlines() == [
        "2 problems found:",
        "  project.yaml:4: calls[0].timeout (call 'list-orders'): must be at most 300",
        "  project.yaml:7: calls[1].timeout (call 'b'): must be more than 0",
    ]


def test_reference_errors_come_with_lines(issues: LoadIssues) -> None:
    (issue,) = issues(CALL + "    token: nope\n")
    assert (issue.line, issue.field, issue.message) == (4, "calls[0].token", "unknown token 'nope'")


# --- already-parsed data (REST bodies) ---------------------------------------------------------


def test_validate_project_data_without_lines() -> None:
    data = {"calls": [{"name": "c", "url": {"env": "URL"}, "timeout": 500}]}
    with pytest.raises(ValidationFailed) as failed:
        validate_project_data(data, environ={})
    assert [str(i) for i in failed.value.issues] == [
        "calls[0].url (call 'c'): environment variable URL is not set",
        "calls[0].timeout (call 'c'): must be at most 300",
    ]
    project = validate_project_data(data | {"calls": [{"name": "c", "url": "u"}]}, environ={})
    assert project.calls[0].url == "u"


def test_validate_project_data_with_a_ruamel_tree_for_lines() -> None:
    tree = YAML(typ="rt").load(CALL + "    timeout: 500\n")
    with pytest.raises(ValidationFailed) as failed:
        validate_project_data(tree, filename="body", lines=tree, environ={})
    assert str(failed.value.issues[0]) == (
        "body:4: calls[0].timeout (call 'list-orders'): must be at most 300"
    )


def test_validate_project_data_refuses_a_non_mapping() -> None:
    with pytest.raises(ValidationFailed, match="must be a mapping"):
        validate_project_data([1, 2], environ={})
    assert validate_project_data(None, environ={}) == Project()


# --- never anything but ValidationFailed -------------------------------------------------------

_KEYS = [
    "version",
    "variables",
    "auth",
    "tokens",
    "calls",
    "workflows",
    "schedules",
    "name",
    "url",
    "type",
    "steps",
    "targets",
    "every",
    "cron",
    "timezone",
    "timeout",
    "tags",
    "conditions",
    "webhooks",
    "source",
    "op",
    "alerts",
    "env",
    "secret",
    "value",
    "json",
    "headers",
    "grant",
    "callback",
    "sla",
    "<<",
]
_scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(10**20), max_value=10**20)
    | st.floats()
    | st.sampled_from(["1m", "0s", "* * * * *", "UTC", "Mars/Base", "apimd:timeout:x", "a"])
    | st.text(max_size=8)
)
_values = st.recursive(
    _scalars,
    lambda inner: (
        st.lists(inner, max_size=4)
        | st.dictionaries(st.sampled_from(_KEYS) | st.text(max_size=4), inner, max_size=5)
    ),
    max_leaves=25,
)
_resources = st.lists(st.dictionaries(st.sampled_from(_KEYS), _values, max_size=6), max_size=3)
_documents = st.dictionaries(st.sampled_from(_KEYS[:7]), _resources | _values, max_size=4)
_YAML_BITS = [
    "calls:",
    "- ",
    "  ",
    "\n",
    ": ",
    "{",
    "}",
    "[",
    "]",
    ",",
    "&a ",
    "*a",
    "<<: ",
    "!!int ",
    "!!binary ",
    "!foo ",
    "? ",
    "|",
    ">",
    "'",
    '"',
    "#",
    "---\n",
    "%YAML 1.1\n",
    "\t",
    "\\u",
    "{env: X}",
    "name: a",
    "url: u",
    "every: 1m",
    "cron: ",
    "on",
    "no",
    "~",
    "2024-01-01",
    "\x00",
    "\ufeff",
]
_yamlish = st.lists(
    st.sampled_from(_YAML_BITS) | st.text(string.printable, max_size=4), max_size=40
).map("".join)


def _loads_or_fails_cleanly(text: str) -> None:
    try:
        load_project_text(text, environ={"X": "x-value"})
    except ValidationFailed as failed:
        assert failed.issues
        assert all(isinstance(issue, Issue) for issue in failed.issues)
        str(failed)


@settings(max_examples=300, deadline=None, database=None)
@given(_yamlish)
def test_yamlish_text_never_raises_anything_but_validation_failed(text: str) -> None:
    _loads_or_fails_cleanly(text)


@settings(
    max_examples=300,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow],
)
@given(_documents, st.booleans())
def test_structured_documents_never_raise_anything_but_validation_failed(
    document: dict[str, object], as_json: bool
) -> None:
    if as_json:
        text = json.dumps(document)
    else:
        stream: list[str] = []
        yaml = YAML(typ="rt")
        yaml.dump(document, _Sink(stream))
        text = "".join(stream)
    _loads_or_fails_cleanly(text)


class _Sink:
    def __init__(self, parts: list[str]) -> None:
        self.parts = parts

    def write(self, text: str | bytes) -> None:
        self.parts.append(text.decode() if isinstance(text, bytes) else text)


# --- one pass: shape errors and unknown references together (issue 10, point 11) ---------------

SHAPE_AND_REFERENCES = """\
calls:
  - name: get-token
    url: https://x.example
    timout: 4
  - name: list-orders
    url: https://x.example
    token: mian
tokens:
  - name: main
    auth: sso
    bogus: 1
workflows:
  - name: flow
    steps: [get-tokn, list-orders]
schedules:
  - name: s
    every: 10s
    targets: [flow, list-ordres]
"""


def test_shape_errors_and_unknown_references_come_in_one_pass(issues: LoadIssues) -> None:
    found = issues(SHAPE_AND_REFERENCES)
    assert [(i.line, i.field, i.message) for i in found] == [
        (4, "calls[0].timout", "unknown field `timout`; did you mean `timeout`?"),
        # `main` is the name of a token that is itself invalid: still a name to suggest.
        (7, "calls[1].token", "unknown token 'mian'; did you mean 'main'?"),
        (11, "tokens[0].bogus", "unknown field `bogus`"),
        (14, "workflows[0].steps[0]", "unknown call 'get-tokn'; did you mean 'get-token'?"),
        (
            18,
            "schedules[0].targets[1]",
            "unknown call or workflow 'list-ordres'; did you mean 'list-orders'?",
        ),
    ]


def test_without_cross_check_known_names_still_bring_references_in_the_same_pass() -> None:
    with pytest.raises(ValidationFailed) as failed:
        load_project_text(
            SHAPE_AND_REFERENCES,
            environ={},
            cross_check=False,
            known={"auth": {"sso"}, "calls": {"get-tokn"}},
        )
    messages = [i.message for i in failed.value.issues]
    assert "unknown call or workflow 'list-ordres'; did you mean 'list-orders'?" in messages
    assert not any("get-tokn" in m for m in messages)  # the daemon holds that one


def test_an_unknown_reference_suggests_the_nearest_name(issues: LoadIssues) -> None:
    (issue,) = issues(
        CALL + "    token: lst-orders\ntokens:\n  - {name: list-order, auth: a}\n"
        "auth:\n  - {name: a, type: none}\n"
    )
    assert issue.message == "unknown token 'lst-orders'; did you mean 'list-order'?"


def test_an_unclosed_quote_is_reported_where_it_opens(issues: LoadIssues) -> None:
    text = (
        "calls:\n  - name: a\n    url: 'unterminated\n    method: GET\n"
        "  - name: b\n    url: http://b\n\n"
    )
    (issue,) = issues(text)
    assert issue.line == 3
    assert "not closed" in issue.message


def test_a_quote_left_open_until_the_next_one_points_at_the_opening_line(
    issues: LoadIssues,
) -> None:
    text = 'calls:\n  - name: a\n    url: "http://x\n    method: GET\n  - name: b\n    url: "http://y"\n'
    (issue,) = issues(text)
    assert issue.line == 3
    assert "runs on to line 6" in issue.message and "quote missing" in issue.message
