"""FAPI secrets (client keys, DPoP private keys, TLS keys and key passwords) never reach the database
or its WAL in clear, in any encoding the leak check knows (SPEC §9, §10)."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric import ec

from apimd.engine.signer import generate_key_jwk
from apimd.model.project import Project
from apimd.model.resources import TokenState
from apimd.model.runtime import TokenRuntime
from apimd.store import PendingSignIn
from tests.store.conftest import OpenStore
from tests.store.test_secrets import leaks
from tests.support.tls import TestCA, pem_key

PASSWORD = "tls-key-password-7Hq2"


def _pem_body_line(pem: str) -> str:
    """A line from inside a PEM: the base64 of the key itself."""
    return pem.strip().splitlines()[2]


async def test_fapi_secrets_are_not_stored_in_clear(
    open_test_store: OpenStore, db_dir: Path
) -> None:
    client_pem = pem_key(ec.generate_private_key(ec.SECP256R1()))
    ca = TestCA()
    tls_client = ca.issue("monitor", password=PASSWORD)
    dpop_key = generate_key_jwk()
    dpop_d = json.loads(dpop_key)["d"]
    secrets = [_pem_body_line(client_pem), _pem_body_line(tls_client.key), PASSWORD, dpop_d]
    store = await open_test_store()
    await store.apply(
        Project.model_validate(
            {
                "auth": [
                    {
                        "name": "bank",
                        "type": "oauth2",
                        "grant": "authorization_code",
                        "client_id": "c",
                        "issuer": "https://as.example",
                        "client_auth": "private_key_jwt",
                        "client_key": client_pem,
                        "dpop": True,
                        "tls": {
                            "client_cert": tls_client.cert,
                            "client_key": tls_client.key,
                            "client_key_password": PASSWORD,
                        },
                    }
                ],
                "tokens": [{"name": "t", "auth": "bank"}],
            }
        )
    )
    await store.save_token(
        TokenRuntime(
            name="t",
            variables={"ACCESS_TOKEN": "at", "TOKEN_TYPE": "DPoP"},
            state=TokenState.VALID,
            saved_at=datetime.now(UTC),
            dpop_key=dpop_key,
        )
    )
    await store.signins.create(
        PendingSignIn.model_validate(
            {"url": "https://as.example/authorize", "token": "t", "dpop_key": dpop_key}
        )
    )
    assert leaks(db_dir, secrets) == []
    runtime = await store.load_token("t")
    assert runtime is not None and runtime.dpop_key == dpop_key
    exported = await store.export()
    bank = exported.auth_setting("bank")
    assert bank is not None
    assert bank.client_key == "••••"
    assert bank.tls is not None
    assert bank.tls.client_key == "••••"
    assert bank.tls.client_key_password == "••••"
    report = await store.apply(exported)  # apply(export()) changes nothing
    assert not report.changed, report
    kept = (await store.export(secrets=True)).auth_setting("bank")
    assert kept is not None
    assert kept.client_key == client_pem
    assert kept.tls is not None
    assert kept.tls.client_key_password == PASSWORD
    await store.close()
    assert leaks(db_dir, secrets) == []
    # the check itself finds these secrets when they are there
    (db_dir / "apimd.db").write_bytes(dpop_d.encode() + PASSWORD.encode("utf-16-le"))
    found = leaks(db_dir, secrets)
    assert any(dpop_d in f and "(raw)" in f for f in found)
    assert any(PASSWORD in f and "(utf-16)" in f for f in found)
