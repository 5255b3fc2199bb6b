"""Settings: environment over TOML over defaults; the documentation is generated from the model."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from gateway.settings import Settings, configuration_markdown

ROOT = Path(__file__).parent.parent


def test_environment_overrides_toml(tmp_path: Path) -> None:
    config = tmp_path / "idgate.toml"
    config.write_text('public_url = "https://from-file.example"\nport = 9000\n')
    settings = Settings.load(config, env={"IDGATE_PORT": "9100"})
    assert settings.public_url == "https://from-file.example"
    assert settings.port == 9100
    assert settings.database_url is None


def test_unknown_and_invalid_settings_are_refused(tmp_path: Path) -> None:
    config = tmp_path / "idgate.toml"
    config.write_text("no_such_setting = 1\n")
    with pytest.raises(ValidationError):
        Settings.load(config, env={})
    with pytest.raises(ValidationError):
        Settings.load(None, env={"IDGATE_PORT": "seventy"})


def test_configuration_doc_is_current() -> None:
    assert (ROOT / "docs" / "configuration.md").read_text() == configuration_markdown()


@pytest.mark.parametrize("example", sorted((ROOT / "deploy").glob("*.toml")))
def test_deploy_examples_load(example: Path) -> None:
    settings = Settings.load(example, env={})
    assert settings.database_url is not None
    assert settings.base_url.startswith("https://")
