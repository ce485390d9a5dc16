import pytest
from pydantic import ValidationError

from deployments.settings import Settings


def test_environment_overrides_defaults(monkeypatch):
    monkeypatch.setenv("LITHOSEG_PORT", "9123")
    monkeypatch.setenv("LITHOSEG_API_KEYS", "k-alpha, k-beta ,,k-gamma")
    monkeypatch.setenv("LITHOSEG_S3_ENDPOINT_URL", "")
    settings = Settings()
    assert settings.port == 9123
    assert settings.api_key_list() == ["k-alpha", "k-beta", "k-gamma"]
    assert settings.s3_endpoint_url is None
    assert "k-alpha" not in repr(settings)  # keys never show up in logs


def test_out_of_range_default_mask_weight_is_refused(monkeypatch):
    monkeypatch.setenv("LITHOSEG_DEFAULT_MASK_WEIGHT", "1.5")
    with pytest.raises(ValidationError):
        Settings()


def test_every_setting_is_documented():
    from pathlib import Path

    documented = (Path(__file__).resolve().parents[2] / "docs" / "configuration.md").read_text()
    missing = [name for name in Settings.model_fields if f"`LITHOSEG_{name.upper()}`" not in documented]
    assert not missing, f"settings missing from docs/configuration.md: {missing}"
