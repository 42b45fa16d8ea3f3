"""Templates (SPEC §3): the three reference forms, escapes, lookup order, JSON and system variables."""

from __future__ import annotations

import json
import re
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import quote

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from apimd.engine.errors import SetupError, UnknownVariable
from apimd.engine.template import (
    Scope,
    compile_url,
    is_literal,
    referenced_variables,
    render,
    render_general,
    render_json,
    render_url,
    single_reference,
    system_variables,
    url_path_value,
    url_query_value,
    uuid4_text,
)

FAST = settings(max_examples=200, deadline=None)

NAMES = st.from_regex(r"\A[A-Za-z_][A-Za-z0-9_]{0,8}\Z")
# Text that cannot start or close a reference, so it never interferes with one placed next to it.
PLAIN = st.text(alphabet=st.characters(exclude_characters="%{}_", exclude_categories=["Cs"]))
TOKENISH = st.text(alphabet="%{}_ \taAbB9", max_size=30)


def scope(**values: str) -> Scope:
    return Scope({name.upper(): value for name, value in values.items()})


# --- the three forms ------------------------------------------------------------------------------


def test_percent_reference_is_substituted() -> None:
    assert render("%%HOST%%/v1", scope(HOST="https://api"), "url") == "https://api/v1"


def test_dunder_reference_is_substituted() -> None:
    assert render("Bearer __TOKEN__", scope(TOKEN="abc"), "h") == "Bearer abc"


@pytest.mark.parametrize(
    "template", ["{{NAME}}", "{{ NAME }}", "{{  NAME}}", "{{NAME   }}", "{{\tNAME\t}}"]
)
def test_brace_reference_allows_spaces_inside(template: str) -> None:
    assert render(template, scope(NAME="v"), "body") == "v"


def test_brace_reference_does_not_allow_newlines_inside() -> None:
    assert render("{{\nNAME\n}}", scope(NAME="v"), "body") == "{{\nNAME\n}}"


@pytest.mark.parametrize("template", ["%%api_key%%", "%%Api_Key%%", "{{ api_KEY }}", "__aPi_kEy__"])
def test_names_are_case_insensitive(template: str) -> None:
    assert render(template, Scope({"API_KEY": "k"}), "url") == "k"


def test_names_may_start_with_underscore_and_contain_digits() -> None:
    variables = Scope({"_X1": "a", "V_2_B": "b"})
    assert render("%%_x1%%-{{v_2_b}}", variables, "url") == "a-b"


@pytest.mark.parametrize("template", ["%%1ABC%%", "%%A-B%%", "%%A B%%", "{{ 9 }}", "%%%", "%%"])
def test_invalid_names_are_left_as_written(template: str) -> None:
    assert render(template, scope(), "url") == template


def test_empty_value_is_a_hit() -> None:
    assert render("[%%EMPTY%%]", scope(EMPTY=""), "url") == "[]"


def test_text_without_references_is_returned_unchanged() -> None:
    text = 'plain {"json": [1, 2]} 100% done'
    assert render(text, scope(), "body") == text


# --- escapes and tokenization -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("template", "expected"),
    [
        ("%%%%", "%%"),
        ("100%%%%", "100%%"),
        ("%%A%%%%B%%", "12"),  # two adjacent references, not an escape in the middle
        ("%%%%A%%", "%%A%%"),  # the escape wins at position 0; `A%%` is plain text
        ("%%%%%%A%%", "%%1"),  # escape, then a reference
        ("%%A%%%%", "1%%"),  # a reference, then a lone `%%` (not an escape: needs four)
        ("%%A%%%%%%%%", "1%%%%"),  # a reference, then an escape, then a lone `%%`
        ("%%%%%%%%", "%%%%"),  # two escapes
        ("%% A %%", "%% A %%"),  # not a name
        ("{{{A}}}", "{1}"),  # the reference starts at the second brace
        ("{{A}}{{ b }}", "12"),
        ("%%A%%__B__{{A}}", "121"),
        ("__A____B__", "12"),  # adjacent dunder references take the shortest names
    ],
)
def test_tokenization_is_left_to_right(template: str, expected: str) -> None:
    assert render(template, scope(A="1", B="2"), "body") == expected


def test_escape_writes_percent_signs_that_are_never_rescanned() -> None:
    assert render("%%%%A%%%%", scope(A="1"), "body") == "%%A%%"


# --- unknown variables ------------------------------------------------------------------------


@pytest.mark.parametrize("template", ["x %%missing%% y", "x {{ Missing }} y", "{{missing}}"])
def test_unknown_percent_or_brace_reference_raises(template: str) -> None:
    with pytest.raises(UnknownVariable) as raised:
        render(template, scope(OTHER="x"), "headers.X-Api-Key")
    assert raised.value.variable == "MISSING"
    assert raised.value.where == "headers.X-Api-Key"
    assert "MISSING" in str(raised.value)
    assert "headers.X-Api-Key" in str(raised.value)
    assert isinstance(raised.value, SetupError)


@pytest.mark.parametrize("template", ["__init__.py", "__MISSING__", "a __x__ b", "__doc__"])
def test_unknown_dunder_reference_stays_as_written(template: str) -> None:
    assert render(template, scope(), "body") == template


def test_unknown_dunder_next_to_known_reference() -> None:
    assert render("__init__ %%A%%", scope(A="1"), "body") == "__init__ 1"


@pytest.mark.parametrize(
    "template",
    ["created__date__gte", "a__DATE__b", "x__DATE__", "__DATE__x", "user__date__range__lt"],
)
def test_dunder_inside_an_identifier_is_not_a_reference(template: str) -> None:
    # Django-style lookups must not lose `date` to the DATE system variable.
    assert render(template, scope(DATE="2026-01-01"), "url") == template


@pytest.mark.parametrize(
    ("template", "expected"),
    [("/__DATE__/", "/D/"), ("__DATE__.json", "D.json"), ("(__DATE__)", "(D)")],
)
def test_dunder_next_to_punctuation_is_a_reference(template: str, expected: str) -> None:
    assert render(template, scope(DATE="D"), "url") == expected


# --- not recursive ----------------------------------------------------------------------------


def test_values_are_never_rescanned() -> None:
    variables = scope(A="%%B%%", B="boom", C="{{ B }}", D="__B__", E="%%%%")
    assert render("%%A%% {{C}} __D__ %%E%%", variables, "body") == "%%B%% {{ B }} __B__ %%%%"


def test_value_naming_an_unknown_variable_does_not_raise() -> None:
    assert render("%%A%%", scope(A="%%NOPE%%"), "body") == "%%NOPE%%"


# --- scope ------------------------------------------------------------------------------------


def test_scope_first_layer_wins() -> None:
    layered = Scope({"A": "run"}, {"A": "token", "B": "token"}, {"A": "env", "C": "env"})
    assert layered.lookup("a") == "run"
    assert layered.lookup("B") == "token"
    assert layered.lookup("c") == "env"
    assert layered.lookup("D") is None


def test_scope_empty_string_shadows_later_layers() -> None:
    assert Scope({"A": ""}, {"A": "later"}).lookup("A") == ""


def test_scope_sees_later_changes_to_its_layers() -> None:
    run_variables: dict[str, str] = {}
    variables = Scope(run_variables, {"TOKEN": "old"})
    run_variables["TOKEN"] = "extracted"
    assert render("%%TOKEN%%", variables, "url") == "extracted"


def test_with_layer_first_returns_a_new_scope() -> None:
    base = Scope({"A": "base", "B": "base"})
    override = base.with_layer_first({"A": "over"})
    assert override.lookup("A") == "over"
    assert override.lookup("B") == "base"
    assert base.lookup("A") == "base"


def test_scope_without_layers_knows_nothing() -> None:
    assert Scope().lookup("A") is None


# --- JSON -------------------------------------------------------------------------------------


def test_render_json_substitutes_inside_string_values_only() -> None:
    document = {
        "%%KEY%%": "%%VALUE%%",
        "list": ["{{ value }}", 1, 2.5, True, None, {"deep": "x-__VALUE__-y"}],
        "number": 7,
    }
    rendered = render_json(document, scope(KEY="k", VALUE='say "hi"\\\n'), "json")
    assert rendered == {
        "%%KEY%%": 'say "hi"\\\n',
        "list": ['say "hi"\\\n', 1, 2.5, True, None, {"deep": 'x-say "hi"\\\n-y'}],
        "number": 7,
    }
    assert json.loads(json.dumps(rendered)) == rendered


def test_render_json_keeps_a_reference_value_a_string() -> None:
    assert render_json({"n": "%%N%%"}, scope(N="42"), "json") == {"n": "42"}


def test_render_json_does_not_mutate_its_input() -> None:
    document = {"a": ["%%A%%"]}
    render_json(document, scope(A="1"), "json")
    assert document == {"a": ["%%A%%"]}


@pytest.mark.parametrize("scalar", [None, True, 3, 1.5])
def test_render_json_returns_non_strings_unchanged(scalar: Any) -> None:
    assert render_json(scalar, scope(), "json") is scalar


def test_render_json_unknown_variable_raises_with_where() -> None:
    with pytest.raises(UnknownVariable) as raised:
        render_json({"a": [{"b": "{{ nope }}"}]}, scope(), "json")
    assert (raised.value.variable, raised.value.where) == ("NOPE", "json")


# --- referenced_variables ---------------------------------------------------------------------


def test_referenced_variables_collects_all_forms_upper_cased() -> None:
    text = "%%a%% {{ b_1 }} __C__ %%%%D%% created__date__gte %%a%% __init__"
    assert referenced_variables(text) == {"A", "B_1", "C", "INIT"}


def test_referenced_variables_of_plain_text_is_empty() -> None:
    assert referenced_variables("100%% {x} __ _a_") == set()


# --- system variables -------------------------------------------------------------------------


def test_system_variables_formats() -> None:
    before = datetime.now(UTC).replace(microsecond=0)
    variables = system_variables()
    after = datetime.now(UTC)
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", variables["DATETIME"])
    assert variables["DATETIME"] == f"{variables['DATE']}T{variables['TIME']}Z"
    moment = datetime.strptime(variables["DATETIME"], "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)
    assert before <= moment <= after
    assert int(variables["UNIXTIME"]) == int(moment.timestamp())
    parsed = uuid.UUID(variables["UUID"])
    assert parsed.version == 4
    assert str(parsed) == variables["UUID"]
    assert variables["GUID"] == variables["UUID"]
    assert 1 <= int(variables["RANDINT"]) <= 10000


def test_system_variables_names_default_to_empty() -> None:
    variables = system_variables()
    for name in ("CALL_NAME", "WORKFLOW_NAME", "RUN_ID", "TOKEN_NAME", "AUTH_NAME"):
        assert variables[name] == ""


def test_system_variables_names_given() -> None:
    variables = system_variables(
        call_name="c", workflow_name="w", run_id="r", token_name="t", auth_name="a"
    )
    assert [variables[k] for k in ("CALL_NAME", "WORKFLOW_NAME", "RUN_ID", "TOKEN_NAME")] == [
        "c",
        "w",
        "r",
        "t",
    ]
    assert variables["AUTH_NAME"] == "a"


def test_system_variables_are_all_upper_case_strings() -> None:
    variables = system_variables(call_name="c")
    assert all(name == name.upper() and isinstance(v, str) for name, v in variables.items())


def test_system_variables_fresh_per_call() -> None:
    assert system_variables()["UUID"] != system_variables()["UUID"]


def test_randint_covers_its_range() -> None:
    seen = {int(system_variables()["RANDINT"]) for _ in range(300)}
    assert min(seen) >= 1
    assert max(seen) <= 10000
    assert len(seen) > 250  # it is actually random


def test_system_variables_are_fixed_within_one_call() -> None:
    system = system_variables()
    variables = Scope({}, system)
    assert render("%%UUID%% {{ uuid }} __GUID__", variables, "body") == " ".join(
        [system["UUID"]] * 3
    )
    now = datetime.now(UTC)
    moment = datetime.fromtimestamp(int(system["UNIXTIME"]), UTC)
    assert now - moment < timedelta(minutes=1)


# --- properties -------------------------------------------------------------------------------


@FAST
@given(
    template=st.one_of(st.text(), TOKENISH),
    variables=st.dictionaries(st.sampled_from(["A", "B", "AB", "_"]), st.text(), max_size=4),
)
def test_render_never_crashes(template: str, variables: dict[str, str]) -> None:
    try:
        result = render(template, Scope(variables), "body")
    except UnknownVariable as unknown:
        assert unknown.variable in referenced_variables(template)
        assert unknown.variable not in variables
    else:
        assert isinstance(result, str)


@FAST
@given(
    prefix=PLAIN,
    suffix=PLAIN,
    name=NAMES,
    style=st.sampled_from(["%%{}%%", "{{{{{}}}}}", "{{{{ {} }}}}"]),
    variables=st.dictionaries(NAMES.map(str.upper), st.text(), max_size=5),
)
def test_unknown_reference_raises_naming_it(
    prefix: str, suffix: str, name: str, style: str, variables: dict[str, str]
) -> None:
    assume(name.upper() not in variables)
    template = prefix + style.format(name) + suffix
    with pytest.raises(UnknownVariable) as raised:
        render(template, Scope(variables), "where")
    assert raised.value.variable == name.upper()
    assert raised.value.where == "where"


@FAST
@given(
    values=st.fixed_dictionaries({"A": st.text(), "B": st.text(), "C": st.text()}),
    prefix=PLAIN,
    middle=PLAIN,
)
def test_substitution_is_not_recursive(values: dict[str, str], prefix: str, middle: str) -> None:
    # Values may themselves look like references (including to each other) or escapes.
    rendered = render(f"{prefix}%%a%%{middle}{{{{ B }}}} __C__ ", Scope(values), "body")
    assert rendered == f"{prefix}{values['A']}{middle}{values['B']} {values['C']} "


_REFERENCE_VALUES = st.text() | st.sampled_from(
    ['"', "\\", '"}', "\\u0000", "\n", "%%A%%", '{"x": 1}', "\x00", "é", "💥"]
)
_REFERENCES = {"%%A%%": "A", "{{ b }}": "B", " __C__ ": "C"}
# A leaf is a list of pieces: plain text, or a reference to be substituted.
_LEAF = st.lists(PLAIN | st.sampled_from(sorted(_REFERENCES)), max_size=4)
_JSON_TEMPLATE = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | _LEAF.map(tuple),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(), children),
    max_leaves=15,
)


def _materialize(tree: Any, values: dict[str, str] | None) -> Any:
    """The template document (values=None) or what it must render to."""
    if isinstance(tree, tuple):
        if values is None:
            return "".join(tree)
        return "".join(
            (
                piece.replace(piece.strip(), values[_REFERENCES[piece]])
                if piece in _REFERENCES
                else piece
            )
            for piece in tree
        )
    if isinstance(tree, list):
        return [_materialize(item, values) for item in tree]
    if isinstance(tree, dict):
        return {key: _materialize(item, values) for key, item in tree.items()}
    return tree


@FAST
@given(
    tree=_JSON_TEMPLATE,
    values=st.fixed_dictionaries(
        {"A": _REFERENCE_VALUES, "B": _REFERENCE_VALUES, "C": _REFERENCE_VALUES}
    ),
)
def test_render_json_stays_valid_json_with_values_substituted(
    tree: Any, values: dict[str, str]
) -> None:
    document = _materialize(tree, None)
    rendered = render_json(document, Scope(values), "json")
    assert rendered == _materialize(tree, values)
    assert json.loads(json.dumps(rendered)) == rendered
    assert json.loads(json.dumps(rendered, ensure_ascii=False)) == rendered


@FAST
@given(text=PLAIN)
def test_plain_text_renders_to_itself(text: str) -> None:
    assert render(text, Scope({"A": "x"}), "body") == text


# --- URLs: each value encoded for the component it lands in (SPEC §3, issue 10 point 17) ---------


def test_url_query_values_and_names_are_percent_encoded_whole() -> None:
    values = scope(V="a&b=c+d e#f/ö?%", N="k&=")
    rendered = render_url("https://h/p?q=%%V%%&%%N%%=1", values, "url")
    assert rendered == "https://h/p?q=a%26b%3Dc%2Bd%20e%23f%2F%C3%B6%3F%25&k%26%3D=1"


def test_url_values_before_the_query_keep_slashes_colons_and_percent() -> None:
    values = scope(BASE="https://h:8443/api", ID="a b#c?d/ö%41")
    rendered = render_url("%%BASE%%/items/{{ ID }}", values, "url")
    assert rendered == "https://h:8443/api/items/a%20b%23c%3Fd/%C3%B6%41"


def test_url_only_the_templates_own_question_mark_starts_the_query() -> None:
    values = scope(P="x?y=1", Q="1?2")
    assert render_url("http://h/%%P%%?a=%%Q%%", values, "url") == "http://h/x%3Fy=1?a=1%3F2"


def test_url_controls_are_encoded_and_escapes_and_unknown_dunders_kept() -> None:
    values = scope(V="a\r\nb")
    rendered = render_url("http://h/%%V%%/__X__/%%%%?v=%%V%%", values, "url")
    assert rendered == "http://h/a%0D%0Ab/__X__/%%?v=a%0D%0Ab"


def test_url_a_value_starting_the_template_is_a_whole_url_with_its_own_query() -> None:
    # Pagination: the next page's URL comes from the previous response, query included.
    values = scope(NEXT="https://h/items?page=2&size=50#top", V="a&b")
    assert render_url("%%NEXT%%", values, "url") == "https://h/items?page=2&size=50#top"
    assert render_url("%%NEXT%%&v=%%V%%", values, "url").startswith(
        "https://h/items?page=2&size=50"
    )
    assert render_url("{{NEXT}}", scope(NEXT="https://h/a b"), "url") == "https://h/a%20b"


# --- the shortcuts agree with the general substitution --------------------------------------------

# Templates made of plain text, references of every form (some to unknown names), escapes,
# expressions calling functions, braces around non-expressions, and stray token characters.
REFERENCE_NAMES = st.sampled_from(["a", "B", "known", "Missing", "_x1", "UUID"])
TEMPLATE_PIECES = st.one_of(
    PLAIN,
    TOKENISH,
    REFERENCE_NAMES.map(lambda name: f"%%{name}%%"),
    REFERENCE_NAMES.map(lambda name: f"__{name}__"),
    REFERENCE_NAMES.map(lambda name: f"{{{{ {name} }}}}"),
    REFERENCE_NAMES.map(lambda name: f"{{{{{name}|upper}}}}"),
    REFERENCE_NAMES.map(lambda name: f"{{{{ sha256('%%{name}%%') }}}}"),
    st.sampled_from(["%%%%", "{{ not an expression! }}", "{{%%A%%}}", "{{ $guid }}", "%%"]),
)
TEMPLATES = st.lists(TEMPLATE_PIECES, max_size=6).map("".join)
VALUES = st.text(max_size=12) | st.sampled_from(["https://h:8080/base?x=1", "a b", "%%A%%", "é/?#"])


def _outcome(render_it: Any) -> tuple[str, str]:
    try:
        return ("text", render_it())
    except SetupError as exc:
        return (type(exc).__name__, str(exc))


@FAST
@given(TEMPLATES, st.dictionaries(st.sampled_from(["A", "B", "KNOWN", "_X1", "UUID"]), VALUES))
def test_render_agrees_with_the_general_substitution(template: str, values: dict[str, str]) -> None:
    variables = Scope(values, {"B": "second layer"}, instant=datetime(2026, 1, 2, tzinfo=UTC))
    # The encoder sees each value with its position, as `render_url`'s does.
    encode = lambda value, at: f"<{at}:{value}>"  # noqa: E731
    assert _outcome(lambda: render(template, variables, "w")) == _outcome(
        lambda: render_general(template, variables, "w")
    )
    assert _outcome(lambda: render(template, variables, "w", encode=encode)) == _outcome(
        lambda: render_general(template, variables, "w", encode=encode)
    )
    if is_literal(template):
        assert render(template, variables, "w", encode=encode) == template


@pytest.mark.parametrize("template", ["", "plain", "100%", "a_b", "{x}", "%%", "%% A %%"])
def test_text_without_a_token_is_literal(template: str) -> None:
    assert is_literal(template)
    assert render(template, Scope(), "w") == template


@pytest.mark.parametrize(
    "template", ["%%A%%", "__A__", "{{A}}", "%%%%", "{{ uuid() }}", "{{%%A%%}}"]
)
def test_text_with_a_token_is_not_literal(template: str) -> None:
    assert not is_literal(template)


URL_TEXT = st.text(max_size=20) | st.text(alphabet="aZ09-._~!$&'()*+,;=:@/?#% \t%", max_size=20)


@FAST
@given(URL_TEXT)
def test_the_url_encoders_shortcuts_agree_with_quote(value: str) -> None:
    path_safe = "".join(chr(code) for code in range(0x21, 0x7F) if chr(code) not in "?#")
    url_safe = "".join(chr(code) for code in range(0x21, 0x7F))
    assert url_path_value(value) == quote(value, safe=path_safe, errors="surrogatepass")
    assert url_query_value(value) == quote(value, safe="", errors="surrogatepass")
    # A value that starts the template keeps everything printable but the space.
    rendered = render_url("%%V%%", Scope({"V": value}), "url")
    assert rendered == quote(value, safe=url_safe, errors="surrogatepass")


@pytest.mark.parametrize(
    ("template", "expected"),
    [
        ("%%a%%", ("A", False)),
        ("__b__", ("B", True)),
        ("{{ c }}", ("C", False)),
        ("{{c|upper}}", None),
        ("%%A%%/x", None),
        ("%%%%", None),
        ("plain", None),
    ],
)
def test_a_single_reference_is_known_by_its_name(
    template: str, expected: tuple[str, bool] | None
) -> None:
    assert single_reference(template) == expected


URL_TEMPLATES = st.lists(
    st.one_of(
        TEMPLATE_PIECES,
        st.sampled_from(["?", "https://h:8080/", "/p?q=", "&", "#f", "%%A%%?x=%%B%%"]),
    ),
    max_size=6,
).map("".join)


@FAST
@given(URL_TEMPLATES, st.dictionaries(st.sampled_from(["A", "B", "KNOWN", "_X1", "UUID"]), VALUES))
def test_a_compiled_url_renders_as_render_url(template: str, values: dict[str, str]) -> None:
    variables = Scope(values, {"B": "sec?ond #layer"})
    compiled = compile_url(template)
    if compiled is not None:
        assert _outcome(lambda: compiled.render(variables, "url")) == _outcome(
            lambda: render_url(template, variables, "url")
        )


@pytest.mark.parametrize(
    ("template", "compiles"),
    [
        ("%%A%%/items?x=__B__&y={{ C }}%%%%", True),
        ("https://h/{{ not an expression! }}", True),
        ("https://h/{{ sha256('x') }}", False),
        ("https://h/{{%%A%%}}", False),
    ],
)
def test_a_url_compiles_unless_a_token_does_more_than_look_up(
    template: str, compiles: bool
) -> None:
    assert (compile_url(template) is not None) == compiles


@FAST
@given(st.binary(min_size=16, max_size=16))
def test_uuid4_text_is_the_standard_librarys_v4_uuid(data: bytes) -> None:
    assert uuid4_text(data) == str(uuid.UUID(bytes=data, version=4))


def test_uuid4_text_is_random_by_default() -> None:
    made = uuid4_text()
    assert uuid.UUID(made).version == 4 and made != uuid4_text()
