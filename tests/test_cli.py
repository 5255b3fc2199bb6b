"""The `idgate` command line against the test database, and once against an embedded server."""

from __future__ import annotations

import asyncio
import json
import secrets
import subprocess
import sys
from pathlib import Path
from typing import Any

from aiohttp.test_utils import TestClient
from click.testing import CliRunner

from gateway.cli import main
from storage.scim_store import ScimStore
from tests.conftest import SCIM


def _run(database_url: str, *args: str) -> Any:
    env = {"IDGATE_DATABASE_URL": database_url, "IDGATE_PUBLIC_URL": "https://idgate.example"}
    return CliRunner().invoke(main, list(args), env=env, catch_exceptions=False)


async def _cli(database_url: str, *args: str) -> Any:
    # The CLI runs its own event loop; keep it off the test's.
    return await asyncio.to_thread(_run, database_url, *args)


async def test_tenant_and_token_lifecycle(
    database_url: str, client: TestClient[Any, Any], store: ScimStore
) -> None:
    slug = "cli-" + secrets.token_hex(3)
    result = await _cli(database_url, "tenant", "create", slug, "--name", "CLI Org")
    assert result.exit_code == 0, result.output
    assert f"https://idgate.example/scim/v2/{slug}" in result.output
    again = await _cli(database_url, "tenant", "create", slug)
    assert again.exit_code == 1 and "already exists" in again.output

    created = await _cli(database_url, "token", "create", slug, "--json")
    assert created.exit_code == 0, created.output
    payload = json.loads(created.output)
    assert payload["scim_base_url"] == f"https://idgate.example/scim/v2/{slug}"
    assert payload["id"].startswith("tok_") and payload["token"].startswith("idgs_")
    headers = {"Authorization": f"Bearer {payload['token']}", "Content-Type": SCIM}
    resp = await client.get(f"/scim/v2/{slug}/Users", headers=headers)
    assert resp.status == 200

    listed = json.loads((await _cli(database_url, "token", "list", slug, "--json")).output)
    assert [t["id"] for t in listed] == [payload["id"]]
    assert listed[0]["last_used_at"] is not None
    assert payload["token"] not in (await _cli(database_url, "token", "list", slug)).output

    revoked = await _cli(database_url, "token", "revoke", slug, payload["id"])
    assert revoked.exit_code == 0, revoked.output
    assert (await client.get(f"/scim/v2/{slug}/Users", headers=headers)).status == 401
    twice = await _cli(database_url, "token", "revoke", slug, payload["id"])
    assert twice.exit_code == 1

    unknown = await _cli(database_url, "token", "create", "no-such-tenant")
    assert unknown.exit_code == 1 and "no tenant" in unknown.output


def test_bad_slug_is_refused(database_url: str) -> None:
    result = _run(database_url, "tenant", "create", "no spaces/here")
    assert result.exit_code == 1 and "slug" in result.output


def test_embedded_default_needs_no_server(tmp_path: Path) -> None:
    """With no database URL, the CLI starts PostgreSQL 16 from the pgserver wheel and migrates."""
    env = {"IDGATE_DATA_DIR": str(tmp_path / "pg"), "PATH": "/usr/sbin:/usr/bin:/sbin:/bin"}
    cmd = [sys.executable, "-m", "gateway.cli"]
    done = subprocess.run(
        [*cmd, "tenant", "create", "embedded"], env=env, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    listed = subprocess.run(
        [*cmd, "tenant", "list"], env=env, capture_output=True, text=True, timeout=120
    )
    assert listed.stdout.startswith("embedded\t"), listed.stderr
    assert (tmp_path / "pg" / "PG_VERSION").read_text().strip() == "16"
