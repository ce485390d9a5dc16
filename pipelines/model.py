"""Segmentation networks: checkpoint config, construction, loading, saving and tile inference.

A checkpoint is a directory holding `config.json` (everything needed to rebuild and feed the
network: architecture, encoder, class table, tile size, normalisation, plus training provenance
and metrics) and `model.safetensors`. The network itself comes from `smp.create_model`.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors.torch import load_file, save_file

from pipelines.checkpoint_files import CONFIG_FILE, IMAGENET_MEAN, IMAGENET_STD, WEIGHTS_FILE
from pipelines.classes import BACKGROUND_ID, ClassTable, default_class_table
from pipelines.engines import Engine, build_engine, torch_engine
from pipelines.errors import CheckpointError
from pipelines.exposure import AutoExposure
from pipelines.refine import GuidedFilter

# how a network is run on a photo, not what it learned: one checkpoint's may be tried on another's weights
INFERENCE_SETTINGS = ("max_short_side", "scales", "guided_filter", "auto_exposure", "background_logit_bias")


@dataclass
class ModelConfig:
    """What `config.json` holds. Unknown keys are kept in `extra` so newer files still load."""

    name: str = "lithoseg-unet-efflite0"
    version: str = "0"
    architecture: str = "Unet"
    encoder: str = "tu-tf_efficientnet_lite0"
    architecture_kwargs: dict[str, Any] = field(default_factory=lambda: {"decoder_channels": [128, 64, 48, 32, 16]})
    classes: list[dict[str, Any]] = field(default_factory=lambda: default_class_table().to_records())
    tile_size: int = 512
    tile_overlap: int = 64
    output_stride: int = 32
    max_short_side: int | None = None  # larger images are segmented scaled down to it (pipelines/resolution.py)
    scales: list[float] | None = None  # factors of that size also tried; the most confident wins
    guided_filter: dict[str, Any] | None = None  # edge-aware refinement of the probabilities (pipelines/refine.py)
    auto_exposure: dict[str, Any] | None = None  # under-exposed photos brightened before tiling (pipelines/exposure.py)
    background_logit_bias: float = 0.0  # added to the background logit before the softmax: > 0 calls rock only when surer
    confidence_calibration: list[int] | None = None  # raw confidence -> calibrated, 256 entries (pipelines/calibration.py)
    engine: str = "torch"  # what runs the network (pipelines/engines.py); "auto": the fastest that passed parity here
    mean: tuple[float, float, float] = IMAGENET_MEAN
    std: tuple[float, float, float] = IMAGENET_STD
    training: dict[str, Any] = field(default_factory=dict)
    metrics: dict[str, Any] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def class_table(self) -> ClassTable:
        return ClassTable.from_records(self.classes)

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> ModelConfig:
        known = {f for f in cls.__dataclass_fields__ if f != "extra"}
        config = cls(**{k: v for k, v in raw.items() if k in known})
        config.extra = {k: v for k, v in raw.items() if k not in known and k != "extra"} | raw.get("extra", {})
        config.mean = tuple(config.mean)  # type: ignore[assignment]
        config.std = tuple(config.std)  # type: ignore[assignment]
        return config

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def inference_settings(self) -> dict[str, Any]:
        """How this checkpoint runs its network on a photo (`INFERENCE_SETTINGS`), a copy."""
        return json.loads(json.dumps({key: getattr(self, key) for key in INFERENCE_SETTINGS}))


def same_settings(first: dict[str, Any] | None, second: dict[str, Any] | None) -> bool:
    """Whether two recorded `inference_settings()` run a network alike: a setting a record
    predates (missing from it) counts as its default, so records written before a setting existed
    still compare equal to today's with that setting off."""
    if first is None or second is None:
        return first is second
    defaults = ModelConfig().inference_settings()
    return all(first.get(key, defaults[key]) == second.get(key, defaults[key]) for key in INFERENCE_SETTINGS)


@dataclass
class LoadedModel:
    """A network ready for inference with its config, device and engine."""

    config: ModelConfig
    network: torch.nn.Module
    device: torch.device
    refine: GuidedFilter | None = None  # applied to every tile's probabilities; None: the network's own
    exposure: AutoExposure | None = None  # applied to the whole image before tiling; None: as it comes
    engine: Engine | None = None  # runs the network on tiles it accepts; None: the reference
    reference: Engine | None = None  # PyTorch eager: tiles of other shapes, and the parity baseline

    def __post_init__(self) -> None:
        if self.reference is None:
            self.reference = torch_engine(self.network, self.device)  # fp16 on CUDA: what parity chose on an H200
        if self.engine is None:
            self.engine = self.reference

    def run_network(self, batch: torch.Tensor) -> torch.Tensor:
        """Logits of a normalised batch, through the engine if it takes this shape."""
        assert self.engine is not None and self.reference is not None
        engine = self.engine if self.engine.accepts(batch.shape[2], batch.shape[3]) else self.reference
        return engine(batch)

    def uncalibrated(self) -> LoadedModel:
        """The same model with the confidence as the network gives it (no calibration table)."""
        return replace(self, config=replace(self.config, confidence_calibration=None))

    def with_settings_of(self, source: ModelConfig) -> LoadedModel:
        """The same network run on photos as `source`'s checkpoint runs them: its working size,
        scale search, guided filter and auto-exposure (a cross-validation fold scored with the
        settings the shipped model has)."""
        config = replace(self.config, **source.inference_settings())
        refine, exposure = GuidedFilter.from_config(config.guided_filter), AutoExposure.from_config(config.auto_exposure)
        return replace(self, config=config, refine=refine, exposure=exposure)

    @property
    def refinement(self) -> dict[str, Any] | None:
        """The guided filter in use, as `config.json` writes it (None: off)."""
        return None if self.refine is None else self.refine.to_config()

    @property
    def auto_exposure(self) -> dict[str, Any] | None:
        """The auto-exposure in use, as `config.json` writes it (None: off)."""
        return None if self.exposure is None else self.exposure.to_config()


def select_device(preferred: str = "auto") -> torch.device:
    """CUDA when present (or asked for), CPU otherwise."""
    if preferred == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(preferred)


def build_network(config: ModelConfig) -> torch.nn.Module:
    """The segmentation network a config describes (smp U-Net with a timm encoder), weights untouched."""
    import segmentation_models_pytorch as smp

    return smp.create_model(
        config.architecture,
        encoder_name=config.encoder,
        encoder_weights=None,
        in_channels=3,
        classes=len(config.classes),
        **config.architecture_kwargs,
    )


def save_checkpoint(directory: str | Path, config: ModelConfig, network: torch.nn.Module) -> Path:
    """Write a checkpoint directory: config.json and the weights (safetensors)."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().contiguous().cpu() for k, v in network.state_dict().items()}
    tmp_weights = directory / (WEIGHTS_FILE + ".tmp")
    save_file(state, str(tmp_weights), metadata={"format": "pt"})
    tmp_weights.replace(directory / WEIGHTS_FILE)
    (directory / CONFIG_FILE).write_text(json.dumps(config.to_dict(), indent=2) + "\n")
    return directory


def update_config(directory: str | Path, changes: dict[str, Any]) -> None:
    """Set top-level keys of a checkpoint's config.json (inference settings, a calibration table),
    written as `save_checkpoint` writes it."""
    path = Path(directory) / CONFIG_FILE
    path.write_text(json.dumps({**json.loads(path.read_text()), **changes}, indent=2) + "\n")


def read_config(directory: str | Path) -> ModelConfig:
    """A checkpoint directory's config.json, validated."""
    path = Path(directory) / CONFIG_FILE
    if not path.is_file():
        raise CheckpointError(f"{directory} is not a checkpoint directory: it has no {CONFIG_FILE}.")
    try:
        return ModelConfig.from_dict(json.loads(path.read_text()))
    except (ValueError, TypeError) as exc:
        raise CheckpointError(f"{path} is not a valid checkpoint config: {exc}.") from exc


def load_checkpoint(directory: str | Path, device: torch.device | str = "auto", engine: str | None = None, threads: int = 0) -> LoadedModel:
    """Rebuild the network from `config.json` and load `model.safetensors` into it, in eval mode,
    with the engine `engine` (None: the checkpoint's `engine`) on `threads` CPU threads (0:
    torch's). An engine that cannot run here falls back to PyTorch (`model.engine.fallback_reason`)."""
    config = read_config(directory)
    weights = Path(directory) / WEIGHTS_FILE
    if not weights.is_file():
        raise CheckpointError(f"{directory} has no {WEIGHTS_FILE}.")
    network = build_network(config)
    try:
        network.load_state_dict(load_file(str(weights)), strict=True)
    except RuntimeError as exc:
        raise CheckpointError(f"The weights in {weights} do not fit the network in {CONFIG_FILE}: {exc}") from exc
    refine = GuidedFilter.from_config(config.guided_filter)
    target = select_device(device) if isinstance(device, str) else device
    network = network.to(target).eval()
    if target.type == "cuda":
        network = network.to(memory_format=torch.channels_last)  # type: ignore[call-overload]  # torch's stub lacks memory_format
    model = LoadedModel(config, network, target, refine, AutoExposure.from_config(config.auto_exposure))
    name = engine or config.engine
    if name != "torch":
        model.engine = build_engine(
            name, network, target, Path(directory), config.tile_size, threads or torch.get_num_threads(),
            lambda tiles: normalise(torch.from_numpy(np.array(tiles)), config, target),
        )  # fmt: skip
    return model


def normalise(images: torch.Tensor, config: ModelConfig, device: torch.device) -> torch.Tensor:
    """(B, H, W, 3) uint8 → (B, 3, H, W) float on `device`, normalised as the checkpoint says."""
    batch = images.to(device).permute(0, 3, 1, 2).float().div_(255.0)
    mean = torch.tensor(config.mean, device=device).view(1, 3, 1, 1)
    std = torch.tensor(config.std, device=device).view(1, 3, 1, 1)
    return (batch - mean) / std


def background_bias(bias: float, num_classes: int, device: torch.device) -> torch.Tensor:
    """(1, C, 1, 1): `bias` on the background class, 0 on the others, to add to logits. A shift of
    the background's log-odds, so a pixel is called rock only where the network is surer of it
    (P(background) is multiplied by e^bias before renormalising); docs/crossval.md, "Background
    bias", measures it on the folds."""
    shift = torch.zeros(1, num_classes, 1, 1, device=device)
    shift[0, BACKGROUND_ID] = bias
    return shift


def _forward(model: LoadedModel, tiles: list[np.ndarray]) -> Iterator[tuple[list[int], torch.Tensor]]:
    """(indices, softmax probabilities (N, C, H, W) float32 on the model's device, refined when the
    checkpoint says so) for the tiles, grouped by shape: tiles of one shape run as one batch. H and
    W must be multiples of the output stride. Call under `torch.inference_mode()`."""
    by_shape: dict[tuple[int, ...], list[int]] = {}
    for index, tile in enumerate(tiles):
        by_shape.setdefault(tile.shape, []).append(index)
    for indices in by_shape.values():
        stacked = torch.from_numpy(np.stack([tiles[i] for i in indices])).to(model.device)  # uint8: the guide of `refine` too
        logits = model.run_network(normalise(stacked, model.config, model.device)).float()
        if model.config.background_logit_bias:  # out of place: an engine may hand back its own buffer
            logits = logits + background_bias(model.config.background_logit_bias, logits.shape[1], model.device)
        probabilities = torch.softmax(logits, dim=1)
        yield indices, probabilities if model.refine is None else model.refine(probabilities, stacked)


def predict_probabilities(model: LoadedModel, tiles: list[np.ndarray]) -> list[np.ndarray]:
    """Class probabilities, (C, H, W) float16, for each (H, W, 3) uint8 tile."""
    results: list[np.ndarray | None] = [None] * len(tiles)
    with torch.inference_mode():
        for indices, probabilities in _forward(model, tiles):
            for position, index in enumerate(indices):
                results[index] = probabilities[position].to(torch.float16).cpu().numpy()
    return results  # type: ignore[return-value]


def predict_weighted(model: LoadedModel, tiles: list[np.ndarray], windows: list[np.ndarray]) -> list[np.ndarray]:
    """What `pipelines.tiling.Stitcher` takes: for each (H, W, 3) uint8 tile, its (C, H, W) class
    probabilities times its blend window (H, W) × 255, rounded to uint8 (as `tiling.weigh`). A
    third of float16's bytes to move between processes; a step of 1/255 is far below what changes
    an argmax or a confidence PNG."""
    results: list[np.ndarray | None] = [None] * len(tiles)
    with torch.inference_mode():
        for indices, probabilities in _forward(model, tiles):
            scale = torch.from_numpy(np.stack([windows[i] for i in indices])).to(model.device).mul_(255.0).unsqueeze(1)
            weighted = probabilities.mul_(scale).round_().to(torch.uint8).cpu().numpy()
            for position, index in enumerate(indices):
                results[index] = weighted[position]
    return results  # type: ignore[return-value]
