"""Settings: one typed model, read from a TOML file and `IDGATE_*` environment variables.

Precedence: defaults < TOML file (`--config` or `IDGATE_CONFIG`) < environment.
docs/configuration.md documents every field; tests/test_settings.py keeps it true.
"""

from __future__ import annotations

import os
import tomllib
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

ENV_PREFIX = "IDGATE_"


class Settings(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    database_url: str | None = Field(
        None,
        description="PostgreSQL URL (postgresql://user:pass@host:5432/db). Unset: an embedded "
        "PostgreSQL 16 is started in `data_dir`.",
    )
    data_dir: Path = Field(
        Path(".idgate"), description="Folder of the embedded PostgreSQL's data (unset URL only)."
    )
    public_url: str | None = Field(
        None,
        description="Base URL clients use to reach the gateway (https://idgate.example.com); "
        "SCIM locations are built on it. Unset: http://HOST:PORT.",
    )
    host: str = Field("127.0.0.1", description="Address `idgate serve` listens on.")
    port: int = Field(8000, ge=0, le=65535, description="Port `idgate serve` listens on.")
    workers: int = Field(1, ge=1, le=64, description="Worker processes sharing the port.")
    db_pool_size: int = Field(
        10,
        ge=1,
        description="Database connections each worker process keeps; under load it may open "
        "as many again, plus one that listens for changes (size max_connections for that).",
    )
    scim_max_results: int = Field(
        1000, ge=1, description="Largest page a SCIM list returns (ServiceProviderConfig)."
    )
    scim_default_count: int = Field(100, ge=0, description="Page size when `count` is not given.")
    max_body_bytes: int = Field(
        1_048_576, ge=1024, description="Largest request body accepted; larger is 413."
    )
    bulk_max_operations: int = Field(
        1000, ge=1, description="Most operations one Bulk request may hold; more is 413."
    )
    filter_max_length: int = Field(4096, ge=16, description="Longest `filter` accepted.")
    filter_max_depth: int = Field(32, ge=1, description="Deepest filter nesting accepted.")
    token_cache_seconds: float = Field(
        5.0,
        ge=0,
        description="How long a process trusts a token it has checked; a revoked token stops "
        "working within this time. 0 checks the database on every request.",
    )
    token_touch_seconds: float = Field(
        60.0, ge=0, description="A SCIM token's last-used time is written at most this often."
    )
    request_log_days: float = Field(
        7.0,
        ge=0,
        description="How long the per-tenant SCIM request log (`idgate scim-log`) keeps a "
        "request. 0 turns the log off.",
    )
    request_log_body_bytes: int = Field(
        4096, ge=0, description="Longest request or response body the request log keeps."
    )
    request_log_flush_seconds: float = Field(
        1.0,
        gt=0,
        description="The request log is written in batches at least this often; a process "
        "that dies loses at most this window of log.",
    )
    session_idle_minutes: float = Field(
        60.0, gt=0, description="A login session ends after this long without a request."
    )
    session_lifetime_hours: float = Field(
        12.0, gt=0, description="A login session ends this long after the login, in any case."
    )
    session_touch_seconds: float = Field(
        60.0,
        ge=0,
        description="A session's last-seen time is written at most this often (the idle "
        "timeout is exact to within it).",
    )
    session_cache_seconds: float = Field(
        1.0,
        ge=0,
        description="Each process keeps checked sessions for `/auth/verify` this long at most; "
        "the database tells every process at once when a session, its user, roles or groups "
        "change (LISTEN/NOTIFY), so a copy is dropped as soon as it may be stale. 0: ask the "
        "database on every request.",
    )
    webhook_delivery: bool = Field(
        True,
        description="Run a webhook delivery worker in this process (every process may: they "
        "share the queue in the database).",
    )
    webhook_batch: int = Field(
        200, ge=1, le=5000, description="Deliveries a worker claims and sends at once."
    )
    webhook_timeout_seconds: float = Field(
        10.0, gt=0, description="How long a webhook receiver has to answer."
    )
    events_days: int = Field(
        90,
        ge=0,
        description="Events (and their finished webhook deliveries) are kept this many days "
        "(0: for ever); one still being delivered is kept until it is done.",
    )
    audit_flush_seconds: float = Field(
        1.0,
        ge=0,
        description="Audit entries of SCIM writes are written in batches at least this often "
        "(0: each at once). A process that dies loses at most this window of entries.",
    )
    audit_days: int = Field(
        365, ge=0, description="Audit entries are kept this many days (0: for ever)."
    )
    identity_token_seconds: int = Field(
        300, ge=30, le=3600, description="Lifetime of the JWTs `/auth/token` hands out."
    )
    invitation_days: float = Field(
        7, gt=0, le=90, description="An invitation link works this many days (resend: anew)."
    )
    log_level: str = Field("INFO", description="Python logging level.")

    @property
    def base_url(self) -> str:
        """The public base URL, without a trailing slash."""
        return (self.public_url or f"http://{self.host}:{self.port}").rstrip("/")

    @classmethod
    def load(cls, config_file: Path | None = None, env: dict[str, str] | None = None) -> Settings:
        env = dict(os.environ if env is None else env)
        values: dict[str, Any] = {}
        path = config_file or (Path(env["IDGATE_CONFIG"]) if env.get("IDGATE_CONFIG") else None)
        if path is not None:
            with path.open("rb") as fh:
                values.update(tomllib.load(fh))
        for name in cls.model_fields:
            raw = env.get(ENV_PREFIX + name.upper())
            if raw is not None and raw != "":
                values[name] = raw
        return cls.model_validate(values)


__all__ = ["Settings", "ValidationError"]


def configuration_markdown() -> str:
    """docs/configuration.md, generated from the model (tests keep the file in step)."""
    lines = [
        "# Configuration",
        "",
        "Settings come from a TOML file (`idgate --config FILE` or `IDGATE_CONFIG`) and from",
        "`IDGATE_*` environment variables, which win. Keys in the file are the names below.",
        "This page is generated by `python -m gateway.settings`.",
        "",
        "| setting | environment | default | meaning |",
        "|---|---|---|---|",
    ]
    for name, field in Settings.model_fields.items():
        default = "unset" if field.default is None else f"`{field.default}`"
        env = f"`{ENV_PREFIX}{name.upper()}`"
        lines.append(f"| `{name}` | {env} | {default} | {field.description} |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    print(configuration_markdown(), end="")
