"""JobRunner: one job through the graph, Decode → Gate/Tiler (→ Segmenter) → Compositor → store.

Called by the JobTracker. Input errors (a file that turns out not to decode) come back as
`{"error": sentence}` so the job fails with a reason; anything else raises and the tracker retries.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from ray import serve
from ray.serve.handle import DeploymentHandle

from deployments.jobs import mask_key, overlay_key, upload_key
from deployments.remote_errors import sentence_of
from deployments.settings import Settings
from pipelines.errors import InputError
from storage import open_store

logger = logging.getLogger("ray.serve")


@serve.deployment(ray_actor_options={"num_cpus": 0.1}, max_ongoing_requests=64)
class JobRunner:
    def __init__(self, settings: Settings, decoder: DeploymentHandle, tiler: DeploymentHandle, segmenter: DeploymentHandle, compositor: DeploymentHandle) -> None:
        self.store = open_store(settings.store_url, settings.s3_endpoint_url)
        self.decoder, self.tiler, self.segmenter, self.compositor = decoder, tiler, segmenter, compositor

    async def run(self, job_id: str, mask_weight: float) -> dict[str, Any]:
        model = await self.segmenter.info.remote()
        upload = await asyncio.to_thread(self.store.get, upload_key(job_id))
        try:
            image = self.decoder.decode.remote(upload)
            segmentation = self.tiler.segment.remote(image, model)
            rendered = await self.compositor.render.remote(image, segmentation, mask_weight, model["classes"])
        except InputError as exc:
            reason = sentence_of(exc, "The image could not be decoded.")
            logger.info("Job %s failed: %s", job_id, reason)
            return {"error": reason}
        await asyncio.to_thread(self.store.put, overlay_key(job_id), rendered["overlay_png"])
        await asyncio.to_thread(self.store.put, mask_key(job_id), rendered["mask_png"])
        summary = rendered["summary"]
        summary["model"] = {"name": model["name"], "version": model["version"]}
        return {"result": summary}
