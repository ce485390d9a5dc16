"""The application builder: the whole graph, wired once. `serve_config.yaml` imports `build_app`.

HTTP → Ingress ─submit→ JobTracker (detached actor) ─dispatch→ JobRunner
JobRunner → Decoder → Tiler ⇄ Segmenter (@serve.batch) → Compositor → ResultStore
Segmenter ─heartbeat→ JobTracker ─backlog in tiles→ Serve's autoscaler
"""

from __future__ import annotations

from typing import Any, cast

from ray.serve import Application
from ray.serve.deployment import Deployment

from deployments.compositor import Compositor
from deployments.decoder import Decoder
from deployments.ingress import Ingress
from deployments.runner import JobRunner
from deployments.segmenter import Segmenter
from deployments.settings import Settings
from deployments.tiler import Tiler
from deployments.tracker import TrackerRef


def build_app(args: dict[str, Any] | None = None) -> Application:
    """`args` (from `serve_config.yaml` or a caller) override the `LITHOSEG_` environment."""
    settings = Settings(**(args or {}))
    tracker = TrackerRef(settings.tracker_name)  # the detached job tracker: started by the Ingress, fed by the Segmenter
    segmenter = deployment(Segmenter).bind(settings, tracker)
    decoder = deployment(Decoder).bind(settings)
    tiler = deployment(Tiler).bind(settings, segmenter)
    compositor = deployment(Compositor).bind(settings)
    runner = deployment(JobRunner).bind(settings, decoder, tiler, segmenter, compositor)
    return deployment(Ingress).bind(settings, runner, segmenter, tracker)


def deployment(decorated: object) -> Deployment:
    """A class under `@serve.deployment` as what it is at run time (type checkers see the class)."""
    return cast(Deployment, decorated)
