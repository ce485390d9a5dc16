"""The shipped checkpoint's recipe as one command (training/recipe.py): the cross-validated recipe,
the shipped checkpoint trained with it, and a smoke run of the chain ending in a loadable checkpoint."""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path

import pytest

from pipelines.model import INFERENCE_SETTINGS, read_config
from training.crossval import same_recipe
from training.recipe import SHIPPED, VERSION, plan, replay

DOCS = Path(__file__).resolve().parents[2] / "docs"


def recipe_of(config) -> str:
    recipe = {k: v for k, v in asdict(config).items() if k not in ("init",)}
    return same_recipe(json.dumps(recipe, default=str))


def test_the_recipe_is_the_one_the_folds_cross_validated(tmp_path):
    folds = json.loads((DOCS / "crossval-r4.json").read_text())["recipe"]
    assert recipe_of(plan(tmp_path, ["../shared/data/real_cores"], False, 2)) == same_recipe(json.dumps(folds))
    assert plan(tmp_path, [], False, 2).holdout == []  # every photo: none is left to hold out


def test_the_shipped_checkpoint_was_trained_with_it_and_carries_its_cross_validated_figures(tmp_path):
    shipped = json.loads((SHIPPED / "config.json").read_text())
    assert shipped["version"] == VERSION
    assert same_recipe(json.dumps(shipped["training"]["recipe"])) == recipe_of(plan(tmp_path, ["../shared/data/real_cores"], False, 2))
    real = shipped["metrics"]["real_holdout"]
    assert real["cross_validated"]["complete"] >= 3 and real["per_class"]  # the folds' figures, not a fixed split's
    assert set(real["cross_validated"]["folds"]) <= {f"fold{i}" for i in range(real["cross_validated"]["of"])}


@pytest.mark.slow
def test_the_chain_runs_to_a_checkpoint_the_service_loads(tmp_path):
    final = replay(tmp_path, [], smoke=True, threads=1)
    config, shipped = read_config(final), read_config(SHIPPED)
    assert config.version == VERSION and config.training["steps_done"] == 2
    assert config.inference_settings() == shipped.inference_settings()
    assert config.confidence_calibration == shipped.confidence_calibration  # carried over, like the gate
    assert config.metrics["real_holdout"] == shipped.metrics["real_holdout"]  # the recipe's cross-validated figures
    assert config.metrics["synthetic_holdout"]  # its own validation kept
    assert (final / "gate.npz").read_bytes() == (SHIPPED / "gate.npz").read_bytes()
    assert sorted(INFERENCE_SETTINGS) == sorted(config.inference_settings())
    assert replay(tmp_path, [], smoke=True, threads=1) == final  # finished: nothing trains again
