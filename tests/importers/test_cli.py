"""`apimd import` as a user runs it: a real process, the file written, stderr listing."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from apimd.cli import main
from apimd.model.loader import load_project_file
from tests.importers.support import FIXTURES


def _apimd(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "apimd", "import", *args],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ},
        check=False,
    )


def test_import_writes_the_file_and_lists_secrets_and_untranslated(tmp_path: Path) -> None:
    out = tmp_path / "project.yaml"
    done = _apimd("curl", "-", "-o", str(out), stdin="curl -H 'X-Api-Key: abc123xyz' -s http://h/x")
    assert done.returncode == 0, done.stderr
    assert "abc123xyz" not in out.read_text() + done.stderr + done.stdout
    assert "secret: curl command 1 (call get-x) header X-Api-Key → secret variable X_API_KEY" in (
        done.stderr
    )
    assert "not translated: curl command 1: -s only changes curl's output: ignored" in done.stderr
    project = load_project_file(out, environ={"X_API_KEY": "abc123xyz"})
    assert project.calls[0].headers == {"X-Api-Key": "{{X_API_KEY}}"}


def test_import_to_stdout_and_bad_source_is_a_clear_error() -> None:
    done = _apimd("openapi", str(FIXTURES / "petstore.yaml"))
    assert done.returncode == 0 and "name: listPets" in done.stdout
    bad = _apimd("postman", str(FIXTURES / "petstore.yaml"))
    assert bad.returncode == 2
    assert "is not JSON" in bad.stderr and "Traceback" not in bad.stderr
    missing = _apimd("har", "/nonexistent/file.har")
    assert (
        missing.stderr
        == "apimd import: cannot read /nonexistent/file.har: No such file or directory\n"
    )
    assert missing.returncode == 2
    unwritable = _apimd("openapi", str(FIXTURES / "petstore.yaml"), "-o", "/nonexistent/out.yaml")
    assert unwritable.returncode == 2 and "cannot write /nonexistent/out.yaml" in unwritable.stderr


def test_a_pasted_command_as_source_says_how_and_never_echoes_its_secret() -> None:
    pasted = "curl 'http://h/users' -H 'Authorization: Bearer sk_live_abc123'"
    done = _apimd("curl", pasted)
    assert done.returncode == 2
    assert "sk_live_abc123" not in done.stderr + done.stdout
    assert "`apimd import curl -`, paste it, then press Ctrl-D" in done.stderr
    assert "Traceback" not in done.stderr


def test_an_unforeseen_failure_exits_2_naming_the_file_not_its_content(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # In process: a failing parser stands in for an input no check foresaw.
    def failing(text: str, builder: object, *, keep_cookies: bool = False) -> None:
        raise ValueError("Invalid IPv6 URL Bearer CLILEAK-secret")

    monkeypatch.setattr("apimd.importers.har.import_har", failing)
    source = tmp_path / "x.har"
    source.write_text('{"log": {"entries": []}}')
    assert main(["import", "har", str(source)]) == 2
    out, err = capsys.readouterr()
    assert err.startswith(f"apimd import: {source}: cannot be read as har: ")
    assert "(ValueError in __init__.py line" in err
    assert "CLILEAK" not in out + err and "Traceback" not in err


def test_secrets_in_clear_are_written_to_a_file_only_its_owner_reads(tmp_path: Path) -> None:
    command = "curl -H 'X-Api-Key: abc123xyz' http://h/x"
    fresh, existing = tmp_path / "fresh.yaml", tmp_path / "existing.yaml"
    existing.write_text("old")
    existing.chmod(0o644)
    for out in (fresh, existing):
        done = _apimd("curl", "-", "--secrets", "-o", str(out), stdin=command)
        assert done.returncode == 0, done.stderr
        assert "abc123xyz" in out.read_text()
        assert out.stat().st_mode & 0o777 == 0o600


def test_output_that_is_the_source_is_refused_and_the_source_kept(tmp_path: Path) -> None:
    source = tmp_path / "names.json"
    original = (FIXTURES / "transformer-helpers-v2.1.0.json").read_bytes()
    source.write_bytes(original)
    (tmp_path / "link.json").symlink_to(source)
    (tmp_path / "sub").mkdir()
    environment = tmp_path / "env.json"
    environment.write_text('{"values": []}')
    for output in (source, tmp_path / "link.json", tmp_path / "sub" / ".." / "names.json"):
        done = _apimd("postman", str(source), "-o", str(output))
        assert done.returncode == 2
        assert done.stderr == (
            f"apimd import: -o {output} is the file being imported ({source}): writing the "
            "project there would replace it; choose another output file\n"
        )
        assert source.read_bytes() == original
    done = _apimd("postman", str(source), "--environment", str(environment), "-o", str(environment))
    assert done.returncode == 2 and f"being imported ({environment})" in done.stderr
    assert _apimd("postman", str(source), "-o", str(tmp_path / "out.yaml")).returncode == 0
