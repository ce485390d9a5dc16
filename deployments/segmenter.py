"""Segmenter: the model. Tiles in, class probabilities out, batched across jobs by `@serve.batch`.

A job is pinned to one model: `info()` names the model in use (its `key`, the checkpoint URI) and
every tile and gate request of the job carries that key. A replica keeps the last
`MODELS_KEPT` models it served and loads a pinned one it lacks, so during a rollout (a new
`user_config.model`) the jobs already running finish on the model they started with, on any
replica, and new jobs start on the new one. Each tile comes back with the version that made it.

With an autoscaling config (the cluster profile) each replica reports the job backlog to Serve
(`record_autoscaling_stats`), which `deployments.autoscaling.BacklogPolicy` sizes the deployment
from, and in doing so tells the job tracker it is alive (the tracker runs more jobs at once the
more replicas there are).
"""

from __future__ import annotations

import asyncio
import logging
import os
import threading
from collections import OrderedDict
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

import numpy as np
from pydantic import BaseModel, ConfigDict, Field
from ray import serve

from deployments.autoscaling import BACKLOG_METRIC
from deployments.settings import Settings
from pipelines.gate import GateBank, GateEncoder
from pipelines.tiling import TileCut
from pipelines.validation import validated_classes
from storage.factory import fetch_checkpoint

if TYPE_CHECKING:  # torch is imported in the replica only, not in every process that imports the graph
    from deployments.tracker import TrackerRef
    from pipelines.model import LoadedModel

logger = logging.getLogger("ray.serve")


# the batching defaults, until `reconfigure` applies the user_config's (measured: batch 1 and batch 2
# give the same tiles per second on a 2-core CPU; docs/benchmarks.md)
MAX_BATCH_SIZE = 1
BATCH_WAIT_TIMEOUT_S = 0.005


class SegmenterConfig(BaseModel):
    """Runtime knobs, applied in `reconfigure` (Serve `user_config`). Unknown keys are refused, so
    a typo in `serve_config.yaml` fails the deployment instead of being ignored."""

    model_config = ConfigDict(extra="forbid")

    max_batch_size: int = Field(MAX_BATCH_SIZE, ge=1, description="Tiles per forward pass; 1 is fastest on a small CPU.")
    batch_wait_timeout_s: float = Field(BATCH_WAIT_TIMEOUT_S, ge=0, description="How long a batch waits to fill.")
    torch_threads: int = Field(
        0, ge=0, description="torch CPU threads per forward pass; 0: the machine's cores divided among the concurrent batches."
    )
    model: str | None = Field(None, description="Checkpoint directory or s3:// URI; default LITHOSEG_MODEL.")
    engine: str | None = Field(
        None,
        description=(
            "What runs the network (pipelines/engines.py): auto, torch, onnxruntime, "
            "onnxruntime-int8, tensorrt, torch-compile; default: the checkpoint's."
        ),
    )
    niceness: int = Field(
        5,
        ge=0,
        le=19,
        description=(
            "Process niceness of the model replica: above the HTTP path's 0, so that on a CPU the model yields to submits and polls."
        ),
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


MODELS_KEPT = 2  # the model in use and the one before it (jobs that started before a rollout)


@dataclass
class Served:
    """One checkpoint as a replica serves it."""

    model: LoadedModel
    gate_bank: GateBank | None


@dataclass(frozen=True)
class TileRequest:
    """Tiles to segment: the model they are pinned to, the image (a view of the object store) and
    where each tile lies in it. `cancelled` is set when the caller gives up (its job was cancelled):
    the batch then skips the request's tiles not yet begun."""

    served: Served
    image: np.ndarray
    cuts: list[TileCut]
    cancelled: threading.Event = field(default_factory=threading.Event)


@serve.deployment(ray_actor_options={"num_cpus": 0.5}, max_ongoing_requests=16, user_config=SegmenterConfig().model_dump())
class Segmenter:
    """The model replicas: tiles in dynamic batches through the engine, the gate's score, the model's description."""

    def __init__(self, settings: Settings, tracker: TrackerRef | None = None) -> None:
        self.settings = settings
        self.tracker_ref = tracker  # None outside the graph (tests): no backlog to report
        self.models: OrderedDict[str, Served] = OrderedDict()  # by checkpoint URI, most recent last
        self.model_uri: str | None = None  # the one new jobs get
        self.gate_encoder: GateEncoder | None = None
        self.tiles_done = 0
        self.engine: str | None = None  # user_config's; None: each checkpoint's own
        self.threads = 1
        self.tiles_per_pass = MAX_BATCH_SIZE
        self._loading = asyncio.Lock()
        self._tracker: Any = None

    @property
    def model(self) -> LoadedModel | None:
        return self.models[self.model_uri].model if self.model_uri is not None and self.model_uri in self.models else None

    def _load(self, uri: str) -> Served:
        from pipelines.model import load_checkpoint

        directory = fetch_checkpoint(uri, self.settings.s3_endpoint_url)
        model = load_checkpoint(directory, engine=self.engine, threads=self.threads)
        if not self.settings.guided_filter:
            model.refine = None
        if not self.settings.auto_exposure:
            model.exposure = None
        if self.settings.background_logit_bias is not None:
            model.config = replace(model.config, background_logit_bias=self.settings.background_logit_bias)
        gate_bank = GateBank.load(directory)
        if gate_bank is not None and self.gate_encoder is None:
            self.gate_encoder = GateEncoder(model.device)
        gate = f"gated by {len(gate_bank.embeddings)} reference views" if gate_bank else "no content gate (no gate.npz)"
        engine = model.engine.name if model.engine else "torch"
        if model.engine is not None and model.engine.fallback_reason:
            engine += f" (not {self.engine or model.config.engine}: {model.engine.fallback_reason})"
        logger.info(
            "Segmenter loaded %s version %s (%s) on %s with engine %s, %s",
            model.config.name,
            model.config.version,
            uri,
            model.device,
            engine,
            gate,
        )
        return Served(model, gate_bank)

    def _keep(self, uri: str, served: Served) -> None:
        self.models[uri] = served
        self.models.move_to_end(uri)
        while len(self.models) > MODELS_KEPT:
            self.models.popitem(last=False)

    def reconfigure(self, user_config: dict[str, Any]) -> None:
        import torch

        config = SegmenterConfig(**user_config)
        # Ray sets OMP_NUM_THREADS from the fractional num_cpus (i.e. 1); the model wants the cores.
        self.threads = config.torch_threads or max(1, (os.cpu_count() or 1) // CONCURRENT_BATCHES)
        torch.set_num_threads(self.threads)
        if config.engine != self.engine:  # another engine: every model is loaded again with it
            self.engine = config.engine
            self.models.clear()
        renice_process(config.niceness)
        self.tiles_per_pass = config.max_batch_size
        self._predict_batch.set_max_batch_size(config.max_batch_size)  # type: ignore[attr-defined]  # added by @serve.batch
        self._predict_batch.set_batch_wait_timeout_s(config.batch_wait_timeout_s)  # type: ignore[attr-defined]
        uri = config.model or self.settings.model
        if uri not in self.models:
            self._keep(uri, self._load(uri))
        self.models.move_to_end(uri)
        self.model_uri = uri

    async def _served(self, key: str | None) -> Served:
        """The pinned model (loaded if this replica lacks it), or the one in use for None."""
        if key is None or key == self.model_uri:
            assert self.model_uri is not None
            return self.models[self.model_uri]
        if key not in self.models:
            async with self._loading:
                if key not in self.models:
                    logger.info("Loading pinned model %s for a job that started on it", key)
                    self._keep(key, await asyncio.to_thread(self._load, key))
        return self.models[key]

    def info(self) -> dict[str, Any]:
        assert self.model_uri is not None
        served = self.models[self.model_uri]
        model, config = served.model, served.model.config
        return {
            "key": self.model_uri,
            "name": config.name,
            "version": config.version,
            "device": str(model.device),
            "engine": model.engine.name if model.engine else "torch",
            "tile_size": config.tile_size,
            "tile_overlap": config.tile_overlap,
            "output_stride": config.output_stride,
            "max_short_side": config.max_short_side,
            "scales": config.scales,
            "guided_filter": model.refinement,
            "auto_exposure": model.auto_exposure,
            "background_logit_bias": config.background_logit_bias,
            "num_classes": len(config.classes),
            "classes": config.classes,
            "gate_threshold": served.gate_bank.threshold if served.gate_bank else None,
            "validated_classes": validated_classes(config.metrics),
            "confidence_calibration": config.confidence_calibration,
            "tiles_done": self.tiles_done,
        }

    async def gate(self, views: list[np.ndarray], key: str | None = None) -> float | None:
        """The core score of a picture's gate views, or None when the model has no gate."""
        served = await self._served(key)
        bank, encoder = served.gate_bank, self.gate_encoder
        if bank is None or encoder is None:
            return None
        return await asyncio.to_thread(lambda: bank.score(encoder.embed(views)))

    async def predict(self, image: np.ndarray, cuts: list[TileCut], key: str | None = None) -> tuple[list[np.ndarray], Any]:
        """Class probabilities of some tiles of one image, each weighted by its blend window, as
        uint8 × 255 (what the Tiler's stitcher adds up), and the version of the model that made
        them. The tiles are cut here from the image, which arrives as a zero-copy view of the
        object store, so that only their coordinates travel; several tiles a request, because a
        request through Serve costs both ends a few milliseconds of CPU (docs/benchmarks.md)."""
        served = await self._served(key)
        request = TileRequest(served, image, cuts)
        try:
            return await self._predict_batch(request), served.model.config.version
        except asyncio.CancelledError:  # Serve cancels the request when the Tiler's stream is cancelled
            request.cancelled.set()  # read by the batch between forward passes
            raise

    @serve.batch(max_batch_size=MAX_BATCH_SIZE, batch_wait_timeout_s=BATCH_WAIT_TIMEOUT_S, max_concurrent_batches=CONCURRENT_BATCHES)
    async def _predict_batch(self, requests: list[TileRequest]) -> list[list[np.ndarray]]:
        """The requests' tiles through the model, at most `max_batch_size` tiles a forward pass
        (the requests of a batch can hold more tiles than that), one model at a time. A request
        cancelled while the batch runs gets no more of its tiles run (its answer is never read),
        so a cancelled job stops costing the model at the next forward pass."""
        from pipelines.model import predict_weighted

        tiles = [(position, request, cut) for position, request in enumerate(requests) for cut in request.cuts]
        per_pass = self.tiles_per_pass

        def run() -> tuple[list[list[np.ndarray]], int]:  # cutting too off the event loop, with the forward pass
            results: list[list[np.ndarray]] = [[] for _ in requests]
            done = 0
            for model in {id(r.served.model): r.served.model for r in requests}.values():  # one pass per model (a rollout mixes them)
                mine = [(position, request, cut) for position, request, cut in tiles if request.served.model is model]
                while mine:
                    mine = [tile for tile in mine if not tile[1].cancelled.is_set()]
                    chunk, mine = mine[:per_pass], mine[per_pass:]
                    if not chunk:
                        break
                    outputs = predict_weighted(
                        model, [cut.of(request.image) for _, request, cut in chunk], [cut.window() for _, _, cut in chunk]
                    )
                    for (position, _, _), output in zip(chunk, outputs, strict=True):
                        results[position].append(output)
                    done += len(chunk)
            return results, done

        probabilities, done = await asyncio.to_thread(run)
        self.tiles_done += done
        return probabilities

    async def record_autoscaling_stats(self) -> dict[str, float]:
        """Serve's custom autoscaling metrics (called only under an autoscaling config): the job
        backlog in tiles, as the job tracker counts it. The call is also this replica's heartbeat
        to the tracker."""
        if self._tracker is None:
            self._tracker = self.tracker_ref.find() if self.tracker_ref else None
            if self._tracker is None:  # the Ingress has not started it yet: no jobs either
                return {BACKLOG_METRIC: 0.0}
        replica = serve.get_replica_context().replica_id.unique_id
        stats = await self._tracker.heartbeat.remote(replica)
        return {BACKLOG_METRIC: float(stats["backlog_tiles"])}
