"""The obvious alternative, for comparison: one process, a plain ASGI app, the same model and the
same outputs (overlay PNG, class-index mask PNG, summary), one image at a time, no batching.

    POST /predict  (body: the image file) → 200 {"detected_classes", "coverage", ..., "base64", "mask"}

This is what a user would write in an afternoon: decode, tile, run the model tile by tile, stitch,
render, answer. It uses lithoseg's own pipeline functions, so the two servers do the same work.

    python -m bench.naive_server --port 8100
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import os
from typing import Any

import torch

from pipelines.classes import default_class_table
from pipelines.decode import decode_image
from pipelines.model import load_checkpoint
from pipelines.render import render_outputs
from pipelines.segment import segment_image

MODEL = os.environ.get("LITHOSEG_MODEL", "models/lithoseg-default")


class NaiveApp:
    def __init__(self, model_dir: str) -> None:
        torch.set_num_threads(os.cpu_count() or 1)
        self.model = load_checkpoint(model_dir)
        self.table = default_class_table()
        self.lock = asyncio.Lock()  # one image at a time

    def process(self, data: bytes) -> dict[str, Any]:
        image = decode_image(data, 100_000_000)
        segmentation = segment_image(self.model, image)
        out = render_outputs(image, segmentation.class_ids, segmentation.confidence, 0.5, self.table)
        return {
            **out["summary"],
            "base64": base64.b64encode(out["overlay_png"]).decode(),
            "mask": base64.b64encode(out["mask_png"]).decode(),
        }

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            while (message := await receive())["type"] != "lifespan.shutdown":
                await send({"type": message["type"] + ".complete"})
            await send({"type": "lifespan.shutdown.complete"})
            return
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        if scope["path"] == "/health":
            status, payload = 200, {"status": "ok"}
        else:
            async with self.lock:
                try:
                    status, payload = 200, await asyncio.to_thread(self.process, body)
                except Exception as exc:  # a benchmark baseline: report, do not crash
                    status, payload = 400, {"detail": str(exc)}
        raw = json.dumps(payload).encode()
        await send({"type": "http.response.start", "status": status, "headers": [(b"content-type", b"application/json")]})
        await send({"type": "http.response.body", "body": raw})


def main() -> None:
    import uvicorn

    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, default=8100)
    args = parser.parse_args()
    uvicorn.run(NaiveApp(MODEL), host="127.0.0.1", port=args.port, log_level="warning")


if __name__ == "__main__":
    main()
