"""serve_config.yaml names the real builder and only deployments the graph has."""

from pathlib import Path

import yaml
from ray.serve.schema import ServeDeploySchema

from deployments.app import build_app
from deployments.segmenter import CONCURRENT_BATCHES, SegmenterConfig

ROOT = Path(__file__).resolve().parents[2]


def test_serve_config_is_a_valid_serve_schema_for_our_graph():
    raw = yaml.safe_load((ROOT / "serve_config.yaml").read_text())
    schema = ServeDeploySchema(**raw)
    (app,) = schema.applications
    assert app.import_path == "deployments.app:build_app"
    graph = {"Ingress", "JobRunner", "Decoder", "Tiler", "Segmenter", "Compositor"}
    assert {d.name for d in app.deployments} <= graph
    segmenter = next(d for d in app.deployments if d.name == "Segmenter")
    # every concurrent batch must be able to fill up: a batch never exceeds max_ongoing_requests
    assert segmenter.max_ongoing_requests >= segmenter.user_config["max_batch_size"] * CONCURRENT_BATCHES
    SegmenterConfig(**segmenter.user_config)  # every knob is one the Segmenter knows
    assert build_app(app.args) is not None
