"""`document_yaml` (what `apimd import` and `apimd export` write): the loader reads every document
back as it was, whatever its strings hold."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from apimd.model.parsing import parse_text
from apimd.model.yaml_text import document_yaml

_TRICKY = st.sampled_from(
    [
        "yes",
        "no",
        "on",
        "off",
        "y",
        "null",
        "~",
        "",
        "1_000",
        "0o17",
        "0x1f",
        "1e3",
        ".inf",
        "2026-12-06",
        "12:30:45",
        ": x",
        "- x",
        "# x",
        "a: b",
        "'q'",
        '"q"',
        "%%TOKEN%%",
        "{a}",
        "[1]",
        "&a",
        "*a",
        "!tag",
        "|",
        ">",
        "line\nline",
        " lead",
        "trail ",
        "tab\tx",
        "é ✓ 日本",
        "\u2028",
        "\x85",
        "\ufeff",
    ]
)
_SCALARS = (
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | _TRICKY | st.text()
)
_KEYS = _TRICKY | st.text(min_size=1)
_DOCS = st.recursive(
    _SCALARS,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(_KEYS, inner, max_size=4),
    max_leaves=25,
)


@settings(deadline=None)
@given(st.dictionaries(_KEYS, _DOCS, max_size=6))
def test_an_imported_document_reads_back_as_it_was_written(document: dict[str, object]) -> None:
    text = document_yaml(document)
    parsed, data, _tree, issues = parse_text(text, "imported.yaml")
    assert parsed, issues
    assert data == document
    assert list(data) == list(document)  # keys in the order the importer built them


def test_line_breaks_other_than_newline_are_escaped_in_double_quotes() -> None:
    text = document_yaml({"body": "caf\x85e", "k\u2028": "x\u2029y", "plain": "a b"})
    assert text == 'body: "caf\\Ne"\n? "k\\L"\n: "x\\Py"\nplain: a b\n'
