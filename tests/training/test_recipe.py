"""The shipped checkpoint's recipe as one command (training/recipe.py): the chain of stages, and a
smoke run of the whole chain (two steps a stage, synthetic photos) ending in a loadable checkpoint."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from pipelines.model import read_config
from training.recipe import INFERENCE_SETTINGS, SHIPPED, SOUP, STAGES, checkpoint, configs, replay


def test_each_stage_starts_where_the_card_says(tmp_path):
    planned = {stage.name: config for stage, config in configs(tmp_path, ["photos"], 1.0, 2)}
    assert planned["default-v1"].init is None and planned["default-v1"].pretrained == "imagenet"
    assert planned["default-v2"].init == str(tmp_path / "default-v1" / "checkpoint")
    assert planned["default-v6"].init == planned["default-v9"].init == str(tmp_path / "default-v3" / "checkpoint")
    assert planned["default-v17"].init == str(tmp_path / "version-5")
    steps_of = {stage.name: stage.options["steps"] for stage in STAGES}
    assert [checkpoint(tmp_path, ref, 1.0, steps_of) for ref in SOUP[1]] == [
        tmp_path / "default-v6" / "checkpoints" / "step-001000",
        tmp_path / "default-v9" / "checkpoints" / "step-001750",
    ]
    assert all(planned[name].partial_background == "all" for name in ("default-v1", "default-v2", "default-v3", "default-v6", "default-v9"))
    last = planned["default-v17"]
    assert (last.partial_background, last.partial_edge, last.hue_jitter, last.steps, last.lr) == ("box", 8, 0.05, 700, 1.5e-4)
    assert all(c.holdout == ["cc05", "cc26", "dji0045", "dji0049", "dji0059"] and c.resume for c in planned.values())


@pytest.mark.slow
def test_the_whole_chain_runs_to_a_checkpoint_the_service_loads(tmp_path):
    final = replay(tmp_path, [], scale=0.001, threads=1)
    config = read_config(final)
    assert config.version == INFERENCE_SETTINGS["version"] and config.scales == INFERENCE_SETTINGS["scales"]
    written = json.loads((final / "config.json").read_text())
    assert written["guided_filter"] == INFERENCE_SETTINGS["guided_filter"]
    assert written["confidence_calibration"] == read_config(SHIPPED).confidence_calibration  # carried over, like the gate
    soup = json.loads((tmp_path / "version-5" / "config.json").read_text())["training"]["soup"]
    assert [Path(i["path"]).parent.parent.name for i in soup["ingredients"]] == ["default-v6", "default-v9"]
    assert json.loads((final / "config.json").read_text())["training"]["recipe"]["init"] == str(tmp_path / "version-5")
    again = replay(tmp_path, [], scale=0.001, threads=1)  # every stage finished: nothing trains again
    assert again == final
