"""The Segmenter's own class, outside Serve: how settings reach the loaded model."""

from deployments.segmenter import Segmenter, SegmenterConfig
from deployments.settings import Settings
from pipelines.model import ModelConfig, build_network, save_checkpoint
from tests.conftest import SMALL_MODEL


def loaded_segmenter(settings: Settings, checkpoint: str) -> Segmenter:
    segmenter = Segmenter.func_or_class(settings)
    segmenter.reconfigure(SegmenterConfig(model=checkpoint, niceness=0).model_dump())
    return segmenter


def test_the_checkpoints_guided_filter_is_used_unless_the_setting_turns_it_off(tmp_path):
    config = ModelConfig(**SMALL_MODEL, guided_filter={"kernel_size": 9, "eps": 0.01, "subsample": 1})
    save_checkpoint(tmp_path / "ckpt", config, build_network(config))
    on = loaded_segmenter(Settings(), str(tmp_path / "ckpt"))
    assert on.info()["guided_filter"] == {"kernel_size": 9, "eps": 0.01, "subsample": 1}
    off = loaded_segmenter(Settings(guided_filter=False), str(tmp_path / "ckpt"))
    assert off.model is not None and off.model.refine is None
    assert off.info()["guided_filter"] is None


def test_the_checkpoints_auto_exposure_is_used_unless_the_setting_turns_it_off(tmp_path):
    config = ModelConfig(**SMALL_MODEL, auto_exposure={"target": 150.0, "max_gain": 2.0, "percentile": 99.0})
    save_checkpoint(tmp_path / "ckpt", config, build_network(config))
    on = loaded_segmenter(Settings(), str(tmp_path / "ckpt"))
    assert on.info()["auto_exposure"] == {"target": 150.0, "max_gain": 2.0, "percentile": 99.0}
    off = loaded_segmenter(Settings(auto_exposure=False), str(tmp_path / "ckpt"))
    assert off.model is not None and off.model.exposure is None
    assert off.info()["auto_exposure"] is None
