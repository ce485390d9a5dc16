"""JobRunner: one image through the graph, Decode → Gate/Tiler (→ Segmenter) → Compositor.

`run` serves the JobTracker: a streaming method that yields `{"progress": [done, total]}` while the
tiles go through and finally `{"result": summary}` or `{"error": sentence}`, after the PNGs are in
the store (the Compositor writes them). Input errors (a file that turns out not to decode) come back as `{"error": ...}` so the
job fails with a reason; anything else raises and the tracker retries. Cancelling the stream
cancels the tiling beneath it.

`segment_now` serves POST /segment: the same steps, the mask returned instead of stored.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from typing import Any, cast

import ray
from ray import serve
from ray.serve.handle import DeploymentHandle, DeploymentResponse, DeploymentResponseGenerator

from deployments.http.remote_errors import sentence_of
from deployments.jobs import upload_key
from deployments.settings import Settings
from pipelines.errors import InputError
from pipelines.gate import verdict
from pipelines.validation import class_validation
from storage import open_store

logger = logging.getLogger("ray.serve")


@serve.deployment(ray_actor_options={"num_cpus": 0.1}, max_ongoing_requests=64)
class JobRunner:
    """One job through the graph: decode, gate, tiles to the Segmenter, compositing; progress streamed to the tracker."""

    def __init__(
        self,
        settings: Settings,
        decoder: DeploymentHandle,
        tiler: DeploymentHandle,
        segmenter: DeploymentHandle,
        compositor: DeploymentHandle,
    ) -> None:
        self.settings = settings
        self.store = open_store(settings.store_url, settings.s3_endpoint_url)
        self.decoder, self.tiler, self.segmenter, self.compositor = decoder, tiler, segmenter, compositor

    async def _gate(self, image: DeploymentResponse, model: dict[str, Any], enabled: bool) -> dict[str, Any]:
        """`rejected`, `rejection_reason` and `core_score` for the result."""
        threshold = model["gate_threshold"]
        score = await self.tiler.gate.remote(image, model.get("key")) if enabled and threshold else None
        return verdict(score, threshold)

    async def _segment(self, image: DeploymentResponse, model: dict[str, Any]) -> DeploymentResponseGenerator:
        """Progress events, then an ObjectRef to the Segmentation (never fetched here). The Tiler
        gets the decoded image by reference (Serve's documented `_to_object_ref`), to pass on."""
        return cast(DeploymentResponseGenerator, self.tiler.options(stream=True).segment.remote([await image._to_object_ref()], model))

    async def run(self, job_id: str, options: dict[str, Any]) -> AsyncIterator[dict[str, Any]]:
        model = self.settings.resolve_model(await self.segmenter.info.remote())  # the job's model, pinned for all its requests
        versions = [model["version"]]
        upload = await asyncio.to_thread(self.store.get, upload_key(job_id))
        segmentation: ray.ObjectRef | None = None
        try:
            image = cast(DeploymentResponse, self.decoder.decode.remote(upload, options.get("raw")))
            del upload
            gate = await self._gate(image, model, options.get("gate", True))
            if gate["rejected"]:
                logger.info("Job %s rejected by the content gate (core score %.3f)", job_id, gate["core_score"])
            else:
                async for event in await self._segment(image, model):
                    if isinstance(event, ray.ObjectRef):
                        segmentation = event
                    elif "model_versions" in event:
                        versions = event["model_versions"]
                    else:
                        yield {"progress": [event["completed"], event["total"]]}
                if versions != [model["version"]]:  # cannot happen while tiles carry the pinned key
                    raise RuntimeError(f"Job {job_id}'s tiles came from model versions {versions}, not {model['version']}.")
            summary = await self.compositor.render.remote(
                job_id, image, segmentation, options["mask_weight"], model["classes"], options.get("depth"), options.get("attempt", 0)
            )
        except InputError as exc:
            reason = sentence_of(exc, "The image could not be decoded.")
            logger.info("Job %s failed: %s", job_id, reason)
            yield {"error": reason}
            return
        validation = class_validation(summary["detected_classes"], model.get("validated_classes") or {})
        model_info = {"name": model["name"], "version": model["version"], "tile_versions": versions}
        yield {"result": {**summary, **gate, "class_validation": validation, "model": model_info}}

    async def segment_now(self, data: bytes, raw: dict[str, Any] | None, confidence: float, gate: bool) -> dict[str, Any]:
        """Decode, gate, segment and return `{"mask_png", "summary"}` (POST /segment)."""
        model = self.settings.resolve_model(await self.segmenter.info.remote())
        image = cast(DeploymentResponse, self.decoder.decode.remote(data, raw))
        verdict = await self._gate(image, model, gate)
        segmentation = None
        if not verdict["rejected"]:
            async for event in await self._segment(image, model):
                if isinstance(event, ray.ObjectRef):
                    segmentation = event
        rendered = await self.compositor.render_mask.remote(image, segmentation, confidence, model["classes"])
        validation = class_validation(rendered["summary"]["detected_classes"], model.get("validated_classes") or {})
        return {"mask_png": rendered["mask_png"], "summary": {**rendered["summary"], **verdict, "class_validation": validation}}
