"""The Segmenter's own class, outside Serve: how settings reach the loaded model."""

import pytest

from deployments.segmenter import Segmenter, SegmenterConfig
from deployments.settings import Settings
from pipelines.model import ModelConfig, build_network, save_checkpoint
from tests.conftest import SMALL_MODEL


def loaded_segmenter(settings: Settings, checkpoint: str) -> Segmenter:
    segmenter = Segmenter.func_or_class(settings)
    segmenter.reconfigure(SegmenterConfig(model=checkpoint, niceness=0).model_dump())
    return segmenter


@pytest.mark.parametrize(
    "section,value,attribute",
    [
        ("guided_filter", {"kernel_size": 9, "eps": 0.01, "subsample": 1}, "refine"),
        ("auto_exposure", {"target": 150.0, "max_gain": 2.0, "percentile": 99.0}, "exposure"),
    ],
)
def test_the_checkpoints_section_is_used_unless_its_setting_turns_it_off(tmp_path, section, value, attribute):
    config = ModelConfig(**SMALL_MODEL, **{section: value})
    save_checkpoint(tmp_path / "ckpt", config, build_network(config))
    on = loaded_segmenter(Settings(), str(tmp_path / "ckpt"))
    assert on.info()[section] == value
    off = loaded_segmenter(Settings(**{section: False}), str(tmp_path / "ckpt"))
    assert off.model is not None and getattr(off.model, attribute) is None
    assert off.info()[section] is None
