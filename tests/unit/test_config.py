"""Config: layered documents into frozen dataclasses, every error reported at once."""

from __future__ import annotations

from pathlib import Path

import pytest

from appliance.config import Config, ConfigError, env_layer, load, load_files


def test_defaults_are_a_valid_config() -> None:
    config = load([])
    assert config == Config()
    assert config.origin.kind == "directory"


def test_later_layers_win_and_sections_merge_key_by_key() -> None:
    config = load(
        [
            {"server": {"port": 9000, "workers": 4}},
            {"server": {"port": 9001}, "origin": {"kind": "s3", "s3": {"bucket": "photos"}}},
        ]
    )
    assert (config.server.port, config.server.workers) == (9001, 4)
    assert config.origin.s3.bucket == "photos"


def test_every_error_is_reported_at_once() -> None:
    with pytest.raises(ConfigError) as caught:
        load(
            [
                {
                    "server": {"port": "eighty", "colour": "blue"},
                    "origin": {"kind": "ftp"},
                    "images": {"jpeg_quality": 101},
                }
            ]
        )
    errors = caught.value.errors
    assert "server.port: must be an integer, not 'eighty'" in errors
    assert "server.colour: unknown key" in errors
    assert any(e.startswith("origin.kind: must be one of") for e in errors)
    assert len(errors) == 3  # quality is checked once the types are right


def test_cross_field_rules_are_checked() -> None:
    with pytest.raises(ConfigError) as caught:
        load([{"origin": {"kind": "s3"}, "signing": {"enabled": True}}])
    assert caught.value.errors == [
        "origin.s3.bucket: required when origin.kind is s3",
        "signing.keys: at least one key is needed when signing is enabled",
    ]


def test_lists_become_tuples_and_numbers_floats_where_declared() -> None:
    config = load([{"signing": {"keys": ["k" * 16]}, "origin": {"read_timeout": 5}}])
    assert config.signing.keys == ("k" * 16,)
    assert config.origin.read_timeout == 5.0 and isinstance(config.origin.read_timeout, float)


def test_environment_overrides_with_json_values_and_nested_sections() -> None:
    layer = env_layer(
        {
            "APPLIANCE_SERVER_PORT": "9100",
            "APPLIANCE_ORIGIN_S3__BUCKET": "photos",
            "APPLIANCE_IMAGES_AUTO_FORMATS": '["webp"]',
            "APPLIANCE_NOT_A_SECTION": "x",
            "HOME": "/root",
        }
    )
    assert layer == {
        "server": {"port": 9100},
        "origin": {"s3": {"bucket": "photos"}},
        "images": {"auto_formats": ["webp"]},
    }


def test_files_json_and_yaml_then_env(tmp_path: Path) -> None:
    (tmp_path / "a.json").write_text('{"server": {"port": 9000}}')
    (tmp_path / "b.yaml").write_text("server:\n  workers: 3\n")
    config = load_files(
        [tmp_path / "a.json", tmp_path / "missing.json", tmp_path / "b.yaml"],
        environ={"APPLIANCE_SERVER_THREADS": "6"},
    )
    assert (config.server.port, config.server.workers, config.server.threads) == (9000, 3, 6)


def test_a_broken_file_is_one_clear_error(tmp_path: Path) -> None:
    (tmp_path / "bad.json").write_text("{server: [")
    with pytest.raises(ConfigError) as caught:
        load_files([tmp_path / "bad.json"], environ={})
    assert len(caught.value.errors) == 1 and "not valid JSON or YAML" in caught.value.errors[0]


def test_an_http_origin_must_allow_its_own_host() -> None:
    with pytest.raises(ConfigError) as caught:
        load([{"origin": {"kind": "http", "http": {"base_url": "https://img.example.com/o/"}}}])
    assert caught.value.errors == [
        "origin.http.allowed_hosts: must list base_url's host 'img.example.com'"
    ]
