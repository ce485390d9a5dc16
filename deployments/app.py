"""The application builder: the whole graph, wired once. `serve_config.yaml` imports `build_app`.

    HTTP → Ingress ─submit→ JobTracker (detached actor) ─dispatch→ JobRunner
    JobRunner → Decoder → Tiler ⇄ Segmenter (@serve.batch) → Compositor → ResultStore
"""

from __future__ import annotations

from typing import Any

from ray.serve import Application

from deployments.compositor import Compositor
from deployments.decoder import Decoder
from deployments.ingress import Ingress
from deployments.runner import JobRunner
from deployments.segmenter import Segmenter
from deployments.settings import Settings
from deployments.tiler import Tiler


def build_app(args: dict[str, Any] | None = None) -> Application:
    """`args` (from `serve_config.yaml` or a caller) override the `LITHOSEG_` environment."""
    settings = Settings(**(args or {}))
    segmenter = Segmenter.bind(settings)
    decoder = Decoder.bind(settings)
    tiler = Tiler.bind(settings, segmenter)
    compositor = Compositor.bind(settings)
    runner = JobRunner.bind(settings, decoder, tiler, segmenter, compositor)
    return Ingress.bind(settings, runner, segmenter)
