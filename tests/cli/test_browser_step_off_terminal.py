"""`apimd run -f` off a terminal on a workflow with a browser step (SPEC §5 "Standalone runs"): it
ends SKIPPED/BROWSER and prints a URL a person can use: `redirect_uri` filled with the callback
URL, and the values given with `--var` as given (the recorded result still masks what is saved
into a token)."""

from __future__ import annotations

import json
import re
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

from tests.cli.test_run_command import apimd

PROJECT = """
auth:
  - {name: sso, type: manual}
tokens:
  - {name: user, auth: sso}
calls:
  - name: authorize
    url: https://login.example.test/authorize
    tags: [apimd:browser]
    params: {redirect_uri: "%%CALLBACK_URL%%", client_id: "%%CLIENT%%"}
  - name: exchange
    method: POST
    url: http://127.0.0.1:9/exchange
    form: {code: "%%CODE%%"}
    webhooks: [{type: save_auth_token, token: user}]
workflows:
  - name: sign-in
    steps: [authorize, exchange]
"""


def printed_url(text: str) -> dict[str, list[str]]:
    found = re.search(r"sign-in starts at:\n  (https://login\.example\.test/authorize\?\S+)", text)
    assert found, text
    return parse_qs(urlsplit(found.group(1)).query)


async def test_off_a_terminal_the_browser_url_is_printed_usable(tmp_path: Path) -> None:
    project = tmp_path / "p.yaml"
    project.write_text(PROJECT)
    env = {"APIMD_HOME": str(tmp_path), "APIMD_CALLBACK_PORT": "18765"}
    args = ("run", "sign-in", "-f", str(project), "--var", "CLIENT=my-client-42")
    code, out, err = await apimd(*args, env=env)
    assert code == 1, out + err
    assert "SKIPPED BROWSER" in out
    query = printed_url(out)
    assert query["redirect_uri"] == ["http://127.0.0.1:18765/tokens/callback"]
    assert query["client_id"] == ["my-client-42"]
    assert query["state"][0]
    assert f"apimd run sign-in -f {project}` on a terminal" in out

    # --json: stdout stays the result document; the URL goes to stderr.
    code, out, err = await apimd(*args, "--json", env=env)
    assert json.loads(out)["result"] == "BROWSER"
    assert printed_url(err)["client_id"] == ["my-client-42"]
