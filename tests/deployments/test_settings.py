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


def test_settings_win_over_the_checkpoint_in_one_place():
    checkpoint = {
        "key": "k",
        "gate_threshold": 0.42,
        "max_short_side": 1200,
        "scales": [1.0, 0.5],
        "guided_filter": {"eps": 1},
        "auto_exposure": {"target": 175},
    }
    assert Settings().resolve_model(checkpoint) == checkpoint  # nothing set: the checkpoint's own
    resolved = Settings(gate_threshold=0, max_short_side=0, scale_search=False, guided_filter=False, auto_exposure=False).resolve_model(
        checkpoint
    )
    assert resolved == {
        "key": "k",
        "gate_threshold": 0,
        "max_short_side": None,
        "scales": None,
        "guided_filter": None,
        "auto_exposure": None,
    }
    assert Settings(max_short_side=800).resolve_model(checkpoint)["max_short_side"] == 800
    assert checkpoint["scales"] == [1.0, 0.5]  # the Segmenter's answer is not changed in place
