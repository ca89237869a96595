"""One settings object: environment first, then the TOML file, then defaults."""

import pydantic
import pytest

from tacit.core.settings import TacitSettings


def test_environment_overrides_toml_which_overrides_defaults(tmp_path, monkeypatch):
    config = tmp_path / "tacit.toml"
    config.write_text('partitions = 6\nchat_events_topic = "from-toml"\n')
    monkeypatch.setenv("TACIT_CONFIG", str(config))
    monkeypatch.setenv("TACIT_PARTITIONS", "3")
    settings = TacitSettings()
    assert settings.partitions == 3
    assert settings.chat_events_topic == "from-toml"
    assert settings.dead_letter_topic == "chat-events-dead-letter"


def test_ray_address_is_read_from_the_standard_variable(monkeypatch):
    monkeypatch.setenv("RAY_ADDRESS", "ray-head:6379")
    assert TacitSettings().ray_address == "ray-head:6379"


def test_data_dir_is_absolute_and_settings_are_frozen(monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    settings = TacitSettings()
    assert settings.data_dir == tmp_path / ".tacit"
    with pytest.raises(pydantic.ValidationError):
        settings.partitions = 5


def test_invalid_values_are_refused_with_the_field_name(monkeypatch):
    monkeypatch.setenv("TACIT_PARTITIONS", "0")
    with pytest.raises(pydantic.ValidationError, match="partitions"):
        TacitSettings()


def test_bundled_base_model_is_found_offline():
    assert (TacitSettings().resolved_base_model() / "config.json").exists()
