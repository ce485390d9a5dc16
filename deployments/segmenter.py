"""Segmenter: the model. Tiles in, class probabilities out, batched across jobs by `@serve.batch`."""

from __future__ import annotations

import asyncio
import logging
import os
from typing import TYPE_CHECKING, Any

import numpy as np
from pydantic import BaseModel, ConfigDict, Field
from ray import serve

from deployments.settings import Settings
from pipelines.gate import GateBank, GateEncoder
from pipelines.tiling import TileCut
from storage.factory import fetch_checkpoint

if TYPE_CHECKING:  # torch is imported in the replica only, not in every process that imports the graph
    from pipelines.model import LoadedModel

logger = logging.getLogger("ray.serve")


class SegmenterConfig(BaseModel):
    """Runtime knobs, applied in `reconfigure` (Serve `user_config`). Unknown keys are refused, so
    a typo in `serve_config.yaml` fails the deployment instead of being ignored."""

    model_config = ConfigDict(extra="forbid")

    max_batch_size: int = Field(1, ge=1, description="Tiles per forward pass; 1 is fastest on a small CPU.")
    batch_wait_timeout_s: float = Field(0.005, ge=0, description="How long a batch waits to fill.")
    torch_threads: int = Field(0, ge=0, description="torch CPU threads per forward pass; 0: the machine's cores divided among the concurrent batches.")
    model: str | None = Field(None, description="Checkpoint directory or s3:// URI; default LITHOSEG_MODEL.")
    niceness: int = Field(
        5, ge=0, le=19, description="Process niceness of the model replica: above the HTTP path's 0, so that on a CPU the model yields to submits and polls."
    )


# Two batches in flight: while one runs its forward pass, the other's tiles are received and its
# probabilities sent, so the model never waits for the event loop. On a CPU each pass gets half
# the cores: two single-thread passes at batch 1 do more tiles per second than one two-thread
# pass (intra-op parallelism does not scale perfectly at batch 1).
CONCURRENT_BATCHES = 2


def renice_process(niceness: int) -> None:
    """Set the niceness of every thread of this process (on Linux it is per thread; threads started
    later inherit it from the thread that starts them)."""
    tasks = [int(t) for t in os.listdir("/proc/self/task")] if os.path.isdir("/proc/self/task") else [0]
    for tid in tasks:
        try:
            os.setpriority(os.PRIO_PROCESS, tid, niceness)
        except OSError:  # lowering niceness back needs privileges; keep what we have
            logger.warning("Could not set the niceness of thread %d to %d", tid, niceness)


@serve.deployment(ray_actor_options={"num_cpus": 0.5}, max_ongoing_requests=16, user_config=SegmenterConfig().model_dump())
class Segmenter:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.model: LoadedModel | None = None
        self.model_uri: str | None = None
        self.gate_bank: GateBank | None = None
        self.gate_encoder: GateEncoder | None = None
        self.tiles_done = 0

    def reconfigure(self, user_config: dict[str, Any]) -> None:
        import torch

        from pipelines.model import load_checkpoint

        config = SegmenterConfig(**user_config)
        # Ray sets OMP_NUM_THREADS from the fractional num_cpus (i.e. 1); the model wants the cores.
        torch.set_num_threads(config.torch_threads or max(1, (os.cpu_count() or 1) // CONCURRENT_BATCHES))
        renice_process(config.niceness)
        self.predict.set_max_batch_size(config.max_batch_size)
        self.predict.set_batch_wait_timeout_s(config.batch_wait_timeout_s)
        uri = config.model or self.settings.model
        if uri != self.model_uri:
            directory = fetch_checkpoint(uri, self.settings.s3_endpoint_url)
            self.model = load_checkpoint(directory)
            if not self.settings.guided_filter:
                self.model.refine = None
            if not self.settings.auto_exposure:
                self.model.exposure = None
            self.gate_bank = GateBank.load(directory)
            if self.gate_bank is not None and self.gate_encoder is None:
                self.gate_encoder = GateEncoder(self.model.device)
            self.model_uri = uri
            gate = f"gated by {len(self.gate_bank.embeddings)} reference views" if self.gate_bank else "no content gate (no gate.npz)"
            logger.info("Segmenter loaded %s (%s) on %s, %s", self.model.config.name, uri, self.model.device, gate)

    def info(self) -> dict[str, Any]:
        assert self.model is not None
        config = self.model.config
        return {
            "name": config.name,
            "version": config.version,
            "device": str(self.model.device),
            "tile_size": config.tile_size,
            "tile_overlap": config.tile_overlap,
            "output_stride": config.output_stride,
            "max_short_side": config.max_short_side,
            "scales": config.scales,
            "guided_filter": self.model.refinement,
            "auto_exposure": self.model.auto_exposure,
            "num_classes": len(config.classes),
            "classes": config.classes,
            "gate_threshold": self.gate_bank.threshold if self.gate_bank else None,
            "tiles_done": self.tiles_done,
        }

    async def gate(self, views: list[np.ndarray]) -> float | None:
        """The core score of a picture's gate views, or None when this checkpoint has no gate."""
        if self.gate_bank is None or self.gate_encoder is None:
            return None
        bank, encoder = self.gate_bank, self.gate_encoder
        return await asyncio.to_thread(lambda: bank.score(encoder.embed(views)))

    @serve.batch(max_batch_size=1, batch_wait_timeout_s=0.005, max_concurrent_batches=CONCURRENT_BATCHES)
    async def predict(self, images: list[np.ndarray], cuts: list[TileCut]) -> list[np.ndarray]:
        """Class probabilities of one tile per request, weighted by the tile's blend window, as
        uint8 × 255 (what the Tiler's stitcher adds up): the tile is cut here from the image,
        which arrives as a zero-copy view of the object store, so that only the tile's coordinates
        travel per request."""
        from pipelines.model import predict_weighted

        model = self.model
        assert model is not None

        def run() -> list[np.ndarray]:  # cutting too off the event loop, with the forward pass
            return predict_weighted(model, [cut.of(image) for image, cut in zip(images, cuts, strict=True)], [cut.window() for cut in cuts])

        probabilities = await asyncio.to_thread(run)
        self.tiles_done += len(cuts)
        return probabilities
