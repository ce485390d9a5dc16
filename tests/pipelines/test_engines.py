"""Inference engines: parity with PyTorch before speed, artefacts built once, clean fallbacks."""

from __future__ import annotations

import json
import sys

import numpy as np
import pytest
import torch
from PIL import Image

from deployments.settings import DEFAULT_MODEL
from pipelines import engines
from pipelines.engines import ENGINES_DIR, MIN_FP32_AGREEMENT, build_engine, parity_tiles
from pipelines.model import ModelConfig, build_network, load_checkpoint, predict_probabilities, save_checkpoint
from tests.conftest import DATA, SMALL_MODEL

pytest.importorskip("onnxruntime")


def real_tiles(size: int) -> list[np.ndarray]:
    """Tiles down the real core photo (1,600 x 154 px: mirrored out to the tile's width)."""
    photo = np.asarray(Image.open(DATA / "cc05.jpg").convert("RGB"))
    padded = np.pad(photo, ((0, max(0, size - photo.shape[0])), (0, max(0, size - photo.shape[1])), (0, 0)), mode="symmetric")
    tiles = [np.ascontiguousarray(padded[y : y + size, :size]) for y in range(0, padded.shape[0] - size + 1, size)]
    assert tiles
    return tiles


def agreement(a: list[np.ndarray], b: list[np.ndarray]) -> float:
    return float(np.mean([(x.argmax(0) == y.argmax(0)).mean() for x, y in zip(a, b, strict=True)]))


@pytest.fixture(scope="module")
def shipped_models():
    """The shipped checkpoint through PyTorch and through ONNX Runtime (FP32)."""
    reference = load_checkpoint(DEFAULT_MODEL, "cpu", engine="torch")
    exported = load_checkpoint(DEFAULT_MODEL, "cpu", engine="onnxruntime", threads=2)
    return reference, exported


def test_onnxruntime_fp32_agrees_with_pytorch_on_real_and_synthetic_tiles(shipped_models):
    reference, exported = shipped_models
    assert exported.engine.name == "onnxruntime" and exported.engine.fallback_reason is None
    tile = reference.config.tile_size
    for tiles in (real_tiles(tile), parity_tiles(tile, 3)):
        assert agreement(predict_probabilities(reference, tiles), predict_probabilities(exported, tiles)) >= MIN_FP32_AGREEMENT


def test_tiles_of_another_size_run_on_the_reference(shipped_models):
    reference, exported = shipped_models
    small = [parity_tiles(reference.config.tile_size, 1)[0][:256, :384]]  # an image smaller than a tile
    assert not exported.engine.accepts(256, 384)
    np.testing.assert_array_equal(predict_probabilities(reference, small)[0], predict_probabilities(exported, small)[0])


def test_openvino_runs_tiles_of_every_size_as_pytorch_does():
    pytest.importorskip("openvino")
    reference = load_checkpoint(DEFAULT_MODEL, "cpu", engine="torch")
    exported = load_checkpoint(DEFAULT_MODEL, "cpu", engine="openvino", threads=1)
    assert exported.engine.name == "openvino" and exported.engine.accepts(256, 384)
    real = real_tiles(reference.config.tile_size)[0]
    for height, width in ((256, 384), (416, 512), (512, 288)):  # the coarse passes' and small pictures' tiles
        tiles = [np.ascontiguousarray(real[:height, :width])]
        expected, got = predict_probabilities(reference, tiles)[0], predict_probabilities(exported, tiles)[0]
        assert got.shape == expected.shape
        assert agreement([expected], [got]) >= MIN_FP32_AGREEMENT
        assert np.abs(expected.astype(np.float32) - got.astype(np.float32)).max() < 0.01


def test_openvino_streams_are_not_pinned_to_cores(monkeypatch):
    """The replica shares the cores with the rest of the service; pinned streams cannot move off a busy core."""
    ov = pytest.importorskip("openvino")
    seen = []
    compile_model = ov.Core.compile_model

    def recording(self, model, device, properties):
        seen.append(properties)
        return compile_model(self, model, device, properties)

    monkeypatch.setattr(ov.Core, "compile_model", recording)
    load_checkpoint(DEFAULT_MODEL, "cpu", engine="openvino", threads=1)
    assert seen and seen[-1]["ENABLE_CPU_PINNING"] is False and seen[-1]["NUM_STREAMS"] >= 1


def test_the_export_is_built_once_and_its_parity_recorded(shipped_models):
    directory = engines.artefact_dir(DEFAULT_MODEL)
    export = directory / engines.FP32_FILE
    built = export.stat().st_mtime_ns
    load_checkpoint(DEFAULT_MODEL, "cpu", engine="onnxruntime", threads=1)
    assert export.stat().st_mtime_ns == built
    parity = json.loads((directory / engines.PARITY_FILE).read_text())
    assert parity["model-fp32.onnx:onnxruntime:cpu"]["argmax_agreement"] >= MIN_FP32_AGREEMENT


def test_artefacts_go_to_the_cache_when_the_checkpoint_folder_cannot_take_them(tmp_path, monkeypatch):
    config = ModelConfig(**SMALL_MODEL)
    checkpoint = save_checkpoint(tmp_path / "ckpt", config, build_network(config))
    (checkpoint / ENGINES_DIR).write_text("a file where the folder would go")  # unwritable, even for root
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    directory = engines.artefact_dir(checkpoint)
    assert directory == tmp_path / "cache" / "lithoseg" / "engines" / engines.weights_digest(checkpoint)
    assert load_checkpoint(checkpoint, "cpu", engine="onnxruntime", threads=1).engine.name == "onnxruntime"
    assert (directory / engines.FP32_FILE).is_file()


def test_weights_trained_again_into_the_same_folder_never_run_through_the_old_export_or_checks(tmp_path):
    config = ModelConfig(**SMALL_MODEL)
    torch.manual_seed(0)
    checkpoint = save_checkpoint(tmp_path / "ckpt", config, build_network(config))
    first = load_checkpoint(checkpoint, "cpu", engine="onnxruntime", threads=1)
    old = engines.artefact_dir(checkpoint)
    assert (old / engines.FP32_FILE).is_file()
    passed = {"engine": "openvino-bf16", "weights": engines.weights_digest(checkpoint), "accepted": True}
    (checkpoint / ENGINES_DIR / engines.checks_file("openvino-bf16")).write_text(json.dumps(passed))  # the old weights passed
    torch.manual_seed(1)
    save_checkpoint(checkpoint, config, build_network(config))  # a run writes new weights over the folder
    again = load_checkpoint(checkpoint, "cpu", engine="onnxruntime", threads=1)
    assert engines.artefact_dir(checkpoint) != old and (engines.artefact_dir(checkpoint) / engines.FP32_FILE).is_file()
    tile = torch.from_numpy(parity_tiles(128, 1)[0].transpose(2, 0, 1)[None].astype(np.float32) / 255)
    with torch.inference_mode():  # the export of the new weights: PyTorch's answer, not the old network's
        assert torch.allclose(again.engine(tile), again.network(tile), atol=1e-3)
        assert not torch.allclose(again.engine(tile), first.engine(tile), atol=1e-3)
    bf16 = load_checkpoint(checkpoint, "cpu", engine="openvino-bf16", threads=1)
    assert bf16.engine.name == "torch" and "other weights" in bf16.engine.fallback_reason  # the old weights' pass does not carry over


def test_engines_that_cannot_run_here_fall_back_to_pytorch_and_say_why(tmp_path, monkeypatch):
    config = ModelConfig(**SMALL_MODEL)
    checkpoint = save_checkpoint(tmp_path / "ckpt", config, build_network(config))
    for name, reason in (("tensorrt", "CUDA"), ("torch-compile", "CUDA"), ("onnxruntime-int8", "held-out checks"), ("torch-fp16", "CUDA")):
        model = load_checkpoint(checkpoint, "cpu", engine=name)
        assert model.engine.name == "torch" and reason in model.engine.fallback_reason
    monkeypatch.setitem(sys.modules, "onnxruntime", None)  # as if it were not installed
    model = load_checkpoint(checkpoint, "cpu", engine="onnxruntime")
    assert model.engine.name == "torch" and "onnxruntime is not installed" in model.engine.fallback_reason
    monkeypatch.setitem(sys.modules, "openvino", None)
    fallback = load_checkpoint(checkpoint, "cpu", engine="auto").engine
    assert fallback.name == "torch" and "openvino is not installed" in fallback.fallback_reason
    with pytest.raises(ValueError, match="Unknown engine"):
        load_checkpoint(checkpoint, "cpu", engine="tensorflow")


def test_an_engine_that_builds_but_cannot_run_here_is_refused_at_load(tmp_path, monkeypatch):
    """OpenVINO compiles bf16 where oneDNN may not use the bf16 units, then fails at the first
    inference: the replica must refuse it at load (auto going on to the next engine), not fail
    every tile."""
    pytest.importorskip("openvino")
    config = ModelConfig(**SMALL_MODEL)
    checkpoint = save_checkpoint(tmp_path / "ckpt", config, build_network(config))
    built = engines.openvino_engine

    def broken(*args, **kwargs):
        engine = built(*args, **kwargs)

        def run(batch):
            raise RuntimeError("Exception from src/plugins/intel_cpu/src/node.cpp:823:\n[CPU] Convolution node is not initialized\n")

        return engines.Engine(engine.name, run)

    monkeypatch.setattr(engines, "openvino_engine", broken)
    model = load_checkpoint(checkpoint, "cpu", engine="openvino", threads=1)
    assert model.engine.name == "torch"
    assert "first inference failed (RuntimeError: [CPU] Convolution node is not initialized)" in model.engine.fallback_reason
    assert load_checkpoint(checkpoint, "cpu", engine="auto", threads=1).engine.name == "onnxruntime"  # the next in line


def test_an_export_that_disagrees_is_refused(tmp_path, monkeypatch):
    config = ModelConfig(**SMALL_MODEL)
    network = build_network(config)
    checkpoint = save_checkpoint(tmp_path / "ckpt", config, network)
    monkeypatch.setattr(engines, "MIN_FP32_AGREEMENT", 1.01)  # no export can reach it
    model = load_checkpoint(checkpoint, "cpu", engine="onnxruntime", threads=1)
    assert model.engine.name == "torch" and "agrees with PyTorch" in model.engine.fallback_reason


def test_the_cuda_paths_refuse_a_cpu_model():
    network = build_network(ModelConfig(**SMALL_MODEL))
    with pytest.raises(engines.EngineUnavailable):
        engines.compile_engine(network, torch.device("cpu"), 128)
    engine = build_engine("tensorrt", network, torch.device("cpu"), DEFAULT_MODEL, 128, 1, lambda t: torch.zeros(1))
    assert engine.name == "torch" and "CUDA" in engine.fallback_reason


SHIPPED_CHECKS = sorted((DEFAULT_MODEL / ENGINES_DIR).glob("*.checks.json"))


@pytest.mark.skipif(not SHIPPED_CHECKS, reason="the shipped checkpoint has no reduced-precision checks")
@pytest.mark.parametrize("path", SHIPPED_CHECKS, ids=lambda p: p.name)
def test_a_reduced_precision_engine_is_used_only_within_the_held_out_bars(path):
    checks = json.loads(path.read_text())
    assert checks["weights"] == engines.weights_digest(DEFAULT_MODEL)  # checked with the weights that ship
    within = all(
        group["fp32"]["rock_vs_background_iou"] - group["candidate"]["rock_vs_background_iou"] <= engines.MAX_ROCK_IOU_LOSS
        and group["fp32"]["miou_rock_present"] - group["candidate"]["miou_rock_present"] <= engines.MAX_MIOU_LOSS
        for group in checks["figures"].values()
    )
    assert checks["accepted"] == within and {"real_holdout", "synthetic"} <= set(checks["figures"])
    model = load_checkpoint(DEFAULT_MODEL, "cpu", engine=checks["engine"], threads=2)
    if not checks["accepted"]:
        assert model.engine.name == "torch" and "held-out" in model.engine.fallback_reason
    elif model.engine.name == checks["engine"]:  # (openvino-bf16 needs a CPU with native bf16)
        reference = load_checkpoint(DEFAULT_MODEL, "cpu", engine="torch")
        tiles = real_tiles(model.config.tile_size)
        assert agreement(predict_probabilities(reference, tiles), predict_probabilities(model, tiles)) >= 0.95
